"""Weights from a file a user names: read without pickle, loaded whole or with a new classifier head.

:func:`read_state_dict` accepts a bare state_dict, the common containers around one (``{"state_dict": ...}``,
``{"model": ...}``) and an edgelstm checkpoint; it never runs pickled code (``weights_only=True``).
:func:`load_with_new_head` is ``--init-weights``: every weight must fit, except a classifier trained on other
classes (Kinetics-400's 400 outputs when the data has 10), which starts afresh.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from edgelstm.errors import CheckpointError, UsageError

log = logging.getLogger(__name__)


def read_state_dict(path: str | Path, *, option: str) -> dict[str, torch.Tensor]:
    """The state_dict in ``path`` (for ``option``'s messages), read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{option} {path}: no such file", expected="a state_dict .pth/.pt file",
                         fix="check the path (save one with torch.save(model.state_dict(), FILE))")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError ... for what it cannot read
        raise CheckpointError(f"cannot be read as a state_dict without pickle ({type(e).__name__}: {str(e)[:120]})",
                              expected="a state_dict saved with torch.save(model.state_dict(), FILE)",
                              fix="save only the state_dict (no pickled objects)", path=path) from None
    for wrapper in ("state_dict", "model"):  # common containers around a state_dict (and edgelstm checkpoints)
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"holds a {type(state).__name__}, not a state_dict", path=path,
                              expected="a state_dict (names -> tensors)", fix="save model.state_dict()")
    return state


def load_with_new_head(module: nn.Module, path: str | Path, *, head: tuple[str, ...], option: str) -> list[str]:
    """Load ``path`` into ``module``; weights under a ``head`` prefix whose shape differs (another class count) are
    left as initialised. Returns the keys left so. Anything else that does not fit is an error naming it."""
    state = read_state_dict(path, option=option)
    own = module.state_dict()
    fresh = [k for k, v in state.items() if k in own and own[k].shape != v.shape and k.startswith(head)]
    wrong = [f"{k} {tuple(v.shape)} (the model has {tuple(own[k].shape)})" for k, v in state.items()
             if k in own and own[k].shape != v.shape and k not in fresh]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if wrong or missing or unexpected:
        what = "; ".join(filter(None, [
            f"shapes differ: {', '.join(wrong[:3])}" if wrong else "",
            f"missing: {', '.join(missing[:4])}" + (" ..." if len(missing) > 4 else "") if missing else "",
            f"not in the model: {', '.join(unexpected[:4])}" + (" ..." if len(unexpected) > 4 else "")
            if unexpected else ""]))
        raise CheckpointError(f"{option}: the weights do not fit the model ({what})", path=Path(path),
                              expected="weights saved from the same architecture",
                              fix="pass the state_dict of this very architecture (only its classifier may differ)")
    module.load_state_dict({k: v for k, v in state.items() if k not in fresh}, strict=False)
    if fresh:
        log.warning("%s: the classifier (%s) was trained on other classes; it starts afresh for this data",
                    option, ", ".join(fresh))
    return fresh
