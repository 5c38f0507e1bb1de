"""The live studio's library parts without a server: message validation, per-page state, pairing, host checks."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from vtpose.errors import VtposeError
from vtpose.paths import MEDIA_DIR, PRETRAINED_WEIGHTS
from vtpose.pose import PersonPose
from vtpose.serving.decoding import ImagePolicy
from vtpose.studio.avatar.scene import TrackAvatars
from vtpose.studio.avatar.spec import avatar_files, list_avatars, load_avatar
from vtpose.studio.avatar3d.generate import prepared_vrm_files
from vtpose.studio.avatar3d.solver import BONES
from vtpose.studio.live.app import LOOPBACK_HOSTS, StudioServer, host_refusal, user_avatars, user_vrms
from vtpose.studio.live.protocol import (
    BACKGROUND_IMAGES,
    FRAME_HEADER,
    FRAME_IMAGES,
    MAX_FRAME_SIDE,
    MAX_VRM_BYTES,
    Frame,
    ProtocolError,
    avatar_json,
    close_reason,
    decode_image,
    hex_color,
    parse_expr,
    parse_frame,
    parse_settings,
    parse_text,
    parse_user_avatar,
    parse_vrm,
)
from vtpose.studio.live.session import LiveSession, Outbox, PairingHub
from vtpose.studio.motion import MAX_TRACK_AGE, PoseSmoother, PoseTracker

STREAMER = MEDIA_DIR / "game-streamer-tips.jpg"
# A person standing, facing the camera: COCO-17 keypoints, pixels (x, y), all confident.
STANDING = np.array(
    [
        [100, 40], [106, 34], [94, 34], [112, 38], [88, 38], [125, 70], [75, 70], [132, 105], [68, 105],
        [135, 140], [65, 140], [115, 145], [85, 145], [117, 200], [83, 200], [118, 250], [82, 250],
    ],
    dtype=np.float32,
)  # fmt: skip


def _person(dx: float = 0.0, dy: float = 0.0, scale: float = 1.0, noise: float = 0.0, seed: int = 0) -> PersonPose:
    rng = np.random.default_rng(seed)
    xy = STANDING * scale + np.array([dx, dy]) + rng.normal(0, noise, STANDING.shape)
    keypoints = np.concatenate([xy, np.full((17, 1), 0.9)], axis=1).astype(np.float32)
    x0, y0 = xy.min(0) - 10
    x1, y1 = xy.max(0) + 10
    return PersonPose((float(x0), float(y0), float(x1 - x0), float(y1 - y0)), 0.9, keypoints)


def _frame(capture_ms: float, frame_id: int = 1) -> Frame:
    return Frame(frame_id, capture_ms, np.zeros((360, 640, 3), np.uint8))


def _session() -> LiveSession:
    prepared = list_avatars()
    return LiveSession({a.name: a for a in prepared}, {"studio", "beach"}, TrackAvatars(None, prepared).ordered)


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_images_are_checked_before_and_after_decoding() -> None:
    jpeg = STREAMER.read_bytes()
    bgr = decode_image(jpeg, ImagePolicy(1 << 22, max_side=4096, formats=("JPEG",)), "frame 1")
    assert bgr.shape == cv2.imread(str(STREAMER)).shape
    with pytest.raises(ProtocolError, match="the long side may be at most 640") as small:
        decode_image(jpeg, ImagePolicy(1 << 22, max_side=640, formats=("JPEG",)), "frame 1")
    assert small.value.code == "too_large"
    # A decompression bomb is refused from its header, never decoded.
    with pytest.raises(ProtocolError, match="30000x30000") as bomb:
        decode_image(_png_header(30000, 30000) + b"\0" * 64, BACKGROUND_IMAGES, "background")
    assert bomb.value.code == "too_large"
    with pytest.raises(ProtocolError, match="over the 100-byte limit"):
        decode_image(jpeg, ImagePolicy(100, formats=("JPEG",)), "frame 2")
    with pytest.raises(ProtocolError, match="not a JPEG or WebP image") as kind:
        decode_image(b"GIF89a....", FRAME_IMAGES, "frame 3")
    assert kind.value.code == "bad_image"
    with pytest.raises(ProtocolError, match="broken") as broken:
        decode_image(jpeg[:600], FRAME_IMAGES, "frame 4")
    assert broken.value.code == "bad_image"


def test_a_frame_message_carries_its_id_and_capture_time() -> None:
    jpeg = cv2.imencode(".jpg", np.zeros((90, 160, 3), np.uint8))[1].tobytes()
    frame = parse_frame(FRAME_HEADER.pack(1, 4_000_000_000, 1234.5) + jpeg)
    assert (frame.frame_id, frame.capture_ms, frame.image.shape) == (4_000_000_000, 1234.5, (90, 160, 3))
    with pytest.raises(ProtocolError) as short:
        parse_frame(b"\x01\x00")
    assert short.value.code == "bad_frame"
    big = cv2.imencode(".jpg", np.zeros((8, MAX_FRAME_SIDE + 8, 3), np.uint8))[1].tobytes()
    with pytest.raises(ProtocolError, match="frame 5") as wide:
        parse_frame(FRAME_HEADER.pack(1, 5, 0.0) + big)
    assert wide.value.code == "too_large" and wide.value.to_json()["id"] == 5  # the page may send its next frame


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{nope", "not_json"),
        ("[1]", "not_json"),
        ('"x"', "not_json"),
        ('{"type": "x"}', "unknown_type"),
        ("{}", "unknown_type"),
    ],
)
def test_text_messages_must_be_known_json_objects(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as error:
        parse_text(text)
    assert error.value.code == code
    assert error.value.to_json() == {"type": "error", "code": code, "message": str(error.value)}


def test_settings_are_validated_key_by_key() -> None:
    names, backgrounds = {"kitty", "robot"}, {"studio"}
    default = parse_settings({"type": "settings"}, names, backgrounds)
    assert default.avatar is None and default.person == "all" and default.mirror and not default.skeleton
    message = {"avatar": "robot", "person": "largest", "background": {"kind": "color", "color": "#00FF00"}}
    chosen = parse_settings(message, names, backgrounds)
    assert chosen.avatar == "robot" and chosen.background == {"kind": "color", "color": "#00ff00"}
    assert parse_settings({"background": {"kind": "transparent", "x": 1}}, names, backgrounds).background == {
        "kind": "transparent"
    }
    bad = [
        ({"avatar": "dragon"}, "avatar 'dragon' is not known"),
        ({"person": "two"}, "person 'two' must be one of all, largest"),
        ({"mirror": "yes"}, "mirror must be true or false"),
        ({"fps": 0}, "fps 0 must be a number from 1 to 240"),
        ({"background": {"kind": "prepared", "name": "moon"}}, "background 'moon' is not prepared"),
        ({"background": {"kind": "color", "color": "red"}}, "must be '#rrggbb'"),
        ({"background": "studio"}, "background must be an object"),
        ({"zoom": 2}, "unknown settings ['zoom']"),
    ]
    for message, words in bad:
        with pytest.raises(ProtocolError, match=words.replace("[", r"\[").replace("]", r"\]")) as error:
            parse_settings(message, names, backgrounds)
        assert error.value.code == "bad_settings"


def test_an_uploaded_avatar_is_validated_like_a_file() -> None:
    text = avatar_files()["robot"].read_text()
    spec = parse_user_avatar({"type": "avatar", "name": "my-bot", "yaml": text})
    assert spec.name == "my-bot" and spec.parts == load_avatar("robot").parts
    with pytest.raises(ProtocolError, match=r"part 'arm'.*unknown joint") as error:
        parse_user_avatar({"name": "x", "yaml": "parts: [{name: arm, shape: limb, joints: [left_paw, nose]}]"})
    assert error.value.code == "bad_avatar"
    with pytest.raises(ProtocolError, match="needs `name`"):
        parse_user_avatar({"name": "", "yaml": text})


def test_avatar_json_carries_the_definition_with_rgb_colours() -> None:
    spec = load_avatar("kitty")
    record = avatar_json(spec)
    assert [p["name"] for p in record["parts"]] == [p.name for p in spec.parts]
    head = next(p for p in record["parts"] if p["shape"] == "head")
    assert head["fill"] == "#f6b26b" and head["ears"] == "cat" and head["face"]["style"] == "cat"
    assert hex_color((40, 30, 30)) == "#1e1e28" and hex_color(None) is None
    json.dumps(record)  # plain JSON


def test_the_session_tracks_and_smooths_exactly_as_animate_does() -> None:
    session = _session()
    tracker, smoother = PoseTracker(), PoseSmoother(30.0)
    for i in range(12):
        persons = [_person(dx=3 * i, noise=2.0, seed=i), _person(dx=300 - 2 * i, noise=2.0, seed=100 + i)]
        records = session.track(_frame(1000 + i * 1000 / 30, i), persons)
        expected = smoother.update(tracker.update(persons))
        assert [r["track_id"] for r in records] == [p.track_id for p in expected] == [1, 2]
        for record, person in zip(records, expected, strict=True):
            np.testing.assert_allclose(np.array(record["keypoints"])[:, :2], person.keypoints[:, :2], atol=0.01)
            assert set(record["rig"]["points"]) >= {"neck", "pelvis", "head", "left_wrist"}
    # Each track keeps its own prepared avatar; two people side by side look different.
    assert records[0]["avatar"] != records[1]["avatar"]


def test_the_smoother_is_told_the_real_gap_between_frames() -> None:
    session = _session()
    session.track(_frame(0.0), [_person()])
    session.track(_frame(100.0), [_person(dx=1)])
    assert session.smoother.dt == pytest.approx(0.1)
    session.track(_frame(60_000.0), [_person(dx=2)])  # a paused tab: the step is capped
    assert session.smoother.dt == pytest.approx(0.5)


def test_single_person_mode_and_avatar_choice() -> None:
    session = _session()
    session.apply_settings({"type": "settings", "person": "largest", "avatar": "robot"})
    records = session.track(_frame(0.0), [_person(scale=0.5), _person(dx=200, scale=1.2)])
    assert len(records) == 1 and records[0]["bbox"][2] > 100 and records[0]["avatar"] == "robot"
    spec = parse_user_avatar({"name": "mine", "yaml": avatar_files()["sketch"].read_text()})
    assert session.add_avatar(spec)["avatar"]["name"] == "mine"
    session.apply_settings({"type": "settings", "avatar": "mine"})
    assert session.track(_frame(33.0), [_person()])[0]["avatar"] == "mine"
    with pytest.raises(ProtocolError, match="prepared avatar's name"):
        session.add_avatar(load_avatar("kitty"))
    with pytest.raises(ProtocolError, match="not known"):
        session.apply_settings({"type": "settings", "avatar": "nobody"})
    assert session.settings.avatar == "mine"  # a refused message changes nothing


def test_pairing_codes_join_views_and_are_freed() -> None:
    hub = PairingHub(max_captures=2, max_outputs=1)
    outbox = Outbox()
    early = hub.join_output("studio-1", outbox)  # an OBS source may start before its capture page
    capture = _session()
    assert hub.join_capture("studio-1", capture) is early
    with pytest.raises(ProtocolError) as in_use:
        hub.join_capture("studio-1", _session())
    assert in_use.value.code == "pair_in_use"
    with pytest.raises(ProtocolError, match="1 output views already"):
        hub.join_output("studio-1", Outbox())
    hub.join_capture(hub.new_code(), _session())
    with pytest.raises(ProtocolError, match="2 capture pages"):
        hub.join_capture("another", _session())
    hub.leave(early, capture=capture)
    assert "studio-1" in hub.pairs  # the output view is still there
    hub.leave(early, outbox=outbox)
    assert "studio-1" not in hub.pairs and hub.sessions() == 1


def test_an_output_view_never_queues_more_than_a_few_messages() -> None:
    async def fill() -> list[str | bytes]:
        outbox = Outbox()
        for i in range(100):
            outbox.put(f"m{i}")
        return [outbox.queue.get_nowait() for _ in range(outbox.queue.qsize())]

    kept = asyncio.run(fill())
    assert kept == ["m96", "m97", "m98", "m99"]  # the newest win


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"host": "127.0.0.1:3000", "origin": "http://127.0.0.1:3000"}, None),
        ({"host": "localhost:3000", "origin": "http://localhost:3000"}, None),
        ({"host": "[::1]:3000"}, None),  # no Origin: not a browser page, nothing to forge
        ({"host": "127.0.0.1:3000", "origin": "http://evil.example"}, "cross-origin"),
        ({"host": "127.0.0.1:3000", "origin": "http://127.0.0.1:8080"}, "cross-origin"),
        ({"host": "evil.example:3000", "origin": "http://evil.example:3000"}, "is not allowed"),  # DNS rebinding
    ],
)
def test_only_loopback_hosts_and_same_origin_pages_get_the_socket(headers: dict[str, str], refused: str | None) -> None:
    reason = host_refusal(headers, LOOPBACK_HOSTS)
    assert (reason is None) if refused is None else (refused in reason and len(close_reason(reason)) <= 123)


def test_user_avatar_folder_is_offered_and_checked(tmp_path: Path) -> None:
    (tmp_path / "my-cat.yaml").write_text(avatar_files()["kitty"].read_text())
    server = StudioServer(lambda: None, avatar_dir=tmp_path)  # type: ignore[arg-type, return-value]
    config = server.config()
    assert config["user_avatars"] == ["my-cat"]
    assert [a["name"] for a in config["avatars"]][:4] == ["kitty", "idol", "robot", "sketch"]
    assert len(config["skeleton"]) == 19 and len(config["keypoints"]) == 17
    (tmp_path / "broken.yaml").write_text("parts: [{shape: blob}]")
    with pytest.raises(VtposeError, match=r"broken\.yaml"):
        user_avatars(tmp_path)
    with pytest.raises(VtposeError, match="not a folder"):
        user_avatars(tmp_path / "missing")


def test_config_carries_the_wire_numbers_the_page_uses() -> None:
    """The page's socket reads every protocol number from the config (socket.js hard-codes none): these are the
    wire contract an open page or OBS source relies on, spelled out so that a change to them is deliberate."""
    config = StudioServer(lambda: None).config()  # type: ignore[arg-type, return-value]
    assert config["protocol"] == {
        "frame": 1,
        "background": 2,
        "vrm": 3,
        "frame_header": "<BId",  # kind, frame id, capture ms: the page packs it field by field
        "close": {
            "policy": 1008,
            "internal": 1011,
            "try_again": 1013,
            "bad_request": 4400,
            "pair_in_use": 4409,
            "too_many": 4429,
        },
        "final_closes": [1008, 4400, 4409],  # the page retries the others (a model still loading, a full server)
    }
    assert struct.calcsize(config["protocol"]["frame_header"]) == 13


def test_live_frames_run_at_the_live_imgsz(monkeypatch: pytest.MonkeyPatch) -> None:
    """The studio's model input long side: 480 unless VTPOSE_LIVE_IMGSZ says otherwise; a bad value is refused."""
    from vtpose.backends import open_backend
    from vtpose.studio.live.protocol import DEFAULT_LIVE_IMGSZ, ENV_LIVE_IMGSZ, live_imgsz

    monkeypatch.delenv(ENV_LIVE_IMGSZ, raising=False)
    assert live_imgsz() == DEFAULT_LIVE_IMGSZ == 480
    monkeypatch.setenv(ENV_LIVE_IMGSZ, "640")
    assert live_imgsz() == 640
    for bad in ("500", "abc", "96", "2048"):
        monkeypatch.setenv(ENV_LIVE_IMGSZ, bad)
        with pytest.raises(VtposeError, match=ENV_LIVE_IMGSZ):
            live_imgsz()
    # The same letterbox rule at the smaller size: a 1280x720 frame becomes 480x288 (640x384 at the model's size).
    model = open_backend(PRETRAINED_WEIGHTS, imgsz=640)
    frame = np.zeros((720, 1280, 3), dtype=np.uint8)
    assert model.prepare(frame).tensor.shape == (3, 384, 640)
    assert model.prepare(frame, imgsz=480).tensor.shape == (3, 288, 480)
    with pytest.raises(ValueError, match="multiple of 32"):
        model.prepare(frame, imgsz=500)


def test_settings_choose_the_mode_and_a_vrm() -> None:
    server = StudioServer(lambda: None)  # type: ignore[arg-type, return-value]
    session = server.new_session()
    assert session.settings.mode == "2d" and session.settings.vrm == {"kind": "prepared", "name": "kitty"}
    chosen = session.apply_settings({"type": "settings", "mode": "3d", "vrm": {"kind": "prepared", "name": "robot"}})
    assert chosen.to_json()["mode"] == "3d" and chosen.to_json()["vrm"] == {"kind": "prepared", "name": "robot"}
    upload = session.apply_settings({"type": "settings", "mode": "3d", "vrm": {"kind": "upload", "name": "me.vrm"}})
    assert upload.vrm == {"kind": "upload", "name": "me.vrm"}
    for bad, words in (
        ({"mode": "4d"}, "mode '4d' must be one of 2d, 3d"),
        ({"vrm": {"kind": "prepared", "name": "nobody"}}, "vrm 'nobody' is not offered"),
        ({"vrm": {"kind": "url", "name": "x"}}, "kind is one of prepared, upload"),
        ({"vrm": {"kind": "upload"}}, "uploaded vrm's name"),
    ):
        with pytest.raises(ProtocolError, match=words) as caught:
            session.apply_settings({"type": "settings", **bad})
        assert caught.value.code == "bad_settings"
    assert session.settings.vrm == {"kind": "upload", "name": "me.vrm"}, "a refused message changes nothing"


def test_expr_messages_carry_two_numbers_only() -> None:
    assert parse_text('{"type": "expr", "blink": 1, "mouth": 0.25}')["type"] == "expr"
    assert parse_expr({"type": "expr", "blink": 1, "mouth": 0.25}) == {"type": "expr", "blink": 1.0, "mouth": 0.25}
    for bad in ({"blink": 2}, {"mouth": "open"}, {"blink": True}, {"eyes": 1}):
        with pytest.raises(ProtocolError) as caught:
            parse_expr({"type": "expr", **bad})
        assert caught.value.code == "bad_expr"


def test_3d_mode_adds_body3d_per_track_and_2d_computes_nothing() -> None:
    server = StudioServer(lambda: None)  # type: ignore[arg-type, return-value]
    session = server.new_session()
    (record,) = session.track(_frame(0.0), [_person()])
    assert "rig" in record and "body3d" not in record
    session.apply_settings({"type": "settings", "mode": "3d"})
    (record,) = session.track(_frame(33.0), [_person()])
    body = record["body3d"]
    assert list(body["bones"]) == list(BONES) and all(len(q) == 4 for q in body["bones"].values())
    assert body["shoulder_width"] > 0 and len(body["hips"]) == 2 and set(body["confidence"]) == set(BONES)
    assert set(session.solvers) == {record["track_id"]}
    solver = session.solvers[record["track_id"]]
    session.track(_frame(66.0), [])
    assert session.solvers == {record["track_id"]: solver}, "a track missed for a frame keeps its solver"
    (again,) = session.track(_frame(99.0), [_person()])
    assert again["track_id"] == record["track_id"] and session.solvers[record["track_id"]] is solver
    for i in range(MAX_TRACK_AGE + 1):
        session.track(_frame(132.0 + 33.0 * i), [])
    assert session.solvers == {}, "a track the tracker forgot takes its solver with it"


def test_vrm_messages_are_checked_and_the_config_offers_the_vrms(tmp_path: Path) -> None:
    kitty = prepared_vrm_files()["kitty"].read_bytes()
    assert parse_vrm(kitty).version == "1.0"
    with pytest.raises(ProtocolError, match="not a glTF binary") as caught:
        parse_vrm(b"not a vrm at all, just text")
    assert caught.value.code == "bad_vrm"
    (tmp_path / "mine.vrm").write_bytes(kitty)
    config = StudioServer(lambda: None, avatar_dir=tmp_path).config()  # type: ignore[arg-type, return-value]
    assert config["default_vrm"] == "kitty" and config["limits"]["max_vrm_bytes"] == MAX_VRM_BYTES
    names = [(v["name"], v["source"], v["url"]) for v in config["vrms"]]
    assert names[0] == ("kitty", "prepared", "vrms/kitty.vrm") and ("mine", "user", "vrms/mine.vrm") in names
    (tmp_path / "broken.vrm").write_bytes(b"glTF nonsense")
    with pytest.raises(VtposeError, match=r"broken\.vrm: .*too short"):
        user_vrms(tmp_path)
