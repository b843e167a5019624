"""The ``edgelstm`` command line: a thin click group.

Commands are loaded lazily from the module that owns them, so ``edgelstm demo --help`` on a
device without torch never imports torch. Each command parses options, calls one library
function and prints the result; an :class:`~edgelstm.errors.EdgeLSTMError` becomes a clean
message and exit code instead of a traceback.
"""
from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from edgelstm import __version__
from edgelstm.errors import EdgeLSTMError

# command name -> (module, attribute, one-line help). The one place that dispatches.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("edgelstm.data.commands", "data", "Generate or inspect datasets."),
    "train": ("edgelstm.train.commands", "train", "Train a model (teacher, student, lstm, ...) on a dataset."),
    "distill": ("edgelstm.train.commands", "distill", "Distill a teacher into a small causal student."),
    "eval": ("edgelstm.measure.commands", "eval_cmd", "Evaluate a checkpoint or a bundle on a dataset split."),
    "export": ("edgelstm.export.commands", "export", "Export a checkpoint as a streaming bundle (ONNX, OpenVINO)."),
    "quantize": ("edgelstm.export.commands", "quantize", "Quantize a bundle to INT8 behind an accuracy gate."),
    "devices": ("edgelstm.runtime.commands", "devices", "List device profiles and which are usable here."),
    "demo": ("edgelstm.runtime.commands", "demo", "Run a bundle live on a camera, file, URL or synthetic source."),
    "profile": ("edgelstm.measure.commands", "profile", "Profile latency per stage in the live loop."),
    "explain": ("edgelstm.measure.commands", "explain", "Show what a model decided over a stream, and why."),
    "quickstart": ("edgelstm.quickstart", "quickstart", "The whole pipeline on the embedded synthetic dataset."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table, without importing every command module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in sorted(COMMANDS)])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeLSTMError as e:
            click.secho(f"Error: {e}", fg="red", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgelstm")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """edgelstm: train, distill, export, quantize, run and profile streaming LSTM video models."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main() -> None:
    cli(prog_name="edgelstm")


if __name__ == "__main__":
    main()
