"""One predictor over every model backend (PyTorch `.pt`, ONNX Runtime `.onnx`, OpenVINO `.xml`), returning plain
`PersonPose` records.

Everything downstream (evaluation, the service, the studio) speaks `PersonPose`, never Ultralytics' `Results`, and
every backend letterboxes and decodes with the same code (`vtpose.backends.base`), so the same image and weights
give the same keypoints whichever path runs them and whatever an image is batched with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vtpose.backends import open_backend
from vtpose.backends.base import (  # noqa: F401  (re-exported: the names others import from here)
    DEFAULT_CONF,
    DEFAULT_IMGSZ,
    EVAL_CONF,
    MAX_DETECTIONS,
    Letterboxed,
    PersonPose,
    PoseBackend,
)
from vtpose.errors import VtposeError


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as a BGR uint8 array (H, W, 3), with a clear error if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise VtposeError(f"{path}: no such image file; check the path.")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise VtposeError(f"{path}: not a readable image (JPEG, PNG, BMP, WebP...); pass an image file.")
    return image


class PosePredictor:
    """Runs a YOLO-pose model on BGR images, on the engine its weights' suffix names.

    Args:
        weights: `.pt` (PyTorch), `.onnx` (ONNX Runtime) or `.xml` (OpenVINO IR, `.bin` beside it).
        imgsz: inference size in pixels (the letterbox's long side, multiple of 32).
        conf: minimum person confidence kept.
        device: "cpu", "cuda:0"... or None for CUDA when present, else CPU (PyTorch; ONNX Runtime takes CUDA when
            it has it; OpenVINO runs on the CPU).
        threads: CPU threads per call (ONNX, OpenVINO); None for every core.

    Raises:
        VtposeError: the weights are missing or of an unsupported kind.
        ValueError: imgsz is not a positive multiple of 32.
    """

    def __init__(
        self,
        weights: str | Path,
        imgsz: int = DEFAULT_IMGSZ,
        conf: float = DEFAULT_CONF,
        device: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise VtposeError(
                f"{self.weights}: weights file not found; pass --weights PATH to a .pt, .onnx or .xml file."
            )
        # open_backend rejects an unsupported suffix, and the backend a bad imgsz, before any model is loaded.
        self.model: PoseBackend = open_backend(self.weights, imgsz=imgsz, conf=conf, device=device, threads=threads)
        self.imgsz = imgsz
        self.conf = conf
        self.device = self.model.device

    @property
    def backend(self) -> str:
        """ "pytorch", "onnx" or "openvino"."""
        return self.model.name

    @property
    def precision(self) -> str:
        """ "fp32" or "int8"."""
        return self.model.precision

    def describe(self) -> dict[str, Any]:
        """Backend, precision, variant, device, imgsz, weights file name."""
        return self.model.describe()

    def predict(self, images: Sequence[np.ndarray]) -> list[list[PersonPose]]:
        """Poses for each BGR image (H, W, 3) uint8, persons sorted by descending score; an image's answer does
        not depend on its batch-mates."""
        if not images:
            return []
        return self.model.predict(images)

    def predict_one(self, image: np.ndarray) -> list[PersonPose]:
        """Poses in one BGR image."""
        return self.predict([image])[0]
