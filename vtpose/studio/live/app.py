"""The studio's ASGI app (FastAPI): the pages, their static files, the avatar definitions and the WebSocket.

The pose service mounts it at /studio (`bentoml.asgi_app`) and hands it its model call; nothing here knows
BentoML. Routes, relative to the mount point:

- `/` the capture page, `/output?pair=CODE` the output view for OBS, `/static/...` their ES modules and CSS;
- `/api/config` avatars (as JSON, from the same YAML files the Python renderer reads), VRMs, backgrounds,
  skeleton, limits; `/backgrounds/NAME` a prepared background image; `/vrms/NAME.vrm` a prepared or user VRM;
- `/ws?role=capture[&pair=CODE]` or `/ws?role=output&pair=CODE`: the WebSocket (see `vtpose.studio.live.protocol`).

Connections are refused unless the Host header is a loopback name (so a DNS-rebinding page cannot reach the
socket) and the Origin, when sent, is that same host. Frames are decoded in memory and never written anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from fastapi import FastAPI, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected, WebSocketState

from vtpose.errors import VtposeError
from vtpose.keypoints import KEYPOINT_NAMES, SKELETON
from vtpose.pose import PersonPose
from vtpose.studio.avatar.scene import DEFAULT_BACKGROUND, background_files
from vtpose.studio.avatar.spec import AVATAR_SUFFIXES, DEFAULT_AVATAR, AvatarSpec, list_avatars, load_avatar_file
from vtpose.studio.avatar3d.generate import VRM_SUFFIX, prepared_vrm_files
from vtpose.studio.avatar3d.vrm_file import VrmRejected, check_vrm
from vtpose.studio.live import protocol
from vtpose.studio.live.protocol import PAIR_CODE, ROLES, ProtocolError, avatar_json, close_reason
from vtpose.studio.live.session import LiveSession, Outbox, Pair, PairingHub

logger = logging.getLogger("bentoml.service.studio")

WEB_DIR = Path(__file__).resolve().parent / "web"
# A folder of the user's own avatar YAML files, offered by name in the page beside the prepared ones.
ENV_AVATAR_DIR = "VTPOSE_STUDIO_AVATAR_DIR"
# Host names (comma separated) the studio answers besides the loopback ones, for a deliberate LAN setup.
ENV_ALLOWED_HOSTS = "VTPOSE_STUDIO_HOSTS"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# The pages load only their own files; the socket is same-origin; camera frames become blob:/mediastream: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'"
)

PoseFn = Callable[[np.ndarray], Awaitable[list[PersonPose]]]
DEFAULT_VRM = DEFAULT_AVATAR  # the generated VRMs carry their YAML avatar's name
VRM_CONTENT_TYPE = "model/gltf-binary"


def user_avatars(folder: str | Path | None) -> dict[str, AvatarSpec]:
    """The avatar YAML files in `folder` (or none), by file stem.

    Raises:
        VtposeError: a file there is not a valid avatar (the message names it and the part).
    """
    if not folder:
        return {}
    path = Path(folder)
    if not path.is_dir():
        raise VtposeError(f"{ENV_AVATAR_DIR}={folder}: not a folder; point it at a folder of avatar YAML files.")
    return {p.stem: load_avatar_file(p) for p in sorted(path.iterdir()) if p.suffix in AVATAR_SUFFIXES}


def configure_websockets(max_bytes: int = protocol.MAX_WEBSOCKET_MESSAGE_BYTES) -> None:
    """Have the server's uvicorn take WebSocket messages up to `max_bytes` (its own default closes at 16 MiB), and
    not compress them.

    BentoML 1.4 builds its `uvicorn.Config` without `ws_max_size` or `ws_per_message_deflate` and offers no setting
    for them. VRoid Studio's exports are often 10-30 MB. And permessage-deflate, which uvicorn agrees to whenever a
    browser offers it (always), runs zlib over every message both ways on the cores the model needs, when the
    frames are JPEG, which does not compress (raw pixels, tried instead of JPEG: deflating a 0.5 MB frame made its
    trip over the socket take 30 ms, 14 ms without). Its worker reads `uvicorn.Config` when it starts serving,
    after the service module (which calls this) is imported, so a subclass with these defaults is what it builds.
    Calling it twice is harmless.
    """
    import uvicorn

    base = getattr(uvicorn.Config, "_vtpose_base", uvicorn.Config)

    class StudioConfig(base):  # type: ignore[misc, valid-type]
        _vtpose_base = base

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("ws_max_size", max_bytes)
            kwargs.setdefault("ws_per_message_deflate", False)
            super().__init__(*args, **kwargs)

    uvicorn.Config = StudioConfig  # type: ignore[misc]


def user_vrms(folder: str | Path | None) -> dict[str, Path]:
    """The .vrm files in `folder` (or none), by file stem, each checked as an upload is.

    Raises:
        VtposeError: a file there is not a VRM the studio can drive (the message names it and the reason).
    """
    if not folder or not Path(folder).is_dir():
        return {}
    found = {}
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() != VRM_SUFFIX:
            continue
        try:
            check_vrm(path.read_bytes(), str(path), protocol.MAX_VRM_BYTES)
        except VrmRejected as error:
            raise VtposeError(f"{ENV_AVATAR_DIR}: {error}") from None
        found[path.stem] = path
    return found


def host_refusal(headers: dict[str, str], allowed_hosts: frozenset[str]) -> str | None:
    """Why a WebSocket handshake must be refused, or None: a non-loopback Host, or an Origin from elsewhere."""
    host = headers.get("host", "")
    hostname = urlsplit(f"//{host}").hostname or ""
    if hostname not in allowed_hosts and f"[{hostname}]" not in allowed_hosts:
        return f"host {host!r} is not allowed; open the studio at http://127.0.0.1"
    origin = headers.get("origin")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        return f"cross-origin connection from {origin!r} refused"
    return None


class StudioServer:
    """The studio's shared state (avatars, pairing codes) and its WebSocket handlers.

    Args:
        pose_fn: returns the model call, `async (BGR frame) -> list[PersonPose]`; asked once per connection
            (the service's instance exists only once the server runs).
        avatar_dir: the user's avatar folder (default: $VTPOSE_STUDIO_AVATAR_DIR).
        allowed_hosts: Host names accepted (default: loopback names plus $VTPOSE_STUDIO_HOSTS).
        model_version: a callable naming the model version, sent in each `poses` message.
    """

    def __init__(
        self,
        pose_fn: Callable[[], PoseFn],
        avatar_dir: str | Path | None = None,
        allowed_hosts: Sequence[str] | None = None,
        model_version: Callable[[], str | None] | None = None,
    ) -> None:
        self.pose_fn = pose_fn
        self.model_version = model_version or (lambda: None)
        prepared = list_avatars()
        self.prepared = sorted(prepared, key=lambda a: a.name != DEFAULT_AVATAR)
        folder = avatar_dir if avatar_dir is not None else os.environ.get(ENV_AVATAR_DIR)
        self.avatars = {**user_avatars(folder), **{a.name: a for a in prepared}}
        self.user_avatar_names = sorted(set(self.avatars) - {a.name for a in prepared})
        prepared_vrms = prepared_vrm_files()
        self.vrms = {**user_vrms(folder), **prepared_vrms}  # a prepared name wins, as for the YAML avatars
        self.vrm_sources = {n: "prepared" if n in prepared_vrms else "user" for n in self.vrms}
        self.default_vrm = DEFAULT_VRM if DEFAULT_VRM in prepared_vrms else next(iter(prepared_vrms), None)
        descriptions = {a.name: a.description for a in prepared}
        self.vrm_descriptions = {n: descriptions.get(n, f"{self.vrms[n].name} (your VRM)") for n in self.vrms}
        self.backgrounds = background_files()
        extra = os.environ.get(ENV_ALLOWED_HOSTS, "")
        hosts = allowed_hosts if allowed_hosts is not None else [h.strip() for h in extra.split(",") if h.strip()]
        self.allowed_hosts = LOOPBACK_HOSTS | frozenset(hosts)
        self.hub = PairingHub()

    def config(self) -> dict[str, Any]:
        """What the pages load first: avatars (JSON of the YAML definitions), backgrounds, skeleton, limits."""
        return {
            "avatars": [avatar_json(self.avatars[a.name]) for a in self.prepared]
            + [avatar_json(self.avatars[n]) for n in self.user_avatar_names],
            "user_avatars": self.user_avatar_names,
            "default_avatar": DEFAULT_AVATAR,
            "vrms": [
                {
                    "name": n,
                    "description": self.vrm_descriptions[n],
                    "url": f"vrms/{n}{VRM_SUFFIX}",
                    "source": self.vrm_sources[n],
                }
                for n in sorted(self.vrms, key=lambda n: (self.vrm_sources[n] != "prepared", n != self.default_vrm, n))
            ],
            "default_vrm": self.default_vrm,
            "backgrounds": list(self.backgrounds),
            "default_background": DEFAULT_BACKGROUND,
            "keypoints": list(KEYPOINT_NAMES),
            "skeleton": [list(edge) for edge in SKELETON],
            "send_side": protocol.live_imgsz(),
            "jpeg_quality": protocol.JPEG_QUALITY,
            "limits": {
                "max_frame_bytes": protocol.MAX_FRAME_BYTES,
                "max_frame_side": protocol.MAX_FRAME_SIDE,
                "max_background_bytes": protocol.MAX_BACKGROUND_BYTES,
                "max_text_bytes": protocol.MAX_TEXT_BYTES,
                "max_vrm_bytes": protocol.MAX_VRM_BYTES,
            },
            # The page's socket takes every protocol number from here, so the two cannot disagree.
            "protocol": {
                "frame": protocol.FRAME,
                "background": protocol.BACKGROUND,
                "vrm": protocol.VRM,
                "frame_header": protocol.FRAME_HEADER.format,  # a struct format: the page writes it field by field
                "close": {
                    "policy": protocol.CLOSE_POLICY,
                    "internal": protocol.CLOSE_INTERNAL,
                    "try_again": protocol.CLOSE_TRY_AGAIN,
                    "bad_request": protocol.CLOSE_BAD_REQUEST,
                    "pair_in_use": protocol.CLOSE_PAIR_IN_USE,
                    "too_many": protocol.CLOSE_TOO_MANY,
                },
                "final_closes": list(protocol.FINAL_CLOSES),
            },
        }

    def new_session(self) -> LiveSession:
        """A capture page's fresh state."""
        return LiveSession(self.avatars, set(self.backgrounds), self.prepared, set(self.vrms), self.default_vrm)

    async def handle(self, websocket: WebSocket) -> None:
        """One WebSocket connection, from the handshake to its close."""
        refusal = host_refusal(dict(websocket.headers), self.allowed_hosts)
        if refusal is not None:
            logger.warning("studio: %s", refusal)
            await websocket.close(code=protocol.CLOSE_POLICY, reason=close_reason(refusal))
            return
        role = websocket.query_params.get("role", "capture")
        code = websocket.query_params.get("pair")
        await websocket.accept()
        if role not in ROLES or (code is not None and not PAIR_CODE.match(code)) or (role == "output" and not code):
            reason = f"bad URL: role is {' or '.join(ROLES)}; pair is 4-32 of A-Z a-z 0-9 _ - (required for output)"
            await websocket.close(code=protocol.CLOSE_BAD_REQUEST, reason=close_reason(reason))
            return
        try:
            if role == "capture":
                try:
                    pose_fn = self.pose_fn()
                except Exception as error:  # whatever the service raises before its model is loaded
                    logger.warning("studio: no model call yet (%s)", error)
                    reason = "the model is not loaded yet; the page retries in a moment"
                    await websocket.close(code=protocol.CLOSE_TRY_AGAIN, reason=reason)
                    return
                await CaptureConnection(self, websocket, code or self.hub.new_code(), pose_fn).run()
            else:
                await self._output(websocket, code or "")
        except (WebSocketDisconnect, WebSocketDisconnected):
            pass  # the page went away; its state is freed by the handlers' finally blocks

    async def _output(self, websocket: WebSocket, code: str) -> None:
        outbox = Outbox()
        try:
            pair = self.hub.join_output(code, outbox)
        except ProtocolError as error:
            await websocket.close(code=protocol.CLOSE_TOO_MANY, reason=close_reason(str(error)))
            return
        reader: asyncio.Task[None] | None = None
        try:
            await websocket.send_text(json.dumps({"type": "welcome", "role": "output", "pair": code}))
            if pair.capture is not None:
                *avatars, settings_message = pair.capture.snapshot()
                for avatar_message in avatars:
                    await websocket.send_text(json.dumps(avatar_message))
                if pair.capture.vrm is not None:  # before the settings that may name it
                    await websocket.send_bytes(bytes([protocol.VRM]) + pair.capture.vrm)
                await websocket.send_text(json.dumps(settings_message))
                if pair.capture.background_image is not None:
                    await websocket.send_bytes(bytes([protocol.BACKGROUND]) + pair.capture.background_image)
            reader = asyncio.create_task(_drain_until_closed(websocket))
            while not reader.done():
                getter = asyncio.create_task(outbox.queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                message = getter.result()
                if isinstance(message, bytes):
                    await websocket.send_bytes(message)
                else:
                    await websocket.send_text(message)
        finally:
            if reader is not None:
                reader.cancel()
            self.hub.leave(pair, outbox=outbox)


def _frame_id(data: bytes) -> int | None:
    """The frame id in a frame message's header, or None when the message is too short to have one."""
    return protocol.FRAME_HEADER.unpack_from(data)[1] if len(data) >= protocol.FRAME_HEADER.size else None


async def _drain_until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) what an output view sends, until it disconnects; a view only listens."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


class CaptureConnection:
    """One capture page's connection: at most one frame in flight, everything else answered at once.

    Frames arriving while one is in flight are dropped with a `busy` error (the page is meant to wait for each
    frame's poses); more than `FLOOD_MAX_DROPS` of them, or `FLOOD_MAX_MESSAGES` messages of any kind, within
    `FLOOD_WINDOW_S` close the connection with CLOSE_POLICY.
    """

    def __init__(self, server: StudioServer, websocket: WebSocket, code: str, pose_fn: PoseFn) -> None:
        self.server, self.websocket, self.code = server, websocket, code
        self.session = server.new_session()
        self.pose_fn = pose_fn
        self.in_flight: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._messages: deque[float] = deque()
        self._drops: deque[float] = deque()
        self.pair: Pair | None = None

    async def send(self, message: dict[str, Any] | str) -> None:
        """Send one JSON message (or its text) to the page; the frame task's and the reader's never interleave."""
        if self.websocket.application_state != WebSocketState.CONNECTED:
            return
        text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
        async with self._send_lock:
            await self.websocket.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        """Close with a code and a one-line reason (cut to what a close frame carries)."""
        if self.websocket.application_state == WebSocketState.CONNECTED:
            async with self._send_lock:
                await self.websocket.close(code=code, reason=close_reason(reason))

    async def run(self) -> None:
        """Register under the pairing code, then serve messages until the page goes; frees the state after."""
        try:
            self.pair = self.server.hub.join_capture(self.code, self.session)
        except ProtocolError as error:
            close_code = protocol.CLOSE_PAIR_IN_USE if error.code == "pair_in_use" else protocol.CLOSE_TOO_MANY
            await self.close(close_code, str(error))
            return
        try:
            await self.send({"type": "welcome", "role": "capture", "pair": self.code})
            self.pair.broadcast(json.dumps(self.session.settings.to_json()))
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if self._flooded(self._messages, protocol.FLOOD_MAX_MESSAGES):
                    await self.close(
                        protocol.CLOSE_POLICY, f"flood: over {protocol.FLOOD_MAX_MESSAGES} messages in a second"
                    )
                    return
                try:
                    if message.get("bytes") is not None:
                        await self._binary(message["bytes"])
                    elif message.get("text") is not None:
                        await self._text(message["text"])
                except ProtocolError as error:
                    await self.send(error.to_json())
                    if error.code == "busy" and self._flooded(self._drops, protocol.FLOOD_MAX_DROPS):
                        await self.close(
                            protocol.CLOSE_POLICY,
                            f"flood: over {protocol.FLOOD_MAX_DROPS} frames sent while one was in flight; "
                            "send a frame only after the last one's poses",
                        )
                        return
        finally:
            if self.in_flight is not None:
                self.in_flight.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.in_flight
            self.server.hub.leave(self.pair, capture=self.session)

    @staticmethod
    def _flooded(times: deque[float], limit: int) -> bool:
        now = time.monotonic()
        times.append(now)
        while times and now - times[0] > protocol.FLOOD_WINDOW_S:
            times.popleft()
        return len(times) > limit

    async def _binary(self, data: bytes) -> None:
        kind = data[0] if data else None
        if kind == protocol.FRAME:
            if self.in_flight is not None and not self.in_flight.done():
                raise ProtocolError(
                    "busy", "frame dropped: the previous frame is still being processed; send one frame at a time.",
                    _frame_id(data),
                )  # fmt: skip
            self.in_flight = asyncio.create_task(self._frame(data))
        elif kind == protocol.BACKGROUND:
            image = data[1:]
            await asyncio.to_thread(protocol.decode_image, image, protocol.BACKGROUND_IMAGES, "background")
            self.session.background_image = image
            assert self.pair is not None
            self.pair.broadcast(data)
            await self.send({"type": "background", "bytes": len(image)})
        elif kind == protocol.VRM:
            vrm = data[1:]
            info = await asyncio.to_thread(protocol.parse_vrm, vrm)
            reply = self.session.keep_vrm(vrm, info)
            assert self.pair is not None
            self.pair.broadcast(data)
            await self.send(reply)
        else:
            raise ProtocolError(
                "unknown_type",
                f"unknown binary message kind {kind!r}; binary messages start with {protocol.FRAME} (frame), "
                f"{protocol.BACKGROUND} (background image) or {protocol.VRM} (VRM file).",
            )

    async def _text(self, text: str) -> None:
        message = protocol.parse_text(text)
        assert self.pair is not None
        if message["type"] == "ping":
            await self.send({"type": "pong", "t": message.get("t")})
        elif message["type"] == "settings":
            settings = self.session.apply_settings(message)
            reply = settings.to_json()
            self.pair.broadcast(json.dumps(reply))
            await self.send(reply)
        elif message["type"] == "expr":  # relayed, never stored
            self.pair.broadcast(json.dumps(protocol.parse_expr(message), separators=(",", ":")))
        elif message["type"] == "avatar":
            spec = protocol.parse_user_avatar(message)
            reply = self.session.add_avatar(spec)
            self.pair.broadcast(json.dumps(reply))
            await self.send(reply)

    async def _frame(self, data: bytes) -> None:
        """Decode, find poses, track, smooth, rig; answer the page and relay to its output views."""
        try:
            t0 = time.perf_counter()
            frame = await asyncio.to_thread(protocol.parse_frame, data)
            t1 = time.perf_counter()
            detections = await self.pose_fn(frame.image)
            t2 = time.perf_counter()
            persons = self.session.track(frame, detections)
            t3 = time.perf_counter()
            timing = {"decode": (t1 - t0) * 1e3, "model": (t2 - t1) * 1e3, "track": (t3 - t2) * 1e3}
            message = json.dumps(
                protocol.poses_message(frame, persons, timing, self.server.model_version()), separators=(",", ":")
            )
            assert self.pair is not None
            self.pair.broadcast(message)
            await self._answer(message)
        except ProtocolError as error:
            await self._answer(error.to_json())
        except VtposeError as error:
            # The model refused the frame (e.g. the service is shutting down): the page is told, and may retry.
            await self._answer({"type": "error", "code": "model", "message": str(error), "id": _frame_id(data)})
        except (WebSocketDisconnect, WebSocketDisconnected):
            pass  # the page left while its frame was processed; the reader ends the connection
        except Exception as error:
            logger.exception("studio: frame failed")
            with contextlib.suppress(WebSocketDisconnect, WebSocketDisconnected):
                await self.close(protocol.CLOSE_INTERNAL, f"internal error: {type(error).__name__}; see the server log")

    async def _answer(self, message: dict[str, Any] | str) -> None:
        """Send a frame's answer, ignoring a page that has just left."""
        with contextlib.suppress(WebSocketDisconnect, WebSocketDisconnected):
            await self.send(message)


def create_studio_app(
    pose_fn: Callable[[], PoseFn],
    avatar_dir: str | Path | None = None,
    allowed_hosts: Sequence[str] | None = None,
    model_version: Callable[[], str | None] | None = None,
) -> FastAPI:
    """The studio app; mount it at /studio. Arguments as `StudioServer`'s."""
    server = StudioServer(pose_fn, avatar_dir, allowed_hosts, model_version)
    app = FastAPI(title="vtpose live studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.studio = server

    def page(name: str) -> FileResponse:
        return FileResponse(
            WEB_DIR / name,
            media_type="text/html",
            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
        )

    @app.get("/", include_in_schema=False)
    async def capture_page() -> FileResponse:
        return page("index.html")

    @app.get("/output", include_in_schema=False)
    async def output_page() -> FileResponse:
        return page("output.html")

    @app.get("/api/config", include_in_schema=False)
    async def config() -> JSONResponse:
        return JSONResponse(server.config())

    @app.get("/api/stats", include_in_schema=False)
    async def stats() -> JSONResponse:
        return JSONResponse({"capture_pages": server.hub.sessions(), "pairing_codes": len(server.hub.pairs)})

    @app.get("/backgrounds/{name}", include_in_schema=False)
    async def background(name: str) -> Response:
        path = server.backgrounds.get(name)
        if path is None:
            return JSONResponse(
                {"error": f"no prepared background {name!r}; choose one of {', '.join(server.backgrounds)}"},
                status_code=404,
            )
        return FileResponse(path)

    @app.get("/vrms/{file_name}", include_in_schema=False)
    async def vrm(file_name: str) -> Response:
        name = file_name.removesuffix(VRM_SUFFIX)
        path = server.vrms.get(name) if file_name.endswith(VRM_SUFFIX) else None
        if path is None:
            return JSONResponse(
                {"error": f"no VRM {file_name!r}; choose one of {', '.join(n + VRM_SUFFIX for n in server.vrms)}"},
                status_code=404,
            )
        return FileResponse(path, media_type=VRM_CONTENT_TYPE)

    @app.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await server.handle(websocket)

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app
