"""`edgelstm export --device NAME`: the profile's backend decides the formats; unknown names are clear errors."""
import json
from pathlib import Path

from click.testing import CliRunner

from edgelstm.cli import cli
from tests.bundles import make_checkpoint


def test_openvino_profile_adds_the_ir(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path, trained=False)
    out = tmp_path / "bundle"
    r = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(out), "--device", "intel-cpu"])
    assert r.exit_code == 0, r.output
    backends = {a["backend"] for a in json.loads((out / "manifest.json").read_text())["artifacts"]}
    assert backends == {"onnxruntime", "openvino"}  # onnx asked by default, openvino added for the profile
    assert "suggests 64x64" in r.output  # the profile's input size is a note, never a silent resize


def test_unknown_device_names_the_closest(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path, trained=False)
    r = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(tmp_path / "b"), "--device", "intel-cpx"])
    assert r.exit_code != 0 and "intel-cpu" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "b").exists()
