"""OpenVINO backend: a YOLO-pose IR (`.xml` + `.bin`, FP32 or INT8) on OpenVINO Runtime, without PyTorch.

Cores are shared the way the ONNX backend shares them: one compiled model with `streams` CPU streams of
`threads` threads each serves calls that overlap (throughput, no oversubscription), and, when `wide_threads` is
larger, a second one compiled for latency (one stream, every core) serves a call that runs alone.

The arithmetic is OpenVINO's default for the device unless `inference_precision` says otherwise: on a CPU with
native bfloat16 (AVX512-BF16 or AMX) that is bf16: faster than f32 at a fraction of a pixel's difference in the
keypoints (benchmarks/bench_openvino.py measures both IRs at both arithmetics side by side). The variant scoring
measures AP and latency as served, so that choice is judged on evidence; `describe()` reports it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from vtpose.backends.base import DEFAULT_CONF, DEFAULT_IMGSZ, OUTPUT_ROWS, PoseBackend
from vtpose.errors import VtposeError


def ir_precision(model: Any) -> str:
    """ "int8" if the graph holds quantize (FakeQuantize / low-precision Convert) nodes, else "fp32"."""
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            return "int8"
        if kind == "Constant" and op.get_element_type().get_type_name() in ("i8", "u8"):
            return "int8"
    return "fp32"


class OpenVinoPoseModel(PoseBackend):
    """A YOLO-pose OpenVINO IR run on OpenVINO Runtime (CPU, or another device OpenVINO offers).

    Args:
        path: the `.xml` (its `.bin` beside it), as `vtpose.backends.export_openvino` / `quantize_openvino_int8`
            write them.
        imgsz: inference size (input long side), pixels; a multiple of the stride.
        conf: minimum person confidence kept.
        threads: CPU threads per call when calls overlap; None for every core this process may use.
        wide_threads: if more than `threads`, a second compiled model with this many threads (one stream) serves
            calls made while no other call runs: a lone request gets every core.
        streams: concurrent calls the narrow model serves at once (one per model worker); None for
            max(1, cores // threads).
        device: OpenVINO device name ("CPU", "GPU"...); None for "CPU".
        inference_precision: "f32", "bf16" or "f16" arithmetic; None for the device's default (bf16 on CPUs with
            native bfloat16, else f32).

    Raises:
        VtposeError: the files are missing, unreadable, or not a COCO-17 pose head.
        ValueError: imgsz is not a positive multiple of the stride, or threads < 1.
    """

    name = "openvino"

    def __init__(
        self,
        path: str | Path,
        imgsz: int = DEFAULT_IMGSZ,
        conf: float = DEFAULT_CONF,
        threads: int | None = None,
        wide_threads: int | None = None,
        streams: int | None = None,
        device: str | None = None,
        inference_precision: str | None = None,
    ) -> None:
        super().__init__(path, imgsz, conf)
        if self.weights.suffix != ".xml":
            raise VtposeError(f"{self.weights}: an OpenVINO IR is opened by its .xml file (with the .bin beside it).")
        if not self.weights.with_suffix(".bin").is_file():
            raise VtposeError(
                f"{self.weights.with_suffix('.bin')}: the IR's weights file is missing beside its .xml; "
                "export the IR again (vtpose.backends.export.export_openvino)."
            )
        import openvino as ov

        cores = len(os.sched_getaffinity(0))
        threads = threads or cores
        if threads < 1:
            raise ValueError(f"threads={threads} must be at least 1")
        streams = streams or max(1, cores // threads)
        self.core = ov.Core()
        try:
            model = self.core.read_model(str(self.weights))
        except RuntimeError as error:
            raise VtposeError(
                f"{self.weights}: OpenVINO cannot read this IR ({str(error).splitlines()[0]}); re-export it."
            ) from error
        rows = model.outputs[0].get_partial_shape()[1]
        if rows.is_static and rows.get_length() != OUTPUT_ROWS:
            raise VtposeError(
                f"{self.weights}: output has {rows.get_length()} rows, expected {OUTPUT_ROWS}; "
                "use a single-class COCO-17 pose model (kpt_shape [17, 3])."
            )
        self.precision = ir_precision(model)
        self.device = (device or "CPU").upper()
        self.threads, self.streams = threads, streams
        self._inference_precision = inference_precision
        self._narrow = self._compile(model, threads * streams, streams)
        self._wide = (
            self._compile(model, wide_threads, 1)
            if wide_threads and wide_threads > threads and self.device == "CPU"
            else None
        )
        self._requests = threading.local()
        hint = self._narrow.get_property("INFERENCE_PRECISION_HINT")  # an openvino Type: "f32", "bf16"...
        self.inference_precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        self.device = self.device.lower()

    def _compile(self, model: Any, threads: int, streams: int) -> Any:
        import openvino.properties as props
        import openvino.properties.hint as hints

        config: dict[str, Any] = {}
        if self.device == "CPU":
            config = {
                props.inference_num_threads: threads,
                props.num_streams: streams,
                # Request threads, decoding and rendering share these cores: no pinning to cores of their own.
                hints.enable_cpu_pinning: False,
            }
        if self._inference_precision is not None:
            config[hints.inference_precision] = self._inference_precision
        try:
            return self.core.compile_model(model, self.device, config)
        except RuntimeError as error:
            raise VtposeError(
                f"{self.weights}: OpenVINO cannot compile this IR for {self.device} "
                f"({str(error).splitlines()[0]}); re-export it."
            ) from error

    def _request(self, wide: bool) -> Any:
        """This thread's infer request on the wide or narrow compiled model (a request runs one call at a time)."""
        key = "wide" if wide else "narrow"
        request = getattr(self._requests, key, None)
        if request is None:
            compiled = self._wide if wide and self._wide is not None else self._narrow
            request = compiled.create_infer_request()
            setattr(self._requests, key, request)
        return request

    def describe(self) -> dict[str, Any]:
        """The base description plus the arithmetic OpenVINO runs ("f32", "bf16"...)."""
        return {**super().describe(), "inference_precision": self.inference_precision}

    def _forward(self, batch: np.ndarray, alone: bool) -> np.ndarray:
        request = self._request(alone and self._wide is not None)
        request.infer({0: batch}, share_inputs=True)
        return np.array(request.get_output_tensor(0).data, copy=True)
