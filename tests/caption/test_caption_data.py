"""Captions of the embedded clips (replayed from the generator, read back for their motion) and the CSV reader."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgelstm.captionspec import SPECIALS, Captioning, check_caption, words_of
from edgelstm.data.caption_set import load_captions
from edgelstm.data.captions import MOTIONS, captions_for, clip_facts, motion_of
from edgelstm.data.synthetic import CLASSES, SyntheticActions, SyntheticConfig, render_clip
from edgelstm.errors import DataError, UsageError


def test_facts_are_the_rendered_clip() -> None:
    """The replayed colour is the colour drawn at the actor's centre (no noise, no distractor, full opacity)."""
    from edgelstm.data.captions import colour_name
    from edgelstm.data.synthetic import SHAPES, background_texture

    checked = 0
    for i in range(30):
        label = i % len(CLASSES)
        if CLASSES[label] in ("fade_in", "fade_out"):
            continue
        rng = np.random.default_rng([0, 0, i])
        bg = background_texture(rng, 48, 48)
        shape = SHAPES[rng.integers(len(SHAPES))]
        if shape not in ("triangle", "rectangle", "ellipse"):  # convex: the centre is inside
            continue
        clip = render_clip(label, np.random.default_rng([0, 0, i]), size=(48, 48), frames=6, noise=0.0,
                           distractor=False)
        f = clip_facts(0, "train", i, size=(48, 48), frames=6)
        colour = rng.uniform(0, 255, size=3)
        colour = np.where(np.abs(colour - bg.mean((0, 1))) < 60, 255 - colour, colour)
        assert f.shape == shape and f.label == label
        ys, xs = np.nonzero((np.abs(clip[0].astype(int) - colour.astype(int)) < 8).all(-1))
        assert len(ys) > 3, f"clip {i}: the actor's colour {colour_name(colour)} is not drawn"
        assert f.colour == colour_name(colour)
        checked += 1
    assert checked >= 4


def test_every_caption_names_its_motion_and_varies() -> None:
    seen = set()
    for i in range(40):
        refs = captions_for(1, "val", i, size=(32, 32), frames=8)
        assert len(refs) == len(set(refs)) >= 3
        for r in refs:
            assert motion_of(r) == i % len(CLASSES), r
            seen.add(r.split()[0])
    assert {"a", "the", "over", "on"} <= seen  # word orders vary
    assert motion_of("a red box turns counterclockwise") == CLASSES.index("rotate_ccw")
    assert motion_of("a red box turns clockwise") == CLASSES.index("rotate_cw")
    assert motion_of("a red box") is None and motion_of("it moves left and up") is None
    assert all(motion_of(p) == k for k, phrases in enumerate(MOTIONS) for p in phrases)


def test_synthetic_caption_set_and_vocabulary() -> None:
    ds = load_captions("synthetic", size=(16, 16), clip_len=4, counts=(20, 6, 6))
    assert ds["train"].X.shape == (20, 4, 16, 16, 3) and len(ds["train"].refs) == 20
    assert ds.vocab[:4] == SPECIALS and "triangle" in ds.vocab or "oval" in ds.vocab
    assert (ds["train"].y == np.arange(20) % 10).all()
    cfg = SyntheticConfig(size=(16, 16), clip_len=4, train=20, val=6, test=6, distractor=False)
    X, _ = SyntheticActions(cfg, "val").arrays()
    assert (X == ds["val"].X).all()  # the classification set's clips without the distractor: the same captions


def test_vocabulary_encode_decode_and_unknown_words() -> None:
    cap = Captioning(vocab=SPECIALS + ("a", "red", "triangle", "moves", "left"), max_words=8, window=8, min_gap=4)
    ids = cap.encode("A red triangle, moves left!")
    assert cap.decode(ids + [2, 5]) == ["a", "red", "triangle", "moves", "left"]
    assert cap.encode("a blue triangle", unknown="unk") == [4, 3, 6]
    with pytest.raises(UsageError, match="'trianlge' is not in the model's vocabulary.*did you mean 'triangle'"):
        cap.encode("a red trianlge")
    with pytest.raises(DataError, match="has no words"):
        check_caption("  ... 42 ", where="x.csv:3")
    assert words_of("Turns counter-clockwise") == ["turns", "counter", "clockwise"]


def _videos(root: Path, names: list[str]) -> None:
    from edgelstm.data.synthetic_source import write_video

    for i, n in enumerate(names):
        clip, _ = SyntheticActions(SyntheticConfig(size=(16, 16), clip_len=6, train=20), "train")[i]
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        write_video(root / n, clip, 15.0)


def test_csv_captions_several_per_video_and_split_column(tmp_path: Path) -> None:
    _videos(tmp_path, ["a.avi", "b.avi", "c.avi"])
    (tmp_path / "caps.csv").write_text("video,caption,split\na.avi,a green bar moves left,train\n"
                                       "a.avi,\"a bar, green, slides left\",train\nb.avi,a red oval rises,val\n"
                                       "c.avi,a blue ring falls,test\n")
    ds = load_captions(tmp_path / "caps.csv", size=(16, 16), clip_len=4)
    assert ds["train"].refs == [["a green bar moves left", "a bar, green, slides left"]]
    assert len(ds["val"]) == len(ds["test"]) == 1 and (ds["train"].y == -1).all()
    assert "oval" not in ds.vocab and "bar" in ds.vocab  # the vocabulary comes from training captions only


@pytest.mark.parametrize("text, message", [
    ("video,caption\na.avi,\n", "caps.csv:2: caption '' has no words"),
    ("video,caption\na.avi,a bar\nnope.avi,a dog\n", "caps.csv:3: video 'nope.avi' does not exist"),
    ("video,text\na.avi,a bar\n", "caps.csv:1: the header is 'video,text' (no caption)"),
    ("video,caption,split\na.avi,a bar,train\na.avi,a box,test\n", "is in split 'test' here and 'train' on line 2"),
    ("video,caption\n", "no captions"),
])
def test_csv_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    _videos(tmp_path, ["a.avi"])
    (tmp_path / "caps.csv").write_text(text)
    with pytest.raises(DataError) as e:
        load_captions(tmp_path / "caps.csv", size=(16, 16), clip_len=4)
    assert message in str(e.value) and "Fix:" in str(e.value)
