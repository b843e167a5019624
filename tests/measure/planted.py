"""Feature-model bundles with hand-set LSTM weights, built with onnx.helper (no torch, no training), for
``edgelstm explain`` tests whose answer is planted in the weights.

``gate_weights`` writes a layer gate by gate (named i, f, c for the candidate, o, as in the equations);
``make_planted_bundle`` wraps it in a real bundle: a step graph (Unsqueeze -> LSTM -> Squeeze -> MatMul + Add)
and a manifest from ``edgelstm.spec``, so explain reads it as it reads an exported bundle.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgelstm import spec
from edgelstm.fsutil import sha256_file
from edgelstm.runtime.lstm_cell import ONNX_GATES, LSTMWeights

Gate = tuple[np.ndarray, np.ndarray, np.ndarray]  # (W (H, F), R (H, H), b (H,))


def gate_weights(gates: dict[str, Gate]) -> LSTMWeights:
    """One layer from its gates by name ("i", "f", "c", "o"), stacked in ONNX order i, o, f, c."""
    blocks = [gates[g] for g in ONNX_GATES]
    return LSTMWeights(*(np.concatenate([b[k] for b in blocks]).astype(np.float32) for k in range(3)))


def make_planted_bundle(root: Path, w: LSTMWeights, head_w: np.ndarray, head_b: np.ndarray,
                        labels: tuple[str, ...], *, lstm: bool = True) -> Path:
    """A feature-model bundle whose step graph is ``w`` and a linear head; ``lstm=False``: no LSTM at all
    (logits from the features, the state passed through)."""
    root.mkdir(parents=True, exist_ok=True)
    hd, f, k = w.hidden, w.input_size, len(labels)
    info = spec.ModelInfo("planted", spec.ModelKind.FEATURES, k, f, hd, 1, 0, 0)
    ins, outs = spec.step_io(info)
    inits = [numpy_helper.from_array(np.asarray(a, np.float32), n) for a, n in
             ((w.W[None], "W"), (w.R[None], "R"), (np.concatenate([w.b, np.zeros_like(w.b)])[None], "B"),
              (head_w, "head_w"), (head_b, "head_b"))] + [numpy_helper.from_array(np.array([0], np.int64), "ax0")]
    if lstm:
        nodes = [helper.make_node("Unsqueeze", [spec.FEATURES, "ax0"], ["x3"]),  # (1, N, F)
                 helper.make_node("LSTM", ["x3", "W", "R", "B", "", spec.H_IN, spec.C_IN], ["Y", "Yh", "Yc"],
                                  hidden_size=hd),
                 helper.make_node("Squeeze", ["Yh", "ax0"], ["h2"]),
                 helper.make_node("MatMul", ["h2", "head_w"], ["mm"]),
                 helper.make_node("Add", ["mm", "head_b"], [spec.LOGITS]),
                 helper.make_node("Identity", ["Yh"], [spec.H_OUT]), helper.make_node("Identity", ["Yc"], [spec.C_OUT])]
    else:
        inits.append(numpy_helper.from_array(np.ones((f, k), np.float32), "feat_w"))
        nodes = [helper.make_node("MatMul", [spec.FEATURES, "feat_w"], [spec.LOGITS]),
                 helper.make_node("Identity", [spec.H_IN], [spec.H_OUT]),
                 helper.make_node("Identity", [spec.C_IN], [spec.C_OUT])]
    vi = lambda t: helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.shape))  # noqa: E731
    graph = helper.make_graph(nodes, "step", [vi(t) for t in ins], [vi(t) for t in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path = root / "step-fp32.onnx"
    onnx.save(model, str(path))
    art = spec.Artifact(spec.Role.STEP, spec.Backend.ONNXRUNTIME, spec.Precision.FP32,
                        (spec.FileHash(path.name, sha256_file(path), path.stat().st_size),), ins, outs)
    manifest = spec.Manifest(spec.FORMAT_VERSION, info, labels, None,
                             spec.Temporal(8, 1, 15.0, spec.ResetPolicy(1.0)), spec.state_specs(1, hd), (art,),
                             "0" * 64, (), spec.Versions("test"))
    (root / spec.MANIFEST_NAME).write_text(manifest.to_json())
    return root
