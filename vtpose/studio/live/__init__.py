"""The live studio: a web page that puts the avatar on screen in real time, served by the pose service at /studio.

The page (vtpose/studio/live/web/, plain ES modules) sends downscaled camera frames over a WebSocket; the server finds
the poses with the service's own model path, tracks and smooths them exactly as `vtpose animate` does (one
`LiveSession` per capture page), completes each into the avatar rig and sends them back as compact JSON; the page
draws the avatars from the same YAML definitions the Python renderer uses (served as JSON). An output view paired
with the capture page shows only the scene, for OBS's browser source.

- `protocol`: the message format, its limits and validation.
- `session`: per-connection state (tracker, smoother, avatars per track, settings) and the pairing of views.
- `app`: the ASGI (FastAPI) app the service mounts.
"""

from __future__ import annotations

from vtpose.studio.live.app import create_studio_app
from vtpose.studio.live.protocol import ProtocolError
from vtpose.studio.live.session import LiveSession, PairingHub

__all__ = ["LiveSession", "PairingHub", "ProtocolError", "create_studio_app"]
