"""torch -> ONNX for each role, with names and dynamic axes derived from the spec.

We use the TorchScript exporter (``dynamo=False``, opset 17): torch 2.13's dynamo exporter fixes an
LSTM's time axis at the example length and writes external ``.onnx.data`` files, while this one keeps
T dynamic and the LSTM weights as constants (which onnxruntime's DynamicQuantizeLSTM needs).
"""
from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from edgelstm import spec
from edgelstm.errors import ExportCheckError
from edgelstm.spec import TensorSpec

log = logging.getLogger(__name__)

OPSET = 17


def example_inputs(inputs: tuple[TensorSpec, ...], *, batch: int = 2, time: int = 3) -> tuple[torch.Tensor, ...]:
    """Example tensors for tracing: dynamic axes get sizes other than 1 so nothing is specialised to 1."""
    out = []
    for t in inputs:
        shape = [batch if d == spec.BATCH else time if d == spec.TIME else int(d) for d in t.shape]
        if t.dtype == "uint8":
            out.append(torch.randint(0, 256, shape, dtype=torch.uint8))
        else:
            out.append(torch.zeros(shape, dtype=getattr(torch, t.dtype)))
    return tuple(out)


def export_onnx(graph: nn.Module, path: Path, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> None:
    """Export ``graph`` to ``path`` (one self-contained file) and check its structure."""
    args = example_inputs(inputs)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The exporter warns about LSTM batch sizes when h0/c0 are not inputs; ours are always inputs,
        # or zeros built from the input's batch size in the clip graph (checked by parity at batch 2).
        warnings.simplefilter("ignore")
        with torch.no_grad():
            # torch types f as a path, but the TorchScript exporter (dynamo=False) writes to a BytesIO too
            torch.onnx.export(graph, args, buf, dynamo=False, opset_version=OPSET,  # type: ignore[arg-type]
                              input_names=spec.names(inputs), output_names=spec.names(outputs),
                              dynamic_axes=spec.dynamic_axes(inputs, outputs), do_constant_folding=True)
    import onnx

    model = onnx.load_from_string(buf.getvalue())
    check_lstm_layout(model, path)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    log.info("exported %s (%d nodes)", path.name, len(model.graph.node))


def check_lstm_layout(model: object, path: Path) -> None:
    """Refuse an ONNX LSTM with layout=1: onnxruntime rejects it and OpenVINO computes it wrongly."""
    for node in model.graph.node:  # type: ignore[attr-defined]
        if node.op_type == "LSTM":
            layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
            if layout != 0:
                raise ExportCheckError(f"LSTM node '{node.name}' has layout={layout}", path=path,
                                       expected="layout=0 (time-major)",
                                       fix="export with the TorchScript exporter (dynamo=False); report this bug")


def op_counts(path: Path) -> dict[str, int]:
    """Op types of an ONNX file and how often each occurs (sorted by name)."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def embed_spec(path: Path, text: str) -> None:
    """Write the spec JSON into the ONNX file's metadata_props under spec.METADATA_KEY (in place)."""
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != spec.METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = spec.METADATA_KEY, text
    model.producer_name = "edgelstm"
    onnx.save(model, str(path))


def read_embedded_spec(path: Path) -> str | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((p.value for p in model.metadata_props if p.key == spec.METADATA_KEY), None)
