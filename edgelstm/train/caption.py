"""Training captioners: :func:`train_caption` (from the reference captions) and :func:`distill_caption`.

Every step takes a batch of clips and, for each, one of its reference captions drawn anew every epoch (the data
has several per clip, with synonyms and word orders, so the decoder learns the language rather than one sentence
per clip). The decoder is teacher-forced: cross-entropy on the next word at every position. The encoder's motion
head learns the clip's motion class at every step, later steps weighted more (as the classifier's students do),
where the data knows it; its argmax is what the runtime watches to caption when the action changes.

Distillation adds, at every word position, tau^2 * KL(teacher || student) between the teacher's and the student's
next-word distributions for the same prefix: the teacher's encoder runs once over the training clips (its decoder
state and context are cached), its decoder per batch on the same reference tokens the student sees.

After each epoch the run keeps ``best.pt`` by CIDEr-D of greedy captions on val (not BLEU-4: one generic caption
that shares the common n-grams of every reference scores a fair BLEU, while CIDEr-D's IDF weights reward the words
that tell clips apart); when training ends the test split is
scored with BLEU-4, CIDEr-D and motion-word accuracy (``metrics.json``).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgelstm.caption_metrics import bleu4, caption_scores, cider_d
from edgelstm.captionspec import BOS_ID, CAPTIONING_KEY, EOS_ID, PAD_ID, SPECIALS, UNK_ID, Captioning
from edgelstm.data.caption_set import CaptionSet
from edgelstm.errors import UsageError
from edgelstm.fsutil import write_text_atomic
from edgelstm.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgelstm.models.macs import count_params, macs_per_frame
from edgelstm.models.registry import create_model
from edgelstm.spec import Task

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class CaptionConfig:
    model: str
    out: Path
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    motion_weight: float = 0.5     # the motion head's loss beside the words'
    bag_weight: float = 0.1        # the bag-of-words head's (which words the clip's captions use; see models.captioner)
    word_dropout: float = 0.4      # decoder inputs replaced by <unk> (not the targets): see _epoch
    seed: int = 0
    threads: int = 0
    force: bool = False
    progress: bool = True
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    teacher: Path | None = None    # distil from this captioner checkpoint
    alpha: float = 0.5             # weight of the reference words' CE; 1 - alpha goes to the teacher's KL
    temperature: float = 2.0
    val_clips: int = 300           # val clips captioned after each epoch to choose best.pt

    def __post_init__(self) -> None:
        for name, value, low in (("--epochs", self.epochs, 1), ("--batch-size", self.batch_size, 1),
                                 ("val_clips", self.val_clips, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UsageError(f"{name} {value!r}", expected=f"a whole number >= {low}", fix=f"pass {name} {low}")
        if not (0 < self.lr <= 10 and 0 <= self.alpha <= 1 and self.temperature > 0 and self.motion_weight >= 0):
            raise UsageError(f"lr {self.lr}, alpha {self.alpha}, temperature {self.temperature}, motion weight "
                             f"{self.motion_weight}", expected="0 < lr <= 10, 0 <= alpha <= 1, temperature > 0, "
                             "motion weight >= 0", fix="pass values in those ranges")


@dataclass(frozen=True)
class CaptionRunResult:
    out: Path
    best: Path
    val_cider_d: float
    test: dict[str, Any] | None     # CaptionScores.to_json() of best.pt on test, plus motion_head_accuracy
    params: int
    macs_per_frame: int
    seconds: float


def captioning_of(ds: CaptionSet) -> Captioning:
    """The captioning facts of a model trained on ``ds`` (export puts them in the manifest)."""
    return Captioning(vocab=ds.vocab, max_words=min(64, ds.max_words + 4), window=ds.clip_len,
                      min_gap=max(1, ds.clip_len // 2), beam=1)


def token_table(ds: CaptionSet, cap: Captioning) -> dict[str, list[list[np.ndarray]]]:
    """Per split, per clip, each reference as token ids (unknown words -> <unk>; val/test may have some)."""
    return {s: [[np.array(cap.encode(r, unknown="unk"), np.int64) for r in refs] for refs in split.refs]
            for s, split in ds.splits.items()}


def pad_batch(seqs: list[np.ndarray], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder input [BOS, w1..wn] and target [w1..wn, EOS], padded to ``length`` + 1 with PAD."""
    inp = torch.full((len(seqs), length + 1), PAD_ID, dtype=torch.long)
    tgt = torch.full((len(seqs), length + 1), PAD_ID, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = s[:length]
        inp[i, 0], inp[i, 1:len(s) + 1] = BOS_ID, torch.from_numpy(s)
        tgt[i, :len(s)], tgt[i, len(s)] = torch.from_numpy(s), EOS_ID
    return inp, tgt


def generate(model: nn.Module, X: np.ndarray, cap: Captioning, *, batch: int = 128) -> list[str]:
    """Greedy captions of clips X (N, T, H, W, 3) uint8 RGB."""
    model.eval()
    out: list[str] = []
    for s in range(0, len(X), batch):
        for toks in model.greedy(torch.from_numpy(X[s:s + batch]), cap.max_words):  # type: ignore[operator]
            out.append(" ".join(cap.decode(toks)))
    return out


@dataclass
class _Teacher:
    model: nn.Module
    h: torch.Tensor            # (layers, N, hidden): its decoder's initial state per training clip
    c: torch.Tensor
    ctx: torch.Tensor | None   # (N, C)

    def logits(self, idx: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out, _ = self.model.decoder(inp, (self.h[:, idx], self.c[:, idx]),  # type: ignore[operator]
                                        None if self.ctx is None else self.ctx[idx])
        return out  # type: ignore[no-any-return]


def _teacher(path: Path, ds: CaptionSet) -> _Teacher:
    t = load_checkpoint(path)
    if t.data.task != Task.CAPTION or CAPTIONING_KEY not in t.metrics:
        raise UsageError(f"--teacher is a {t.data.task} checkpoint", expected="a captioner checkpoint (trained with "
                         "--task caption)",
                         fix="train the teacher first: edgelstm train --task caption --model captioner_teacher",
                         path=path)
    if tuple(t.metrics[CAPTIONING_KEY]["vocab"]) != ds.vocab:
        raise UsageError("the teacher's vocabulary differs from the data's", path=path,
                         expected="a teacher trained on the same captions", fix="distil on the teacher's data")
    hs, cs, ctxs = [], [], []
    with torch.no_grad():
        for s in range(0, len(ds["train"]), 128):
            _, (h, c), ctx, _ = t.model.start(torch.from_numpy(ds["train"].X[s:s + 128]))  # type: ignore[operator]
            hs.append(h)
            cs.append(c)
            ctxs.append(ctx)
    return _Teacher(t.model, torch.cat(hs, 1), torch.cat(cs, 1), None if ctxs[0] is None else torch.cat(ctxs))


def bag_targets(tokens: list[list[np.ndarray]], vocab_size: int) -> np.ndarray:
    """(N, V) float32: 1 where a word (not a special token) occurs in any of the clip's references."""
    out = np.zeros((len(tokens), vocab_size), np.float32)
    for i, refs in enumerate(tokens):
        for r in refs:
            out[i, r[r >= len(SPECIALS)]] = 1.0
    return out


def _loss(model: nn.Module, cfg: CaptionConfig, clip: torch.Tensor, y: torch.Tensor, inp: torch.Tensor,
          tgt: torch.Tensor, bag: torch.Tensor, teacher_logits: torch.Tensor | None) -> torch.Tensor:
    motion, logits, bag_logits = model.words(clip, inp)  # type: ignore[operator]
    v = logits.shape[-1]
    loss = F.cross_entropy(logits.reshape(-1, v), tgt.reshape(-1), ignore_index=PAD_ID)
    if cfg.bag_weight > 0:
        # summed over the vocabulary (per clip): each word is a yes/no question about the video
        loss = loss + cfg.bag_weight * F.binary_cross_entropy_with_logits(bag_logits, bag, reduction="sum") / len(bag)
    if teacher_logits is not None:
        tau, mask = cfg.temperature, (tgt != PAD_ID).reshape(-1)
        p_t = F.softmax(teacher_logits.reshape(-1, v) / tau, dim=-1)[mask]
        log_s = F.log_softmax(logits.reshape(-1, v) / tau, dim=-1)[mask]
        kl = (p_t * (p_t.clamp_min(1e-8).log() - log_s)).sum(-1).mean()
        loss = cfg.alpha * loss + (1 - cfg.alpha) * tau * tau * kl
    known = y >= 0
    if cfg.motion_weight > 0 and bool(known.any()):
        t = motion.shape[1]
        w = torch.arange(1, t + 1, dtype=torch.float32) / (t * (t + 1) / 2)  # later steps weigh more
        ce = F.cross_entropy(motion[known].reshape(-1, motion.shape[-1]), y[known].repeat_interleave(t),
                             reduction="none").view(-1, t)
        loss = loss + cfg.motion_weight * (ce * w).sum(1).mean()
    return loss


def _epoch(model: nn.Module, opt: torch.optim.Optimizer, sched: Any, cfg: CaptionConfig, ds: CaptionSet,
           tokens: list[list[np.ndarray]], bags: np.ndarray, length: int, teacher: _Teacher | None,
           epoch: int) -> float:
    from edgelstm.train.trainer import progress_bar

    rng = np.random.default_rng([cfg.seed, epoch])
    torch.manual_seed(cfg.seed * 1000 + epoch)
    train = ds["train"]
    order = rng.permutation(len(train))
    steps = -(-len(order) // cfg.batch_size)
    model.train()
    total = 0.0
    with progress_bar(steps, f"{cfg.model} {epoch + 1}/{cfg.epochs}", cfg.progress) as bar:
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            refs = [tokens[i][int(rng.integers(len(tokens[i])))] for i in idx]
            inp, tgt = pad_batch(refs, length)
            if cfg.word_dropout > 0:  # hide some previous words: the decoder cannot write the caption from the
                drop = torch.rand(inp.shape) < cfg.word_dropout  # language alone and must read the video's state
                drop[:, 0] = False
                inp = torch.where(drop & (inp != PAD_ID), torch.full_like(inp, UNK_ID), inp)
            ti = torch.from_numpy(idx)
            loss = _loss(model, cfg, torch.from_numpy(train.X[idx]), torch.from_numpy(train.y[idx]), inp, tgt,
                         torch.from_numpy(bags[idx]), teacher.logits(ti, inp) if teacher is not None else None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach())
            bar.set_postfix(loss=f"{total / (s // cfg.batch_size + 1):.3f}")
            bar.update()
    return total / steps


def fit_caption(cfg: CaptionConfig, ds: CaptionSet) -> CaptionRunResult:
    """Train (or, with ``cfg.teacher``, distil) ``cfg.model`` on ``ds``; see the module docstring."""
    from edgelstm.fsutil import OutputKind, check_run_folder, folder_kind, write_marker

    t0 = time.perf_counter()
    check_run_folder(cfg.out, force=cfg.force, resume=False)
    if len(ds["val"]) < 2:
        raise UsageError(f"{len(ds['val'])} val clip(s) in {ds.source}", expected="at least 2 (best.pt is chosen by "
                         "their CIDEr-D, whose IDF is over the clips)", fix="caption more videos, or more split=val")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    cap = captioning_of(ds)
    teacher = _teacher(cfg.teacher, ds) if cfg.teacher is not None else None
    mcfg = {"num_classes": max(1, len(ds.classes)), "vocab_size": len(ds.vocab), "mean": list(ds.mean),
            "std": list(ds.std), **cfg.model_kwargs}
    model = create_model(cfg.model, **mcfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if folder_kind(out) is None:
        write_marker(out, OutputKind.RUN)
    tokens = token_table(ds, cap)
    bags = bag_targets(tokens["train"], len(ds.vocab))
    steps = cfg.epochs * -(-len(ds["train"]) // cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 8), pct_start=0.25)
    val = ds["val"]
    nval = min(cfg.val_clips, len(val))
    best, history = -1.0, []
    for epoch in range(cfg.epochs):
        e0 = time.perf_counter()
        loss = _epoch(model, opt, sched, cfg, ds, tokens["train"], bags, cap.max_words, teacher, epoch)
        hyps = generate(model, val.X[:nval], cap)
        score, bleu = cider_d(hyps, val.refs[:nval]), bleu4(hyps, val.refs[:nval])
        history.append({"epoch": epoch + 1, "train_loss": round(loss, 5), "val_cider_d": round(score, 4),
                        "val_bleu4": round(bleu, 3), "seconds": round(time.perf_counter() - e0, 2)})
        log.info("%s epoch %d: loss %.4f val CIDEr-D %.3f BLEU-4 %.2f", cfg.model, epoch + 1, loss, score, bleu)
        if score > best:
            best = score
            save_checkpoint(out / "best.pt", _checkpoint(model, cfg, mcfg, ds, cap, {"val_cider_d": score,
                                                                                      "val_bleu4": bleu,
                                                                                      "epoch": epoch + 1}))
    return _finish(model, cfg, mcfg, ds, cap, best=best, history=history, t0=t0)


def _checkpoint(model: nn.Module, cfg: CaptionConfig, mcfg: dict[str, Any], ds: CaptionSet, cap: Captioning,
                metrics: dict[str, Any]) -> Checkpoint:
    return Checkpoint(model=model, name=cfg.model, config=mcfg, classes=list(ds.classes) or ["caption"],
                      data=ds.facts(), metrics={**metrics, CAPTIONING_KEY: asdict(cap)})


def _finish(model: nn.Module, cfg: CaptionConfig, mcfg: dict[str, Any], ds: CaptionSet, cap: Captioning, *,
            best: float, history: list[dict[str, Any]], t0: float) -> CaptionRunResult:
    """best.pt scored on test: BLEU-4, CIDEr-D, motion-word accuracy and the motion head's accuracy."""
    out = Path(cfg.out)
    model.load_state_dict(load_checkpoint(out / "best.pt").model.state_dict())
    test = None
    if len(ds.splits.get("test", ())) >= 2:
        split = ds["test"]
        scores = caption_scores(generate(model, split.X, cap), split.refs, split.y).to_json()
        scores["motion_head_accuracy"] = motion_head_accuracy(model, split.X, split.y)
        test = scores
    params = count_params(model)
    macs = macs_per_frame(model, size=ds.size, frames=ds.clip_len)
    metrics = {"model": cfg.model, "task": str(Task.CAPTION), "model_config": mcfg, "data": ds.facts().to_dict(),
               "classes": list(ds.classes), "splits": {k: len(v) for k, v in ds.splits.items()},
               "vocab_size": len(ds.vocab), "params": params, "macs_per_frame": macs, "val_cider_d": best,
               "test": test, "history": history, "wall_s": round(time.perf_counter() - t0, 2),
               "objective": "distill" if cfg.teacher is not None else "supervised",
               "config": json.loads(json.dumps(asdict(cfg), default=str))}
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2, default=str) + "\n")
    return CaptionRunResult(out=out, best=out / "best.pt", val_cider_d=best, test=test, params=params,
                            macs_per_frame=macs, seconds=time.perf_counter() - t0)


def motion_head_accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray, *, batch: int = 128) -> float | None:
    """The motion head's accuracy at each clip's last frame, over clips whose motion is known."""
    known = np.flatnonzero(y >= 0)
    if not len(known):
        return None
    model.eval()
    hits = 0
    with torch.no_grad():
        for s in range(0, len(known), batch):
            idx = known[s:s + batch]
            motion, _, _, _ = model.start(torch.from_numpy(X[idx]))  # type: ignore[operator]
            hits += int((motion[:, -1].argmax(-1).numpy() == y[idx]).sum())
    return hits / len(known)


def train_caption(cfg: Any, *, teacher: Path | None = None, alpha: float = 0.5,
                  temperature: float = 2.0) -> CaptionRunResult:
    """``edgelstm train/distill --task caption``: a :class:`~edgelstm.train.config.TrainConfig` on ``cfg.data``
    ('synthetic' at --size, default 32x32, or a video,caption CSV), with ``teacher`` to distil from."""
    from edgelstm.data.caption_set import load_captions

    d = cfg.data
    ds = load_captions(d.spec, size=d.size or (32, 32), clip_len=d.clip_len, seed=cfg.seed, counts=d.counts)
    return fit_caption(CaptionConfig(model=cfg.model, out=cfg.out, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                     lr=cfg.lr, seed=cfg.seed, threads=cfg.threads, force=cfg.force,
                                     progress=cfg.progress, model_kwargs=dict(cfg.model_kwargs), teacher=teacher,
                                     alpha=alpha, temperature=temperature), ds)


def caption_report(r: CaptionRunResult) -> str:
    t = r.test or {}
    motion = t.get("motion_accuracy")
    words = "n/a" if motion is None else f"{100 * motion:.1f}%"
    return (f"val CIDEr-D {r.val_cider_d:.3f}; test BLEU-4 {t.get('bleu4', float('nan')):.2f}, CIDEr-D "
            f"{t.get('cider_d', float('nan')):.3f}, motion words {words}; "
            f"{r.params:,} params, {r.macs_per_frame:,} MACs/frame, {r.seconds:.1f}s\nbest checkpoint: {r.best}")
