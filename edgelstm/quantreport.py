"""The INT8 report in the manifest: what the accuracy gate tried, what it chose, and whether INT8 pays.

Export writes it (``edgelstm.export.quantize``), the runtime's plan reads it to choose a precision
(``edgelstm.runtime.plan``), and the profile and eval show it: one typed record, read by field,
strict like the rest of the manifest (``Manifest.quantization``). Standard library only.

The JSON layout is the one 0.1 bundles were written with, so a bundle exported before this type
existed still loads; fields added since have defaults.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

MIN_FINAL_AGREEMENT = 0.98  # the gate's default: clips whose final decision INT8 and FP32 share


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (what ``successes`` of ``n`` clips says about the rate)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def clips_needed(max_drop_points: float, min_final_agreement: float) -> int:
    """The fewest held-out clips for which one flipped clip moves accuracy by at most ``max_drop_points``
    and final-decision agreement by at most ``1 - min_final_agreement``: below it the gate cannot tell a
    single clip's rounding from a real loss."""
    by_drop = math.ceil(100.0 / max_drop_points - 1e-9)
    by_agreement = math.ceil(1.0 / (1.0 - min_final_agreement) - 1e-9) if min_final_agreement < 1 else by_drop
    return max(by_drop, by_agreement)


@dataclass(frozen=True)
class GateSettings:
    max_drop_points: float
    min_final_agreement: float = MIN_FINAL_AGREEMENT
    min_clips: int = 0               # clips_needed(...) when the gate ran; 0 in 0.1 bundles


@dataclass(frozen=True)
class GateData:
    source: str                      # the data the gate used ("synthetic", a path)
    split: str                       # the held-out split ("test", else "val")
    eval_clips: int
    calib_clips: int
    max_drop: float


@dataclass(frozen=True)
class Trial:
    """One quantization attempt of one backend: what stayed float, and how it measured."""

    backend: str
    kept_float: tuple[str, ...]      # the layer groups that really stayed float (the backend's own rule applied)
    accuracy_fp32: float
    accuracy_int8: float
    frame_agreement: float           # per-frame argmax agreement with FP32
    final_agreement: float           # agreement of the clips' final decisions
    flips_fp32: float                # label changes per 100 frames on streams
    flips_int8: float
    passed: bool
    drop_points: float
    inference_precision: str = ""
    clips: int = 0                   # held-out clips judged (0 in 0.1 bundles)
    points_per_clip: float = 0.0     # one clip's weight in accuracy points: 100 / clips
    final_agreement_ci95: tuple[float, float] = (0.0, 1.0)  # Wilson interval of final_agreement
    metric: str = "clip_accuracy"    # what accuracy_* hold: clip accuracy, or a detector's frame_map
    delay_p50_frames: tuple[float, float] | None = None  # detectors: median detection delay, FP32 and INT8 (-1: none)
    mean_iou: tuple[float, float] | None = None  # trackers: mean IoU of the FP32 and the INT8 boxes (closed loop)
    captions: tuple[tuple[float, float], ...] | None = None  # captioners: (FP32, INT8) BLEU-4, CIDEr-D, motion acc


@dataclass(frozen=True)
class GraphOps:
    file: str
    op_types: dict[str, int]
    executed: dict[str, dict[str, int]] = field(default_factory=dict)  # OpenVINO: layer -> runtime precision counts


@dataclass(frozen=True)
class PrecisionFacts:
    bytes: int
    latency_ms: float                          # per frame, batch 1
    latency_ms_by_batch: dict[str, float]      # per frame, by streams stepped together
    graphs: dict[str, GraphOps]                # by role


@dataclass(frozen=True)
class BackendReport:
    fp32: PrecisionFacts
    int8: PrecisionFacts
    int8_fp32_latency_ratio: float             # batch 1
    int8_fp32_latency_ratio_by_batch: dict[str, float]
    int8_pays: bool                            # at batch 1
    int8_pays_from_batch: int | None           # smallest batch measured where INT8 was not slower
    chosen: Trial                              # the trial whose artefacts the bundle holds

    def pays_at(self, streams: int) -> bool:
        start = self.int8_pays_from_batch
        return start is not None and streams >= start

    def ratios_text(self) -> str:
        return ", ".join(f"{k}: {v:.2f}x" for k, v in self.int8_fp32_latency_ratio_by_batch.items())


@dataclass(frozen=True)
class Int8Report:
    gate: GateSettings
    data: GateData
    trials: tuple[Trial, ...]
    backends: dict[str, BackendReport]         # by backend name; only backends whose INT8 passed

    def verdict(self, backend: str, streams: int) -> tuple[bool, str]:
        """Whether INT8 passed its gate and pays on ``backend`` for an engine stepping ``streams`` streams."""
        rep = self.backends.get(backend)
        if rep is None or not rep.chosen.passed:
            return False, f"INT8 did not pass its accuracy gate on {backend}"
        ratios = rep.ratios_text()
        if rep.int8_pays_from_batch is None:
            return False, f"INT8 does not pay on {backend} at any batch measured (INT8/FP32 by batch {ratios})"
        if not rep.pays_at(streams):
            return False, (f"INT8 does not pay on {backend} below batch {rep.int8_pays_from_batch} and the engine "
                           f"steps {streams} stream(s) (INT8/FP32 by batch {ratios})")
        return True, (f"INT8 passed its gate and pays on {backend} from batch {rep.int8_pays_from_batch} "
                      f"({streams} stream(s); {ratios})")
