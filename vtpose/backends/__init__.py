"""Model backends: one interface (`PoseBackend`), one module per inference engine, shared pre/post-processing.

- `vtpose.backends.base`: the one letterbox rule (`letterbox`), `decode_pose_output`, `nms`,
  `PoseBackend` (`prepare`, `run`, `predict`, `predict_one`, `describe`).
- `vtpose.backends.pytorch`: `TorchPoseModel` (`.pt`), `vtpose.backends.onnx`: `OnnxPoseModel` (`.onnx`),
  `vtpose.backends.openvino`: `OpenVinoPoseModel` (`.xml` + `.bin`, FP32 or INT8).
- `vtpose.backends.export`: the one export chain `export_model_variants` (.pt -> ONNX -> OpenVINO FP32 IR -> INT8
  IR, NNCF) and its steps, and `cached_export` (the CLI's `--backend` cache).

`open_backend(path)` picks the engine from the file's suffix. The ONNX and OpenVINO modules never import PyTorch.
"""

from __future__ import annotations

from pathlib import Path

from vtpose.backends.base import (
    DEFAULT_CONF,
    DEFAULT_IMGSZ,
    EVAL_CONF,
    MAX_DETECTIONS,
    MODEL_STRIDE,
    Letterboxed,
    PoseBackend,
    decode_pose_output,
    input_shape,
    letterbox,
    nms,
)
from vtpose.errors import VtposeError

# Engine names, and the suffix of the file each opens.
BACKENDS = ("pytorch", "onnx", "openvino")
WEIGHT_SUFFIXES = {".pt": "pytorch", ".onnx": "onnx", ".xml": "openvino"}
# What a packaged model can be served as: an engine, and for OpenVINO a precision.
VARIANTS = ("pytorch", "onnx", "openvino", "openvino-int8")
ENV_BACKEND = "VTPOSE_BACKEND"

__all__ = [
    "BACKENDS",
    "DEFAULT_CONF",
    "DEFAULT_IMGSZ",
    "ENV_BACKEND",
    "EVAL_CONF",
    "MAX_DETECTIONS",
    "MODEL_STRIDE",
    "VARIANTS",
    "WEIGHT_SUFFIXES",
    "Letterboxed",
    "PoseBackend",
    "backend_for",
    "decode_pose_output",
    "input_shape",
    "letterbox",
    "nms",
    "open_backend",
    "resolve_variant",
]


def backend_for(path: str | Path) -> str:
    """The engine that opens `path`, from its suffix.

    Raises:
        VtposeError: an unsupported suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise VtposeError(
            f"{path}: unsupported weights type {suffix!r}; use one of {tuple(WEIGHT_SUFFIXES)} "
            "(.xml: an OpenVINO IR with its .bin beside it)."
        )
    return WEIGHT_SUFFIXES[suffix]


def resolve_variant(requested: str | None, default: str = "onnx") -> str:
    """The variant to serve: `requested` (e.g. $VTPOSE_BACKEND) if set, else `default`.

    Raises:
        ValueError: an unknown name.
    """
    variant = (requested or default).strip().lower()
    if variant not in VARIANTS:
        raise ValueError(f"{ENV_BACKEND}={requested!r} is not a backend; use one of {VARIANTS}.")
    return variant


def open_backend(
    path: str | Path,
    imgsz: int = DEFAULT_IMGSZ,
    conf: float = DEFAULT_CONF,
    device: str | None = None,
    threads: int | None = None,
    wide_threads: int | None = None,
) -> PoseBackend:
    """Open model weights on the engine their suffix names: `.pt` PyTorch, `.onnx` ONNX Runtime, `.xml` OpenVINO.

    Args:
        path: the weights file.
        imgsz: inference size (input long side), pixels, a multiple of 32.
        conf: minimum person confidence kept.
        device: PyTorch device ("cpu", "cuda:0"; None: CUDA when present) or OpenVINO device ("CPU"); ONNX Runtime
            takes CUDA when it has it.
        threads: CPU threads per call when calls overlap (ONNX, OpenVINO); None for every core.
        wide_threads: threads for a call that runs alone, if more than `threads` (ONNX, OpenVINO).

    Raises:
        VtposeError: missing file, unsupported suffix, or not a COCO-17 pose model.
        ValueError: bad imgsz or threads.
    """
    path = Path(path)
    engine = backend_for(path)  # an unsupported suffix is refused before the file is looked for
    if engine == "pytorch":
        from vtpose.backends.pytorch import TorchPoseModel

        return TorchPoseModel(path, imgsz=imgsz, conf=conf, device=device)
    if engine == "onnx":
        from vtpose.backends.onnx import OnnxPoseModel

        return OnnxPoseModel(path, imgsz=imgsz, conf=conf, threads=threads, wide_threads=wide_threads)
    from vtpose.backends.openvino import OpenVinoPoseModel

    return OpenVinoPoseModel(
        path, imgsz=imgsz, conf=conf, threads=threads, wide_threads=wide_threads,
        device=device if device and not device.startswith(("cpu", "cuda")) else None,
    )  # fmt: skip
