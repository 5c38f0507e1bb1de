"""Avatar definitions: YAML files under vtpose/studio/avatar/assets/avatars/, one per avatar, loaded and validated here.

An avatar is a list of parts drawn in file order (first = furthest back). Each part names the joints it hangs
between (COCO keypoint names from `vtpose.keypoints`, or the derived `neck`, `pelvis`, `head`), a shape and its
colours. Sizes are fractions of the body unit (the person's shoulder width), so an avatar fits any person.
docs/studio.md documents the format for users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vtpose.errors import VtposeError
from vtpose.keypoints import KEYPOINT_NAMES

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
AVATARS_DIR = ASSETS_DIR / "avatars"
AVATAR_SUFFIXES = (".yaml", ".yml")
DEFAULT_AVATAR = "kitty"

# Joints computed from the keypoints rather than detected: shoulder midpoint, hip midpoint, head centre.
DERIVED_JOINTS = ("neck", "pelvis", "head")
JOINT_NAMES = (*KEYPOINT_NAMES, *DERIVED_JOINTS)
# Parts touching these joints belong to the legs, hidden when only the upper body is in view.
LEG_JOINTS = frozenset({"left_knee", "right_knee", "left_ankle", "right_ankle"})

# shape -> how many joints it takes (None: three or more)
SHAPES: dict[str, int | None] = {"limb": 2, "polygon": None, "circle": 1, "head": 1}
HEAD_STYLES = ("round", "box")
EAR_STYLES = ("none", "cat", "bear", "antenna", "bunny")
FACE_STYLES = ("cute", "cat", "robot", "sketch")

Color = tuple[int, int, int]  # BGR, 0-255


def parse_color(value: Any, where: str) -> Color | None:
    """'#rrggbb' (or null for none) as an OpenCV BGR triple."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 7 and value.startswith("#"):
        try:
            r, g, b = (int(value[i : i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            pass
        else:
            return (b, g, r)
    raise VtposeError(f"{where}: colour {value!r} is not '#rrggbb' or null; write it like '#ff8c42'.")


@dataclass(frozen=True)
class FaceSpec:
    """Face drawn on a head part: features in fractions of the head radius."""

    style: str = "cute"
    eye_color: Color | None = (40, 30, 30)
    eye_size: float = 0.16
    mouth_color: Color | None = (40, 30, 30)
    blush_color: Color | None = None
    detail_color: Color | None = None  # whiskers, visor glow, nose...


@dataclass(frozen=True)
class PartSpec:
    """One drawn part of an avatar.

    Attributes:
        name: a label for messages.
        shape: "limb" (capsule between 2 joints), "polygon" (through 3+ joints), "circle" (at a joint),
            "head" (at the derived `head` joint, with a face).
        joints: joint names from `JOINT_NAMES`.
        width: limb width at the first joint, or circle/head radius, or polygon rounding; fraction of the unit.
        width_end: limb width at the second joint (tapering), fraction of the unit; defaults to `width`.
        fill: BGR fill colour, or None for outline only.
        outline: BGR outline colour, or None.
        outline_width: outline thickness, fraction of the unit.
        head_style, ears, ear_color, hair_color, face: head parts only.
    """

    name: str
    shape: str
    joints: tuple[str, ...]
    width: float
    width_end: float
    fill: Color | None
    outline: Color | None
    outline_width: float
    head_style: str = "round"
    ears: str = "none"
    ear_color: Color | None = None
    hair_color: Color | None = None
    face: FaceSpec = field(default_factory=FaceSpec)

    @property
    def is_leg(self) -> bool:
        """True when the part hangs on a knee or ankle (hidden for upper-body poses)."""
        return any(j in LEG_JOINTS for j in self.joints)


@dataclass(frozen=True)
class AvatarSpec:
    """A whole avatar: its name, a one-line description and its parts in draw order (back to front)."""

    name: str
    description: str
    parts: tuple[PartSpec, ...]
    path: Path

    @property
    def head(self) -> PartSpec | None:
        """The head part, if the avatar has one (its size decides how much room the head needs)."""
        return next((p for p in self.parts if p.shape == "head"), None)


def _number(raw: dict[str, Any], key: str, default: float, where: str, low: float = 0.0, high: float = 5.0) -> float:
    value = raw.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise VtposeError(
            f"{where}: {key}={value!r} must be a number in [{low}, {high}] (a fraction of the body unit)."
        )
    return float(value)


def _choice(raw: dict[str, Any], key: str, default: str, allowed: tuple[str, ...], where: str) -> str:
    value = raw.get(key, default)
    if value not in allowed:
        raise VtposeError(f"{where}: {key}={value!r} is not one of {', '.join(allowed)}.")
    return str(value)


def _parse_part(raw: Any, index: int, defaults: dict[str, Any], source: Path) -> PartSpec:
    where = f"{source} part {index + 1}"
    if not isinstance(raw, dict):
        raise VtposeError(f"{where}: each part must be a mapping with name, shape, joints; got {raw!r}.")
    name = str(raw.get("name", f"part{index + 1}"))
    where = f"{source} part {name!r}"
    shape = _choice(raw, "shape", "limb", tuple(SHAPES), where)
    joints = raw.get("joints", ["head"] if shape == "head" else None)
    if isinstance(joints, str):
        joints = [joints]
    if not isinstance(joints, list) or not all(isinstance(j, str) for j in joints):
        raise VtposeError(f"{where}: joints must be a list of joint names, e.g. [left_shoulder, left_elbow].")
    unknown = [j for j in joints if j not in JOINT_NAMES]
    if unknown:
        raise VtposeError(f"{where}: unknown joint(s) {unknown}; use names from: {', '.join(JOINT_NAMES)}.")
    wanted = SHAPES[shape]
    if (wanted is not None and len(joints) != wanted) or (wanted is None and len(joints) < 3):
        need = wanted if wanted is not None else "3 or more"
        raise VtposeError(f"{where}: a {shape} takes {need} joint(s), got {len(joints)}.")
    width = _number(raw, "width", 0.2, where)
    face_raw = raw.get("face", {}) or {}
    if not isinstance(face_raw, dict):
        raise VtposeError(f"{where}: face must be a mapping (style, eye_color, ...).")
    face = FaceSpec(
        style=_choice(face_raw, "style", "cute", FACE_STYLES, f"{where} face"),
        eye_color=parse_color(face_raw.get("eye_color", "#1e1e28"), f"{where} face"),
        eye_size=_number(face_raw, "eye_size", 0.16, f"{where} face", 0.02, 0.5),
        mouth_color=parse_color(face_raw.get("mouth_color", "#1e1e28"), f"{where} face"),
        blush_color=parse_color(face_raw.get("blush_color"), f"{where} face"),
        detail_color=parse_color(face_raw.get("detail_color"), f"{where} face"),
    )
    return PartSpec(
        name=name,
        shape=shape,
        joints=tuple(joints),
        width=width,
        width_end=_number(raw, "width_end", width, where),
        fill=parse_color(raw.get("fill", "#ffffff"), where),
        outline=parse_color(raw.get("outline", defaults.get("outline")), where),
        outline_width=_number(raw, "outline_width", defaults.get("outline_width", 0.03), where, 0.0, 0.5),
        head_style=_choice(raw, "head_style", "round", HEAD_STYLES, where),
        ears=_choice(raw, "ears", "none", EAR_STYLES, where),
        ear_color=parse_color(raw.get("ear_color", raw.get("fill")), where),
        hair_color=parse_color(raw.get("hair_color"), where),
        face=face,
    )


def load_avatar_file(path: str | Path) -> AvatarSpec:
    """Load and validate one avatar YAML file.

    Raises:
        VtposeError: the file is missing, not YAML, or a part is malformed (the message names the part).
    """
    path = Path(path)
    if not path.is_file():
        raise VtposeError(f"{path}: no such avatar file; run `vtpose avatars` to list the prepared ones.")
    return parse_avatar(path.read_text(encoding="utf-8"), path)


def parse_avatar(text: str, path: Path) -> AvatarSpec:
    """Validate an avatar definition given as YAML text (an uploaded file); `path` names it in messages.

    Raises:
        VtposeError: not YAML, or a part is malformed (the message names the part).
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise VtposeError(f"{path}: not valid YAML ({error}); fix the file's syntax.") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("parts"), list) or not raw["parts"]:
        raise VtposeError(f"{path}: an avatar file needs a non-empty `parts:` list; see docs/studio.md.")
    defaults = {
        "outline": raw.get("outline"),
        "outline_width": _number(raw, "outline_width", 0.03, str(path), 0.0, 0.5),
    }
    parts = tuple(_parse_part(p, i, defaults, path) for i, p in enumerate(raw["parts"]))
    if sum(p.shape == "head" for p in parts) > 1:
        raise VtposeError(f"{path}: more than one head part; an avatar has at most one.")
    return AvatarSpec(
        name=str(raw.get("name", path.stem)), description=str(raw.get("description", "")), parts=parts, path=path
    )


def avatar_files() -> dict[str, Path]:
    """The prepared avatars: name (file stem) -> file, sorted by name."""
    files = sorted(p for p in AVATARS_DIR.iterdir() if p.suffix in AVATAR_SUFFIXES)
    return {p.stem: p for p in files}


def list_avatars() -> list[AvatarSpec]:
    """Every prepared avatar, loaded (so a broken file shows up in `vtpose avatars`)."""
    return [load_avatar_file(p) for p in avatar_files().values()]


def load_avatar(name_or_path: str | Path) -> AvatarSpec:
    """A prepared avatar by name, or any avatar YAML file by path.

    Raises:
        VtposeError: neither a prepared avatar's name nor an existing file.
    """
    files = avatar_files()
    key = str(name_or_path)
    if key in files:
        return load_avatar_file(files[key])
    path = Path(name_or_path)
    if path.suffix in AVATAR_SUFFIXES or path.exists():
        return load_avatar_file(path)
    raise VtposeError(
        f"unknown avatar {key!r}; choose one of {', '.join(files)} or pass a path to an avatar YAML file."
    )
