"""Safety: no pickled code runs, no model file is parsed before its hash is checked, no network
access but the video URL a user gives, and no eval/exec/shell strings anywhere in the package."""
from __future__ import annotations

import ast
import io
import re
import shutil
import socket
import tokenize
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import frames, write_video
from toy_bundle import Toy

from edgelstm.errors import BundleError, CheckpointError
from edgelstm.runtime.engine import Engine

PACKAGE = Path(__file__).resolve().parents[2] / "edgelstm"


# --- no pickled code ---------------------------------------------------------------------------
class Payload:
    """Unpickling this opens (creates) ``marker``: if the file appears, pickled code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def _evil_checkpoint(tmp_path: Path, name: str) -> tuple[Path, Path]:
    import torch

    marker = tmp_path / f"{name}.ran"
    path = tmp_path / f"{name}.pt"
    torch.save({"format": "edgelstm-checkpoint", "version": 1, "model_name": "lstm", "model_config": {},
                "state_dict": {"w": torch.zeros(2)}, "extra": Payload(marker)}, path)
    return path, marker


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Guard for the tests below: loading this file the unsafe way really does run its code."""
    import torch

    path, marker = _evil_checkpoint(tmp_path, "live")
    torch.load(path, weights_only=False)  # what edgelstm never does
    assert marker.exists()


def test_pickled_checkpoint_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgelstm.cli import cli
    from edgelstm.models.checkpoint import load_checkpoint

    path, marker = _evil_checkpoint(tmp_path, "evil")
    with pytest.raises(CheckpointError, match="needs pickle to load") as e:
        load_checkpoint(path)
    assert "Fix:" in str(e.value) and not marker.exists()
    for args in (["export", str(path), "--out", str(tmp_path / "b")], ["eval", str(path)],
                 ["distill", "--teacher", str(path), "--out", str(tmp_path / "run")]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 1 and "needs pickle to load" in r.output, (args, r.output)
        assert not marker.exists(), f"pickled code ran during `edgelstm {args[0]}`"
    assert not (tmp_path / "b").exists() and not (tmp_path / "run").exists()


# --- hashes before parsing ------------------------------------------------------------------------
def _forbid_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx
    import onnxruntime
    import openvino

    def parsed(*_: object, **__: object) -> None:
        raise AssertionError("a model file was parsed before its hash was checked")

    monkeypatch.setattr(onnxruntime, "InferenceSession", parsed)
    monkeypatch.setattr(openvino.Core, "read_model", parsed)
    monkeypatch.setattr(onnx, "load", parsed)
    monkeypatch.setattr(onnx, "load_model", parsed)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_tampered_model_is_refused_before_it_is_parsed(toy: Toy, tmp_path: Path, backend: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from edgelstm.runtime.clips import stream_logits

    b = tmp_path / "b"
    shutil.copytree(toy.path, b)
    target = b / ("step.onnx" if backend == "onnxruntime" else "openvino/step.bin")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    _forbid_parsing(monkeypatch)
    with pytest.raises(BundleError, match="does not match the manifest"):
        Engine.load(b, backend=backend)
    with pytest.raises(BundleError, match="does not match the manifest"):
        stream_logits(b, np.zeros((1, 2, 8, 8, 3), np.uint8), backend=backend)


# --- no network but the user's URL ----------------------------------------------------------------
def test_runtime_opens_no_sockets_for_files(toy: Toy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a bundle (both backends) and running the demo on a file make no Python-level connection.

    (A connection made inside a C library would not pass through here; the demo's only network code is
    OpenCV opening a URL the user typed.)"""
    from click.testing import CliRunner

    from edgelstm.cli import cli

    attempts: list[object] = []

    def no_network(*args: object, **_: object) -> None:
        attempts.append(args)
        raise AssertionError(f"network access at run time: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    video = write_video(tmp_path / "v.avi", frames(6, (16, 16)), fps=15.0)
    for backend in ("onnxruntime", "openvino"):
        r = CliRunner().invoke(cli, ["demo", str(toy.path), "--headless", "--source", str(video),
                                     "--backend", backend])
        assert r.exit_code == 0, r.output
    assert attempts == []


# --- no eval/exec/shell strings/pickle in the package ---------------------------------------------
FORBIDDEN = {
    "eval(": re.compile(r"(?<![\w.])eval\s*\("),
    "exec(": re.compile(r"(?<![\w.])exec\s*\("),
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "os.system": re.compile(r"\bos\.(system|popen)\b"),
    "pickle.load": re.compile(r"\b(c?pickle|dill|marshal|shelve)\.(load|loads|open)\b"),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "weights_only=False": re.compile(r"weights_only\s*=\s*False"),
}


def _code_only(source: str) -> str:
    """The source with comments and string literals blanked (docstrings may mention what code must not do)."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.STRING) or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            continue
        out.append(tok.string)
    return " ".join(out).replace(" ( ", "(").replace(" (", "(").replace(" . ", ".").replace(" = ", "=")


def _torch_load_without_weights_only(source: str) -> list[int]:
    """Lines of ``torch.load(...)`` calls that do not pass ``weights_only=True``."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
            ok = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                     for k in node.keywords)
            if not ok:
                bad.append(node.lineno)
    return bad


def scan(source: str) -> list[str]:
    code = _code_only(source)
    found = [name for name, pat in FORBIDDEN.items() if pat.search(code)]
    found += [f"torch.load without weights_only=True (line {n})" for n in _torch_load_without_weights_only(source)]
    return found


def test_scanner_catches_each_pattern() -> None:
    """The scan below must be able to fail: each forbidden form is caught, harmless look-alikes are not."""
    for snippet in ("x = eval(s)", "exec (code)", "subprocess.run(cmd, shell = True)", "os.system(cmd)",
                    "pickle.load(f)", "pickle.loads(b)", "np.load(p, allow_pickle=True)",
                    "torch.load(p, weights_only=False)", "torch.load(p)", "torch.load(p, map_location='cpu')"):
        assert scan(snippet + "\n"), snippet
    for fine in ("model.eval()", "evaluate(x)", "# never eval(x)", "s = 'os.system(x)'",
                 "torch.load(p, map_location='cpu', weights_only=True)", "pickle.UnpicklingError",
                 "def eval_cmd(): pass"):
        assert not scan(fine + "\n"), fine


def test_package_has_no_eval_exec_shell_or_pickle() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    found = {str(p.relative_to(PACKAGE.parent)): hits for p in files if (hits := scan(p.read_text(encoding="utf-8")))}
    assert found == {}, f"forbidden constructs in the package: {found}"
