"""One base exception and a few meaningful subclasses.

Every message says what was received, what was expected, and the fix. The CLI turns an
:class:`EdgeLSTMError` into a clean message and exit code (1, or 2 for usage errors) instead
of a traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class EdgeLSTMError(Exception):
    """Base class. ``exit_code`` follows click's conventions: 2 for usage, 1 otherwise."""

    exit_code = 1

    def __init__(
        self,
        what: str,
        *,
        expected: str | None = None,
        fix: str | None = None,
        path: str | Path | None = None,
    ) -> None:
        self.what = what
        self.expected = expected
        self.fix = fix
        self.path = str(path) if path is not None else None
        super().__init__(self.format())

    def format(self) -> str:
        msg = f"{self.path}: {self.what}" if self.path else self.what
        if self.expected:
            msg += f"; expected {self.expected}"
        if self.fix:
            msg += f". Fix: {self.fix}"
        return msg


class UsageError(EdgeLSTMError):
    """Contradictory or invalid options (exit 2)."""

    exit_code = 2


class DataError(EdgeLSTMError):
    """A dataset, video, list or feature file that cannot be used."""


class CheckpointError(EdgeLSTMError):
    """A checkpoint that is not ours, is corrupt, or would need pickle to load."""


class BundleError(EdgeLSTMError):
    """A bundle, manifest or model file that fails validation."""


class ExportCheckError(EdgeLSTMError):
    """An exported artefact failed its parity check or accuracy gate."""


class DeviceError(EdgeLSTMError):
    """An unknown or unusable device profile, backend or execution provider."""


class SourceError(EdgeLSTMError):
    """A video source that cannot be opened or read."""


class FrameError(EdgeLSTMError):
    """A frame handed to the engine with the wrong shape, dtype or non-finite values."""


def closest(name: str, choices: Iterable[str]) -> str:
    """A 'did you mean' suffix for ``name`` among ``choices`` (empty when nothing is close)."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown_choice(kind: str, name: str, choices: Iterable[str], *, fix: str | None = None,
                   error: type[EdgeLSTMError] = UsageError) -> EdgeLSTMError:
    """Error for a name not in a closed set, listing the known ones and the closest match."""
    known = sorted(choices)
    return error(
        f"unknown {kind} '{name}'{closest(name, known)}",
        expected="one of " + ", ".join(known),
        fix=fix or f"use one of the {kind} values listed",
    )
