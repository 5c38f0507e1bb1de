"""The 2D rig: a detected pose completed into a full set of joint positions an avatar can hang on.

Joints the model did not see confidently are never used as they are (a hidden joint's coordinates can be
anywhere, and (0, 0) for some exporters); they are inferred from the body's proportions instead: an arm with no
elbow or wrist hangs at the side, a leg with no knee stands straight, hips sit a torso's length below the
shoulders. Whether the legs are drawn at all depends on whether any were seen (`Rig.full_body`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vtpose.keypoints import KEYPOINT_NAMES
from vtpose.studio.avatar.spec import LEG_JOINTS

# Joints below this confidence are inferred, not trusted.
MIN_JOINT_CONFIDENCE = 0.35
# Body proportions in shoulder widths (the body unit), from average adult anthropometry.
UPPER_ARM = 0.68
FOREARM = 0.6
THIGH = 0.95
SHIN = 0.9
TORSO = 1.2  # shoulder midpoint to hip midpoint
HIP_WIDTH = 0.7  # between the hip joints
# The unit is at least this share of the torso's length (in units): shoulders seen side-on are foreshortened.
TORSO_FOR_UNIT = 0.85
MAX_HEAD_ROLL_DEG = 40.0


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.hypot(*v))
    return v / n if n > 1e-9 else np.array([0.0, 1.0])


@dataclass
class Rig:
    """A completed pose in some image's pixel coordinates.

    Attributes:
        points: joint name -> (2,) float64 x, y pixels, for every COCO keypoint and `neck`, `pelvis`, `head`.
        detected: joint names seen with confidence (the rest are inferred).
        unit: the body unit, pixels (the shoulder width, or less foreshortened evidence when turned).
        full_body: legs were seen, so the legs are drawn and the person stands on their feet.
        up: (2,) unit vector from pelvis to neck, image coordinates (y down).
        head_roll: head tilt, radians (0 upright; positive clockwise on screen).
        face_turn: head yaw in [-1, 1]: the face's features shift this fraction toward the image's right.
        track_id: the person's track, when tracked.
    """

    points: dict[str, np.ndarray]
    detected: frozenset[str]
    unit: float
    full_body: bool
    up: np.ndarray
    head_roll: float = 0.0
    face_turn: float = 0.0
    track_id: int | None = None

    def transformed(self, scale: float, offset: np.ndarray) -> Rig:
        """The rig mapped by p -> p * scale + offset (offset (2,) pixels)."""
        return Rig(
            points={k: v * scale + offset for k, v in self.points.items()},
            detected=self.detected,
            unit=self.unit * scale,
            full_body=self.full_body,
            up=self.up,
            head_roll=self.head_roll,
            face_turn=self.face_turn,
            track_id=self.track_id,
        )

    def extent(self, head_radius: float) -> tuple[float, float, float, float]:
        """Box (x0, y0, x1, y1) in pixels around the joints drawn, with the head and hands' size added.

        Args:
            head_radius: the avatar's head radius in body units.
        """
        names = [n for n in self.points if self.full_body or n not in LEG_JOINTS]
        pts = np.array([self.points[n] for n in names])
        pad = 0.18 * self.unit  # hands and feet are drawn beyond their joints
        x0, y0 = pts.min(0) - pad
        x1, y1 = pts.max(0) + pad
        head = self.points["head"]
        r = head_radius * self.unit * 1.35  # ears and hair stick out of the head circle
        return (min(x0, head[0] - r), min(y0, head[1] - r), max(x1, head[0] + r), max(y1, head[1] + r))


def _two_bone(root: np.ndarray, end: np.ndarray, l1: float, l2: float, bend: np.ndarray) -> np.ndarray:
    """The middle joint of a two-bone chain from root to end, bending toward `bend` (2-D inverse kinematics)."""
    d = end - root
    dist = float(np.hypot(*d))
    if dist < 1e-6:
        return root + bend * l1
    dist_c = min(dist, l1 + l2 - 1e-6)
    along = (l1 * l1 - l2 * l2 + dist_c * dist_c) / (2 * dist_c)
    height = math.sqrt(max(l1 * l1 - along * along, 0.0))
    axis = d / dist
    normal = np.array([-axis[1], axis[0]])
    if float(normal @ bend) < 0:
        normal = -normal
    return root + axis * along + normal * height


def complete_pose(
    keypoints: np.ndarray,
    min_confidence: float = MIN_JOINT_CONFIDENCE,
    track_id: int | None = None,
) -> Rig | None:
    """Complete one detected pose into a rig, inferring every joint not seen confidently.

    Args:
        keypoints: (17, 3) x, y pixels and confidence in [0, 1], COCO order.
        min_confidence: joints below it are inferred.
        track_id: carried into the rig.

    Returns:
        The rig, or None when too little of the body is visible to place one (no shoulder can be placed).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    seen = {
        name: bool(kp[i, 2] >= min_confidence and np.isfinite(kp[i, :2]).all()) for i, name in enumerate(KEYPOINT_NAMES)
    }
    p: dict[str, np.ndarray] = {name: kp[i, :2].copy() for i, name in enumerate(KEYPOINT_NAMES)}

    def ok(name: str) -> bool:
        return seen[name]

    # Shoulders: both are needed to place a body; a missing one mirrors the other across the hips or the nose.
    ls, rs = "left_shoulder", "right_shoulder"
    for a, b, ha, hb in ((ls, rs, "left_hip", "right_hip"), (rs, ls, "right_hip", "left_hip")):
        if ok(a) and not ok(b):
            if ok(ha) and ok(hb):
                p[b] = p[a] + (p[hb] - p[ha]) * (1.0 / HIP_WIDTH)
            elif ok("nose"):
                p[b] = np.array([2 * p["nose"][0] - p[a][0], p[a][1]])
            else:
                return None
    if not (ok(ls) or ok(rs)):
        return None
    shoulder_width = float(np.hypot(*(p[ls] - p[rs])))
    face = [n for n in ("left_eye", "right_eye", "left_ear", "right_ear") if ok(n)]
    if len(face) >= 2:
        # A side-on person has shoulders almost on top of each other; the head's width keeps the unit sane.
        face_pts = np.array([p[n] for n in face])
        head_width = float(np.ptp(face_pts[:, 0]) + np.ptp(face_pts[:, 1]))
        shoulder_width = max(shoulder_width, 1.6 * head_width)
    shoulder_width = max(shoulder_width, 4.0)
    neck = (p[ls] + p[rs]) / 2
    # Body "down": perpendicular to the shoulder line, on the side of the hips (or image down).
    across = _unit(p[ls] - p[rs])
    down = np.array([-across[1], across[0]])
    if down[1] < 0:
        down = -down

    # Hips.
    lh, rh = "left_hip", "right_hip"
    if ok(lh) and ok(rh):
        pass
    elif ok(lh) or ok(rh):
        known, other = (lh, rh) if ok(lh) else (rh, lh)
        sk, so = (ls, rs) if known == lh else (rs, ls)
        p[other] = p[known] + (p[so] - p[sk]) * HIP_WIDTH
    else:
        pelvis = neck + down * TORSO * shoulder_width
        p[lh] = pelvis + (p[ls] - neck) * HIP_WIDTH
        p[rh] = pelvis + (p[rs] - neck) * HIP_WIDTH
    pelvis = (p[lh] + p[rh]) / 2
    torso = float(np.hypot(*(pelvis - neck)))
    unit = max(shoulder_width, TORSO_FOR_UNIT * torso / TORSO)
    if torso > 1e-6:
        down = (pelvis - neck) / torso

    # Arms: hang at the side when unseen; bend the elbow outward when only the wrist is seen.
    for side in ("left", "right"):
        s, e, w = f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist"
        outward = _unit(p[s] - neck)
        hang = _unit(down * 0.95 + outward * 0.25)
        if not ok(e) and ok(w):
            p[e] = _two_bone(p[s], p[w], UPPER_ARM * unit, FOREARM * unit, outward + down * 0.5)
        elif not ok(e):
            p[e] = p[s] + hang * UPPER_ARM * unit
        if not ok(w):
            # An arm leaving the frame carries on as it was going; a lost one hangs.
            direction = _unit(p[e] - p[s]) if ok(e) else _unit(down + outward * 0.1)
            p[w] = p[e] + direction * FOREARM * unit

    # Legs: stand straight when unseen; bend the knee forward-ish when only the ankle is seen.
    for side in ("left", "right"):
        h, k, a = f"{side}_hip", f"{side}_knee", f"{side}_ankle"
        outward = _unit(p[h] - pelvis)
        if not ok(k) and ok(a):
            p[k] = _two_bone(p[h], p[a], THIGH * unit, SHIN * unit, outward)
        elif not ok(k):
            p[k] = p[h] + _unit(down + outward * 0.08) * THIGH * unit
        if not ok(a):
            direction = _unit(p[k] - p[h]) if ok(k) else down
            p[a] = p[k] + _unit(direction + down) * SHIN * unit

    # Head: centred between the visible face points, never sunk into the shoulders.
    up = -down
    if face:
        head = np.mean([p[n] for n in face], axis=0)
    elif ok("nose"):
        head = p["nose"].copy()
    else:
        head = neck + up * 0.75 * unit
    roll = 0.0
    if ok("left_eye") and ok("right_eye"):
        eye_axis = p["left_eye"] - p["right_eye"]
        if eye_axis[0] < 0:  # facing away: the eyes' order flips on screen
            eye_axis = -eye_axis
        roll = float(
            np.clip(
                math.atan2(eye_axis[1], eye_axis[0]), -math.radians(MAX_HEAD_ROLL_DEG), math.radians(MAX_HEAD_ROLL_DEG)
            )
        )
    turn = 0.0
    if ok("nose") and len(face) >= 2:
        face_pts = np.array([p[n] for n in face])
        span = max(float(np.ptp(face_pts[:, 0])), 1e-6)
        turn = float(np.clip((p["nose"][0] - face_pts[:, 0].mean()) / span * 2.0, -1.0, 1.0))

    points = dict(p)
    points["neck"] = neck
    points["pelvis"] = pelvis
    points["head"] = head
    leg_seen = sum(ok(n) for n in ("left_knee", "right_knee")) >= 2 or ok("left_ankle") or ok("right_ankle")
    detected = frozenset(n for n in KEYPOINT_NAMES if ok(n))
    return Rig(points, detected, unit, leg_seen, up, roll, turn, track_id)


def settle_head(rig: Rig, head_radius: float) -> None:
    """Move the head so a cartoon head of `head_radius` body units sits on the neck instead of in the chest.

    Cartoon heads are larger than real ones; centred on the real face they would swallow the shoulders, so the
    head centre is kept at least 0.85 radii (plus a short neck) above the shoulder line, along the body's up.
    """
    neck, head = rig.points["neck"], rig.points["head"]
    min_rise = (0.85 * head_radius + 0.12) * rig.unit
    rise = float((head - neck) @ rig.up)
    if rise < min_rise:
        rig.points["head"] = head + rig.up * (min_rise - rise)


def complete_poses(keypoint_sets: Sequence[np.ndarray], track_ids: Sequence[int | None] | None = None) -> list[Rig]:
    """Rigs for several poses, skipping those too hidden to place."""
    ids = list(track_ids) if track_ids is not None else [None] * len(keypoint_sets)
    rigs = [complete_pose(k, track_id=t) for k, t in zip(keypoint_sets, ids, strict=True)]
    return [r for r in rigs if r is not None]
