"""Drawing an :class:`~edgelstm.measure.explain.Explanation`: one PNG, five panels over the same time axis.

1. probabilities of the top classes, the ground truth as a coloured band where it is known;
2. the top layer's mean input, forget and output gates, and its mean |c|;
3. the most active units' hidden state;
4. temporal saliency: for each decision (x), which earlier frames (y) it depends on;
5. saliency over the frames for the last decision of each ground-truth segment (or of the stream).

matplotlib loads inside :func:`plot_explanation` with the Agg backend; the PNG is written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgelstm.fsutil import atomic_path

if TYPE_CHECKING:
    from edgelstm.measure.explain import Explanation

GATE_COLOURS = {"i": "tab:green", "f": "tab:red", "o": "tab:blue"}


def plot_explanation(expl: Explanation, path: Path, *, top_classes: int = 5, top_units: int = 16) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(5, 1, figsize=(10, 13), height_ratios=[3, 2, 2, 3, 2], layout="constrained")
    _probabilities(axes[0], expl, top_classes, plt)
    _gates(axes[1], expl)
    _units(axes[2], expl, top_units)
    _saliency(axes[3], expl)
    _segment_saliency(axes[4], expl)
    n = len(expl.logits)
    for ax in axes:
        ax.set_xlim(-0.5, n - 0.5)
        for b in boundaries(expl):
            ax.axvline(b - 0.5, color="black", linewidth=0.6, linestyle=":")
    axes[3].set_xlabel("decision (step)")
    fig.suptitle(f"{expl.model.name} on {expl.stream.source}: {n} steps, occlusion by "
                 f"{expl.occlude} frame, window {expl.window}", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=72)
    plt.close(fig)
    return path


def boundaries(expl: Explanation) -> list[int]:
    """Steps where the ground truth changes or the state was reset (not the start)."""
    truth, resets = expl.stream.truth, expl.stream.resets
    out = {t for t in range(1, len(truth)) if truth[t] != truth[t - 1] and truth[t] >= 0 and truth[t - 1] >= 0}
    out |= {int(t) for t in np.flatnonzero(resets) if t > 0}
    return sorted(out)


def _segments(truth: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end exclusive, class) runs of known truth."""
    runs, start = [], 0
    for t in range(1, len(truth) + 1):
        if t == len(truth) or truth[t] != truth[start]:
            if truth[start] >= 0:
                runs.append((start, t, int(truth[start])))
            start = t
    return runs


def _probabilities(ax: Any, expl: Explanation, top: int, plt: Any) -> None:
    probs, labels = expl.probs, expl.model.labels
    shown = np.argsort(-probs.max(0), kind="stable")[:top]
    truth_classes = {c for _, _, c in _segments(expl.stream.truth)}
    shown = np.array(list(shown) + [c for c in sorted(truth_classes) if c not in shown])
    colours = {int(c): plt.get_cmap("tab10")(i % 10) for i, c in enumerate(shown)}
    steps = np.arange(len(probs))
    for c in shown:
        ax.plot(steps, probs[:, c], color=colours[int(c)], linewidth=1.6, label=labels[c])
    for start, end, c in _segments(expl.stream.truth):
        ax.axvspan(start - 0.5, end - 0.5, ymin=0.93, ymax=1.0, color=colours.get(c, "grey"), alpha=0.9)
        ax.text((start + end - 1) / 2, 1.07, f"truth: {labels[c]}", ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("probability")
    ax.set_title("probability of the top classes (band: ground truth)", fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))


def _gates(ax: Any, expl: Explanation) -> None:
    g = expl.gates
    steps = np.arange(len(g.h))
    names = {"i": "input gate", "f": "forget gate", "o": "output gate"}
    for k, colour in GATE_COLOURS.items():
        ax.plot(steps, getattr(g, k)[:, -1].mean(1), color=colour, linewidth=1.4, label=f"{names[k]} (mean)")
    ax.set_ylim(0, 1)
    ax.set_ylabel("gate")
    twin = ax.twinx()
    twin.plot(steps, np.abs(g.c[:, -1]).mean(1), color="black", linewidth=1.0, linestyle="--", label="mean |c|")
    twin.set_ylabel("|c|")
    layer = f" (layer {len(expl.model.layers) - 1})" if len(expl.model.layers) > 1 else ""
    ax.set_title(f"gates and cell state{layer}", fontsize=9, loc="left")
    lines = ax.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    ax.legend(lines[0] + extra[0], lines[1] + extra[1], fontsize=7, loc="center left", bbox_to_anchor=(1.09, 0.5))


def _units(ax: Any, expl: Explanation, top: int) -> None:
    units = expl.top_units(top)
    h = expl.gates.h[:, -1, units].T  # (U, T)
    ax.imshow(h, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(units)), [str(u) for u in units], fontsize=6)
    ax.set_ylabel("unit")
    ax.set_title(f"hidden state h of the {len(units)} most active units (largest mean |h|; -1 blue .. +1 red)",
                 fontsize=9, loc="left")


def _saliency(ax: Any, expl: Explanation) -> None:
    from edgelstm.measure.explain import saliency_matrix

    full = saliency_matrix(expl).T  # (s, t): rows are frames, columns decisions
    finite = full[np.isfinite(full)]
    lim = (float(np.percentile(np.abs(finite), 99)) if finite.size else 0.0) or 1.0
    im = ax.imshow(np.ma.masked_invalid(full), aspect="auto", cmap="PuOr_r", vmin=-lim, vmax=lim,
                   origin="lower", interpolation="nearest")
    ax.set_ylabel("occluded frame")
    ax.set_title("saliency: drop of the decided class's logit when a frame is occluded (orange: the frame "
                 "supported the decision)", fontsize=9, loc="left")
    ax.figure.colorbar(im, ax=ax, fraction=0.03, pad=0.01)


def _segment_saliency(ax: Any, expl: Explanation) -> None:
    from edgelstm.measure.explain import saliency_matrix

    full = saliency_matrix(expl)
    labels, decided = expl.model.labels, expl.decided
    ends = [end - 1 for _, end, _ in _segments(expl.stream.truth)][-6:] or [len(decided) - 1]
    for t in ends:
        row = full[t]
        frames = np.flatnonzero(np.isfinite(row))
        ax.plot(frames, row[frames], marker="o", markersize=2.5, linewidth=1.0,
                label=f"decision at step {t}: {labels[decided[t]]}")
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_xlim(-0.5, len(decided) - 0.5)
    ax.set_xlabel("occluded frame")
    ax.set_ylabel("logit drop")
    ax.set_title("which frames the last decision of each segment depends on", fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
