"""Bad sources (`edgelstm demo --source`) and bad frames or features handed to `Engine.step`."""
from __future__ import annotations

import dataclasses
import socket
import threading
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tests.bad_inputs.harness import Outcome, World, _demo, case, run_cli, run_lib


# === sources (edgelstm demo --source) =======================================================
@case("source-missing", "source", "a --source file that does not exist", "edgelstm demo B --source gone.mp4", 1,
      "no such file or folder")
def _(w: World, tmp: Path) -> Outcome:
    return _demo(w.bundle, "--source", tmp / "gone.mp4")


@case("source-not-a-video", "source", "a --source file that is not a video", "edgelstm demo B --source notes.mp4",
      1, "OpenCV cannot open")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "notes.mp4").write_text("hello\n")
    return _demo(w.bundle, "--source", tmp / "notes.mp4")


@case("source-camera-missing", "source", "a camera index that does not exist", "edgelstm demo B --source 9", 1,
      "OpenCV cannot open camera 9")
def _(w: World, tmp: Path) -> Outcome:
    return _demo(w.bundle, "--source", "9")

@contextmanager
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP port on 127.0.0.1 that accepts connections and never says a word."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.1)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:  # the 0.1 s accept timeout
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1], conns
    finally:
        stop.set()
        t.join(2.0)
        for c in conns:
            c.close()
        srv.close()


@case("source-url-silent", "source", "a stream URL that accepts the connection and never answers",
      "edgelstm demo B --source http://127.0.0.1:PORT/live --open-timeout 1", 1,
      "cannot open http://127.0.0.1")
def _(w: World, tmp: Path) -> Outcome:
    import time

    with silent_server() as (port, conns):
        t0 = time.monotonic()
        out = _demo(w.bundle, "--source", f"http://127.0.0.1:{port}/live", "--open-timeout", "1")
        took = time.monotonic() - t0
        assert conns, "the URL was never tried"
    assert took < 15, f"a silent URL held the demo for {took:.1f} s"
    return dataclasses.replace(out, text=out.text.replace(f":{port}/", ":PORT/"))


@case("source-folder-empty", "source", "an image folder with no images", "edgelstm demo B --source frames/", 1,
      "frames: holds no images")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "frames").mkdir()
    (tmp / "frames" / "README.txt").write_text("x")
    return _demo(w.bundle, "--source", tmp / "frames")


@case("source-video-short", "source", "a video whose header claims more frames than it holds (handled: warns, "
      "decides on the frames it has, exit 0)", "edgelstm demo B --source cut.avi", 0,
      "the header claims 40 frames but the file holds", guidance="ended at the real end")
def _(w: World, tmp: Path) -> Outcome:
    data = w.video.read_bytes()
    (tmp / "cut.avi").write_bytes(data[: len(data) // 2])
    out = run_cli("demo", w.bundle, "--headless", "--source", tmp / "cut.avi", "--jsonl", tmp / "d.jsonl")
    decided = len((tmp / "d.jsonl").read_text().splitlines())
    assert 0 < decided < 40, decided
    return out


# === frames handed to Engine.step (the library) ============================================
@case("frame-channels", "frame", "a 4-channel (BGRA) frame", "engine.step(frame)", 1,
      "a frame of shape [32, 32, 4]")
def _(w: World, tmp: Path) -> Outcome:
    return run_lib(lambda: w.engine().step(np.zeros((32, 32, 4), np.uint8)))


@case("frame-gray", "frame", "a grey (H, W) frame", "engine.step(frame)", 1, "a frame of shape [32, 32]")
def _(w: World, tmp: Path) -> Outcome:
    return run_lib(lambda: w.engine().step(np.zeros((32, 32), np.uint8)))


@case("frame-batch", "frame", "a batch of frames instead of one frame", "engine.step(frames)", 1,
      "a frame of shape [2, 32, 32, 3]")
def _(w: World, tmp: Path) -> Outcome:
    return run_lib(lambda: w.engine().step(np.zeros((2, 32, 32, 3), np.uint8)))


@case("frame-nan", "frame", "a float frame holding NaN/Inf", "engine.step(frame)", 1,
      "a float32 frame with NaN/Inf values")
def _(w: World, tmp: Path) -> Outcome:
    frame = np.zeros((32, 32, 3), np.float32)
    frame[3, 4] = np.nan
    frame[5, 6] = np.inf
    return run_lib(lambda: w.engine().step(frame))


@case("features-size", "frame", "a feature vector of the wrong size (feature model)", "engine.step(features)", 1,
      "features of shape [5]")
def _(w: World, tmp: Path) -> Outcome:
    return run_lib(lambda: w.engine("features").step(np.zeros(5, np.float32)))


@case("features-inf", "frame", "a feature vector holding Inf (feature model)", "engine.step(features)", 1,
      "features with 1 NaN/Inf value(s)")
def _(w: World, tmp: Path) -> Outcome:
    x = np.zeros(8, np.float32)
    x[2] = np.inf
    return run_lib(lambda: w.engine("features").step(x))


@case("frame-stream", "frame", "a stream id the engine does not have", "engine.step(frame, stream=3)", 2,
      "stream 3")
def _(w: World, tmp: Path) -> Outcome:
    return run_lib(lambda: w.engine().step(np.zeros((32, 32, 3), np.uint8), stream=3))
