"""Closed triangle meshes for the generated avatars: spheres, ellipsoids, tapered capsules, cones, rounded boxes.

Every shape is a surface of revolution (a profile turned around an axis) or a deformed sphere, with smooth normals
from its faces and faces wound counter-clockwise seen from outside (glTF's front faces). Sizes are in any one unit;
the generator works in body units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Shape:
    """One closed mesh.

    Attributes:
        positions: (N, 3) float64.
        faces: (M, 3) int64 vertex indices, counter-clockwise seen from outside.
        targets: morph target name -> (N, 3) float64 displacements (the face's eyes and mouth have them).
    """

    positions: np.ndarray
    faces: np.ndarray
    targets: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def normals(self) -> np.ndarray:
        """(N, 3) unit vertex normals: the area-weighted mean of the faces around each vertex."""
        p, f = self.positions, self.faces
        face_normals = np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]])
        normals = np.zeros_like(p)
        for corner in range(3):
            np.add.at(normals, f[:, corner], face_normals)
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        return normals / np.maximum(length, 1e-12)


def _basis(axis: np.ndarray) -> np.ndarray:
    """(3, 3) rotation whose third column is `axis` (unit), the first two any perpendicular pair."""
    z = axis / np.linalg.norm(axis)
    helper = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def revolve(profile: list[tuple[float, float]], origin: np.ndarray, axis: np.ndarray, segments: int) -> Shape:
    """A profile of (height along the axis, radius) points turned around `axis` through `origin`.

    The first and last points must have radius 0 (the poles), so the surface is closed.
    """
    if profile[0][1] != 0 or profile[-1][1] != 0:
        raise ValueError("a revolved profile starts and ends on the axis (radius 0)")
    rotation = _basis(np.asarray(axis, dtype=np.float64))
    angles = np.arange(segments) * (2 * math.pi / segments)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    points = [np.array([[0.0, 0.0, profile[0][0]]])]
    for height, radius in profile[1:-1]:
        points.append(np.column_stack([ring * radius, np.full(segments, height)]))
    points.append(np.array([[0.0, 0.0, profile[-1][0]]]))
    local = np.concatenate(points)
    faces: list[tuple[int, int, int]] = []
    rings = len(profile) - 2
    last = 1 + rings * segments
    for s in range(segments):  # the start pole's fan, then quads between rings, then the end pole's fan
        t = (s + 1) % segments
        faces.append((0, 1 + t, 1 + s))
        for r in range(rings - 1):
            a, b = 1 + r * segments + s, 1 + r * segments + t
            c, d = a + segments, b + segments
            faces.append((a, b, d))
            faces.append((a, d, c))
        a, b = 1 + (rings - 1) * segments + s, 1 + (rings - 1) * segments + t
        faces.append((a, b, last))
    shape = Shape(local @ rotation.T + np.asarray(origin, dtype=np.float64), np.array(faces, dtype=np.int64))
    return _outward(shape)


def _outward(shape: Shape) -> Shape:
    """Flip the winding if the faces point inward (the shapes are star-shaped about their centroid)."""
    p, f = shape.positions, shape.faces
    centre = p.mean(axis=0)
    face_normals = np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]])
    if float(np.sum(face_normals * (p[f].mean(axis=1) - centre))) < 0:
        shape.faces = f[:, ::-1].copy()
    return shape


def _arc(centre: float, radius: float, start: float, stop: float, steps: int) -> list[tuple[float, float]]:
    """Profile points on a circle of `radius` about height `centre`, angles (radians, 0 = equator) start to stop."""
    angles = np.linspace(start, stop, steps + 1)
    return [(centre + radius * math.sin(a), radius * math.cos(a)) for a in angles]


def ellipsoid(centre: np.ndarray, radii: tuple[float, float, float], segments: int, rings: int) -> Shape:
    """An axis-aligned ellipsoid (radii along x, y, z)."""
    profile = _arc(0.0, 1.0, -math.pi / 2, math.pi / 2, rings)
    profile[0], profile[-1] = (-1.0, 0.0), (1.0, 0.0)
    shape = revolve(profile, np.zeros(3), np.array([0.0, 1.0, 0.0]), segments)
    shape.positions = shape.positions * np.asarray(radii) + np.asarray(centre, dtype=np.float64)
    return shape


def rounded_box(centre: np.ndarray, radii: tuple[float, float, float], segments: int, rings: int) -> Shape:
    """A box with rounded edges: a sphere pushed out toward its bounding cube (superellipsoid, exponent 0.3)."""
    shape = ellipsoid(np.zeros(3), (1.0, 1.0, 1.0), segments, rings)
    p = shape.positions
    shape.positions = np.sign(p) * np.abs(p) ** 0.3 * np.asarray(radii) + np.asarray(centre, dtype=np.float64)
    return shape


def capsule(a: np.ndarray, b: np.ndarray, radius_a: float, radius_b: float, segments: int, rings: int) -> Shape:
    """A tapered capsule: hemispheres of `radius_a` at `a` and `radius_b` at `b`, joined along the axis a -> b."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    length = float(np.linalg.norm(b - a))
    half = max(rings // 2, 2)
    profile = _arc(0.0, radius_a, -math.pi / 2, 0.0, half) + _arc(length, radius_b, 0.0, math.pi / 2, half)[1:]
    profile[0], profile[-1] = (-radius_a, 0.0), (length + radius_b, 0.0)
    return revolve(profile, a, b - a, segments)


def cone(base: np.ndarray, tip: np.ndarray, radius: float, segments: int) -> Shape:
    """A closed cone from a disc of `radius` at `base` to a point at `tip`."""
    base = np.asarray(base, dtype=np.float64)
    height = float(np.linalg.norm(np.asarray(tip) - base))
    profile = [(0.0, 0.0), (0.0, radius), (0.5 * height, 0.5 * radius), (height, 0.0)]
    return revolve(profile, base, np.asarray(tip) - base, segments)


def frustum(top: np.ndarray, bottom: np.ndarray, radius_top: float, radius_bottom: float, segments: int) -> Shape:
    """A closed truncated cone (a skirt) from a disc of `radius_top` at `top` to one of `radius_bottom` at `bottom`."""
    top = np.asarray(top, dtype=np.float64)
    height = float(np.linalg.norm(np.asarray(bottom) - top))
    profile = [(0.0, 0.0), (0.0, radius_top), (0.5 * height, 0.5 * (radius_top + radius_bottom))]
    profile += [(height, radius_bottom), (height, 0.0)]
    return revolve(profile, top, np.asarray(bottom) - top, segments)
