"""A real WebSocket client for the live studio (the `websockets` package): URLs, frame messages, bursts, closes.

The tests of the socket's promises and the memory measurement share these; they speak the protocol of
`vtpose.studio.live.protocol` (its `FRAME_HEADER`, message kinds and limits) and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np

from vtpose.studio.live import protocol

RECV_TIMEOUT_S = 60.0


def ws_url(server: str, query: str = "role=capture", host: str | None = None) -> str:
    """The studio socket's URL on `server` (http://HOST:PORT); `host` replaces the host name (the Host header)."""
    parts = urlsplit(server)
    netloc = parts.netloc if host is None else f"{host}:{parts.port}"
    return f"ws://{netloc}/studio/ws?{query}"


def frame_message(frame_id: int, image: bytes, capture_ms: float | None = None) -> bytes:
    """A binary FRAME message: the header (kind, id, capture time in ms) then the encoded image."""
    stamp = 1000.0 * frame_id if capture_ms is None else capture_ms
    return protocol.FRAME_HEADER.pack(protocol.FRAME, frame_id, stamp) + image


def background_message(image: bytes) -> bytes:
    """A binary BACKGROUND message (an uploaded background image)."""
    return bytes([protocol.BACKGROUND]) + image


def jpeg(image: np.ndarray, quality: int = 70) -> bytes:
    """`image` (BGR) as JPEG bytes, at the page's quality by default."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def live_frames(video: str, side: int, limit: int | None = None) -> list[bytes]:
    """The frames of `video` as the page sends them: downscaled to a long side of `side` pixels, JPEG-encoded."""
    capture = cv2.VideoCapture(video)
    frames: list[bytes] = []
    try:
        while limit is None or len(frames) < limit:
            ok, frame = capture.read()
            if not ok:
                break
            scale = min(1.0, side / max(frame.shape[:2]))
            size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
            frames.append(jpeg(cv2.resize(frame, size, interpolation=cv2.INTER_AREA)))
    finally:
        capture.release()
    return frames


@contextlib.contextmanager
def studio_socket(server: str, query: str = "role=capture", host: str | None = None,
                  max_size: int | None = None) -> Iterator[Any]:  # fmt: skip
    """A connected studio socket (same-origin, as the page's); `host` sends another Host header over loopback."""
    from websockets.sync.client import connect
    from websockets.typing import Origin

    url = ws_url(server, query, host)
    parts = urlsplit(server)
    origin = server if host is None else f"http://{host}:{parts.port}"
    # The TCP connection always goes to the server on loopback, whatever name the Host header carries.
    sock = socket.create_connection((parts.hostname, parts.port), timeout=RECV_TIMEOUT_S)
    with connect(url, sock=sock, origin=Origin(origin), max_size=max_size, open_timeout=RECV_TIMEOUT_S) as ws:
        yield ws


def recv_json(ws: Any, timeout: float = RECV_TIMEOUT_S) -> dict[str, Any]:
    """The next message, which must be a JSON text message."""
    message = ws.recv(timeout=timeout)
    assert isinstance(message, str), f"expected a JSON text message, got {len(message)} bytes"
    return json.loads(message)


def recv_until(ws: Any, kind: str, timeout: float = RECV_TIMEOUT_S) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read JSON messages until one of type `kind`; it and the messages before it."""
    before: list[dict[str, Any]] = []
    while True:
        message = recv_json(ws, timeout)
        if message["type"] == kind:
            return message, before
        before.append(message)


def send_burst(ws: Any, messages: Iterable[str | bytes]) -> None:
    """Send `messages` as one burst: all framed under the connection's lock and written in one go, so the
    server finds them in its receive buffer together, however fast this process runs."""
    with ws.send_context():
        for message in messages:
            if isinstance(message, str):
                ws.protocol.send_text(message.encode())
            else:
                ws.protocol.send_binary(message)


def close_of(ws: Any, timeout: float = RECV_TIMEOUT_S) -> tuple[Any, list[Any]]:
    """Read until the server closes the socket; the close frame it sent (code, reason) and what came before."""
    from websockets.exceptions import ConnectionClosed

    before: list[Any] = []
    try:
        while True:
            message = ws.recv(timeout=timeout)
            before.append(json.loads(message) if isinstance(message, str) else message)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, f"the socket ended without a close frame from the server: {closed}"
        return closed.rcvd, before
