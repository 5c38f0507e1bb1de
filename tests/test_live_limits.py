"""The live studio's limits over a real socket, on the Bento `make studio` serves (OpenVINO INT8).

`studio_bento` packages the pretrained checkpoint as `make studio` does (its OpenVINO IRs, INT8 calibrated on a
few train images, INT8 served); `bentoml serve` runs it on 127.0.0.1; the `websockets` package's client speaks
the protocol. Checked: the variant that runs, a pairing code in use (4409), too many pages (4429), the Host check,
no compression, oversize text and background messages, the uploaded-avatar limit, and the server's memory over
minutes of frames. After every refusal the server still serves the next client.
"""

from __future__ import annotations

import contextlib
import json
import struct
import time
import zlib
from collections.abc import Iterator
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from vtpose.paths import MEDIA_DIR, PRETRAINED_WEIGHTS
from vtpose.studio.avatar.spec import avatar_files
from vtpose.studio.live import protocol
from vtpose.studio.live.session import MAX_CAPTURE_PAGES, MAX_OUTPUTS_PER_PAIR
from vtpose.testing.live_socket import (
    background_message,
    close_of,
    frame_message,
    jpeg,
    live_frames,
    recv_json,
    recv_until,
    studio_socket,
)
from vtpose.testing.local_server import STUDIO_VARIANT, RunningBento, running_bento, studio_bento

pytestmark = pytest.mark.slow

STREAMER = MEDIA_DIR / "game-streamer-tips.jpg"
DANCE = MEDIA_DIR / "dance.avi"
READY_TIMEOUT_S = 180
# The memory check: MEMORY_WARMUP_FRAMES frames first (the runtime's buffers, the allocator's arenas and the
# tracker reach their working size), then MEMORY_PASSES passes over the 205 frames of dance.avi, each on a fresh
# connection (a page's state must go with it), the server's RSS sampled every MEMORY_SAMPLE_EVERY frames. Stated
# bound: no sample after the warm-up exceeds the RSS at its end by more than MEMORY_GROWTH_MIB.
MEMORY_WARMUP_FRAMES = 150
MEMORY_PASSES = 4
MEMORY_SAMPLE_EVERY = 25
MEMORY_GROWTH_MIB = 30
FRAGMENT_BYTES = 1 << 20  # the message over the transport limit is sent in fragments this large


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBento]:
    """`bentoml serve` of the studio's Bento (shared with the browser test's packaging) on a free loopback port."""
    if not PRETRAINED_WEIGHTS.is_file():
        pytest.skip(f"{PRETRAINED_WEIGHTS} missing; run `make data`")
    bento = studio_bento(tmp_path_factory.getbasetemp() / "studio-bento")
    log_path = tmp_path_factory.mktemp("serve-limits") / "server.log"
    with running_bento(bento["tag"], bento["env"], bento["home"], log_path, timeout_s=READY_TIMEOUT_S) as running:
        yield running


@pytest.fixture(scope="module")
def url(server: RunningBento) -> str:
    return server.url


@pytest.fixture(scope="module")
def streamer_frame() -> bytes:
    """The streamer photo as the page sends it: the live model size's long side, JPEG."""
    image = cv2.imread(str(STREAMER))
    scale = protocol.live_imgsz() / max(image.shape[:2])
    return jpeg(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))


def _poses(ws: Any, frame_id: int, image: bytes) -> dict[str, Any]:
    ws.send(frame_message(frame_id, image))
    poses, before = recv_until(ws, "poses")
    assert poses["id"] == frame_id and not [m for m in before if m["type"] == "error"], before
    return poses


def _served(url: str, image: bytes) -> None:
    """A new capture page is welcomed and gets poses for a frame: the server serves the next client."""
    with studio_socket(url) as ws:
        assert recv_json(ws)["type"] == "welcome"
        assert _poses(ws, 1, image)["persons"]


def _welcome(ws: Any) -> dict[str, Any]:
    message = recv_json(ws)
    assert message["type"] == "welcome", message
    return message


def test_the_studio_runs_the_int8_variant_make_studio_serves(url: str, streamer_frame: bytes) -> None:
    info = httpx.get(f"{url}/model", timeout=30).json()
    assert (info["backend"], info["precision"], info["variant"]) == ("openvino", "int8", STUDIO_VARIANT)
    assert info["model_version"] == f"pretrained+{STUDIO_VARIANT}" and info["live_imgsz"] == protocol.live_imgsz()
    with studio_socket(url) as ws:
        _welcome(ws)
        poses = _poses(ws, 1, streamer_frame)
    assert poses["model_version"] == info["model_version"]
    assert poses["size"] == [protocol.live_imgsz(), round(protocol.live_imgsz() * 720 / 1280)]
    streamer = max(poses["persons"], key=lambda p: p["bbox"][2] * p["bbox"][3])
    assert len(streamer["keypoints"]) == 17 and streamer["score"] > 0.5 and streamer["avatar"]


def test_a_pairing_code_in_use_is_refused_with_4409(url: str, streamer_frame: bytes) -> None:
    with studio_socket(url, "role=capture&pair=limits-4409") as first:
        assert _welcome(first)["pair"] == "limits-4409"
        with studio_socket(url, "role=capture&pair=limits-4409") as second:
            close, before = close_of(second)
        assert (close.code, before) == (protocol.CLOSE_PAIR_IN_USE, [])
        assert close.reason == "pairing code limits-4409 is in use by another capture page."
        # The page holding the code is untouched; output views join it, up to MAX_OUTPUTS_PER_PAIR.
        with contextlib.ExitStack() as views:
            for _ in range(MAX_OUTPUTS_PER_PAIR):
                view = views.enter_context(studio_socket(url, "role=output&pair=limits-4409"))
                assert _welcome(view)["role"] == "output"
                assert recv_json(view)["type"] == "settings"  # the capture page's, before any poses
            with studio_socket(url, "role=output&pair=limits-4409") as extra:
                close, _ = close_of(extra)
            assert close.code == protocol.CLOSE_TOO_MANY
            assert close.reason == f"{MAX_OUTPUTS_PER_PAIR} output views already show pairing code limits-4409."
            assert _poses(first, 1, streamer_frame)["persons"]
    # Once its page has gone the code is free again (the server frees it as the close handshake ends).
    for _ in range(50):
        if httpx.get(f"{url}/studio/api/stats").json()["pairing_codes"] == 0:
            break
        time.sleep(0.2)
    with studio_socket(url, "role=capture&pair=limits-4409") as again:
        assert _welcome(again)["pair"] == "limits-4409"


def test_too_many_capture_pages_are_refused_with_4429(url: str, streamer_frame: bytes) -> None:
    with contextlib.ExitStack() as pages:
        codes = set()
        for _ in range(MAX_CAPTURE_PAGES):
            codes.add(_welcome(pages.enter_context(studio_socket(url)))["pair"])
        assert len(codes) == MAX_CAPTURE_PAGES  # each page its own code
        assert httpx.get(f"{url}/studio/api/stats").json()["capture_pages"] == MAX_CAPTURE_PAGES
        with studio_socket(url) as refused:
            close, before = close_of(refused)
        assert (close.code, before) == (protocol.CLOSE_TOO_MANY, [])
        assert close.reason == f"{MAX_CAPTURE_PAGES} capture pages are connected; close one first."
    # All of them gone: the next page is served again.
    for _ in range(50):
        if httpx.get(f"{url}/studio/api/stats").json()["capture_pages"] == 0:
            break
        time.sleep(0.2)
    _served(url, streamer_frame)


def test_a_socket_with_a_foreign_host_header_is_refused(url: str, streamer_frame: bytes) -> None:
    from websockets.exceptions import InvalidStatus

    # What a DNS-rebinding page sends: its own name in Host (and Origin), the TCP connection to 127.0.0.1.
    for host in ("evil.example", "127.0.0.1.evil.example", "192.168.1.20"):
        with pytest.raises(InvalidStatus) as refused, studio_socket(url, host=host):
            pass
        assert refused.value.response.status_code == 403, host
    # A loopback name other than the one the server printed is fine.
    with studio_socket(url, host="localhost") as ws:
        _welcome(ws)
        assert _poses(ws, 1, streamer_frame)["persons"]


def test_the_socket_declines_compression_which_frames_do_not_need(url: str, streamer_frame: bytes) -> None:
    # The client offers permessage-deflate, as every browser does; JPEG frames would be run through zlib for nothing.
    with studio_socket(url) as ws:
        offered = ws.request.headers.get("Sec-WebSocket-Extensions") or ""
        assert "permessage-deflate" in offered
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None, ws.response.headers
        _welcome(ws)
        assert _poses(ws, 1, streamer_frame)["persons"]


def test_an_oversize_text_message_is_answered_and_the_socket_goes_on(url: str, streamer_frame: bytes) -> None:
    with studio_socket(url) as ws:
        _welcome(ws)
        padding = "x" * protocol.MAX_TEXT_BYTES
        ws.send(json.dumps({"type": "ping", "t": 1, "pad": padding}))
        error = recv_json(ws)
        assert error["type"] == "error" and error["code"] == "too_large", error
        assert f"at most {protocol.MAX_TEXT_BYTES}" in error["message"]
        # Just under the limit is a message like any other.
        ws.send(json.dumps({"type": "ping", "t": 2, "pad": padding[: protocol.MAX_TEXT_BYTES - 100]}))
        assert recv_json(ws) == {"type": "pong", "t": 2}
        assert _poses(ws, 1, streamer_frame)["persons"]
    _served(url, streamer_frame)


def _png_header(width: int, height: int) -> bytes:
    """The first bytes of a PNG that declares `width` x `height` pixels (no pixel data follows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_an_oversize_background_is_answered_and_the_socket_goes_on(url: str, streamer_frame: bytes) -> None:
    too_many_bytes = _png_header(640, 360) + bytes(protocol.MAX_BACKGROUND_BYTES)
    too_many_pixels = _png_header(protocol.MAX_BACKGROUND_SIDE + 1, 100) + bytes(1000)
    small = cv2.imencode(".png", np.full((90, 160, 3), (0, 0, 255), np.uint8))[1].tobytes()
    with (
        studio_socket(url, "role=capture&pair=limits-bg") as ws,
        studio_socket(url, "role=output&pair=limits-bg") as view,
    ):
        _welcome(ws)
        _welcome(view)
        ws.send(background_message(too_many_bytes))
        error = recv_json(ws)
        assert (error["type"], error["code"]) == ("error", "too_large"), error
        assert error["message"] == (
            f"background: {len(too_many_bytes)} bytes is over the {protocol.MAX_BACKGROUND_BYTES}-byte limit; "
            "send a smaller or more compressed image."
        )
        ws.send(background_message(too_many_pixels))
        error = recv_json(ws)
        assert error["code"] == "too_large" and str(protocol.MAX_BACKGROUND_SIDE) in error["message"], error
        # A background within the limits is taken, and relayed to the output view as it was sent.
        ws.send(background_message(small))
        assert recv_json(ws) == {"type": "background", "bytes": len(small)}
        assert recv_json(view)["type"] == "settings"  # the capture page's, sent as the view joined
        assert view.recv(timeout=30) == background_message(small)  # nothing of the refused ones
        assert _poses(ws, 1, streamer_frame)["persons"]
    _served(url, streamer_frame)


def test_a_message_over_the_transport_limit_closes_only_its_socket(url: str, streamer_frame: bytes) -> None:
    """Beyond every limit of ours, the server's WebSocket layer (uvicorn, raised to MAX_WEBSOCKET_MESSAGE_BYTES for
    VRM files) closes with 1009."""
    limit = protocol.MAX_WEBSOCKET_MESSAGE_BYTES
    message = background_message(bytes(limit + 1))
    # Fragments, the last one crossing the limit: the server has read all but that one's bytes when it refuses the
    # message, so its close frame is not lost to a reset from a socket still being written (the frames go
    # uncompressed: a single frame is refused from its header, with 33 MB still on the way).
    fragments = [message[i : min(i + FRAGMENT_BYTES, limit)] for i in range(0, limit, FRAGMENT_BYTES)]
    with studio_socket(url) as ws:
        _welcome(ws)
        with contextlib.suppress(Exception):  # the server may close while the message is still being written
            ws.send([*fragments, message[limit:]])
        close, _ = close_of(ws)
    assert close.code == 1009  # RFC 6455: message too big
    _served(url, streamer_frame)


def _avatar_yaml(color: str) -> str:
    return avatar_files()["robot"].read_text().replace("#3f88c5", color)


def test_the_ninth_uploaded_avatar_is_refused_and_the_first_eight_still_work(url: str, streamer_frame: bytes) -> None:
    names = [f"mine-{i}" for i in range(1, protocol.MAX_USER_AVATARS + 1)]
    with studio_socket(url) as ws:
        _welcome(ws)
        for i, name in enumerate(names):
            ws.send(json.dumps({"type": "avatar", "name": name, "yaml": _avatar_yaml(f"#ff00{i:02x}")}))
            reply = recv_json(ws)
            assert reply["type"] == "avatar" and reply["avatar"]["name"] == name, reply
        ws.send(json.dumps({"type": "avatar", "name": "mine-9", "yaml": _avatar_yaml("#00ff00")}))
        refused = recv_json(ws)
        assert refused == {
            "type": "error", "code": "bad_avatar",
            "message": f"at most {protocol.MAX_USER_AVATARS} uploaded avatars per page; re-upload under a used name.",
        }  # fmt: skip
        ws.send(json.dumps({"type": "settings", "avatar": "mine-9"}))
        assert recv_json(ws)["code"] == "bad_settings"
        # Re-uploading a used name replaces it, within the limit.
        ws.send(json.dumps({"type": "avatar", "name": names[0], "yaml": _avatar_yaml("#00ffff")}))
        assert recv_json(ws)["avatar"]["name"] == names[0]
        # Each of the eight dresses the streamer when chosen.
        for frame_id, name in enumerate(names, start=1):
            ws.send(json.dumps({"type": "settings", "avatar": name}))
            assert recv_json(ws)["avatar"] == name
            persons = _poses(ws, frame_id, streamer_frame)["persons"]
            assert persons and {p["avatar"] for p in persons if "rig" in p} == {name}, name


def test_memory_stays_flat_over_minutes_of_streaming(server: RunningBento) -> None:
    """The server's RSS after a warm-up does not grow by more than MEMORY_GROWTH_MIB over a few minutes of frames."""
    frames = live_frames(str(DANCE), protocol.live_imgsz())
    assert len(frames) == 205
    frame_id = 0
    samples: list[tuple[int, int]] = []  # (frames streamed, RSS bytes)
    for connection in range(MEMORY_PASSES + 1):
        count = MEMORY_WARMUP_FRAMES if connection == 0 else len(frames)
        with studio_socket(server.url) as ws:
            _welcome(ws)
            for i in range(count):
                frame_id += 1
                # One frame in flight, as the page sends: the next once the last one's poses are back.
                _poses(ws, frame_id, frames[i % len(frames)])
                if connection and frame_id % MEMORY_SAMPLE_EVERY == 0:
                    samples.append((frame_id, server.rss_bytes()))
        if connection == 0:
            baseline = server.rss_bytes()
    mib = 1 << 20
    growth = max(rss for _, rss in samples) - baseline
    trace = ", ".join(f"{n}: {rss / mib:.0f}" for n, rss in samples)
    print(f"server RSS after {MEMORY_WARMUP_FRAMES} warm-up frames {baseline / mib:.0f} MiB; then {trace} MiB")
    assert len(samples) >= MEMORY_PASSES * len(frames) // MEMORY_SAMPLE_EVERY
    assert growth <= MEMORY_GROWTH_MIB * mib, f"RSS grew {growth / mib:.1f} MiB after the warm-up: {trace}"


def test_a_vrm_is_checked_relayed_and_given_to_a_late_output_view(url: str, streamer_frame: bytes) -> None:
    """The binary VRM message end to end: refusals answered (one just over the size limit, not a dropped socket),
    an accepted file relayed to the output view and replayed to one that joins later, before the settings; 3D mode
    adds `body3d` to the poses; `expr` is relayed; the prepared files are served."""
    from vtpose.studio.avatar3d.generate import prepared_vrm_files

    kitty = prepared_vrm_files()["kitty"].read_bytes()
    vrm_message = bytes([protocol.VRM]) + kitty
    with httpx.Client(base_url=url, timeout=30) as client:
        config = client.get("/studio/api/config").json()
        assert config["protocol"]["vrm"] == protocol.VRM and config["default_vrm"] == "kitty"
        assert config["limits"]["max_vrm_bytes"] == protocol.MAX_VRM_BYTES
        served = client.get("/studio/" + config["vrms"][0]["url"])
        assert served.status_code == 200 and served.headers["content-type"] == "model/gltf-binary"
        assert served.content == kitty
        missing = client.get("/studio/vrms/nobody.vrm")
        assert missing.status_code == 404 and "no VRM 'nobody.vrm'" in missing.json()["error"]
    with (
        studio_socket(url, "role=capture&pair=limits-vrm") as ws,
        studio_socket(url, "role=output&pair=limits-vrm") as view,
    ):
        _welcome(ws)
        _welcome(view)
        assert recv_json(view)["type"] == "settings"
        # Just over the limit (and over uvicorn's own 16 MiB default): answered, not a dropped socket.
        ws.send(bytes([protocol.VRM]) + bytes(protocol.MAX_VRM_BYTES + 1))
        error = recv_json(ws)
        assert (error["type"], error["code"]) == ("error", "too_large"), error
        assert f"up to {protocol.MAX_VRM_BYTES} bytes" in error["message"]
        ws.send(bytes([protocol.VRM]) + b"PK\x03\x04 a zip, not a VRM")
        error = recv_json(ws)
        assert error["code"] == "bad_vrm" and "not a glTF binary file" in error["message"], error
        ws.send(vrm_message)
        assert recv_json(ws) == {"type": "vrm", "name": "kitty", "bytes": len(kitty), "version": "1.0"}
        assert view.recv(timeout=30) == vrm_message  # nothing of the refused ones
        ws.send(json.dumps({"type": "settings", "mode": "3d", "vrm": {"kind": "upload", "name": "kitty.vrm"}}))
        assert recv_json(ws)["mode"] == "3d"
        ws.send(json.dumps({"type": "expr", "blink": 1, "mouth": 0.5}))
        ws.send(json.dumps({"type": "expr", "blink": 3}))
        assert recv_json(ws)["code"] == "bad_expr"
        poses = _poses(ws, 1, streamer_frame)
        drawn = [p for p in poses["persons"] if "rig" in p]
        assert drawn and all(len(p["body3d"]["bones"]) == 13 for p in drawn)
        relayed = [recv_json(view) for _ in range(3)]
        assert [m["type"] for m in relayed] == ["settings", "expr", "poses"]
        assert relayed[1] == {"type": "expr", "blink": 1.0, "mouth": 0.5}
        with studio_socket(url, "role=output&pair=limits-vrm") as late:
            _welcome(late)
            assert late.recv(timeout=30) == vrm_message
            settings = recv_json(late)
            assert settings["type"] == "settings" and settings["vrm"] == {"kind": "upload", "name": "kitty.vrm"}
    _served(url, streamer_frame)
