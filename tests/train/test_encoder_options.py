"""`edgelstm train --encoder NAME --encoder-weights imagenet --freeze-encoder`: a student on a pretrained edge encoder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgelstm.cli import cli
from edgelstm.errors import UsageError
from edgelstm.models.checkpoint import load_checkpoint

BASE = ["--data", "synthetic", "--size", "32,32", "--clip-len", "4", "--counts", "40,10,10", "--epochs", "1",
        "--batch-size", "8", "--threads", "1"]


def test_frozen_pretrained_lite0_student_trains_only_what_is_unfrozen(tmp_path: Path) -> None:
    from edgelstm.models.backbones import imagenet_weights_file
    from edgelstm.models.freeze import encoder_blocks

    r = CliRunner().invoke(cli, ["train", "--model", "student", *BASE, "--out", str(tmp_path / "run"),
                                 "--encoder", "efficientnet_lite0", "--encoder-weights", "imagenet",
                                 "--freeze-encoder", "--unfreeze-last", "1"])
    assert r.exit_code == 0, r.output
    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ck.config["encoder"] == "efficientnet_lite0" and ck.config["pretrained"] is True
    # frames are normalised as the TensorFlow-trained weights expect, (x - 127) / 128, not by the data's statistics
    np.testing.assert_allclose(ck.model.norm.mean, [127 / 255] * 3, atol=1e-6)
    blocks = encoder_blocks(ck.model.encoder)
    trained = {f"body.{i}.{k}": v for i, b in enumerate(blocks) for k, v in b.state_dict().items()}
    from edgelstm.models.backbones import build_encoder, load_encoder_weights

    start = build_encoder("efficientnet_lite0", feature_size=ck.model.encoder.feature_size)
    load_encoder_weights(start, imagenet_weights_file())  # type: ignore[arg-type]
    first = [k for k in trained if k.startswith("body.0.") and k.endswith("weight")][0]
    last = [k for k in trained if k.startswith(f"body.{len(blocks) - 1}.") and k.endswith("weight")][0]
    sd = start.state_dict()
    assert torch.equal(trained[first], sd[first])      # frozen: exactly the ImageNet weights
    assert not torch.equal(trained[last], sd[last])    # the last block trained
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["model_config"]["encoder"] == "efficientnet_lite0"


def test_encoder_options_that_make_no_sense_are_usage_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "f.npz", X=np.zeros((20, 6, 3), np.float32), y=np.arange(20) % 2)
    cases = [
        (["train", "--data", str(tmp_path / "f.npz"), "--encoder", "mobilenet_v3_small"], "with features data"),
        (["train", *BASE, "--unfreeze-last", "2"], "without --freeze-encoder"),
        (["train", *BASE, "--encoder", "mobilenet_v3_small", "--encoder-weights", "imagenet"], "never downloads"),
        (["train", *BASE, "--model", "teacher_tiny", "--encoder", "efficientnet_lite0"], "does not take"),
    ]
    for i, (args, needle) in enumerate(cases):
        r = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / f"o{i}")])
        assert r.exit_code == 2 and needle in r.output, (args, r.output)
        assert not (tmp_path / f"o{i}").exists()


def test_a_truncated_pretrained_trunk_keeps_its_first_blocks_weights() -> None:
    """--encoder-blocks 6: Lite0's stem and first five MBConv blocks (stride 8), their ImageNet weights exactly,
    pooled to --encoder-grid 4; the grid default follows the map the truncated trunk gives."""
    from edgelstm.data import load_dataset
    from edgelstm.models.backbones import build_encoder, imagenet_weights_file, load_encoder_weights
    from edgelstm.train.build import build_model
    from edgelstm.train.config import EncoderChoice

    ds = load_dataset("synthetic", size=(32, 32), clip_len=4, counts=(10, 4, 4))
    model, cfg = build_model("student", ds, encoder=EncoderChoice("efficientnet_lite0", "imagenet", blocks=6, grid=4))
    assert cfg["encoder_blocks"] == 6 and cfg["encoder_grid"] == 4 and len(model.encoder.body) == 6
    full = build_encoder("efficientnet_lite0", feature_size=8)
    load_encoder_weights(full, imagenet_weights_file())  # type: ignore[arg-type]
    want = full.body.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in model.encoder.body.state_dict().items())
    assert model.encoder.proj[0].in_features == 40 * 4 * 4
    _, cfg = build_model("student", ds, encoder=EncoderChoice("efficientnet_lite0", blocks=6))
    assert cfg["encoder_grid"] == 2  # a 4x4 map at 32x32 (stride 8): the default 2x2 fits
    _, cfg = build_model("student", ds, encoder=EncoderChoice("efficientnet_lite0"))
    assert cfg["encoder_grid"] == 1  # the whole trunk gives a 1x1 map at 32x32: global pooling
    for choice, needle in ((EncoderChoice("efficientnet_lite0", blocks=40), "--encoder-blocks 40"),
                           (EncoderChoice("mobile", blocks=3), "--encoder-blocks with encoder 'mobile'"),
                           (EncoderChoice("efficientnet_lite0", grid=3), "--encoder-grid 3")):
        with pytest.raises(UsageError, match=needle):
            build_model("student", ds, encoder=choice)
