"""What a dataset holds, without decoding a video: classes, split sizes, kind."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.data.dataset import LoadOptions, load_dataset
from edgelstm.data.synthetic import CLASSES, SyntheticConfig
from edgelstm.errors import DataError


def describe(spec: str | Path) -> dict[str, Any]:
    text = str(spec)
    if text == "synthetic":
        cfg = SyntheticConfig()
        return {"source": "synthetic", "kind": "frames", "layout": "embedded", "classes": list(CLASSES),
                "splits": {"train": cfg.train, "val": cfg.val, "test": cfg.test}, "clip_len": cfg.clip_len,
                "size": list(cfg.size)}
    path = Path(text)
    if path.is_dir() or path.suffix.lower() == ".csv":
        from edgelstm.data.folders import assign_splits, discover_csv, discover_folder

        if not path.exists():
            raise DataError("no such file or folder", path=path)
        if path.is_dir():
            classes, found, layout = discover_folder(path)
        else:
            (classes, found), layout = discover_csv(path), "csv"
        carved = assign_splits(found, LoadOptions())
        return {"source": str(path), "kind": "frames", "layout": layout, "classes": list(classes),
                "splits": {k: len(v) for k, v in carved.items()}}
    ds = load_dataset(path)
    facts = ds.summary()
    facts["layout"] = "npz"
    if ds.kind == "features":
        lengths = [s.lengths for s in ds.splits.values() if s.lengths is not None]
        facts["variable_length"] = bool(lengths and any((ln < ds.clip_len).any() for ln in lengths))
        facts["min_length"] = int(min(np.min(ln) for ln in lengths)) if lengths else ds.clip_len
    return facts
