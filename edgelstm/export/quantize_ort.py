"""onnxruntime INT8: static quantization for the convolutional encoder, dynamic for the LSTM and head.

onnxruntime quantizes an LSTM only in dynamic mode (DynamicQuantizeLSTM, weights must be
constants, hence ``quant_pre_process`` first); static QDQ leaves it in float. The convolutions get
static quantization with activations calibrated on real clips; :class:`OrtInt8Config` says how
(QDQ or QOperator, per-channel or not, U8/S8 activations and weights, which convolutions).
``benchmarks/int8_matrix.py`` measures every combination. Its finding on this CPU (AVX512-VNNI):
an INT8 stem costs more than the whole FP32 encoder (it quantizes the full-resolution input and
runs a 3-input-channel conv VNNI cannot fill), and int8 depthwise kernels lose to float ones; so
the default quantizes only the 1x1 convolutions and the projection (``ConvScope.DENSE``),
per-channel U8S8 QDQ. Even so INT8 is not faster than FP32 here (the report says so).
Dynamic mode's default would turn every Conv into ConvInteger, about 10x slower here, so dynamic
quantization is limited to LSTM/MatMul/Gemm nodes named here.
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DYNAMIC_OPS = ("LSTM", "MatMul", "Gemm")
ENCODER_ACTIVATIONS = ("Relu", "Clip", "AveragePool", "GlobalAveragePool", "MaxPool", "Flatten", "Add")

# Layer groups the gate can keep in float. depthwise: the grouped (depthwise) Convs; encoder: the
# other Convs after the stem (pointwise 1x1) and the activations between them.
GROUPS = ("stem", "depthwise", "encoder", "proj", "lstm", "head")


class ConvScope(StrEnum):
    ALL = "all"              # every Conv
    POINTWISE = "pointwise"  # the stem and the 1x1 convolutions; depthwise stays float
    STEM = "stem"            # only the stem
    DENSE = "dense"          # only the non-depthwise convs after the stem (the 1x1s); stem and depthwise float


class QFormat(StrEnum):
    QDQ = "qdq"              # QuantizeLinear/DequantizeLinear pairs, fused by onnxruntime at load
    QOPERATOR = "qoperator"  # QLinearConv etc. written into the file


@dataclass(frozen=True)
class OrtInt8Config:
    """How the encoder is quantized statically (the LSTM and head are always dynamic)."""

    format: QFormat = QFormat.QDQ
    per_channel: bool = True
    activations: str = "u8"   # u8 | s8
    weights: str = "s8"       # u8 | s8
    convs: ConvScope = ConvScope.DENSE

    @property
    def name(self) -> str:
        return (f"{self.format}/{'pc' if self.per_channel else 'pt'}/{self.activations}{self.weights}/"
                f"{self.convs}")

    def kept(self) -> tuple[str, ...]:
        """Groups this scope leaves in float."""
        return {ConvScope.ALL: (), ConvScope.POINTWISE: ("depthwise",),
                ConvScope.STEM: ("depthwise", "encoder"), ConvScope.DENSE: ("stem", "depthwise")}[self.convs]


DEFAULT = OrtInt8Config()


def effective_float(kept: Iterable[str], config: OrtInt8Config = DEFAULT) -> tuple[str, ...]:
    """The groups that stay float when the gate asks for ``kept``: those plus what ``config`` never quantizes."""
    keep = set(kept) | set(config.kept())
    return tuple(g for g in GROUPS if g in keep)


def groups(path: Path) -> dict[str, list[str]]:
    """Quantizable node names of an ONNX graph by layer group.

    stem: the first Conv; depthwise: grouped Convs; encoder: the other Convs and the activations
    between them; proj: the encoder's Gemm/MatMul; lstm: LSTM nodes; head: Gemm/MatMul after the
    LSTM. Graph order is topological, so "before the LSTM" is the encoder.
    """
    import onnx

    out: dict[str, list[str]] = {g: [] for g in GROUPS}
    lstm_seen = False
    for n in onnx.load(str(path)).graph.node:
        if n.op_type == "LSTM":
            lstm_seen = True
            out["lstm"].append(n.name)
        elif n.op_type == "Conv":
            group = next((a.i for a in n.attribute if a.name == "group"), 1)
            out["stem" if not out["stem"] else "depthwise" if group > 1 else "encoder"].append(n.name)
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
             *, config: OrtInt8Config = DEFAULT, dynamic_head: bool = True) -> dict[str, list[str]]:
    """Write an INT8 model to ``dst``; the layer groups in ``keep_float`` (and those ``config.convs``
    leaves out) stay float.

    Encoder groups (stem, depthwise, encoder, proj) are quantized statically as ``config`` says; lstm
    and head dynamically. Returns the groups with their node names as quantized (float groups emptied).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    qtype = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    with tempfile.TemporaryDirectory() as tmp:
        cur = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(cur), skip_symbolic_shape=True)
        keep = set(keep_float) | set(config.kept())
        chosen = {g: ([] if g in keep else names) for g, names in groups(cur).items()}
        static = chosen["stem"] + chosen["depthwise"] + chosen["encoder"] + chosen["proj"]
        dynamic = chosen["lstm"] + (chosen["head"] if dynamic_head else [])
        if static:
            if not feeds:
                raise ValueError("static quantization needs calibration feeds")
            out = Path(tmp) / "static.onnx"
            fmt = QuantFormat.QDQ if config.format == QFormat.QDQ else QuantFormat.QOperator
            quantize_static(str(cur), str(out), _Reader(feeds), quant_format=fmt,
                            nodes_to_quantize=static, per_channel=config.per_channel,
                            activation_type=qtype[config.activations], weight_type=qtype[config.weights],
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
