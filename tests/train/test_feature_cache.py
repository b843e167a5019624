"""A frozen encoder runs once: training on its cached output is the same computation as training on frames."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from edgelstm.models.checkpoint import load_checkpoint
from edgelstm.train import feature_cache
from edgelstm.train.config import DataConfig, DistillConfig, EncoderChoice, TrainConfig
from edgelstm.train.trainer import distill, train

DATA = DataConfig(size=(32, 32), clip_len=4, counts=(40, 12, 12))


def _cfg(out: Path, model: str, unfreeze_last: int, cache: bool, **kw: object) -> TrainConfig:
    return TrainConfig(model=model, out=out, data=DATA, epochs=2, batch_size=8, threads=1, progress=False,
                       encoder=EncoderChoice("mobile", None, True, unfreeze_last), feature_cache=cache,
                       model_kwargs={"widths": (8, 16, 16, 16), "feature_size": 16}, **kw)  # type: ignore[arg-type]


def _same_weights(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a).model.state_dict(), load_checkpoint(b).model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        # float32 sums in another order (a batch of frames vs a batch of clips) differ in the last bits; AdamW over
        # 10 steps keeps that far below 1e-4, while any real difference (another input, a block that trained or
        # drifted BatchNorm statistics) moves weights by ~lr = 3e-3 per step
        torch.testing.assert_close(sa[k].float(), sb[k].float(), atol=1e-4, rtol=1e-4, msg=k)


@pytest.mark.parametrize(("model", "unfreeze_last", "extra"), [
    ("student", 1, {"step_loss": 0.5, "stream_pairs": True}),  # a map is cached; the last block still trains
    ("pooling", 0, {}),                                         # every block frozen: pooled maps are cached
])
def test_training_on_the_cache_equals_training_on_frames(tmp_path: Path, model: str, unfreeze_last: int,
                                                         extra: dict) -> None:
    cached = train(_cfg(tmp_path / "cached", model, unfreeze_last, True, **extra))
    frames = train(_cfg(tmp_path / "frames", model, unfreeze_last, False, **extra))
    _same_weights(cached.best, frames.best)
    assert cached.test_accuracy == frames.test_accuracy  # the view on cached test clips scores as the model on frames
    for key in ("early_accuracy", "stream_accuracy"):
        assert (json.loads((tmp_path / "cached" / "metrics.json").read_text())[key]
                == json.loads((tmp_path / "frames" / "metrics.json").read_text())[key])
    m = json.loads((tmp_path / "cached" / "metrics.json").read_text())
    frozen = 7 - unfreeze_last  # mobile: a stem and three depthwise-separable pairs
    assert m["feature_cache"]["frozen_blocks"] == frozen
    assert "feature_cache" not in json.loads((tmp_path / "frames" / "metrics.json").read_text())


def test_distilling_on_the_cache_equals_distilling_on_frames(tmp_path: Path) -> None:
    teacher = train(TrainConfig(model="teacher_tiny", out=tmp_path / "t", data=DATA, epochs=1, batch_size=8,
                                threads=1, progress=False))
    dcfg = DistillConfig(teacher=teacher.best, feature_weight=0.5, stream_pairs=True)  # hooks the head, pairs clips
    a = distill(_cfg(tmp_path / "cached", "student", 0, True), dcfg)
    b = distill(_cfg(tmp_path / "frames", "student", 0, False), dcfg)
    _same_weights(a.best, b.best)


def test_a_second_run_reads_the_features_from_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(tmp_path / "one", "student", 0, True)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(DATA, cache_dir=tmp_path / "cache"))
    train(cfg)
    assert len(list((tmp_path / "cache" / "features").glob("*.npy"))) == 3  # train, val and test

    def no_extraction(*a: object, **k: object) -> None:
        raise AssertionError("the frozen encoder ran again")

    monkeypatch.setattr(feature_cache, "extract", no_extraction)
    train(dataclasses.replace(cfg, out=tmp_path / "two"))
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["feature_cache"]["extract_s"] == 0
    # other frozen weights are another key: a student from another seed's encoder extracts again
    with pytest.raises(AssertionError, match="ran again"):
        train(dataclasses.replace(cfg, out=tmp_path / "three", seed=1))


def test_the_view_equals_the_model_on_frames() -> None:
    from edgelstm.models import create_model
    from edgelstm.models.freeze import freeze

    torch.manual_seed(0)
    model = create_model("student", num_classes=3, widths=(8, 16, 16, 16), feature_size=16)
    clips = torch.randint(0, 256, (2, 5, 32, 32, 3), dtype=torch.uint8)
    for unfreeze_last in (0, 2):
        frozen = freeze(model.encoder, unfreeze_last=unfreeze_last)
        view = feature_cache.CachedStepView(model, frozen)
        feats = torch.from_numpy(feature_cache.extract(model, clips.numpy(), frozen, progress=False))
        model.eval()
        view.eval()
        with torch.no_grad():
            torch.testing.assert_close(view.step_logits(feats), model.step_logits(clips), atol=1e-5, rtol=1e-5)
            lengths = torch.tensor([5, 3])
            torch.testing.assert_close(view(feats, lengths), model(clips, lengths), atol=1e-5, rtol=1e-5)


def test_encoders_that_pool_the_same_frozen_blocks_differently_do_not_share_a_cache() -> None:
    """Fully frozen, the cache holds what the encoder's pooling writes: a 4x4 grid, a 2x2 one, or a motion model's
    whole map. The same blocks and clips under another pooling must miss the cache, not read the wrong array."""
    import numpy as np

    from edgelstm.models import create_model
    from edgelstm.models.freeze import freeze

    clips = np.zeros((2, 3, 32, 32, 3), np.uint8)
    keys = {}
    for name, kw in (("pooling", {"encoder_grid": 4}), ("pooling", {"encoder_grid": 2}),
                     ("motion_student", {"encoder_grid": 2})):
        torch.manual_seed(0)  # the same random Lite0 blocks every time
        m = create_model(name, num_classes=3, encoder="efficientnet_lite0", encoder_blocks=4, **kw)
        keys[(name, kw["encoder_grid"])] = feature_cache.cache_key(m, freeze(m.encoder), clips, None)
        shape = feature_cache.extract(m, clips, freeze(m.encoder), progress=False).shape
        assert shape[2:] == ((24, 8, 8) if name == "motion_student" else (24 * kw["encoder_grid"] ** 2,)), name
    assert len(set(keys.values())) == 3, keys


def test_the_allocator_keeps_freed_memory_on_glibc() -> None:
    """Training tunes glibc's malloc (large activations reused, not re-mapped and zero-filled per batch); the call
    says whether it could, and is a harmless no-op elsewhere."""
    import platform
    import sys

    from edgelstm.train.torchdata import keep_freed_memory

    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc
