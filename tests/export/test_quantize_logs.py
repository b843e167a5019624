"""NNCF's INFO lines and progress bars reach the user only through logging (`edgelstm -v`), never by default."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgelstm.export.quantize_ov import nncf_through_logging
from tests.bundles import make_checkpoint

NNCF_MARKS = ("INFO:nncf", "Statistics collection", "Applying Fast Bias correction")  # its lines and bars


def test_export_int8_prints_no_nncf_lines(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from click.testing import CliRunner

    from edgelstm.cli import cli

    ckpt = make_checkpoint(tmp_path, steps=60)
    capfd.readouterr()
    # A gate that a tiny model passes (as tests/bundles.make_bundle): the point here is what gets printed.
    r = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(tmp_path / "b"), "--format", "onnx,openvino",
                                 "--int8", "--calib-clips", "8", "--eval-clips", "50", "--max-drop", "99",
                                 "--min-agreement", "0.01"])
    printed = r.output + "".join(capfd.readouterr())  # CliRunner's streams and the process's real ones
    assert r.exit_code == 0, r.output
    assert not [m for m in NNCF_MARKS if m in printed], printed


def test_nncf_records_reach_our_logging(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    import nncf  # noqa: F401 - installs NNCF's own stdout handler on the "nncf" logger

    nncf_log = logging.getLogger("nncf")
    before = nncf_log.handlers[:], nncf_log.propagate
    with caplog.at_level(logging.WARNING), nncf_through_logging():
        nncf_log.info("hidden at the default level")
    with caplog.at_level(logging.INFO), nncf_through_logging():
        nncf_log.info("shown with -v")
    assert "shown with -v" in caplog.text and "hidden at the default level" not in caplog.text
    assert "shown with -v" not in capfd.readouterr().out  # not NNCF's own stdout handler
    assert (nncf_log.handlers, nncf_log.propagate) == before  # restored afterwards
