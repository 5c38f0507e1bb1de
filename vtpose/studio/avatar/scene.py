"""Scenes: avatars placed on a prepared background (or over the original photo) at a natural size and place."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vtpose.errors import VtposeError
from vtpose.pose import PersonPose, load_image
from vtpose.studio.avatar.draw import draw_avatar
from vtpose.studio.avatar.rig import Rig, complete_pose, settle_head
from vtpose.studio.avatar.spec import ASSETS_DIR, DEFAULT_AVATAR, AvatarSpec, list_avatars, load_avatar

BACKGROUNDS_DIR = ASSETS_DIR / "backgrounds"
BACKGROUND_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_BACKGROUND = "studio"
# Where the feet of a whole-body avatar stand, as a fraction of the scene's height; the prepared backgrounds
# draw their floor so that this line lies on it.
FLOOR_FRACTION = 0.9
# Free space kept above the highest point of the avatars (head, ears, a raised hand), fraction of the height.
TOP_MARGIN_FRACTION = 0.06
# Largest share of the scene's width the group of avatars may take.
MAX_WIDTH_FRACTION = 0.9
# A lone standing person is drawn at most this share of the scene's height (a figure filling the whole height
# looks cramped against the top).
MAX_FULL_BODY_HEIGHT_FRACTION = 0.8
# An upper-body avatar is cut just below the hips: the pelvis sits this many body units below the bottom edge.
UPPER_BODY_HIP_DROP = 0.05
PERSON_CHOICES = ("all", "largest")
# Tracks whose avatar `TrackAvatars` remembers, so a long live session's memory stays flat.
MAX_REMEMBERED_TRACKS = 256


def background_files() -> dict[str, Path]:
    """The prepared backgrounds: name (file stem) -> file."""
    return {p.stem: p for p in sorted(BACKGROUNDS_DIR.iterdir()) if p.suffix.lower() in BACKGROUND_SUFFIXES}


def load_background(name_or_path: str | Path | None = None) -> np.ndarray:
    """A prepared background by name, or any image by path, as BGR (H, W, 3) uint8.

    Raises:
        VtposeError: neither a prepared background nor a readable image.
    """
    files = background_files()
    key = str(name_or_path) if name_or_path is not None else DEFAULT_BACKGROUND
    if key in files:
        return load_image(files[key])
    path = Path(key)
    if not path.exists():
        raise VtposeError(f"{key}: no such background; pass an image file or one of: {', '.join(files)}.")
    return load_image(path)


def avatar_for(index: int, chosen: AvatarSpec | None, prepared: Sequence[AvatarSpec]) -> AvatarSpec:
    """The avatar of the index-th person (or track): the chosen one for all, else the prepared ones in turn.

    The default avatar comes first, so a lone person gets it.
    """
    if chosen is not None:
        return chosen
    ordered = sorted(prepared, key=lambda a: a.name != DEFAULT_AVATAR)
    return ordered[index % len(ordered)]


def head_radius(avatar: AvatarSpec) -> float:
    """The avatar's head radius in body units (0.3 for an avatar without a head part)."""
    head = avatar.head
    return head.width if head is not None else 0.3


def fit_to_scene(rigs: Sequence[Rig], head_radii: Sequence[float], width: int, height: int) -> list[Rig]:
    """Scale and move a group of rigs (keeping their layout) to stand naturally in a width x height scene.

    Whole bodies stand with their lowest foot on the floor line (FLOOR_FRACTION of the height); an upper-body
    group is framed like a webcam shot, cut just below the hips. The group is centred horizontally.

    Args:
        rigs: completed poses in the source image's pixels.
        head_radii: each rig's avatar head radius, body units.
        width, height: the scene's size, pixels.

    Returns:
        The rigs in scene pixels.
    """
    if not rigs:
        return []
    boxes = np.array([r.extent(h) for r, h in zip(rigs, head_radii, strict=True)])
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1 = boxes[:, 2].max()
    full = any(r.full_body for r in rigs)
    top = TOP_MARGIN_FRACTION * height
    if full:
        bottom_src = boxes[:, 3].max()
        bottom = FLOOR_FRACTION * height
        scale = min(
            (bottom - top) / max(bottom_src - y0, 1.0),
            MAX_FULL_BODY_HEIGHT_FRACTION * height / max(bottom_src - y0, 1.0),
        )
    else:
        # The lowest pelvis goes just below the bottom edge.
        pelvis_y = max(float(r.points["pelvis"][1] + UPPER_BODY_HIP_DROP * r.unit) for r in rigs)
        bottom_src, bottom = pelvis_y, float(height)
        scale = (bottom - top) / max(bottom_src - y0, 1.0)
    scale = min(scale, MAX_WIDTH_FRACTION * width / max(x1 - x0, 1.0))
    offset = np.array([width / 2 - scale * (x0 + x1) / 2, bottom - scale * bottom_src])
    return [r.transformed(scale, offset) for r in rigs]


def select_persons(persons: Sequence[PersonPose], which: str) -> list[PersonPose]:
    """All persons, or only the largest (by box area)."""
    if which not in PERSON_CHOICES:
        raise ValueError(f"person={which!r} must be one of {PERSON_CHOICES}")
    if which == "largest" and persons:
        return [max(persons, key=lambda p: p.area)]
    return list(persons)


def draw_rigs(canvas: np.ndarray, rigs: Sequence[Rig], avatars: Sequence[AvatarSpec]) -> np.ndarray:
    """Draw rigs with their avatars on the canvas in place, the person furthest back (highest feet) first."""
    order = sorted(range(len(rigs)), key=lambda i: float(rigs[i].points["pelvis"][1]))
    for i in order:
        draw_avatar(canvas, rigs[i], avatars[i])
    return canvas


def render_scene(
    image: np.ndarray,
    persons: Sequence[PersonPose],
    avatar: str | Path | None = None,
    background: str | Path | np.ndarray | None = None,
    on_original: bool = False,
    source_name: str = "the photo",
) -> np.ndarray:
    """The persons' poses drawn as avatars: on a background, or over the original photo.

    Args:
        image: the source photo, BGR (H, W, 3) uint8.
        persons: poses in the photo's pixels.
        avatar: an avatar name or YAML path for everyone; None gives each person a prepared avatar in turn.
        background: a prepared background's name, an image path or a BGR array; None for the default.
            Ignored with `on_original`.
        on_original: draw each avatar over its person in the photo, at the person's size.
        source_name: how error messages name the photo (its path).

    Returns:
        BGR uint8: the background's size, or the photo's with `on_original`.

    Raises:
        VtposeError: no person can be placed (nobody found, or too little of them visible).
    """
    chosen = load_avatar(avatar) if avatar is not None else None
    prepared = list_avatars() if chosen is None else []
    rigs, kept = _settled_rigs(persons, [avatar_for(i, chosen, prepared) for i in range(len(persons))])
    if not rigs:
        raise VtposeError(
            f"{source_name}: no person with visible shoulders found; use a photo showing a person's upper body."
        )
    if on_original:
        return draw_rigs(image.copy(), rigs, kept)
    canvas = background.copy() if isinstance(background, np.ndarray) else load_background(background)
    height, width = canvas.shape[:2]
    placed = fit_to_scene(rigs, [head_radius(a) for a in kept], width, height)
    return draw_rigs(canvas, placed, kept)


class TrackAvatars:
    """Which avatar each track wears: the chosen one for everyone, or the prepared ones handed out by track.

    A new track gets the prepared avatar least used by the tracks in view, so people side by side look different,
    and keeps it for as long as the track lives. `vtpose animate` and the live studio share this rule.

    Args:
        chosen: one avatar for everyone, or None.
        prepared: the avatars handed out in turn when `chosen` is None (the default one first).
    """

    def __init__(self, chosen: AvatarSpec | None, prepared: Sequence[AvatarSpec]) -> None:
        if chosen is None and not prepared:
            raise ValueError("TrackAvatars needs a chosen avatar or at least one prepared one")
        self.chosen = chosen
        self.ordered = sorted(prepared, key=lambda a: a.name != DEFAULT_AVATAR)
        self._track_avatar: dict[int, int] = {}  # track id -> index into self.ordered
        self._in_view: set[int] = set()

    def frame(self, persons: Sequence[PersonPose]) -> list[AvatarSpec]:
        """The avatar of each of one frame's tracked persons, in order; remembers who is in view."""
        ids = {p.track_id for p in persons if p.track_id is not None}
        self._in_view |= ids
        specs = [self._avatar_of(p.track_id) for p in persons]
        self._in_view = ids
        if len(self._track_avatar) > MAX_REMEMBERED_TRACKS:
            # Track ids only grow: the oldest ended long ago (the tracker forgets a track in MAX_TRACK_AGE frames).
            keep = sorted(self._track_avatar)[-MAX_REMEMBERED_TRACKS // 2 :]
            self._track_avatar = {t: self._track_avatar[t] for t in keep}
        return specs

    def _avatar_of(self, track_id: int | None) -> AvatarSpec:
        if self.chosen is not None:
            return self.chosen
        if track_id is None:
            return self.ordered[0]
        if track_id not in self._track_avatar:
            in_use = [self._track_avatar[t] for t in self._in_view if t in self._track_avatar]
            self._track_avatar[track_id] = min(range(len(self.ordered)), key=lambda i: (in_use.count(i), i))
        return self.ordered[self._track_avatar[track_id]]


def posed_rigs(persons: Sequence[PersonPose], avatars: TrackAvatars) -> tuple[list[Rig], list[AvatarSpec]]:
    """One frame's tracked persons as rigs (head settled for their avatar) and the avatar each wears.

    Persons too hidden to place (no shoulder) are left out of both lists.
    """
    return _settled_rigs(persons, avatars.frame(persons))


def _settled_rigs(persons: Sequence[PersonPose], avatars: Sequence[AvatarSpec]) -> tuple[list[Rig], list[AvatarSpec]]:
    rigs, specs = [], []
    for person, spec in zip(persons, avatars, strict=True):
        rig = complete_pose(person.keypoints, track_id=person.track_id)
        if rig is None:
            continue
        settle_head(rig, head_radius(spec))
        rigs.append(rig)
        specs.append(spec)
    return rigs, specs


class FrameRenderer:
    """Draws each video frame's tracked persons as avatars where they are, on a background of the frame's size.

    Each track keeps its avatar for the whole video (the chosen one, or the prepared ones in turn by track id).

    Args:
        frame_size: (width, height) of the source frames, pixels.
        avatar: avatar name or YAML path for everyone, or None to give tracks prepared avatars in turn.
        background: prepared background name, image path, or None for the default; resized to the frame.
        side_by_side: put the source frame on the left of the avatar frame (output twice as wide).
    """

    def __init__(
        self,
        frame_size: tuple[int, int],
        avatar: str | Path | None = None,
        background: str | Path | None = None,
        side_by_side: bool = False,
    ) -> None:
        self.width, self.height = frame_size
        self.chosen = load_avatar(avatar) if avatar is not None else None
        self.prepared = list_avatars() if self.chosen is None else []
        bg = load_background(background)
        self.background = cv2.resize(bg, (self.width, self.height), interpolation=cv2.INTER_AREA)
        self.side_by_side = side_by_side
        self.avatars = TrackAvatars(self.chosen, self.prepared)

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the rendered frames, pixels."""
        return (self.width * 2 if self.side_by_side else self.width, self.height)

    def render(self, frame: np.ndarray, persons: Sequence[PersonPose]) -> np.ndarray:
        """One output frame (BGR uint8, `output_size`) for a source frame and its tracked, smoothed persons."""
        canvas = self.background.copy()
        rigs, avatars = posed_rigs(persons, self.avatars)
        draw_rigs(canvas, rigs, avatars)
        if self.side_by_side:
            return np.concatenate([frame, canvas], axis=1)
        return canvas
