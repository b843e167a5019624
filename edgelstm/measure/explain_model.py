"""Open a bundle or a checkpoint for ``edgelstm explain``: its LSTM as numpy reference layers
(:mod:`edgelstm.runtime.lstm_cell`), and what comes before and after it.

A bundle's LSTM weights are the W, R and B of the ONNX ``LSTM`` nodes in its FP32 step graph (the fused
graph when the bundle has no separate encoder), read with the ``onnx`` package. What runs before the
first LSTM (the encoder graph, a feature model's standardisation, the reshapes) and after the last one
(the head) is cut out of the same graph and run with onnxruntime, so only the LSTM is re-implemented.
A checkpoint's come from its ``nn.LSTM`` and ``head`` (loaded with ``weights_only=True``).

Each :class:`CellModel` also carries a ``reference``: the model itself (the bundle's step graph, or torch)
stepped over the same inputs, so the explanation can prove that the numpy cell reproduces it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm import spec
from edgelstm.errors import BundleError, EdgeLSTMError, UsageError
from edgelstm.runtime.lstm_cell import LSTMWeights
from edgelstm.spec import ColourOrder, ModelKind, Preprocess, Temporal

Transform = Callable[[np.ndarray], np.ndarray]
# step inputs (T, ...), resets (T,) -> per-step logits (T, K), h and c (T, L, H), from the model itself
Reference = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
ENCODE_BATCH = 32


@dataclass(frozen=True)
class CellModel:
    """A streaming model opened for explaining. Inputs flow ``encode`` -> ``lstm_input`` -> ``layers`` -> ``head``."""

    name: str                           # the bundle folder or checkpoint file
    runs: str                           # what the non-LSTM parts run on, in words
    kind: ModelKind
    labels: tuple[str, ...]
    preprocess: Preprocess | None       # frame models: the size, colour order and resize ``encode`` takes
    temporal: Temporal
    layers: tuple[LSTMWeights, ...]
    encode: Transform      # (N, H, W, 3) uint8 frames (preprocess's colour order) or (N, F) -> (N, ...) step inputs
    lstm_input: Transform  # step inputs (N, ...) -> (N, F) the first LSTM layer's input
    head: Transform        # (N, hidden) the top layer's h -> (N, K) logits
    reference: Reference


def open_model(target: str | Path) -> CellModel:
    """A bundle folder or a ``.pt`` checkpoint, opened for explaining."""
    path = Path(target)
    if path.is_dir() or not path.suffix:
        return bundle_model(path)
    return checkpoint_model(path)


# --- bundles ----------------------------------------------------------------------------------
def bundle_model(path: Path) -> CellModel:
    from edgelstm.runtime.bundle import load_bundle
    from edgelstm.runtime.stream import Chain, open_chain

    onnx = _import_onnx()
    bundle = load_bundle(path)
    m = bundle.manifest
    _refuse_motion(m.model.carries_features, m.model.name, path)
    chain = open_chain(bundle, spec.Backend.ONNXRUNTIME, spec.Precision.FP32)  # split when it can, else fused
    file = bundle.file(chain.step_art)
    proto = onnx.load(str(file))
    nodes = lstm_nodes(proto, file)
    layers = tuple(read_layer(proto, n, file) for n in nodes)
    pre = _subgraph(proto, [chain.first_input], nodes[0].input[0], file)
    head_from, rank = head_input(proto, nodes[-1], file)
    head = _subgraph(proto, [head_from], spec.LOGITS, file)
    step_only = Chain(m, chain.step_art, chain.step_runner)  # the step (or fused) graph alone, as the reference
    width = layers[0].input_size

    def encode(x: np.ndarray) -> np.ndarray:
        if chain.encoder is None:
            return x
        return np.concatenate([chain.encoder.run({spec.FRAMES: np.ascontiguousarray(x[i:i + ENCODE_BATCH])})
                               [spec.FEATURES] for i in range(0, len(x), ENCODE_BATCH)])

    def lstm_input(x: np.ndarray) -> np.ndarray:
        return np.concatenate([pre(np.ascontiguousarray(x[i:i + ENCODE_BATCH])).reshape(-1, width)
                               for i in range(0, len(x), ENCODE_BATCH)])

    def reference(x: np.ndarray, resets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits, hs, cs, state = [], [], [], step_only.zero_state(1)
        for t in range(len(x)):
            if resets[t]:
                state = step_only.zero_state(1)
            out = step_only.step(np.ascontiguousarray(x[t:t + 1]), state)
            state = out.state
            logits.append(out.logits[0])
            hs.append(state[spec.H_IN][:, 0])
            cs.append(state[spec.C_IN][:, 0])
        return np.array(logits), np.array(hs), np.array(cs)

    return CellModel(str(path), f"{file.name} on onnxruntime (LSTM on numpy)", m.model.kind, m.labels,
                     m.preprocess, m.temporal, layers, encode, lstm_input,
                     lambda h: head(np.ascontiguousarray(h.reshape((1,) * (rank - 2) + h.shape), np.float32)),
                     reference)


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise EdgeLSTMError("explain reads a bundle's LSTM weights with the onnx package, which is not installed",
                            expected="onnx (part of edgelstm's train extra)",
                            fix="pip install 'edgelstm[train]' (or pip install onnx), or explain the checkpoint "
                                "the bundle came from") from None
    return onnx


def lstm_nodes(proto: Any, file: Path) -> list[Any]:
    """The graph's ONNX LSTM nodes in order (one per layer), or a BundleError saying what it has instead."""
    nodes = [n for n in proto.graph.node if n.op_type == "LSTM"]
    if not nodes:
        ops = sorted({n.op_type for n in proto.graph.node})
        raise BundleError(f"the step graph has no LSTM node (its ops: {', '.join(ops) or 'none'})",
                          expected="a step graph with ONNX LSTM nodes, as `edgelstm export` writes for a causal "
                                   "LSTM model", path=file,
                          fix="explain a bundle exported from an LSTM student (`edgelstm export CKPT`), or the "
                              "checkpoint itself")
    return nodes


def head_input(proto: Any, node: Any, file: Path) -> tuple[str, int]:
    """Which output of the last LSTM node the logits are computed from: its Y (T, 1, N, H), rank 4, or its
    Y_h (1, N, H), rank 3 (for one step they hold the same h)."""
    producer = {o: n for n in proto.graph.node for o in n.output if o}
    need, seen = [spec.LOGITS], set()
    while need:
        name = need.pop()
        if name not in seen:
            seen.add(name)
            n = producer.get(name)
            if n is not None and n is not node:
                need.extend(i for i in n.input if i)
    used = [(name, rank) for name, rank in zip(node.output, (4, 3, 3)) if name and name in seen]
    if len(used) != 1 or used[0][0] == node.output[2]:
        raise BundleError(f"the logits are computed from {[u for u, _ in used] or 'none'} of the last LSTM's outputs "
                          f"{list(node.output)}", path=file, expected="a head over its hidden state (Y or Y_h) alone",
                          fix="explain the checkpoint the bundle came from")
    return used[0]


_DEFAULTS = {"direction": b"forward", "layout": 0, "input_forget": 0}


def read_layer(proto: Any, node: Any, file: Path) -> LSTMWeights:
    """One LSTM node's weights, refusing what the reference cell does not compute (another direction or
    layout, coupled gates, clipping, other activations, sequence lengths)."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    odd = [f"{k}={attrs[k]!r}" for k in ("direction", "layout", "input_forget", "clip", "activations")
           if k in attrs and attrs[k] != _DEFAULTS.get(k)
           and not (k == "activations" and [bytes(a).lower() for a in attrs[k]] == [b"sigmoid", b"tanh", b"tanh"])]
    inputs = list(node.input) + [""] * (8 - len(node.input))
    if inputs[4]:
        odd.append("sequence_lens")
    if odd:
        raise BundleError(f"LSTM node '{node.name}' has {', '.join(odd)}", path=file,
                          expected="a forward, time-major LSTM with the default activations, as `edgelstm export` "
                                   "writes", fix="explain the checkpoint the bundle came from")
    consts = _constants(proto)
    missing = [n for n in inputs[1:3] + [inputs[3], inputs[7]] if n and n not in consts]
    if missing:
        raise BundleError(f"LSTM node '{node.name}' takes its weights {missing} from other nodes", path=file,
                          expected="W, R, B (and P) as initializers or constants",
                          fix="re-export the bundle with `edgelstm export` (constant folding on)")
    return LSTMWeights.from_onnx(consts[inputs[1]], consts[inputs[2]], consts.get(inputs[3]), consts.get(inputs[7]))


def _constants(proto: Any) -> dict[str, np.ndarray]:
    from onnx import helper, numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(helper.get_attribute_value(n.attribute[0]))
    return out


def _subgraph(proto: Any, inputs: list[str], output: str, file: Path) -> Transform:
    """The part of ``proto`` from ``inputs`` to ``output``, as a function run on onnxruntime (one input)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, shape_inference
    from onnx.utils import Extractor

    try:
        typed = shape_inference.infer_shapes(proto)  # the extractor needs a type for each cut
        known = {v.name for v in (*typed.graph.value_info, *typed.graph.input, *typed.graph.output)}
        typed.graph.value_info.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                                      for n in [*inputs, output] if n not in known)
        part = Extractor(typed).extract_model(inputs, [output])
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1  # small cuts run once per step: threads would only spin against numpy's
        session = ort.InferenceSession(part.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnx and onnxruntime raise their own types
        raise BundleError(f"cannot cut the graph between {inputs} and '{output}' ({type(e).__name__}: "
                          f"{str(e)[:160]})", path=file, expected="an LSTM between the graph's input and its logits",
                          fix="explain the checkpoint the bundle came from") from None
    names = [i.name for i in session.get_inputs()]
    if names != inputs:
        raise BundleError(f"the graph between {inputs} and '{output}' also needs {sorted(set(names) - set(inputs))}",
                          path=file, expected="logits computed from the last LSTM's output alone",
                          fix="explain the checkpoint the bundle came from")
    return lambda x: np.asarray(session.run([output], {inputs[0]: x})[0])


# --- checkpoints ------------------------------------------------------------------------------
def _refuse_motion(carries: bool, name: str, path: Path) -> None:
    if carries:  # its LSTM's input is a correlation with the previous map, not this frame's features
        raise UsageError(f"model '{name}' is a motion model: its LSTM reads a correlation of two frames' maps, which "
                         "explain's one-frame input attribution does not cover", path=path,
                         expected="a student whose LSTM reads one frame's features (student, student_tiny, lstm)",
                         fix="explain a plain student; for a motion model, profile or evaluate it instead")


def checkpoint_model(path: Path) -> CellModel:
    import torch

    from edgelstm.export.manifest import temporal
    from edgelstm.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    model: Any = ckpt.model.eval()
    _refuse_motion(bool(getattr(model, "carries_features", False)), ckpt.name, path)
    lstm = getattr(model, "lstm", None)
    if not (getattr(model, "causal", False) and isinstance(lstm, torch.nn.LSTM) and hasattr(model, "head")
            and not lstm.bidirectional and lstm.batch_first and not lstm.proj_size):
        raise UsageError(f"model '{ckpt.name}' is not a causal LSTM (a bidirectional teacher, a pooling model, or "
                         "an LSTM with projections)", expected="a causal LSTM student (student, student_tiny, lstm)",
                         fix="explain a distilled student (`edgelstm distill`)", path=path)
    layers = tuple(LSTMWeights.from_torch(*(getattr(lstm, f"{p}_l{k}").detach().numpy()
                                            for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
                   for k in range(lstm.num_layers))
    frames = getattr(model, "encoder", None) is not None
    pre = None
    if frames:
        pre = Preprocess(ckpt.data.size or spec.DEFAULT_SIZE, ColourOrder.RGB, tuple(model.norm.mean),
                         tuple(model.norm.std), resize=ckpt.data.resize)

    def torch_fn(fn: Callable[[Any], Any]) -> Transform:
        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                t = torch.from_numpy(np.ascontiguousarray(x))
                return np.asarray(fn(t if t.dtype == torch.uint8 else t.float()).numpy())
        return run

    def reference(x: np.ndarray, resets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        feats, logits, hs, cs, state = torch_fn(model.standardize if not frames else lambda t: t)(x), [], [], [], None
        for t in range(len(feats)):
            state = None if resets[t] else state
            with torch.no_grad():
                out, state = lstm(torch.from_numpy(feats[t:t + 1, None]).float(), state)
                logits.append(model.head(out[:, 0])[0].numpy())
            hs.append(state[0][:, 0].numpy())
            cs.append(state[1][:, 0].numpy())
        return np.array(logits), np.array(hs), np.array(cs)

    return CellModel(str(path), "torch (LSTM on numpy)", ModelKind.FRAMES if frames else ModelKind.FEATURES,
                     tuple(ckpt.classes), pre, temporal(ckpt.data), layers,
                     torch_fn(model.encode_frames) if frames else (lambda x: x),
                     (lambda x: x) if frames else torch_fn(model.standardize), torch_fn(model.head), reference)
