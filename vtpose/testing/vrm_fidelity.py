"""How closely a VRM drawn by the studio's 3D scene follows the tracked keypoints (the browser tests and
`benchmarks/bench_studio3d.py`).

The page's test hook `window.studio.joints3d()` gives, per person drawn, the VRM's humanoid joints projected by
the scene's camera into frame pixels beside the keypoints of the same poses message. Each joint is paired with the
COCO keypoint it stands for; the error is their distance over the person's shoulder width (`body3d.shoulder_width`,
the calibrated one), grouped as torso, arms, legs and head. Keypoints the model is unsure of (below the rig's
threshold) are left out: the solver relaxes those joints to a rest pose on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from vtpose.keypoints import KEYPOINT_NAMES
from vtpose.studio.avatar.rig import MIN_JOINT_CONFIDENCE

# Group -> (projected joint, keypoints whose mean it is compared with). For the head, the page projects "face", a
# point up the head bone where an adult's face centre is, compared with the mean of the eyes and ears that are sure
# (at least two of them).
JOINT_GROUPS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "torso": (
        ("leftUpperArm", ("left_shoulder",)),
        ("rightUpperArm", ("right_shoulder",)),
        ("leftUpperLeg", ("left_hip",)),
        ("rightUpperLeg", ("right_hip",)),
    ),
    "arms": (
        ("leftLowerArm", ("left_elbow",)),
        ("rightLowerArm", ("right_elbow",)),
        ("leftHand", ("left_wrist",)),
        ("rightHand", ("right_wrist",)),
    ),
    "legs": (
        ("leftLowerLeg", ("left_knee",)),
        ("rightLowerLeg", ("right_knee",)),
        ("leftFoot", ("left_ankle",)),
        ("rightFoot", ("right_ankle",)),
    ),
    "head": (("face", ("left_eye", "right_eye", "left_ear", "right_ear")),),
}
GROUPS = tuple(JOINT_GROUPS)
# Issue 17's goal: median error at most this many shoulder widths, for these groups.
GOAL_MEDIAN = 0.08
GOAL_GROUPS = ("torso", "arms")


def person_errors(record: Mapping[str, Any], min_confidence: float = MIN_JOINT_CONFIDENCE) -> dict[str, list[float]]:
    """One `joints3d()` record's errors per group, in shoulder widths (sure keypoints only).

    Args:
        record: {"joints": {bone: [x, y]}, "keypoints": (17, 3) list, "body3d": {"shoulder_width": w, ...}},
            pixels of the frame the model ran on.
        min_confidence: keypoints below this confidence are left out.
    """
    keypoints = np.asarray(record["keypoints"], np.float64)
    width = float(record["body3d"]["shoulder_width"])
    errors: dict[str, list[float]] = {group: [] for group in GROUPS}
    for group, pairs in JOINT_GROUPS.items():
        for bone, names in pairs:
            rows = keypoints[[KEYPOINT_NAMES.index(n) for n in names]]
            rows = rows[rows[:, 2] >= min_confidence]
            if bone not in record["joints"] or len(rows) < min(2, len(names)) or width <= 0:
                continue
            target = rows[:, :2].mean(axis=0)
            errors[group].append(float(np.linalg.norm(np.asarray(record["joints"][bone]) - target)) / width)
    return errors


def pooled_errors(records: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Every record's errors, pooled per group."""
    pooled: dict[str, list[float]] = {group: [] for group in GROUPS}
    for record in records:
        for group, values in person_errors(record).items():
            pooled[group] += values
    return pooled


def median_errors(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Median error per group over `records` (NaN for a group with no sure keypoints)."""
    return {g: float(np.median(v)) if v else float("nan") for g, v in pooled_errors(records).items()}
