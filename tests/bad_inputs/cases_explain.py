"""Bad inputs of `edgelstm explain`: a --source that is missing, of the wrong kind for the model, or live without an
end; features of the wrong shape or not saved with numpy.save; a model that is not a causal LSTM; a bad option.
Each runs through the CLI with its own --out, which a failure must not create (explain checks everything first)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.bad_inputs.harness import Outcome, World, case, run_cli


def _explain(target: Path, source: object, tmp: Path, *extra: object) -> Outcome:
    out = run_cli("explain", target, "--source", source, "--out", tmp / "out", *extra)
    assert not (tmp / "out").exists(), "a failed explain left its --out folder behind"
    return out


@case("explain-source-missing", "source", "an explain --source file that does not exist",
      "edgelstm explain B --source gone.mp4", 1, "gone.mp4'; expected a camera index (0), a video file")
def _(w: World, tmp: Path) -> Outcome:
    return _explain(w.bundle, tmp / "gone.mp4", tmp)


@case("explain-npy-for-frames", "source", "a .npy of features to explain a frame model",
      "edgelstm explain B --source feats.npy", 2, "feats.npy is a .npy of features, but")
def _(w: World, tmp: Path) -> Outcome:
    np.save(tmp / "feats.npy", np.zeros((10, 8), np.float32))
    return _explain(w.bundle, tmp / "feats.npy", tmp)


@case("explain-npy-shape", "source", "features of the wrong width for a feature model",
      "edgelstm explain FB --source feats.npy", 1, "holds a float32 array of shape [10, 5]; expected (T, 8)")
def _(w: World, tmp: Path) -> Outcome:
    np.save(tmp / "feats.npy", np.zeros((10, 5), np.float32))  # the feature bundle takes 8 per step
    return _explain(w.fbundle, tmp / "feats.npy", tmp)


@case("explain-npy-savetxt", "source", "features written with numpy.savetxt into a .npy",
      "edgelstm explain FB --source feats.npy", 1, "feats.npy is not a .npy file (it begins b'0.0000'")
def _(w: World, tmp: Path) -> Outcome:
    np.savetxt(tmp / "feats.npy", np.zeros((10, 8), np.float32))
    return _explain(w.fbundle, tmp / "feats.npy", tmp)


@case("explain-live-no-max-frames", "source", "a camera to explain without --max-frames",
      "edgelstm explain B --source 0", 2, "--source 0 is live: it never ends")
def _(w: World, tmp: Path) -> Outcome:
    return _explain(w.bundle, "0", tmp)  # refused before the camera is opened: no camera needed


@case("explain-teacher", "checkpoint", "a bidirectional teacher checkpoint to explain",
      "edgelstm explain teacher.pt --source clip.avi", 2, "model 'teacher_tiny' is not a causal LSTM")
def _(w: World, tmp: Path) -> Outcome:
    from tests.bundles import make_checkpoint

    teacher = make_checkpoint(tmp, model="teacher_tiny", trained=False, name="teacher.pt")
    return _explain(teacher, w.video, tmp)


@case("explain-motion-model", "checkpoint", "a motion student (its step carries the previous map) to explain",
      "edgelstm explain motion.pt --source clip.avi", 2, "model 'motion_student' is a motion model")
def _(w: World, tmp: Path) -> Outcome:
    from tests.bundles import make_motion_checkpoint

    return _explain(make_motion_checkpoint(tmp, steps=0), w.video, tmp)


@case("explain-max-frames-zero", "options", "explain --max-frames 0",
      "edgelstm explain B --source clip.avi --max-frames 0", 2, "--max-frames 0; expected a positive whole number")
def _(w: World, tmp: Path) -> Outcome:
    return _explain(w.bundle, w.video, tmp, "--max-frames", 0)
