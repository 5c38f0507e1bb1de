"""The studio's WebSocket protocol: message shapes, limits and validation, with no I/O.

Page -> server:
- binary `FRAME`: `FRAME_HEADER` (kind 1, frame id uint32, capture time float64 ms on the page's clock, little
  endian) then one JPEG or WebP image, already downscaled by the page (long side `live_imgsz()`).
- binary `BACKGROUND`: kind 2 then an image (PNG, JPEG or WebP) the output views show behind the avatars.
- binary `VRM`: kind 3 then a .vrm file (at most `MAX_VRM_BYTES`), checked by `check_vrm`, relayed to output views.
- text: JSON objects with a `type`: `settings` (see `Settings`), `avatar` (`{"name", "yaml"}`: a user avatar
  definition, validated like a file), `expr` (`{"blink", "mouth"}`, 0-1, relayed to output views) or `ping`.

Server -> page: JSON text `welcome`, `poses` (see `poses_message`), `settings`, `avatar`, `vrm`, `expr`, `pong` and
`error` (`{"type": "error", "code", "message"}`, plus `id` for a frame), and binary `BACKGROUND` and `VRM` relayed to
output views.
A connection that cannot go on is closed with one of the `CLOSE_*` codes and a one-line reason.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np

from vtpose.errors import RequestRejected, VtposeError
from vtpose.pose import PersonPose
from vtpose.serving import decoding
from vtpose.serving.decoding import ImagePolicy
from vtpose.studio.avatar.rig import Rig
from vtpose.studio.avatar.scene import PERSON_CHOICES
from vtpose.studio.avatar.spec import AvatarSpec, Color, PartSpec, parse_avatar
from vtpose.studio.avatar3d import vrm_file
from vtpose.studio.avatar3d.solver import Body3D
from vtpose.studio.avatar3d.vrm_file import VrmInfo, VrmRejected

FRAME = 1
BACKGROUND = 2
VRM = 3
FRAME_HEADER = struct.Struct("<BId")
# The model's input long side for live frames (VTPOSE_LIVE_IMGSZ overrides it). With one frame in flight the
# displayed fps is one over the round trip, and the model is most of it: 480 gives the model 0.56x the pixels of
# 640 (a 16:9 frame runs at 480x288, not 640x384). A streamer in front of a webcam is a large person, where 480
# loses nothing: pretrained yolo11n-pose on coco-person-mini val2017 has APl 0.560 at 480 against 0.553 at 640
# (AP over all sizes 0.448 against 0.492: small and medium persons lose).
ENV_LIVE_IMGSZ = "VTPOSE_LIVE_IMGSZ"
DEFAULT_LIVE_IMGSZ = 480
JPEG_QUALITY = 0.7  # the page's encoder setting (canvas.toBlob), 0-1
MAX_FRAME_BYTES = 1 << 20
MAX_FRAME_SIDE = 1920
MAX_BACKGROUND_BYTES = 4 << 20
MAX_BACKGROUND_SIDE = 4096
# Frames come from the page's canvas (no EXIF); a background is a user's file, turned as the browser shows it.
FRAME_IMAGES = ImagePolicy(MAX_FRAME_BYTES, max_side=MAX_FRAME_SIDE, formats=("JPEG", "WebP"), apply_exif=False)
BACKGROUND_IMAGES = ImagePolicy(MAX_BACKGROUND_BYTES, max_side=MAX_BACKGROUND_SIDE, formats=("JPEG", "PNG", "WebP"))
MAX_VRM_BYTES = vrm_file.MAX_VRM_BYTES
# The largest WebSocket message the server reads (`app.configure_websockets`; uvicorn's default is 16 MiB): a
# VRM just over its limit still arrives, to be answered `too_large`; anything larger closes the socket with 1009.
MAX_WEBSOCKET_MESSAGE_BYTES = MAX_VRM_BYTES + (1 << 20)
MAX_TEXT_BYTES = 64 << 10  # a settings message is ~200 bytes; an avatar YAML a few KB
MAX_USER_AVATARS = 8  # uploaded avatars kept per capture page
MAX_NAME_CHARS = 40
# A page sends its next frame only once the previous one's poses are back; frames arriving while one is in flight
# are dropped with a `busy` error, and more than this many in FLOOD_WINDOW_S closes the connection.
FLOOD_MAX_DROPS = 30
# Any messages beyond this many per window close the connection too (a text flood never reaches the model).
FLOOD_MAX_MESSAGES = 240
FLOOD_WINDOW_S = 1.0

# Close codes: the standard ones where they fit, 4xxx (application range) mirroring HTTP where they do not.
CLOSE_POLICY = 1008  # cross-origin or non-loopback host, flood
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013  # the model is not loaded yet
CLOSE_BAD_REQUEST = 4400  # bad role or pairing code in the URL
CLOSE_PAIR_IN_USE = 4409
CLOSE_TOO_MANY = 4429  # too many pages connected
# Closes a reconnect cannot fix, so the page stops retrying: policy, a bad URL, a pairing code in use.
FINAL_CLOSES = (CLOSE_POLICY, CLOSE_BAD_REQUEST, CLOSE_PAIR_IN_USE)
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a control frame's payload is at most 125 bytes, 2 of them the code

ROLES = ("capture", "output")
PAIR_CODE = re.compile(r"^[A-Za-z0-9_-]{4,32}$")
TEXT_TYPES = ("settings", "avatar", "expr", "ping")
BACKGROUND_KINDS = ("prepared", "image", "color", "transparent")
MODES = ("2d", "3d")
VRM_KINDS = ("prepared", "upload")
EXPR_KEYS = ("blink", "mouth")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class ProtocolError(VtposeError):
    """A message the server refuses; answered as `{"type": "error", "code", "message"}` on the socket.

    Attributes:
        code: a stable machine-readable word (`not_json`, `bad_image`, `too_large`, `unknown_type`, `busy`...).
        frame_id: the frame it concerns, when there is one.
    """

    def __init__(self, code: str, message: str, frame_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.frame_id = frame_id

    def to_json(self) -> dict[str, Any]:
        """The error message sent on the socket."""
        record: dict[str, Any] = {"type": "error", "code": self.code, "message": str(self)}
        if self.frame_id is not None:
            record["id"] = self.frame_id
        return record


def live_imgsz() -> int:
    """The live studio's model input long side: `VTPOSE_LIVE_IMGSZ`, else `DEFAULT_LIVE_IMGSZ`; the page downscales
    its frames to it before sending (larger frames would only cost encoding and bandwidth).

    Raises:
        VtposeError: the variable is not a multiple of 32 between 160 and 1280.
    """
    value = os.environ.get(ENV_LIVE_IMGSZ, "").strip()
    if not value:
        return DEFAULT_LIVE_IMGSZ
    if not value.isdigit() or not 160 <= int(value) <= 1280 or int(value) % 32:
        raise VtposeError(f"{ENV_LIVE_IMGSZ}={value!r}: use a multiple of 32 between 160 and 1280 (e.g. 480 or 640).")
    return int(value)


def close_reason(text: str) -> str:
    """`text` cut to what a WebSocket close frame can carry (123 bytes of UTF-8)."""
    data = text.encode("utf-8")[:MAX_CLOSE_REASON_BYTES]
    return data.decode("utf-8", errors="ignore")


@dataclass(frozen=True)
class Frame:
    """One camera frame from the page.

    Attributes:
        frame_id: the page's counter, echoed in the answer.
        capture_ms: when the page captured it, milliseconds on the page's clock (performance.now()), echoed back.
        image: BGR (H, W, 3) uint8.
    """

    frame_id: int
    capture_ms: float
    image: np.ndarray


def decode_image(data: bytes, policy: ImagePolicy, what: str) -> np.ndarray:
    """Decode an image sent on the socket with the one decoder every untrusted image goes through
    (`vtpose.serving.decoding`), its refusals answered as the socket's errors.

    Args:
        data: the encoded image.
        policy: its limits: `FRAME_IMAGES` or `BACKGROUND_IMAGES`.
        what: how messages name it ("frame 12").

    Returns:
        BGR (H, W, 3) uint8.

    Raises:
        ProtocolError: `too_large` (over the byte or size limit) or `bad_image` (not an accepted format, broken).
    """
    try:
        return decoding.decode_image(data, policy, field=what)
    except RequestRejected as rejected:
        code = "too_large" if rejected.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE else "bad_image"
        raise ProtocolError(code, str(rejected)) from None


def parse_frame(data: bytes) -> Frame:
    """A binary `FRAME` message: header, then the image.

    Raises:
        ProtocolError: too short, too large, or not a decodable JPEG/WebP.
    """
    if len(data) < FRAME_HEADER.size + 3:
        raise ProtocolError(
            "bad_frame", f"a frame message is {FRAME_HEADER.size} header bytes then an image; got {len(data)} bytes."
        )
    _, frame_id, capture_ms = FRAME_HEADER.unpack_from(data)
    try:
        image = decode_image(data[FRAME_HEADER.size :], FRAME_IMAGES, f"frame {frame_id}")
    except ProtocolError as error:
        # With the frame's id the page knows which frame failed and may send the next.
        raise ProtocolError(error.code, str(error), frame_id) from None
    return Frame(frame_id, capture_ms if np.isfinite(capture_ms) else 0.0, image)


def parse_text(text: str) -> dict[str, Any]:
    """A text message as a JSON object with a known `type`.

    Raises:
        ProtocolError: `too_large`, `not_json` or `unknown_type`.
    """
    if len(text) > MAX_TEXT_BYTES:
        raise ProtocolError("too_large", f"text message of {len(text)} characters; at most {MAX_TEXT_BYTES}.")
    try:
        message = json.loads(text)
    except ValueError as error:
        raise ProtocolError("not_json", f"text messages must be JSON objects ({error.args[0]}).") from None
    if not isinstance(message, dict):
        got = type(message).__name__
        raise ProtocolError("not_json", f"text messages must be JSON objects with a `type`, got {got}.")
    kind = message.get("type")
    if kind not in TEXT_TYPES:
        raise ProtocolError("unknown_type", f"unknown message type {kind!r}; the studio takes {', '.join(TEXT_TYPES)}.")
    return message


@dataclass(frozen=True)
class Settings:
    """What the capture page chose; the server uses `avatar` and `person`, the output views all of it.

    Attributes:
        avatar: an avatar name (prepared, from the server's user folder, or uploaded), or None: each person gets
            a prepared one by track, as `vtpose animate` does.
        person: "all" or "largest" (`vtpose.studio.avatar.scene.PERSON_CHOICES`).
        mirror: draw the scene mirrored, as a mirror shows the user.
        skeleton: draw the keypoints and COCO skeleton over the avatars.
        background: `{"kind": "prepared", "name"}`, `{"kind": "image"}` (sent as a binary BACKGROUND message),
            `{"kind": "color", "color": "#rrggbb"}` or `{"kind": "transparent"}`.
        fps: the camera's frame rate, frames per second (the page reports it; the smoother measures real gaps).
        mode: "2d" (the YAML avatars) or "3d" (a VRM, driven by each person's `body3d`).
        vrm: `{"kind": "prepared", "name"}` (a name in the config's `vrms`) or `{"kind": "upload", "name"}` (the
            page's own file, sent as a binary VRM message); None until parsed: the server's default prepared one.
    """

    avatar: str | None = None
    person: str = "all"
    mirror: bool = True
    skeleton: bool = False
    background: dict[str, str] = field(default_factory=lambda: {"kind": "prepared", "name": "studio"})
    fps: float = 30.0
    mode: str = "2d"
    vrm: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The settings message relayed to output views."""
        return {"type": "settings", **asdict(self)}


_SETTINGS_KEYS = frozenset({"type", "avatar", "person", "mirror", "skeleton", "background", "fps", "mode", "vrm"})


def parse_settings(
    message: dict[str, Any],
    avatar_names: set[str],
    background_names: set[str],
    vrm_names: set[str] | None = None,
    default_vrm: str | None = None,
) -> Settings:
    """Validate a `settings` message (every key optional; missing ones take `Settings`' defaults).

    Args:
        message: the parsed JSON object.
        avatar_names: avatar names the session can draw.
        background_names: prepared background names.
        vrm_names: the VRMs the config offers by name (prepared and the server's user folder).
        default_vrm: the prepared VRM a page gets when it names none.

    Raises:
        ProtocolError: `bad_settings`, naming the key and the allowed values.
    """
    unknown = sorted(set(message) - _SETTINGS_KEYS)
    if unknown:
        allowed = sorted(_SETTINGS_KEYS - {"type"})
        raise ProtocolError("bad_settings", f"unknown settings {unknown}; allowed: {allowed}.")
    defaults = Settings()
    avatar = message.get("avatar", defaults.avatar)
    if avatar is not None and avatar not in avatar_names:
        raise ProtocolError(
            "bad_settings", f"avatar {avatar!r} is not known; choose one of {sorted(avatar_names)} or null."
        )
    person = message.get("person", defaults.person)
    if person not in PERSON_CHOICES:
        raise ProtocolError("bad_settings", f"person {person!r} must be one of {', '.join(PERSON_CHOICES)}.")
    flags = {}
    for key in ("mirror", "skeleton"):
        value = message.get(key, getattr(defaults, key))
        if not isinstance(value, bool):
            raise ProtocolError("bad_settings", f"{key} must be true or false, got {value!r}.")
        flags[key] = value
    fps = message.get("fps", defaults.fps)
    if not isinstance(fps, int | float) or isinstance(fps, bool) or not 1 <= fps <= 240:
        raise ProtocolError("bad_settings", f"fps {fps!r} must be a number from 1 to 240.")
    background = _parse_background(message.get("background", defaults.background), background_names)
    mode = message.get("mode", defaults.mode)
    if mode not in MODES:
        raise ProtocolError("bad_settings", f"mode {mode!r} must be one of {', '.join(MODES)}.")
    vrm = _parse_vrm_choice(message.get("vrm"), vrm_names or set(), default_vrm)
    return Settings(avatar, person, flags["mirror"], flags["skeleton"], background, float(fps), mode, vrm)


def _parse_vrm_choice(raw: Any, names: set[str], default: str | None) -> dict[str, str] | None:
    if raw is None:
        return None if default is None else {"kind": "prepared", "name": default}
    if not isinstance(raw, dict) or raw.get("kind") not in VRM_KINDS or set(raw) - {"kind", "name"}:
        raise ProtocolError(
            "bad_settings", f"vrm must be an object {{kind, name}} whose kind is one of {', '.join(VRM_KINDS)}."
        )
    name = raw.get("name")
    if raw["kind"] == "prepared" and name not in names:
        raise ProtocolError("bad_settings", f"vrm {name!r} is not offered; choose one of {sorted(names)}.")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise ProtocolError("bad_settings", "an uploaded vrm's name is its file name (1-255 characters).")
    return {"kind": raw["kind"], "name": name}


def parse_expr(message: dict[str, Any]) -> dict[str, Any]:
    """An `expr` message (`{"blink", "mouth"}`, numbers 0-1, nothing else) as the record relayed to output views.

    Raises:
        ProtocolError: `bad_expr`, naming the key.
    """
    extra = sorted(set(message) - {"type", *EXPR_KEYS})
    if extra:
        raise ProtocolError("bad_expr", f"unknown expr keys {extra}; an expr message has only {', '.join(EXPR_KEYS)}.")
    record: dict[str, Any] = {"type": "expr"}
    for key in EXPR_KEYS:
        value = message.get(key, 0.0)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
            raise ProtocolError("bad_expr", f"expr {key} {value!r} must be a number from 0 to 1.")
        record[key] = round(float(value), 3)
    return record


def parse_vrm(data: bytes, name: str = "uploaded VRM") -> VrmInfo:
    """A binary `VRM` message's file checked as the studio's VRMs are (`check_vrm`), in memory.

    Raises:
        ProtocolError: `too_large` or `bad_vrm`, with the check's message (what is wrong and the fix).
    """
    try:
        return vrm_file.check_vrm(data, name, MAX_VRM_BYTES)
    except VrmRejected as error:
        raise ProtocolError(error.code, str(error)) from None


def _parse_background(raw: Any, names: set[str]) -> dict[str, str]:
    if not isinstance(raw, dict) or raw.get("kind") not in BACKGROUND_KINDS:
        raise ProtocolError(
            "bad_settings", f"background must be an object whose kind is one of {', '.join(BACKGROUND_KINDS)}."
        )
    kind = raw["kind"]
    if kind == "prepared":
        if raw.get("name") not in names:
            raise ProtocolError(
                "bad_settings", f"background {raw.get('name')!r} is not prepared; choose one of {sorted(names)}."
            )
        return {"kind": kind, "name": raw["name"]}
    if kind == "color":
        color = raw.get("color")
        if not isinstance(color, str) or not _COLOR.match(color):
            raise ProtocolError("bad_settings", f"background color {color!r} must be '#rrggbb'.")
        return {"kind": kind, "color": color.lower()}
    return {"kind": kind}


def parse_user_avatar(message: dict[str, Any]) -> AvatarSpec:
    """An `avatar` message (`{"name", "yaml"}`): the definition validated as `vtpose avatar --avatar FILE` would.

    Raises:
        ProtocolError: `bad_avatar`, with the validator's message (it names the part and the fix).
    """
    name, text = message.get("name"), message.get("yaml")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS or not isinstance(text, str):
        raise ProtocolError(
            "bad_avatar", f"an avatar message needs `name` (1-{MAX_NAME_CHARS} characters) and `yaml` (the file text)."
        )
    try:
        spec = parse_avatar(text, Path(name))
    except VtposeError as error:
        raise ProtocolError("bad_avatar", str(error)) from None
    return AvatarSpec(name=name, description=spec.description, parts=spec.parts, path=spec.path)


def hex_color(color: Color | None) -> str | None:
    """An OpenCV BGR triple as '#rrggbb' (None stays None)."""
    if color is None:
        return None
    b, g, r = color
    return f"#{r:02x}{g:02x}{b:02x}"


def _part_json(part: PartSpec) -> dict[str, Any]:
    face = part.face
    record: dict[str, Any] = {
        "name": part.name,
        "shape": part.shape,
        "joints": list(part.joints),
        "width": part.width,
        "width_end": part.width_end,
        "fill": hex_color(part.fill),
        "outline": hex_color(part.outline),
        "outline_width": part.outline_width,
        "is_leg": part.is_leg,
    }
    if part.shape == "head":
        record.update(
            head_style=part.head_style,
            ears=part.ears,
            ear_color=hex_color(part.ear_color),
            hair_color=hex_color(part.hair_color),
            face={
                "style": face.style,
                "eye_color": hex_color(face.eye_color),
                "eye_size": face.eye_size,
                "mouth_color": hex_color(face.mouth_color),
                "blush_color": hex_color(face.blush_color),
                "detail_color": hex_color(face.detail_color),
            },
        )
    return record


def avatar_json(spec: AvatarSpec) -> dict[str, Any]:
    """An avatar definition as the page's renderer reads it: the parsed YAML, colours as '#rrggbb'."""
    return {"name": spec.name, "description": spec.description, "parts": [_part_json(p) for p in spec.parts]}


def _round(values: np.ndarray, digits: int = 1) -> list[float]:
    return [round(float(v), digits) for v in values]


def rig_json(rig: Rig) -> dict[str, Any]:
    """A completed pose as the page draws it: every joint (COCO, neck, pelvis, head), unit, legs, head angles."""
    return {
        "points": {name: _round(p, 2) for name, p in rig.points.items()},
        "unit": round(float(rig.unit), 3),
        "full_body": rig.full_body,
        "head_roll": round(float(rig.head_roll), 4),
        "face_turn": round(float(rig.face_turn), 4),
    }


def person_json(
    person: PersonPose, rig: Rig | None, avatar: AvatarSpec | None, body3d: Body3D | None = None
) -> dict[str, Any]:
    """One tracked person: DESIGN.md's person record, plus its rig and avatar name when it can be drawn, and its
    VRM bone rotations (`body3d`) in 3D mode."""
    record = person.to_json()
    if rig is not None and avatar is not None:
        record["rig"] = rig_json(rig)
        record["avatar"] = avatar.name
        if body3d is not None:
            record["body3d"] = body3d.to_json()
    return record


def poses_message(
    frame: Frame, persons: list[dict[str, Any]], timing_ms: dict[str, float], model_version: str | None = None
) -> dict[str, Any]:
    """The answer to one frame: its id and capture time echoed, the frame size, the persons and server timings."""
    height, width = frame.image.shape[:2]
    message: dict[str, Any] = {
        "type": "poses",
        "id": frame.frame_id,
        "capture_ms": frame.capture_ms,
        "size": [width, height],
        "persons": persons,
        "timing_ms": {k: round(v, 2) for k, v in timing_ms.items()},
    }
    if model_version is not None:
        message["model_version"] = model_version
    return message
