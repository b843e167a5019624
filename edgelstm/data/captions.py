"""Captions for the embedded synthetic clips, written from the generator's own parameters.

Each clip of :mod:`edgelstm.data.synthetic` is a pure function of (seed, split, index); :func:`clip_facts` replays
the draws :func:`~edgelstm.data.synthetic.render_clip` makes before its first frame (the background, the actor's
shape and colour, when its motion starts and ends, its trajectory) with the same generator, so the facts are
the rendered clip's, not a guess. A test renders a clip and checks the actor's colour at its centre.

:func:`captions_for` turns the facts into several reference captions ("a small red triangle moves left over a
green texture") with synonyms and word orders drawn per caption, so captioning is a language task and not a
lookup of ten fixed sentences. :func:`motion_of` reads the motion back out of any caption: the temporal part of
the task (a clip and its time-reversed partner differ only in it). numpy and OpenCV only.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from edgelstm.captionspec import words_of
from edgelstm.data.synthetic import CLASSES, SHAPES, SPLITS, background_texture, trajectory

REFERENCES = 5  # reference captions per clip

# what a clip's motion is called: one entry per synthetic class, in CLASSES order
MOTIONS: tuple[tuple[str, ...], ...] = (
    ("moves left", "slides to the left", "drifts left", "travels left"),
    ("moves right", "slides to the right", "drifts right", "travels right"),
    ("moves up", "rises", "slides upward", "drifts up"),
    ("moves down", "falls", "slides downward", "drifts down"),
    ("turns clockwise", "rotates clockwise", "spins clockwise"),
    ("turns counterclockwise", "rotates anticlockwise", "spins counterclockwise"),
    ("grows", "gets bigger", "expands"),
    ("shrinks", "gets smaller", "contracts"),
    ("fades in", "appears", "becomes visible"),
    ("fades out", "disappears", "vanishes"),
)
# the words that name each motion in any caption (what motion_of looks for), in CLASSES order
MOTION_WORDS: tuple[frozenset[str], ...] = (
    frozenset({"left"}), frozenset({"right"}), frozenset({"up", "rises", "upward"}),
    frozenset({"down", "falls", "downward"}), frozenset({"clockwise"}),
    frozenset({"counterclockwise", "anticlockwise"}), frozenset({"grows", "bigger", "expands"}),
    frozenset({"shrinks", "smaller", "contracts"}), frozenset({"in", "appears", "visible"}),
    frozenset({"out", "disappears", "vanishes"}),
)
SHAPE_WORDS = {"triangle": ("triangle",), "rectangle": ("rectangle", "bar"), "arrow": ("arrow",),
               "ell": ("corner", "hook"), "ellipse": ("ellipse", "oval")}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "big": ("big", "large")}
GROUND_WORDS = ("texture", "background", "backdrop")
_HUES = ((15, "red"), (40, "orange"), (70, "yellow"), (160, "green"), (200, "cyan"), (255, "blue"),
         (290, "purple"), (335, "pink"), (360, "red"))


def colour_name(rgb: np.ndarray) -> str:
    """A plain colour word for an RGB colour on the 0..255 scale."""
    r, g, b = (float(v) / 255.0 for v in np.clip(rgb, 0, 255))
    hue, light, sat = colorsys.rgb_to_hls(r, g, b)
    if light < 0.2:
        return "black"
    if light > 0.85:
        return "white"
    if sat < 0.25:
        return "grey"
    deg = hue * 360.0
    return next(name for top, name in _HUES if deg < top)


@dataclass(frozen=True)
class ClipFacts:
    label: int        # the motion class (index into CLASSES)
    shape: str        # one of SHAPES
    colour: str       # the actor's colour word
    size: str         # "small", "big", or "" when the size is what changes (grow/shrink)
    ground: str       # the background's colour word


def clip_facts(seed: int, split: str, index: int, *, size: tuple[int, int], frames: int) -> ClipFacts:
    """The facts of clip ``index`` of ``split``, replaying render_clip's first draws (see the module docstring)."""
    label = index % len(CLASSES)  # SyntheticActions.label: balanced classes
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    h, w = size
    bg = background_texture(rng, h, w)
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = rng.uniform(0, 255, size=3)
    colour = np.where(np.abs(colour - bg.mean((0, 1))) < 60, 255 - colour, colour)
    t_lin = np.linspace(0.0, 1.0, frames)
    start, stop = rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0)
    traj = trajectory(label, rng, np.clip((t_lin - start) / (stop - start), 0.0, 1.0), h, w)
    radius = float(traj["r"][0]) / min(h, w)  # 0.12..0.2 of the frame when the size does not change
    grows = CLASSES[label] in ("grow", "shrink")
    return ClipFacts(label, str(shape), colour_name(colour), "" if grows else "small" if radius < 0.16 else "big",
                     colour_name(bg.mean((0, 1))))


def caption(f: ClipFacts, rng: np.random.Generator) -> str:
    """One caption of ``f``: synonyms and one of five word orders drawn from ``rng``."""
    def pick(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(len(options)))]

    shape, motion, ground = pick(SHAPE_WORDS[f.shape]), pick(MOTIONS[f.label]), pick(GROUND_WORDS)
    size = pick(SIZE_WORDS[f.size]) + " " if f.size and rng.uniform() < 0.8 else ""
    actor = f"{size}{f.colour} {shape}"
    where = f"{f.ground} {ground}"
    order = int(rng.integers(5))
    if order == 0:
        return f"a {actor} {motion} over a {where}"
    if order == 1:
        return f"over a {where} a {actor} {motion}"
    if order == 2:
        return f"the {actor} {motion} on a {where}"
    if order == 3:
        return f"on a {where} the {actor} {motion}"
    return f"a {actor} {motion}"


def captions_for(seed: int, split: str, index: int, *, size: tuple[int, int], frames: int,
                 count: int = REFERENCES) -> list[str]:
    """``count`` different reference captions of one clip (deterministic in seed, split and index)."""
    f = clip_facts(seed, split, index, size=size, frames=frames)
    rng = np.random.default_rng([seed, SPLITS.index(split), index, 7])
    out: list[str] = []
    for _ in range(8 * count):  # a few draws may repeat an earlier caption
        c = caption(f, rng)
        if c not in out:
            out.append(c)
        if len(out) == count:
            break
    return out


def motion_of(text: str) -> int | None:
    """The motion class a caption names (index into CLASSES), or None when it names none or several."""
    words = words_of(text)
    found = set()
    for i, w in enumerate(words):
        for label, names in enumerate(MOTION_WORDS):
            if w not in names:
                continue
            if w in ("in", "out") and (i == 0 or words[i - 1] != "fades"):
                continue  # "fades in/out" only: "in" and "out" are common words
            if w == "clockwise" and i > 0 and words[i - 1] in ("counter", "anti"):
                continue
            found.add(label)
    return found.pop() if len(found) == 1 else None
