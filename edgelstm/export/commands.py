"""``edgelstm export`` and ``edgelstm quantize``: thin click commands over the library.

Heavy imports (torch, onnx, openvino, nncf) live inside the command bodies so that
``edgelstm export --help`` is instant and imports no torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgelstm.errors import UsageError
from edgelstm.quantreport import MIN_FINAL_AGREEMENT


def _size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value.replace("x", ",").split(",")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--size '{value}' is not H,W", expected="two integers like 64,64",
                         fix="pass --size 64,64") from None
    return h, w


def _print(renderable: object) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped or captured: don't squeeze the tables into 80 columns
        console = Console(width=max(console.width, 140))
    console.print(renderable)


def gate_options(f: Any) -> Any:
    """The INT8 gate's options, shared by export and quantize."""
    opts = [
        click.option("--max-drop", type=float, default=1.0, show_default=True,
                     help="Largest accuracy drop (points) INT8 may cost against FP32 on the held-out split."),
        click.option("--min-agreement", type=float, default=MIN_FINAL_AGREEMENT, show_default=True,
                     help="Smallest fraction of held-out clips whose final decision INT8 and FP32 must share."),
        click.option("--eval-clips", type=int, default=200, show_default=True,
                     help="Held-out clips the gate judges on (at least 100/max-drop and 1/(1-min-agreement))."),
        click.option("--calib-clips", type=int, default=64, show_default=True,
                     help="Training clips streamed for calibration."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@click.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Bundle folder to write (must not exist unless --force).")
@click.option("--format", "formats", default="onnx", show_default=True,
              help="Comma-separated: onnx, openvino (the IR is converted from the checked ONNX).")
@click.option("--int8", is_flag=True, help="Also quantize to INT8 behind the accuracy gate.")
@click.option("--calib-data", default=None,
              help="Data for calibration and the accuracy gate ('synthetic', a folder, .csv or .npz). "
                   "Defaults to 'synthetic' for checkpoints trained on it.")
@click.option("--size", default=None, help="Frame size H,W the bundle takes (default: the training size).")
@click.option("--graph", type=click.Choice(["split", "fused"]), default="split", show_default=True,
              help="split: encoder + step graphs (the encoder batches across streams); fused: one step graph.")
@gate_options
@click.option("--force", is_flag=True, help="Replace an existing bundle (only once the new one is complete).")
@click.option("--device", default=None,
              help="Target device profile (`edgelstm devices`, or a .toml): adds the format its backend needs.")
def export(checkpoint: Path, out: Path, formats: str, int8: bool, calib_data: str | None, size: str | None,
           graph: str, max_drop: float, min_agreement: float, eval_clips: int, calib_clips: int, force: bool,
           device: str | None) -> None:
    """Export CHECKPOINT as a streaming bundle: step, encoder and clip models plus manifest.json."""
    from edgelstm.export.exporter import export_bundle

    if device is not None:
        formats = _formats_for_device(device, formats, size)
    report = export_bundle(checkpoint, out, formats=formats, int8=int8, calib_data=calib_data, size=_size(size),
                           force=force, max_drop=max_drop, min_agreement=min_agreement, graph=graph,
                           eval_clips=eval_clips, calib_clips=calib_clips)
    _print(report.table())
    click.echo(f"bundle: {report.path}")


def _formats_for_device(device: str, formats: str, size: str | None) -> str:
    """The formats a device profile's backend needs, added to ``formats``; notes what the profile suggests."""
    from edgelstm.devices import load_profile, usable
    from edgelstm.spec import Backend

    profile = load_profile(device)
    wanted = [f.strip() for f in formats.split(",") if f.strip()]
    if profile.backend == Backend.OPENVINO and "openvino" not in wanted:
        wanted.append("openvino")
    ok, why = usable(profile)
    if not ok:
        click.echo(f"note: profile '{profile.name}' is not usable on this machine ({why}); exporting for it anyway",
                   err=True)
    if size is None:
        h, w = profile.input_size
        click.echo(f"note: profile '{profile.name}' suggests {h}x{w} input; the bundle keeps the training size "
                   f"unless you pass --size {h},{w}", err=True)
    return ",".join(wanted)


@click.command("quantize")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--calib-data", default=None,
              help="Data for calibration and the accuracy gate ('synthetic', a folder, .csv or .npz). "
                   "Defaults to 'synthetic' for bundles trained on it.")
@click.option("--backend", "backends", default=None,
              help="Comma-separated: onnxruntime, openvino (default: every backend the bundle holds).")
@gate_options
def quantize(bundle: Path, calib_data: str | None, backends: str | None, max_drop: float, min_agreement: float,
             eval_clips: int, calib_clips: int) -> None:
    """Add INT8 artefacts to BUNDLE (built beside it, swapped in whole) behind an accuracy gate."""
    from edgelstm.export.quantize import quantize_bundle
    from edgelstm.export.report import quant_table

    chosen = tuple(b.strip() for b in backends.split(",")) if backends else None
    report = quantize_bundle(bundle, calib_data=calib_data, backends=chosen, max_drop=max_drop,
                             min_agreement=min_agreement, eval_clips=eval_clips, calib_clips=calib_clips)
    _print(quant_table(report))
