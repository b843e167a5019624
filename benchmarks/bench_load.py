"""P8: bundle load -> first prediction, cold, in a fresh process per try.

Each try is a new ``python -c`` that first imports what the runtime needs (numpy, OpenCV, the edgelstm
runtime and the backend's own library: timed and reported apart), then times ``load_bundle`` (hashes every
artefact), ``Engine.load`` (plan, open the models, replay the bundle's self-test, as a deployer gets it)
and the first ``step`` on one 640x480 frame. The median of ``tries`` per backend and precision.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = (("cpu", "onnxruntime", "fp32"), ("cpu", "onnxruntime", "int8"),
           ("intel-cpu", "openvino", "fp32"), ("intel-cpu", "openvino", "int8"))
BACKEND_MODULE = {"onnxruntime": "onnxruntime", "openvino": "openvino"}

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import cv2
from edgelstm.runtime.bundle import load_bundle
from edgelstm.runtime.engine import Engine
import {module}
t1 = time.perf_counter()
frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
t2 = time.perf_counter()
b = load_bundle({bundle!r})
t3 = time.perf_counter()
eng = Engine.load(b, device={device!r}, backend={backend!r}, precision={precision!r})
t4 = time.perf_counter()
p = eng.step(frame)
t5 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "bundle_s": t3 - t2, "engine_s": t4 - t3, "first_step_s": t5 - t4,
                  "total_s": t5 - t2, "label": p.label, "precision": eng.info["precision"],
                  "selftest": str(eng.info.get("selftest", ""))}}))
"""


def cold_start(bundle: Path, device: str, backend: str, precision: str) -> dict[str, Any]:
    """One try in a fresh interpreter; the child's JSON line."""
    code = CHILD.format(module=BACKEND_MODULE[backend], bundle=str(bundle), device=device, backend=backend,
                        precision=precision)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env,
                         timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"P8 child ({backend} {precision}) failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def load_times(bundle: Path, manifest: dict[str, Any], *, tries: int = 3, say: Any = print) -> list[dict[str, Any]]:
    """Median of ``tries`` cold starts per (backend, precision) the bundle holds, with every try."""
    have = {(a["backend"], a["precision"]) for a in manifest["artifacts"] if a["role"] != "clip"}
    rows = []
    for device, backend, precision in CONFIGS:
        if (backend, precision) not in have:
            rows.append({"backend": backend, "precision": precision, "missing": True})
            continue
        runs = [cold_start(bundle, device, backend, precision) for _ in range(tries)]
        med = {k: float(np.median([r[k] for r in runs])) for k in ("import_s", "bundle_s", "engine_s",
                                                                   "first_step_s", "total_s")}
        rows.append({"backend": backend, "precision": precision, "device": device, **med,
                     "tries": [round(r["total_s"], 3) for r in runs], "ran": runs[0]["precision"]})
        say(f"  {backend} {precision}: load -> first prediction {med['total_s']:.3f} s (median of {tries}; "
            f"imports {med['import_s']:.2f} s apart)")
    return rows
