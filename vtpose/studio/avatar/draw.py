"""Drawing an avatar on a rig: anti-aliased shapes with sub-pixel precision, outlines, heads and faces."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from vtpose.studio.avatar.rig import Rig
from vtpose.studio.avatar.spec import AvatarSpec, Color, FaceSpec, PartSpec

# OpenCV draws integer coordinates; with SHIFT fractional bits they are 1/16 pixel, so slow motion glides.
SHIFT = 4
_SCALE = 1 << SHIFT
# Points per full turn of a curve; enough that a head 300 px across shows no corners.
CURVE_POINTS = 64
WHITE: Color = (255, 255, 255)


def _fix(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _SCALE).astype(np.int32).reshape(-1, 1, 2)


def _px(value: float) -> int:
    """A thickness in whole pixels (OpenCV does not shift thickness), at least 1."""
    return max(1, round(value))


def _fill(canvas: np.ndarray, polygon: np.ndarray, color: Color) -> None:
    cv2.fillPoly(canvas, [_fix(polygon)], color, cv2.LINE_AA, SHIFT)


def _stroke(canvas: np.ndarray, polyline: np.ndarray, color: Color, width: float, closed: bool = False) -> None:
    cv2.polylines(canvas, [_fix(polyline)], closed, color, _px(width), cv2.LINE_AA, SHIFT)


def ellipse_polygon(
    center: np.ndarray, rx: float, ry: float, angle: float = 0.0, start: float = 0.0, end: float = 2 * math.pi
) -> np.ndarray:
    """Points on an ellipse arc.

    Args:
        center: (2,) pixels.
        rx, ry: semi-axes, pixels.
        angle: rotation of the ellipse, radians (clockwise on screen, as y points down).
        start, end: arc range, radians, in the ellipse's own frame (0 = +x, pi/2 = +y, i.e. down).

    Returns:
        (K, 2) float64 pixels.
    """
    n = max(8, int(CURVE_POINTS * abs(end - start) / (2 * math.pi)))
    t = np.linspace(start, end, n, endpoint=abs(end - start) < 2 * math.pi - 1e-9)
    local = np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1)
    c, s = math.cos(angle), math.sin(angle)
    return local @ np.array([[c, s], [-s, c]]) + center


def capsule_polygon(p: np.ndarray, q: np.ndarray, r1: float, r2: float) -> np.ndarray:
    """Outline of a capsule (two round ends joined by tangents) from p (radius r1) to q (radius r2), (K, 2)."""
    d = q - p
    angle = math.atan2(d[1], d[0])
    half = math.pi / 2
    around_q = ellipse_polygon(q, r2, r2, 0.0, angle - half, angle + half)
    around_p = ellipse_polygon(p, r1, r1, 0.0, angle + half, angle + 3 * half)
    return np.concatenate([around_q, around_p])


def _draw_outlined(canvas: np.ndarray, part: PartSpec, grow: Callable[[float], np.ndarray], unit: float) -> None:
    """Fill a shape with an outline: the shape grown by the outline width in the outline colour, then the shape.

    `grow(extra_px)` returns the shape's polygon grown by extra_px pixels. Drawing the outline as a larger fill
    (rather than a stroke) gives round joins and keeps the outline outside the part, like a sticker.
    """
    ow = part.outline_width * unit
    if part.fill is None:
        if part.outline is not None:
            _stroke(canvas, grow(0.0), part.outline, max(ow, 1.0), closed=True)
        return
    if part.outline is not None and ow > 0.3:
        _fill(canvas, grow(ow), part.outline)
    _fill(canvas, grow(0.0), part.fill)


def _draw_limb(canvas: np.ndarray, part: PartSpec, rig: Rig) -> None:
    p, q = (rig.points[j] for j in part.joints)
    r1, r2 = part.width * rig.unit / 2, part.width_end * rig.unit / 2
    if part.fill is None:
        # A line sketch: a stroke of the outline colour, `width` thick.
        if part.outline is not None:
            _stroke(canvas, np.array([p, q]), part.outline, max(2 * r1, 1.0))
        return
    _draw_outlined(canvas, part, lambda g: capsule_polygon(p, q, r1 + g, r2 + g), rig.unit)


def _draw_circle(canvas: np.ndarray, part: PartSpec, rig: Rig) -> None:
    c = rig.points[part.joints[0]]
    r = part.width * rig.unit
    _draw_outlined(canvas, part, lambda g: ellipse_polygon(c, r + g, r + g), rig.unit)


def _draw_polygon(canvas: np.ndarray, part: PartSpec, rig: Rig) -> None:
    pts = np.array([rig.points[j] for j in part.joints])
    rounding = part.width * rig.unit
    ow = part.outline_width * rig.unit

    def blob(color: Color, grow: float) -> None:
        # Filled polygon plus a thick stroke of its edge: the polygon inflated by (rounding + grow), with round
        # corners (OpenCV's thick lines have round caps and joins).
        _fill(canvas, pts, color)
        if rounding + grow >= 0.5:
            _stroke(canvas, pts, color, 2 * (rounding + grow), closed=True)

    if part.fill is None:
        if part.outline is not None:
            _stroke(canvas, pts, part.outline, max(ow, 1.0), closed=True)
        return
    if part.outline is not None and ow > 0.3:
        blob(part.outline, ow)
    blob(part.fill, 0.0)


class _HeadFrame:
    """Maps head-local coordinates (in head radii, x right, y down, before roll) to canvas pixels.

    Args:
        center: (2,) head centre, pixels.
        radius: head radius, pixels.
        roll: head tilt, radians.
        turn: face yaw in [-1, 1] (features shift right for positive).
    """

    def __init__(self, center: np.ndarray, radius: float, roll: float, turn: float) -> None:
        self.center, self.r, self.roll, self.turn = center, radius, roll, turn
        c, s = math.cos(roll), math.sin(roll)
        self._rot = np.array([[c, s], [-s, c]])

    def __call__(self, local: np.ndarray) -> np.ndarray:
        return np.asarray(local, dtype=np.float64).reshape(-1, 2) * self.r @ self._rot + self.center

    def ellipse(
        self, cx: float, cy: float, rx: float, ry: float, start: float = 0.0, end: float = 2 * math.pi
    ) -> np.ndarray:
        """An ellipse arc in head-local units, as (K, 2) canvas pixels."""
        local = ellipse_polygon(np.array([cx, cy]), rx, ry, 0.0, start, end)
        return self(local)


def _head_outline(frame: _HeadFrame, style: str, grow: float) -> np.ndarray:
    g = grow / frame.r
    if style == "box":
        # A rounded square: a superellipse keeps the corners soft at every size.
        t = np.linspace(0, 2 * math.pi, CURVE_POINTS, endpoint=False)
        c, s = np.cos(t), np.sin(t)
        power = 0.35
        x = np.sign(c) * np.abs(c) ** power * (0.95 + g)
        y = np.sign(s) * np.abs(s) ** power * (0.88 + g)
        return frame(np.stack([x, y], axis=1))
    return frame.ellipse(0.0, 0.0, 1.0 + g, 0.97 + g)


def _draw_ears(canvas: np.ndarray, part: PartSpec, frame: _HeadFrame, ow: float) -> None:
    color = part.ear_color or part.fill or WHITE
    outline = part.outline
    if part.ears == "cat":
        for sx in (-1.0, 1.0):
            outer = np.array([[0.38 * sx, -0.95], [0.98 * sx, -1.32], [0.92 * sx, -0.42]])
            inner = np.array([[0.50 * sx, -0.88], [0.90 * sx, -1.12], [0.86 * sx, -0.62]])
            if outline is not None:
                _fill(canvas, frame(outer), outline)
                _stroke(canvas, frame(outer), outline, 2 * ow, closed=True)
            _fill(canvas, frame(outer), color)
            _fill(canvas, frame(inner), part.face.blush_color or (180, 160, 255))
    elif part.ears == "bear":
        for sx in (-1.0, 1.0):
            if outline is not None:
                _fill(canvas, frame.ellipse(0.72 * sx, -0.72, 0.34 + ow / frame.r, 0.34 + ow / frame.r), outline)
            _fill(canvas, frame.ellipse(0.72 * sx, -0.72, 0.34, 0.34), color)
            _fill(canvas, frame.ellipse(0.72 * sx, -0.72, 0.18, 0.18), part.face.blush_color or (150, 170, 220))
    elif part.ears == "bunny":
        for sx in (-1.0, 1.0):
            if outline is not None:
                _fill(canvas, frame.ellipse(0.4 * sx, -1.35, 0.22 + ow / frame.r, 0.62 + ow / frame.r), outline)
            _fill(canvas, frame.ellipse(0.4 * sx, -1.35, 0.22, 0.62), color)
            _fill(canvas, frame.ellipse(0.4 * sx, -1.3, 0.1, 0.45), part.face.blush_color or (190, 170, 255))
    elif part.ears == "antenna":
        tip = frame(np.array([[0.0, -1.45]]))[0]
        base = frame(np.array([[0.0, -0.8]]))[0]
        _stroke(canvas, np.array([base, tip]), outline or color, max(2.5 * ow, 2.0))
        r = 0.14 * frame.r
        if outline is not None:
            _fill(canvas, ellipse_polygon(tip, r + ow, r + ow), outline)
        _fill(canvas, ellipse_polygon(tip, r, r), part.face.detail_color or color)
        for sx in (-1.0, 1.0):  # bolts at the sides
            _fill(canvas, frame.ellipse(1.0 * sx, 0.0, 0.14 + ow / frame.r, 0.3 + ow / frame.r), outline or color)
            _fill(canvas, frame.ellipse(1.0 * sx, 0.0, 0.12, 0.26), color)


def _draw_hair_back(canvas: np.ndarray, part: PartSpec, frame: _HeadFrame, ow: float) -> None:
    if part.hair_color is None:
        return
    # Long hair behind the head, falling to the shoulders.
    shape = frame(
        np.concatenate(
            [
                ellipse_polygon(np.array([0.0, 0.0]), 1.12, 1.08, 0.0, math.pi, 2 * math.pi),
                np.array([[1.16, 0.5], [1.2, 1.5], [0.9, 1.75], [-0.9, 1.75], [-1.2, 1.5], [-1.16, 0.5]]),
            ]
        )
    )
    if part.outline is not None:
        _stroke(canvas, shape, part.outline, 2 * ow, closed=True)
    _fill(canvas, shape, part.hair_color)


def _draw_hair_front(canvas: np.ndarray, part: PartSpec, frame: _HeadFrame, ow: float) -> None:
    if part.hair_color is None:
        return
    # A cap over the top of the head with a scalloped fringe; the parting follows the face's turn.
    cap = ellipse_polygon(np.array([0.0, 0.0]), 1.05, 1.02, 0.0, math.pi * 1.06, math.pi * 1.94)
    shift = 0.25 * frame.turn
    fringe = np.array(
        [
            [0.98, -0.1],
            [0.7, -0.35],
            [0.45 + shift, -0.2],
            [0.2 + shift, -0.42],
            [-0.1 + shift, -0.25],
            [-0.45, -0.4],
            [-0.98, -0.1],
        ]
    )
    shape = frame(np.concatenate([cap, fringe]))
    if part.outline is not None:
        _stroke(canvas, shape, part.outline, ow, closed=True)
    _fill(canvas, shape, part.hair_color)


def _draw_face(canvas: np.ndarray, face: FaceSpec, frame: _HeadFrame, turn: float, ow: float) -> None:
    dx = 0.3 * turn  # the features slide toward the side the face is turned to
    es = face.eye_size
    eye_y = 0.12
    line = max(ow * 0.8, 1.5)
    if face.style == "robot":
        visor = face.detail_color or (60, 40, 30)
        _fill(canvas, frame.ellipse(dx * 0.6, 0.05, 0.72, 0.36), visor)
        for sx in (-1.0, 1.0):
            glow = frame.ellipse(dx + 0.32 * sx, eye_y - 0.05, es * 1.3, es * 0.8)
            _fill(canvas, glow, face.eye_color or WHITE)
        if face.mouth_color is not None:
            for i in (-1, 0, 1):
                x = dx + 0.16 * i
                _stroke(canvas, frame(np.array([[x, 0.55], [x, 0.72]])), face.mouth_color, line)
        return
    if face.style == "sketch":
        for sx in (-1.0, 1.0):
            _fill(canvas, frame.ellipse(dx + 0.35 * sx, eye_y - 0.05, es * 0.6, es * 0.6), face.eye_color or (0, 0, 0))
        if face.mouth_color is not None:
            _stroke(canvas, frame.ellipse(dx, 0.3, 0.3, 0.22, 0.2 * math.pi, 0.8 * math.pi), face.mouth_color, line)
        return
    # cute and cat: big shiny eyes, blush, a small smile (or a cat's ":3" with nose and whiskers).
    if face.blush_color is not None:
        for sx in (-1.0, 1.0):
            _fill(canvas, frame.ellipse(dx + 0.56 * sx, 0.4, 0.16, 0.09), face.blush_color)
    for sx in (-1.0, 1.0):
        cx = dx + 0.36 * sx
        _fill(canvas, frame.ellipse(cx, eye_y, es, es * 1.3), face.eye_color or (0, 0, 0))
        _fill(canvas, frame.ellipse(cx + es * 0.35, eye_y - es * 0.45, es * 0.38, es * 0.38), WHITE)
        _fill(canvas, frame.ellipse(cx - es * 0.3, eye_y + es * 0.55, es * 0.18, es * 0.18), WHITE)
    if face.mouth_color is None:
        return
    if face.style == "cat":
        nose = frame(np.array([[dx - 0.07, 0.34], [dx + 0.07, 0.34], [dx, 0.42]]))
        _fill(canvas, nose, face.detail_color or (120, 110, 230))
        for sx in (-1.0, 1.0):
            arc = frame.ellipse(dx + 0.085 * sx, 0.44, 0.085, 0.08, 0.05 * math.pi, 0.95 * math.pi)
            _stroke(canvas, arc, face.mouth_color, line)
            for k, dy in enumerate((-0.06, 0.06)):
                start = np.array([dx + 0.5 * sx, 0.38 + dy])
                end = np.array([dx + (0.95 + 0.05 * k) * sx, 0.32 + dy * 2.2])
                _stroke(canvas, frame(np.array([start, end])), face.detail_color or face.mouth_color, line * 0.8)
    else:
        _stroke(canvas, frame.ellipse(dx, 0.36, 0.16, 0.12, 0.15 * math.pi, 0.85 * math.pi), face.mouth_color, line)


def _draw_head(canvas: np.ndarray, part: PartSpec, rig: Rig) -> None:
    r = part.width * rig.unit
    frame = _HeadFrame(rig.points[part.joints[0]], r, rig.head_roll, rig.face_turn)
    ow = part.outline_width * rig.unit
    _draw_ears(canvas, part, frame, ow)
    _draw_outlined(canvas, part, lambda g: _head_outline(frame, part.head_style, g), rig.unit)
    _draw_hair_front(canvas, part, frame, ow)
    _draw_face(canvas, part.face, frame, rig.face_turn, ow)


_DRAWERS = {"limb": _draw_limb, "circle": _draw_circle, "polygon": _draw_polygon, "head": _draw_head}


def draw_avatar(canvas: np.ndarray, rig: Rig, avatar: AvatarSpec) -> np.ndarray:
    """Draw one avatar posed by `rig` in place on a BGR canvas and return the canvas.

    Args:
        canvas: (H, W, 3) uint8 BGR, modified in place.
        rig: the completed pose, in the canvas's pixel coordinates.
        avatar: the avatar's parts, drawn in order; leg parts are skipped unless `rig.full_body`.
    """
    head = avatar.head
    if head is not None and head.hair_color is not None:
        # Long hair hangs behind everything else, whatever the head's place in the draw order.
        r = head.width * rig.unit
        frame = _HeadFrame(rig.points[head.joints[0]], r, rig.head_roll, rig.face_turn)
        _draw_hair_back(canvas, head, frame, head.outline_width * rig.unit)
    for part in avatar.parts:
        if part.is_leg and not rig.full_body:
            continue
        _DRAWERS[part.shape](canvas, part, rig)
    return canvas
