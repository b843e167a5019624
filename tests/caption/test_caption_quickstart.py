"""`edgelstm quickstart --task caption` end to end on a tiny configuration (slow: opt in with --runslow)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_caption_quickstart_tiny(tmp_path: Path) -> None:
    from edgelstm.quickstart_caption import run_caption_quickstart
    from edgelstm.train.pipeline_caption import CaptionStageConfig

    cfg = CaptionStageConfig(size=(16, 16), clip_len=4, counts=(24, 6, 100), teacher="captioner_teacher_tiny",
                             student="captioner_tiny", teacher_epochs=1, student_epochs=1, progress=False)
    report = run_caption_quickstart(tmp_path, demo_frames=12, profile_frames=20, config=cfg)
    assert [r["name"] for r in report["rows"]] == ["teacher", "student_distilled", "student_scratch"]
    assert {e["artifact"] for e in report["engine"]} >= {"onnxruntime:fp32", "openvino:fp32"}
    assert any(n.startswith("decoder per token") for n in report["profile_notes"])
    for name in ("demo.mp4", "demo.jsonl", "profile.json", "caption_report.json", "bundle/decoder-fp32.onnx"):
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "bundle" / "manifest.json").read_text())["task"] == "caption"
    assert any('"caption"' in line for line in (tmp_path / "demo.jsonl").read_text().splitlines())
