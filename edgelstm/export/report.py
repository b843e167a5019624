"""rich tables for export and quantization reports (the CLI and the quickstart print them)."""
from __future__ import annotations

from typing import Any

from edgelstm.spec import Manifest


def _fmt_bytes(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def artifacts_table(manifest: Manifest) -> Any:
    from rich.table import Table

    t = Table(title="Artefacts", title_justify="left")
    for col in ("role", "backend", "precision", "runs as", "file", "size"):
        t.add_column(col)
    for a in manifest.artifacts:
        t.add_row(str(a.role), str(a.backend), str(a.precision), a.inference_precision or "-", a.files[0].path,
                  _fmt_bytes(sum(f.bytes for f in a.files)))
    return t


def parity_table(manifest: Manifest) -> Any:
    from rich.table import Table

    t = Table(title="Streaming equivalence (exported model vs reference, frame by frame)", title_justify="left")
    for col in ("artefact", "reference", "steps", "max |Δlogit|", "argmax agree", "tolerance", "result"):
        t.add_column(col)
    for r in manifest.parity:
        tol = "informational" if r.tolerance < 0 else f"{r.tolerance:g}"
        res = "[green]pass[/]" if r.passed else ("[yellow]note[/]" if r.tolerance < 0 else "[red]FAIL[/]")
        t.add_row(r.artifact, r.reference, str(r.frames), f"{r.max_abs_diff:.2e}",
                  f"{100 * r.argmax_agreement:.2f}%", tol, res)
    return t


def export_table(report: Any) -> Any:
    from rich.console import Group

    parts = [artifacts_table(report.manifest), parity_table(report.manifest)]
    if report.quantization is not None:
        parts.append(report.quantization.table())
    return Group(*parts)
