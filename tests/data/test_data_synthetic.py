import json

import numpy as np
from click.testing import CliRunner

from edgelstm.data import load_dataset
from edgelstm.data.commands import data
from edgelstm.data.synthetic import CLASSES, SyntheticActions, SyntheticConfig, trajectory


def test_deterministic_and_seed_dependent() -> None:
    a = load_dataset("synthetic", size=(16, 16), clip_len=5, counts=(20, 10, 10), seed=3)
    b = load_dataset("synthetic", size=(16, 16), clip_len=5, counts=(20, 10, 10), seed=3)
    c = load_dataset("synthetic", size=(16, 16), clip_len=5, counts=(20, 10, 10), seed=4)
    assert a["train"].X.shape == (20, 5, 16, 16, 3) and a["train"].X.dtype == np.uint8
    np.testing.assert_array_equal(a["train"].X, b["train"].X)
    assert not np.array_equal(a["train"].X, c["train"].X)
    assert not np.array_equal(a["train"].X[:10], a["test"].X[:10])  # splits are different clips
    assert a.classes == CLASSES and a.kind == "frames" and a.fps > 0
    assert sorted(np.bincount(a["train"].y)) == [2] * 10  # balanced


def test_pairs_are_time_reversals() -> None:
    """A clip of one class played backwards is a clip of its partner: with the same random draws,
    the actor's path of class 2k reversed in time is the path of class 2k+1 (rotation: the same
    turns, from a start angle that is uniform anyway)."""
    t = np.linspace(0.0, 1.0, 5)
    for pair in range(5):
        fwd = trajectory(2 * pair, np.random.default_rng(5), t, 32, 32)
        bwd = trajectory(2 * pair + 1, np.random.default_rng(5), t, 32, 32)
        moving = [k for k in ("cx", "cy", "r", "theta", "alpha") if np.ptp(fwd[k]) > (1.0 if k in ("cx", "cy") else 1e-3)]  # jitter alone is not motion
        assert moving, CLASSES[2 * pair]
        for k in moving:  # compare the per-step changes (positions carry a little unreversed jitter)
            step = np.abs(np.diff(bwd[k])).mean()
            assert np.abs(np.diff(fwd[k][::-1]) - np.diff(bwd[k])).mean() < 0.35 * step, (CLASSES[2 * pair], k)
            assert np.abs(np.diff(fwd[k]) - np.diff(bwd[k])).mean() > step, (CLASSES[2 * pair], k)


def test_cli_writes_videos_that_load_back(tmp_path) -> None:
    out = tmp_path / "syn"
    r = CliRunner().invoke(data, ["synthetic", "--out", str(out), "--size", "16,16", "--clip-len", "5",
                                  "--train", "10", "--val", "10", "--test", "10"])
    assert r.exit_code == 0, r.output
    assert len(list((out / "train").glob("*/*.avi"))) == 10
    assert json.loads((out / "synthetic.json").read_text())["splits"] == {"train": 10, "val": 10, "test": 10}
    ds = load_dataset(out, size=(16, 16), clip_len=5, cache_dir=tmp_path / "cache")
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 10, "val": 10, "test": 10}
    assert ds.classes == CLASSES  # same class ids as the embedded set, so its checkpoints evaluate here
    ref = SyntheticActions(SyntheticConfig(size=(16, 16), clip_len=5, train=10), "train")
    clip, label = ref[3]
    i = ds.classes.index(CLASSES[label])
    decoded = ds["train"].X[ds["train"].y == i][0]  # class folders hold one clip each here
    # MJPG is lossy (chroma subsampling): the mean error stays within a few levels of 255
    assert np.abs(decoded.astype(int) - clip.astype(int)).mean() < 12
    r = CliRunner().invoke(data, ["info", str(out)])
    assert r.exit_code == 0 and "split-folders" in r.output and "train 10" in r.output, r.output


def test_data_help_does_not_import_torch() -> None:
    import subprocess
    import sys
    code = ("import sys; from edgelstm.cli import cli\ntry:\n    cli.main(['data', '--help'], prog_name='edgelstm')\n"
            "except SystemExit:\n    pass\nprint('TORCH' if 'torch' in sys.modules else 'CLEAN')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip().endswith("CLEAN"), r.stdout + r.stderr
    code = "import sys, edgelstm.data, edgelstm.data.folders, edgelstm.data.features; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr
