"""What every model backend shares: the one letterbox rule, output decoding, NMS, and the `PoseBackend` interface
(which answers with `vtpose.pose.PersonPose` records).

A backend only runs the network: `prepare` letterboxes an image (the same function for every backend), `run` feeds
letterboxed images to the model and decodes the raw output with `decode_pose_output` (the same numpy code for
every backend), so evaluation, `vtpose infer`, `animate`, the service and the studio see the same pixels and map
the answers back the same way, whatever the engine and whatever an image is batched with.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vtpose.errors import VtposeError
from vtpose.keypoints import NUM_KEYPOINTS
from vtpose.pose import PersonPose

DEFAULT_IMGSZ = 640
# Low enough for COCO evaluation to see the whole precision-recall curve; applications filter higher.
EVAL_CONF = 0.001
DEFAULT_CONF = 0.25
MAX_DETECTIONS = 100
# The largest stride of every YOLO-pose model: input sides are multiples of it.
MODEL_STRIDE = 32
# Ultralytics' defaults for pose prediction, so our decoding gives `YOLO(...).predict`'s answers.
LETTERBOX_FILL = 114
NMS_IOU = 0.7
MAX_NMS_CANDIDATES = 30_000
# Rows of a YOLO-pose head's output: box (4), person score (1), 17 keypoints x (x, y, confidence).
OUTPUT_ROWS = 5 + 3 * NUM_KEYPOINTS


@dataclass(frozen=True)
class Letterboxed:
    """One image letterboxed for the model.

    Attributes:
        tensor: (3, h, w) float32 RGB in [0, 1], h and w multiples of the stride.
        orig_shape: (height, width) of the original image, pixels.
        gain: (x, y) scale from original to resized pixels (new_w / w, new_h / h).
        pad: (left, top) padding in model pixels.
    """

    tensor: np.ndarray
    orig_shape: tuple[int, int]
    gain: tuple[float, float]
    pad: tuple[int, int]


def check_imgsz(imgsz: int, stride: int = MODEL_STRIDE) -> int:
    """`imgsz` if it is a positive multiple of the stride.

    Raises:
        ValueError: it is not.
    """
    if imgsz <= 0 or imgsz % stride:
        raise ValueError(f"imgsz={imgsz} must be a positive multiple of {stride} (the model's stride)")
    return imgsz


def letterbox(image: np.ndarray, imgsz: int, stride: int = MODEL_STRIDE) -> Letterboxed:
    """The project's one letterbox rule: the image's own minimal stride rectangle, as Ultralytics predicts one image.

    The longer side is scaled to `imgsz`; the shorter side is padded with gray (114) up to the next multiple of
    `stride`, half on each side (Ultralytics' `LetterBox(auto=True)`, same rounding). The input depends on the image
    alone, never on its batch-mates: backends run each group of same-shaped inputs as one call. Chosen over a fixed
    square on the measurements in docs/letterbox.md: the AP of the two rules on the val
    split cannot be told apart (square minus rect +0.014, 95% interval -0.012 to +0.033), while the rectangle
    costs a 16:9 video frame 40% fewer pixels than the square.

    Args:
        image: (H, W, 3) uint8 BGR.
        imgsz: the model's input long side, pixels (a multiple of the stride).
        stride: the model's largest stride, pixels.

    Returns:
        The (3, h, w) float32 RGB tensor in [0, 1] (h, w multiples of `stride`, the longer one `imgsz`) and how to
        map the model's answers back to the image.
    """
    height, width = image.shape[:2]
    ratio = min(imgsz / height, imgsz / width)
    new_w, new_h = max(round(width * ratio), 1), max(round(height * ratio), 1)
    dw, dh = ((imgsz - new_w) % stride) / 2, ((imgsz - new_h) % stride) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    resized = (
        image
        if (new_w, new_h) == (width, height)
        else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    )
    if top or bottom or left or right:
        fill = (LETTERBOX_FILL,) * 3
        resized = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=fill)
    return Letterboxed(_rgb_planes(resized), (height, width), (new_w / width, new_h / height), (left, top))


def _rgb_planes(bgr: np.ndarray) -> np.ndarray:
    """(3, h, w) float32 RGB in [0, 1] from (h, w, 3) uint8 BGR: x / 255 in float32, as Ultralytics scales.

    Plane by plane from contiguous channels: the same numbers as dividing the transposed, channel-reversed view in
    one go, in a fifth of the time (0.28 against 1.5 ms for 640x384 here; a strided read is slow).
    """
    tensor = np.empty((3, *bgr.shape[:2]), dtype=np.float32)
    for plane, channel in zip(tensor, reversed(cv2.split(bgr)), strict=True):
        np.divide(channel, 255.0, out=plane, dtype=np.float32)
    return tensor


def input_shape(image_shape: tuple[int, ...], imgsz: int, stride: int = MODEL_STRIDE) -> tuple[int, int]:
    """(height, width) of the model input `letterbox` makes for an image of `image_shape` (H, W, ...)."""
    height, width = image_shape[:2]
    ratio = min(imgsz / height, imgsz / width)
    new_w, new_h = max(round(width * ratio), 1), max(round(height * ratio), 1)
    return (new_h + (imgsz - new_h) % stride, new_w + (imgsz - new_w) % stride)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression, as `torchvision.ops.nms`.

    Args:
        boxes: (N, 4) float xyxy.
        scores: (N,) float.
        iou_threshold: boxes overlapping a kept one by more than this are dropped.

    Returns:
        Indices of the kept boxes, by descending score.
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = w * h
        iou = inter / (areas[best] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def decode_pose_output(
    output: np.ndarray,
    image: Letterboxed,
    conf: float,
    iou: float = NMS_IOU,
    max_det: int = MAX_DETECTIONS,
) -> list[PersonPose]:
    """Persons from one image's raw YOLO-pose output, in original image pixels.

    Args:
        output: (56, A) float32 for A anchors: box centre x, y, width, height (model pixels), person confidence,
            then 17 x (x, y, confidence) keypoints (model pixels, confidence already through the sigmoid).
        image: the letterbox the output was computed on.
        conf: minimum person confidence kept.
        iou: NMS IoU threshold.
        max_det: most persons returned.

    Returns:
        Persons by descending score, boxes and keypoints clipped to the image as Ultralytics clips them.

    Raises:
        VtposeError: the output is not a single-class COCO-17 pose head's.
    """
    if output.shape[0] != OUTPUT_ROWS:
        raise VtposeError(
            f"model output has {output.shape[0]} rows, expected {OUTPUT_ROWS} (box, person score, "
            f"{NUM_KEYPOINTS} keypoints); use a single-class COCO-17 pose model (kpt_shape [17, 3])."
        )
    output = np.asarray(output, dtype=np.float32)
    candidates = output[:, output[4] > conf].T  # (n, 56)
    if not len(candidates):
        return []
    if len(candidates) > MAX_NMS_CANDIDATES:
        candidates = candidates[np.argsort(-candidates[:, 4], kind="stable")[:MAX_NMS_CANDIDATES]]
    cx, cy, w, h = candidates[:, :4].T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kept = nms(boxes, candidates[:, 4], iou)[:max_det]
    boxes, scores = boxes[kept].astype(np.float64), candidates[kept, 4].astype(np.float64)
    keypoints = candidates[kept, 5:].reshape(-1, NUM_KEYPOINTS, 3).copy()
    (gain_x, gain_y), (pad_x, pad_y) = image.gain, image.pad
    height, width = image.orig_shape
    boxes[:, [0, 2]] = np.clip((boxes[:, [0, 2]] - pad_x) / gain_x, 0, width)
    boxes[:, [1, 3]] = np.clip((boxes[:, [1, 3]] - pad_y) / gain_y, 0, height)
    keypoints[..., 0] = np.clip((keypoints[..., 0] - pad_x) / gain_x, 0, width)
    keypoints[..., 1] = np.clip((keypoints[..., 1] - pad_y) / gain_y, 0, height)
    return [
        PersonPose(bbox=(x1, y1, x2 - x1, y2 - y1), score=float(s), keypoints=k)
        for (x1, y1, x2, y2), s, k in zip(boxes, scores, keypoints, strict=True)
    ]


class PoseBackend(ABC):
    """A YOLO-pose model on one inference engine.

    Subclasses implement `_forward` (a (N, 3, h, w) float32 batch -> (N, 56, A) raw output); letterboxing, grouping
    by input shape, decoding and the alone/concurrent bookkeeping are shared here.

    Attributes:
        name: the engine: "pytorch", "onnx" or "openvino".
        precision: "fp32" or "int8" (the weights' arithmetic).
        weights: the model file.
        imgsz: input long side, pixels.
        conf: minimum person confidence kept.
        device: "cpu", "cuda:0"...
    """

    name: str = ""
    precision: str = "fp32"

    def __init__(self, weights: str | Path, imgsz: int, conf: float) -> None:
        self.weights = Path(weights)
        # The one "not found" check of every engine, before any runtime is imported or a model loaded.
        if not self.weights.is_file():
            raise VtposeError(
                f"{self.weights}: weights file not found; pass --weights PATH to a .pt, .onnx or .xml file."
            )
        self.imgsz = check_imgsz(imgsz)
        self.conf = conf
        self.device = "cpu"
        self.stride = MODEL_STRIDE
        self._active = 0
        self._active_lock = threading.Lock()

    @property
    def variant(self) -> str:
        """The engine and precision as one name: "pytorch", "onnx", "openvino" or "openvino-int8"."""
        return self.name if self.precision == "fp32" else f"{self.name}-{self.precision}"

    def prepare(self, image: np.ndarray, imgsz: int | None = None) -> Letterboxed:
        """The model's input for one BGR image (the project's one letterbox rule); thread-safe, cheap to call
        from request threads. `imgsz` overrides the backend's input long side for this image (the live studio's
        smaller frames); the graphs take any stride-multiple shape."""
        return letterbox(image, check_imgsz(imgsz, self.stride) if imgsz else self.imgsz, self.stride)

    def predict(self, images: Sequence[np.ndarray]) -> list[list[PersonPose]]:
        """Poses for each BGR image (H, W, 3) uint8, persons sorted by descending score.

        Each image gets its own letterbox; images whose inputs share a shape run as one call, so an image's answer
        does not depend on what it was batched with.
        """
        return self.run([self.prepare(image) for image in images])

    def predict_one(self, image: np.ndarray) -> list[PersonPose]:
        """Poses in one BGR image."""
        return self.predict([image])[0]

    def run(self, prepared: Sequence[Letterboxed]) -> list[list[PersonPose]]:
        """Poses for already letterboxed images (see `prepare`), one model call per input shape."""
        out: list[list[PersonPose]] = [[] for _ in prepared]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(prepared):
            groups.setdefault(item.tensor.shape, []).append(index)
        with self._running() as alone:
            for indices in groups.values():
                # One image: a view with the batch axis, not a copy (np.stack copies even one).
                tensors = [prepared[i].tensor for i in indices]
                batch = tensors[0][np.newaxis] if len(tensors) == 1 else np.stack(tensors)
                outputs = self._forward(batch, alone)
                if outputs.shape[0] != len(indices):
                    raise VtposeError(
                        f"{self.weights}: the model answered {outputs.shape[0]} images for {len(indices)}."
                    )
                for i, output in zip(indices, outputs, strict=True):
                    out[i] = decode_pose_output(output, prepared[i], self.conf)
        return out

    @contextmanager
    def _running(self) -> Iterator[bool]:
        """Count calls in flight; yields whether this one runs alone (it may then take every core)."""
        with self._active_lock:
            self._active += 1
            alone = self._active == 1
        try:
            yield alone
        finally:
            with self._active_lock:
                self._active -= 1

    @abstractmethod
    def _forward(self, batch: np.ndarray, alone: bool) -> np.ndarray:
        """The raw model output (N, 56, A) float32 for a (N, 3, h, w) float32 batch of one shape."""

    def describe(self) -> dict[str, Any]:
        """What runs: backend, precision, variant, device, imgsz, weights file name."""
        return {
            "backend": self.name,
            "precision": self.precision,
            "variant": self.variant,
            "device": self.device,
            "imgsz": self.imgsz,
            "weights": self.weights.name,
        }
