"""COCO-17 keypoint constants: the one home for names, skeleton, flip order, OKS sigmas and the MPII map.

Everything that needs to know what joint 9 is imports it from here.
"""

from __future__ import annotations

from typing import Final

NUM_KEYPOINTS: Final = 17

KEYPOINT_NAMES: Final[tuple[str, ...]] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
KEYPOINT_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# COCO's skeleton as 0-based index pairs (COCO's JSON stores it 1-based).
SKELETON: Final[tuple[tuple[int, int], ...]] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

# Index of each joint's mirror image, for horizontal-flip augmentation and mirrored pose matching.
FLIP_IDX: Final[tuple[int, ...]] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

# Per-keypoint OKS sigmas, exactly as pycocotools' COCOeval uses them.
_OKS_SIGMAS_X10 = (
    0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89,
)  # fmt: skip
OKS_SIGMAS: Final[tuple[float, ...]] = tuple(s / 10.0 for s in _OKS_SIGMAS_X10)

# COCO visibility flags: 0 not labelled, 1 labelled but occluded, 2 labelled and visible.
VISIBILITY_VALUES: Final[frozenset[int]] = frozenset({0, 1, 2})

PERSON_CATEGORY_ID: Final = 1
PERSON_CATEGORY: Final[dict] = {
    "supercategory": "person",
    "id": PERSON_CATEGORY_ID,
    "name": "person",
    "keypoints": list(KEYPOINT_NAMES),
    "skeleton": [[a + 1, b + 1] for a, b in SKELETON],
}

# MPII's 16 joints (0 r_ankle ... 15 l_wrist) -> COCO index. The standard 12-joint mapping: MPII has no
# face joints, and pelvis, thorax, upper_neck and head_top have no COCO counterpart, so they stay unlabelled.
MPII_JOINT_NAMES: Final[tuple[str, ...]] = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)  # fmt: skip
MPII_TO_COCO: Final[dict[int, int]] = {
    0: KEYPOINT_INDEX["right_ankle"],
    1: KEYPOINT_INDEX["right_knee"],
    2: KEYPOINT_INDEX["right_hip"],
    3: KEYPOINT_INDEX["left_hip"],
    4: KEYPOINT_INDEX["left_knee"],
    5: KEYPOINT_INDEX["left_ankle"],
    10: KEYPOINT_INDEX["right_wrist"],
    11: KEYPOINT_INDEX["right_elbow"],
    12: KEYPOINT_INDEX["right_shoulder"],
    13: KEYPOINT_INDEX["left_shoulder"],
    14: KEYPOINT_INDEX["left_elbow"],
    15: KEYPOINT_INDEX["left_wrist"],
}

# The names under which pycocotools' COCOeval.stats are reported, in COCOeval's order.
COCO_STAT_NAMES: Final[tuple[str, ...]] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
