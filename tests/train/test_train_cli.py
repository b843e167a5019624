"""train, distill and eval through the CLI (click's CliRunner), on tiny synthetic data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgelstm.cli import cli
from edgelstm.models.checkpoint import load_checkpoint
from edgelstm.spec import DataFacts
from tests.bundles import run_ok as _run

TINY = ["--data", "synthetic", "--size", "16,16", "--clip-len", "6", "--counts", "40,20,20", "--batch-size", "8"]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "teacher"
    _run(["train", "--model", "teacher_tiny", "--out", str(out), "--epochs", "2", *TINY])
    return out


def test_train_writes_run_and_checkpoint_facts(teacher_run: Path) -> None:
    for name in ("best.pt", "last.pt", "metrics.json"):
        assert (teacher_run / name).is_file()
    m = json.loads((teacher_run / "metrics.json").read_text())
    assert m["model"] == "teacher_tiny" and len(m["history"]) == 2 and 0 <= m["test_accuracy"] <= 1
    assert m["splits"] == {"train": 40, "val": 20, "test": 20} and m["params"] > 0 and m["macs_per_frame"] > 0
    ck = load_checkpoint(teacher_run / "best.pt")
    assert isinstance(ck.data, DataFacts) and ck.data.source == "synthetic" and ck.data.synthetic_counts
    assert ck.data.size == (16, 16) and ck.data.clip_len == 6 and ck.data.kind == "frames"
    assert ck.data.feature_size == 24  # teacher_tiny's encoder output
    assert tuple(ck.config["mean"]) == ck.data.mean  # the model normalises with the data's statistics
    assert len(ck.classes) == 10


def test_existing_run_is_refused_without_resume_or_force(teacher_run: Path) -> None:
    r = CliRunner().invoke(cli, ["train", "--model", "teacher_tiny", "--out", str(teacher_run), *TINY])
    assert r.exit_code == 2 and "--resume" in r.output


def test_distill_and_eval(teacher_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    text = _run(["distill", "--teacher", str(teacher_run / "best.pt"), "--student", "student_tiny", "--out", str(out),
                 "--epochs", "1", "--alpha", "0.3", "--feature-weight", "0.1", "--stream-pairs", "--counts", "40,20,20",
                 "--batch-size", "8"])
    assert "test accuracy" in text and (out / "best.pt").is_file()
    m = json.loads((out / "metrics.json").read_text())
    assert m["objective"] == "distill" and m["distill"]["alpha"] == 0.3 and m["distill"]["stream_pairs"]
    ck = load_checkpoint(out / "best.pt")
    assert ck.data.size == (16, 16) and ck.data.clip_len == 6  # taken from the teacher
    text = _run(["eval", str(out / "best.pt"), "--json", "--out", str(tmp_path / "ev")])
    res = json.loads(text)
    # the same keys as `eval BUNDLE` (the bundle path's names: clips, accuracy_at_fraction)
    assert 0 <= res["accuracy"] <= 1 and res["clips"] == 20
    assert set(res["accuracy_at_fraction"]) == {"10%", "25%", "50%", "100%"} and res["artifact"] == "torch"
    # the causal model's last step is its output
    assert res["accuracy_at_fraction"]["100%"] == pytest.approx(res["accuracy"])
    assert np.array(res["confusion"]).sum() == 20
    assert (tmp_path / "ev" / "confusion_test.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "ev" / "eval_test.json").read_text()) == res
    text = _run(["eval", str(teacher_run / "best.pt"), "--split", "val"])
    assert "val accuracy" in text and "accuracy after seeing" in text


def test_eval_classes_mismatch_is_a_clear_error(teacher_run: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "f.npz", X=np.zeros((20, 6, 3), np.float32), y=np.arange(20) % 2)
    r = CliRunner().invoke(cli, ["eval", str(teacher_run / "best.pt"), "--data", str(tmp_path / "f.npz")])
    assert r.exit_code != 0 and "classes" in r.output and "Traceback" not in r.output


def test_resume_continues_from_last(tmp_path: Path) -> None:
    out = tmp_path / "r"
    _run(["train", "--model", "student_tiny", "--out", str(out), "--epochs", "1", *TINY])
    first = load_checkpoint(out / "last.pt", with_extra=True)
    assert first.extra["epoch"] == 1
    _run(["train", "--model", "student_tiny", "--out", str(out), "--epochs", "3", "--resume", *TINY])
    m = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in m["history"]] == [1, 2, 3]
    last = load_checkpoint(out / "last.pt", with_extra=True)
    assert last.extra["epoch"] == 3
    assert not torch.equal(last.model.state_dict()["head.weight"], first.model.state_dict()["head.weight"])
    r = CliRunner().invoke(cli, ["train", "--model", "teacher_tiny", "--out", str(out), "--epochs", "4",
                                 "--resume", *TINY])
    assert r.exit_code != 0 and "student_tiny" in r.output


def test_same_seed_same_weights(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _run(["train", "--model", "student_tiny", "--out", str(tmp_path / name), "--epochs", "1", *TINY])
    a, b = (load_checkpoint(tmp_path / n / "last.pt").model.state_dict() for n in ("a", "b"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_lstm_on_variable_length_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    X = rng.normal(size=(60, 8, 4)).astype(np.float32)
    X[:, :, 0] += np.where(y == 1, 1.5, -1.5)[:, None]  # an easy signal
    lengths = rng.integers(2, 9, size=60)
    for i, n in enumerate(lengths):
        X[i, n:] = 0
    np.savez(tmp_path / "f.npz", X=X, y=y, lengths=lengths, classes=np.array(["neg", "pos"]))
    out = tmp_path / "run"
    _run(["train", "--data", str(tmp_path / "f.npz"), "--out", str(out), "--epochs", "6", "--batch-size", "8",
          "--lr", "0.02"])
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == "lstm" and m["data"]["kind"] == "features" and m["data"]["feature_size"] == 4
    assert m["val_accuracy"] >= 0.8, m["history"]
    res = json.loads(_run(["eval", str(out / "best.pt"), "--data", str(tmp_path / "f.npz"), "--json"]))
    assert res["accuracy"] >= 0.7


def test_wrong_model_for_data_kind(tmp_path: Path) -> None:
    np.savez(tmp_path / "f.npz", X=np.zeros((20, 6, 3), np.float32), y=np.arange(20) % 2)
    r = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "f.npz"), "--model", "student",
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--model lstm" in r.output


def test_eval_of_a_bundle_goes_to_the_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder is a bundle: the dataset is loaded at the manifest's size and clip length and handed to
    edgelstm.measure.evaluate.evaluate_bundle (the torch-free path), whose result is printed as JSON."""
    from types import SimpleNamespace

    import edgelstm.measure.evaluate as rt
    import edgelstm.spec as spec

    calls = {}
    fake_manifest = SimpleNamespace(task=spec.Task.CLASSIFY, preprocess=SimpleNamespace(size=(16, 16)),
                                    temporal=SimpleNamespace(clip_len=4, frame_stride=1),
                                    data_options=lambda: {"size": (16, 16), "clip_len": 4})  # as Manifest's
    monkeypatch.setattr(spec.Manifest, "read", classmethod(lambda cls, p: fake_manifest))

    def fake_eval(path, ds, *, split, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.update(path=path, shape=ds[split].X.shape, split=split, **kw)
        return rt.EvalResult(artifact="onnxruntime:int8", split=split, clips=len(ds[split]), frames=0, accuracy=0.25,
                             per_class={}, accuracy_at_fraction={}, confusion=[], classes=(), seconds=0.0)

    monkeypatch.setattr(rt, "evaluate_bundle", fake_eval)
    (tmp_path / "bundle").mkdir()
    out = _run(["eval", str(tmp_path / "bundle"), "--data", "synthetic", "--split", "val", "--json",
                "--artifact", "onnxruntime:int8"])
    assert json.loads(out)["accuracy"] == 0.25 and json.loads(out)["artifact"] == "onnxruntime:int8"
    assert calls["shape"][1:] == (4, 16, 16, 3) and calls["split"] == "val" and calls["artifact"] == "onnxruntime:int8"


def test_eval_bundle_agrees_with_its_checkpoint(tmp_path: Path) -> None:
    """`eval BUNDLE --checkpoint CKPT`: the FP32 artefact streamed through the runtime agrees with the PyTorch
    model it came from at every frame (fp32 parity tolerance 1e-4, as export checks)."""
    from tests.bundles import make_bundle, make_checkpoint

    ckpt = make_checkpoint(tmp_path, trained=False)
    bundle = make_bundle(tmp_path, checkpoint=ckpt)
    r = CliRunner().invoke(cli, ["eval", str(bundle), "--data", "synthetic", "--checkpoint", str(ckpt), "--json",
                                 "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output.strip().splitlines()[-1])
    assert res["agreement"]["reference"] == "torch"
    assert res["agreement"]["frame_argmax_agreement"] == 1.0 and res["agreement"]["max_abs_diff"] <= 1e-4
    assert json.loads((tmp_path / "ev" / "eval_test.json").read_text())["accuracy"] == res["accuracy"]


@pytest.mark.parametrize("extra,needle", [
    (["--epochs", "2"], "--epochs 2 with --resume, but the run in"),              # the run already did 2
    (["--epochs", "3", "--size", "32,32"], "--size 32,32 with --resume"),          # it trained at 16,16
    (["--epochs", "3"], "--size 64,64 with --resume"),                             # an unset --size means 64,64
    (["--epochs", "3", "--size", "16,16", "--clip-len", "8"], "--clip-len 8 with --resume"),
])
def test_resume_must_match_the_run(teacher_run: Path, extra: list[str], needle: str) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in teacher_run.iterdir()}
    args = ["train", "--model", "teacher_tiny", "--out", str(teacher_run), "--resume", "--data", "synthetic",
            "--counts", "40,20,20", "--batch-size", "8", *extra]
    if "--clip-len" not in extra:
        args += ["--clip-len", "6"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Fix:" in r.output, r.output
    assert {p.name: p.stat().st_mtime_ns for p in teacher_run.iterdir()} == before  # nothing written


@pytest.mark.parametrize("field,value,needle", [
    ("epochs", 0, "--epochs 0"), ("batch_size", -4, "--batch-size -4"), ("lr", float("nan"), "--lr nan"),
    ("lr", 0.0, "--lr 0.0"), ("lr", -1e-3, "--lr -0.001"), ("threads", -1, "--threads -1"),
    ("label_smoothing", 1.0, "label_smoothing 1.0"), ("step_loss", float("inf"), "--step-loss inf"),
])
def test_train_config_refuses_nonsense(tmp_path: Path, field: str, value: object, needle: str) -> None:
    from edgelstm.errors import UsageError
    from edgelstm.train.config import DataConfig, TrainConfig

    with pytest.raises(UsageError, match=needle.replace("(", r"\(")) as e:
        TrainConfig(model="student_tiny", out=tmp_path / "run", **{field: value})  # type: ignore[arg-type]
    assert e.value.exit_code == 2 and "expected" in str(e.value) and "Fix:" in str(e.value)
    assert not (tmp_path / "run").exists()
    TrainConfig(model="student_tiny", out=tmp_path / "run")  # the defaults pass
    with pytest.raises(UsageError, match="--clip-len 0"):
        DataConfig(clip_len=0)


@pytest.mark.parametrize("field,value", [("alpha", 1.5), ("alpha", float("nan")), ("temperature", 0.0),
                                         ("feature_weight", -1.0)])
def test_distill_config_refuses_nonsense(field: str, value: float) -> None:
    from edgelstm.errors import UsageError
    from edgelstm.train.config import DistillConfig

    with pytest.raises(UsageError, match=f"--{field.replace('_', '-')}"):
        DistillConfig(teacher=Path("t.pt"), **{field: value})  # type: ignore[arg-type]
