"""A tiny hand-built bundle (onnx.helper, no torch) with a numpy reference, for runtime tests.

Encoder: uint8 (N, H, W, 3) -> tanh(flatten(frames / 255) @ W_enc) -> (N, F).
Step: one ONNX LSTM layer (layout 0) and a linear head; ``poison=True`` adds
sqrt(min(x[:, 0], 0)) to h_out, so a negative first feature makes that stream's state NaN.
Independent of export: it pins the runtime against a reference we compute by hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgelstm import spec
from edgelstm.quantreport import Int8Report
from edgelstm.fsutil import sha256_file

LABELS = ("a", "b", "c", "d", "e")


@dataclass(frozen=True)
class Toy:
    path: Path
    size: tuple[int, int]
    colour: spec.ColourOrder
    w_enc: np.ndarray   # (H*W*3, F)
    W: np.ndarray       # (4Hd, F) ONNX gate order i, o, f, c
    R: np.ndarray       # (4Hd, Hd)
    B: np.ndarray       # (8Hd,)
    w_out: np.ndarray   # (Hd, K)
    b_out: np.ndarray   # (K,)
    kind: spec.ModelKind

    def encode(self, frames_graph_order: np.ndarray) -> np.ndarray:
        x = frames_graph_order.reshape(len(frames_graph_order), -1).astype(np.float32) / 255.0
        return np.tanh(x @ self.w_enc)

    def step(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reference LSTM step in float64: x (N, F), h, c (N, Hd)."""
        x, h, c = (a.astype(np.float64) for a in (x, h, c))
        hd = h.shape[1]
        gates = x @ self.W.T + h @ self.R.T + self.B[: 4 * hd] + self.B[4 * hd:]
        i, o, f, g = (gates[:, k * hd:(k + 1) * hd] for k in range(4))
        sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
        c2 = sig(f) * c + sig(i) * np.tanh(g)
        h2 = sig(o) * np.tanh(c2)
        return h2 @ self.w_out + self.b_out, h2, c2

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """(T, ...) frames in graph order (or features) of one clip -> (T, K) reference logits."""
        x = self.encode(inputs) if self.kind == spec.ModelKind.FRAMES else inputs
        hd = self.R.shape[1]
        h = c = np.zeros((1, hd))
        out = []
        for t in range(len(x)):
            lg, h, c = self.step(x[t:t + 1], h, c)
            out.append(lg[0])
        return np.array(out)


def _vi(name: str, elem: int, shape: tuple[int | str, ...]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def _elem(t: spec.TensorSpec) -> int:
    return {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8}[t.dtype]


def _save(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], ins: tuple[spec.TensorSpec, ...],
          outs: tuple[spec.TensorSpec, ...], path: Path) -> None:
    graph = helper.make_graph(nodes, path.stem, [_vi(t.name, _elem(t), t.shape) for t in ins],
                              [_vi(t.name, _elem(t), t.shape) for t in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _encoder_nodes(p: str, hw3: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    return ([helper.make_node("Cast", [spec.FRAMES], [p + "f"], to=TensorProto.FLOAT),
             helper.make_node("Reshape", [p + "f", p + "shape"], [p + "flat"]),
             helper.make_node("MatMul", [p + "flat", p + "w"], [p + "mm"]),
             helper.make_node("Tanh", [p + "mm"], [p + "feat"])],
            [numpy_helper.from_array(np.array([-1, hw3], np.int64), p + "shape")])


def _step_nodes(x: str, poison: bool) -> list[onnx.NodeProto]:
    nodes = [helper.make_node("Unsqueeze", [x, "ax0"], ["x3"]),  # (1, N, F)
             helper.make_node("LSTM", ["x3", "W", "R", "B", "", spec.H_IN, spec.C_IN], ["Y", "Yh", "Yc"],
                              hidden_size=None),
             helper.make_node("Squeeze", ["Yh", "ax0"], ["h2"]),
             helper.make_node("MatMul", ["h2", "w_out"], ["lg"]),
             helper.make_node("Add", ["lg", "b_out"], [spec.LOGITS]),
             helper.make_node("Identity", ["Yc"], [spec.C_OUT])]
    if poison:  # NaN rows where x[:, 0] < 0
        nodes += [helper.make_node("Slice", [x, "s0", "s1", "s1"], ["x0"]),
                  helper.make_node("Min", ["x0", "zero"], ["neg"]),
                  helper.make_node("Sqrt", ["neg"], ["nan"]),
                  helper.make_node("Add", ["Yh", "nan"], [spec.H_OUT])]
    else:
        nodes.append(helper.make_node("Identity", ["Yh"], [spec.H_OUT]))
    return nodes


def make_toy_bundle(root: Path, *, kind: spec.ModelKind = spec.ModelKind.FRAMES, size: tuple[int, int] = (8, 8),
                    colour: spec.ColourOrder = spec.ColourOrder.RGB, feature_size: int = 6, hidden: int = 7,
                    train_fps: float = 15.0, max_gap_s: float = 0.5, every_frames: int = 0,
                    openvino: bool = False, fused: bool = False, poison: bool = False,
                    resize: spec.ResizeMode = spec.ResizeMode.AREA, seed: int = 0,
                    quantization: Int8Report | None = None) -> Toy:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    h, w = size
    k = len(LABELS)
    hw3 = h * w * 3
    toy = Toy(root, size, colour, (rng.normal(0, 2.0 / np.sqrt(hw3), (hw3, feature_size))).astype(np.float32),
              rng.normal(0, 0.8, (4 * hidden, feature_size)).astype(np.float32),
              rng.normal(0, 0.5, (4 * hidden, hidden)).astype(np.float32),
              rng.normal(0, 0.2, 8 * hidden).astype(np.float32),
              rng.normal(0, 1.0, (hidden, k)).astype(np.float32), rng.normal(0, 0.1, k).astype(np.float32), kind)
    info = spec.ModelInfo("toy", kind, k, feature_size, hidden, 1, 0, 0)
    step_inits = [numpy_helper.from_array(a, n) for a, n in
                  ((toy.W[None], "W"), (toy.R[None], "R"), (toy.B[None], "B"), (toy.w_out, "w_out"),
                   (toy.b_out, "b_out"), (np.array([0], np.int64), "ax0"), (np.array([0], np.int64), "s0"),
                   (np.array([1], np.int64), "s1"), (np.array(0.0, np.float32), "zero"))
                  if poison or n not in ("s0", "s1", "zero")]
    graphs: list[tuple[spec.Role, str, tuple, tuple, list, list]] = []
    step_in, step_out = spec.step_io(info)
    lstm = _step_nodes(spec.FEATURES, poison)
    for n in lstm:
        if n.op_type == "LSTM":
            n.ClearField("attribute")
            n.attribute.append(helper.make_attribute("hidden_size", hidden))
    graphs.append((spec.Role.STEP, "step", step_in, step_out, lstm, step_inits))
    if kind == spec.ModelKind.FRAMES:
        enc_in, enc_out = spec.encoder_io(size, feature_size)
        nodes, inits = _encoder_nodes("e_", hw3)
        nodes[-1].output[0] = spec.FEATURES
        graphs.append((spec.Role.ENCODER, "encoder", enc_in, enc_out, nodes,
                       inits + [numpy_helper.from_array(toy.w_enc / np.float32(255), "e_w")]))
        if fused:
            f_in, f_out = spec.step_io(info, size=size, fused=True)
            nodes, inits = _encoder_nodes("e_", hw3)
            fused_step = _step_nodes("e_feat", poison)
            for n in fused_step:
                if n.op_type == "LSTM":
                    n.ClearField("attribute")
                    n.attribute.append(helper.make_attribute("hidden_size", hidden))
            graphs.append((spec.Role.FUSED, "fused", f_in, f_out, nodes + fused_step,
                           inits + [numpy_helper.from_array(toy.w_enc / np.float32(255), "e_w")] + step_inits))
    arts = []
    for role, name, ins, outs, nodes, inits in graphs:
        path = root / f"{name}.onnx"
        _save(nodes, inits, ins, outs, path)
        arts.append(spec.Artifact(role, spec.Backend.ONNXRUNTIME, spec.Precision.FP32,
                                  (spec.FileHash(path.name, sha256_file(path), path.stat().st_size),), ins, outs))
        if openvino:
            import openvino as ov

            xml = root / "openvino" / f"{name}.xml"
            xml.parent.mkdir(exist_ok=True)
            ov.save_model(ov.Core().read_model(str(path)), str(xml), compress_to_fp16=False)
            files = tuple(spec.FileHash(str(f.relative_to(root)), sha256_file(f), f.stat().st_size)
                          for f in (xml, xml.with_suffix(".bin")))
            arts.append(spec.Artifact(role, spec.Backend.OPENVINO, spec.Precision.FP32, files, ins, outs,
                                      inference_precision="f32"))
    pre = (spec.Preprocess(size, colour, (0.5,) * 3, (0.25,) * 3, resize=resize)
           if kind == spec.ModelKind.FRAMES else None)
    manifest = spec.Manifest(spec.FORMAT_VERSION, info, LABELS, pre,
                             spec.Temporal(16, 1, train_fps, spec.ResetPolicy(max_gap_s, True, every_frames)),
                             spec.state_specs(1, hidden), tuple(arts), "0" * 64, (), spec.Versions("test"),
                             quantization=quantization)
    (root / spec.MANIFEST_NAME).write_text(manifest.to_json())
    return toy


def int8_report(ratios: dict[str, dict[int, float]], *, passed: bool = True) -> Int8Report:
    """A typed INT8 report as export writes it: per backend, the INT8/FP32 latency ratio by batch."""
    from edgelstm.quantreport import (BackendReport, GateData, GateSettings, Int8Report, PrecisionFacts, Trial,
                                      clips_needed)

    def facts(ms: float) -> PrecisionFacts:
        return PrecisionFacts(bytes=1000, latency_ms=ms, latency_ms_by_batch={"1": ms}, graphs={})

    backends = {}
    for b, by_batch in ratios.items():
        trial = Trial(b, (), 0.9, 0.9, 1.0, 1.0, 1.0, 1.0, passed, 0.0, clips=200, points_per_clip=0.5)
        backends[b] = BackendReport(facts(1.0), facts(by_batch[1]), by_batch[1],
                                    {str(k): v for k, v in by_batch.items()}, by_batch[1] <= 1.0,
                                    next((k for k, v in by_batch.items() if v <= 1.0), None), trial)
    trials = tuple(r.chosen for r in backends.values())
    return Int8Report(GateSettings(1.0, 0.98, clips_needed(1.0, 0.98)), GateData("synthetic", "test", 200, 64, 1.0),
                      trials, backends)


def add_selftest(toy: Toy) -> None:
    """Record the toy's self-test as export does (its FP32 ONNX chain) and write it into the manifest."""
    import dataclasses

    from edgelstm.runtime.bundle import load_bundle
    from edgelstm.runtime.selftest import record
    from edgelstm.runtime.stream import open_chain

    b = load_bundle(toy.path)
    st = record(open_chain(b, spec.Backend.ONNXRUNTIME, spec.Precision.FP32))
    (toy.path / spec.MANIFEST_NAME).write_text(dataclasses.replace(b.manifest, selftest=st).to_json())


def swap_state_outputs(root: Path, name: str = "step") -> None:
    """Mis-wire ``name``.onnx: its h_out carries the new cell state and c_out the new hidden state (same
    shapes, so no shape check can see it), then re-enter the file's hash and size in the manifest."""
    import json

    path = root / f"{name}.onnx"
    model = onnx.load(str(path))
    for node in model.graph.node:
        for i, out in enumerate(node.output):
            if out in (spec.H_OUT, spec.C_OUT):
                node.output[i] = spec.C_OUT if out == spec.H_OUT else spec.H_OUT
    onnx.save(model, str(path))
    data = json.loads((root / spec.MANIFEST_NAME).read_text())
    for art in data["artifacts"]:
        for f in art["files"]:
            if f["path"] == path.name:
                f["sha256"], f["bytes"] = sha256_file(path), path.stat().st_size
    (root / spec.MANIFEST_NAME).write_text(json.dumps(data, indent=2))
