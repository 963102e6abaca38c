"""The fp32 ONNX export (onnx_encoder.py) run by OpenVINO's CPU plugin, in bf16 where the CPU has bf16
instructions (about 2x onnxruntime's fp32 speed on 2 AVX-512 cores, the same neighbours) and in f32
elsewhere (onnxruntime's vectors within 4e-7). Measurements: docs/benchmarks.md, section 10."""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Literal

import numpy as np

from audit_agent.features.onnx_encoder import GraphEncoder, export_onnx

OvPrecision = Literal["bf16", "f32"]


@functools.cache
def cpu_precision() -> OvPrecision:
    """bf16 when OpenVINO reports bf16 support for this CPU, else f32."""
    import openvino as ov

    return "bf16" if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"


class OpenVinoEncoder(GraphEncoder):
    """Sentence vectors from the fp32 export compiled by OpenVINO at `precision` (default: `cpu_precision()`)."""

    def __init__(self, folder: Path, *, precision: OvPrecision | None = None, batch_size: int = 32,
                 threads: int | None = None) -> None:
        import openvino as ov

        super().__init__(folder, batch_size=batch_size)
        self.precision = precision or cpu_precision()
        config = {"INFERENCE_NUM_THREADS": threads or min(4, os.cpu_count() or 1),
                  "INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "LATENCY"}
        self.model = ov.Core().compile_model(str(export_onnx(folder)), "CPU", config)
        self.output = self.model.output(0)
        self.request = self.model.create_infer_request()
        self.lock = threading.Lock()  # an infer request serves one call at a time

    def hidden(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        with self.lock:
            return np.asarray(self.request.infer(feed)[self.output])  # infer copies its outputs
