"""Export: checkpoint -> streaming bundle (ONNX, OpenVINO IR), INT8 quantization behind an accuracy gate.

Public API::

    export_bundle(checkpoint_path, out_dir, *, formats=("onnx",), int8=False, calib_data=None, ...) -> ExportReport
    quantize_bundle(bundle_dir, *, calib_data, backends=("onnx",), max_drop=1.0, force=True) -> QuantReport

This package imports torch; the runtime never imports it.
"""
from __future__ import annotations

from typing import Any

__all__ = ["export_bundle", "quantize_bundle", "ExportReport", "QuantReport"]


def __getattr__(name: str) -> Any:
    # Lazy: `from edgelstm.export import export_bundle` without importing torch at package import.
    if name in ("export_bundle", "ExportReport", "GraphLayout"):
        from edgelstm.export import exporter

        return getattr(exporter, name)
    if name in ("quantize_bundle", "QuantReport"):
        from edgelstm.export import quantize

        return getattr(quantize, name)
    raise AttributeError(name)
