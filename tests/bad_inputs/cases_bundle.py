"""Bad bundles and manifests: `edgelstm demo BUNDLE` on missing, truncated, modified or mismatched files."""
from __future__ import annotations

import shutil
from pathlib import Path


from edgelstm import spec
from tests.bad_inputs.harness import Outcome, World, _artifact, _demo, _edit_manifest, _rehash, case, run_lib


# === bundles (edgelstm demo BUNDLE) =========================================================
@case("bundle-missing", "bundle", "a bundle folder that does not exist", "edgelstm demo nowhere/", 1,
      "no such bundle folder")
def _(w: World, tmp: Path) -> Outcome:
    return _demo(tmp / "nowhere")


@case("bundle-is-a-file", "bundle", "a model file instead of the bundle folder", "edgelstm demo step-fp32.onnx", 1,
      "is a file, not a bundle folder")
def _(w: World, tmp: Path) -> Outcome:
    return _demo(w.bundle / "step-fp32.onnx")


@case("manifest-missing", "bundle", "a folder without manifest.json", "edgelstm demo empty/", 1,
      "no manifest.json here")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "empty").mkdir()
    return _demo(tmp / "empty")


@case("manifest-not-json", "bundle", "a manifest.json cut short", "edgelstm demo BUNDLE", 1,
      "the manifest is not valid JSON")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    text = (b / spec.MANIFEST_NAME).read_text()
    (b / spec.MANIFEST_NAME).write_text(text[: len(text) // 2])
    return _demo(b)


@case("model-missing", "bundle", "a model file missing from the bundle", "edgelstm demo BUNDLE", 1,
      "step-fp32.onnx: is missing from the bundle")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    (b / "step-fp32.onnx").unlink()
    return _demo(b)


@case("model-empty", "bundle", "an empty (0-byte) model file", "edgelstm demo BUNDLE", 1,
      "step-fp32.onnx: is 0 bytes but the manifest says")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    (b / "step-fp32.onnx").write_bytes(b"")
    return _demo(b)


@case("model-truncated", "bundle", "a truncated model file (an interrupted copy)", "edgelstm demo BUNDLE", 1,
      "encoder-fp32.onnx: is 1000 bytes but the manifest says")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    (b / "encoder-fp32.onnx").write_bytes((b / "encoder-fp32.onnx").read_bytes()[:1000])
    return _demo(b)


@case("model-modified", "bundle", "a model whose SHA-256 no longer matches the manifest (same size)",
      "edgelstm demo BUNDLE", 1, "does not match the manifest's")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    data = bytearray((b / "step-fp32.onnx").read_bytes())
    data[-40] ^= 0x01
    (b / "step-fp32.onnx").write_bytes(bytes(data))
    return _demo(b)


@case("model-not-onnx", "bundle", "a file that is not ONNX (its hash re-entered in the manifest)",
      "edgelstm demo BUNDLE", 1, "onnxruntime cannot load the model")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    (b / "step-fp32.onnx").write_text("<html>404 not found</html>\n")
    _rehash(b, "step")
    return _demo(b)


@case("model-empty-hashed", "bundle", "an empty model file whose hash and size were re-entered",
      "edgelstm demo BUNDLE", 1, "onnxruntime cannot load the model")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    (b / "encoder-fp32.onnx").write_bytes(b"")
    _rehash(b, "encoder")
    return _demo(b)


@case("model-io-mismatch", "bundle", "a model whose inputs disagree with its manifest (step file is an encoder)",
      "edgelstm demo BUNDLE", 1, "has no input 'features'")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    shutil.copy(b / "encoder-fp32.onnx", b / "step-fp32.onnx")
    _rehash(b, "step")
    return _demo(b)


@case("manifest-field-missing", "bundle", "a manifest with a missing field", "edgelstm demo BUNDLE", 1,
      "missing field 'manifest.temporal'")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    _edit_manifest(b, lambda d: d.pop("temporal"))
    return _demo(b)


@case("manifest-field-unknown", "bundle", "a manifest with an unknown field", "edgelstm demo BUNDLE", 1,
      "unknown field 'manifest.model.colour'")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    _edit_manifest(b, lambda d: d["model"].update(colour="rgb"))
    return _demo(b)


@case("manifest-field-type", "bundle", "a manifest field of the wrong type", "edgelstm demo BUNDLE", 1,
      "field 'manifest.model.num_classes' is \"four\" (str)")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    _edit_manifest(b, lambda d: d["model"].update(num_classes="four"))
    return _demo(b)


@case("manifest-newer", "bundle", "a manifest from a newer format version", "edgelstm demo BUNDLE", 1,
      f"manifest format_version {spec.FORMAT_VERSION + 1} is newer than this edgelstm")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    _edit_manifest(b, lambda d: d.update(format_version=spec.FORMAT_VERSION + 1))
    return _demo(b)


@case("manifest-path-escape", "bundle", "a manifest naming a file outside the bundle", "edgelstm demo BUNDLE", 1,
      "names a file outside the bundle ('../good.avi')")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    _edit_manifest(b, lambda d: _artifact(d, "step")["files"][0].update(path="../good.avi"))
    return _demo(b)


# --- manifest values no model can have, mis-wired models, engine misuse (issue 10 §3) ---------
@case("manifest-clip-len-zero", "bundle", "a manifest whose clip length is 0", "edgelstm demo BUNDLE", 1,
      "field 'manifest.temporal.clip_len' is 0; expected >= 1")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    _edit_manifest(b, lambda d: d["temporal"].update(clip_len=0))
    return _demo(b)


@case("manifest-frame-huge", "bundle", "a manifest whose frame size is 100000x100000", "edgelstm demo BUNDLE", 1,
      "field 'manifest.preprocess.size[0]' is 100000; expected 1..4096")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    _edit_manifest(b, lambda d: d["preprocess"].update(size=[100000, 100000]))
    return _demo(b)


@case("manifest-std-zero", "bundle", "a manifest whose normalisation std is 0", "edgelstm demo BUNDLE", 1,
      "field 'manifest.preprocess.std[2]' is 0.0; expected a finite number > 0")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    _edit_manifest(b, lambda d: d["preprocess"]["std"].__setitem__(2, 0.0))
    return _demo(b)


@case("manifest-max-gap-zero", "bundle", "a manifest whose reset gap is 0 s", "edgelstm demo BUNDLE", 1,
      "field 'manifest.temporal.reset.max_gap_s' is 0.0; expected a finite number > 0")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    _edit_manifest(b, lambda d: d["temporal"]["reset"].update(max_gap_s=0))
    return _demo(b)


@case("manifest-labels-count", "bundle", "a manifest with one label fewer than the model's classes",
      "edgelstm demo BUNDLE", 1, "field 'manifest.labels' is '3 labels'; expected one label per class")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    _edit_manifest(b, lambda d: d["labels"].pop())
    return _demo(b)


@case("model-state-swapped", "bundle", "a step model whose h_out and c_out are swapped (hashes re-entered)",
      "edgelstm demo BUNDLE", 1, "self-test failed on step:onnxruntime:fp32")
def _(w: World, tmp: Path) -> Outcome:
    import onnx

    b = w.copy_bundle(tmp / "b")
    model = onnx.load(str(b / "step-fp32.onnx"))
    swap = {spec.H_OUT: spec.C_OUT, spec.C_OUT: spec.H_OUT}
    for node in model.graph.node:
        for i, out in enumerate(node.output):
            node.output[i] = swap.get(out, out)
    onnx.save(model, str(b / "step-fp32.onnx"))
    _rehash(b, "step")
    return _demo(b)


@case("engine-closed", "bundle", "stepping an engine after close() (or its `with` block)", "engine.step(frame)", 2,
      "the engine is closed")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    from edgelstm.runtime.engine import Engine

    with Engine.load(w.bundle) as eng:
        pass
    return run_lib(lambda: eng.step(np.zeros((32, 32, 3), np.uint8)))


@case("engine-stream-type", "bundle", "a stream id that is not an integer", "engine.step(frame, stream=\"1\")", 2,
      "stream '1' (str); expected an int in 0..0")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    return run_lib(lambda: w.engine().step(np.zeros((32, 32, 3), np.uint8), stream="1"))  # type: ignore[arg-type]


@case("engine-buffers-huge", "bundle", "more streams than this machine's memory can buffer",
      "Engine.load(BUNDLE, streams=10**9)", 2, "1000000000 stream(s) of 32x32 frames need")
def _(w: World, tmp: Path) -> Outcome:
    from edgelstm.runtime.engine import Engine

    return run_lib(lambda: Engine.load(w.bundle, streams=10**9))
