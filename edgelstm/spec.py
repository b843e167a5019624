"""The contract between export and runtime: one frozen description of a deployable model.

Everything a runtime needs to run an exported model lives here: tensor names, shapes and dtypes, the LSTM state
layout, preprocessing, labels and the temporal facts (clip length, frame stride, training fps, reset policy).
``export/`` derives ONNX names and dynamic axes from these objects; ``runtime/`` checks a loaded model against them
before the first frame. Tensor names are spelled here only. Standard library only: torch and device share it.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgelstm.errors import BundleError
from edgelstm.captionspec import Captioning
from edgelstm.jsonspec import from_jsonable, to_jsonable
from edgelstm.detectspec import Detection
from edgelstm.quantreport import Int8Report
from edgelstm.trackspec import Tracking

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
METADATA_KEY = "edgelstm.spec"  # key of the spec in each ONNX file's metadata_props

# --- tensor names (the only place they are spelled) -------------------------------------
FRAMES = "frames"      # encoder input: raw uint8 frames (N, H, W, 3); normalisation is in the graph
FEATURES = "features"  # encoder output and step input: float32 (N, F)
H_IN, C_IN = "h", "c"  # LSTM hidden and cell state in: float32 (num_layers, N, hidden)
LOGITS = "logits"      # step output: float32 (N, num_classes)
H_OUT, C_OUT = "h_out", "c_out"
P_IN, P_OUT = "prev", "prev_out"  # a motion model's previous features (1, N, F): ModelInfo.carries_features
CLIP = "clip"          # clip model input: uint8 (N, T, H, W, 3) or float32 (N, T, F)
CLIP_LOGITS = "clip_logits"  # clip model output: float32 (N, T, num_classes), one row per step
TOKEN, WORD_LOGITS = "token", "word_logits"  # captioning decoder: previous word int64 (N,) in, next (N, V) out
BATCH, TIME = "batch", "time"  # names of the dynamic batch and time axes


class Role(StrEnum):
    ENCODER = "encoder"  # frames -> features (stateless, batched across streams)
    STEP = "step"        # features, h, c -> logits, h_out, c_out (one time step)
    FUSED = "fused"      # frames, h, c -> logits, h_out, c_out (encoder and step in one graph)
    CLIP = "clip"        # clip -> clip_logits (offline evaluation, clip re-inference)
    DECODER = "decoder"  # token, h, c -> word_logits, h_out, c_out (a captioner's word decoder, one word)


class Backend(StrEnum):
    ONNXRUNTIME, OPENVINO = "onnxruntime", "openvino"


class Precision(StrEnum):
    FP32, INT8 = "fp32", "int8"


class ModelKind(StrEnum):
    FRAMES = "frames"      # a frame encoder in front of the LSTM
    FEATURES = "features"  # pre-extracted per-frame features straight into the LSTM


class ColourOrder(StrEnum):
    RGB, BGR = "rgb", "bgr"


class ResizeMode(StrEnum):
    BILINEAR, AREA, NEAREST = "bilinear", "area", "nearest"


class Task(StrEnum):  # what a model's output means
    CLASSIFY = "classify"  # one label per clip (or per moment of a stream): labels are the classes
    DETECT = "detect"      # per-frame scores over action classes and a background class; events from them
    TRACK = "track"        # four box outputs per frame, relative to crops the runtime cuts around the last box
    CAPTION = "caption"    # a streaming encoder (logits: the motion classes) and a word decoder: captions


# --- the spec's parts -------------------------------------------------------------------
@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # a str is a named dynamic axis
    dtype: str                    # numpy dtype name: "float32", "uint8"

    def matches(self, shape: tuple[int | str | None, ...], dtype: str) -> bool:
        """True when a model's declared input/output agrees with this spec."""
        if dtype != self.dtype or len(shape) != len(self.shape):
            return False
        return all(isinstance(s, str) or d is None or isinstance(d, str) or d == s
                   for s, d in zip(self.shape, shape))


@dataclass(frozen=True)
class Preprocess:
    size: tuple[int, int]           # (H, W) the model takes
    colour_order: ColourOrder       # channel order of the graph's uint8 input
    mean: tuple[float, float, float]  # per channel, on the 0..1 scale, in the model's RGB order
    std: tuple[float, float, float]
    resize: ResizeMode = ResizeMode.AREA
    layout: str = "NHWC"            # the graph takes HWC uint8; HWC->CHW and normalisation run in-graph


@dataclass(frozen=True)
class FeatureNorm:
    """Per-feature standardisation of a feature model's input, computed on its training split. The step and clip
    graphs apply it in-graph ((x - mean) / std), so a device feeds raw features: the bundle says so here."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


# Defaults declared once: the frame size and clip length a model gets when nothing says otherwise.
DEFAULT_SIZE: tuple[int, int] = (64, 64)
DEFAULT_CLIP_LEN = 16


@dataclass(frozen=True)
class DataFacts:
    """What a model was trained on: stored in every checkpoint (``data``), read by export (preprocess,
    temporal facts, default calibration data), evaluation and distillation. Strict like the manifest."""

    kind: ModelKind
    clip_len: int                                   # T, frames per clip in training
    size: tuple[int, int] | None = None             # (H, W) of the frames; None for features
    mean: tuple[float, float, float] | None = None  # per RGB channel, 0..1 scale (the model's FrameNorm)
    std: tuple[float, float, float] | None = None
    stride: int = 1                                 # source frames between two model frames
    fps: float = 0.0                                # rate of model frames in training; 0 when unknown
    feature_size: int | None = None                 # width of one LSTM step input
    sampling: str = "uniform"                       # how T frames were taken from a clip: uniform | stride
    resize: ResizeMode = ResizeMode.AREA
    source: str = ""                                # the --data it was trained on ("synthetic", a path)
    data_seed: int = 0                              # seed of the synthetic set or of carving val/test
    synthetic_counts: tuple[int, int, int] | None = None  # clips per split of the synthetic set
    colour_order: ColourOrder = ColourOrder.RGB     # channel order of the training frames (datasets: RGB)
    feature_mean: tuple[float, ...] | None = None   # features: per feature on the train split (standardisation)
    feature_std: tuple[float, ...] | None = None
    task: Task = Task.CLASSIFY                      # detect: per-frame targets on long videos, with a background
    background: int = -1                            # detect: index of the background class in the classes

    @classmethod
    def from_dict(cls, data: Any, *, source: str | Path) -> DataFacts:
        return from_jsonable(cls, data, where="data", source=source)  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)  # type: ignore[no-any-return]

    def load_options(self) -> dict[str, Any]:
        """``edgelstm.data.load_dataset`` keywords that sample new data as this model was trained."""
        opts: dict[str, Any] = {"clip_len": self.clip_len, "sampling": self.sampling, "seed": self.data_seed}
        if self.size is not None:
            opts["size"] = self.size
        if self.sampling == "stride":
            opts["stride"] = self.stride
        return opts


@dataclass(frozen=True)
class ResetPolicy:
    max_gap_s: float            # a longer gap between fed frames resets the state
    on_reconnect: bool = True   # a reopened source resets the state
    every_frames: int = 0       # reset after this many fed frames (0: never)


@dataclass(frozen=True)
class Temporal:
    clip_len: int        # T the model was trained on
    frame_stride: int    # frames of the original video between two model frames
    train_fps: float     # rate at which the model expects frames (source fps / stride)
    reset: ResetPolicy


@dataclass(frozen=True)
class StateSpec:
    input: str     # name of the state input (H_IN, C_IN, or a motion model's P_IN)
    output: str    # name of the state output (H_OUT, C_OUT or P_OUT)
    shape: tuple[int | str, ...]  # (num_layers, BATCH, hidden); P_IN: (1, BATCH, feature_size)
    dtype: str = "float32"
    init: str = "zeros"


@dataclass(frozen=True)
class FileHash:
    path: str      # relative to the bundle folder
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Artifact:
    role: Role
    backend: Backend
    precision: Precision
    files: tuple[FileHash, ...]   # the model file first (.onnx or .xml), then its weights (.bin)
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    inference_precision: str = ""  # what the backend runs by default (OpenVINO: "f32", "bf16")
    notes: str = ""

    @property
    def key(self) -> str:
        return f"{self.role}:{self.backend}:{self.precision}"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: ModelKind
    num_classes: int
    feature_size: int
    hidden_size: int
    num_layers: int
    params: int
    macs_per_frame: int
    carries_features: bool = False  # the step also takes the previous step's features as state (P_IN)

    @property
    def carried_size(self) -> int:  # width of the previous step's features taken as state (P_IN); 0: none
        return self.feature_size if self.carries_features else 0


@dataclass(frozen=True)
class ParityResult:
    artifact: str          # Artifact.key
    reference: str         # "torch" or another artifact key
    frames: int
    max_abs_diff: float
    argmax_agreement: float  # fraction of steps whose argmax equals the reference's
    tolerance: float
    passed: bool


@dataclass(frozen=True)
class Versions:
    toolkit: str
    torch: str = ""
    onnx: str = ""
    opset: int = 0
    onnxruntime: str = ""
    openvino: str = ""
    nncf: str = ""


@dataclass(frozen=True)
class SelfTest:
    """A deterministic input stream and what the exported FP32 artefact answered to it.

    The inputs are not stored: ``runtime.selftest.selftest_inputs`` derives them from ``seed`` with numpy
    (uint8 frames in the graph's colour order, or standard-normal features), ``streams`` streams of ``steps``
    steps each, state from zero. ``Engine.load(verify=True)`` runs them on the chosen backend, precision and
    device: a step graph whose state outputs are swapped or mis-wired passes every shape check but not this.
    """

    seed: int
    steps: int                            # N time steps per stream
    streams: int                          # streams stepped side by side (a batch)
    logits: tuple[tuple[float, ...], ...]  # (streams, K) after the last step, FP32, 6 significant digits
    tolerance: float = 1e-3               # max |logit difference| per unit of logit scale (float32 inference)


@dataclass(frozen=True)
class Manifest:
    format_version: int
    model: ModelInfo
    labels: tuple[str, ...]
    preprocess: Preprocess | None   # None for feature models
    temporal: Temporal
    state: tuple[StateSpec, ...]
    artifacts: tuple[Artifact, ...]
    source_checkpoint_sha256: str
    parity: tuple[ParityResult, ...]
    versions: Versions
    created: str = ""
    quantization: Int8Report | None = None  # the INT8 gate's report; None until INT8 artefacts exist
    features: FeatureNorm | None = None  # feature models: the standardisation their graphs apply in-graph
    data_source: str = ""  # what the model was trained on ("synthetic", a path): the default calibration data
    selftest: SelfTest | None = None  # the FP32 artefact's answer to a seeded stream; None in 0.1 bundles
    task: Task = Task.CLASSIFY  # bundles written before tasks existed are classifiers
    detection: Detection | None = None  # task detect: the background label and the event thresholds
    captioning: Captioning | None = None  # task caption: the vocabulary and when the runtime writes captions
    tracking: Tracking | None = None  # task track: the crop and box geometry the runtime tracks with

    def artifact(self, role: Role, backend: Backend, precision: Precision) -> Artifact | None:
        for a in self.artifacts:
            if (a.role, a.backend, a.precision) == (role, backend, precision):
                return a
        return None

    def data_options(self) -> dict[str, Any]:
        """How to load data for this model (``edgelstm.data.load_dataset`` keywords): its frame size and
        clip length; feature models take no size."""
        size = {"size": self.preprocess.size} if self.preprocess is not None else {}
        return {**size, "clip_len": self.temporal.clip_len}

    def to_json(self) -> str:
        return json.dumps(to_jsonable(self), indent=2, sort_keys=False) + "\n"

    def without_hashes(self) -> Manifest:
        """This manifest with every file's sha256 and size blanked: the form embedded in each model file.

        A file cannot hold its own hash, so ``metadata_props[METADATA_KEY]`` carries this form, and
        ``Manifest.read(p).without_hashes().to_json()`` equals the embedded text.
        """
        arts = tuple(dataclasses.replace(a, files=tuple(FileHash(f.path, "", 0) for f in a.files))
                     for a in self.artifacts)
        return dataclasses.replace(self, artifacts=arts)

    @classmethod
    def from_dict(cls, data: Any, *, source: str | Path = MANIFEST_NAME) -> Manifest:
        if not isinstance(data, dict):
            raise BundleError(f"the manifest is a JSON {type(data).__name__}", expected="a JSON object",
                              fix="re-export the bundle with `edgelstm export`", path=source)
        version = data.get("format_version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise BundleError(
                f"manifest format_version {version} is newer than this edgelstm understands ({FORMAT_VERSION})",
                expected=f"format_version <= {FORMAT_VERSION}", path=source,
                fix="upgrade edgelstm (pip install -U edgelstm) or export the bundle with this version")
        if data.get("quantization") == {}:  # 0.1 bundles wrote an empty object for "no INT8 report"
            data = {**data, "quantization": None}
        manifest: Manifest = from_jsonable(cls, data, where="manifest", source=source)
        manifest.check(source=source)
        return manifest

    def check(self, *, source: str | Path = MANIFEST_NAME) -> None:
        """Refuse a manifest whose values cannot describe a runnable model (types are checked on reading):
        a :class:`BundleError` naming the first bad field, never a hang, a MemoryError or a traceback later."""
        from edgelstm.spec_check import check_manifest  # the bounds live beside the types they bound

        check_manifest(self, source)

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BundleError("no manifest.json here", expected="a bundle folder written by `edgelstm export`",
                              fix="pass the folder that `edgelstm export --out` wrote", path=path) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BundleError(f"the manifest is not valid JSON ({e.msg} at line {e.lineno})",
                              expected="the JSON that `edgelstm export` writes",
                              fix="re-export the bundle", path=path) from None
        return cls.from_dict(data, source=path)


# --- I/O derived from the spec: export uses these to name tensors and dynamic axes -------
def state_specs(num_layers: int, hidden_size: int, carry: int = 0) -> tuple[StateSpec, ...]:
    """h and c; and the previous step's features (width ``carry``) for a model that carries them."""
    shape: tuple[int | str, ...] = (num_layers, BATCH, hidden_size)
    prev = (StateSpec(P_IN, P_OUT, (1, BATCH, carry)),) if carry else ()
    return (StateSpec(H_IN, H_OUT, shape), StateSpec(C_IN, C_OUT, shape)) + prev


def encoder_io(size: tuple[int, int], feature_size: int) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    h, w = size
    return ((TensorSpec(FRAMES, (BATCH, h, w, 3), "uint8"),),
            (TensorSpec(FEATURES, (BATCH, feature_size), "float32"),))


def step_io(info: ModelInfo, *, size: tuple[int, int] | None = None,
            fused: bool = False) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs and outputs of the step model (features in) or the fused model (frames in)."""
    st = state_specs(info.num_layers, info.hidden_size, info.carried_size)
    if fused:
        if size is None:
            raise ValueError("a fused step model needs the frame size")
        first = TensorSpec(FRAMES, (BATCH, size[0], size[1], 3), "uint8")
    else:
        first = TensorSpec(FEATURES, (BATCH, info.feature_size), "float32")
    inputs = (first,) + tuple(TensorSpec(s.input, s.shape, s.dtype) for s in st)
    outputs = (TensorSpec(LOGITS, (BATCH, info.num_classes), "float32"),) + tuple(
        TensorSpec(s.output, s.shape, s.dtype) for s in st)
    return inputs, outputs


def clip_io(info: ModelInfo, size: tuple[int, int] | None) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    if info.kind == ModelKind.FRAMES:
        if size is None:
            raise ValueError("a frame clip model needs the frame size")
        inp = TensorSpec(CLIP, (BATCH, TIME, size[0], size[1], 3), "uint8")
    else:
        inp = TensorSpec(CLIP, (BATCH, TIME, info.feature_size), "float32")
    return (inp,), (TensorSpec(CLIP_LOGITS, (BATCH, TIME, info.num_classes), "float32"),)


def names(tensors: tuple[TensorSpec, ...]) -> list[str]:
    return [t.name for t in tensors]


def dynamic_axes(*groups: tuple[TensorSpec, ...]) -> dict[str, dict[int, str]]:
    """torch.onnx.export's dynamic_axes, derived from the named axes of the specs."""
    out: dict[str, dict[int, str]] = {}
    for tensors in groups:
        for t in tensors:
            axes = {i: d for i, d in enumerate(t.shape) if isinstance(d, str)}
            if axes:
                out[t.name] = axes
    return out
