"""PCKh on MPII's 16 joints: the metric MPII's users quote, as MPII's own evaluation computes it.

A joint is correct when its distance to the ground truth is at most `threshold` times the person's head size,
SC_BIAS (0.6) times the diagonal of the head box: evalMPII's rule, which HRNet and mmpose port to Python. Joints
unlabelled in the ground truth count neither way; a joint the model did not find (NaN) is wrong. The mean, like
those evaluations' "Mean" / "PCKh", is over every labelled joint except pelvis and thorax, which MPII's benchmark
leaves out. Scores are fractions (0-1), like the project's AP, not MPII's percent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from vtpose.keypoints import MPII_JOINT_NAMES

# MPII's evaluation: head size = SC_BIAS * the head box's diagonal (evalMPII's util_get_head_size).
SC_BIAS: Final = 0.6
PCKH_THRESHOLD: Final = 0.5
# Scored per joint but left out of the mean, as in MPII's benchmark tables.
PCKH_MEAN_EXCLUDES: Final[tuple[str, ...]] = ("pelvis", "thorax")


@dataclass(frozen=True)
class PCKhResult:
    """PCKh per MPII joint and their mean.

    Attributes:
        per_joint: MPII joint name -> share of its labelled instances within the threshold (NaN: none labelled).
        mean: correct / labelled over all joints but `PCKH_MEAN_EXCLUDES` (NaN when none is labelled).
        labelled: MPII joint name -> how many ground-truth instances are labelled.
        threshold: the fraction of head size a joint may be off by (0.5 for PCKh@0.5).
    """

    per_joint: dict[str, float]
    mean: float
    labelled: dict[str, int]
    threshold: float


def head_sizes(head_boxes: np.ndarray) -> np.ndarray:
    """SC_BIAS times the diagonal of each head box.

    Args:
        head_boxes: (N, 4) [x1, y1, x2, y2], pixels.

    Returns:
        (N,) float64, pixels.
    """
    boxes = np.asarray(head_boxes, dtype=np.float64).reshape(-1, 4)
    return SC_BIAS * np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def pckh(
    ground_truth: np.ndarray,
    predictions: np.ndarray,
    head_boxes: np.ndarray,
    threshold: float = PCKH_THRESHOLD,
    mean_joints: Sequence[str] | None = None,
) -> PCKhResult:
    """PCKh of predicted MPII joints against the ground truth of the same persons.

    Args:
        ground_truth: (N, 16, 3) [x, y, v], pixels, MPII joint order (`MPII_JOINT_NAMES`); v > 0 labelled (the
            "mpii" record's `joints` of an MPII dataset's annotations).
        predictions: (N, 16, 2) [x, y], pixels, same persons and order; NaN for a joint not predicted.
        head_boxes: (N, 4) [x1, y1, x2, y2], pixels: each person's head box.
        threshold: fraction of the head size (0.5: PCKh@0.5).
        mean_joints: the joints the mean is over; None: all but `PCKH_MEAN_EXCLUDES`, as MPII's tables.

    Returns:
        Per-joint PCKh, the mean and the labelled counts.

    Raises:
        ValueError: shapes that disagree, a threshold not above 0, or a head box without area, naming the person.
    """
    gt = np.asarray(ground_truth, dtype=np.float64)
    pred = np.asarray(predictions, dtype=np.float64)
    n_joints = len(MPII_JOINT_NAMES)
    if gt.ndim != 3 or gt.shape[1:] != (n_joints, 3):
        raise ValueError(f"ground_truth has shape {gt.shape}; expected (N, {n_joints}, 3) [x, y, v]")
    if pred.shape != (gt.shape[0], n_joints, 2):
        raise ValueError(f"predictions have shape {pred.shape}; expected {(gt.shape[0], n_joints, 2)} [x, y]")
    if not threshold > 0:
        raise ValueError(f"threshold {threshold}: must be above 0 (0.5 for PCKh@0.5)")
    sizes = head_sizes(head_boxes)
    if sizes.shape != (gt.shape[0],):
        raise ValueError(f"head_boxes give {sizes.shape[0]} boxes for {gt.shape[0]} persons")
    boxes = np.asarray(head_boxes, dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore"):
        has_area = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & np.isfinite(sizes)
    bad = np.flatnonzero(~has_area)
    if len(bad):
        raise ValueError(f"person {int(bad[0])}: head box {boxes[bad[0]].tolist()} has no area")

    labelled = gt[:, :, 2] > 0
    distance = np.linalg.norm(pred - gt[:, :, :2], axis=2) / sizes[:, None]
    correct = labelled & (distance <= threshold)  # NaN compares False: a missing prediction is wrong
    n_labelled = labelled.sum(axis=0)
    n_correct = correct.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = n_correct / n_labelled
    unknown = sorted(set(mean_joints or ()) - set(MPII_JOINT_NAMES))
    if unknown:
        raise ValueError(f"mean_joints {unknown} are not MPII joints; use names of MPII_JOINT_NAMES")
    chosen = set(mean_joints) if mean_joints is not None else set(MPII_JOINT_NAMES) - set(PCKH_MEAN_EXCLUDES)
    in_mean = np.array([name in chosen for name in MPII_JOINT_NAMES])
    total = int(n_labelled[in_mean].sum())
    mean = float(n_correct[in_mean].sum() / total) if total else float("nan")
    return PCKhResult(
        per_joint={name: float(v) for name, v in zip(MPII_JOINT_NAMES, per_joint, strict=True)},
        mean=mean,
        labelled={name: int(c) for name, c in zip(MPII_JOINT_NAMES, n_labelled, strict=True)},
        threshold=float(threshold),
    )
