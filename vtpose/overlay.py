"""Skeleton overlays: the one drawing of poses shared by `vtpose infer -o`, the service's /render and reports, and
the previews' layout (`fit_within`, `contact_sheet`) the dataset and evaluation reports share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vtpose.errors import VtposeError
from vtpose.keypoints import SKELETON
from vtpose.paths import atomic_path
from vtpose.pose import PersonPose

# Keypoints below this confidence are not drawn: a guess at a hidden joint is worse than a gap.
DRAW_MIN_CONFIDENCE = 0.3
# Left side warm, right side cool, centre line neutral (BGR), so a mirrored skeleton is easy to spot.
LEFT_COLOR = (60, 140, 255)
RIGHT_COLOR = (255, 160, 40)
CENTER_COLOR = (80, 220, 80)
_LEFT = {1, 3, 5, 7, 9, 11, 13, 15}
_RIGHT = {2, 4, 6, 8, 10, 12, 14, 16}
# Dashboard previews (a dataset's, a model's predictions): how many images, and their longest side in pixels.
PREVIEW_IMAGES = 6
PREVIEW_MAX_SIDE = 480


def _limb_color(a: int, b: int) -> tuple[int, int, int]:
    if a in _LEFT and b in _LEFT:
        return LEFT_COLOR
    if a in _RIGHT and b in _RIGHT:
        return RIGHT_COLOR
    return CENTER_COLOR


def draw_keypoints(
    image: np.ndarray,
    keypoints: np.ndarray,
    min_confidence: float = DRAW_MIN_CONFIDENCE,
    color: tuple[int, int, int] | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw one skeleton in place on a BGR image and return it.

    Args:
        image: (H, W, 3) uint8 BGR, modified in place.
        keypoints: (17, 3): x, y in pixels and a confidence (or COCO visibility: 0 hides the joint).
        min_confidence: joints below it are left out, with their limbs.
        color: one colour for the whole skeleton, or None for left/right colouring.
        thickness: line width in pixels; None scales with the image size.
    """
    height, width = image.shape[:2]
    thickness = thickness or max(2, round(max(height, width) / 320))
    shown = keypoints[:, 2] >= min_confidence
    points = np.round(keypoints[:, :2]).astype(np.int32)
    for a, b in SKELETON:
        if shown[a] and shown[b]:
            cv2.line(image, tuple(points[a]), tuple(points[b]), color or _limb_color(a, b), thickness, cv2.LINE_AA)
    for i in np.flatnonzero(shown):
        cv2.circle(image, tuple(points[i]), thickness + 1, color or (255, 255, 255), -1, cv2.LINE_AA)
    return image


def draw_skeletons(image: np.ndarray, persons: Sequence[PersonPose], draw_boxes: bool = True) -> np.ndarray:
    """A copy of the BGR image with every person's skeleton (and box) drawn on it."""
    canvas = image.copy()
    for person in persons:
        if draw_boxes:
            x, y, w, h = (round(v) for v in person.bbox)
            cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 200, 255), 1, cv2.LINE_AA)
        draw_keypoints(canvas, person.keypoints)
    return canvas


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a BGR image."""
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise VtposeError("could not encode the image as PNG")
    return buffer.tobytes()


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a BGR image atomically; the format follows the suffix (.png, .jpg...)."""
    path = Path(path)
    suffix = path.suffix.lower() or ".png"
    ok, buffer = cv2.imencode(suffix, image)
    if not ok:
        raise VtposeError(f"{path}: cannot write images of type {suffix!r}; use .png or .jpg.")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.tobytes())
    return path


def fit_within(image: np.ndarray, max_side: int = PREVIEW_MAX_SIDE) -> tuple[np.ndarray, float]:
    """The image shrunk (never enlarged) so its long side is at most `max_side`, and the scale applied."""
    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image, 1.0
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale


def contact_sheet(images: Sequence[np.ndarray], columns: int = 3, cell: int = PREVIEW_MAX_SIDE) -> np.ndarray:
    """Tile BGR images into one picture, each letterboxed into a `cell` x `cell` square."""
    if not images:
        return np.full((cell // 4, cell, 3), 255, np.uint8)
    rows = (len(images) + columns - 1) // columns
    sheet = np.full((rows * cell, columns * cell, 3), 255, np.uint8)
    for i, image in enumerate(images):
        fitted, _ = fit_within(image, cell)
        h, w = fitted.shape[:2]
        y, x = (i // columns) * cell + (cell - h) // 2, (i % columns) * cell + (cell - w) // 2
        sheet[y : y + h, x : x + w] = fitted
    return sheet
