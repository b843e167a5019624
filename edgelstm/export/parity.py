"""Streaming equivalence: exported artefacts, run through the runtime's loader, against PyTorch.

The step (or encoder + step, or fused) model runs frame by frame with its state carried over a long
sequence and is compared with the PyTorch model over the whole sequence at once; the clip model runs
the same sequence in one call. Artefacts are opened with ``edgelstm.runtime.stream.open_model``,
the device's own loader, never a private one.
"""
from __future__ import annotations

import logging

import numpy as np

from edgelstm import spec
from edgelstm.runtime.stream import BackendOptions, open_model
from edgelstm.runtime.bundle import Bundle
from edgelstm.runtime.stream import open_chain
from edgelstm.spec import Backend, ModelKind, ParityResult, Precision, Role

log = logging.getLogger(__name__)

FP32_TOL = 1e-4   # max |logit difference| for fp32 artefacts (float reassociation only)
PARITY_FRAMES = 120


def run_clip(bundle: Bundle, backend: Backend, precision: Precision, X: np.ndarray,
             opts: BackendOptions = BackendOptions()) -> np.ndarray:
    runner = open_model(bundle, bundle.find(Role.CLIP, backend, precision), opts)
    return runner.run({spec.CLIP: np.ascontiguousarray(X)})[spec.CLIP_LOGITS]


def compare(key: str, reference: str, got: np.ndarray, ref: np.ndarray, tol: float) -> ParityResult:
    diff = float(np.abs(got - ref).max())
    agree = float((got.argmax(-1) == ref.argmax(-1)).mean())
    ok = bool(diff <= tol and agree == 1.0)
    return ParityResult(key, reference, int(np.prod(got.shape[:-1])), diff, agree, tol, ok)


def torch_reference(model: object, X_rgb: np.ndarray) -> np.ndarray:
    """The PyTorch model over whole sequences: (N, T, ...) RGB -> step logits (N, T, K)."""
    import torch

    with torch.no_grad():
        return model.step_logits(torch.from_numpy(X_rgb)).numpy()  # type: ignore[attr-defined]


def parity_sequence(manifest: spec.Manifest, *, streams: int = 2, frames: int = PARITY_FRAMES,
                    seed: int = 0) -> np.ndarray:
    """A deterministic (streams, frames, ...) RGB sequence: synthetic-action video for frame models."""
    if manifest.model.kind == ModelKind.FEATURES:
        rng = np.random.default_rng(seed)
        return rng.normal(0, 1, (streams, frames, manifest.model.feature_size)).astype(np.float32)
    from edgelstm.data.synthetic import stream

    size = manifest.data_options()["size"]
    out = np.empty((streams, frames, *size, 3), np.uint8)
    for s in range(streams):
        src = stream(size=size, seed=seed + s)
        for i in range(frames):
            out[s, i] = next(src)[0]
    return out


def check_artifacts(bundle: Bundle, backend: Backend, ref: np.ndarray, X_dev: np.ndarray, *,
                    precision: Precision = Precision.FP32, tol: float = FP32_TOL,
                    opts: BackendOptions = BackendOptions(), reference: str = "torch") -> list[ParityResult]:
    """Streaming and clip parity of one backend's artefacts against ``ref`` (N, T, K)."""
    chain = open_chain(bundle, backend, precision, opts)
    results = [compare(chain.step_art.key, reference, chain.run(X_dev), ref, tol)]
    clip_key = bundle.find(Role.CLIP, backend, precision).key
    results.append(compare(clip_key, reference, run_clip(bundle, backend, precision, X_dev, opts), ref, tol))
    for r in results:
        log.info("parity %s vs %s: max|diff| %.2e, argmax %.4f over %d steps (%s)", r.artifact, r.reference,
                 r.max_abs_diff, r.argmax_agreement, r.frames, "ok" if r.passed else "FAILED")
    return results
