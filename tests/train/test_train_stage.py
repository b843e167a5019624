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
