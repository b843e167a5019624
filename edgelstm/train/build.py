"""Build a registered model adapted to a dataset: classes, feature size, normalisation."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

from torch import nn

from edgelstm.data import Dataset, Kind
from edgelstm.errors import UsageError
from edgelstm.models import create_model, model_names
from edgelstm.models.backbones import ENCODERS, build_encoder, load_encoder_weights, output_stride
from edgelstm.models.freeze import freeze
from edgelstm.models.protocols import FeatureModel
from edgelstm.models.video_nets import PREFIX, VideoNet, video_net_spec
from edgelstm.train.config import EncoderChoice

log = logging.getLogger(__name__)

FEATURE_MODELS = frozenset({"lstm"})  # models over pre-extracted features; all others take frames


def model_config(name: str, ds: Dataset, overrides: dict[str, Any] | None = None, *,
                 standardize: bool = True) -> dict[str, Any]:
    """The create_model kwargs for ``name`` on ``ds`` (stored in the checkpoint to rebuild it). ``standardize``:
    a features model standardises its input with the train split's per-feature mean and std."""
    if name.startswith(PREFIX):
        return _video_net_config(name, ds, overrides)
    if name in model_names():
        wants_features = name in FEATURE_MODELS
        if wants_features and ds.kind != Kind.FEATURES:
            raise UsageError(f"model '{name}' takes pre-extracted features, but {ds.source} holds video frames",
                             expected="a features .npz for --model lstm",
                             fix="pick a frame model (student, teacher, pooling, ...) or pass features")
        if not wants_features and ds.kind == Kind.FEATURES:
            raise UsageError(f"model '{name}' takes video frames, but {ds.source} holds features",
                             expected="videos or 'synthetic' for frame models", fix="pass --model lstm")
    cfg: dict[str, Any] = {"num_classes": ds.num_classes}
    if ds.kind == Kind.FEATURES:
        cfg["input_size"] = ds.feature_size
        if standardize and ds.feature_mean is not None:
            cfg["feature_mean"], cfg["feature_std"] = list(ds.feature_mean), list(ds.feature_std or ())
    else:
        cfg["mean"], cfg["std"] = list(ds.mean), list(ds.std)
    cfg.update(overrides or {})
    return cfg


def _video_net_config(name: str, ds: Dataset, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """A torchvision video classifier takes frames at the data's size and clip length (its normalisation is its
    weights', not the data's); a transformer with positional embeddings takes only its own."""
    spec = video_net_spec(name)
    if ds.kind == Kind.FEATURES:
        raise UsageError(f"model '{name}' takes video frames, but {ds.source} holds features",
                         expected="videos or 'synthetic'", fix="pass --model lstm for features")
    if spec.fixed_input and (ds.size != spec.size or ds.clip_len != spec.clip_len):
        h, w = spec.size
        raise UsageError(f"model '{name}' on {ds.clip_len} frames of {ds.size}: its positional embeddings fit only "
                         f"{spec.clip_len} frames of {h}x{w}", expected=f"--size {h},{w} --clip-len {spec.clip_len}",
                         fix=f"pass --size {h},{w} --clip-len {spec.clip_len}, or pick a 3D CNN (r2plus1d_18, r3d_18)")
    if overrides:
        raise UsageError(f"model '{name}' takes no model options ({', '.join(overrides)})",
                         expected="torchvision's architecture as it is", fix="drop the model options")
    return {"num_classes": ds.num_classes}


def build_model(name: str, ds: Dataset, overrides: dict[str, Any] | None = None, *, standardize: bool = True,
                encoder: EncoderChoice = EncoderChoice(),
                init_weights: Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model for ``ds``; ``encoder``: the per-frame encoder, its pretrained weights (then frames are
    normalised as those weights expect) and which of its blocks stay frozen; ``init_weights``: a state_dict the
    whole model starts from (its classifier may have other classes: then that starts afresh)."""
    extra = _encoder_options(encoder, ds)
    cfg = model_config(name, ds, {**(overrides or {}), **extra}, standardize=standardize)
    try:
        model = create_model(name, **cfg)
    except TypeError as e:  # a registered model without an encoder choice
        raise UsageError(f"model '{name}' does not take {', '.join(extra) or 'these options'} ({e})",
                         expected="a model with a choice of encoder (student, pooling)",
                         fix="use --model student, or drop --encoder/--encoder-weights") from None
    if init_weights is not None:
        _init_from(model, init_weights)
    enc = getattr(model, "encoder", None)
    if encoder.weights is not None and enc is not None:
        path = load_encoder_weights(enc, encoder.weights)
        log.info("encoder %s starts from %s", cfg.get("encoder"), path)
    if encoder.freeze:
        if enc is None:
            raise UsageError(f"--freeze-encoder, but model '{name}' has no frame encoder", expected="a frame model",
                             fix="drop --freeze-encoder")
        frozen = freeze(enc, unfreeze_last=encoder.unfreeze_last)
        log.info("encoder: %d block(s) frozen, the last %d and the projection train", frozen, encoder.unfreeze_last)
    return model, cfg


def _encoder_options(encoder: EncoderChoice, ds: Dataset) -> dict[str, Any]:
    """The model options an --encoder choice sets. An ImageNet trunk's last map is pooled to 2x2 by default, or
    globally when the frames are too small for that (32x32 frames give a whole trunk a 1x1 map)."""
    if encoder.name is None and encoder.weights is None and encoder.grid is None and encoder.blocks is None:
        return {}
    if ds.kind == Kind.FEATURES:
        raise UsageError(f"--encoder/--encoder-weights/--encoder-grid with features data ({ds.source})",
                         expected="a frame dataset (videos or 'synthetic')", fix="drop the encoder options")
    name = encoder.name or "mobile"
    extra: dict[str, Any] = {"encoder": name, "pretrained": encoder.weights is not None}
    if encoder.blocks is not None:
        if name not in ENCODERS or ENCODERS[name].body is None:
            raise UsageError(f"--encoder-blocks with encoder '{name}'", expected="an ImageNet trunk: " + ", ".join(
                n for n, s in ENCODERS.items() if s.body), fix="drop --encoder-blocks, or pick such an --encoder")
        extra["encoder_blocks"] = encoder.blocks
    if name in ENCODERS and ENCODERS[name].body is not None:
        stride = output_stride(build_encoder(name, feature_size=8, blocks=encoder.blocks))
        side = -(-min(ds.size or (0, 0)) // stride)
        grid = encoder.grid if encoder.grid is not None else min(2, max(side, 1))
        if grid > side:
            raise UsageError(f"--encoder-grid {grid} with {name} on {ds.size[0]}x{ds.size[1]} frames "  # type: ignore[index]
                             f"(its last map is {side}x{side})", expected=f"--encoder-grid {max(side, 1)} or less",
                             fix=f"pass --encoder-grid {max(side, 1)}, or larger frames (--size)")
        extra["encoder_grid"] = grid
    elif encoder.grid is not None:
        extra["encoder_grid"] = encoder.grid
    return extra


def _init_from(model: nn.Module, path: Path) -> None:
    """``--init-weights``: a torchvision video model takes torchvision's own keys (Kinetics-400 weights as
    downloaded); any model takes its own (an edgelstm checkpoint or a saved state_dict)."""
    from edgelstm.models.weights import load_with_new_head

    target = cast(nn.Module, model.net) if isinstance(model, VideoNet) else model
    head = (model.head_prefix,) if isinstance(model, VideoNet) else ("head.",)
    fresh = load_with_new_head(target, path, head=head, option="--init-weights")
    log.info("model starts from %s%s", path, f" (new classifier: {', '.join(fresh)})" if fresh else "")


def step_feature_size(model: nn.Module) -> int:
    """Width of what the LSTM takes per step: the encoder's output, or the raw feature size."""
    enc = getattr(model, "encoder", None)
    if enc is not None:
        return int(enc.feature_size)
    if isinstance(model, VideoNet):  # what its classifier takes
        return model.feature_size
    return int(cast(FeatureModel, model).input_size)  # a feature model (LSTMVideoClassifier)
