"""A captioning bundle on the device: the Engine writes a caption at each window's end or when the action changes;
the demo puts it in the JSON lines and on the recorded frames."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgelstm.runtime.decode import Caption
from edgelstm.runtime.engine import Engine
from edgelstm.spec import C_IN, H_IN


def test_engine_captions_each_window(caption_bundle: Path, caption_data: object) -> None:
    with Engine.load(caption_bundle) as eng:
        window = eng.manifest.captioning.window  # type: ignore[union-attr]
        clip = caption_data["test"].X[0][..., ::-1]  # type: ignore[index]  # BGR, as a camera gives
        caps = [p.caption for p in (eng.step(np.ascontiguousarray(f)) for f in clip)]
        assert isinstance(caps[window - 1], Caption) and caps[window - 1].reason == "window"
        assert caps[window - 1].frame == window and caps[window - 1].token_ms
        h, c = eng.state(0)
        want = eng.narrator.decoder.greedy({H_IN: h[:, None], C_IN: c[:, None]})[0]  # type: ignore[union-attr]
        assert caps[window - 1].tokens == want.tokens  # the caption of the state after the window's last frame
        eng.reset(0)
        assert all(p.caption is None for p in (eng.step(np.ascontiguousarray(f)) for f in clip[: window - 1]))


def test_narrator_captions_on_an_action_change(caption_bundle: Path) -> None:
    from edgelstm.runtime.decode import Narrator, WordDecoder
    from edgelstm.runtime.bundle import load_bundle
    from edgelstm.spec import Backend, Precision

    b = load_bundle(caption_bundle)
    nar = Narrator(WordDecoder.open(b, Backend.ONNXRUNTIME, Precision.FP32), 2)
    st = {s.input: np.zeros((1, 1, b.manifest.model.hidden_size), np.float32) for s in b.manifest.state}
    gap = b.manifest.captioning.min_gap  # type: ignore[union-attr]
    got = [nar.update(1, 3 if i < gap else 5, st) for i in range(gap + 1)]
    assert got[gap] is not None and got[gap].reason == "action" and not any(got[:gap])


def test_demo_writes_captions_to_jsonl_and_video(caption_bundle: Path, tmp_path: Path) -> None:
    from edgelstm.runtime.demo import DemoOptions, run_demo

    jsonl, video = tmp_path / "d.jsonl", tmp_path / "d.avi"
    run_demo(caption_bundle, ("synthetic",), DemoOptions(jsonl=jsonl, record=video, max_frames=9))
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    caps = [x for x in lines if "caption" in x]
    assert len(caps) >= 2 and {c["reason"] for c in caps} <= {"window", "action"}
    assert all(c["tokens"] >= 1 and c["decode_ms"] > 0 for c in caps)
    assert video.is_file() and video.stat().st_size > 0


def test_demo_beam_option_reaches_the_narrator(caption_bundle: Path, caption_data: object, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgelstm.cli import cli

    with Engine.load(caption_bundle) as eng:
        assert eng.narrator is not None
        eng.narrator.width = 3  # what demo --beam 3 sets
        window = eng.manifest.captioning.window  # type: ignore[union-attr]
        clip = caption_data["test"].X[1][..., ::-1]  # type: ignore[index]
        caps = [p.caption for p in (eng.step(np.ascontiguousarray(f)) for f in clip[:window])]
        h, c = eng.state(0)
        want = eng.narrator.decoder.beam({H_IN: h[:, None], C_IN: c[:, None]}, width=3)
        assert caps[-1] is not None and caps[-1].tokens == want.tokens
    jsonl = tmp_path / "b.jsonl"
    r = CliRunner().invoke(cli, ["demo", str(caption_bundle), "--source", "synthetic", "--headless", "--max-frames",
                                 "9", "--jsonl", str(jsonl), "--beam", "3"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert any("caption" in json.loads(x) for x in jsonl.read_text().splitlines())


def test_demo_refuses_beam_for_a_classifier(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgelstm.cli import cli
    from tests.bundles import make_bundle, make_checkpoint

    bundle = make_bundle(tmp_path, checkpoint=make_checkpoint(tmp_path, steps=2), name="b", parity_frames=8)
    r = CliRunner().invoke(cli, ["demo", str(bundle), "--source", "synthetic", "--headless", "--max-frames", "2",
                                 "--beam", "3"])
    assert r.exit_code == 2 and "--beam 3 for a classify bundle" in r.output and "Fix: drop --beam" in r.output
