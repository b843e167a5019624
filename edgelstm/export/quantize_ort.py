"""onnxruntime INT8: static QDQ for the convolutional encoder, dynamic for the LSTM and head.

onnxruntime quantizes an LSTM only in dynamic mode (DynamicQuantizeLSTM, weights must be
constants, hence ``quant_pre_process`` first); static QDQ leaves it in float. The convolutions get
static QDQ with activations calibrated on real clips: U8 activations x S8 weights (the pair VNNI
kernels run), per-channel weights. Dynamic mode's default would turn every Conv into ConvInteger,
about 10x slower on this CPU, so dynamic quantization is limited to LSTM/MatMul/Gemm nodes named
here.
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DYNAMIC_OPS = ("LSTM", "MatMul", "Gemm")
ENCODER_ACTIVATIONS = ("Relu", "Clip", "AveragePool", "GlobalAveragePool", "MaxPool", "Flatten", "Add")


GROUPS = ("stem", "encoder", "proj", "lstm", "head")  # layer groups the gate can keep in float


def groups(path: Path) -> dict[str, list[str]]:
    """Quantizable node names of an ONNX graph by layer group.

    stem: the first Conv; encoder: the other Convs; proj: the encoder's Gemm/MatMul; lstm: LSTM nodes;
    head: Gemm/MatMul after the LSTM. Graph order is topological, so "before the LSTM" is the encoder.
    """
    import onnx

    out: dict[str, list[str]] = {g: [] for g in GROUPS}
    lstm_seen = False
    for n in onnx.load(str(path)).graph.node:
        if n.op_type == "LSTM":
            lstm_seen = True
            out["lstm"].append(n.name)
        elif n.op_type == "Conv":
            out["stem" if not out["stem"] else "encoder"].append(n.name)
        elif n.op_type in ENCODER_ACTIVATIONS and not lstm_seen and out["stem"]:
            out["encoder"].append(n.name)  # quantized too, so no Q/DQ pair is left around each activation
        elif n.op_type in ("Gemm", "MatMul"):
            out["head" if lstm_seen else "proj"].append(n.name)
    return out


class _Reader:
    """onnxruntime's CalibrationDataReader over precomputed feeds."""

    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]) -> None:
        self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # a single pass is all MinMax needs
        pass


def quantize(src: Path, dst: Path, keep_float: Iterable[str], feeds: list[dict[str, np.ndarray]] | None,
             *, dynamic_head: bool = True) -> dict[str, list[str]]:
    """Write an INT8 model to ``dst``; the layer groups in ``keep_float`` stay float.

    Encoder groups (stem, encoder, proj) get static QDQ; lstm and head get dynamic quantization.
    Returns the groups with their node names as quantized (float groups emptied).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        cur = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(cur), skip_symbolic_shape=True)
        keep = set(keep_float)
        chosen = {g: ([] if g in keep else names) for g, names in groups(cur).items()}
        static = chosen["stem"] + chosen["encoder"] + chosen["proj"]
        dynamic = chosen["lstm"] + (chosen["head"] if dynamic_head else [])
        if static:
            if not feeds:
                raise ValueError("static quantization needs calibration feeds")
            out = Path(tmp) / "static.onnx"
            quantize_static(str(cur), str(out), _Reader(feeds), quant_format=QuantFormat.QDQ,
                            nodes_to_quantize=static, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                           "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}})
            cur = out
        if dynamic:
            out = Path(tmp) / "dynamic.onnx"
            quantize_dynamic(str(cur), str(out), op_types_to_quantize=list(DYNAMIC_OPS),
                             nodes_to_quantize=dynamic, weight_type=QuantType.QInt8,
                             per_channel=False)
            cur = out
        import onnx

        onnx.save(onnx.load(str(cur)), str(dst))  # one self-contained file
    return chosen
