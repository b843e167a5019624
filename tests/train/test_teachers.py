"""distill --teacher SPEC: every teacher kind distils a tiny student for one epoch and the student exports; a
second run reads the teacher's outputs from the cache without running the teacher."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgelstm.spec import ColourOrder
from edgelstm.train import teacher_cache
from edgelstm.train.teachers import InputDtype, Layout, TeacherInput
from tests.bundles import run_ok as _run

DATA = ["--data", "synthetic", "--size", "16,16", "--clip-len", "6", "--counts", "20,10,10", "--batch-size", "8"]

TEACHER_PY = '''
from pathlib import Path
import torch
from torch import nn

COUNTER = Path(__file__).with_suffix(".calls")


class Tiny(nn.Module):
    def __init__(self, count: bool = True) -> None:
        super().__init__()
        self.count = count
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, T, H, W)
        if self.count:
            with open(COUNTER, "a") as f:
                f.write(".")
        return self.fc(self.conv(x).mean((2, 3, 4)))


def make() -> nn.Module:
    torch.manual_seed(0)
    return Tiny()


def not_a_module() -> int:
    return 3
'''


@pytest.fixture(scope="module")
def user_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("code") / "my_teacher.py"
    path.write_text(TEACHER_PY)
    return path


def _tiny(user_file: Path):  # noqa: ANN202
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_teacher_for_tests", user_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import torch

    torch.manual_seed(0)
    return mod.Tiny(count=False).eval()


def _teacher(kind: str, tmp: Path, user_file: Path) -> list[str]:
    """The --teacher options of one teacher of ``kind``, written into ``tmp``."""
    import torch

    if kind == "checkpoint":
        out = tmp / "teacher_run"
        _run(["train", "--model", "teacher_tiny", "--out", str(out), "--epochs", "1", *DATA])
        return ["--teacher", str(out / "best.pt")]
    if kind == "torchvision":
        names = json.dumps({c: i for i, c in enumerate(
            ["move_left", "move_right", "move_up", "move_down", "rotate_cw", "rotate_ccw", "grow", "shrink",
             "fade_in", "fade_out"])})
        (tmp / "map.json").write_text(names)
        return ["--teacher", "torchvision:mc3_18", "--teacher-weights", "random", "--teacher-size", "16,16",
                "--teacher-clip-len", "4", "--teacher-classes", str(tmp / "map.json")]
    if kind == "python":
        return ["--teacher", f"{user_file}:make"]
    x = torch.zeros(1, 3, 4, 12, 12)
    if kind == "torchscript":
        torch.jit.trace(_tiny(user_file), x).save(str(tmp / "t.ts"))
        return ["--teacher", str(tmp / "t.ts"), "--teacher-clip-len", "4", "--teacher-size", "12,12"]
    if kind == "exported":
        batch = {"x": {0: torch.export.Dim("n", min=1, max=64)}}
        torch.export.save(torch.export.export(_tiny(user_file), (x.repeat(2, 1, 1, 1, 1),), dynamic_shapes=batch), str(tmp / "t.pt2"))
        return ["--teacher", str(tmp / "t.pt2"), "--teacher-clip-len", "4", "--teacher-size", "12,12"]
    assert kind == "onnx"
    torch.onnx.export(_tiny(user_file), (x,), str(tmp / "t.onnx"), input_names=["clip"], dynamo=False,
                      opset_version=17, dynamic_axes={"clip": {0: "n"}})
    return ["--teacher", str(tmp / "t.onnx")]  # its 4x12x12 NCTHW input is read from the model


@pytest.mark.parametrize("kind", ["checkpoint", "torchvision", "python", "torchscript", "exported", "onnx"])
def test_teacher_kind_distils_exports_and_caches(kind: str, tmp_path: Path, user_file: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    teacher = _teacher(kind, tmp_path, user_file)
    cache = ["--cache-dir", str(tmp_path / "cache")]
    out = tmp_path / "student"
    _run(["distill", *teacher, "--student", "student_tiny", "--out", str(out), "--epochs", "1", *DATA, *cache])
    m = json.loads((out / "metrics.json").read_text())
    assert m["objective"] == "distill" and m["teacher_kind"] == kind and m["teacher_cached"] is False
    assert len(list((tmp_path / "cache" / "teachers").glob("*.npz"))) == 1
    _run(["export", str(out / "best.pt"), "--out", str(tmp_path / "bundle")])
    assert (tmp_path / "bundle" / "manifest.json").is_file()

    calls_file = user_file.with_suffix(".calls")
    before = calls_file.read_text() if calls_file.exists() else ""

    def no_teacher(*a: object, **k: object) -> None:
        raise AssertionError("the teacher ran although its outputs are cached")

    monkeypatch.setattr(teacher_cache, "_run", no_teacher)
    _run(["distill", *teacher, "--student", "student_tiny", "--out", str(tmp_path / "again"), "--epochs", "1", *DATA,
          *cache])
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["teacher_cached"] is True
    assert (calls_file.read_text() if calls_file.exists() else "") == before  # the user's forward never ran


def test_contract_resamples_time_and_space_into_its_layout() -> None:
    clips = np.zeros((2, 6, 8, 8, 3), np.uint8)
    clips[:, :, :, :, 0] = (np.arange(6) * 40).reshape(1, 6, 1, 1)  # red encodes the frame index
    clips[:, :, :, :, 2] = 255
    c = TeacherInput(size=(4, 4), clip_len=3, layout=Layout.NCTHW, mean=(0, 0, 0), std=(1, 1, 1))
    x, lengths = c.prepare(clips, np.array([6, 3]))
    assert x.shape == (2, 3, 3, 4, 4) and x.dtype == np.float32 and lengths is None
    np.testing.assert_allclose(x[0, 0, :, 0, 0] * 255, [0, 80, 200], atol=1e-3)  # frames 0, 2(.5->2), 5
    np.testing.assert_allclose(x[1, 0, :, 0, 0] * 255, [0, 40, 80], atol=1e-3)   # only the 3 valid frames
    bgr = TeacherInput(size=(8, 8), clip_len=6, layout=Layout.NTHWC, colour_order=ColourOrder.BGR,
                       dtype=InputDtype.UINT8)
    y, _ = bgr.prepare(clips)
    assert y.dtype == np.uint8 and y.shape == (2, 6, 8, 8, 3) and (y[..., 0] == 255).all()


def test_torchvision_table_matches_torchvision_weights_metadata() -> None:
    from edgelstm.train.teacher_loaders import TORCHVISION, torchvision_weights

    for name, entry in TORCHVISION.items():
        t = torchvision_weights(name).transforms()
        assert tuple(t.crop_size) == entry.contract.size, name
        assert entry.contract.mean == pytest.approx(tuple(t.mean)) and entry.contract.std == pytest.approx(tuple(t.std))
        assert entry.contract.layout == Layout.NCTHW
