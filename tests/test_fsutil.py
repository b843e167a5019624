"""edgelstm.fsutil: markers, output checks, writing through FIFOs and devices, following symlinks, and
a publish that never replaces a folder that appeared meanwhile (two threads and two processes racing)."""
from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from edgelstm import fsutil, noreplace
from edgelstm.errors import EdgeLSTMError, UsageError
from edgelstm.fsutil import (
    MARKER_NAME,
    OutputKind,
    atomic_dir,
    check_outputs,
    write_text_atomic,
)


def _build(dest: Path, text: str, *, force: bool = False, gate: threading.Barrier | None = None) -> None:
    with atomic_dir(dest, kind=OutputKind.BUNDLE, force=force) as stage:
        (stage / "manifest.json").write_text(text)
        if gate is not None:
            gate.wait(timeout=10)  # both writers have passed their checks before either publishes


def test_folder_gets_a_marker_and_force_replaces_only_its_kind(tmp_path: Path) -> None:
    _build(tmp_path / "b", "one")
    marker = json.loads((tmp_path / "b" / MARKER_NAME).read_text())
    assert marker["kind"] == "bundle" and marker["version"]
    _build(tmp_path / "b", "two", force=True)
    assert (tmp_path / "b" / "manifest.json").read_text() == "two"
    with pytest.raises(UsageError, match="did not write as a dataset"), \
            atomic_dir(tmp_path / "b", kind=OutputKind.DATASET, force=True):
        pass
    assert (tmp_path / "b" / "manifest.json").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_legacy_bundle_without_marker_is_replaceable_as_a_bundle(tmp_path: Path) -> None:
    old = tmp_path / "b"
    old.mkdir()
    (old / "manifest.json").write_text("0.1")
    assert fsutil.folder_kind(old) == "bundle"
    _build(old, "new", force=True)
    assert (old / "manifest.json").read_text() == "new"


def test_force_refuses_a_folder_edgelstm_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(UsageError, match="did not write as a bundle") as e:
        _build(mine, "x", force=True)
    assert "cat.jpg" in str(e.value) and "Fix:" in str(e.value)
    assert (mine / "cat.jpg").read_bytes() == b"\xff\xd8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_two_threads_racing_to_one_out_one_fails(tmp_path: Path) -> None:
    dest, gate = tmp_path / "b", threading.Barrier(2)
    results: dict[str, BaseException | None] = {}

    def go(name: str) -> None:
        try:
            _build(dest, name, gate=gate)
            results[name] = None
        except BaseException as e:  # noqa: BLE001 - recorded and checked below
            results[name] = e

    threads = [threading.Thread(target=go, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    errors = [e for e in results.values() if e is not None]
    assert len(results) == 2 and len(errors) == 1, results
    assert isinstance(errors[0], EdgeLSTMError) and "appeared while" in str(errors[0])
    winner = next(n for n, e in results.items() if e is None)
    assert (dest / "manifest.json").read_text() == winner
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"], "a staging folder was left behind"


def _race_worker(dest: str, name: str, start_at: float, q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with atomic_dir(dest, kind=OutputKind.BUNDLE) as stage:
        (stage / "manifest.json").write_text(name)
        time.sleep(max(0.0, start_at - time.time()))
    q.put(name)


def test_two_processes_racing_to_one_out_one_fails(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    start_at = time.time() + 1.0  # both have checked --out and staged before either publishes
    procs = [ctx.Process(target=_race_worker, args=(str(tmp_path / "b"), n, start_at, q)) for n in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
    codes = sorted(p.exitcode for p in procs)
    assert codes[0] == 0 and codes[1] != 0, codes
    winner = q.get(timeout=5)
    assert (tmp_path / "b" / "manifest.json").read_text() == winner
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_fallback_noreplace_without_renameat2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(noreplace, "_renameat2", lambda src, dst: False)
    (tmp_path / "s").mkdir()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("keep")
    with pytest.raises(FileExistsError):
        noreplace.rename_noreplace(tmp_path / "s", tmp_path / "d")
    (tmp_path / "f").write_text("new")
    (tmp_path / "g").write_text("old")
    with pytest.raises(FileExistsError):
        noreplace.rename_noreplace(tmp_path / "f", tmp_path / "g")
    assert (tmp_path / "g").read_text() == "old" and (tmp_path / "d" / "x").read_text() == "keep"
    noreplace.rename_noreplace(tmp_path / "s", tmp_path / "t")
    noreplace.rename_noreplace(tmp_path / "f", tmp_path / "h")
    assert (tmp_path / "t").is_dir() and (tmp_path / "h").read_text() == "new"
    assert not (tmp_path / "s").exists() and not (tmp_path / "f").exists()


def test_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []

    def read() -> None:
        with open(fifo, encoding="utf-8") as f:
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # If the writer ever waited on a reader that never came, open the FIFO ourselves so it cannot hang.
    watchdog = threading.Timer(10, lambda: open(fifo, "w").close())
    watchdog.start()
    try:
        write_text_atomic(fifo, "hello\n")
    finally:
        watchdog.cancel()
    reader.join(timeout=10)
    assert got == ["hello\n"]
    assert fifo.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_jsonl_writer_streams_to_a_fifo(tmp_path: Path) -> None:
    from edgelstm.runtime.outputs import JsonlWriter

    fifo = tmp_path / "decisions"
    os.mkfifo(fifo)
    lines: list[str] = []

    def read() -> None:
        with open(fifo, encoding="utf-8") as f:
            lines.append(f.readline())  # arrives before the writer closes: written through and flushed
            lines.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    w = JsonlWriter(fifo)
    w.write({"decision": 1})
    deadline = time.monotonic() + 10
    while not lines and time.monotonic() < deadline:
        time.sleep(0.01)
    w.write({"decision": 2})
    w.close()
    reader.join(timeout=10)
    assert lines == ['{"decision": 1}\n', '{"decision": 2}\n']
    assert fifo.is_fifo()


def test_character_device_is_written_through() -> None:
    devnull = Path(os.devnull)
    before = os.stat(devnull)
    write_text_atomic(devnull, "discarded\n")
    after = os.stat(devnull)
    assert (after.st_ino, after.st_rdev, after.st_mode) == (before.st_ino, before.st_rdev, before.st_mode)
    check_outputs(outputs=[("--jsonl", devnull)])  # allowed as an output


def test_symlink_target_is_written_and_the_link_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new"


def test_block_devices_folders_and_sockets_are_never_opened(tmp_path: Path) -> None:
    import socket

    with pytest.raises(UsageError, match="is a folder"):
        write_text_atomic(tmp_path, "x")
    sock_path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_path))
    try:
        with pytest.raises(UsageError, match="is a socket"):
            write_text_atomic(sock_path, "x")
    finally:
        s.close()
    blocks = [Path("/dev") / n for n in ("loop0", "sda", "vda", "nvme0n1") if (Path("/dev") / n).is_block_device()]
    for dev in blocks[:1]:
        with pytest.raises(UsageError, match="block device"):
            check_outputs(outputs=[("--jsonl", dev)])
        with pytest.raises(UsageError, match="block device"):
            write_text_atomic(dev, "x")


def test_unwritable_outputs_refused_before_work(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="lies under"):
        check_outputs(outputs=[("--out", tmp_path / "file" / "b")], folders=["--out"])
    with pytest.raises(EdgeLSTMError, match="cannot be written"):
        check_outputs(outputs=[("--json", Path("/proc/edgelstm-report.json"))])
    with pytest.raises(UsageError, match="is a folder"):
        check_outputs(outputs=[("--jsonl", tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"], "a probe file was left behind"


def test_outputs_vs_inputs_hardlinks_and_symlinks(tmp_path: Path) -> None:
    src = tmp_path / "s.avi"
    src.write_bytes(b"video")
    hard = tmp_path / "h.avi"
    os.link(src, hard)
    soft = tmp_path / "l.avi"
    soft.symlink_to(src)
    for out in (src, hard, soft):
        with pytest.raises(UsageError, match="same path as the input --source"):
            check_outputs(inputs=[("--source", src)], outputs=[("--record", out)])
    with pytest.raises(UsageError, match="same path as the output --record"):
        check_outputs(outputs=[("--jsonl", tmp_path / "o.txt"), ("--record", tmp_path / "o.txt")])
    check_outputs(inputs=[("--source", src), ("--source", "synthetic")], outputs=[("--record", tmp_path / "r.avi")])
    assert src.read_bytes() == b"video"


def test_sigterm_cleans_the_staging_folder(tmp_path: Path) -> None:
    """Run in a fresh interpreter: a SIGTERM inside the test process would hit whatever native threads earlier
    tests left running (onnxruntime, OpenVINO, torch), which is not what this tests."""
    import signal
    import subprocess
    import sys

    script = (
        "import os, signal, sys, time\n"
        "from pathlib import Path\n"
        "from edgelstm.fsutil import OutputKind, atomic_dir\n"
        "out = Path(sys.argv[1])\n"
        "try:\n"
        "    with atomic_dir(out / 'b', kind=OutputKind.BUNDLE) as stage:\n"
        "        (stage / 'model.onnx').write_bytes(b'half')\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(5)  # the handler raises before this ends\n"
        "finally:\n"
        "    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, 'handler not restored'\n"
    )
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 128 + signal.SIGTERM, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_file_is_replaced_only_with_force(tmp_path: Path) -> None:
    from edgelstm.errors import UsageError
    from edgelstm.fsutil import check_outputs

    old = tmp_path / "p.json"
    old.write_text("{}")
    with pytest.raises(UsageError, match="already exists .*pass --force"):
        check_outputs(outputs=[("--json", old)])
    check_outputs(outputs=[("--json", old)], force=True)
    check_outputs(outputs=[("--json", tmp_path / "new.json"), ("--jsonl", "/dev/null")])  # new, and written through
    assert old.read_text() == "{}"
