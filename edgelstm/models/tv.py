"""``import torchvision`` that works next to this project's CPU torch: the one workaround, shared by the
``--encoder`` table (:mod:`edgelstm.models.backbones`) and ``torchvision:NAME`` teachers
(:mod:`edgelstm.train.teacher_loaders`)."""
from __future__ import annotations

import logging
import sys
from typing import Any

import torch

from edgelstm.errors import UsageError

log = logging.getLogger(__name__)

_KEEP: list[Any] = []  # the torch.library registrations made below: a Library's definitions live as long as it


def import_torchvision(needed_for: str, fix: str = "pip install 'edgelstm[train]' (it pins torchvision with torch)") \
        -> Any:
    """``import torchvision``. Why this exists: PyPI's torchvision wheels are built against CUDA torch; next to the
    CPU torch wheel this project pins, their compiled ops (nms, roi_align: detection only) fail to load and
    torchvision 0.28's import stops at registering a fake kernel for ``torchvision::nms`` ("operator
    torchvision::nms does not exist"). The image and video classifiers used here are pure Python, so declare the
    two op schemas it needs and import again (logged: detection ops stay unavailable)."""
    try:
        import torchvision
    except ModuleNotFoundError:
        raise UsageError("torchvision is not installed", expected=f"torchvision for {needed_for}", fix=fix) from None
    except RuntimeError as e:
        if "torchvision::nms does not exist" not in str(e):
            raise
        log.warning("torchvision's compiled ops do not match this torch build (%s); its model definitions work "
                    "without them: declaring torchvision::nms/qnms so it imports", torch.__version__)
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]  # the half-imported package
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP.append(lib)
        import torchvision
    return torchvision
