"""COCO-17 keypoints (completed by the 2D rig) -> local rotations of the VRM's normalized humanoid bones.

Weak perspective, as the page's orthographic camera: image x right, y down; the solver's space is x right, y up,
+z toward the camera, the avatar's rest pose VRM 1.0's T-pose (`vtpose.studio.avatar3d.skeleton`).

- In-plane angles come from the 2D bones. Each limb's out-of-plane angle comes from its foreshortening against the
  person's own bone length: the running high quantile of its 2D length relative to the calibrated shoulder width
  (the longest seen is taken as unforeshortened), seeded from human proportions (the rig's anthropometry).
- The shoulder width (the scale the avatar is drawn at, and what tells the torso's turn) is calibrated by the torso:
  facing the camera, torso length over shoulder width is the body's ratio; turned, the shoulders shorten and the
  ratio grows, so its running low quantile is the true one. It is kept at or below the avatar's own ratio: the
  avatar is drawn with its own proportions, and a ratio above them shrank it, its torso shorter than the person's
  by the difference (a narrower person is matched by turning the avatar's shoulders instead). Below it, a torso
  leaning toward the camera keeps the width its upright frames showed. The hip width is the avatar's for the same
  reason (calibrated, it moved a seated streamer's torso from 0.03 to 0.056 shoulder widths off); limb lengths are
  calibrated within MAX_CALIBRATION_FACTOR of their priors (that kept the streamer's arms at 0.056, against 0.095
  with the priors alone).
- Where the image cannot tell the depth's sign, body priors do: hands and elbows come toward the camera, thighs
  forward, shins back from the knee; the torso's yaw turns the way the nose does (the rig's face_turn).
- Joints the model is unsure of are the rig's inferred ones (arms hanging, legs straight): they are taken in-plane,
  so the bones relax toward the rest pose, with low confidence.
- Rotations are smoothed per bone by a One Euro filter on quaternions (its cutoff rises with angular speed), told
  the real time between frames. Elbows and knees bend at most MAX_BEND_DEG.

The math runs on plain float tuples: it runs for every drawn person of every frame, and numpy's per-call overhead on
3- and 4-element vectors cost several times the arithmetic. The public outputs (`Body3D`, `BodySolver.solve`) hold
numpy arrays.
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

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]  # x, y, z, w

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
REST_DIRECTIONS: Final[dict[str, Vec3]] = {
    "leftUpperArm": (1.0, 0.0, 0.0),
    "leftLowerArm": (1.0, 0.0, 0.0),
    "rightUpperArm": (-1.0, 0.0, 0.0),
    "rightLowerArm": (-1.0, 0.0, 0.0),
    "leftUpperLeg": (0.0, -1.0, 0.0),
    "leftLowerLeg": (0.0, -1.0, 0.0),
    "rightUpperLeg": (0.0, -1.0, 0.0),
    "rightLowerLeg": (0.0, -1.0, 0.0),
}
# Each side's limb chains: (upper bone, lower bone, the torso bone they hang from).
CHAINS: Final = tuple(
    (f"{side}{upper}", f"{side}{lower}", base)
    for side in ("left", "right")
    for upper, lower, base in (("UpperArm", "LowerArm", "chest"), ("UpperLeg", "LowerLeg", "hips"))
)
LENGTH_QUANTILE: Final = 0.95  # a bone's calibrated length: this quantile of its 2D length over the frames
TORSO_QUANTILE: Final = 0.1  # the torso-to-shoulders ratio: this (low) quantile
QUANTILE_RATE: Final = 0.02  # step of the running quantile estimates (in body units per frame)
# Calibrated proportions stay within this factor of their prior either way: people's limb proportions vary by
# about that, and a running quantile left free forgets. A dancer whose forearm stayed foreshortened for a few seconds
# had it calibrated down to 0.6x the prior, after which every full-length forearm was drawn too long.
MAX_CALIBRATION_FACTOR: Final = 1.15
MAX_BEND_DEG: Final = 160.0
MAX_HEAD_YAW_DEG: Final = 80.0
# How far the torso may lean toward or away from the camera to square a turned torso's shoulder (or hip) line with
# its spine on screen (see _torso_up); a shoulder line still off square beyond it tilts the torso with it.
MAX_TORSO_PITCH_DEG: Final = 45.0
YAW_SIGN_TURN: Final = 0.25  # the face's turn (rig.face_turn) that decides the torso's yaw sign
MIN_CUTOFF_HZ: Final = 2.0  # One Euro: the cutoff of a still bone
BETA: Final = 0.6  # One Euro: added cutoff per radian per second of angular speed
SPEED_CUTOFF_HZ: Final = 1.0
DIGITS: Final = 4
_TINY: Final = 1e-12  # the floor of a norm that is divided by


def _norm(v: Vec3) -> float:
    x, y, z = v
    return math.sqrt(x * x + y * y + z * z)


def _unit(v: Vec3) -> Vec3:
    n = max(_norm(v), _TINY)
    return (v[0] / n, v[1] / n, v[2] / n)


def _dot(a: Vec3, b: Vec3) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Vec3, b: Vec3) -> Vec3:
    ax, ay, az = a
    bx, by, bz = b
    return (ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx)


def _qdot(a: Quat, b: Quat) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]


def _qnormalized(q: Quat) -> Quat:
    x, y, z, w = q
    n = math.sqrt(x * x + y * y + z * z + w * w)
    return (x / n, y / n, z / n, w / n)


def _qmul(a: Quat, b: Quat) -> Quat:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


def _qinv(q: Quat) -> Quat:
    return (-q[0], -q[1], -q[2], q[3])


def _qrot(q: Quat, v: Vec3) -> Vec3:
    """v rotated by the unit quaternion q: v + 2 u x (u x v + w v), u the vector part."""
    ux, uy, uz, w = q
    vx, vy, vz = v
    cx = uy * vz - uz * vy + w * vx
    cy = uz * vx - ux * vz + w * vy
    cz = ux * vy - uy * vx + w * vz
    return (vx + 2.0 * (uy * cz - uz * cy), vy + 2.0 * (uz * cx - ux * cz), vz + 2.0 * (ux * cy - uy * cx))


def _qaxis(axis: Vec3, angle: float) -> Quat:
    x, y, z = _unit(axis)
    s = math.sin(angle / 2)
    return (x * s, y * s, z * s, math.cos(angle / 2))


def _arc(u: Vec3, v: Vec3) -> Quat:
    """The shortest rotation taking direction u to direction v."""
    u, v = _unit(u), _unit(v)
    d = _dot(u, v)
    if d < -0.999999:
        other = (0.0, 1.0, 0.0) if abs(u[0]) > 0.9 else (1.0, 0.0, 0.0)
        return _qaxis(_cross(u, other), math.pi)
    return _qnormalized((*_cross(u, v), 1.0 + d))


def _qmatrix(x: Vec3, y: Vec3, z: Vec3) -> Quat:
    """The rotation matrix whose columns are x, y, z (the rotated axes) as a unit quaternion."""
    # m[i][j] is column j's component i: m00 m10 m20 = x, m01 m11 m21 = y, m02 m12 m22 = z.
    m00, m10, m20 = x
    m01, m11, m21 = y
    m02, m12, m22 = z
    t = m00 + m11 + m22
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = ((m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s, 0.25 * s)
    elif m00 > m11 and m00 > m22:
        s = math.sqrt(1.0 + m00 - m11 - m22) * 2
        q = (0.25 * s, (m01 + m10) / s, (m02 + m20) / s, (m21 - m12) / s)
    elif m11 > m22:
        s = math.sqrt(1.0 + m11 - m00 - m22) * 2
        q = ((m01 + m10) / s, 0.25 * s, (m12 + m21) / s, (m02 - m20) / s)
    else:
        s = math.sqrt(1.0 + m22 - m00 - m11) * 2
        q = ((m02 + m20) / s, (m12 + m21) / s, 0.25 * s, (m10 - m01) / s)
    return _qnormalized(q)


def _frame(across: Vec3, up: Vec3) -> Quat:
    """The rotation taking rest +X to `across` and rest +Y (as near as orthogonal allows) to `up`."""
    x = _unit(across)
    along = _dot(up, x)
    y = _unit((up[0] - along * x[0], up[1] - along * x[1], up[2] - along * x[2]))
    return _qmatrix(x, y, _cross(x, y))


def _slerp(a: Quat, b: Quat, t: float) -> Quat:
    if _qdot(a, b) < 0:
        b = (-b[0], -b[1], -b[2], -b[3])
    d = min(_qdot(a, b), 1.0)
    if d > 0.9995:
        return _qnormalized((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), a[2] + t * (b[2] - a[2]),
                             a[3] + t * (b[3] - a[3])))  # fmt: skip
    theta = math.acos(d)
    sa, sb, st = math.sin((1 - t) * theta), math.sin(t * theta), math.sin(theta)
    return ((sa * a[0] + sb * b[0]) / st, (sa * a[1] + sb * b[1]) / st, (sa * a[2] + sb * b[2]) / st,
            (sa * a[3] + sb * b[3]) / st)  # fmt: skip


def _angle(a: Quat, b: Quat) -> float:
    return 2.0 * math.acos(min(abs(_qdot(a, b)), 1.0))


IDENTITY: Final[Quat] = (0.0, 0.0, 0.0, 1.0)


@dataclass
class Body3D:
    """One person's solved pose.

    Attributes:
        bones: bone name -> (4,) local rotation x, y, z, w of the normalized humanoid bone, every name in BONES.
        hips: (2,) frame pixels: where the midpoint of the VRM's upper-leg joints goes.
        shoulder_width: the calibrated (not foreshortened) shoulder width, frame pixels.
        confidence: bone name -> 0-1, how sure the solver is (relaxed bones are low).
    """

    bones: dict[str, np.ndarray]
    hips: np.ndarray
    shoulder_width: float
    confidence: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """The `body3d` record of the poses message."""
        # tolist: rounding Python floats, not numpy scalars one by one (this runs per person per frame too).
        return {
            "bones": {name: [round(v, DIGITS) for v in q.tolist()] for name, q in self.bones.items()},
            "hips": [round(v, 2) for v in self.hips.tolist()],
            "shoulder_width": round(float(self.shoulder_width), 2),
            "confidence": {name: round(float(c), 3) for name, c in self.confidence.items()},
        }

    def world(self) -> dict[str, np.ndarray]:
        """Each bone's rotation in the solver's space (its parents' composed)."""
        out: dict[str, Quat] = {}
        for name in BONES:
            parent, q = PARENT[name], _as_quat(self.bones[name])
            out[name] = q if parent is None else _qmul(out[parent], q)
        return {name: np.array(q) for name, q in out.items()}


def _as_quat(q: np.ndarray) -> Quat:
    x, y, z, w = q.tolist()
    return (x, y, z, w)


@dataclass
class _RunningQuantile:
    """A running estimate of a quantile (stochastic approximation), starting at a prior and kept between the
    prior over MAX_CALIBRATION_FACTOR and the prior times `high_factor`."""

    value: float
    quantile: float
    high_factor: float = MAX_CALIBRATION_FACTOR
    low: float = field(init=False)
    high: float = field(init=False)

    def __post_init__(self) -> None:
        self.low, self.high = self.value / MAX_CALIBRATION_FACTOR, self.value * self.high_factor

    def update(self, sample: float) -> float:
        step = QUANTILE_RATE * max(self.value, 1e-3)
        self.value += (
            step * (self.quantile - (1.0 if sample < self.value else 0.0)) / max(self.quantile, 1 - self.quantile)
        )
        self.value = min(max(self.value, self.low), self.high)
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
        if _qdot(self.value, target) < 0:
            target = (-target[0], -target[1], -target[2], -target[3])
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
    # Below the avatar's own ratio only: see the module's docstring.
    torso_ratio: _RunningQuantile = field(
        default_factory=lambda: _RunningQuantile(TORSO, TORSO_QUANTILE, high_factor=1.0)
    )
    filters: dict[str, _OneEuroQuat] = field(default_factory=lambda: {b: _OneEuroQuat() for b in BONES})
    yaw_sign: float = 1.0  # which way the shoulders' far side points in depth (the torso's yaw sign)

    def update(self, person: PersonPose, rig: Rig, dt: float) -> Body3D:
        """Solve one frame.

        Args:
            person: the tracked, smoothed detection (its keypoints' confidences give the bones' confidence).
            rig: its completed rig (`vtpose.studio.avatar.rig.complete_pose`), frame pixels.
            dt: seconds since this track's previous frame (the LiveSession's measured gap).
        """
        raw, confidence, shoulder_width, hips = self._solve(person, rig)
        dt = max(float(dt), 1e-3)
        bones = {name: np.array(self.filters[name].update(raw[name], dt)) for name in BONES}
        return Body3D(bones, hips, shoulder_width, confidence)

    def solve(self, person: PersonPose, rig: Rig) -> tuple[dict[str, np.ndarray], dict[str, float], float, np.ndarray]:
        """One frame's rotations without smoothing (the calibration does learn from it)."""
        local, confidence, shoulder_width, hips = self._solve(person, rig)
        return {name: np.array(q) for name, q in local.items()}, confidence, shoulder_width, hips

    def _solve(self, person: PersonPose, rig: Rig) -> tuple[dict[str, Quat], dict[str, float], float, np.ndarray]:
        """`solve` on tuples: each rotation (x, y, z, w)."""
        p: dict[str, tuple[float, float]] = {}
        for name, v in rig.points.items():
            x, y = v.tolist()
            p[name] = (x, -y)  # y up
        scores: list[float] = np.asarray(person.keypoints, dtype=np.float64)[:, 2].tolist()
        detected = rig.detected

        def conf(*names: str) -> float:
            return min([scores[KEYPOINT_INDEX[n]] if n in detected else 0.0 for n in names])

        def between(a: str, b: str) -> tuple[float, float]:
            """The 2D vector from joint a to joint b."""
            (ax, ay), (bx, by) = p[a], p[b]
            return (bx - ax, by - ay)

        across_x, across_y = between("right_shoulder", "left_shoulder")
        across_2d = math.sqrt(across_x * across_x + across_y * across_y)
        up_x, up_y = between("pelvis", "neck")
        torso_2d = math.sqrt(up_x * up_x + up_y * up_y)
        torso_seen = conf("left_shoulder", "right_shoulder", "left_hip", "right_hip") >= MIN_JOINT_CONFIDENCE
        if torso_seen and across_2d > 1.0:
            self.torso_ratio.update(torso_2d / across_2d)
        shoulder_width = max(across_2d, torso_2d / self.torso_ratio.value, float(rig.unit), 1.0)

        # Torso yaw: the shoulder line's foreshortening, turned the way the nose points.
        turn = float(rig.face_turn)
        face_seen = conf("nose") >= MIN_JOINT_CONFIDENCE and across_x > 0
        # A face seen nearly frontally (or not at all) does not say which way the body turns: the last clear answer
        # holds. Turning round, the shoulders' order flips on screen and the same sign carries the yaw past 90 deg.
        if face_seen and abs(turn) > YAW_SIGN_TURN:
            self.yaw_sign = -1.0 if turn > 0 else 1.0
        depth = math.sqrt(max(shoulder_width**2 - across_2d**2, 0.0))
        # No depth (an unturned torso) is +0.0, whose sign the hips' depth takes below.
        s_across = (across_x, across_y, self.yaw_sign * depth if depth > 0 else 0.0)
        hip_x, hip_y = between("right_hip", "left_hip")
        hip_2d = math.sqrt(hip_x * hip_x + hip_y * hip_y)
        # The avatar's own hip width (see the module's docstring): the hips' turn then lays its hip joints on the
        # person's.
        hip_width = max(HIP_WIDTH * shoulder_width, hip_2d)
        h_depth = math.sqrt(max(hip_width**2 - hip_2d**2, 0.0))
        h_across = (hip_x, hip_y, math.copysign(h_depth, s_across[2]))
        world: dict[str, Quat] = {}
        world["hips"] = _frame(h_across, _torso_up(h_across, up_x, up_y))
        chest_world = _frame(s_across, _torso_up(s_across, up_x, up_y))
        relative = _qmul(_qinv(world["hips"]), chest_world)
        half = _slerp(IDENTITY, relative, 0.5)
        world["spine"] = _qmul(world["hips"], half)
        world["chest"] = _qmul(world["spine"], half)

        # Head: yaw from the face's turn, roll from the eyes (the rig's estimates), on top of the body's facing.
        yaw = math.asin(max(-1.0, min(1.0, turn))) * MAX_HEAD_YAW_DEG / 90.0
        head_world = _qmul(_qaxis((0.0, 0.0, 1.0), -float(rig.head_roll)), _qaxis((0.0, 1.0, 0.0), yaw))
        if not face_seen:  # no face to read (turned away): the head relaxes onto the chest
            head_world = world["chest"]
        head_relative = _qmul(_qinv(world["chest"]), head_world)
        neck_half = _slerp(IDENTITY, head_relative, 0.5)
        world["neck"] = _qmul(world["chest"], neck_half)
        world["head"] = _qmul(world["neck"], neck_half)

        # Limbs: each bone's 3D direction from its 2D bone and its calibrated length.
        directions: dict[str, Vec3] = {}
        confidence: dict[str, float] = {}
        hanging = (-up_x, -up_y, 0.0)
        for bone, (a, b, _, prior_sign) in LIMBS.items():
            dx, dy = between(a, b)
            dz = 0.0
            length_2d = math.sqrt(dx * dx + dy * dy) / shoulder_width
            c = conf(a, b)
            confidence[bone] = c
            if c >= MIN_JOINT_CONFIDENCE:
                length = self.lengths[bone]
                length.update(length_2d)
                full = max(length.value, length_2d)
                dz = prior_sign * math.sqrt(max(full**2 - length_2d**2, 0.0)) * shoulder_width
            # An unsure bone stays in the image plane, where the rig put it (hanging arm, straight leg).
            d = (dx, dy, dz)
            directions[bone] = d if _norm(d) > 1e-6 else hanging
        for upper, lower, base in CHAINS:
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


def _torso_up(across: Vec3, up_x: float, up_y: float) -> Vec3:
    """The spine's 3D direction: its 2D direction, with the depth that makes it perpendicular to `across`.

    A torso turned (`across` has depth) and leaning toward or away from the camera, as a seated streamer does,
    shows its shoulder line off square with its spine on screen. Taking the spine as drawn and the lean as that
    depth puts both the shoulders and the neck where the image has them; without it the frame squares the spine to
    the shoulder line, which swings the whole upper body sideways (by 0.17 shoulder widths on the streamer photo).
    """
    along = across[0] * up_x + across[1] * up_y
    if abs(across[2]) < _TINY:
        return (up_x, up_y, 0.0)
    limit = math.tan(math.radians(MAX_TORSO_PITCH_DEG)) * math.sqrt(up_x * up_x + up_y * up_y)
    return (up_x, up_y, max(-limit, min(limit, -along / across[2])))


def _limit_bend(upper: Vec3, lower: Vec3) -> Vec3:
    """The lower bone's direction with its bend from the upper bone's line clamped to MAX_BEND_DEG."""
    u, v = _unit(upper), _unit(lower)
    angle = math.acos(max(-1.0, min(1.0, _dot(u, v))))
    limit = math.radians(MAX_BEND_DEG)
    if angle <= limit:
        return v
    axis = _cross(u, v)
    if _norm(axis) < 1e-9:
        axis = _cross(u, (0.0, 0.0, 1.0))
    return _qrot(_qaxis(axis, limit), u)
