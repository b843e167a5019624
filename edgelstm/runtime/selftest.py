"""The bundle's self-test: a seeded input stream whose answer export recorded, replayed on the device.

Shapes cannot tell a step graph whose ``h_out`` and ``c_out`` are swapped (or otherwise mis-wired) from a
correct one. Export runs :func:`selftest_inputs` through the FP32 artefact (after parity proved it equals
PyTorch) and stores the result as :class:`~edgelstm.spec.SelfTest` in the manifest; ``Engine.load(verify=True)``
replays it on the chosen backend, precision and device through the same :meth:`Chain.run`.

How a run is judged:

* fp32 inference (onnxruntime fp32, OpenVINO with f32 inference): every stream's logits after the last step
  must be within ``tolerance`` (1e-3) per unit of logit scale (``max(1, max|expected|)``) of the recorded
  ones. The same float32 graph on another thread count, CPU or library version differs by reassociation
  only, orders of magnitude below that; a swapped state differs by the size of the state's effect.
* reduced precision (INT8 artefacts, OpenVINO bf16/f16 inference): values legitimately move, so the top-1
  class at every step of every stream is compared with the recorded FP32 one and at least ``min_agreement``
  (0.75) of them must agree, and every logit must be finite. With 2 x 6 = 12 steps, a model whose top-1
  agrees with FP32 on 98% of steps (what the INT8 gate asks) fails this with probability under 1e-4; it
  catches gross mis-wiring, not drift (that is the INT8 gate's job at export).
"""
from __future__ import annotations

import logging

import numpy as np

from edgelstm.errors import BundleError
from edgelstm.runtime.stream import Chain
from edgelstm.spec import Manifest, ModelKind, SelfTest

log = logging.getLogger(__name__)

SEED = 20_240_611
STEPS = 6
STREAMS = 2
FP32_TOLERANCE = 1e-3
MIN_AGREEMENT = 0.75
FULL_PRECISION = ("fp32", "f32")  # what a runner's info["inference_precision"] says when it runs float32


def selftest_inputs(manifest: Manifest, seed: int, streams: int, steps: int) -> np.ndarray:
    """The self-test's input stream, from the seed: uint8 (S, N, H, W, 3) frames in the graph's colour
    order (random pixels have no colour order), or float32 (S, N, F) standard-normal features."""
    rng = np.random.default_rng(seed)
    if manifest.model.kind == ModelKind.FRAMES and manifest.preprocess is not None:
        h, w = manifest.preprocess.size
        return rng.integers(0, 256, (streams, steps, h, w, 3), np.uint8)
    return rng.standard_normal((streams, steps, manifest.model.feature_size), np.float32)


def record(chain: Chain, *, seed: int = SEED, steps: int = STEPS, streams: int = STREAMS) -> SelfTest:
    """Run the self-test stream through ``chain`` (the FP32 artefact, at export) and keep its answer."""
    logits = chain.run(selftest_inputs(chain.manifest, seed, streams, steps))  # (S, N, K)
    if not np.isfinite(logits).all():
        raise BundleError("the FP32 model's self-test logits are not finite", expected="finite logits",
                          fix="check the checkpoint: its model overflows on random input")
    last = [tuple(float(f"{v:.6g}") for v in row) for row in logits[:, -1].tolist()]
    return SelfTest(seed, steps, streams, tuple(last), tuple(tuple(r) for r in logits.argmax(-1).tolist()),
                    FP32_TOLERANCE, MIN_AGREEMENT)


def run_selftest(chain: Chain, st: SelfTest, *, inference_precision: str, batch: int = 0) -> str:
    """Replay ``st`` on ``chain``; raise a :class:`BundleError` when the answer is wrong, else say what passed.

    ``batch``: a fixed batch the models were compiled for (NPU); the self-test's streams are repeated to fill it.
    """
    X = selftest_inputs(chain.manifest, st.seed, st.streams, st.steps)
    rows = np.arange(batch or st.streams) % st.streams  # which self-test stream each batch row carries
    got = chain.run(np.ascontiguousarray(X[rows]))  # (B, N, K)
    expected = np.asarray(st.logits, np.float64)[rows]  # (B, K)
    diff = np.abs(got[:, -1] - expected)
    worst = float(diff.max()) if np.isfinite(got).all() else float("inf")
    what = f"{chain.step_art.key} ({inference_precision or 'default'} inference)"
    if inference_precision in FULL_PRECISION:
        scale = max(1.0, float(np.abs(expected).max()))
        if not worst <= st.tolerance * scale:
            raise BundleError(
                f"self-test failed on {what}: max |logit difference| {worst:.3g} after {st.steps} steps of "
                f"{st.streams} seeded streams", expected=f"at most {st.tolerance * scale:.3g} (tolerance "
                f"{st.tolerance:g} x logit scale {scale:.3g}), the answer export recorded",
                fix="the model files compute something else than at export (state outputs swapped or mis-wired, "
                    "or a broken backend): re-export the bundle, or try another --backend/--device")
        return f"self-test passed: max |logit difference| {worst:.2g} (tolerance {st.tolerance * scale:.2g})"
    agree = float((got.argmax(-1) == np.asarray(st.argmax)[rows]).mean()) if np.isfinite(got).all() else 0.0
    if agree < st.min_agreement:
        raise BundleError(
            f"self-test failed on {what}: top-1 agrees with the FP32 answer on {100 * agree:.0f}% of "
            f"{st.steps} steps x {st.streams} streams (max |logit difference| {worst:.3g})",
            expected=f"at least {100 * st.min_agreement:.0f}% agreement",
            fix="the model files compute something else than at export (state outputs swapped or mis-wired): "
                "re-export the bundle, or choose --precision fp32")
    return f"self-test passed: top-1 agreement {100 * agree:.0f}% (max |logit difference| {worst:.2g})"
