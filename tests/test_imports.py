"""The on-device promise: runtime/, devices/ and the CLI's help never import torch."""
import subprocess
import sys

import pytest

CHECK = "import sys, {mod}; bad = [m for m in ('torch', 'nncf', 'onnx') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"


@pytest.mark.parametrize("mod", ["edgelstm.runtime", "edgelstm.devices", "edgelstm.spec", "edgelstm.cli",
                                 "edgelstm.data.synthetic"])
def test_module_imports_no_torch(mod: str) -> None:
    r = subprocess.run([sys.executable, "-c", CHECK.format(mod=mod)], capture_output=True, text=True)
    assert r.returncode == 0, f"{mod} pulled in {r.stdout.strip()} {r.stderr[-500:]}"


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["demo", "--help"], ["devices", "--help"],
                                  ["profile", "--help"], ["train", "--help"], ["export", "--help"]])
def test_cli_help_imports_no_torch(args: list[str]) -> None:
    code = ("import sys; from edgelstm.cli import cli\n"
            f"try:\n    cli.main({args!r}, prog_name='edgelstm')\nexcept SystemExit as e:\n    code = e.code\n"
            "print('TORCH' if 'torch' in sys.modules else 'CLEAN'); sys.exit(code or 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-800:]
    assert r.stdout.strip().endswith("CLEAN"), f"`edgelstm {' '.join(args)}` imported torch"
