"""OpenVINO INT8: NNCF post-training quantization of the fp32 IR, calibrated on real clips.

The layer groups the gate may keep in float map to NNCF ignored scopes: ``lstm`` -> the
LSTMSequence/LSTMCell types, ``proj``/``head`` -> MatMul (the encoder projection and the classifier
are the IR's only MatMuls), ``stem`` -> the first Convolution by name. What actually ran in which
precision is read from the compiled model's execution graph, not assumed.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

LSTM_TYPES = ("LSTMSequence", "LSTMCell", "TensorIterator")


GROUPS = ("stem", "proj", "lstm", "head")


def effective_float(kept: Iterable[str]) -> tuple[str, ...]:
    """The groups that stay float when the gate asks for ``kept``: the projection and the head are
    both MatMuls, so NNCF's ignored scope keeps them together."""
    keep = set(kept)
    if keep & {"proj", "head"}:
        keep |= {"proj", "head"}
    return tuple(g for g in GROUPS if g in keep)


def ignored_scope(model: Any, keep_float: Iterable[str]) -> Any:
    import nncf

    keep = set(keep_float)
    present = {op.get_type_name() for op in model.get_ops()}
    types: list[str] = []
    names: list[str] = []
    if "lstm" in keep:
        types += [t for t in LSTM_TYPES if t in present]
    if keep & {"proj", "head"} and "MatMul" in present:
        types.append("MatMul")
    if "stem" in keep:
        convs = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
        names += convs[:1]
    return nncf.IgnoredScope(names=names, types=types, validate=False)


def quantize(src_xml: Path, dst_xml: Path, keep_float: Iterable[str], feeds: list[dict[str, np.ndarray]]) -> bool:
    """Quantize the IR at ``src_xml`` with NNCF; False when nothing in it was quantizable (no file written)."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(src_xml))
    scope = ignored_scope(model, keep_float)
    quantizable = {"Convolution", "GroupConvolution", "MatMul", *LSTM_TYPES}
    present = [op for op in model.get_ops() if op.get_type_name() in quantizable
               and op.get_type_name() not in scope.types and op.get_friendly_name() not in scope.names]
    if not present:
        return False
    with nncf_through_logging():
        qmodel = nncf.quantize(model, nncf.Dataset(feeds), subset_size=len(feeds), ignored_scope=scope,
                               preset=nncf.QuantizationPreset.PERFORMANCE)
    ov.save_model(qmodel, str(dst_xml), compress_to_fp16=False)
    return True


@contextmanager
def nncf_through_logging() -> Iterator[None]:
    """NNCF's INFO lines and rich progress bars through our logging: shown with ``-v`` only.

    NNCF gives its "nncf" logger its own stdout handler (propagate off) and draws progress bars on rich's
    global console. For the call, its records go to the root logger at the root's level (the CLI's
    ``-v``), and the console is quiet unless INFO is enabled; everything is restored afterwards.
    """
    import rich

    nncf_log = logging.getLogger("nncf")
    saved = nncf_log.handlers[:], nncf_log.propagate, nncf_log.level
    console = rich.get_console()
    quiet = console.quiet
    nncf_log.handlers, nncf_log.propagate = [], True
    nncf_log.setLevel(logging.NOTSET)  # the effective level is the root's: WARNING unless -v
    console.quiet = quiet or not nncf_log.isEnabledFor(logging.INFO)
    try:
        yield
    finally:
        nncf_log.handlers, nncf_log.propagate = saved[0], saved[1]
        nncf_log.setLevel(saved[2])
        console.quiet = quiet
