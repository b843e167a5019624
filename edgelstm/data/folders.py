"""Videos a user brings: a class-per-folder tree, UCF101-style split lists, or a Kinetics-style CSV.

Each form becomes a list of :class:`Entry` per split; :func:`decode_entries` turns a list into
arrays once and caches them (an .npz per split keyed by a hash of the file list, mtimes and
sampling options), so only the first epoch, or the first run, decodes.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelstm.data.dataset import SPLITS, Dataset, Kind, LoadOptions, Sampling, Split, carve, channel_stats
from edgelstm.data.video import VIDEO_EXTS, decode_clip
from edgelstm.errors import DataError
from edgelstm.fsutil import atomic_path

log = logging.getLogger(__name__)

CACHE_VERSION = 1
CACHE_ENV = "EDGELSTM_CACHE"


@dataclass(frozen=True)
class Entry:
    path: Path
    label: int
    start_s: float | None = None
    end_s: float | None = None


# --- discovery ---------------------------------------------------------------------------
def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTS)


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _entries_from_class_dirs(folder: Path, classes: list[str]) -> list[Entry]:
    out: list[Entry] = []
    for d in _class_dirs(folder):
        clips = _videos(d)
        if not clips:
            raise DataError("class folder has no video clips", expected=f"files ending in {', '.join(VIDEO_EXTS[:4])}, ...",
                            fix="add clips to it or remove the folder", path=d)
        out += [Entry(p, classes.index(d.name)) for p in clips]
    return out


def discover_folder(root: Path) -> tuple[list[str], dict[str, list[Entry]], str]:
    """Classes, entries per available split, and which layout was found."""
    split_dirs = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if "train" in split_dirs:
        classes = sorted({d.name for f in split_dirs.values() for d in _class_dirs(f)})
        declared = _declared_classes(root)
        if declared is not None and set(classes) <= set(declared):
            classes = declared  # e.g. the synthetic set on disk keeps its class ids
        if not classes:
            raise DataError("split folders hold no class folders", expected="ROOT/train/<class>/<clip>.avi",
                            fix="put each class's clips in its own folder", path=root / "train")
        return classes, {s: _entries_from_class_dirs(f, classes) for s, f in split_dirs.items()}, "split-folders"
    lists = sorted(list(root.glob("trainlist*.txt")) + list(root.glob("*/trainlist*.txt")))
    if lists:
        return _discover_ucf(root, lists[0])
    classes = [d.name for d in _class_dirs(root)]
    if not classes:
        raise DataError("no class folders here", expected="ROOT/<class>/<clip>.<ext> (optionally under "
                        "train/val/test), or UCF101 lists trainlist01.txt/testlist01.txt",
                        fix="arrange the videos one folder per class", path=root)
    return classes, {"all": _entries_from_class_dirs(root, classes)}, "class-folders"


def _declared_classes(root: Path) -> list[str] | None:
    """Class order from a ``synthetic.json`` written beside the splits, if any."""
    info = root / "synthetic.json"
    if not info.is_file():
        return None
    try:
        classes = json.loads(info.read_text()).get("classes")
    except (json.JSONDecodeError, AttributeError):
        return None
    return [str(c) for c in classes] if isinstance(classes, list) else None


def _discover_ucf(root: Path, trainlist: Path) -> tuple[list[str], dict[str, list[Entry]], str]:
    class_ind = trainlist.parent / "classInd.txt"
    if class_ind.is_file():
        classes = [line.split()[1] for line in class_ind.read_text().splitlines() if len(line.split()) >= 2]
    else:
        classes = [d.name for d in _class_dirs(root) if _videos(d)]
    testlist = trainlist.with_name(trainlist.name.replace("train", "test"))
    out = {"train": _read_list(trainlist, root, classes)}
    if testlist.is_file():
        out["test"] = _read_list(testlist, root, classes)
    return classes, out, "ucf-lists"


def _read_list(listfile: Path, root: Path, classes: list[str]) -> list[Entry]:
    entries = []
    for n, line in enumerate(listfile.read_text().splitlines(), 1):
        if not line.strip():
            continue
        rel = line.split()[0]
        cls = rel.replace("\\", "/").split("/")[0]
        if cls not in classes:
            raise DataError(f"line {n} names class '{cls}', which is not in the class list",
                            expected="one of " + ", ".join(classes[:10]) + ("..." if len(classes) > 10 else ""),
                            fix="fix the line or add the class to classInd.txt", path=listfile)
        path = root / rel
        if not path.is_file():
            raise DataError(f"line {n} names '{rel}', which does not exist under {root}",
                            expected="paths relative to the dataset folder",
                            fix="restore the missing video or remove the line", path=listfile)
        entries.append(Entry(path, classes.index(cls)))
    return entries


def discover_csv(path: Path) -> tuple[list[str], dict[str, list[Entry]]]:
    """Rows ``path,label[,start_s,end_s[,split]]``, with or without a header naming those columns."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a BOM (Excel's UTF-8 export) is dropped
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as e:
        raise DataError(f"is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}; Latin-1 or "
                        "Windows-1252 perhaps)", expected="a UTF-8 encoded CSV",
                        fix=f"re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8 {path.name} > fixed.csv",
                        path=path) from None
    if not rows:
        raise DataError("the CSV is empty", expected="rows path,label[,start_s,end_s]", path=path)
    cols = ["path", "label", "start_s", "end_s", "split"]
    header = [c.strip().lower() for c in rows[0]]
    if "path" in header and "label" in header:
        cols, rows = header, rows[1:]
    raw: list[tuple[int, Path, str, float | None, float | None, str | None]] = []
    for n, row in enumerate(rows, 2 if cols is header else 1):
        rec = dict(zip(cols, (c.strip() for c in row)))
        if not rec.get("path") or not rec.get("label"):
            raise DataError(f"row {n} has no path or label", expected="path,label[,start_s,end_s]", path=path)
        video = Path(rec["path"]).expanduser()
        video = video if video.is_absolute() else path.parent / video
        if not video.is_file():
            raise DataError(f"row {n} names '{rec['path']}', which does not exist",
                            expected="paths absolute or relative to the CSV's folder",
                            fix="restore the video or remove the row", path=path)
        try:
            start = float(rec["start_s"]) if rec.get("start_s") else None
            end = float(rec["end_s"]) if rec.get("end_s") else None
        except ValueError:
            raise DataError(f"row {n} has start/end times that are not numbers", expected="seconds, e.g. 1.5",
                            path=path) from None
        if any(t is not None and not (math.isfinite(t) and t >= 0) for t in (start, end)) or \
                (start is not None and end is not None and end <= start):
            raise DataError(f"row {n} has start {rec.get('start_s')!s}s and end {rec.get('end_s')!s}s",
                            expected="finite seconds, 0 <= start < end (or empty for the whole video)",
                            fix="fix the times, or leave both empty", path=path)
        split = rec.get("split") or None
        if split is not None and split not in SPLITS:
            raise DataError(f"row {n} has split '{split}'", expected="train, val or test", path=path)
        raw.append((n, video, rec["label"], start, end, split))
    classes = sorted({r[2] for r in raw})
    out: dict[str, list[Entry]] = {}
    for _, video, label, start, end, split in raw:
        out.setdefault(split or "all", []).append(Entry(video, classes.index(label), start, end))
    if "all" in out and len(out) > 1:
        raise DataError("some rows name a split and some do not", expected="a split on every row or on none",
                        path=path)
    return classes, out


def assign_splits(found: dict[str, list[Entry]], opts: LoadOptions) -> dict[str, list[Entry]]:
    """Carve the missing val (and test) splits, stratified and deterministic."""
    if "all" in found:
        pool, fractions = found["all"], {"train": 0.0, "val": opts.val_fraction, "test": opts.test_fraction}
    elif "val" not in found:
        pool, fractions = found["train"], {"train": 0.0, "val": opts.val_fraction}
        if "test" not in found:
            fractions["test"] = opts.test_fraction
    else:
        return found
    parts = carve(np.array([e.label for e in pool]), fractions, seed=opts.seed)
    out = {k: v for k, v in found.items() if k not in ("all", "train")}
    out.update({name: [pool[i] for i in idx] for name, idx in parts.items()})
    return out


# --- decoding and the cache --------------------------------------------------------------
def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "edgelstm")


def cache_key(entries: list[Entry], opts: LoadOptions) -> str:
    items = []
    for e in entries:
        st = e.path.stat()
        items.append([str(e.path.resolve()), e.label, st.st_mtime_ns, st.st_size, e.start_s, e.end_s])
    blob = json.dumps([CACHE_VERSION, list(opts.size), opts.clip_len, str(opts.sampling), opts.stride, items])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def decode_entries(entries: list[Entry], opts: LoadOptions, *, tag: str) -> tuple[Split, np.ndarray, np.ndarray]:
    """Arrays for ``entries`` (from the cache when present), plus per-clip source fps and frame counts."""
    cache = (opts.cache_dir or default_cache_dir()) / f"{tag}-{cache_key(entries, opts)}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as z:
                lengths = z["lengths"]
                split = Split(z["X"], z["y"], lengths if (lengths < opts.clip_len).any() else None)
                log.info("loaded %d clips from cache %s", len(split), cache)
                return split, z["fps"], z["source_frames"]
        except (OSError, KeyError, ValueError) as e:
            log.warning("ignoring unreadable cache %s (%s)", cache, e)
    h, w = opts.size
    X = np.zeros((len(entries), opts.clip_len, h, w, 3), np.uint8)
    lengths = np.zeros(len(entries), np.int64)
    fps = np.zeros(len(entries), np.float64)
    nframes = np.zeros(len(entries), np.int64)

    def one(i: int) -> None:
        e = entries[i]
        d = decode_clip(e.path, size=opts.size, clip_len=opts.clip_len, sampling=opts.sampling, stride=opts.stride,
                        start_s=e.start_s, end_s=e.end_s)
        X[i], lengths[i], fps[i], nframes[i] = d.frames, d.length, d.fps, d.source_frames

    log.info("decoding %d videos (%s)", len(entries), tag)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(one, range(len(entries))))  # list() re-raises the first DataError
    y = np.array([e.label for e in entries], np.int64)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, X=X, y=y, lengths=lengths, fps=fps, source_frames=nframes)
    except Exception as e:  # a read-only cache folder must not stop training
        log.warning("could not write the decode cache %s (%s)", cache, e)
    return Split(X, y, lengths if (lengths < opts.clip_len).any() else None), fps, nframes


def _build(source: Path, classes: list[str], found: dict[str, list[Entry]], opts: LoadOptions,
           layout: str) -> Dataset:
    per_split = assign_splits(found, opts)
    for name in ("train", "val"):
        if not per_split.get(name):
            raise DataError(f"the '{name}' split is empty", expected="at least one clip per split",
                            fix="add clips (each class needs a few to carve val/test from)", path=source)
    splits, fps_all, n_all = {}, [], []
    tag = "".join(c if c.isalnum() else "_" for c in source.name)[:40] or "data"
    for name, entries in per_split.items():
        splits[name], fps, n = decode_entries(entries, opts, tag=f"{tag}-{name}")
        fps_all.append(fps)
        n_all.append(n)
    src_fps = float(np.median(np.concatenate(fps_all)))
    if opts.sampling == Sampling.STRIDE:
        stride = opts.stride
    else:
        stride = max(1, int(round(float(np.median(np.concatenate(n_all))) / opts.clip_len)))
    mean, std = channel_stats(splits["train"].X)
    return Dataset(kind=Kind.FRAMES, classes=tuple(classes), splits=splits, source=str(source),
                   clip_len=opts.clip_len, size=opts.size, fps=round(src_fps / stride, 3) if src_fps else 0.0,
                   stride=stride, sampling=opts.sampling, mean=mean, std=std, notes={"layout": layout})


def load_video_folder(root: Path, opts: LoadOptions) -> Dataset:
    classes, found, layout = discover_folder(root)
    return _build(root, classes, found, opts, layout)


def load_video_csv(path: Path, opts: LoadOptions) -> Dataset:
    classes, found = discover_csv(path)
    return _build(path, classes, found, opts, "csv")
