"""The on-device promise: runtime/ and devices/ never import torch, onnx, nncf nor a higher room.

Two guards, each able to fail:

- ``test_base_install_imports_every_runtime_module``: in a venv holding only the base install (no torch, no
  onnx, no nncf: the session fixture ``base_venv``), import every module of ``edgelstm.runtime`` and
  ``edgelstm.devices`` by name (found with pkgutil, so a new module is covered), the light top-level
  modules and ``edgelstm demo --help``, then check sys.modules. Slow (it needs the venv): ``make test``
  runs it.
- ``test_no_forbidden_import_in_source``: a fast static check of the same rooms' source (AST), which also
  sees imports inside function bodies that the first guard never executes.

The quick subprocess checks below run in the dev venv, where torch *is* installed, so they catch an
import that pulls torch in eagerly.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import BaseVenv

PACKAGE = Path(__file__).resolve().parents[1] / "edgelstm"
LIGHT_ROOMS = ("runtime", "devices")  # what runs on the device
FORBIDDEN_TOP = {"torch", "torchvision", "nncf", "onnx", "onnxscript"}  # onnxruntime is the runtime: allowed
FORBIDDEN_ROOMS = {"edgelstm.train", "edgelstm.models", "edgelstm.export", "edgelstm.measure"}  # higher rooms
HEAVY = ("torch", "onnx", "nncf")

# Runs inside the base venv: import every module of the light rooms by name, then the CLI's demo help.
BASE_SCRIPT = r"""
import importlib, json, pkgutil, sys
import edgelstm
names = ["edgelstm.spec", "edgelstm.errors", "edgelstm.fsutil", "edgelstm.cli"]
for room in ("runtime", "devices"):
    pkg = importlib.import_module("edgelstm." + room)
    names.append(pkg.__name__)
    names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as e:  # report every failure, not just the first
        failed[name] = repr(e)
from edgelstm.cli import cli
try:
    cli.main(["demo", "--help"], prog_name="edgelstm")
    code = 0
except SystemExit as e:
    code = e.code or 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "nncf"))
print("RESULT " + json.dumps({"imported": names, "failed": failed, "help_exit": code, "heavy": heavy,
                              "file": edgelstm.__file__}))
"""


@pytest.mark.slow
def test_base_install_imports_every_runtime_module(base_venv: BaseVenv) -> None:
    import json

    r = subprocess.run([str(base_venv.python), "-c", BASE_SCRIPT], capture_output=True, text=True,
                       env=base_venv.env, cwd=base_venv.cwd, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))
    res = json.loads(line[len("RESULT "):])
    assert str(base_venv.root) in res["file"], "the checkout was imported, not the base install"
    # every module on disk was found (so discovery cannot silently shrink to the empty __init__)
    on_disk = {f"edgelstm.{room}.{p.stem}" for room in LIGHT_ROOMS for p in (PACKAGE / room).glob("*.py")
               if p.stem != "__init__"}
    assert on_disk <= set(res["imported"]), f"not imported: {sorted(on_disk - set(res['imported']))}"
    assert not res["failed"], f"modules that fail to import without the extras: {res['failed']}"
    assert res["help_exit"] == 0
    assert "Usage:" in r.stdout and "demo" in r.stdout
    assert res["heavy"] == [], f"the base install imported {res['heavy']}"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module ``source`` (the text of ``module``) imports, anywhere in it (module level, function bodies,
    importlib calls), as absolute names."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                parts = package.split(".")
                mod = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((node.lineno, mod))
            found += [(node.lineno, f"{mod}.{a.name}") for a in node.names]  # `from edgelstm import train`
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module")))):
            found.append((node.lineno, node.args[0].value))
    return found


def _forbidden(mod: str) -> bool:
    return mod.split(".")[0] in FORBIDDEN_TOP or any(mod == r or mod.startswith(r + ".") for r in FORBIDDEN_ROOMS)


def _violations(paths: list[Path]) -> list[str]:
    bad = []
    for p in paths:
        found = _imports(p.read_text(encoding="utf-8"), _module_name(p), is_package=p.name == "__init__.py")
        bad += [f"{p.relative_to(PACKAGE.parent)}:{line}: imports {mod}" for line, mod in found if _forbidden(mod)]
    return bad


def test_no_forbidden_import_in_source() -> None:
    """Arrows point down: no file of runtime/ or devices/ imports torch/onnx/nncf or train/models/export/measure,
    not even lazily inside a function."""
    paths = sorted(p for room in LIGHT_ROOMS for p in (PACKAGE / room).rglob("*.py"))
    assert len(paths) >= 5, f"found only {paths}"
    bad = _violations(paths)
    assert not bad, "lower rooms import higher ones or heavy packages:\n" + "\n".join(bad)


def test_static_check_sees_every_form() -> None:
    """The static guard's own check: each way of writing a forbidden import is caught; onnxruntime is not."""
    src = ("import onnxruntime\nimport numpy as np\nfrom onnxruntime import InferenceSession\n"
           "def f():\n    import torch.nn\n    from ..train import trainer\n    from edgelstm import export\n"
           "    import importlib\n    importlib.import_module('nncf')\n    from onnx import helper\n"
           "    from edgelstm.measure.harness import x\n    from . import engine\n")
    found = [mod for _, mod in _imports(src, "edgelstm.runtime.planted")]
    bad = {mod for mod in found if _forbidden(mod)}
    assert bad >= {"torch.nn", "edgelstm.train", "edgelstm.train.trainer", "edgelstm.export", "nncf", "onnx",
                   "onnx.helper", "edgelstm.measure.harness"}, bad
    assert "edgelstm.runtime.engine" in found  # relative imports resolve against the file's package
    assert not any(m.split(".")[0] in ("onnxruntime", "numpy", "importlib") for m in bad)


@pytest.mark.parametrize("mod", ["edgelstm.runtime.engine", "edgelstm.runtime.commands", "edgelstm.devices.profile",
                                 "edgelstm.spec", "edgelstm.cli", "edgelstm.data.synthetic"])
def test_module_imports_no_torch(mod: str) -> None:
    check = (f"import sys, {mod}; bad = [m for m in {HEAVY!r} if m in sys.modules]; print(bad); "
             "sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
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
