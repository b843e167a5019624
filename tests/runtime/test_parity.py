"""A real exported bundle: engine per frame == stream_logits == the PyTorch checkpoint (fp32, 1e-4).

1e-4 is the export's fp32 parity tolerance: float32 graphs with fused kernels against torch's
float32 LSTM, over an 8-step clip. Torch is imported only here, in the test, never by the runtime.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

bundles = pytest.importorskip("tests.bundles")  # the export's helpers (torch); absent on a base install

from edgelstm.runtime.stream import BackendOptions  # noqa: E402
from edgelstm.runtime.engine import Engine  # noqa: E402
from edgelstm.measure.evaluate import evaluate_bundle  # noqa: E402
from edgelstm.runtime.clips import stream_logits  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("real")
    ckpt = bundles.make_checkpoint(tmp)
    return bundles.make_bundle(tmp, formats=("onnx", "openvino"), checkpoint=ckpt), ckpt


def _torch_logits(ckpt: Path):  # noqa: ANN202
    import torch

    from edgelstm.models.checkpoint import load_checkpoint

    model = load_checkpoint(ckpt).model.eval()

    def torch_checkpoint(X: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
        with torch.no_grad():
            return model.step_logits(torch.from_numpy(np.ascontiguousarray(X))).numpy()
    return torch_checkpoint


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_stream_logits_and_torch_agree(real: tuple[Path, Path], backend: str) -> None:
    bundle, ckpt = real
    X, _ = bundles.synthetic_clips(3, size=(32, 32), num_classes=4, split="test")  # (N, T, H, W, 3) RGB
    ref = _torch_logits(ckpt)(X, None)
    exact = BackendOptions(inference_precision="f32" if backend == "openvino" else "")
    offline = stream_logits(bundle, X, backend=backend, precision="fp32", options=exact)
    np.testing.assert_allclose(offline, ref, atol=TOL)
    eng = Engine.load(bundle, backend=backend, options=exact)
    for n, clip in enumerate(X):
        eng.reset()
        per_frame = np.stack([eng.step(np.ascontiguousarray(f[..., ::-1])).logits for f in clip])  # BGR in
        np.testing.assert_allclose(per_frame, ref[n], atol=TOL)
        np.testing.assert_array_equal(per_frame.argmax(-1), ref[n].argmax(-1))


def test_openvino_default_is_the_verified_bf16(real: tuple[Path, Path]) -> None:
    """Unset, OpenVINO runs what the export verified (bf16 here: argmax agreement 100%, no 1e-4 promise)."""
    bundle, ckpt = real
    art = [a for a in Engine.load(bundle).manifest.artifacts if a.backend == "openvino"][0]
    eng = Engine.load(bundle, backend="openvino")
    assert eng.inference_precision == art.inference_precision
    X, _ = bundles.synthetic_clips(3, size=(32, 32), num_classes=4, split="test")
    got, ref = stream_logits(bundle, X, engine=Engine.load(bundle, backend="openvino", streams=3)), \
        _torch_logits(ckpt)(X, None)
    assert np.abs(got - ref).max() < 0.02  # bf16 keeps ~3 significant digits
    assert (got.argmax(-1) == ref.argmax(-1)).mean() >= 0.9


def test_evaluate_bundle_with_torch_reference(real: tuple[Path, Path]) -> None:
    from edgelstm.data import load_dataset

    bundle, ckpt = real
    ds = load_dataset("synthetic", size=(32, 32), clip_len=8, counts=(10, 10, 20))
    # the intel-cpu profile pins OpenVINO to f32
    r = evaluate_bundle(bundle, ds, artifact="openvino:fp32", device="intel-cpu", checkpoint=_torch_logits(ckpt))
    assert r.inference_precision == "f32"
    assert r.clips == 20 and r.agreement is not None and r.agreement.reference == "torch"
    assert r.agreement.max_abs_diff < TOL and r.agreement.frame_argmax_agreement == 1.0
    assert r.accuracy == r.reference_accuracy
    assert set(r.accuracy_at_fraction) == {"10%", "25%", "50%", "100%"}


def test_tiny_model_runs_single_threaded(real: tuple[Path, Path]) -> None:
    """The cpu profile's auto threads: one for a sub-10-MMAC model; an explicit count is kept."""
    bundle, _ = real
    eng = Engine.load(bundle)
    assert eng.plan.options.threads == 1 and "faster single-threaded" in eng.info["choice"]
    assert Engine.load(bundle, threads=2).plan.options.threads == 2
