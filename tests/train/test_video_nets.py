"""`edgelstm train --model torchvision:NAME --init-weights FILE`: torchvision's video classifiers as trainable teachers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgelstm.data import load_dataset
from edgelstm.errors import CheckpointError, UsageError
from edgelstm.models.checkpoint import load_checkpoint
from edgelstm.models.tv import import_torchvision
from edgelstm.train.build import build_model
from tests.bundles import run_ok

TINY = ["--data", "synthetic", "--size", "32,32", "--clip-len", "4", "--counts", "24,8,8", "--epochs", "1",
        "--batch-size", "8", "--threads", "1"]


@pytest.fixture(scope="module")
def kinetics_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for torchvision's Kinetics-400 r3d_18 file: the same keys and shapes (400 classes), other values."""
    tv = import_torchvision("test", fix="")
    torch.manual_seed(123)
    path = tmp_path_factory.mktemp("weights") / "r3d_18-k400.pth"
    torch.save(tv.models.video.r3d_18(weights=None).state_dict(), path)
    return path


def _ds():  # noqa: ANN202
    return load_dataset("synthetic", size=(32, 32), clip_len=4, counts=(12, 4, 4))


def test_init_weights_loads_every_weight_and_starts_a_new_classifier(kinetics_file: Path) -> None:
    ds = _ds()
    model, cfg = build_model("torchvision:r3d_18", ds, init_weights=kinetics_file)
    assert cfg == {"num_classes": ds.num_classes}
    file = torch.load(kinetics_file, weights_only=True)
    own = model.net.state_dict()
    body = [k for k in file if not k.startswith("fc.")]
    assert all(torch.equal(own[k], file[k]) for k in body)                  # the 400-class file's body, as it is
    assert own["fc.weight"].shape == (ds.num_classes, 512) and file["fc.weight"].shape == (400, 512)
    # a clip through the model: uint8 frames in, one logit per dataset class out, normalised as Kinetics weights want
    clip = torch.from_numpy(ds["train"].X[:2])
    assert model(clip).shape == (2, ds.num_classes)
    np.testing.assert_allclose(model.shift.flatten().numpy(), np.array([0.43216, 0.394666, 0.37645]) /
                               np.array([0.22803, 0.22145, 0.216989]), rtol=1e-5)


def test_weights_that_do_not_fit_are_refused_with_the_key(tmp_path: Path, kinetics_file: Path) -> None:
    state = torch.load(kinetics_file, weights_only=True)
    state["layer1.0.conv1.0.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match=r"shapes differ: layer1\.0\.conv1\.0\.weight"):
        build_model("torchvision:r3d_18", _ds(), init_weights=tmp_path / "wrong.pth")
    del state["layer1.0.conv1.0.weight"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(CheckpointError, match=r"missing: layer1\.0\.conv1\.0\.weight"):
        build_model("torchvision:r3d_18", _ds(), init_weights=tmp_path / "short.pth")
    with pytest.raises(UsageError, match="no such file"):
        build_model("torchvision:r3d_18", _ds(), init_weights=tmp_path / "absent.pth")


def test_a_transformer_takes_only_its_own_input_size() -> None:
    with pytest.raises(UsageError, match=r"--size 224,224 --clip-len 16"):
        build_model("torchvision:mvit_v2_s", _ds())
    with pytest.raises(UsageError, match="unknown torchvision video model 'r2plus1d'"):
        build_model("torchvision:r2plus1d", _ds())


def test_fine_tune_a_torchvision_teacher_then_distill_from_its_checkpoint(tmp_path: Path, kinetics_file: Path) -> None:
    run_ok(["train", "--model", "torchvision:r3d_18", "--init-weights", str(kinetics_file), *TINY,
            "--out", str(tmp_path / "teacher")])
    ck = load_checkpoint(tmp_path / "teacher" / "best.pt")
    assert ck.name == "torchvision:r3d_18" and not ck.model.causal
    # the fine-tuned teacher is an ordinary run checkpoint: distil it (with feature matching, through its classifier)
    run_ok(["distill", "--teacher", str(tmp_path / "teacher" / "best.pt"), *TINY, "--encoder", "tiny",
            "--feature-weight", "0.5", "--out", str(tmp_path / "student")])
    assert load_checkpoint(tmp_path / "student" / "best.pt").model.causal
    # it never streams, so export refuses it and says what to do
    from click.testing import CliRunner

    from edgelstm.cli import cli

    r = CliRunner().invoke(cli, ["export", str(tmp_path / "teacher" / "best.pt"), "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "not causal" in r.output, r.output
