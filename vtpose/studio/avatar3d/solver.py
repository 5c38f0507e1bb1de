"""COCO-17 keypoints (completed by the 2D rig) -> local rotations of the VRM's normalized humanoid bones.

Weak perspective, as the page's orthographic camera: image x right, y down; the solver's space is x right, y up,
+z toward the camera, the avatar's rest pose VRM 1.0's T-pose (`vtpose.studio.avatar3d.skeleton`).

- In-plane angles come from the 2D bones. Each limb's out-of-plane angle comes from its foreshortening against the
  person's own bone length: the running high quantile of its 2D length relative to the calibrated shoulder width
  (the longest seen is taken as unforeshortened), seeded from human proportions (the rig's anthropometry).
- The shoulder width itself is calibrated by the torso: facing the camera, torso length over shoulder width is the
  body's ratio; turned, the shoulders shorten and the ratio grows, so its running low quantile is the true one.
- Where the image cannot tell the depth's sign, body priors do: hands and elbows come toward the camera, thighs
  forward, shins back from the knee; the torso's yaw turns the way the nose does (the rig's face_turn).
- Joints the model is unsure of are the rig's inferred ones (arms hanging, legs straight): they are taken in-plane,
  so the bones relax toward the rest pose, with low confidence.
- Rotations are smoothed per bone by a One Euro filter on quaternions (its cutoff rises with angular speed), told
  the real time between frames. Elbows and knees bend at most MAX_BEND_DEG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from vtpose.keypoints import KEYPOINT_INDEX
from vtpose.pose import PersonPose
from vtpose.studio.avatar.rig import FOREARM, HIP_WIDTH, MIN_JOINT_CONFIDENCE, SHIN, THIGH, TORSO, UPPER_ARM, Rig
from vtpose.studio.avatar3d.skeleton import DRIVEN_BONES, PARENT

BONES: Final = DRIVEN_BONES
# Limbs: bone -> (from joint, to joint, prior length in shoulder widths, sign of its depth where the image cannot tell).
LIMBS: Final[dict[str, tuple[str, str, float, float]]] = {
    "leftUpperArm": ("left_shoulder", "left_elbow", UPPER_ARM, 1.0),
    "leftLowerArm": ("left_elbow", "left_wrist", FOREARM, 1.0),
    "rightUpperArm": ("right_shoulder", "right_elbow", UPPER_ARM, 1.0),
    "rightLowerArm": ("right_elbow", "right_wrist", FOREARM, 1.0),
    "leftUpperLeg": ("left_hip", "left_knee", THIGH, 1.0),
    "leftLowerLeg": ("left_knee", "left_ankle", SHIN, -1.0),
    "rightUpperLeg": ("right_hip", "right_knee", THIGH, 1.0),
    "rightLowerLeg": ("right_knee", "right_ankle", SHIN, -1.0),
}
REST_DIRECTIONS: Final[dict[str, np.ndarray]] = {
    "leftUpperArm": np.array([1.0, 0.0, 0.0]),
    "leftLowerArm": np.array([1.0, 0.0, 0.0]),
    "rightUpperArm": np.array([-1.0, 0.0, 0.0]),
    "rightLowerArm": np.array([-1.0, 0.0, 0.0]),
    "leftUpperLeg": np.array([0.0, -1.0, 0.0]),
    "leftLowerLeg": np.array([0.0, -1.0, 0.0]),
    "rightUpperLeg": np.array([0.0, -1.0, 0.0]),
    "rightLowerLeg": np.array([0.0, -1.0, 0.0]),
}
LENGTH_QUANTILE: Final = 0.95  # a bone's calibrated length: this quantile of its 2D length over the frames
TORSO_QUANTILE: Final = 0.1  # the torso-to-shoulders ratio: this (low) quantile
QUANTILE_RATE: Final = 0.02  # step of the running quantile estimates (in body units per frame)
MAX_BEND_DEG: Final = 160.0
MAX_HEAD_YAW_DEG: Final = 80.0
YAW_SIGN_TURN: Final = 0.25  # the face's turn (rig.face_turn) that decides the torso's yaw sign
MIN_CUTOFF_HZ: Final = 2.0  # One Euro: the cutoff of a still bone
BETA: Final = 0.6  # One Euro: added cutoff per radian per second of angular speed
SPEED_CUTOFF_HZ: Final = 1.0
DIGITS: Final = 4

Quat = np.ndarray  # (4,) x, y, z, w


def _qmul(a: Quat, b: Quat) -> Quat:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ])  # fmt: skip


def _qinv(q: Quat) -> Quat:
    return np.array([-q[0], -q[1], -q[2], q[3]])


def _qrot(q: Quat, v: np.ndarray) -> np.ndarray:
    u, w = q[:3], q[3]
    return np.asarray(v + 2.0 * np.cross(u, np.cross(u, v) + w * v))


def _qaxis(axis: np.ndarray, angle: float) -> Quat:
    axis = axis / max(float(np.linalg.norm(axis)), 1e-12)
    return np.array([*(axis * math.sin(angle / 2)), math.cos(angle / 2)])


def _arc(u: np.ndarray, v: np.ndarray) -> Quat:
    """The shortest rotation taking direction u to direction v."""
    u = u / max(float(np.linalg.norm(u)), 1e-12)
    v = v / max(float(np.linalg.norm(v)), 1e-12)
    d = float(np.dot(u, v))
    if d < -0.999999:
        other = np.array([0.0, 1.0, 0.0]) if abs(u[0]) > 0.9 else np.array([1.0, 0.0, 0.0])
        return _qaxis(np.cross(u, other), math.pi)
    q = np.array([*np.cross(u, v), 1.0 + d])
    return q / np.linalg.norm(q)


def _qmatrix(m: np.ndarray) -> Quat:
    """A rotation matrix (columns: the rotated x, y, z axes) as a unit quaternion."""
    t = float(np.trace(m))
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    out = np.array(q)
    return out / np.linalg.norm(out)


def _frame(across: np.ndarray, up: np.ndarray) -> Quat:
    """The rotation taking rest +X to `across` and rest +Y (as near as orthogonal allows) to `up`."""
    x = across / max(float(np.linalg.norm(across)), 1e-12)
    y = up - float(np.dot(up, x)) * x
    y = y / max(float(np.linalg.norm(y)), 1e-12)
    return _qmatrix(np.stack([x, y, np.cross(x, y)], axis=1))


def _slerp(a: Quat, b: Quat, t: float) -> Quat:
    if float(np.dot(a, b)) < 0:
        b = -b
    d = min(float(np.dot(a, b)), 1.0)
    if d > 0.9995:
        q = a + t * (b - a)
        return q / np.linalg.norm(q)
    theta = math.acos(d)
    return (math.sin((1 - t) * theta) * a + math.sin(t * theta) * b) / math.sin(theta)


def _angle(a: Quat, b: Quat) -> float:
    return 2.0 * math.acos(min(abs(float(np.dot(a, b))), 1.0))


IDENTITY: Final = np.array([0.0, 0.0, 0.0, 1.0])


@dataclass
class Body3D:
    """One person's solved pose.

    Attributes:
        bones: bone name -> (4,) local rotation x, y, z, w of the normalized humanoid bone, every name in BONES.
        hips: (2,) frame pixels: where the midpoint of the VRM's upper-leg joints goes.
        shoulder_width: the calibrated (not foreshortened) shoulder width, frame pixels.
        confidence: bone name -> 0-1, how sure the solver is (relaxed bones are low).
    """

    bones: dict[str, Quat]
    hips: np.ndarray
    shoulder_width: float
    confidence: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """The `body3d` record of the poses message."""
        return {
            "bones": {name: [round(float(v), DIGITS) for v in q] for name, q in self.bones.items()},
            "hips": [round(float(v), 2) for v in self.hips],
            "shoulder_width": round(float(self.shoulder_width), 2),
            "confidence": {name: round(float(c), 3) for name, c in self.confidence.items()},
        }

    def world(self) -> dict[str, Quat]:
        """Each bone's rotation in the solver's space (its parents' composed)."""
        out: dict[str, Quat] = {}
        for name in BONES:
            parent = PARENT[name]
            out[name] = self.bones[name] if parent is None else _qmul(out[parent], self.bones[name])
        return out


@dataclass
class _RunningQuantile:
    """A running estimate of a quantile (stochastic approximation), starting at a prior."""

    value: float
    quantile: float

    def update(self, sample: float) -> float:
        step = QUANTILE_RATE * max(self.value, 1e-3)
        self.value += (
            step * (self.quantile - (1.0 if sample < self.value else 0.0)) / max(self.quantile, 1 - self.quantile)
        )
        return self.value


@dataclass
class _OneEuroQuat:
    """One Euro filter on a unit quaternion: a slerp whose factor follows the real time step and angular speed."""

    value: Quat | None = None
    speed: float = 0.0

    def update(self, target: Quat, dt: float) -> Quat:
        if self.value is None:
            self.value = target
            return target
        if float(np.dot(self.value, target)) < 0:
            target = -target
        raw_speed = _angle(self.value, target) / dt
        self.speed += _alpha(SPEED_CUTOFF_HZ, dt) * (raw_speed - self.speed)
        self.value = _slerp(self.value, target, _alpha(MIN_CUTOFF_HZ + BETA * self.speed, dt))
        return self.value


def _alpha(cutoff_hz: float, dt: float) -> float:
    tau = 1.0 / (2 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


@dataclass
class BodySolver:
    """One track's solver: its bone-length calibration and per-bone smoothing persist across frames."""

    lengths: dict[str, _RunningQuantile] = field(
        default_factory=lambda: {b: _RunningQuantile(LIMBS[b][2], LENGTH_QUANTILE) for b in LIMBS}
    )
    torso_ratio: _RunningQuantile = field(default_factory=lambda: _RunningQuantile(TORSO, TORSO_QUANTILE))
    hip_ratio: _RunningQuantile = field(default_factory=lambda: _RunningQuantile(HIP_WIDTH, LENGTH_QUANTILE))
    filters: dict[str, _OneEuroQuat] = field(default_factory=lambda: {b: _OneEuroQuat() for b in BONES})
    yaw_sign: float = 1.0  # which way the shoulders' far side points in depth (the torso's yaw sign)

    def update(self, person: PersonPose, rig: Rig, dt: float) -> Body3D:
        """Solve one frame.

        Args:
            person: the tracked, smoothed detection (its keypoints' confidences give the bones' confidence).
            rig: its completed rig (`vtpose.studio.avatar.rig.complete_pose`), frame pixels.
            dt: seconds since this track's previous frame (the LiveSession's measured gap).
        """
        raw, confidence, shoulder_width, hips = self.solve(person, rig)
        dt = max(float(dt), 1e-3)
        bones = {name: self.filters[name].update(raw[name], dt) for name in BONES}
        return Body3D(bones, hips, shoulder_width, confidence)

    def solve(self, person: PersonPose, rig: Rig) -> tuple[dict[str, Quat], dict[str, float], float, np.ndarray]:
        """One frame's rotations without smoothing (the calibration does learn from it)."""
        p = {name: np.array([v[0], -v[1], 0.0]) for name, v in rig.points.items()}  # y up
        kp = np.asarray(person.keypoints, dtype=np.float64)

        def conf(*names: str) -> float:
            values = [float(kp[KEYPOINT_INDEX[n], 2]) if n in rig.detected else 0.0 for n in names]
            return min(values)

        ls, rs, lh, rh = p["left_shoulder"], p["right_shoulder"], p["left_hip"], p["right_hip"]
        across_2d = float(np.linalg.norm((ls - rs)[:2]))
        torso_2d = float(np.linalg.norm((p["neck"] - p["pelvis"])[:2]))
        torso_seen = conf("left_shoulder", "right_shoulder", "left_hip", "right_hip") >= MIN_JOINT_CONFIDENCE
        if torso_seen and across_2d > 1.0:
            self.torso_ratio.update(torso_2d / across_2d)
        shoulder_width = max(across_2d, torso_2d / max(self.torso_ratio.value, 0.5), rig.unit, 1.0)

        # Torso yaw: the shoulder line's foreshortening, turned the way the nose points.
        turn = float(rig.face_turn)
        face_seen = conf("nose") >= MIN_JOINT_CONFIDENCE and float(ls[0] - rs[0]) > 0
        # A face seen nearly frontally (or not at all) does not say which way the body turns: the last clear answer
        # holds. Turning round, the shoulders' order flips on screen and the same sign carries the yaw past 90 deg.
        if face_seen and abs(turn) > YAW_SIGN_TURN:
            self.yaw_sign = -1.0 if turn > 0 else 1.0
        depth = math.sqrt(max(shoulder_width**2 - across_2d**2, 0.0))
        s_across = (ls - rs) + np.array([0.0, 0.0, self.yaw_sign * depth])
        hip_2d = float(np.linalg.norm((lh - rh)[:2]))
        if torso_seen and conf("left_hip", "right_hip") >= MIN_JOINT_CONFIDENCE:
            self.hip_ratio.update(hip_2d / shoulder_width)
        hip_width = max(self.hip_ratio.value * shoulder_width, hip_2d)
        h_depth = math.sqrt(max(hip_width**2 - hip_2d**2, 0.0))
        h_across = (lh - rh) + np.array([0.0, 0.0, math.copysign(h_depth, s_across[2])])
        up = p["neck"] - p["pelvis"]

        world: dict[str, Quat] = {}
        world["hips"] = _frame(h_across, up)
        chest_world = _frame(s_across, up)
        relative = _qmul(_qinv(world["hips"]), chest_world)
        half = _slerp(IDENTITY, relative, 0.5)
        world["spine"] = _qmul(world["hips"], half)
        world["chest"] = _qmul(world["spine"], half)

        # Head: yaw from the face's turn, roll from the eyes (the rig's estimates), on top of the body's facing.
        yaw = math.asin(max(-1.0, min(1.0, turn))) * MAX_HEAD_YAW_DEG / 90.0
        head_world = _qmul(_qaxis(np.array([0.0, 0.0, 1.0]), -float(rig.head_roll)), _qaxis(np.array([0, 1.0, 0]), yaw))
        if not face_seen:  # no face to read (turned away): the head relaxes onto the chest
            head_world = world["chest"]
        head_relative = _qmul(_qinv(world["chest"]), head_world)
        neck_half = _slerp(IDENTITY, head_relative, 0.5)
        world["neck"] = _qmul(world["chest"], neck_half)
        world["head"] = _qmul(world["neck"], neck_half)

        # Limbs: each bone's 3D direction from its 2D bone and its calibrated length.
        directions: dict[str, np.ndarray] = {}
        confidence: dict[str, float] = {}
        for bone, (a, b, _, prior_sign) in LIMBS.items():
            d = p[b] - p[a]
            length_2d = float(np.linalg.norm(d[:2])) / shoulder_width
            c = conf(a, b)
            confidence[bone] = c
            if c >= MIN_JOINT_CONFIDENCE:
                self.lengths[bone].update(length_2d)
                full = max(self.lengths[bone].value, length_2d)
                d = d + np.array([0.0, 0.0, prior_sign * math.sqrt(max(full**2 - length_2d**2, 0.0)) * shoulder_width])
            # An unsure bone stays in the image plane, where the rig put it (hanging arm, straight leg).
            directions[bone] = d if float(np.linalg.norm(d)) > 1e-6 else -up
        for side in ("left", "right"):
            for upper, lower, base in (
                (f"{side}UpperArm", f"{side}LowerArm", "chest"),
                (f"{side}UpperLeg", f"{side}LowerLeg", "hips"),
            ):
                upper_dir, lower_dir = directions[upper], _limit_bend(directions[upper], directions[lower])
                rest_in_base = _qrot(world[base], REST_DIRECTIONS[upper])
                world[upper] = _qmul(_arc(rest_in_base, upper_dir), world[base])
                carried = _qrot(world[upper], REST_DIRECTIONS[lower])
                world[lower] = _qmul(_arc(carried, lower_dir), world[upper])

        local = {}
        for name in BONES:
            parent = PARENT[name]
            local[name] = world[name] if parent is None else _qmul(_qinv(world[parent]), world[name])
        torso_conf = conf("left_shoulder", "right_shoulder", "left_hip", "right_hip")
        face_conf = max(conf("nose"), conf("left_eye", "right_eye"))
        confidence |= {"hips": torso_conf, "spine": torso_conf, "chest": torso_conf, "neck": face_conf}
        confidence["head"] = face_conf
        pelvis = rig.points["pelvis"]
        return local, {b: confidence[b] for b in BONES}, shoulder_width, np.asarray(pelvis, dtype=np.float64)


def _limit_bend(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """The lower bone's direction with its bend from the upper bone's line clamped to MAX_BEND_DEG."""
    u = upper / max(float(np.linalg.norm(upper)), 1e-12)
    v = lower / max(float(np.linalg.norm(lower)), 1e-12)
    angle = math.acos(max(-1.0, min(1.0, float(np.dot(u, v)))))
    limit = math.radians(MAX_BEND_DEG)
    if angle <= limit:
        return v
    axis = np.cross(u, v)
    if float(np.linalg.norm(axis)) < 1e-9:
        axis = np.cross(u, np.array([0.0, 0.0, 1.0]))
    return _qrot(_qaxis(axis, limit), u)
