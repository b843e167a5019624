"""`edgelstm eval` on a captioner (checkpoint and bundle, the task read from the target) and `profile`'s decoder."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from edgelstm.cli import cli


def test_eval_checkpoint_and_bundle_agree(caption_student: Path, caption_bundle: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["eval", str(caption_student), "--json", "--out", str(tmp_path / "e")])
    assert r.exit_code == 0, r.output
    ck = json.loads(r.output)
    assert ck["task"] == "caption" and ck["artifact"] == "torch" and set(ck) >= {"bleu4", "cider_d",
                                                                                  "motion_accuracy"}
    assert (tmp_path / "e" / "eval_test.json").is_file()
    r = CliRunner().invoke(cli, ["eval", str(caption_bundle), "--json"])
    assert r.exit_code == 0, r.output
    bu = json.loads(r.output)
    assert bu["artifact"] == "onnxruntime:fp32"  # (the bundle is scored on the synthetic set's default test split)
    assert [e["caption"] for e in bu["examples"]] == [e["caption"] for e in ck["examples"]]  # parity, end to end
    r = CliRunner().invoke(cli, ["eval", str(caption_bundle), "--artifact", "onnx:int9"])
    assert r.exit_code == 2 and "unknown artifact" in r.output


def test_profile_times_the_decoder_per_token(caption_bundle: Path) -> None:
    from edgelstm.measure.profiler import profile_bundle

    rep = profile_bundle(caption_bundle, frames=10, warmup=2, backends=["onnxruntime"], precisions=["fp32"],
                         baselines=False)
    assert rep.rows and any(n.startswith("decoder per token (onnxruntime fp32, batch 1): p50") for n in rep.notes)
