"""A plain, greppable model registry: ``@register_model`` and ``create_model(name, **kwargs)``."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgelstm.errors import unknown_choice

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_model(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register a model factory under its function name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def model_names() -> list[str]:
    """The registered names; ``torchvision:NAME`` (edgelstm.models.video_nets) comes on top."""
    _load_all()
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: Any) -> Any:
    """Build a registered model. ``kwargs`` adapt it to the data (num_classes, input_size, ...)."""
    _load_all()
    if name.startswith("torchvision:"):  # torchvision's video classifiers, by name (edgelstm.models.video_nets)
        from edgelstm.models.video_nets import video_net

        return video_net(name, **kwargs)
    if name not in _REGISTRY:
        raise unknown_choice("model", name, _REGISTRY, fix="pass one of the registered names to --model")
    return _REGISTRY[name](**kwargs)


def _load_all() -> None:
    # Importing the modules runs their @register_model decorators.
    from edgelstm.models import tracker, zoo, zoo_caption  # noqa: F401
