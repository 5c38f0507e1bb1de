"""The humanoid skeleton both the VRM generator and the solver stand on: bone names, parents, the rest T-pose.

Bone names are VRM 1.0's humanoid names. The rest pose is VRM 1.0's: a T-pose, +Y up, the avatar facing +Z (toward
the camera), its left hand along +X. Proportions are the 2D rig's anthropometry (`vtpose.studio.avatar.rig`), in
body units (the shoulder width, between the two upper-arm joints), so the 3D avatars and the solver's bone-length
priors agree with the 2D avatars.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from vtpose.studio.avatar.rig import FOREARM, HIP_WIDTH, SHIN, THIGH, TORSO, UPPER_ARM

# The bones the solver drives, in the order parents come before children.
DRIVEN_BONES: Final[tuple[str, ...]] = (
    "hips",
    "spine",
    "chest",
    "neck",
    "head",
    "leftUpperArm",
    "leftLowerArm",
    "rightUpperArm",
    "rightLowerArm",
    "leftUpperLeg",
    "leftLowerLeg",
    "rightUpperLeg",
    "rightLowerLeg",
)
# A VRM must have these for the solver to drive it (chest and neck are optional: three-vrm passes their rotation on).
REQUIRED_BONES: Final[tuple[str, ...]] = tuple(b for b in DRIVEN_BONES if b not in ("chest", "neck"))
# What the generated avatars have: the driven bones plus the hands and feet VRM 1.0 requires.
GENERATED_BONES: Final[tuple[str, ...]] = (*DRIVEN_BONES, "leftHand", "rightHand", "leftFoot", "rightFoot")
PARENT: Final[dict[str, str | None]] = {
    "hips": None,
    "spine": "hips",
    "chest": "spine",
    "neck": "chest",
    "head": "neck",
    "leftUpperArm": "chest",
    "leftLowerArm": "leftUpperArm",
    "leftHand": "leftLowerArm",
    "rightUpperArm": "chest",
    "rightLowerArm": "rightUpperArm",
    "rightHand": "rightLowerArm",
    "leftUpperLeg": "hips",
    "leftLowerLeg": "leftUpperLeg",
    "leftFoot": "leftLowerLeg",
    "rightUpperLeg": "hips",
    "rightLowerLeg": "rightUpperLeg",
    "rightFoot": "rightLowerLeg",
}

# An adult's shoulder width (between the shoulder joints), metres: the generated VRMs are life-sized.
METRES_PER_UNIT: Final = 0.36
ANKLE_HEIGHT: Final = 0.2  # ankle joint above the floor, body units
NECK_RISE: Final = 0.06  # the neck bone above the shoulder line
HEAD_RISE: Final = 0.22  # the head bone (the skull's base) above the shoulder line
# Where COCO's face keypoints (their mean: the 2D rig's `head` joint) sit above the shoulder line on an adult.
FACE_RISE: Final = 0.62


def rest_joints() -> dict[str, np.ndarray]:
    """Every bone's origin in the rest T-pose, body units, avatar space (feet on y = 0): bone name -> (3,)."""
    knee = ANKLE_HEIGHT + SHIN
    hip = knee + THIGH
    shoulder = hip + TORSO
    half_hips, half_shoulders = HIP_WIDTH / 2, 0.5
    elbow, wrist = half_shoulders + UPPER_ARM, half_shoulders + UPPER_ARM + FOREARM
    joints = {
        "hips": (0.0, hip + 0.08, 0.0),
        "spine": (0.0, hip + 0.3 * TORSO, 0.0),
        "chest": (0.0, hip + 0.6 * TORSO, 0.0),
        "neck": (0.0, shoulder + NECK_RISE, 0.0),
        "head": (0.0, shoulder + HEAD_RISE, 0.0),
    }
    for side, sign in (("left", 1.0), ("right", -1.0)):
        joints |= {
            f"{side}UpperArm": (sign * half_shoulders, shoulder, 0.0),
            f"{side}LowerArm": (sign * elbow, shoulder, 0.0),
            f"{side}Hand": (sign * wrist, shoulder, 0.0),
            f"{side}UpperLeg": (sign * half_hips, hip, 0.0),
            f"{side}LowerLeg": (sign * half_hips, knee, 0.0),
            f"{side}Foot": (sign * half_hips, ANKLE_HEIGHT, 0.0),
        }
    return {name: np.array(joints[name], dtype=np.float64) for name in GENERATED_BONES}


def rest_keypoints() -> dict[str, np.ndarray]:
    """The 2D rig's joints (COCO names plus `neck`, `pelvis`, `head`) in the rest T-pose, body units, avatar space.

    Face keypoints are left out except `nose` (in front of the face centre); `head` is the face's centre.
    """
    bones = rest_joints()
    shoulder_y = float(bones["leftUpperArm"][1])
    points = {"neck": np.array([0.0, shoulder_y, 0.0]), "head": np.array([0.0, shoulder_y + FACE_RISE, 0.0])}
    for side in ("left", "right"):
        points[f"{side}_shoulder"] = bones[f"{side}UpperArm"]
        points[f"{side}_elbow"] = bones[f"{side}LowerArm"]
        points[f"{side}_wrist"] = bones[f"{side}Hand"]
        points[f"{side}_hip"] = bones[f"{side}UpperLeg"]
        points[f"{side}_knee"] = bones[f"{side}LowerLeg"]
        points[f"{side}_ankle"] = bones[f"{side}Foot"]
    points["pelvis"] = (points["left_hip"] + points["right_hip"]) / 2
    return points
