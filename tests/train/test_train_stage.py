"""The quickstart's training stage, shrunk to tiny models and data (its real settings are measured by
``python -m edgelstm.train.pipeline OUT``, not here)."""
from __future__ import annotations

import json
from pathlib import Path

from edgelstm.models.checkpoint import load_checkpoint
from edgelstm.train.pipeline import StageConfig, format_table, train_stage


def test_train_stage_rows_and_files(tmp_path: Path) -> None:
    cfg = StageConfig(size=(16, 16), clip_len=4, counts=(30, 10, 10), teacher="teacher_tiny", student="student_tiny",
                      teacher_epochs=1, student_epochs=1, pooling_epochs=1, progress=False, stream_pairs=True)
    rows = train_stage(tmp_path, config=cfg)
    assert [r["name"] for r in rows] == ["teacher", "student_distilled", "student_scratch", "pooling"]
    for r in rows:
        assert 0 <= r["test_accuracy"] <= 1 and r["params"] > 0 and r["macs_per_frame"] > 0
        assert load_checkpoint(r["checkpoint"]).name == r["model"]
        assert set(r["early_accuracy"]) == {"0.1", "0.25", "0.5", "1"}
    assert rows[1]["stream_accuracy"] and not rows[0]["stream_accuracy"]  # only causal models stream
    assert json.loads((tmp_path / "train_stage.json").read_text())["rows"][0]["name"] == "teacher"
    assert "student_distilled" in format_table(rows)


def test_a_preset_of_runs_on_a_frozen_encoder(tmp_path: Path) -> None:
    """The footage preset's shape (edgelstm.train.pipeline.footage_config), shrunk: every model on one frozen
    encoder trained on its cached features, two controls (labels alone; distilled on a random encoder)."""
    from edgelstm.train.config import EncoderChoice
    from edgelstm.train.pipeline import RunSpec, footage_config

    frozen = EncoderChoice("mobile", None, freeze=True, unfreeze_last=1)
    runs = (RunSpec("teacher", "teacher", 1, 3e-3, encoder=frozen), RunSpec("student_distilled", "student", 1, 3e-3,
                                                                          True, frozen),
            RunSpec("student_scratch", "student", 1, 3e-3, False, frozen), RunSpec("pooling", "pooling", 1, 3e-3))
    cfg = StageConfig(size=(16, 16), clip_len=4, counts=(24, 8, 8), progress=False, runs=runs)
    rows = train_stage(tmp_path, config=cfg)
    assert [r["name"] for r in rows] == ["teacher", "student_distilled", "student_scratch", "pooling"]
    for r in rows[:3]:  # trained on cached features, scored through them; the checkpoint is the frame model
        m = json.loads((Path(r["checkpoint"]).parent / "metrics.json").read_text())
        assert m["feature_cache"]["frozen_blocks"] == 6 and set(r["early_accuracy"]) == {"0.1", "0.25", "0.5", "1"}
        assert load_checkpoint(r["checkpoint"]).model.encoder.name == "mobile"
    assert json.loads((tmp_path / "student_distilled" / "metrics.json").read_text())["objective"] == "distill"
    assert rows[1]["stream_accuracy"] and not rows[0]["stream_accuracy"]
    preset = footage_config("somewhere")  # the real preset: Lite0 ImageNet weights, frozen, and its two controls
    names = [r.name for r in preset.run_specs()]
    assert names == ["teacher", "student_distilled", "student_scratch", "student_random_encoder", "pooling"]
    assert preset.run_specs()[3].encoder.weights is None and preset.run_specs()[1].encoder.weights == "imagenet"
    assert [r.model for r in preset.run_specs()[:4]] == ["motion_teacher"] + ["motion_student"] * 3
