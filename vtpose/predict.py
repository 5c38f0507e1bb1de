"""One predictor over `.pt` and `.onnx` YOLO-pose weights, returning plain `PersonPose` records.

Everything downstream (evaluation, the service, the studio) speaks `PersonPose`, never Ultralytics'
`Results`, so the backend can change without touching them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vtpose.errors import VtposeError
from vtpose.keypoints import NUM_KEYPOINTS

DEFAULT_IMGSZ = 640
# Low enough for COCO evaluation to see the whole precision-recall curve; applications filter higher.
EVAL_CONF = 0.001
DEFAULT_CONF = 0.25
MAX_DETECTIONS = 100
SUPPORTED_WEIGHT_SUFFIXES = (".pt", ".onnx")


@dataclass
class PersonPose:
    """One detected person.

    Attributes:
        bbox: (x, y, w, h) in pixels, top-left corner and size, as COCO writes boxes.
        score: detection confidence in [0, 1].
        keypoints: (17, 3) float32: x and y in pixels, then the keypoint's confidence in [0, 1]; COCO order.
        track_id: identity across video frames, set by `vtpose.motion`; None for single images.
    """

    bbox: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray
    track_id: int | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        """DESIGN.md's person record: bbox, score and 17 [x, y, confidence] triples (plus track_id if set)."""
        record: dict[str, Any] = {
            "bbox": [round(float(v), 2) for v in self.bbox],
            "score": round(float(self.score), 4),
            "keypoints": [[round(float(x), 2), round(float(y), 2), round(float(c), 4)] for x, y, c in self.keypoints],
        }
        if self.track_id is not None:
            record["track_id"] = self.track_id
        return record

    @property
    def area(self) -> float:
        """Box area in square pixels, for picking the largest person."""
        return float(self.bbox[2] * self.bbox[3])


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
    """Runs a YOLO-pose model (PyTorch `.pt` or ONNX `.onnx`) on BGR images.

    Args:
        weights: path to `.pt` or `.onnx` weights.
        imgsz: inference size in pixels (letterboxed square side).
        conf: minimum person confidence kept.
        device: "cpu", "cuda:0"... or None for CUDA when present, else CPU.

    Raises:
        VtposeError: the weights are missing or of an unsupported kind.
    """

    def __init__(
        self,
        weights: str | Path,
        imgsz: int = DEFAULT_IMGSZ,
        conf: float = DEFAULT_CONF,
        device: str | None = None,
    ) -> None:
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise VtposeError(f"{self.weights}: weights file not found; pass --weights PATH to a .pt or .onnx file.")
        if self.weights.suffix not in SUPPORTED_WEIGHT_SUFFIXES:
            raise VtposeError(
                f"{self.weights}: unsupported weights type {self.weights.suffix!r}; "
                f"use one of {SUPPORTED_WEIGHT_SUFFIXES}."
            )
        if imgsz <= 0 or imgsz % 32:
            raise ValueError(f"imgsz={imgsz} must be a positive multiple of 32 (the model's stride)")
        from ultralytics import YOLO

        self.imgsz = imgsz
        self.conf = conf
        self.device = device or _auto_device()
        self.model = YOLO(str(self.weights), task="pose")

    @property
    def backend(self) -> str:
        """ "onnx" or "pytorch"."""
        return "onnx" if self.weights.suffix == ".onnx" else "pytorch"

    def predict(self, images: list[np.ndarray]) -> list[list[PersonPose]]:
        """Poses for each BGR image (H, W, 3) uint8, persons sorted by descending score."""
        if not images:
            return []
        results = self.model.predict(
            images,
            imgsz=self.imgsz,
            conf=self.conf,
            device=self.device,
            max_det=MAX_DETECTIONS,
            verbose=False,
        )
        return [_results_to_poses(r) for r in results]

    def predict_one(self, image: np.ndarray) -> list[PersonPose]:
        """Poses in one BGR image."""
        return self.predict([image])[0]


def _auto_device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _results_to_poses(result: Any) -> list[PersonPose]:
    if result.boxes is None or result.keypoints is None or len(result.boxes) == 0:
        return []
    xyxy = result.boxes.xyxy.cpu().numpy().astype(np.float64)
    scores = result.boxes.conf.cpu().numpy().astype(np.float64)
    kpts = result.keypoints.data.cpu().numpy().astype(np.float32)
    if kpts.shape[1:] != (NUM_KEYPOINTS, 3):
        raise VtposeError(
            f"model returned keypoints of shape {kpts.shape[1:]}, expected ({NUM_KEYPOINTS}, 3); "
            "use a COCO-17 pose model (kpt_shape [17, 3])."
        )
    poses = [
        PersonPose(bbox=(x1, y1, x2 - x1, y2 - y1), score=float(s), keypoints=k)
        for (x1, y1, x2, y2), s, k in zip(xyxy, scores, kpts, strict=True)
    ]
    poses.sort(key=lambda p: p.score, reverse=True)
    return poses
