"""INT8 of a captioner behind its gate: the decoder graph is quantized too, calibrated on the words it writes, and
the gate judges the held-out captions (BLEU-4, CIDEr-D, motion words)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgelstm.errors import ExportCheckError
from edgelstm.export.caption_int8 import judge_caption
from edgelstm.export.quantize import quantize_bundle
from edgelstm.quantreport import GateSettings
from edgelstm.runtime.bundle import load_bundle
from edgelstm.spec import Backend, Precision, Role


def test_int8_quantizes_the_decoder_and_reports_caption_metrics(caption_bundle: Path, tmp_path: Path) -> None:
    b = shutil.copytree(caption_bundle, tmp_path / "b")
    report = quantize_bundle(b, calib_data="synthetic", backends=("onnx",), max_drop=50, min_agreement=0.5,
                             calib_clips=8, eval_clips=10)
    m = load_bundle(b).manifest
    dec = m.artifact(Role.DECODER, Backend.ONNXRUNTIME, Precision.INT8)
    assert dec is not None and m.quantization is not None
    chosen = report.backends["onnxruntime"].chosen
    assert chosen.passed and chosen.metric == "bleu4" and chosen.captions is not None and len(chosen.captions) == 3
    from edgelstm.export.onnx import op_counts

    assert "DynamicQuantizeLSTM" in op_counts(b / dec.files[0].path)  # the decoder's LSTM runs INT8
    from edgelstm.runtime.engine import Engine

    with Engine.load(b, precision="int8") as eng:  # and the engine captions with it
        frames = [np.zeros((16, 16, 3), np.uint8)] * m.temporal.clip_len
        # within one window a caption is written: at its end, or earlier when the shown action changes (which of
        # the two depends on the model's outputs, so on the CPU's INT8 rounding: not asserted)
        assert any(p.caption is not None and p.caption.words for p in (eng.step(f) for f in frames))


def test_gate_refuses_a_motion_word_drop() -> None:
    refs = [["a red bar moves left"], ["a blue oval moves up"]]
    fp32 = np.array(["a red bar moves left", "a blue oval moves up"], object)
    int8 = np.array(["a red bar moves right", "a blue oval moves up"], object)
    t = judge_caption(refs)(Backend.ONNXRUNTIME, (), fp32, int8, np.array([0, 2]), GateSettings(1.0))
    assert not t.passed and t.captions is not None and t.captions[2] == (1.0, 0.5) and t.final_agreement == 0.5
    t = judge_caption(refs)(Backend.ONNXRUNTIME, (), fp32, fp32.copy(), np.array([0, 2]), GateSettings(1.0))
    assert t.passed and t.frame_agreement == 1.0


def test_a_gate_that_fails_writes_nothing(caption_bundle: Path, tmp_path: Path) -> None:
    from edgelstm.quantreport import Trial

    b = shutil.copytree(caption_bundle, tmp_path / "b")
    before = (b / "manifest.json").read_text()

    def never(backend, kept, fp32, int8, y, settings):  # type: ignore[no-untyped-def]
        return Trial(str(backend), kept, 0.5, 0.1, 0.0, 0.0, 0.0, 0.0, False, 40.0, metric="bleu4")

    with pytest.raises(ExportCheckError, match="does not fit the accuracy gate"):
        quantize_bundle(b, calib_data="synthetic", backends=("onnx",), max_drop=50, min_agreement=0.5,
                        calib_clips=4, eval_clips=10, judge=never)
    assert (b / "manifest.json").read_text() == before


def test_a_refusal_names_the_caption_metrics() -> None:
    from edgelstm.export.report import trials_text
    from edgelstm.quantreport import Trial

    t = Trial("openvino", ("proj", "lstm", "head"), 0.24, 0.237, 0.883, 0.98, 0.0, 0.0, False, 0.25, metric="bleu4",
              captions=((24.0, 23.7), (1.042, 1.031), (0.867, 0.85)))
    text = trials_text([t])
    assert "motion words" in text and "86.7% -> 85.0%" in text and "104.2 -> 103.1" in text and "24.0 -> 23.7" in text
