"""ONNX Runtime backend: an Ultralytics-exported YOLO-pose `.onnx` run directly, without PyTorch or Ultralytics."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vtpose.backends.base import DEFAULT_CONF, DEFAULT_IMGSZ, MODEL_STRIDE, OUTPUT_ROWS, PoseBackend
from vtpose.errors import VtposeError


class OnnxPoseModel(PoseBackend):
    """A YOLO-pose ONNX graph run with ONNX Runtime; letterbox, NMS and keypoint decoding in numpy.

    Args:
        path: the `.onnx` file (Ultralytics export; a dynamic batch axis lets requests share a call).
        imgsz: inference size (square side), pixels; a multiple of the stride.
        conf: minimum person confidence kept.
        threads: ONNX Runtime intra-op threads; None for the CPU cores this process may use.
        wide_threads: if more than `threads`, a second session with this many threads serves calls made while
            no other call is running: a lone request gets every core (latency), concurrent ones a share each
            (throughput, no oversubscription).
        providers: ONNX Runtime execution providers; None for CUDA when available, else CPU.

    Raises:
        VtposeError: the file is missing or its output is not a COCO-17 pose head.
        ValueError: imgsz is not a positive multiple of the stride, or threads < 1.
    """

    name = "onnx"

    def __init__(
        self,
        path: str | Path,
        imgsz: int = DEFAULT_IMGSZ,
        conf: float = DEFAULT_CONF,
        threads: int | None = None,
        wide_threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        super().__init__(path, imgsz, conf)
        threads = threads or len(os.sched_getaffinity(0))
        if threads < 1:
            raise ValueError(f"threads={threads} must be at least 1")
        self.session = self._session(threads, providers)
        # Only on CPU: a GPU session's speed does not depend on the host threads.
        self._wide_session = (
            self._session(wide_threads, providers)
            if wide_threads and wide_threads > threads and self.session.get_providers()[0] == "CPUExecutionProvider"
            else None
        )
        meta = self.session.get_modelmeta().custom_metadata_map
        stride = int(meta.get("stride", MODEL_STRIDE))
        if imgsz % stride:
            raise ValueError(f"imgsz={imgsz} must be a positive multiple of {stride} (the model's stride)")
        self.stride = stride
        rows = self.session.get_outputs()[0].shape[1]
        if isinstance(rows, int) and rows != OUTPUT_ROWS:
            raise VtposeError(
                f"{self.weights}: output has {rows} rows, expected {OUTPUT_ROWS}; "
                "use a single-class COCO-17 pose model (kpt_shape [17, 3])."
            )
        shape = self.session.get_inputs()[0].shape
        if all(isinstance(side, int) for side in shape[2:]) and tuple(shape[2:]) != (imgsz, imgsz):
            raise VtposeError(
                f"{self.weights}: the graph takes {shape[2]}x{shape[3]} inputs, not imgsz {imgsz}; export it with "
                "a dynamic shape or at this size."
            )
        self.input_name = self.session.get_inputs()[0].name
        self.threads = threads
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def _session(self, threads: int, providers: Sequence[str] | None) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads sleep instead of spinning: decoding and HTTP share these cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        return ort.InferenceSession(str(self.weights), sess_options=options, providers=list(providers))

    def _forward(self, batch: np.ndarray, alone: bool) -> np.ndarray:
        session = self._wide_session if alone and self._wide_session is not None else self.session
        (outputs,) = session.run(None, {self.input_name: batch})
        return outputs
