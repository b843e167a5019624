"""Bad inputs of the captioning task: captions CSVs (`edgelstm train --task caption --data`), words a captioner does
not know (a prefix at inference), and a teacher that is not a captioner."""
from __future__ import annotations

from pathlib import Path

from tests.bad_inputs.harness import Outcome, World, case, run_cli, run_lib


def _captions(root: Path, rows: str) -> Path:
    """Two good 4-frame videos and ``root/caps.csv`` holding ``rows`` under the header."""
    from edgelstm.data.synthetic import SyntheticActions, SyntheticConfig
    from edgelstm.data.synthetic_source import write_video

    root.mkdir(parents=True, exist_ok=True)
    ds = SyntheticActions(SyntheticConfig(size=(16, 16), clip_len=4, train=2), "train")
    for i in range(2):
        write_video(root / f"v{i}.avi", ds[i][0], 15.0)
    (root / "caps.csv").write_text("video,caption\n" + rows)
    return root / "caps.csv"


def _train(data: Path, tmp: Path) -> Outcome:
    out = run_cli("train", "--task", "caption", "--model", "captioner_tiny", "--data", data, "--size", "16,16",
                  "--clip-len", "4", "--epochs", "1", "--out", tmp / "run")
    assert not (tmp / "run").exists(), "a failed run left its --out folder behind"
    return out


def _caption_bundle(w: World) -> Path:
    """A tiny captioner's bundle, made once for the catalogue (one epoch on a few synthetic clips)."""
    bundle = w.root / "caption-bundle"
    if not bundle.is_dir():
        run = w.root / "caption-run"
        assert run_cli("train", "--task", "caption", "--model", "captioner_tiny", "--size", "16,16", "--counts",
                       "12,3,3", "--clip-len", "4", "--epochs", "1", "--out", run).code == 0
        assert run_cli("export", run / "best.pt", "--out", bundle).code == 0
    return bundle


@case("caption-empty", "data", "a captions CSV row whose caption is empty",
      "edgelstm train --task caption --data caps.csv", 1, "caps.csv:3: caption '' has no words")
def _(w: World, tmp: Path) -> Outcome:
    return _train(_captions(tmp, "v0.avi,a red bar moves left\nv1.avi,\n"), tmp)


@case("caption-video-missing", "data", "a captions CSV naming a video that does not exist",
      "edgelstm train --task caption --data caps.csv", 1, "caps.csv:3: video 'gone.avi' does not exist")
def _(w: World, tmp: Path) -> Outcome:
    return _train(_captions(tmp, "v0.avi,a red bar moves left\ngone.avi,a blue oval rises\n"), tmp)


@case("caption-header", "data", "a captions CSV without a caption column",
      "edgelstm train --task caption --data caps.csv", 1, "caps.csv:1: the header is 'video,text'")
def _(w: World, tmp: Path) -> Outcome:
    path = _captions(tmp, "")
    path.write_text("video,text\nv0.avi,a red bar\n")
    return _train(path, tmp)


@case("caption-unknown-word", "frame", "a caption prefix with a word the captioner never saw",
      "WordDecoder.greedy(state, prefix=\"a zebra\")", 2, "word 'zebra' is not in the model's vocabulary")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    from edgelstm.runtime.bundle import load_bundle
    from edgelstm.runtime.decode import WordDecoder
    from edgelstm.spec import Backend, Precision

    b = load_bundle(_caption_bundle(w))
    state = {s.input: np.zeros((1, 1, b.manifest.model.hidden_size), np.float32) for s in b.manifest.state}
    return run_lib(lambda: WordDecoder.open(b, Backend.ONNXRUNTIME, Precision.FP32).greedy(state, prefix="a zebra"))


@case("caption-teacher-not-captioner", "checkpoint", "a classifier given as a captioner's teacher",
      "edgelstm distill --task caption --teacher classifier.pt", 2, "expected a captioner checkpoint")
def _(w: World, tmp: Path) -> Outcome:
    out = run_cli("distill", "--task", "caption", "--teacher", w.ckpt, "--student", "captioner_tiny", "--size",
                  "16,16", "--counts", "4,2,2", "--clip-len", "4", "--epochs", "1", "--out", tmp / "run")
    assert not (tmp / "run" / "best.pt").exists()
    return out
