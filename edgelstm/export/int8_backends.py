"""INT8 per backend, in one table: how each backend quantizes a graph, which layer groups really stay
float for a requested set, and what the quantized file holds. Adding a backend is one entry here and
one module beside it (``quantize_ort``, ``quantize_ov``)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgelstm.export import quantize_ort, quantize_ov
from edgelstm.quantreport import GraphOps
from edgelstm.spec import Backend


@dataclass(frozen=True)
class Int8Backend:
    # (fp32 file, int8 file, groups kept float, calibration feeds) -> whether anything was quantized
    quantize: Callable[[Path, Path, tuple[str, ...], list[dict[str, Any]]], bool]
    # requested float groups -> the groups that really stay float (the backend's own rules applied)
    effective_float: Callable[[tuple[str, ...]], tuple[str, ...]]
    graph_ops: Callable[[Path], GraphOps]  # op types (and what ran in which precision) of a model file


def _ort_quantize(src: Path, dst: Path, kept: tuple[str, ...], feeds: list[dict[str, Any]]) -> bool:
    return any(quantize_ort.quantize(src, dst, kept, feeds).values())


def _ort_ops(path: Path) -> GraphOps:
    from edgelstm.export.onnx import op_counts

    return GraphOps(file=path.name, op_types=op_counts(path))


def _ov_ops(path: Path) -> GraphOps:
    import openvino as ov

    from edgelstm.export import openvino as ovx

    compiled = ov.Core().compile_model(str(path), "CPU")
    return GraphOps(file=path.name, op_types=ovx.op_counts_ir(path), executed=ovx.exec_precisions(compiled))


INT8_BACKENDS: dict[Backend, Int8Backend] = {
    Backend.ONNXRUNTIME: Int8Backend(_ort_quantize, quantize_ort.effective_float, _ort_ops),
    Backend.OPENVINO: Int8Backend(quantize_ov.quantize, quantize_ov.effective_float, _ov_ops),
}
