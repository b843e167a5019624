"""Safe outputs: atomic file and folder writes, output checks, and hashing. Standard library only.

The rules every command follows (issue 10 §2): no command deletes or overwrites a file or folder it
did not create, except a folder of its own kind under ``--force``.

- **Folders edgelstm creates** (a bundle, a training run, a dataset, a quickstart folder) carry a
  marker file, ``.edgelstm`` (JSON: kind and version), written inside the folder before it appears.
  ``--force`` replaces only a folder whose marker has the same kind, an empty folder, or an older
  folder of that kind written before markers existed (0.1: a bundle is a folder with
  ``manifest.json``, a run one with ``last.pt``, a dataset one with ``synthetic.json``).
- **Outputs never land on inputs**: :func:`check_outputs`, called by every command before any work,
  refuses an output that is an input (same real path, or same device and inode: symlinks and hard
  links), lies inside an input folder (a bundle, a dataset), contains an input, or collides with
  another output. It also refuses an output that cannot be written (a folder given as a file name, a
  path under a file, a read-only or virtual filesystem such as /proc or /sys), probing with a real
  temporary file, since ``os.access`` says yes to root.
- **Regular files and new paths** are written to a temporary file beside them and renamed into place.
  **Character devices and FIFOs** are written through, in place (``--jsonl /dev/stdout``, a ``mkfifo``
  pipe). **Symlinks** are followed: the link's resolved target is written (atomically if it is a
  regular file or new), and the link itself is kept. **Block devices, folders and sockets** are never
  opened for writing: refused.
- **Publishing a new folder never replaces one that appeared meanwhile**: the final rename is a
  no-replace rename (:mod:`edgelstm.noreplace`: ``renameat2(RENAME_NOREPLACE)`` on Linux, else an
  exclusive ``mkdir`` claim), so of two exports racing to one ``--out``, one fails.
- SIGTERM during a write cleans up the temporary file or folder, as Ctrl-C does.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path

from edgelstm.errors import EdgeLSTMError, UsageError
from edgelstm.noreplace import rename_noreplace

MARKER_NAME = ".edgelstm"


class OutputKind(StrEnum):
    BUNDLE = "bundle"
    RUN = "run"
    DATASET = "dataset"
    QUICKSTART = "quickstart"


# What marks a folder of each kind written before markers existed (edgelstm 0.1).
_LEGACY = {OutputKind.BUNDLE: ("manifest.json",), OutputKind.RUN: ("last.pt",),
           OutputKind.DATASET: ("synthetic.json",), OutputKind.QUICKSTART: ("bundle/manifest.json", "train")}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --- markers ----------------------------------------------------------------------------------
def write_marker(folder: str | Path, kind: OutputKind) -> None:
    from edgelstm import __version__

    write_text_atomic(Path(folder) / MARKER_NAME, json.dumps({"kind": str(kind), "version": __version__}) + "\n")


def folder_kind(folder: str | Path) -> str | None:
    """The kind of output edgelstm wrote in ``folder`` (its marker, or a 0.1 folder's telltale file), else None."""
    folder = Path(folder)
    try:
        data = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("kind"), str):
            return data["kind"]
    except (OSError, ValueError):
        pass
    for kind, telltales in _LEGACY.items():
        if all((folder / t).exists() for t in telltales):
            return str(kind)
    return None


def describe(path: str | Path) -> str:
    """What is at ``path``, in words, for an error message."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return "nothing"
    if stat.S_ISDIR(st.st_mode):
        try:
            names = sorted(p.name for p in path.iterdir())
        except OSError:
            return "a folder"
        kind = folder_kind(path)
        what = f"a {kind} folder" if kind else "a folder"
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        return f"{what} of {len(names)} entries ({shown})" if names else "an empty folder"
    return _file_type(st.st_mode)


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "a file"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "something that is not a file"


def check_replaceable(dest: str | Path, kind: OutputKind, *, force: bool, option: str = "--out") -> None:
    """Refuse a ``dest`` folder that exists, unless ``force`` and it is a ``kind`` folder edgelstm wrote (or empty)."""
    dest = Path(dest)
    if not os.path.lexists(dest):
        return
    if dest.is_symlink() or not dest.is_dir():
        raise UsageError(f"{option} '{dest}' is {describe(dest) if not dest.is_symlink() else 'a symlink'}",
                         expected=f"a new folder for the {kind}", fix=f"choose another {option}")
    if not force:
        raise UsageError(f"'{dest}' already exists", expected=f"a new output folder for the {kind}",
                         fix=f"choose another {option}, or pass --force to replace it")
    if folder_kind(dest) == str(kind) or not any(dest.iterdir()):
        return
    raise UsageError(f"{option} '{dest}' holds {describe(dest)}, which edgelstm did not write as a {kind}",
                     expected=f"a {kind} folder edgelstm wrote (it carries {MARKER_NAME}) for --force to replace",
                     fix=f"choose a new {option}; --force never replaces a folder that is not a {kind}")


def check_run_folder(out: str | Path, *, force: bool, resume: bool, inputs: Iterable[Named] = ()) -> None:
    """A training run's --out: new, empty, or a run folder edgelstm wrote (--resume continues it, --force overwrites it).

    Runs are written in place (checkpoints as training goes), so nothing is deleted; but --force only
    overwrites the files of a run, never a folder that is not one.
    """
    out = Path(out)
    check_outputs(inputs=inputs, outputs=[("--out", out)], folders=["--out"])
    if resume:
        if not (out / "last.pt").is_file():
            raise UsageError(f"--resume, but {out}/last.pt does not exist", expected="a run folder with last.pt",
                             fix="drop --resume to start a new run")
        return
    if not out.is_dir() or not any(out.iterdir()):
        return
    if folder_kind(out) == str(OutputKind.RUN):
        if not force:
            raise UsageError(f"'{out}' already holds a run", expected="a new --out folder",
                             fix="pass --resume to continue it, --force to overwrite it, or choose another --out")
        return
    raise UsageError(f"--out '{out}' holds {describe(out)}, which edgelstm did not write as a run",
                     expected=f"a new or empty folder, or a run folder edgelstm wrote (it carries {MARKER_NAME})",
                     fix="choose a new --out" + ("; --force only overwrites a run folder" if force else ""))


# --- output checks ----------------------------------------------------------------------------
Named = tuple[str, "str | Path | None"]


def check_outputs(*, inputs: Iterable[Named] = (), outputs: Iterable[Named] = (),
                  folders: Iterable[str] = (), force: bool = False) -> None:
    """Before any work: refuse outputs that are, lie in or contain an input, collide, or cannot be written,
    and output files that already exist unless ``force`` (a FIFO or a terminal is written through, not replaced).

    ``inputs`` and ``outputs`` are (option, path) pairs; paths that are None are skipped, and inputs
    that are not on disk ('synthetic', a camera index, a URL) are ignored. ``folders`` names the
    options among ``outputs`` that are folders (the rest are files; folders are checked by their marker).
    """
    folder_opts = set(folders)
    ins = [(n, Path(p)) for n, p in inputs if p is not None and os.path.lexists(str(p))]
    outs = [(n, Path(p)) for n, p in outputs if p is not None]
    for name, out in outs:
        _check_writable(name, out, folder=name in folder_opts)
    for i, (name, out) in enumerate(outs):
        for in_name, src in ins:
            _refuse_overlap(name, out, in_name, src, out_is_folder=name in folder_opts, role="input")
        for other_name, other in outs[i + 1:]:
            _refuse_overlap(name, out, other_name, other, out_is_folder=name in folder_opts, role="output",
                            other_is_folder=other_name in folder_opts)
    for name, out in outs:
        if name not in folder_opts and not force and os.path.isfile(out):
            raise UsageError(f"{name} '{out}' already exists ({describe(out)})",
                             expected="a new file (edgelstm replaces a file only when told to)",
                             fix=f"pass --force to replace it, or choose another {name}")


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # same st_dev and st_ino: symlinks and hard links
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(child: Path, parent: Path) -> bool:
    c, p = Path(os.path.realpath(child)), Path(os.path.realpath(parent))
    return c != p and c.is_relative_to(p)


def _refuse_overlap(name: str, out: Path, other_name: str, other: Path, *, out_is_folder: bool, role: str,
                    other_is_folder: bool | None = None) -> None:
    other_dir = other.is_dir() if other_is_folder is None else other_is_folder
    fix = f"write {name} somewhere else"
    if _same(out, other):
        raise UsageError(f"{name} '{out}' is the same path as the {role} {other_name} '{other}'",
                         expected="an output that is none of the command's inputs" if role == "input"
                         else "a different path for each output", fix=fix)
    if other_dir and _inside(out, other):
        raise UsageError(f"{name} '{out}' lies inside the {role} folder {other_name} '{other}'",
                         expected=f"an output outside the {role} folders", fix=fix)
    if out_is_folder and _inside(other, out):
        raise UsageError(f"{name} '{out}' contains the {role} {other_name} '{other}'",
                         expected=f"an output folder that holds none of the command's {role}s", fix=fix)


def _check_writable(name: str, out: Path, *, folder: bool) -> None:
    """The output can be created: the right type if it exists, and a parent where files can be made."""
    try:
        st = out.stat()
    except (FileNotFoundError, NotADirectoryError):
        st = None  # a path under a file is named below, at the file
    except OSError as e:
        raise EdgeLSTMError(f"{name} '{out}' cannot be used ({e.strerror})", expected="a writable path",
                            fix=f"choose another {name}") from None
    if st is not None:
        if folder and not stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{name} '{out}' is {_file_type(st.st_mode)}", expected="a folder",
                             fix=f"choose a folder for {name}")
        if not folder and not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            what = "a folder" if stat.S_ISDIR(st.st_mode) else _file_type(st.st_mode)
            raise UsageError(f"{name} '{out}' is {what}",
                             expected="a file name (or a FIFO or character device, written through)",
                             fix=f"give {name} a file name, e.g. {out / 'out' if what == 'a folder' else 'out'}"
                                 f"{out.suffix}")
        if not folder and not stat.S_ISREG(st.st_mode):
            return  # a pipe or a terminal: written through, nothing is created beside it
    real = Path(os.path.realpath(out))
    probe = real.parent  # temporary files and staging folders are made beside the output
    while not os.path.lexists(probe):
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{name} '{out}' lies under '{probe}', which is {describe(probe)}",
                         expected="a path whose parents are folders", fix=f"choose another {name}")
    _probe(name, out, probe)
    if folder and st is not None:
        _probe(name, out, real)  # an existing output folder has files written into it


def _probe(name: str, out: Path, probe: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".edgelstm-probe.", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise EdgeLSTMError(f"{name} '{out}' cannot be written: creating a file in '{probe}' fails "
                            f"({e.strerror or e})", expected="a path on a writable disk",
                            fix=f"choose a writable place for {name}") from None


def output_target(dest: str | Path) -> tuple[Path, bool]:
    """Where writing ``dest`` really goes, and whether it is written through (a FIFO or character device).

    Symlinks are followed to their target (the link is kept); block devices, folders and sockets are refused.
    """
    dest = Path(dest)
    target = Path(os.path.realpath(dest)) if dest.is_symlink() else dest
    try:
        mode = os.stat(dest).st_mode
    except FileNotFoundError:
        return target, False
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return dest, True
    if not stat.S_ISREG(mode):
        raise UsageError(f"'{dest}' is {'a folder' if stat.S_ISDIR(mode) else _file_type(mode)}",
                         expected="a file name (or a FIFO or character device, written through)",
                         fix="choose a file name for the output")
    return target, False


# --- atomic writes ------------------------------------------------------------------------------
@contextlib.contextmanager
def sigterm_cleans_up() -> Iterator[None]:
    """Within the block, SIGTERM raises SystemExit (so ``finally`` and cleanup run) instead of killing outright."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it replaces ``dest`` in one rename.

    On any error the temporary file is removed and ``dest`` is untouched. A FIFO or character device
    is yielded itself (written through); a symlink's target is written; see the module docstring.
    """
    target, through = output_target(dest)
    if through:
        yield target
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with sigterm_cleans_up():
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            os.replace(tmp_path, target)
        except OSError as e:
            tmp_path.unlink(missing_ok=True)
            raise _disk_error(Path(dest), e) from e
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise


def write_text_atomic(dest: str | Path, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_dir(dest: str | Path, *, kind: OutputKind, force: bool = False,
               inputs: Iterable[Named] = ()) -> Iterator[Path]:
    """Build a folder of ``kind`` in a staging place beside ``dest``, then move it into place whole.

    An existing ``dest`` is refused unless ``force`` and it is a ``kind`` folder edgelstm wrote (its
    marker is written into the new folder before it appears). With ``force`` it is replaced only once
    the new folder is complete; without, a ``dest`` that appeared meanwhile makes the publish fail.
    A failure leaves ``dest`` as it was and removes the staging folder.
    """
    dest = Path(dest)
    check_replaceable(dest, kind, force=force)
    check_outputs(inputs=inputs, outputs=[("--out", dest)], folders=["--out"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    with sigterm_cleans_up():
        stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
        try:
            yield stage
            write_marker(stage, kind)
            _publish(stage, dest, kind=kind, force=force)
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


def _publish(stage: Path, dest: Path, *, kind: OutputKind, force: bool) -> None:
    if force and os.path.lexists(dest):
        check_replaceable(dest, kind, force=True)  # still what it was when the command started
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
        os.rmdir(old)
        os.rename(dest, old)
        try:
            rename_noreplace(stage, dest)
        except BaseException:
            os.rename(old, dest)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        rename_noreplace(stage, dest)
    except FileExistsError:
        raise EdgeLSTMError(f"'{dest}' appeared while this command was writing it (another command writing the "
                            "same --out?); it was left as it is and nothing was written", path=None,
                            fix="run one command per --out, or pass --force to replace it") from None


def _disk_error(dest: Path, e: OSError) -> EdgeLSTMError:
    if e.errno == errno.ENOSPC:
        return EdgeLSTMError("the disk is full; nothing was written", path=dest,
                             fix="free some space or choose another --out, then run again")
    return EdgeLSTMError(f"could not write ({e.strerror or e})", path=dest,
                         fix="check the folder exists and is writable")
