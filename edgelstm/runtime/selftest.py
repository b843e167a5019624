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
* reduced precision (INT8 artefacts, OpenVINO bf16/f16 inference): values legitimately move, and on the
  self-test's random input (far from any real frame, logits near-tied) even the top-1 class moves, by an
  amount that depends on the CPU's INT8 kernels. So the wiring is checked where it is exact: on the same
  backend's FP32 graphs at f32 (INT8 artefacts are quantized copies of them, with the same inputs and
  outputs, and the hashes prove nobody changed them since), and the reduced-precision chain itself must
  answer with finite logits. How far INT8 may drift from FP32 is the INT8 gate's question, on real clips.
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
    return SelfTest(seed, steps, streams, tuple(last), FP32_TOLERANCE)


def run_selftest(chain: Chain, st: SelfTest, *, batch: int = 0) -> str:
    """Replay ``st`` on ``chain`` (float32 inference); raise a :class:`BundleError` when the answer is wrong,
    else say what passed. ``batch``: a fixed batch the models were compiled for (NPU); the self-test's
    streams are repeated to fill it."""
    got, rows = _replay(chain, st, batch)
    expected = np.asarray(st.logits, np.float64)[rows]  # (B, K)
    worst = float(np.abs(got[:, -1] - expected).max()) if np.isfinite(got).all() else float("inf")
    scale = max(1.0, float(np.abs(expected).max()))
    if not worst <= st.tolerance * scale:
        raise BundleError(
            f"self-test failed on {chain.step_art.key}: max |logit difference| {worst:.3g} after {st.steps} steps "
            f"of {st.streams} seeded streams", expected=f"at most {st.tolerance * scale:.3g} (tolerance "
            f"{st.tolerance:g} x logit scale {scale:.3g}), the answer export recorded",
            fix="the model files compute something else than at export (state outputs swapped or mis-wired, "
                "or a broken backend): re-export the bundle, or try another --backend/--device")
    return f"self-test passed: max |logit difference| {worst:.2g} (tolerance {st.tolerance * scale:.2g})"


def run_finite(chain: Chain, st: SelfTest, *, batch: int = 0) -> None:
    """A reduced-precision chain must answer the self-test's stream with finite logits."""
    got, _ = _replay(chain, st, batch)
    if not np.isfinite(got).all():
        raise BundleError(f"the self-test's stream makes {chain.step_art.key} answer NaN or inf",
                          expected="finite logits", fix="choose --precision fp32, or re-quantize the bundle")


def _replay(chain: Chain, st: SelfTest, batch: int) -> tuple[np.ndarray, np.ndarray]:
    X = selftest_inputs(chain.manifest, st.seed, st.streams, st.steps)
    rows = np.arange(batch or st.streams) % st.streams  # which self-test stream each batch row carries
    return chain.run(np.ascontiguousarray(X[rows])), rows  # (B, N, K)
