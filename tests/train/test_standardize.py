"""Features data are standardised per feature on the train split, in the model, and so in every exported graph."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from edgelstm.cli import cli
from edgelstm.data import load_dataset
from edgelstm.models.checkpoint import load_checkpoint
from tests.bundles import feature_sequences

SCALES = np.array([1000.0, 1e-3, 1.0, 50.0, 1.0, 1.0, 1.0, 1.0], np.float32)  # real features: wildly different
OFFSETS = np.array([5000.0, 0.0, -3.0, 0.0, 0.0, 0.0, 0.0, 0.0], np.float32)


def _npz(tmp_path: Path) -> Path:
    X, y = feature_sequences(96, feature_size=8, num_classes=4, clip_len=6)
    lengths = np.full(len(y), 6)
    lengths[::5] = 4  # padded sequences: the padding must not enter the statistics
    X = X * SCALES + OFFSETS
    X[lengths == 4, 4:] = 1e6  # padding values far off, to prove they are masked
    path = tmp_path / "f.npz"
    np.savez(path, X=X, y=y, lengths=lengths, classes=np.array([f"c{i}" for i in range(4)]))
    return path


def test_statistics_are_the_train_splits_valid_steps(tmp_path: Path) -> None:
    ds = load_dataset(_npz(tmp_path), seed=0)
    X, _, lengths = ds["train"]
    rows = np.concatenate([x[:n] for x, n in zip(X, lengths)]).astype(np.float64)  # (steps, F), no padding
    np.testing.assert_allclose(ds.feature_mean, rows.mean(0), rtol=1e-6)
    np.testing.assert_allclose(ds.feature_std, rows.std(0), rtol=1e-6)
    assert ds.facts().feature_mean == ds.feature_mean  # the checkpoint's data facts carry them


def test_standardised_in_checkpoint_manifest_and_exported_graphs(tmp_path: Path) -> None:
    from edgelstm.runtime.clips import stream_logits
    from edgelstm.runtime.engine import Engine

    data = _npz(tmp_path)
    base = ["train", "--data", str(data), "--epochs", "2", "--batch-size", "16", "--clip-len", "6"]
    r = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    ds = load_dataset(data, seed=0)
    assert ck.config["feature_mean"] == list(ds.feature_mean) and ck.model.standardized
    r = CliRunner().invoke(cli, ["export", str(tmp_path / "run" / "best.pt"), "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output  # the export's own parity check: graphs == PyTorch within 1e-4
    eng = Engine.load(tmp_path / "b")
    norm = eng.manifest.features
    assert norm is not None  # float32 in the model: equal to the data's float64 statistics to 1e-6
    np.testing.assert_allclose(norm.mean, ds.feature_mean, rtol=1e-6)
    np.testing.assert_allclose(norm.std, ds.feature_std, rtol=1e-6)
    X = ds["test"].X[:4]
    import torch

    with torch.no_grad():
        ref = ck.model.step_logits(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(stream_logits(eng.bundle, X, engine=eng), ref, atol=1e-4)  # raw features in
    r = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "raw"), "--no-standardize"])
    assert r.exit_code == 0, r.output
    raw = load_checkpoint(tmp_path / "raw" / "best.pt")
    assert "feature_mean" not in raw.config and not raw.model.standardized
