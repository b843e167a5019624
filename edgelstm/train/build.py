"""Build a registered model adapted to a dataset: classes, feature size, normalisation."""
from __future__ import annotations

from typing import Any, cast

from torch import nn

from edgelstm.data import Dataset, Kind
from edgelstm.errors import UsageError
from edgelstm.models import create_model, model_names
from edgelstm.models.protocols import FeatureModel

FEATURE_MODELS = frozenset({"lstm"})  # models over pre-extracted features; all others take frames


def model_config(name: str, ds: Dataset, overrides: dict[str, Any] | None = None, *,
                 standardize: bool = True) -> dict[str, Any]:
    """The create_model kwargs for ``name`` on ``ds`` (stored in the checkpoint to rebuild it). ``standardize``:
    a features model standardises its input with the train split's per-feature mean and std."""
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


def build_model(name: str, ds: Dataset, overrides: dict[str, Any] | None = None, *,
                standardize: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    cfg = model_config(name, ds, overrides, standardize=standardize)
    return create_model(name, **cfg), cfg


def step_feature_size(model: nn.Module) -> int:
    """Width of what the LSTM takes per step: the encoder's output, or the raw feature size."""
    enc = getattr(model, "encoder", None)
    if enc is not None:
        return int(enc.feature_size)
    return int(cast(FeatureModel, model).input_size)  # a feature model (LSTMVideoClassifier)
