"""Faults while running: sources that die, hang or come back; non-finite state; signals.

An unattended box must keep going through a camera unplugged and replugged, give up (with a clear
error) on one that never answers rather than wait forever, survive a model state that goes NaN,
and flush what it has written when it is told to stop.
"""
from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes import ScriptedSource
from toy_bundle import Toy, make_toy_bundle

from edgelstm.errors import SourceError
from edgelstm.runtime.sources import Reconnect
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.loop import Decision, run_loop
from edgelstm.runtime.sources import RawFrame


class FlakySource(ScriptedSource):
    """A camera that is unplugged at read ``fail_at`` (raising ``error``), and whose reopens are timed."""

    def __init__(self, *, error: Exception, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.error = error
        self.open_times: list[float] = []

    def open(self) -> None:
        self.open_times.append(time.monotonic())
        super().open()

    def read(self) -> RawFrame | None:
        try:
            return super().read()
        except SourceError:
            raise self.error from None


@pytest.mark.parametrize("error", [SourceError("camera unplugged"), OSError(104, "Connection reset by peer"),
                                   cv2.error("stream cut")], ids=["source-error", "os-error", "cv2-error"])
def test_source_dying_midstream_is_reopened_with_backoff(toy: Toy, error: Exception,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    src = FlakySource(error=error, fps=200, fail_at=(6,), bad_opens=2)
    policy = Reconnect(attempts=4, first_s=0.05, max_s=1.0, factor=2.0)
    decisions: list[Decision] = []
    with caplog.at_level(logging.WARNING):
        stats = run_loop(Engine.load(toy.path), src, on_decision=decisions.append, max_frames=14, rate="all",
                         reconnect=policy)
    assert stats.ended == "max frames" and not stats.error  # the loop went on after the outage
    assert stats.reconnects == 1 and src.failed_opens == 2 and stats.resets["reconnect"] == 1
    # open 0 is the start; 1, 2 fail; 3 succeeds. The waits before them follow the back-off: 0.05, 0.1, 0.2 s.
    waits = np.diff(src.open_times[1:])
    assert len(src.open_times) == 4
    assert waits[0] == pytest.approx(0.1, abs=0.05) and waits[1] == pytest.approx(0.2, abs=0.07)
    assert "reopen attempt 1/4 failed" in caplog.text and "reopened after" in caplog.text
    # The state was reset: the first decision after the outage equals a fresh engine's first step.
    after = next(d for d in decisions if d.reset == "reconnect")
    assert after.frame.epoch == 1
    np.testing.assert_allclose(after.prediction.logits, Engine.load(toy.path).step(after.frame.image).logits,
                               atol=1e-6)
    before = decisions[decisions.index(after) - 1]
    assert not np.allclose(before.prediction.logits,  # ...while before it the state carried history
                           Engine.load(toy.path).step(before.frame.image).logits, atol=1e-6)


class HangingSource(ScriptedSource):
    """A live source whose read blocks forever from read ``hang_at`` (a stream that stops sending)."""

    def __init__(self, hang_at: int, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.hang_at = hang_at
        self.released = threading.Event()

    def read(self) -> RawFrame | None:
        if self.reads >= self.hang_at:
            self.released.wait()  # only close() lets it go
            raise SourceError("closed")
        return super().read()

    def close(self) -> None:
        self.released.set()


def test_stalled_source_is_reported_not_waited_on(toy: Toy, caplog: pytest.LogCaptureFixture) -> None:
    src = HangingSource(hang_at=4, fps=200)
    policy = Reconnect(attempts=1, first_s=0.05, max_s=0.05)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING):
        stats = run_loop(Engine.load(toy.path), src, rate="all", reconnect=policy, stall_timeout_s=0.2)
    took = time.monotonic() - t0
    assert stats.frames_decided == 4 and stats.stalls == 1
    assert stats.ended == "source failed" and "stalled: no frame for" in stats.error
    assert "reopening did not help" in stats.error and "--stall-timeout" in stats.error
    assert "(stalled); reopening it" in caplog.text
    # give-up bound: stall_timeout * (attempts + 1) + back-off = 0.45 s, then at most 2 s to join the thread
    assert took < 5.0, f"a stalled source held the loop for {took:.1f} s"


def test_demo_reports_a_stalled_source(toy: Toy, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the CLI: exit 1 and the stall named, after the summary, with no traceback."""
    from click.testing import CliRunner

    from edgelstm.cli import cli
    import edgelstm.runtime.sources as sources

    monkeypatch.setattr(sources, "open_source", lambda *a, **k: HangingSource(hang_at=3, fps=200))
    r = CliRunner().invoke(cli, ["demo", str(toy.path), "--headless", "--stall-timeout", "0.2",
                                 "--reconnect-attempts", "1"])
    assert r.exit_code == 1, r.output
    assert "stalled: no frame for" in r.output and "Fix:" in r.output and "frames decided" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


class ListSource:
    """A file-like (not live) source that hands over fixed frames."""

    live, fps, name = False, 15.0, "list"

    def __init__(self, imgs: list[np.ndarray]) -> None:
        self.imgs, self.i = imgs, 0

    def open(self) -> None:
        self.i = 0

    def read(self) -> RawFrame | None:
        if self.i >= len(self.imgs):
            return None
        self.i += 1
        return RawFrame(self.imgs[self.i - 1], (self.i - 1) / self.fps)

    def close(self) -> None:
        pass


def test_non_finite_state_is_reset_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A frame that drives the LSTM state to NaN: warned, no decision for it, the next frame starts afresh."""
    toy = make_toy_bundle(tmp_path / "poison", poison=True)  # h_out is NaN where feature 0 < 0
    # Light the pixels that push feature 0 up (good) or down (bad); the toy graph takes RGB, the engine BGR.
    up = (toy.w_enc[:, 0] > 0).reshape(8, 8, 3)
    good = np.ascontiguousarray((up * 255).astype(np.uint8)[..., ::-1])
    bad = np.ascontiguousarray((~up * 255).astype(np.uint8)[..., ::-1])
    f0 = toy.encode(np.stack([good, bad])[..., ::-1])[:, 0]
    assert f0[0] > 0 > f0[1]
    decisions: list[Decision] = []
    with caplog.at_level(logging.WARNING):
        stats = run_loop(Engine.load(toy.path), ListSource([good, good, bad, good, good]),
                         on_decision=decisions.append, rate="all")
    assert stats.ended == "end of source" and stats.frames_decided == 5
    assert stats.resets["non-finite state"] == 1
    assert "the LSTM state became non-finite" in caplog.text and "state reset" in caplog.text
    poisoned = decisions[2].prediction
    assert poisoned.reset == "non-finite state" and poisoned.index == -1 and poisoned.label == ""
    fresh = Engine.load(toy.path).step(good)
    np.testing.assert_allclose(decisions[3].prediction.logits, fresh.logits, atol=1e-6)  # zero state again
    assert all(np.isfinite(d.prediction.logits).all() for i, d in enumerate(decisions) if i != 2)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_demo_cleanly_and_flushes(toy: Toy, tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C or a service manager's stop: exit 0, JSON lines complete, the recording playable."""
    out, rec = tmp_path / "d.jsonl", tmp_path / "r.avi"
    p = subprocess.Popen([sys.executable, "-m", "edgelstm", "demo", str(toy.path), "--source", "synthetic",
                          "--headless", "--jsonl", str(out), "--record", str(rec), "--fps", "30"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / ".d.jsonl.partial"
    deadline = time.monotonic() + 40
    while not partial.exists() or partial.stat().st_size == 0:
        assert time.monotonic() < deadline and p.poll() is None, p.stderr.read() if p.stderr else ""
        time.sleep(0.1)
    time.sleep(0.5)
    p.send_signal(sig)
    _, stderr = p.communicate(timeout=30)
    assert p.returncode == 0, stderr
    assert "stopped" in stderr and "Traceback" not in stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]  # every line whole
    assert len(lines) >= 2 and [x["decision"] for x in lines] == list(range(len(lines)))
    cap = cv2.VideoCapture(str(rec))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == len(lines)  # one recorded frame per decision (one stream), nothing lost at the end
    assert not list(tmp_path.glob(".*partial*"))


def _profile_until(args: list[str], marker: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-m", "edgelstm", "profile", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    seen = ""
    deadline = time.monotonic() + 60
    while marker not in seen:
        assert time.monotonic() < deadline and p.poll() is None, seen
        seen += p.stderr.readline()
    return p


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_before_any_row_leaves_the_previous_report(toy: Toy, tmp_path: Path, sig: signal.Signals) -> None:
    """`edgelstm profile` stopped during its first configuration: exit 0 like demo, no traceback, and its
    --json (nothing measured) neither half-written nor replacing the previous report."""
    report = tmp_path / "r.json"
    report.write_text('{"previous": true}\n')
    p = _profile_until([str(toy.path), "--no-baselines", "--frames", "5000", "--json", str(report), "--force"], "profiling")
    time.sleep(0.5)
    p.send_signal(sig)
    out, stderr = p.communicate(timeout=30)
    assert p.returncode == 0 and "Traceback" not in out + stderr, stderr
    assert "Interrupted" in stderr and "no report written" in stderr
    assert report.read_text() == '{"previous": true}\n'
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.json"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_keeps_the_rows_completed_so_far(toy: Toy, tmp_path: Path, sig: signal.Signals) -> None:
    """Stopped during the multi-stream part: the configurations already measured are printed and written
    (atomically), the JSON says where it stopped, and the interrupted part is left out."""
    report = tmp_path / "r.json"
    p = _profile_until([str(toy.path), "--no-baselines", "--device", "cpu", "--precision", "fp32", "--frames", "10",
                        "--warmup", "2", "--streams", "2", "--json", str(report)], "streams: one engine")
    time.sleep(0.3)
    p.send_signal(sig)
    out, stderr = p.communicate(timeout=30)
    assert p.returncode == 0 and "Traceback" not in out + stderr, stderr
    assert "Interrupted" in stderr and "onnxruntime fp32" in out  # the completed row's table
    data = json.loads(report.read_text())
    assert len(data["rows"]) == 1 and data["rows"][0]["frames"] == 10 and data["streams"] == []
    assert "2 streams" in data["interrupted"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.json"]
