"""Per-page state of the live studio: one tracker and smoother per capture page, and the pairing of views.

`LiveSession` turns one frame's detections into the tracked, smoothed, rigged persons the page draws, with the
same `PoseTracker` -> `PoseSmoother` chain as `vtpose animate` and the same per-track avatar rule
(`TrackAvatars`). `PairingHub` joins a capture page and the output views showing its scene under one pairing
code; every piece of state lives in memory and goes when its page disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vtpose.pose import PersonPose
from vtpose.studio.avatar.scene import TrackAvatars, posed_rigs, select_persons
from vtpose.studio.avatar.spec import AvatarSpec
from vtpose.studio.avatar3d.solver import BodySolver
from vtpose.studio.avatar3d.vrm_file import VrmInfo
from vtpose.studio.live.protocol import (
    MAX_USER_AVATARS,
    Frame,
    ProtocolError,
    Settings,
    avatar_json,
    parse_settings,
    person_json,
)
from vtpose.studio.motion import PoseSmoother, PoseTracker

# Frames reach the server at whatever rate it answers, not the camera's: the smoother is told the real gap
# between capture times, kept within these bounds (a paused tab must not make the next frame a huge step).
MIN_FRAME_GAP_S = 1 / 240
MAX_FRAME_GAP_S = 0.5
MAX_CAPTURE_PAGES = 16
MAX_OUTPUTS_PER_PAIR = 4
# Messages waiting for one output view; a slow view gets the newest poses, never a growing queue.
OUTPUT_QUEUE = 4


class LiveSession:
    """The state of one capture page: its settings, uploaded avatars, tracker and smoother.

    Args:
        avatars: the avatars the page may choose by name (prepared ones and the server's user folder).
        background_names: the prepared backgrounds.
        default_avatar_order: the prepared avatars handed out by track when no avatar is chosen.
        vrm_names: the VRMs offered by name (prepared and the server's user folder).
        default_vrm: the prepared VRM a page starts with.
    """

    def __init__(
        self,
        avatars: dict[str, AvatarSpec],
        background_names: set[str],
        default_avatar_order: Sequence[AvatarSpec],
        vrm_names: set[str] | None = None,
        default_vrm: str | None = None,
    ) -> None:
        self.known = dict(avatars)
        self.uploaded: dict[str, AvatarSpec] = {}
        self.background_names = background_names
        self.prepared = list(default_avatar_order)
        self.vrm_names = set(vrm_names or ())
        self.default_vrm = default_vrm
        self.settings = Settings(vrm=None if default_vrm is None else {"kind": "prepared", "name": default_vrm})
        self.background_image: bytes | None = None  # the uploaded background, relayed to output views
        self.vrm: bytes | None = None  # the page's own VRM file (in memory only), relayed to output views
        self.vrm_info: VrmInfo | None = None
        self._last_capture_ms: float | None = None
        self._reset_motion()

    def _reset_motion(self) -> None:
        self.tracker = PoseTracker()
        self.smoother = PoseSmoother(self.settings.fps)
        self.avatars = self._track_avatars()
        self.solvers: dict[int | None, BodySolver] = {}  # per track: bone-length calibration and smoothing

    def _track_avatars(self) -> TrackAvatars:
        name = self.settings.avatar
        chosen = None if name is None else {**self.known, **self.uploaded}[name]
        return TrackAvatars(chosen, self.prepared)

    def apply_settings(self, message: dict[str, Any]) -> Settings:
        """Validate and take a `settings` message; a new avatar choice re-dresses the tracks from now on.

        Raises:
            ProtocolError: a bad value (nothing changes then).
        """
        settings = parse_settings(
            message, set(self.known) | set(self.uploaded), self.background_names, self.vrm_names, self.default_vrm
        )
        avatar_changed = settings.avatar != self.settings.avatar
        self.settings = settings
        if avatar_changed:
            self.avatars = self._track_avatars()
        return settings

    def add_avatar(self, spec: AvatarSpec) -> dict[str, Any]:
        """Keep an uploaded avatar (at most MAX_USER_AVATARS; re-uploading a name replaces it); its JSON.

        Raises:
            ProtocolError: `bad_avatar` when the name is a prepared avatar's or the page has uploaded too many.
        """
        if spec.name in self.known:
            raise ProtocolError("bad_avatar", f"{spec.name!r} is a prepared avatar's name; upload under another name.")
        if spec.name not in self.uploaded and len(self.uploaded) >= MAX_USER_AVATARS:
            raise ProtocolError(
                "bad_avatar", f"at most {MAX_USER_AVATARS} uploaded avatars per page; re-upload under a used name."
            )
        self.uploaded[spec.name] = spec
        if self.settings.avatar == spec.name:
            self.avatars = self._track_avatars()
        return {"type": "avatar", "avatar": avatar_json(spec)}

    def track(self, frame: Frame, detections: Sequence[PersonPose]) -> list[dict[str, Any]]:
        """One frame's detections -> tracked, smoothed persons with their rigs and avatars, as JSON records.

        The chain is `vtpose animate`'s: `PoseTracker.update`, then `PoseSmoother.update` (its time step set to
        the real gap between this frame's capture time and the previous one's), then the rig per avatar.
        In 3D mode each drawn person also gets `body3d` from its track's `BodySolver`, told the same gap.
        """
        if self._last_capture_ms is not None:
            gap = (frame.capture_ms - self._last_capture_ms) / 1000.0
            self.smoother.dt = min(max(gap, MIN_FRAME_GAP_S), MAX_FRAME_GAP_S)
        self._last_capture_ms = frame.capture_ms
        tracked = self.smoother.update(self.tracker.update(detections))
        chosen = select_persons(tracked, self.settings.person)
        rigs, specs = posed_rigs(chosen, self.avatars)
        by_track = {r.track_id: (r, s) for r, s in zip(rigs, specs, strict=True)}
        records = []
        for person in chosen:
            rig, spec = by_track.get(person.track_id, (None, None))
            body = None
            if rig is not None and self.settings.mode == "3d":
                solver = self.solvers.setdefault(person.track_id, BodySolver())
                body = solver.update(person, rig, self.smoother.dt)
            records.append(person_json(person, rig, spec, body))
        # A track missed for a frame or two keeps its calibration and smoothing (dropping them made its avatar snap
        # back to the priors); a track the tracker has forgotten takes them with it, so memory stays flat.
        live = self.tracker.live_ids
        self.solvers = {t: s for t, s in self.solvers.items() if t in live}
        return records

    def keep_vrm(self, data: bytes, info: VrmInfo) -> dict[str, Any]:
        """Keep the page's checked VRM file in memory (replacing the previous one); the answer to the page."""
        self.vrm, self.vrm_info = data, info
        return {"type": "vrm", "name": info.title or info.name, "bytes": info.bytes, "version": info.version}

    def snapshot(self) -> list[dict[str, Any]]:
        """What a newly joined output view needs before the next poses: the uploaded avatars and the settings."""
        return [{"type": "avatar", "avatar": avatar_json(s)} for s in self.uploaded.values()] + [
            self.settings.to_json()
        ]


@dataclass(eq=False)
class Outbox:
    """Messages waiting for one output view: bounded, and when full the oldest is dropped for the newest."""

    queue: asyncio.Queue[str | bytes] = field(default_factory=lambda: asyncio.Queue(OUTPUT_QUEUE))

    def put(self, message: str | bytes) -> None:
        """Queue without waiting; a full queue loses its oldest message."""
        while True:
            try:
                self.queue.put_nowait(message)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()


@dataclass(eq=False)
class Pair:
    """A pairing code's capture page (at most one) and output views."""

    code: str
    capture: LiveSession | None = None
    outputs: set[Outbox] = field(default_factory=set)

    def broadcast(self, message: str | bytes) -> None:
        """Send to every output view (through their bounded outboxes)."""
        for outbox in self.outputs:
            outbox.put(message)


class PairingHub:
    """The pairing codes in use: a capture page and its output views meet under one code.

    A capture page may bring its own code (the page keeps it, so an OBS source's URL survives a reload) or get a
    new one; an output view may connect before its capture page. A code is forgotten when its last view leaves.
    """

    def __init__(self, max_captures: int = MAX_CAPTURE_PAGES, max_outputs: int = MAX_OUTPUTS_PER_PAIR) -> None:
        self.max_captures = max_captures
        self.max_outputs = max_outputs
        self.pairs: dict[str, Pair] = {}

    def new_code(self) -> str:
        """A fresh random pairing code (URL-safe)."""
        while True:
            code = secrets.token_urlsafe(6)
            if code not in self.pairs:
                return code

    def join_capture(self, code: str, session: LiveSession) -> Pair:
        """Register a capture page under `code`.

        Raises:
            ProtocolError: `pair_in_use` (another capture page holds the code) or `too_many`.
        """
        pair = self.pairs.get(code)
        if pair is not None and pair.capture is not None:
            raise ProtocolError("pair_in_use", f"pairing code {code} is in use by another capture page.")
        if sum(p.capture is not None for p in self.pairs.values()) >= self.max_captures:
            raise ProtocolError("too_many", f"{self.max_captures} capture pages are connected; close one first.")
        pair = self.pairs.setdefault(code, Pair(code))
        pair.capture = session
        return pair

    def join_output(self, code: str, outbox: Outbox) -> Pair:
        """Register an output view under `code` (its capture page may come later).

        Raises:
            ProtocolError: `too_many` output views on this code, or too many codes.
        """
        pair = self.pairs.get(code)
        if pair is None and len(self.pairs) >= 2 * self.max_captures:
            raise ProtocolError("too_many", "too many pairing codes in use; close some studio pages first.")
        pair = self.pairs.setdefault(code, Pair(code))
        if len(pair.outputs) >= self.max_outputs:
            raise ProtocolError("too_many", f"{self.max_outputs} output views already show pairing code {code}.")
        pair.outputs.add(outbox)
        return pair

    def leave(self, pair: Pair, capture: LiveSession | None = None, outbox: Outbox | None = None) -> None:
        """Unregister a view; its state is freed, and the code too once nobody uses it."""
        if capture is not None and pair.capture is capture:
            pair.capture = None
        if outbox is not None:
            pair.outputs.discard(outbox)
        if pair.capture is None and not pair.outputs and self.pairs.get(pair.code) is pair:
            del self.pairs[pair.code]

    def sessions(self) -> int:
        """Capture pages connected now (for tests and /studio/api/stats)."""
        return sum(p.capture is not None for p in self.pairs.values())
