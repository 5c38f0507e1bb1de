"""The one decoder for untrusted images (vtpose.serving.decoding): every format, every refusal, EXIF orientation, and
that the HTTP uploads and the live socket go through it under their own policies."""

from __future__ import annotations

import io
import struct
import zlib
from http import HTTPStatus
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from vtpose.errors import RequestRejected
from vtpose.paths import MEDIA_DIR
from vtpose.pose import load_image
from vtpose.serving import decoding
from vtpose.serving.decoding import ImagePolicy, decode_image
from vtpose.serving.image_header import KNOWN_FORMATS, header_size, image_format
from vtpose.serving.limits import ServingLimits
from vtpose.studio.live import protocol

STREAMER = MEDIA_DIR / "game-streamer-tips.jpg"
UPLOADS = ServingLimits(max_image_bytes=2_000_000, max_image_pixels=10_000_000).image_policy()
PILLOW_NAMES = {"WebP": "WEBP"}


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring width x height RGB pixels, and no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def _encode(pixels: np.ndarray, kind: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=PILLOW_NAMES.get(kind, kind), **options)
    return buffer.getvalue()


def _pattern() -> np.ndarray:
    """50 x 30 RGB in four flat colours, so that palette (GIF) and lossy formats keep it."""
    pixels = np.zeros((30, 50, 3), np.uint8)
    pixels[:, :10] = (255, 255, 255)
    pixels[:15, 25:] = (255, 0, 0)
    pixels[15:, 25:] = (0, 0, 255)
    return pixels


def test_an_upload_decodes_exactly_as_vtpose_infer_reads_the_file() -> None:
    decoded = decode_image(STREAMER.read_bytes(), UPLOADS)
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, load_image(STREAMER))


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("JPEG", {"quality": 95}),
        ("PNG", {}),
        ("WebP", {"quality": 95}),  # VP8 (lossy)
        ("WebP", {"lossless": True}),  # VP8L
        ("WebP", {"lossless": True, "exif": Image.Exif().tobytes()}),  # VP8X: the extended header
        ("BMP", {}),
        ("GIF", {}),
        ("TIFF", {}),
    ],
)
def test_every_known_format_is_read_from_its_header_then_decoded(kind: str, options: dict[str, Any]) -> None:
    data = _encode(_pattern(), kind, **options)
    assert image_format(data) == kind
    assert header_size(data, kind) == (50, 30)
    decoded = decode_image(data, UPLOADS)
    assert decoded.shape == (30, 50, 3)
    if kind == "JPEG" or (kind == "WebP" and not options.get("lossless")):
        # Lossy: the pixels Pillow's own decoder gets from the same bytes (the encoder blurred the colour edges).
        with Image.open(io.BytesIO(data)) as image:
            expected = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
        assert np.abs(decoded.astype(np.int16) - expected).mean() < 0.5
    else:
        assert np.array_equal(decoded, cv2.cvtColor(_pattern(), cv2.COLOR_RGB2BGR))


def test_jpeg_fill_bytes_before_a_marker_are_skipped() -> None:
    data = STREAMER.read_bytes()
    padded = data[:2] + b"\xff\xff" + data[2:]  # T.81 B.1.1.2: any marker may be preceded by 0xFF fill bytes
    assert header_size(padded, "JPEG") == header_size(data, "JPEG") == (load_image(STREAMER).shape[1::-1])


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", 400, "the image is empty"),
        (b"hello", 415, "not a readable image (the bytes are not a JPEG, PNG, WebP, BMP, GIF or TIFF image)"),
        (b"GIF89a", 400, "the GIF header is broken"),  # the signature, then no screen size
        (b"\x89PNG\r\n\x1a\n", 415, "not a readable image"),  # no IHDR chunk: not a PNG
        (b"\xff\xd8\xff\xe0garbage", 400, "the JPEG header is broken (corrupt or truncated)"),
        (STREAMER.read_bytes()[:600], 400, "the JPEG header is broken"),  # cut before the frame header
        (STREAMER.read_bytes()[:20000], 400, "the JPEG data is broken (corrupt or truncated)"),
        (STREAMER.read_bytes()[:-2], 400, "the JPEG data is broken"),  # only the end-of-image marker missing
        (_png_header(0, 10), 400, "the header says 0x10 pixels; the file is corrupt"),
        (b"x" * 2_000_001, 413, "2000001 bytes is over the 2000000-byte limit"),
        # A decompression bomb is refused from its header: these bytes hold no pixels at all, so a decoder would
        # have answered "broken", not "too many pixels".
        (_png_header(30000, 30000) + b"\0" * 64, 413, "30000x30000 = 900000000 pixels is over the limit of 10000000"),
        (_encode(np.zeros((3000, 4000), bool), "PNG"), 413, "4000x3000 = 12000000 pixels"),  # 12 Mpx in a few KB
    ],
    ids=[
        "empty", "text", "gif-signature-only", "png-signature-only", "jpeg-garbage", "jpeg-cut-in-header",
        "jpeg-cut-in-data", "jpeg-without-eoi", "png-zero-width", "over-byte-limit", "bomb-header", "bomb-png",
    ],
)  # fmt: skip
def test_each_refusal_has_its_status_and_says_why(data: bytes, status: int, words: str) -> None:
    with pytest.raises(RequestRejected) as caught:
        decode_image(data, UPLOADS, field="images[2]")
    assert caught.value.status == status and caught.value.field == "images[2]"
    assert caught.value.to_json() == {"error": str(caught.value), "field": "images[2]", "status": status}
    assert str(caught.value).startswith("images[2]: ") and words in str(caught.value)


def test_the_policy_decides_formats_and_sides() -> None:
    png = _encode(_pattern(), "PNG")
    with pytest.raises(RequestRejected, match=r"not a JPEG or WebP image") as kind:
        decode_image(png, ImagePolicy(1 << 20, formats=("JPEG", "WebP")), field="frame 3")
    assert kind.value.status == 415
    with pytest.raises(RequestRejected, match="50x30 pixels; the long side may be at most 40") as side:
        decode_image(png, ImagePolicy(1 << 20, max_side=40))
    assert side.value.status == 413
    assert decode_image(png, ImagePolicy(1 << 20, max_side=50, max_pixels=1500)).shape == (30, 50, 3)
    with pytest.raises(ValueError, match=r"formats=.*one or more of JPEG, PNG"):
        ImagePolicy(100, formats=("HEIC",))
    with pytest.raises(ValueError, match="max_side=0"):
        ImagePolicy(100, max_side=0)


@pytest.mark.parametrize("kind", KNOWN_FORMATS)
def test_any_cut_of_a_file_is_decoded_or_refused_never_a_crash(kind: str) -> None:
    """Every prefix of a valid file is an image or a RequestRejected (a 4xx), never another exception (a 500)."""
    data = _encode(np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8), kind)
    for end in sorted({*range(0, 64), *range(64, len(data), max(1, len(data) // 50))}):
        try:
            decode_image(data[:end], UPLOADS)
        except RequestRejected as rejected:
            assert rejected.status in (400, 415), (end, str(rejected))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_uploads_are_turned_by_their_exif_orientation(orientation: int) -> None:
    """A JPEG tagged with each EXIF orientation comes out as Pillow's exif_transpose turns it."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(_pattern(), "JPEG", exif=exif.tobytes(), quality=95)
    with Image.open(io.BytesIO(data)) as image:
        expected = cv2.cvtColor(np.asarray(ImageOps.exif_transpose(image).convert("RGB")), cv2.COLOR_RGB2BGR)
    decoded = decode_image(data, UPLOADS)
    assert decoded.shape == expected.shape == ((30, 50, 3) if orientation < 5 else (50, 30, 3))
    assert np.abs(decoded.astype(np.int16) - expected).mean() < 2
    if orientation == 6:  # "rotate 90 clockwise": the white band on the left is now on top
        assert decoded[:10].mean() > 200 and decoded[20:, :15].mean() < 100
    as_stored = decode_image(data, ImagePolicy(1 << 20, apply_exif=False))
    assert as_stored.shape == (30, 50, 3)


def test_the_http_and_socket_paths_call_the_same_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live socket's frames and backgrounds go through `decoding.decode_image` under their own policies (the
    service's uploads under `ServingLimits.image_policy()`: tests/test_service.py compares a live server's answer)."""
    calls: list[tuple[ImagePolicy, str]] = []
    real = decoding.decode_image

    def spy(data: bytes, policy: ImagePolicy, field: str = "image") -> np.ndarray:
        calls.append((policy, field))
        return real(data, policy, field)

    monkeypatch.setattr(decoding, "decode_image", spy)
    jpeg = cv2.imencode(".jpg", np.zeros((90, 160, 3), np.uint8))[1].tobytes()
    assert protocol.parse_frame(protocol.FRAME_HEADER.pack(1, 7, 0.0) + jpeg).image.shape == (90, 160, 3)
    protocol.decode_image(_encode(_pattern(), "PNG"), protocol.BACKGROUND_IMAGES, "background")
    assert calls == [(protocol.FRAME_IMAGES, "frame 7"), (protocol.BACKGROUND_IMAGES, "background")]
    assert protocol.FRAME_IMAGES.max_side == protocol.MAX_FRAME_SIDE and not protocol.FRAME_IMAGES.apply_exif


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"GIF89a not a frame", "bad_image"),
        (STREAMER.read_bytes()[:20000], "bad_image"),
        (b"\xff\xd8\xff" + b"\0" * (protocol.MAX_FRAME_BYTES + 1), "too_large"),
        (cv2.imencode(".jpg", np.zeros((8, protocol.MAX_FRAME_SIDE + 8, 3), np.uint8))[1].tobytes(), "too_large"),
    ],
)
def test_the_socket_answers_the_decoders_refusal_with_its_code(data: bytes, code: str) -> None:
    with pytest.raises(RequestRejected) as rejected:
        decode_image(data, protocol.FRAME_IMAGES, field="frame 5")
    with pytest.raises(protocol.ProtocolError) as answered:
        protocol.parse_frame(protocol.FRAME_HEADER.pack(1, 5, 0.0) + data)
    assert answered.value.to_json() == {"type": "error", "code": code, "message": str(rejected.value), "id": 5}


def test_a_rejected_request_is_always_a_4xx() -> None:
    with pytest.raises(ValueError, match="status=500"):
        RequestRejected("oops", field="image", status=HTTPStatus.INTERNAL_SERVER_ERROR)
