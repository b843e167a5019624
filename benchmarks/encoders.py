"""Per-frame encoders for students, measured in one run on this machine (issue 11 §2).

For each encoder of ``edgelstm.models.backbones``: parameters, MACs per frame at 112/160/224 (encoder only),
then the encoder graph alone (uint8 NHWC frame -> in-graph normalisation -> encoder -> features) exported with
the project's exporter settings (TorchScript, opset 17), checked against torch, and timed at batch 1 on one
thread: onnxruntime FP32 and static INT8 (QDQ, per-channel), OpenVINO FP32 (INFERENCE_PRECISION_HINT f32) and
NNCF INT8. INT8 is calibrated on random frames: this measures speed, not accuracy. Median of --iters runs.

    .venv/bin/python benchmarks/encoders.py [--size 160] [--iters 30] [--encoders mobile,efficientnet_lite0]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _median_ms(fn: Callable[[], object], iters: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def _graph(name: str):  # noqa: ANN202 - FrameNorm + encoder, as the bundle's encoder graph computes it
    import torch

    from edgelstm.models import create_model

    torch.manual_seed(0)
    pretrained = name not in ("mobile", "tiny", "wide")
    model = create_model("student", num_classes=4, encoder=name, pretrained=pretrained).eval()
    return model, torch.nn.Sequential(model.norm, model.encoder).eval()


def _macs(model, size: int) -> int:  # noqa: ANN001 - encoder only: the whole student minus its LSTM and head
    from edgelstm.models.macs import macs_per_frame

    lstm = model.lstm
    rest = 4 * lstm.hidden_size * (lstm.input_size + lstm.hidden_size) + model.head.in_features * model.head.out_features
    return macs_per_frame(model, size=(size, size), frames=1) - rest


def measure(name: str, size: int, iters: int, work: Path) -> dict[str, object]:
    import nncf
    import onnxruntime as ort
    import openvino as ov
    import torch
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgelstm.export.openvino import precision_name

    model, graph = _graph(name)
    row: dict[str, object] = {"encoder": name, "params": sum(p.numel() for p in model.encoder.parameters())}
    for s in (112, 160, 224):
        row[f"MMACs@{s}"] = _macs(model, s) / 1e6
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8) for _ in range(8)]
    onnx_path = work / f"{name}.onnx"
    with torch.no_grad():
        torch.onnx.export(graph, (torch.from_numpy(frames[0]),), str(onnx_path), dynamo=False, opset_version=17,
                          input_names=["frame"], output_names=["features"], do_constant_folding=True)
        want = graph(torch.from_numpy(frames[1])).numpy()
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"frame": frames[1]})[0]
    row["export rel diff"] = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-12))
    row["ort fp32 ms"] = _median_ms(lambda: sess.run(None, {"frame": frames[0]}), iters)

    pre, q_path = work / f"{name}.pre.onnx", work / f"{name}.int8.onnx"
    quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)

    class Reader:
        def __init__(self) -> None:
            self.it = iter([{"frame": f} for f in frames])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    quantize_static(str(pre), str(q_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    qsess = ort.InferenceSession(str(q_path), so, providers=["CPUExecutionProvider"])
    row["ort int8 ms"] = _median_ms(lambda: qsess.run(None, {"frame": frames[0]}), iters)

    core = ov.Core()
    xml = work / f"{name}.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    cfg = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1,
           "PERFORMANCE_HINT": "LATENCY"}
    fp = core.compile_model(str(xml), "CPU", cfg)
    row["ov precision"] = precision_name(fp.get_property("INFERENCE_PRECISION_HINT"))
    req = fp.create_infer_request()
    row["ov fp32 ms"] = _median_ms(lambda: req.infer({0: frames[0]}), iters)
    qmodel = nncf.quantize(core.read_model(str(xml)), nncf.Dataset([{"frame": f} for f in frames]),
                           subset_size=len(frames), preset=nncf.QuantizationPreset.PERFORMANCE)
    qxml = work / f"{name}.int8.xml"
    ov.save_model(qmodel, str(qxml), compress_to_fp16=False)
    qreq = core.compile_model(str(qxml), "CPU", cfg).create_infer_request()
    row["ov int8 ms"] = _median_ms(lambda: qreq.infer({0: frames[0]}), iters)
    return row


def main() -> None:
    import logging

    import torch

    from edgelstm.models.backbones import encoder_names

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=160,
                   help="frame size for the latency columns (mobile's 4x4 grid needs a multiple of 32 to export)")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--encoders", default=",".join(n for n in encoder_names() if n not in ("tiny", "wide")))
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.encoders.split(","):
            try:
                rows.append(measure(name, args.size, args.iters, Path(tmp)))
            except Exception as e:  # noqa: BLE001 - a benchmark reports what failed and goes on
                rows.append({"encoder": name, "error": f"{type(e).__name__}: {str(e)[:160]}"})
            print(rows[-1], flush=True)
    cols = ["encoder", "params", "MMACs@112", "MMACs@160", "MMACs@224", "export rel diff", "ort fp32 ms",
            "ort int8 ms", "ov fp32 ms", "ov int8 ms", "ov precision"]
    print(f"\nbatch 1, one thread, encoder only, latency at {args.size}x{args.size}, median of {args.iters}")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        if "error" in r:
            print(f"| {r['encoder']} | error: {r['error']} |")
            continue
        cells = [f"{v:,}" if isinstance(v, int) else f"{v:.3g}" if isinstance(v, float) and c.startswith("export")
                 else f"{v:.1f}" if isinstance(v, float) else str(v) for c, v in ((c, r[c]) for c in cols)]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
