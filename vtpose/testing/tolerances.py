"""How far each backend's persons may be from PyTorch's on the same image, for every test that compares them.

Measured on the pretrained checkpoint and real images (tests/test_backends.py's set): the persons PyTorch finds
with score >= REFERENCE_MIN_SCORE, and their joints confident (> CONFIDENT) in both answers.
- ONNX Runtime, and the OpenVINO FP32 IR with f32 arithmetic: within FP32_TOLERANCE_PX (measured: under 0.005 px),
  boxes with IoU over FP32_MIN_IOU.
- The OpenVINO FP32 IR with bf16 arithmetic (the default on CPUs with native bfloat16): median within
  BF16_MEDIAN_PX, every joint within BF16_MAX_FRACTION of the person's box diagonal (measured: median 0.18 px, worst
  1.75 px).
- OpenVINO INT8 (NNCF, mixed preset, calibrated on 30 train images): median within INT8_MEDIAN_PX, every joint
  within INT8_MAX_FRACTION of the box diagonal, boxes with IoU over INT8_MIN_IOU (measured: median 0.8 px with f32
  arithmetic, 1.8 px with bf16; worst 3.1% of the diagonal; IoU >= 0.84).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vtpose.pose import PersonPose

REFERENCE_MIN_SCORE = 0.5
CONFIDENT = 0.5
FP32_TOLERANCE_PX = 0.05
FP32_MIN_IOU = 0.99
BF16_MEDIAN_PX = 0.5
BF16_MAX_FRACTION = 0.02
INT8_MEDIAN_PX = 3.0
INT8_MAX_FRACTION = 0.06
INT8_MIN_IOU = 0.8


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x, y, w, h) boxes."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    h = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def joint_errors(
    reference: Sequence[PersonPose], found: Sequence[PersonPose], variant: str, arithmetic: str = "f32", what: str = ""
) -> list[float]:
    """Check `found` (a backend's persons) against `reference` (PyTorch's, same image) person by person.

    Args:
        reference: the `.pt`'s persons.
        found: the backend's persons.
        variant: "onnx", "openvino" or "openvino-int8".
        arithmetic: the OpenVINO inference precision ("f32" or "bf16"); ONNX is always f32.
        what: names the image in failure messages.

    Returns:
        The confident joints' errors, pixels, for a median check over many images (`check_median`).

    Raises:
        AssertionError: a reference person without its match in `found`, or a joint beyond the tolerance.
    """
    int8 = variant.endswith("int8")
    bf16 = not int8 and arithmetic == "bf16"
    errors: list[float] = []
    for person in [p for p in reference if p.score >= REFERENCE_MIN_SCORE]:
        assert found, f"{what}: {variant} found nobody where PyTorch found a person at {person.bbox}"
        ious = [box_iou(other.bbox, person.bbox) for other in found]
        match, iou = found[int(np.argmax(ious))], max(ious)
        assert iou > (INT8_MIN_IOU if int8 else FP32_MIN_IOU), f"{what}: {variant} box IoU {iou:.3f} with PyTorch's"
        confident = (person.keypoints[:, 2] > CONFIDENT) & (match.keypoints[:, 2] > CONFIDENT)
        error = np.hypot(*(match.keypoints[confident, :2] - person.keypoints[confident, :2]).T)
        diagonal = float(np.hypot(person.bbox[2], person.bbox[3]))
        limit = INT8_MAX_FRACTION * diagonal if int8 else BF16_MAX_FRACTION * diagonal if bf16 else FP32_TOLERANCE_PX
        worst = float(error.max(initial=0.0))
        assert worst <= limit, f"{what}: {variant} keypoints off by {worst:.2f} px (limit {limit:.2f})"
        errors.extend(error.tolist())
    return errors


def check_median(errors: Sequence[float], variant: str, arithmetic: str = "f32") -> None:
    """The median joint error over many persons, for the variants whose tolerance is a median (INT8, bf16).

    Raises:
        AssertionError: the median is over the variant's bound.
    """
    int8 = variant.endswith("int8")
    if not (int8 or arithmetic == "bf16"):
        return
    median = float(np.median(errors))
    limit = INT8_MEDIAN_PX if int8 else BF16_MEDIAN_PX
    assert median <= limit, f"{variant}: median joint error {median:.2f} px over {limit} px"
