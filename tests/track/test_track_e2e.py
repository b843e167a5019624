"""A tiny tracker the whole way: train and distill -> export (streaming parity) -> the runtime's TrackEngine (its
closed loop equals PyTorch's) -> the INT8 gate on closed-loop IoU/AUC."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgelstm.data.tracking import TrackConfig, synthetic_sequence
from edgelstm.errors import UsageError
from edgelstm.export import export_bundle
from edgelstm.export.parity import FP32_TOL
from edgelstm.export.track import closed_loop_parity
from edgelstm.models.checkpoint import load_checkpoint
from edgelstm.runtime.bundle import load_bundle
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.track import TrackEngine, TrackPrediction
from edgelstm.spec import Task
from edgelstm.trackspec import OUTPUTS, Tracking
from edgelstm.train.config import DataConfig, DistillConfig, TrainConfig
from edgelstm.train.track import TrackOptions, distill_track, train_track

OPTS = TrackOptions(tracking=Tracking(crop_size=16), frames=16)
SEQ = TrackConfig(size=(32, 32), frames=16)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("track")
    data = DataConfig(spec="synthetic", size=(32, 32), clip_len=6, counts=(8, 3, 3))

    def cfg(name: str) -> TrainConfig:
        return TrainConfig(model="tracker_tiny", out=root / name, data=data, epochs=2, batch_size=4, threads=2,
                           progress=False)

    teacher = train_track(cfg("teacher"), OPTS)
    student = distill_track(cfg("student"), DistillConfig(teacher=teacher.best), OPTS)
    assert student.test is not None and 0 <= student.test.mean_iou <= 1
    bundle = root / "bundle"
    export_bundle(student.best, bundle, parity_frames=30)
    return {"teacher": teacher.best, "student": student.best, "bundle": bundle}


def test_checkpoint_and_manifest_name_the_task(run: dict[str, Path]) -> None:
    ckpt = load_checkpoint(run["student"])
    assert ckpt.data.task == Task.TRACK and ckpt.data.size == (16, 32) and ckpt.classes == list(OUTPUTS)
    assert ckpt.metrics["tracking"]["reinit_every"] == 5 and ckpt.metrics["tracking"]["frame_size"] == [32, 32]
    m = load_bundle(run["bundle"]).manifest
    assert m.task == Task.TRACK and m.tracking is not None and m.tracking.crop_size == 16
    assert m.labels == OUTPUTS and m.preprocess is not None and m.preprocess.size == (16, 32)
    assert m.parity and all(p.passed and p.max_abs_diff <= FP32_TOL for p in m.parity)  # streaming equivalence


def test_the_engine_tracks_as_pytorch_does(run: dict[str, Path]) -> None:
    bundle = load_bundle(run["bundle"])
    seqs = [synthetic_sequence(SEQ, "test", i) for i in range(3)]
    loop = closed_loop_parity(bundle, load_checkpoint(run["student"]).model, seqs)
    # each step of the loop from the same crops: runtime crops + graphs + decoding against PyTorch, in pixels
    assert loop.passed and loop.step_px <= 1e-4
    assert loop.free_max_px < 2.0 and abs(loop.iou_runtime - loop.iou_pytorch) < 0.02  # left to their own boxes
    with Engine.load(run["bundle"], streams=2) as eng:
        assert isinstance(eng, TrackEngine)
        eng.init(seqs[0].boxes[0], stream=0)
        eng.init(seqs[1].boxes[0], stream=1)
        boxes: list[list[tuple[float, ...]]] = [[], []]
        for k in range(len(seqs[0])):
            preds = eng.step_batch([cv2.cvtColor(seqs[i].frames[k], cv2.COLOR_RGB2BGR) for i in (0, 1)], [0, 1])
            assert all(isinstance(p, TrackPrediction) for p in preds)
            assert preds[0].started == (k == 0) and preds[0].timings.total > 0
            for i in (0, 1):
                boxes[i].append(preds[i].box)
        from edgelstm.train.track import track_split

        ref = track_split(load_checkpoint(run["student"]).model, seqs[:2], Tracking(crop_size=16, reinit_every=5))
        for i in (0, 1):
            np.testing.assert_allclose(np.array(boxes[i]), ref[i], atol=1e-3)  # live engine = offline loop


def test_engine_refuses_bad_boxes_and_restarts(run: dict[str, Path]) -> None:
    seq = synthetic_sequence(SEQ, "test", 0)
    frame = cv2.cvtColor(seq.frames[0], cv2.COLOR_RGB2BGR)
    with Engine.load(run["bundle"]) as eng:
        assert isinstance(eng, TrackEngine)
        with pytest.raises(UsageError, match="width 0"):
            eng.init((1, 2, 0, 3))
        eng.init((100, 100, 5, 5))  # checked against the frame it is applied to
        with pytest.raises(UsageError, match="outside the 32x32 frame"):
            eng.step(frame)
        first = eng.step(frame)  # no box given: a centred box, started from this frame
        assert first.started and first.box == (12.0, 12.0, 8.0, 8.0)
        assert not eng.step(frame).started
        eng.reset(0)  # a gap in the live loop: the track restarts from its current box
        again = eng.step(frame)
        assert again.started and again.box == eng.box(0)


def test_int8_gate_judges_closed_loop_tracking(run: dict[str, Path], tmp_path: Path) -> None:
    from edgelstm.export.quantize import quantize_bundle

    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(run["bundle"], bundle)
    report = quantize_bundle(bundle, calib_data="synthetic", calib_clips=8, eval_clips=100, max_drop=50.0,
                             min_agreement=0.5)
    trial = report.backends["onnxruntime"].chosen
    assert trial.metric == "success_auc" and trial.mean_iou is not None and trial.clips == 100
    assert trial.passed and load_bundle(bundle).manifest.quantization is not None


def test_demo_tracks_the_synthetic_camera_and_an_image_folder(run: dict[str, Path], tmp_path: Path) -> None:
    import json

    from edgelstm.data.tracking_otb import write_tracking
    from edgelstm.runtime.demo import DemoOptions, run_demo

    opts = DemoOptions(show=False, jsonl=tmp_path / "d.jsonl", record=tmp_path / "d.avi", max_frames=12, fps=200.0)
    shown = run_demo(run["bundle"], ("synthetic",), opts)
    assert shown.decisions == 12 and shown.recorded_frames == 12
    lines = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert lines[0]["started"] and not lines[1]["started"] and len(lines[5]["box"]) == 4
    write_tracking(tmp_path / "seqs", TrackConfig(size=(32, 32), frames=6, train=0, val=0, test=1))
    folder = tmp_path / "seqs" / "test" / "test_00000" / "img"
    box = tuple(float(v) for v in (tmp_path / "seqs" / "test" / "test_00000" / "groundtruth_rect.txt")
                .read_text().splitlines()[0].split(","))
    opts = DemoOptions(show=False, jsonl=tmp_path / "f.jsonl", init_boxes=(box,))  # type: ignore[arg-type]
    assert run_demo(run["bundle"], (str(folder),), opts).decisions == 6
    first = json.loads((tmp_path / "f.jsonl").read_text().splitlines()[0])
    assert first["box"] == list(box) and first["started"]
