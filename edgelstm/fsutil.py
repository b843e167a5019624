"""Atomic file and folder writes, and hashing. Standard library only (shared by both sides)."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgelstm.errors import EdgeLSTMError, UsageError


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it replaces ``dest`` in one rename.

    On any error the temporary file is removed and ``dest`` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise _disk_error(dest, e) from e
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text_atomic(dest: str | Path, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_dir(dest: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Build a folder in a staging place beside ``dest``, then move it into place whole.

    An existing ``dest`` is refused unless ``force``; with ``force`` it is replaced only once the
    new folder is complete. A failure leaves ``dest`` as it was and removes the staging folder.
    """
    dest = Path(dest)
    if dest.exists() and not force:
        raise UsageError(f"'{dest}' already exists", expected="a new output folder",
                         fix="choose another --out, or pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        yield stage
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(stage, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, dest)
    except OSError as e:
        shutil.rmtree(stage, ignore_errors=True)
        raise _disk_error(dest, e) from e
    except BaseException as e:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(e, EdgeLSTMError) and e.path and Path(e.path).is_relative_to(stage):
            # The staging folder is gone: name the file as it would have been in ``dest``.
            raise type(e)(e.what, expected=e.expected, fix=e.fix,
                          path=dest / Path(e.path).relative_to(stage)) from e
        raise


def _disk_error(dest: Path, e: OSError) -> EdgeLSTMError:
    import errno

    if e.errno == errno.ENOSPC:
        return EdgeLSTMError("the disk is full; nothing was written", path=dest,
                             fix="free some space or choose another --out, then run again")
    return EdgeLSTMError(f"could not write ({e.strerror or e})", path=dest,
                         fix="check the folder exists and is writable")
