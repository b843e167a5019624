"""ONNX -> OpenVINO IR, and what OpenVINO actually runs.

The IR is converted from the already-checked ONNX file and saved with ``compress_to_fp16=False``
(``save_model`` otherwise stores fp16 weights). Parity is always checked on the re-read IR: compiling
the object ``convert_model`` returns runs the LSTM as a slow TensorIterator, the saved IR gets the
fused kernel.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def convert_to_ir(onnx_path: Path, xml_path: Path) -> None:
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=False)


def default_inference_precision(xml_path: Path, device: str = "CPU") -> str:
    """The precision OpenVINO's plugin picks with no hint ("bf16" on CPUs with AVX512-BF16 or AMX)."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml_path), device)
    return precision_name(compiled.get_property("INFERENCE_PRECISION_HINT"))


def precision_name(value: Any) -> str:
    """OpenVINO's short element-type name ("bf16", "f32"), the form INFERENCE_PRECISION_HINT accepts."""
    if hasattr(value, "get_type_name"):
        return str(value.get_type_name())
    text = str(value)
    return text.replace("<Type: '", "").replace("'>", "").split(":")[-1].strip()


def exec_precisions(compiled: Any) -> dict[str, dict[str, int]]:
    """From a compiled model's execution graph: {layer type: {runtime precision: count}}.

    This is what actually ran (e.g. whether an LSTMSequence executes in i8, f32 or bf16), as opposed
    to what the IR asks for.
    """
    out: dict[str, dict[str, int]] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        layer = _any(rt["layerType"]) if "layerType" in rt else op.get_type_name()
        prec = _any(rt["runtimePrecision"]) if "runtimePrecision" in rt else "?"
        if layer in ("Parameter", "Result", "Constant"):
            continue
        counts = out.setdefault(layer, {})
        counts[prec] = counts.get(prec, 0) + 1
    return dict(sorted(out.items()))


def _any(value: Any) -> str:
    """An rt_info value (an OVAny) as text."""
    return str(value.astype(str)) if hasattr(value, "astype") else str(getattr(value, "value", value))


def op_counts_ir(xml_path: Path) -> dict[str, int]:
    import openvino as ov

    counts: dict[str, int] = {}
    for op in ov.Core().read_model(str(xml_path)).get_ordered_ops():
        name = op.get_type_name()
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))
