"""``edgelstm train``, ``distill`` and ``eval``: parse options, build a config, call one function, print.

Only click at import time: ``edgelstm train --help`` does not import torch.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgelstm.data.commands import parse_size


def _parse_counts(text: str | None) -> tuple[int, int, int] | None:
    if not text:
        return None
    from edgelstm.errors import UsageError

    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3 or min(vals) < 1:
        raise UsageError(f"--counts '{text}'", expected="TRAIN,VAL,TEST clip counts", fix="pass e.g. --counts 1600,300,600")
    return vals  # type: ignore[return-value]


def _training_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--data", default="synthetic", show_default=True,
                     help="'synthetic', a video folder, a .csv of videos or a features .npz."),
        click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write."),
        click.option("--epochs", default=10, show_default=True),
        click.option("--batch-size", default=32, show_default=True),
        click.option("--lr", default=3e-3, show_default=True, help="Peak learning rate."),
        click.option("--schedule", type=click.Choice(["onecycle", "cosine", "constant"]), default="onecycle",
                     show_default=True),
        click.option("--seed", default=0, show_default=True),
        click.option("--size", default=None, help="Frame size H,W [default: 64,64, or the teacher's for distill]."),
        click.option("--clip-len", default=16, show_default=True, help="Frames per clip (T)."),
        click.option("--sampling", type=click.Choice(["uniform", "stride"]), default="uniform", show_default=True),
        click.option("--stride", default=2, show_default=True, help="Frame stride with --sampling stride."),
        click.option("--counts", default=None, help="Synthetic only: TRAIN,VAL,TEST clip counts."),
        click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
                     help="Where decoded videos are cached [default: $EDGELSTM_CACHE or ~/.cache/edgelstm]."),
        click.option("--threads", default=0, help="torch threads (0: torch's default)."),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt."),
        click.option("--force", is_flag=True, help="Overwrite a run already in --out."),
        click.option("--step-loss", default=0.0, show_default=True,
                     help="Weight of an extra CE at every step of a causal model."),
        click.option("--stream-pairs", is_flag=True,
                     help="Causal models: also train on pairs of clips back to back with no state reset, so the "
                          "model lets go of the last action on a continuous stream."),
    ]
    return functools.reduce(lambda f, o: o(f), reversed(opts), fn)


def _configs(model: str, kw: dict[str, Any]):  # noqa: ANN202
    from edgelstm.train.config import DataConfig, TrainConfig

    data = DataConfig(spec=kw["data"], size=parse_size(kw["size"]) if kw["size"] else None, clip_len=kw["clip_len"],
                      sampling=kw["sampling"], stride=kw["stride"], counts=_parse_counts(kw["counts"]),
                      cache_dir=Path(kw["cache_dir"]) if kw["cache_dir"] else None)
    return TrainConfig(model=model, out=Path(kw["out"]), data=data, epochs=kw["epochs"], batch_size=kw["batch_size"],
                       lr=kw["lr"], schedule=kw["schedule"], seed=kw["seed"], threads=kw["threads"],
                       resume=kw["resume"], force=kw["force"], step_loss=kw["step_loss"],
                       stream_pairs=kw["stream_pairs"])


def _report(r: Any) -> None:
    test = f"{r.test_accuracy:.4f}" if r.test_accuracy is not None else "n/a"
    click.echo(f"val accuracy {r.val_accuracy:.4f}, test accuracy {test}, {r.params:,} params, "
               f"{r.macs_per_frame:,} MACs/frame, {r.seconds:.1f}s")
    click.echo(f"best checkpoint: {r.best}")


@click.command()
@click.option("--model", default=None, help="Registered model [default: lstm for features, student for frames].")
@_training_options
def train(model: str | None, **kw: Any) -> None:
    """Train a model on a dataset; writes OUT/best.pt, OUT/last.pt and OUT/metrics.json."""
    from edgelstm.train.trainer import train as run

    if model is None:
        model = "lstm" if str(kw["data"]).lower().endswith(".npz") else "student"
    _report(run(_configs(model, kw)))


@click.command()
@click.option("--teacher", required=True, type=click.Path(dir_okay=False), help="Teacher checkpoint (RUN/best.pt).")
@click.option("--student", default="student", show_default=True, help="Registered student model.")
@click.option("--alpha", default=0.5, show_default=True, help="Weight of hard-label CE (1-alpha: soft targets).")
@click.option("--temperature", default=4.0, show_default=True)
@click.option("--step-weighting", type=click.Choice(["uniform", "linear"]), default="uniform", show_default=True,
              help="How the student's time steps are weighted in the loss.")
@click.option("--feature-weight", default=0.0, show_default=True,
              help="Weight of matching the teacher's final features (0: off).")
@_training_options
def distill(teacher: str, student: str, alpha: float, temperature: float, step_weighting: str,
            feature_weight: float, **kw: Any) -> None:
    """Distill a teacher checkpoint into a small causal student, at every time step."""
    from edgelstm.train.config import DistillConfig
    from edgelstm.train.trainer import distill as run

    dcfg = DistillConfig(teacher=Path(teacher), alpha=alpha, temperature=temperature, step_weighting=step_weighting,
                         feature_weight=feature_weight, stream_pairs=kw["stream_pairs"])
    _report(run(_configs(student, kw), dcfg))


@click.command("eval")
@click.argument("target", type=click.Path(exists=True))
@click.option("--data", default=None, help="Dataset [default: the one recorded in the checkpoint].")
@click.option("--split", default="test", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Write eval_<split>.json and confusion_<split>.png here.")
@click.option("--artifact", default=None, help="Bundle only: which artefact, e.g. onnxruntime:int8.")
@click.option("--checkpoint", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Bundle only: the PyTorch checkpoint it came from; adds per-frame argmax agreement with it.")
@click.option("--reference", default=None,
              help="Bundle only: another artefact to compare with, e.g. onnxruntime:fp32 (agreement per frame).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False))
def eval_cmd(target: str, data: str | None, split: str, as_json: bool, out: str | None, artifact: str | None,
             checkpoint: str | None, reference: str | None, cache_dir: str | None) -> None:
    """Evaluate a CHECKPOINT (.pt) or a BUNDLE folder on a dataset split."""
    path = Path(target)
    if path.is_dir():
        result = _eval_bundle(path, data, split, artifact, cache_dir, checkpoint=checkpoint, reference=reference)
        if out:
            from edgelstm.fsutil import write_text_atomic

            write_text_atomic(Path(out) / f"eval_{split}.json", json.dumps(result, indent=2) + "\n")
    else:
        from edgelstm.train.evaluate import evaluate_checkpoint

        result = evaluate_checkpoint(path, data or _recorded_source(path), split=split, out=out,
                                     cache_dir=cache_dir).to_dict()
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{split} accuracy: {result['accuracy']:.4f} (n={result.get('n', result.get('clips', '?'))})")
    if "early" in result:
        click.echo("accuracy after seeing " + ", ".join(f"{float(k):.0%}: {v:.3f}" for k, v in result["early"].items()))
    elif "accuracy_at_fraction" in result:
        click.echo("accuracy after seeing " + ", ".join(f"{k}: {v:.3f}" for k, v in
                                                        result["accuracy_at_fraction"].items()))
    if "per_class" in result:
        worst = sorted(result["per_class"].items(), key=lambda kv: kv[1])[:3]
        click.echo("weakest classes: " + ", ".join(f"{k} {v:.3f}" for k, v in worst))
    if "agreement" in result:
        a = result["agreement"]
        click.echo(f"agreement with {a['reference']}: " + ", ".join(
            f"{k} {v:.3f}" for k, v in a.items() if k != "reference" and isinstance(v, float)))
    if out:
        click.echo(f"wrote {out}/eval_{split}.json" + ("" if path.is_dir() else f" and confusion_{split}.png"))


def _recorded_source(path: Path) -> str:
    from edgelstm.models.checkpoint import load_checkpoint

    return str(load_checkpoint(path).data.get("source") or "synthetic")


def _eval_bundle(path: Path, data: str | None, split: str, artifact: str | None, cache_dir: str | None, *,
                 checkpoint: str | None = None, reference: str | None = None) -> dict:
    """The torch-free branch (torch only with --checkpoint): the runtime evaluates the bundle's artefact."""
    from edgelstm.data import load_dataset
    from edgelstm.runtime.evaluate import evaluate_bundle  # written by the runtime side
    from edgelstm.spec import Manifest

    manifest = Manifest.read(path / "manifest.json")
    size = manifest.preprocess.size if manifest.preprocess is not None else (64, 64)
    ds = load_dataset(data or "synthetic", size=size, clip_len=manifest.temporal.clip_len,
                      stride=manifest.temporal.frame_stride, cache_dir=cache_dir)
    kwargs: dict = {"artifact": artifact} if artifact else {}  # the runtime picks its default artefact otherwise
    if checkpoint:
        from edgelstm.train.evaluate import checkpoint_reference

        kwargs["checkpoint"] = checkpoint_reference(checkpoint)
    if reference:
        kwargs["reference"] = reference
    return dict(evaluate_bundle(path, ds, split=split, **kwargs))
