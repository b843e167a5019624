"""One loader per teacher kind (the table is :func:`edgelstm.train.teachers._loaders`).

Each returns a :class:`~edgelstm.train.teachers.Teacher` whose input contract is its own: the checkpoint's data
facts, torchvision's documented transforms (:data:`TORCHVISION`), the ONNX model's declared input, or, for code
that declares nothing (a Python factory, TorchScript, an exported program), the dataset's size and clip length,
NCTHW float in 0..1; ``--teacher-*`` options override any of it.

Python factories, TorchScript files and exported programs are code: edgelstm runs them because the user named
them on the command line, and only then.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.errors import CheckpointError, UsageError, closest
from edgelstm.fsutil import sha256_file
from edgelstm.models.tv import import_torchvision
from edgelstm.models.video_nets import VIDEO_NETS
from edgelstm.train.teachers import (InputDtype, Layout, Teacher, TeacherInput, TeacherKind, TeacherOptions)

log = logging.getLogger(__name__)

RANDOM = "random"


# --- torch modules -------------------------------------------------------------------------------------
def _torch_run(module: Any, *, device: str, exported: bool = False) -> Any:
    import torch

    if exported:  # an exported program's module was traced in eval mode and cannot switch; it stays on its device
        device = "cpu"
    else:
        module.to(device).eval()

    @torch.no_grad()
    def run(x: np.ndarray, lengths: np.ndarray | None) -> tuple[np.ndarray, None]:
        out = module(torch.from_numpy(x).to(device))
        if isinstance(out, (tuple, list)):
            out = out[0]
        elif isinstance(out, dict):
            out = out.get("logits", next(iter(out.values())))
        return out.float().cpu().numpy(), None

    return run


def _weights_file(option: str, spec: str, hint: str) -> Path:
    path = Path(option)
    if not path.is_file():
        raise UsageError(f"--teacher-weights {option}: no such file", expected=f"the weights of {spec}",
                         fix=hint or "pass the path of a state_dict saved with torch.save(model.state_dict(), F)")
    return path


def _load_state(module: Any, path: Path, spec: str) -> None:
    from edgelstm.models.weights import read_state_dict

    state = read_state_dict(path, option="--teacher-weights")
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"weights do not fit {spec}: {str(e)[:240]}",
                              expected=f"a state_dict of {spec}", fix="pass the weights of this very model",
                              path=path) from None


# --- edgelstm checkpoints --------------------------------------------------------------------------------
def load_checkpoint_teacher(spec: str, options: TeacherOptions, default: TeacherInput) -> Teacher:
    import torch

    from edgelstm.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(spec)
    facts = ckpt.data
    base = TeacherInput(size=facts.size or default.size, clip_len=facts.clip_len, layout=Layout.NTHWC,
                        dtype=InputDtype.UINT8)  # the model reads the dataset's uint8 clips and normalises itself
    model, device = ckpt.model.to(options.device).eval(), options.device

    @torch.no_grad()
    def run(x: np.ndarray, lengths: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        feats: list[torch.Tensor] = []
        head = model.get_submodule(getattr(model, "head_name", "head"))  # what the classifier is given: features
        hook = head.register_forward_hook(lambda m, i, o: feats.append(i[0].detach().flatten(1)))
        try:
            lens = None if lengths is None else torch.from_numpy(lengths).to(device)
            logits = model(torch.from_numpy(x).to(device), lens)
        finally:
            hook.remove()
        return logits.float().cpu().numpy(), feats[0].float().cpu().numpy()

    teacher = Teacher(spec, TeacherKind.CHECKPOINT, options.contract.apply(base), run,
                      identity={"sha256": ckpt.sha256}, classes=list(ckpt.classes), has_features=True,
                      uses_lengths=True, info={"teacher_sha256": ckpt.sha256})
    teacher.info["teacher_val_accuracy"] = ckpt.metrics.get("val_accuracy")
    teacher.info["data"] = facts
    return teacher


# --- torchvision ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Video:
    weights: str          # the weights enum torchvision documents for the model
    head: str             # state_dict key of the classifier's weight: its first dim is the class count
    contract: TeacherInput


# torchvision's documented contracts (edgelstm.models.video_nets.VIDEO_NETS, the one table): the input is
# (N, C, T, H, W) (VideoClassification permutes to C, T, H, W); frames are resized straight to crop_size here (no
# resize + crop: the dataset's clips are already framed).
TORCHVISION: dict[str, _Video] = {
    name: _Video(s.weights, s.head, TeacherInput(size=s.size, clip_len=s.clip_len, mean=s.norm[0], std=s.norm[1]))
    for name, s in VIDEO_NETS.items()}


def video_models() -> types.ModuleType:
    """``torchvision.models.video``, imported through :func:`edgelstm.models.tv.import_torchvision` (the one
    workaround for PyPI's CUDA-built torchvision next to a CPU torch)."""
    tv = import_torchvision("torchvision:NAME teachers",
                            fix="pip install 'edgelstm[train]' (it pins torchvision==0.28.0 with torch 2.13.0)")
    video: types.ModuleType = tv.models.video
    return video


def torchvision_weights(name: str) -> Any:
    """The weights enum member torchvision documents for ``name`` (metadata only: nothing is downloaded)."""
    video = video_models()
    enum_name, member = TORCHVISION[name].weights.split(".")
    return getattr(getattr(video, enum_name), member)


def load_torchvision(spec: str, options: TeacherOptions, default: TeacherInput) -> Teacher:
    import torch

    name = spec.split(":", 1)[1]
    if name not in TORCHVISION:
        raise UsageError(f"--teacher {spec}: unknown torchvision video model '{name}'{closest(name, TORCHVISION)}",
                         expected="torchvision:" + ", torchvision:".join(TORCHVISION),
                         fix="pass one of these names")
    entry = TORCHVISION[name]
    weights = torchvision_weights(name)
    file_name = weights.url.rsplit("/", 1)[-1]
    hint = (f"torchvision names these weights {entry.weights} (file {file_name}); on a machine with internet, "
            f"`torchvision.models.video.{name}(weights=\"{entry.weights.split('.')[1]}\")` downloads it to "
            f"~/.cache/torch/hub/checkpoints/{file_name}; then pass --teacher-weights path/to/{file_name}")
    if options.weights is None:
        raise UsageError(f"--teacher {spec} needs its weights, and edgelstm never downloads",
                         expected="--teacher-weights FILE", fix=hint)
    builder = getattr(video_models(), name)
    if options.weights == RANDOM:
        log.warning("!!! --teacher-weights random: the teacher %s has RANDOM weights; it teaches nothing. For tests "
                    "and smoke runs only !!!", spec)
        torch.manual_seed(0)
        module, identity = builder(weights=None), {"name": name, "weights": RANDOM}
    else:
        path = _weights_file(options.weights, spec, hint)
        classes_in_file = _class_count(path, entry.head)
        torch.manual_seed(0)
        module = builder(weights=None, num_classes=classes_in_file or len(weights.meta["categories"]))
        _load_state(module, path, spec)
        identity = {"name": name, "weights": sha256_file(path)}
    k = module.state_dict()[entry.head].shape[0]
    classes = list(weights.meta["categories"]) if k == len(weights.meta["categories"]) else None
    return Teacher(spec, TeacherKind.TORCHVISION, options.contract.apply(entry.contract),
                   _torch_run(module, device=options.device), identity=identity, classes=classes,
                   info={"teacher_weights": identity["weights"]})


def _class_count(path: Path, head: str) -> int | None:
    """The class count of a fine-tuned classifier's weights (None: let load_state_dict say what is wrong)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - _load_state reports it with the full message
        return None
    w = state.get(head) if isinstance(state, dict) else None
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.dim() >= 2 else None


# --- user code -----------------------------------------------------------------------------------------
def load_python(spec: str, options: TeacherOptions, default: TeacherInput) -> Teacher:
    """``file.py:factory`` or ``package.module:factory``: user code, run because the user asked for it."""
    from torch import nn

    where, _, factory_name = spec.rpartition(":")
    module = _import_user_module(where, spec)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise UsageError(f"--teacher {spec}: no factory '{factory_name}' in {where}{closest(factory_name, names)}",
                         expected="a function or class that returns an nn.Module",
                         fix=f"name one of: {', '.join(names[:10]) or '(no callables)'}")
    log.warning("running user code: %s (--teacher)", spec)
    model = factory()
    if not isinstance(model, nn.Module):
        raise UsageError(f"--teacher {spec}: the factory returned an object of type {type(model).__name__}",
                         expected="a torch.nn.Module", fix=f"make {factory_name}() return the model")
    code_file: str | None = getattr(module, "__file__", None)  # None for a namespace package
    identity: dict[str, Any] = {"code": sha256_file(code_file) if code_file else where, "factory": factory_name}
    if options.weights is None:
        log.warning("--teacher %s without --teacher-weights: the weights are whatever %s() returns",
                    spec, factory_name)
    elif options.weights == RANDOM:
        log.warning("!!! --teacher-weights random: %s keeps its initial weights; for tests only !!!", spec)
    else:
        path = _weights_file(options.weights, spec, "")
        _load_state(model, path, spec)
        identity["weights"] = sha256_file(path)
    return Teacher(spec, TeacherKind.PYTHON, options.contract.apply(default), _torch_run(model, device=options.device),
                   identity=identity)


def _import_user_module(where: str, spec: str) -> types.ModuleType:
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise UsageError(f"--teacher {spec}: no such file {where}", expected="path/to/file.py:factory",
                             fix="check the path of the Python file")
        mod_spec = importlib.util.spec_from_file_location(f"edgelstm_teacher_{path.stem}", path)
        assert mod_spec is not None and mod_spec.loader is not None  # a .py file always has one
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as e:
        raise UsageError(f"--teacher {spec}: cannot import '{where}' ({e})",
                         expected="an existing checkpoint, torchvision:NAME, a .onnx/.pt2/TorchScript file, "
                                  "file.py:factory or package.module:factory",
                         fix="check the path, or make the package importable (pip install -e it)") from None


# --- TorchScript and exported programs -------------------------------------------------------------------------
def load_torchscript(spec: str, options: TeacherOptions, default: TeacherInput) -> Teacher:
    import torch

    log.warning("running TorchScript code from %s (--teacher)", spec)
    module = torch.jit.load(spec, map_location="cpu")
    return Teacher(spec, TeacherKind.TORCHSCRIPT, options.contract.apply(default),
                   _torch_run(module, device=options.device), identity={"sha256": sha256_file(spec)})


def load_exported(spec: str, options: TeacherOptions, default: TeacherInput) -> Teacher:
    import torch

    if not Path(spec).is_file():
        raise UsageError(f"--teacher {spec}: no such file", expected="an exported program (.pt2)",
                         fix="check the path")
    log.warning("running the exported program %s (--teacher)", spec)
    module = torch.export.load(spec).module()
    return Teacher(spec, TeacherKind.EXPORTED, options.contract.apply(default),
                   _torch_run(module, device=options.device, exported=True), identity={"sha256": sha256_file(spec)})


# --- ONNX --------------------------------------------------------------------------------------------------
def load_onnx(spec: str, options: TeacherOptions, default: TeacherInput) -> Teacher:
    import onnxruntime as ort

    if not Path(spec).is_file():
        raise UsageError(f"--teacher {spec}: no such file", expected="an ONNX model", fix="check the path")
    sess = ort.InferenceSession(spec, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = list(inp.shape)
    base = onnx_contract(shape, inp.type, default, spec)
    contract = options.contract.apply(base)
    _check_onnx_fits(shape, contract, spec)
    name = inp.name

    def run(x: np.ndarray, lengths: np.ndarray | None) -> tuple[np.ndarray, None]:
        return sess.run(None, {name: x})[0], None

    return Teacher(spec, TeacherKind.ONNX, contract, run, identity={"sha256": sha256_file(spec)})


def onnx_contract(shape: list[Any], onnx_type: str, default: TeacherInput, spec: str) -> TeacherInput:
    """The contract an ONNX model's 5-D input declares: where its 3 channels sit gives the layout, fixed dims
    give the size and clip length; dynamic ones fall back to the data's."""
    if len(shape) != 5:
        raise UsageError(f"--teacher {spec}: the model's input has shape {shape}",
                         expected="a 5-D clip input (N, C, T, H, W), (N, T, C, H, W) or (N, T, H, W, C)",
                         fix="export the teacher with one clip tensor as its input")
    layouts = {1: (Layout.NCTHW, 2, (3, 4)), 2: (Layout.NTCHW, 1, (3, 4)), 4: (Layout.NTHWC, 1, (2, 3))}
    axis = next((a for a in (1, 2, 4) if shape[a] == 3), None)
    layout, t_axis, hw = layouts[axis] if axis is not None else (default.layout, 2, (3, 4))

    def fixed(v: Any, fallback: int) -> int:
        return v if isinstance(v, int) and v > 0 else fallback

    dtype = InputDtype.UINT8 if onnx_type == "tensor(uint8)" else InputDtype.FLOAT32
    return TeacherInput(size=(fixed(shape[hw[0]], default.size[0]), fixed(shape[hw[1]], default.size[1])),
                        clip_len=fixed(shape[t_axis], default.clip_len), layout=layout, mean=default.mean,
                        std=default.std, dtype=dtype)


def _check_onnx_fits(shape: list[Any], contract: TeacherInput, spec: str) -> None:
    t, h, w = contract.clip_len, *contract.size
    want = {Layout.NCTHW: [None, 3, t, h, w], Layout.NTCHW: [None, t, 3, h, w],
            Layout.NTHWC: [None, t, h, w, 3]}[contract.layout]
    for got, exp in zip(shape[1:], want[1:]):
        if isinstance(got, int) and got > 0 and got != exp:
            raise UsageError(f"--teacher {spec}: the model's input is {shape}; the teacher contract "
                             f"({contract.describe()}) feeds {['N', *want[1:]]}",
                             expected="a contract that fits the model's fixed input dims",
                             fix="drop or change --teacher-size / --teacher-clip-len / --teacher-layout to match")
