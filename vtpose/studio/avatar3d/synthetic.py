"""Synthetic people whose 3D pose is known, projected to COCO-17 keypoints: the solver's truth in tests and benchmarks.

Poses are drawn within human joint limits and within the region the solver's depth priors describe (hands and
elbows in front of the shoulders' plane, thighs forward, shins back from the knee), the way a streamer in front of a
camera moves; the torso turns up to 35 degrees and the head follows it. Projection is weak perspective (image y down),
as the page's orthographic camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from vtpose.keypoints import KEYPOINT_INDEX
from vtpose.pose import PersonPose
from vtpose.studio.avatar3d.skeleton import FACE_RISE, rest_keypoints

# Face keypoints relative to the face centre, body units, head facing +Z.
FACE_POINTS = {
    "nose": (0.0, -0.05, 0.22),
    "left_eye": (0.09, 0.03, 0.17),
    "right_eye": (-0.09, 0.03, 0.17),
    "left_ear": (0.2, 0.0, -0.02),
    "right_ear": (-0.2, 0.0, -0.02),
}
LIMB_CHAINS = {
    "left": ("left_shoulder", "left_elbow", "left_wrist", "left_hip", "left_knee", "left_ankle"),
    "right": ("right_shoulder", "right_elbow", "right_wrist", "right_hip", "right_knee", "right_ankle"),
}


@dataclass
class SyntheticPose:
    """A known 3D pose and its projection.

    Attributes:
        joints: COCO name (plus `neck`, `pelvis`) -> (3,) position, body units, x right, y up, z toward the camera.
        person: the projected detection (every keypoint confidence 0.9).
    """

    joints: dict[str, np.ndarray]
    person: PersonPose


def _direction(rng: np.random.Generator, base: np.ndarray, spread_deg: float, z_sign: float) -> np.ndarray:
    """A unit direction within `spread_deg` of `base`, its z on the side `z_sign` says (0: either)."""
    while True:
        axis = rng.normal(size=3)
        turned = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.uniform(0, spread_deg))).apply(base)
        if z_sign == 0 or turned[2] * z_sign >= 0:
            return turned / np.linalg.norm(turned)


def random_pose(
    rng: np.random.Generator,
    scale: float = 120.0,
    centre: tuple[float, float] = (640.0, 400.0),
    max_lean_deg: float = 10.0,
) -> SyntheticPose:
    """A random pose within the limits above, `scale` pixels per body unit, pelvis near `centre`, the torso leaning
    up to `max_lean_deg` toward or away from the camera and sideways."""
    rest = rest_keypoints()
    yaw = np.radians(rng.uniform(-35, 35))
    lean = Rotation.from_euler("xz", rng.uniform(-max_lean_deg, max_lean_deg, size=2), degrees=True)
    body = Rotation.from_euler("y", yaw) * lean
    pelvis = rest["pelvis"]
    joints: dict[str, np.ndarray] = {"pelvis": np.zeros(3)}
    for name in ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "neck"):
        joints[name] = body.apply(rest[name] - pelvis)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        s, e, w, h, k, a = LIMB_CHAINS[side]
        length = [np.linalg.norm(rest[e] - rest[s]), np.linalg.norm(rest[w] - rest[e])]
        upper = _direction(rng, np.array([sign * 0.5, -0.85, 0.2]), 75, 1.0)
        fore = _direction(rng, upper, 100, 1.0)
        joints[e] = joints[s] + upper * length[0]
        joints[w] = joints[e] + fore * length[1]
        thigh_len, shin_len = np.linalg.norm(rest[k] - rest[h]), np.linalg.norm(rest[a] - rest[k])
        thigh = _direction(rng, np.array([0.05 * sign, -1.0, 0.0]), 35, 1.0)
        bend = np.radians(rng.uniform(0, 50))
        shin = Rotation.from_rotvec([bend, 0.0, 0.0]).apply(thigh)  # the shin swings back about the knee
        joints[k] = joints[h] + body.apply(thigh) * thigh_len
        joints[a] = joints[k] + body.apply(shin) * shin_len
    head = Rotation.from_euler("y", yaw + np.radians(rng.uniform(-15, 15))) * Rotation.from_euler(
        "z", rng.uniform(-15, 15), degrees=True
    )
    face = joints["neck"] + body.apply(np.array([0.0, FACE_RISE, 0.0]))
    for name, offset in FACE_POINTS.items():
        joints[name] = face + head.apply(np.array(offset))
    keypoints = np.zeros((17, 3), dtype=np.float32)
    for name, index in KEYPOINT_INDEX.items():
        x, y, _ = joints[name]
        keypoints[index] = (centre[0] + x * scale, centre[1] - y * scale, 0.9)
    xs, ys = keypoints[:, 0], keypoints[:, 1]
    bbox = (float(xs.min()), float(ys.min()), float(np.ptp(xs)), float(np.ptp(ys)))
    return SyntheticPose(joints, PersonPose(bbox, 0.9, keypoints, track_id=1))
