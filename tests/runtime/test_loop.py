"""The live loop: temporal gate, capture (newest frame, reconnect, stalls), file sources."""
from __future__ import annotations

import math
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes import ScriptedSource, frames, write_video
from toy_bundle import Toy

from edgelstm import spec
from edgelstm.errors import SourceError
from edgelstm.runtime.sources import Reconnect
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.clips import stream_logits
from edgelstm.runtime.loop import Decision, Rate, TemporalGate, run_loop
from edgelstm.runtime.sources import CaptureSource, open_source
from edgelstm.runtime.offline_sources import ImageFolderSource

FAST = Reconnect(attempts=3, first_s=0.01, max_s=0.05)


def _temporal(fps: float = 15.0, gap: float = 0.5, every: int = 0, on_reconnect: bool = True) -> spec.Temporal:
    return spec.Temporal(16, 1, fps, spec.ResetPolicy(gap, on_reconnect, every))


def test_gate_feeds_at_the_trained_rate() -> None:
    gate = TemporalGate(_temporal(15.0))
    fed = [t for t in np.arange(90) / 30.0 if gate.admit(float(t), 0)[0]]  # a 30 fps camera for 3 s
    assert len(fed) == 45  # every other frame
    gate = TemporalGate(_temporal(15.0), Rate.ALL)
    assert all(gate.admit(t / 30.0, 0)[0] for t in range(30))
    gate = TemporalGate(_temporal(15.0))  # a 20 fps camera: the long-run rate stays 15
    n = sum(gate.admit(t / 20.0, 0)[0] for t in range(200))
    assert abs(n - 150) <= 2


def test_gate_resets_on_gap_reconnect_and_every_n() -> None:
    gate = TemporalGate(_temporal(15.0, gap=0.5))
    assert gate.admit(0.0, 0) == (True, "")
    assert gate.admit(1 / 15, 0) == (True, "")
    assert gate.admit(1.0, 0) == (True, "gap")          # 0.93 s without a frame
    assert gate.admit(1.0 + 1 / 15, 1) == (True, "reconnect")
    assert gate.admit(0.5, 1) == (True, "time went backwards")
    gate = TemporalGate(_temporal(15.0, every=3))
    assert [gate.admit(i / 15, 0)[1] for i in range(7)] == ["", "", "", "every_frames", "", "", "every_frames"]
    gate = TemporalGate(_temporal(15.0, on_reconnect=False))
    gate.admit(0.0, 0)
    assert gate.admit(1 / 15, 1) == (True, "")
    gate = TemporalGate(_temporal(15.0))  # a file without fps has no clock: every frame, no gap logic
    assert all(gate.admit(math.nan, 0) == (True, "") for _ in range(5))


def test_live_source_keeps_only_the_newest_frame(toy: Toy) -> None:
    eng = Engine.load(toy.path)
    seen: list[int] = []

    def slow(d: Decision) -> None:
        seen.append(d.frame.index)
        threading.Event().wait(0.03)  # a slow consumer: 3 source frames per decision at 100 fps

    stats = run_loop(eng, ScriptedSource(fps=100), on_decision=slow, max_frames=8, rate="all")
    assert stats.frames_decided == 8 and stats.frames_dropped > 0
    assert max(np.diff(seen)) > 1  # frames were skipped over, never queued up
    assert stats.frames_read >= seen[-1] + 1


def test_reconnect_resets_the_state(toy: Toy) -> None:
    eng = Engine.load(toy.path)
    src = ScriptedSource(fps=200, fail_at=(5,), bad_opens=2)
    decisions: list[Decision] = []
    stats = run_loop(eng, src, on_decision=decisions.append, max_frames=12, rate="all", reconnect=FAST)
    assert stats.reconnects == 1 and src.failed_opens == 2 and stats.resets["reconnect"] == 1
    after = next(d for d in decisions if d.reset == "reconnect")
    assert after.frame.epoch == 1 and all(d.frame.epoch == 0 for d in decisions[: decisions.index(after)])
    fresh = Engine.load(toy.path)
    np.testing.assert_allclose(after.prediction.logits, fresh.step(after.frame.image).logits, atol=1e-6)


def test_source_that_never_comes_back(toy: Toy) -> None:
    src = ScriptedSource(fps=200, fail_at=(3,), bad_opens=99)
    stats = run_loop(Engine.load(toy.path), src, rate="all", reconnect=FAST)
    assert stats.ended == "source failed" and "did not come back after 3 reopen attempt(s)" in stats.error
    # a live source keeps only the newest frame: on a loaded machine one of the three may be dropped, never lost
    assert stats.frames_decided + stats.frames_dropped == 3 and stats.frames_decided >= 1


def test_stall_is_detected_and_reopened(toy: Toy) -> None:
    src = ScriptedSource(fps=200, stall_at=(4,), stall_s=0.6)
    stats = run_loop(Engine.load(toy.path), src, rate="all", max_frames=10, reconnect=FAST, stall_timeout_s=0.2)
    assert stats.stalls == 1 and stats.reconnects == 1 and stats.resets["reconnect"] == 1
    assert stats.frames_decided == 10


def test_stop_event_ends_the_loop(toy: Toy) -> None:
    stop = threading.Event()
    stats = run_loop(Engine.load(toy.path), ScriptedSource(fps=200),
                     on_decision=lambda d: stop.set() if d.number == 4 else None, stop_event=stop)
    assert stats.ended == "stopped" and stats.frames_decided == 5


def test_file_every_frame_equals_stream_logits(toy: Toy, tmp_path: Path) -> None:
    """A 15 fps file at the trained rate: every frame decided, in order, like the offline path."""
    video = write_video(tmp_path / "v.avi", frames(24, (32, 32)), fps=15.0)
    eng = Engine.load(toy.path)
    decisions: list[Decision] = []
    stats = run_loop(eng, open_source(video), on_decision=decisions.append)
    assert stats.ended == "end of source" and stats.frames_read == stats.frames_decided == 24
    assert stats.frames_dropped == 0 and [d.frame.index for d in decisions] == list(range(24))
    assert decisions[3].frame.t_media == pytest.approx(3 / 15)
    decoded = []
    cap = cv2.VideoCapture(str(video))
    while (r := cap.read())[0]:
        decoded.append(cv2.resize(r[1], (8, 8), interpolation=cv2.INTER_AREA))
    offline = stream_logits(toy.path, np.stack(decoded)[None], colour="bgr")[0]  # (T, K)
    np.testing.assert_allclose(np.stack([d.prediction.logits for d in decisions]), offline, atol=1e-5)


def test_faster_file_is_decimated_to_the_trained_rate(toy: Toy, tmp_path: Path) -> None:
    video = write_video(tmp_path / "v30.avi", frames(30, (16, 16)), fps=30.0)
    seen: list[int] = []
    stats = run_loop(Engine.load(toy.path), open_source(video), on_decision=lambda d: seen.append(d.frame.index))
    assert seen == list(range(0, 30, 2)) and stats.frames_skipped == 15


def test_truncated_file_ends_cleanly(toy: Toy, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    video = write_video(tmp_path / "t.avi", frames(40, (32, 32)), fps=15.0)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])  # the header still claims 40 frames
    src = CaptureSource(str(video))
    stats = run_loop(Engine.load(toy.path), src)
    assert stats.ended == "end of source" and not stats.error
    assert 0 < stats.frames_decided < 40
    assert "header claims 40 frames" in caplog.text


def test_image_folder(toy: Toy, tmp_path: Path) -> None:
    for i, img in enumerate(frames(5, (12, 16))):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), img)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "999.png").write_bytes(b"broken")
    stats = run_loop(Engine.load(toy.path), ImageFolderSource(tmp_path, fps=15.0))
    assert stats.frames_decided == 5 and stats.ended == "end of source"


@pytest.mark.parametrize("spec_, needle", [
    ("/no/such/video.mp4", "no such file or folder"),
    ("7", "cannot open camera 7"),
])
def test_unreadable_sources(toy: Toy, spec_: str, needle: str) -> None:
    with pytest.raises(SourceError, match=needle) as e:
        run_loop(Engine.load(toy.path), open_source(spec_))
    assert "Fix:" in str(e.value)


def test_not_a_video(toy: Toy, tmp_path: Path) -> None:
    bad = tmp_path / "x.mp4"
    bad.write_text("hello")
    with pytest.raises(SourceError, match="OpenCV cannot open"):
        run_loop(Engine.load(toy.path), open_source(bad))


def test_two_streams_share_one_engine(toy: Toy, tmp_path: Path) -> None:
    a = write_video(tmp_path / "a.avi", frames(10, (16, 16), seed=1), fps=15.0)
    b = write_video(tmp_path / "b.avi", frames(6, (16, 16), seed=2), fps=15.0)
    eng = Engine.load(toy.path, streams=2)
    got: dict[int, list[np.ndarray]] = {0: [], 1: []}
    stats = run_loop(eng, [open_source(a), open_source(b)], on_decision=lambda d: got[d.stream].append(
        d.prediction.logits))
    assert len(got[0]) == 10 and len(got[1]) == 6 and max(stats.batch_sizes) == 2
    for s, video in ((0, a), (1, b)):  # each stream's decisions equal that file alone
        alone = run_loop_logits(toy, video)
        np.testing.assert_allclose(np.stack(got[s]), alone, atol=1e-5)


def run_loop_logits(toy: Toy, video: Path) -> np.ndarray:
    out: list[np.ndarray] = []
    run_loop(Engine.load(toy.path), open_source(video), on_decision=lambda d: out.append(d.prediction.logits))
    return np.stack(out)


def test_decode_is_recorded_per_decision_beside_the_engine_stages(toy: Toy, tmp_path: Path) -> None:
    """A real video file: every decision records the source's read (decode) as its own stage; the engine's
    stages of one decision add up to at most its total."""
    path = write_video(tmp_path / "v.avi", frames(12, size=(48, 64)), fps=30.0)
    stats = run_loop(Engine.load(toy.path), CaptureSource(str(path)), rate="all")
    assert stats.frames_decided == 12
    st = {k: np.asarray(v) for k, v in stats.stages_ms.items()}
    assert len(st["decode"]) == 12 and (st["decode"] >= 0).all() and st["decode"].sum() > 0
    parts = st["preprocess"] + st["encoder"] + st["step"] + st["postprocess"]  # decision by decision
    assert (parts <= st["total"] + 1e-9).all()
    assert {"p50", "p99"} <= set(stats.summary()["latency_ms"]["decode"])
