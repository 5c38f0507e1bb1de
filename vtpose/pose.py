"""The pose record every layer passes around, and reading an image file into the array the models take.

A `PersonPose` is what evaluation, the service, the studio and the CLI speak, never an engine's own result type:
the backends (`vtpose.backends`) produce it, everything else consumes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vtpose.errors import VtposeError


@dataclass
class PersonPose:
    """One detected person.

    Attributes:
        bbox: (x, y, w, h) in pixels, top-left corner and size, as COCO writes boxes.
        score: detection confidence in [0, 1].
        keypoints: (17, 3) float32: x and y in pixels, then the keypoint's confidence in [0, 1]; COCO order.
        track_id: identity across video frames, set by `vtpose.studio.motion`; None for single images.
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
