"""``edgelstm data``: generate the synthetic set as video files, or describe a dataset.

Only click at import time: ``edgelstm data --help`` stays light (no torch, no OpenCV).
"""
from __future__ import annotations

import json

import click


def parse_size(text: str) -> tuple[int, int]:
    """'64,64' or '64' -> (64, 64)."""
    from edgelstm.errors import UsageError

    parts = text.replace("x", ",").split(",")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) < 8:
        raise UsageError(f"--size '{text}'", expected="H,W in pixels, each at least 8", fix="pass e.g. --size 64,64")
    return vals[0], vals[1]


@click.group()
def data() -> None:
    """Generate or inspect datasets."""


@data.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--size", default="64,64", show_default=True, help="Frame size H,W.")
@click.option("--clip-len", default=16, show_default=True, help="Frames per clip.")
@click.option("--train", "n_train", default=2000, show_default=True, help="Clips in train.")
@click.option("--val", "n_val", default=300, show_default=True, help="Clips in val.")
@click.option("--test", "n_test", default=500, show_default=True, help="Clips in test.")
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
def synthetic(out: str, size: str, clip_len: int, n_train: int, n_val: int, n_test: int, seed: int,
              force: bool) -> None:
    """Write the synthetic actions as OUT/{train,val,test}/<class>/<clip>.avi (MJPG)."""
    from edgelstm.data.synthetic import SyntheticConfig
    from edgelstm.data.synthetic_source import write_synthetic_videos

    cfg = SyntheticConfig(size=parse_size(size), clip_len=clip_len, seed=seed, train=n_train, val=n_val,
                          test=n_test)
    counts = write_synthetic_videos(out, cfg, force=force)
    click.echo(f"wrote {sum(counts.values())} clips to {out} ({', '.join(f'{k} {v}' for k, v in counts.items())})")


@data.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(path: str, as_json: bool) -> None:
    """Describe PATH ('synthetic', a video folder, a .csv or an .npz): classes, split sizes, kind."""
    from edgelstm.data.info import describe

    facts = describe(path)
    if as_json:
        click.echo(json.dumps(facts))
        return
    click.echo(f"{facts['source']}: {facts['kind']} ({facts['layout']})")
    click.echo(f"classes ({len(facts['classes'])}): {', '.join(facts['classes'])}")
    for name, n in facts["splits"].items():
        click.echo(f"  {name:5s} {n}")
    for key in ("clip_len", "size", "feature_size"):
        if facts.get(key) is not None:
            click.echo(f"{key}: {facts[key]}")
