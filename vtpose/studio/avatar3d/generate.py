"""VRM 1.0 humanoids generated from the project's own avatar definitions (the 2D YAML avatars).

The look comes from the avatar's YAML (its name, description, colours, head style, ears, hair and face), so each
avatar's look has one home; this module adds only what 3D needs: the parts' shapes in depth. Limbs become tapered
capsules and circles spheres, skinned rigidly to the humanoid bone they hang on (the torso blends hips -> spine ->
chest); the head carries a face whose eyes and mouth have morph targets, registered as VRM 1.0's `blink`,
`blinkLeft`, `blinkRight` and `aa` expressions. The rest pose is the T-pose of `vtpose.studio.avatar3d.skeleton`,
life-sized (body unit = METRES_PER_UNIT).

The bytes are reproducible: no timestamps, floats rounded before they are written, everything in a fixed order.
`python -m vtpose.studio.avatar3d.generate` (or `make vrms`) rewrites the checked-in files under
vtpose/studio/avatar/assets/vrm/.
"""

from __future__ import annotations

import argparse
import math
import os
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pygltflib

from vtpose.errors import VtposeError
from vtpose.studio.avatar.rig import HIP_WIDTH, THIGH, TORSO
from vtpose.studio.avatar.spec import ASSETS_DIR, AvatarSpec, Color, PartSpec, avatar_files, load_avatar
from vtpose.studio.avatar3d import shapes
from vtpose.studio.avatar3d.shapes import Shape
from vtpose.studio.avatar3d.skeleton import (
    FACE_RISE,
    GENERATED_BONES,
    METRES_PER_UNIT,
    PARENT,
    rest_joints,
    rest_keypoints,
)

VRM_DIR = ASSETS_DIR / "vrm"
VRM_SUFFIX = ".vrm"
EXPRESSIONS = ("blink", "blinkLeft", "blinkRight", "aa")
GENERATOR = "vtpose avatar3d generator"
AUTHOR = "vtpose"
# VRM 1.0 names its own licence document here; the avatars are the project's, under its licence (otherLicenseUrl).
VRM_LICENSE_URL = "https://vrm.dev/licenses/1.0/"
PROJECT_LICENSE_URL = "https://www.apache.org/licenses/LICENSE-2.0"
DIGITS = 6  # decimals kept in every float the JSON chunk holds
# Asks the studio's pages to light these matte, untextured materials per vertex (web/shading3d.js: the same look as
# per-pixel PBR at a fraction of software WebGL's cost); other glTF viewers draw them as the PBR they are.
SHADING_EXTRA = {"vtpose_shading": "vertex"}
# Base tessellation (detail 1): segments around a shape and rings along it. `detail` N multiplies both by sqrt(N),
# so the triangle count grows about N times. In software WebGL (SwiftShader: headless Chromium, a browser source on
# a machine without a GPU) a skinned avatar's drawing grows with its triangles: 10 x 6 (the kitty 3.1k triangles)
# drew four kitties in 11 ms where 14 x 8 (5.5k) took 20 ms, with smooth normals the capsules still look round.
SEGMENTS = 10
RINGS = 6

# The 2D parts' joint pairs -> the humanoid bone a limb between them hangs on.
LIMB_BONES: dict[frozenset[str], str] = {
    frozenset({"neck", "head"}): "neck",
    frozenset({"neck", "pelvis"}): "spine",
    frozenset({"left_shoulder", "right_shoulder"}): "chest",
    frozenset({"left_hip", "right_hip"}): "hips",
}
# A joint -> the bone that starts there (a circle at the joint turns with it).
JOINT_BONES: dict[str, str] = {"neck": "neck", "head": "head", "pelvis": "hips", "nose": "head"}
for _side in ("left", "right"):
    LIMB_BONES |= {
        frozenset({f"{_side}_shoulder", f"{_side}_elbow"}): f"{_side}UpperArm",
        frozenset({f"{_side}_elbow", f"{_side}_wrist"}): f"{_side}LowerArm",
        frozenset({f"{_side}_hip", f"{_side}_knee"}): f"{_side}UpperLeg",
        frozenset({f"{_side}_knee", f"{_side}_ankle"}): f"{_side}LowerLeg",
    }
    JOINT_BONES |= {
        f"{_side}_shoulder": f"{_side}UpperArm",
        f"{_side}_elbow": f"{_side}LowerArm",
        f"{_side}_wrist": f"{_side}Hand",
        f"{_side}_hip": f"{_side}UpperLeg",
        f"{_side}_knee": f"{_side}LowerLeg",
        f"{_side}_ankle": f"{_side}Foot",
        f"{_side}_eye": "head",
        f"{_side}_ear": "head",
    }
WHITE: Color = (255, 255, 255)
VISOR_DEPTH = 0.06  # how far a robot's visor stands out of its face, head radii (its eyes sit on it)


@dataclass
class Piece:
    """A shape with its colour and skin: (N, 4) joint indices into GENERATED_BONES and weights summing to 1."""

    shape: Shape
    color: Color
    joints: np.ndarray
    weights: np.ndarray
    glow: bool = False


def _rigid(shape: Shape, color: Color, bone: str, glow: bool = False) -> Piece:
    n = len(shape.positions)
    joints = np.zeros((n, 4), dtype=np.int64)
    joints[:, 0] = GENERATED_BONES.index(bone)
    weights = np.zeros((n, 4))
    weights[:, 0] = 1.0
    return Piece(shape, color, joints, weights, glow)


@dataclass
class Tessellation:
    """Segments around and rings along each shape, for a detail level."""

    segments: int
    rings: int

    @classmethod
    def for_detail(cls, detail: int) -> Tessellation:
        if not isinstance(detail, int) or detail < 1 or detail > 64:
            raise VtposeError(f"detail {detail!r} must be a whole number from 1 to 64 (1 is the light mesh).")
        factor = math.sqrt(detail)
        return cls(round(SEGMENTS * factor), 2 * round(RINGS * factor / 2))


@dataclass
class _Builder:
    """Collects the avatar's pieces: the body's (no morphs) and the face's (eyes and mouth, with morph targets)."""

    tess: Tessellation
    body: list[Piece] = field(default_factory=list)
    face: list[Piece] = field(default_factory=list)


def _fill(part: PartSpec) -> Color:
    """The part's colour in 3D: its fill, else its outline (the sketch's ink strokes), else white."""
    return part.fill or part.outline or WHITE


def _head_centre(points: dict[str, np.ndarray], radius: float) -> np.ndarray:
    # As the 2D rig's settle_head: a big cartoon head sits on the neck instead of swallowing the shoulders.
    rise = max(FACE_RISE, 0.85 * radius + 0.12)
    return points["neck"] + np.array([0.0, rise, 0.0])


def _torso(points: dict[str, np.ndarray], color: Color, tess: Tessellation) -> Piece:
    """The trunk: one revolved, flattened body from below the hips to over the shoulders, blended over three bones."""
    bones = rest_joints()
    hip_y, shoulder_y = float(points["pelvis"][1]), float(points["neck"][1])
    hip_half = HIP_WIDTH / 2 + 0.17
    profile = [
        (hip_y - 0.16, 0.0),
        (hip_y - 0.12, 0.6 * hip_half),
        (hip_y - 0.04, 0.95 * hip_half),
        (hip_y + 0.1, hip_half),
        (hip_y + 0.45 * TORSO, 0.42),
        (shoulder_y - 0.25, 0.5),
        (shoulder_y - 0.05, 0.56),
        (shoulder_y + 0.06, 0.5),
        (shoulder_y + 0.12, 0.3),
        (shoulder_y + 0.14, 0.0),
    ]
    shape = shapes.revolve(profile, np.zeros(3), np.array([0.0, 1.0, 0.0]), tess.segments)
    shape.positions[:, 2] *= 0.55  # a trunk is about half as deep as it is wide
    shape.positions[:, 0] += points["pelvis"][0]
    y = shape.positions[:, 1]
    spine_y, chest_y = float(bones["spine"][1]), float(bones["chest"][1])
    blend = 0.1
    to_spine = np.clip((y - (spine_y - blend)) / (2 * blend), 0.0, 1.0)
    to_chest = np.clip((y - (chest_y - blend)) / (2 * blend), 0.0, 1.0)
    n = len(y)
    joints = np.zeros((n, 4), dtype=np.int64)
    weights = np.zeros((n, 4))
    below = y < (spine_y + chest_y) / 2
    joints[:, 0] = np.where(below, GENERATED_BONES.index("hips"), GENERATED_BONES.index("spine"))
    joints[:, 1] = np.where(below, GENERATED_BONES.index("spine"), GENERATED_BONES.index("chest"))
    weights[:, 1] = np.where(below, to_spine, to_chest)
    weights[:, 0] = 1.0 - weights[:, 1]
    return Piece(shape, color, joints, weights)


def _limb(builder: _Builder, part: PartSpec, points: dict[str, np.ndarray]) -> None:
    a, b = part.joints
    bone = LIMB_BONES.get(frozenset(part.joints), JOINT_BONES.get(a, "chest"))
    start, end = points[a], points[b]
    if part.joints == ("neck", "head") or part.joints == ("head", "neck"):
        end = start + (end - start) * 0.8  # the neck ends inside the head, not at the face's centre
    shape = shapes.capsule(start, end, part.width / 2, part.width_end / 2, builder.tess.segments, builder.tess.rings)
    builder.body.append(_rigid(shape, _fill(part), bone))


def _circle(builder: _Builder, part: PartSpec, points: dict[str, np.ndarray]) -> None:
    (joint,) = part.joints
    bone = JOINT_BONES.get(joint, "chest")
    centre, r = points[joint], part.width
    tess = builder.tess
    if joint.endswith("_ankle"):  # a shoe: long toward the toes (+Z), its sole on the floor
        shape = shapes.ellipsoid(centre + np.array([0.0, -0.06, 0.1]), (r, 0.8 * r, 1.5 * r), tess.segments, tess.rings)
    elif joint.endswith("_wrist"):  # a hand: beyond the wrist, along the arm
        outward = 1.0 if joint.startswith("left") else -1.0
        shape = shapes.ellipsoid(centre + np.array([outward * 0.6 * r, 0.0, 0.0]), (r, 0.8 * r, 0.9 * r), *_t(tess))
    else:
        shape = shapes.ellipsoid(centre, (r, r, r), *_t(tess))
    builder.body.append(_rigid(shape, _fill(part), bone))


def _t(tess: Tessellation) -> tuple[int, int]:
    return tess.segments, tess.rings


def _polygon(builder: _Builder, part: PartSpec, points: dict[str, np.ndarray]) -> None:
    joints = set(part.joints)
    tess, color = builder.tess, _fill(part)
    if {"left_shoulder", "right_shoulder", "left_hip", "right_hip"} <= joints:
        builder.body.append(_torso(points, color, tess))
    elif {"left_hip", "right_hip"} <= joints and joints & {"left_knee", "right_knee"}:
        # A skirt: a bell from the waist to above the knees, turning with the hips.
        hip_y, half = float(points["pelvis"][1]), HIP_WIDTH / 2 + 0.19
        shape = shapes.frustum(
            points["pelvis"] + np.array([0.0, 0.14, 0.0]),
            points["pelvis"] + np.array([0.0, -0.6 * THIGH, 0.0]),
            half,
            1.55 * half,
            tess.segments,
        )
        shape.positions[:, 2] *= 0.75
        del hip_y
        builder.body.append(_rigid(shape, color, "hips"))
    elif "neck" in joints and {"left_shoulder", "right_shoulder"} <= joints:
        # A collar: a flat ring of cloth around the neck's base.
        shape = shapes.ellipsoid(points["neck"] + np.array([0.0, 0.02, 0.02]), (0.3, 0.05, 0.2), *_t(tess))
        builder.body.append(_rigid(shape, color, "chest"))
    else:
        centre = np.mean([points[j] for j in part.joints], axis=0)
        shape = shapes.ellipsoid(centre, (0.15, 0.15, 0.1), *_t(tess))
        builder.body.append(_rigid(shape, color, JOINT_BONES.get(part.joints[0], "chest")))


def _on_head(centre: np.ndarray, radius: float, box: bool, x: float, y: float) -> np.ndarray:
    """The point of the head's front surface at (x, y) head radii from its centre."""
    z = 1.0 if box else math.sqrt(max(1.0 - x * x - y * y, 0.05))
    return centre + radius * np.array([x, y, z])


def _squash_to(shape: Shape, centre_y: float, keep: float) -> np.ndarray:
    """Displacements that squash a shape vertically toward height `centre_y`, keeping `keep` of its height."""
    d = np.zeros_like(shape.positions)
    d[:, 1] = (centre_y - shape.positions[:, 1]) * (1.0 - keep)
    return d


def _head(builder: _Builder, part: PartSpec, points: dict[str, np.ndarray]) -> None:
    tess, r = builder.tess, part.width
    segments, rings = tess.segments * 2, tess.rings * 2  # the head is what people look at
    centre = _head_centre(points, r)
    box = part.head_style == "box"
    make = shapes.rounded_box if box else shapes.ellipsoid
    builder.body.append(_rigid(make(centre, (r, r, r), segments, rings), _fill(part), "head"))
    ear = part.ear_color or _fill(part)
    detail = part.face.detail_color
    if part.ears == "cat":
        for sign in (1.0, -1.0):
            direction = np.array([sign * math.sin(math.radians(38)), math.cos(math.radians(38)), 0.0])
            base = centre + direction * 0.8 * r
            builder.body.append(_rigid(shapes.cone(base, base + direction * 0.6 * r, 0.34 * r, segments), ear, "head"))
            if detail is not None:
                inner = base + np.array([0.0, 0.0, 0.12 * r])
                cone = shapes.cone(inner, inner + direction * 0.42 * r, 0.2 * r, segments)
                builder.body.append(_rigid(cone, detail, "head"))
    elif part.ears == "bear":
        for sign in (1.0, -1.0):
            direction = np.array([sign * math.sin(math.radians(42)), math.cos(math.radians(42)), 0.0])
            sphere = shapes.ellipsoid(centre + direction * 0.92 * r, (0.32 * r, 0.32 * r, 0.2 * r), segments, rings)
            builder.body.append(_rigid(sphere, ear, "head"))
    elif part.ears == "bunny":
        for sign in (1.0, -1.0):
            sphere = shapes.ellipsoid(
                centre + np.array([sign * 0.35 * r, 1.3 * r, 0.0]), (0.16 * r, 0.55 * r, 0.08 * r), segments, rings
            )
            builder.body.append(_rigid(sphere, ear, "head"))
    elif part.ears == "antenna":
        top = centre + np.array([0.0, 0.95 * r, 0.0])
        stick = shapes.capsule(top, top + np.array([0.0, 0.45 * r, 0.0]), 0.05 * r, 0.05 * r, segments, rings)
        builder.body.append(_rigid(stick, ear, "head"))
        ball = shapes.ellipsoid(top + np.array([0.0, 0.55 * r, 0.0]), (0.13 * r,) * 3, segments, rings)
        builder.body.append(_rigid(ball, part.face.eye_color or ear, "head", glow=part.face.style == "robot"))
    if part.hair_color is not None:
        cap = shapes.ellipsoid(
            centre + np.array([0.0, 0.08 * r, -0.1 * r]), (1.07 * r, 1.04 * r, 1.05 * r), segments, rings
        )
        long = shapes.ellipsoid(
            centre + np.array([0.0, -0.6 * r, -0.5 * r]), (0.98 * r, 1.15 * r, 0.45 * r), segments, rings
        )
        builder.body += [_rigid(cap, part.hair_color, "head"), _rigid(long, part.hair_color, "head")]
    _face(builder, part, centre, r, box)


def _face(builder: _Builder, part: PartSpec, centre: np.ndarray, r: float, box: bool) -> None:
    """Eyes, highlights and mouth (with morph targets) on the face mesh; blush, nose, whiskers, visor on the body."""
    face, segments, rings = part.face, builder.tess.segments, builder.tess.rings
    es = face.eye_size * r
    robot = face.style == "robot"
    eye_y = 0.08
    eye_x = 0.36
    eyes, highlights = [], []
    for sign in (1.0, -1.0):  # +1: the avatar's left eye (on +X)
        at = _on_head(centre, r, box, sign * eye_x, eye_y) + np.array([0.0, 0.0, VISOR_DEPTH * r * robot])
        radii = (1.5 * es, 0.6 * es, 0.3 * es) if robot else (es, 1.25 * es, 0.35 * es)
        eye = shapes.ellipsoid(at, radii, segments, rings)
        closed = _squash_to(eye, float(at[1]) - 0.3 * es * (not robot), 0.08)
        eye.targets = {"blink": closed, "blinkLeft" if sign > 0 else "blinkRight": closed}
        eyes.append(eye)
        if not robot and face.style != "sketch":
            glint = shapes.ellipsoid(at + np.array([0.3 * es, 0.45 * es, 0.3 * es]), (0.32 * es,) * 3, 8, 4)
            shut = _squash_to(glint, float(at[1]) - 0.3 * es, 0.0)
            shut[:, 1] -= 0.45 * es  # the glint hides behind the closed lid
            glint.targets = {"blink": shut, "blinkLeft" if sign > 0 else "blinkRight": shut}
            highlights.append(glint)
    if face.eye_color is not None:
        builder.face.append(_rigid(_merge(eyes), face.eye_color, "head", glow=robot))
    if highlights:
        builder.face.append(_rigid(_merge(highlights), WHITE, "head"))
    mouth_at = _on_head(centre, r, box, 0.0, -0.4)
    mouth_radii = (0.26 * r, 0.05 * r, 0.06 * r) if robot else (0.16 * r, 0.045 * r, 0.06 * r)
    mouth = shapes.ellipsoid(mouth_at, mouth_radii, segments, rings)
    opened = np.zeros_like(mouth.positions)
    opened[:, 1] = (mouth.positions[:, 1] - mouth_at[1]) * 3.0  # "aa": four times as tall
    opened[:, 0] = (mouth_at[0] - mouth.positions[:, 0]) * 0.2
    mouth.targets = {"aa": opened}
    if face.mouth_color is not None:
        builder.face.append(_rigid(mouth, face.mouth_color, "head"))
    if face.blush_color is not None:
        cheeks = [
            shapes.ellipsoid(_on_head(centre, r, box, s * 0.6, -0.2), (0.15 * r, 0.08 * r, 0.05 * r), segments, rings)
            for s in (1.0, -1.0)
        ]
        builder.body.append(_rigid(_merge(cheeks), face.blush_color, "head"))
    if face.detail_color is not None and face.style == "cat":
        nose = shapes.ellipsoid(_on_head(centre, r, box, 0.0, -0.18), (0.07 * r, 0.05 * r, 0.05 * r), segments, rings)
        whiskers = []
        for s in (1.0, -1.0):
            for dy in (-0.04, 0.04):
                start = _on_head(centre, r, box, s * 0.4, -0.25 + dy)
                whiskers.append(
                    shapes.capsule(start, start + r * np.array([s * 0.55, dy * 2, 0.05]), 0.012 * r, 0.008 * r, 6, 4)
                )
        builder.body.append(_rigid(_merge([nose, *whiskers]), face.detail_color, "head"))
    elif face.detail_color is not None and robot:
        visor = shapes.rounded_box(
            _on_head(centre, r, box, 0.0, eye_y), (0.72 * r, 0.26 * r, VISOR_DEPTH * r), segments, rings
        )
        builder.body.append(_rigid(visor, face.detail_color, "head"))


def _merge(parts: Sequence[Shape]) -> Shape:
    """Several shapes as one (their morph targets kept, zeros where a shape has none)."""
    offsets = np.cumsum([0] + [len(s.positions) for s in parts])
    names = [n for n in EXPRESSIONS if any(n in s.targets for s in parts)]
    merged = Shape(
        np.concatenate([s.positions for s in parts]),
        np.concatenate([s.faces + o for s, o in zip(parts, offsets, strict=False)]),
    )
    merged.targets = {n: np.concatenate([s.targets.get(n, np.zeros_like(s.positions)) for s in parts]) for n in names}
    return merged


def build_pieces(spec: AvatarSpec, detail: int = 1) -> tuple[list[Piece], list[Piece]]:
    """The avatar's body pieces and face pieces in body units, rest T-pose, from its parts in file order."""
    builder = _Builder(Tessellation.for_detail(detail))
    points = rest_keypoints()
    for part in spec.parts:
        if part.shape == "limb":
            _limb(builder, part, points)
        elif part.shape == "circle":
            _circle(builder, part, points)
        elif part.shape == "polygon":
            _polygon(builder, part, points)
        elif part.shape == "head":
            _head(builder, part, points)
    if not builder.face:
        raise VtposeError(
            f"{spec.path}: a 3D avatar needs a head part with a face (eyes and mouth) to blink and speak."
        )
    return builder.body, builder.face


# --- glTF writing ---------------------------------------------------------------------------------------------------


def _linear(color: Color) -> list[float]:
    """An sRGB BGR triple as glTF's linear RGBA base colour factor."""
    b, g, r = color

    def lin(c: int) -> float:
        s = c / 255.0
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    return [round(lin(r), DIGITS), round(lin(g), DIGITS), round(lin(b), DIGITS), 1.0]


def _f32(values: np.ndarray) -> np.ndarray:
    """float32, rounded first so the same geometry always gives the same bits."""
    return np.round(values, DIGITS).astype("<f4")


class _Blob:
    """The binary chunk and its buffer views and accessors, appended in order (each view 4-byte aligned)."""

    def __init__(self, gltf: pygltflib.GLTF2) -> None:
        self.gltf = gltf
        self.data = bytearray()

    def accessor(self, array: np.ndarray, kind: str, component: int, target: int | None, bounds: bool = False) -> int:
        raw = array.tobytes()
        self.gltf.bufferViews.append(
            pygltflib.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(raw), target=target)
        )
        self.data += raw + b"\0" * (-len(raw) % 4)
        accessor = pygltflib.Accessor(
            bufferView=len(self.gltf.bufferViews) - 1, componentType=component, count=len(array), type=kind
        )
        if bounds:
            accessor.min = [float(str(v)) for v in array.min(axis=0)]
            accessor.max = [float(str(v)) for v in array.max(axis=0)]
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1


def _material(
    key: tuple[Color | None, bool], materials: dict[tuple[Color | None, bool], int], gltf: pygltflib.GLTF2
) -> int:
    """The index of the material for `key`: (None, False) is the plain one, white, its colour from the vertices;
    (colour, True) a glowing one (glTF has no per-vertex emission)."""
    if key not in materials:
        color, glow = key
        base = _linear(color) if color is not None else [1.0, 1.0, 1.0, 1.0]
        pbr = pygltflib.PbrMetallicRoughness(baseColorFactor=base, metallicFactor=0.0, roughnessFactor=0.8)
        name = "vertex colours" if color is None else "#{:02x}{:02x}{:02x} glow".format(*color[::-1])
        material = pygltflib.Material(name=name, pbrMetallicRoughness=pbr, extras=dict(SHADING_EXTRA))
        if glow:
            material.emissiveFactor = base[:3]
        materials[key] = len(gltf.materials)
        gltf.materials.append(material)
    return materials[key]


def _primitives(
    pieces: Sequence[Piece],
    blob: _Blob,
    materials: dict[tuple[Color | None, bool], int],
    gltf: pygltflib.GLTF2,
    morphs: bool,
) -> list[pygltflib.Primitive]:
    """As few primitives as the materials allow: every plain piece in one, its colours per vertex (COLOR_0), and
    the glowing pieces one per colour. Each primitive is a draw call per avatar per frame (2 for the kitty, not 8):
    the usual cost on a GPU. (In SwiftShader it measured the same: there triangles and pixels are what cost.)"""
    groups: dict[tuple[Color | None, bool], list[Piece]] = {}
    for piece in pieces:
        groups.setdefault((piece.color, True) if piece.glow else (None, False), []).append(piece)
    primitives = []
    for key, group in groups.items():
        shape = _merge([p.shape for p in group])
        positions = shape.positions * METRES_PER_UNIT
        n = len(positions)
        indices = shape.faces.reshape(-1)
        index_type = pygltflib.UNSIGNED_SHORT if n < 65536 else pygltflib.UNSIGNED_INT
        attributes = pygltflib.Attributes(
            POSITION=blob.accessor(_f32(positions), pygltflib.VEC3, pygltflib.FLOAT, pygltflib.ARRAY_BUFFER, True),
            NORMAL=blob.accessor(_f32(shape.normals), pygltflib.VEC3, pygltflib.FLOAT, pygltflib.ARRAY_BUFFER),
            JOINTS_0=blob.accessor(
                np.concatenate([p.joints for p in group]).astype("u1"),
                pygltflib.VEC4,
                pygltflib.UNSIGNED_BYTE,
                pygltflib.ARRAY_BUFFER,
            ),
            WEIGHTS_0=blob.accessor(
                _f32(np.concatenate([p.weights for p in group])),
                pygltflib.VEC4,
                pygltflib.FLOAT,
                pygltflib.ARRAY_BUFFER,
            ),
        )
        if key[0] is None:
            colors = np.concatenate([np.tile(_linear(p.color)[:3], (len(p.shape.positions), 1)) for p in group])
            attributes.COLOR_0 = blob.accessor(_f32(colors), pygltflib.VEC3, pygltflib.FLOAT, pygltflib.ARRAY_BUFFER)
        targets = []
        if morphs:
            for name in EXPRESSIONS:
                shift = shape.targets.get(name, np.zeros_like(shape.positions)) * METRES_PER_UNIT
                accessor = blob.accessor(_f32(shift), pygltflib.VEC3, pygltflib.FLOAT, pygltflib.ARRAY_BUFFER, True)
                targets.append(pygltflib.Attributes(POSITION=accessor))
        index_dtype = "<u2" if index_type == pygltflib.UNSIGNED_SHORT else "<u4"
        primitives.append(
            pygltflib.Primitive(
                attributes=attributes,
                indices=blob.accessor(
                    indices.astype(index_dtype), pygltflib.SCALAR, index_type, pygltflib.ELEMENT_ARRAY_BUFFER
                ),
                material=_material(key, materials, gltf),
                targets=targets,
            )
        )
    return primitives


def vrm_bytes(spec: AvatarSpec, detail: int = 1) -> bytes:
    """The avatar as a VRM 1.0 file (glTF binary).

    Raises:
        VtposeError: `detail` out of range, or the avatar has no head with a face.
    """
    body, face = build_pieces(spec, detail)
    gltf = pygltflib.GLTF2(asset=pygltflib.Asset(generator=GENERATOR, version="2.0"))
    gltf.extensionsUsed = ["VRMC_vrm"]
    blob = _Blob(gltf)
    rest = rest_joints()
    # Bone nodes first, in GENERATED_BONES order, each translated from its parent (rounded, then summed, so the
    # inverse bind matrices match the nodes exactly).
    local: dict[str, np.ndarray] = {}
    world: dict[str, np.ndarray] = {}
    for bone in GENERATED_BONES:
        parent = PARENT[bone]
        offset = rest[bone] - (rest[parent] if parent else 0.0)
        local[bone] = np.round(offset * METRES_PER_UNIT, DIGITS)
        world[bone] = local[bone] + (world[parent] if parent else 0.0)
    for bone in GENERATED_BONES:
        children = [GENERATED_BONES.index(b) for b in GENERATED_BONES if PARENT[b] == bone]
        gltf.nodes.append(pygltflib.Node(name=bone, translation=[float(v) for v in local[bone]], children=children))
    inverse_bind = np.zeros((len(GENERATED_BONES), 16))
    for i, bone in enumerate(GENERATED_BONES):
        inverse_bind[i, [0, 5, 10, 15]] = 1.0
        inverse_bind[i, 12:15] = -world[bone]
    ibm = blob.accessor(_f32(inverse_bind), pygltflib.MAT4, pygltflib.FLOAT, None)
    gltf.skins.append(
        pygltflib.Skin(inverseBindMatrices=ibm, joints=list(range(len(GENERATED_BONES))), skeleton=0, name="humanoid")
    )
    materials: dict[tuple[Color | None, bool], int] = {}
    gltf.meshes.append(pygltflib.Mesh(name="body", primitives=_primitives(body, blob, materials, gltf, False)))
    face_mesh = pygltflib.Mesh(name="face", primitives=_primitives(face, blob, materials, gltf, True))
    face_mesh.weights = [0.0] * len(EXPRESSIONS)
    face_mesh.extras = {"targetNames": list(EXPRESSIONS)}
    gltf.meshes.append(face_mesh)
    body_node, face_node = len(gltf.nodes), len(gltf.nodes) + 1
    gltf.nodes.append(pygltflib.Node(name="body", mesh=0, skin=0))
    gltf.nodes.append(pygltflib.Node(name="face", mesh=1, skin=0))
    gltf.scenes.append(pygltflib.Scene(name=spec.name, nodes=[0, body_node, face_node]))
    gltf.scene = 0
    expressions = {
        name: {
            "morphTargetBinds": [{"node": face_node, "index": i, "weight": 1.0}],
            "isBinary": False,
            "overrideBlink": "none",
            "overrideLookAt": "none",
            "overrideMouth": "none",
        }
        for i, name in enumerate(EXPRESSIONS)
    }
    gltf.extensions = {
        "VRMC_vrm": {
            "specVersion": "1.0",
            "meta": {
                "name": spec.name,
                "version": "1",
                "authors": [AUTHOR],
                "copyrightInformation": f"{spec.description} Generated by vtpose from {spec.path.name}.",
                "licenseUrl": VRM_LICENSE_URL,
                "otherLicenseUrl": PROJECT_LICENSE_URL,
                "avatarPermission": "everyone",
                "commercialUsage": "corporation",
                "creditNotation": "unnecessary",
                "allowRedistribution": True,
                "modification": "allowModificationRedistribution",
                "allowExcessivelyViolentUsage": False,
                "allowExcessivelySexualUsage": False,
                "allowPoliticalOrReligiousUsage": False,
                "allowAntisocialOrHateUsage": False,
            },
            "humanoid": {"humanBones": {bone: {"node": i} for i, bone in enumerate(GENERATED_BONES)}},
            "expressions": {"preset": expressions},
        }
    }
    gltf.buffers.append(pygltflib.Buffer(byteLength=len(blob.data)))
    gltf.set_binary_blob(bytes(blob.data))
    data = b"".join(gltf.save_to_bytes())
    # glTF binary's header says the total length; a check against the struct keeps a pygltflib change from slipping by.
    if struct.unpack_from("<I", data, 8)[0] != len(data):
        raise VtposeError("generated VRM has a wrong length in its header; pygltflib's writer changed?")
    return data


def write_vrm(avatar_name: str | Path, path: str | Path, detail: int = 1) -> Path:
    """Write an avatar (a prepared name or a YAML path) as a VRM 1.0 file, atomically (temp file, then rename).

    Returns:
        The path written.

    Raises:
        VtposeError: unknown avatar, bad detail, or an avatar without a face.
    """
    spec = load_avatar(avatar_name)
    data = vrm_bytes(spec, detail)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep the checked-in files from others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def prepared_vrm_files() -> dict[str, Path]:
    """The checked-in generated VRMs: name (file stem) -> file."""
    if not VRM_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(VRM_DIR.iterdir()) if p.suffix == VRM_SUFFIX}


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m vtpose.studio.avatar3d.generate [--out DIR] [--detail N] [--avatar NAME ...]`."""
    parser = argparse.ArgumentParser(
        prog="python -m vtpose.studio.avatar3d.generate",
        description="Write the prepared 2D avatars as VRM 1.0 humanoids (reproducible bytes).",
    )
    parser.add_argument("--out", type=Path, default=VRM_DIR, help=f"output folder (default: {VRM_DIR})")
    parser.add_argument("--detail", type=int, default=1, help="tessellation level: triangles grow ~N times")
    parser.add_argument("--avatar", action="append", help="an avatar name or YAML path (default: every prepared one)")
    args = parser.parse_args(argv)
    names = args.avatar or list(avatar_files())
    for name in names:
        stem = Path(name).stem
        path = write_vrm(name, args.out / f"{stem}{VRM_SUFFIX}", args.detail)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
