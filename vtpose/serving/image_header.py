"""What an encoded image says about itself before any pixel is decoded: its format and its size.

Read from the first bytes only, so that a decompression bomb (a few KB declaring 30000 x 30000 pixels) is refused
before a decoder allocates anything. Pure byte parsing, no decoder library: the decoder only ever sees bytes whose
format and size these readers accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

ByteOrder = Literal["little", "big"]

# The formats the decoder may be allowed to take (cameras, browsers, screen grabbers); names as people write them.
KNOWN_FORMATS = ("JPEG", "PNG", "WebP", "BMP", "GIF", "TIFF")

# Each format's fixed prefix: bytes that open every file of the format and nothing else. PNG's includes the start
# of the IHDR chunk (the first chunk of every PNG); WebP's the RIFF container with its form type.
_PNG_PREFIX = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"
_TIFF_PREFIXES = (b"II*\x00", b"MM\x00*")
_GIF_PREFIXES = (b"GIF87a", b"GIF89a")

# JPEG markers (ITU T.81 table B.1): SOFn carry the frame size; these stand alone, without a length.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_JPEG_SOI, _JPEG_EOI, _JPEG_SOS = 0xD8, 0xD9, 0xDA
_TIFF_WIDTH, _TIFF_HEIGHT = 256, 257
_TIFF_SHORT, _TIFF_LONG = 3, 4


def image_format(data: bytes) -> str | None:
    """The format whose fixed prefix `data` starts with (a name in `KNOWN_FORMATS`), or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(_PNG_PREFIX):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data.startswith(_GIF_PREFIXES):
        return "GIF"
    if data.startswith(b"BM"):
        return "BMP"
    if data.startswith(_TIFF_PREFIXES):
        return "TIFF"
    return None


def header_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) in pixels as the header of a `kind` image declares them; None when the header is cut short or
    malformed (the file is corrupt or truncated).

    Raises:
        ValueError: `kind` is not one of `KNOWN_FORMATS`.
    """
    reader = _READERS.get(kind)
    if reader is None:
        raise ValueError(f"image format {kind!r} is not one of {', '.join(KNOWN_FORMATS)}")
    return reader(data)


def _u16(data: bytes, at: int, order: ByteOrder = "big") -> int:
    return int.from_bytes(data[at : at + 2], order)


def _u32(data: bytes, at: int, order: ByteOrder = "big") -> int:
    return int.from_bytes(data[at : at + 4], order)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """From the first frame header (SOFn), walking the marker segments after SOI; no SOFn before the scan is
    corrupt (libjpeg would refuse it too)."""
    i, end = 2, len(data)
    while i < end:
        if data[i] != 0xFF:
            return None
        while i < end and data[i] == 0xFF:  # fill bytes may pad any marker
            i += 1
        if i >= end:
            return None
        marker = data[i]
        i += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0x00, _JPEG_SOI, _JPEG_EOI, _JPEG_SOS) or i + 2 > end:
            return None
        length = _u16(data, i)
        if marker in _JPEG_SOF:
            # length (2), sample precision (1), number of lines (2), samples per line (2)
            return (_u16(data, i + 5), _u16(data, i + 3)) if length >= 7 and i + 7 <= end else None
        if length < 2:
            return None
        i += length
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    return (_u32(data, 16), _u32(data, 20)) if len(data) >= 24 else None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """From the first chunk: VP8 (lossy), VP8L (lossless) or VP8X (extended, the canvas size)."""
    if len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # after the 3-byte frame tag, the key frame start code
        return _u16(data, 26, "little") & 0x3FFF, _u16(data, 28, "little") & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = _u32(data, 21, "little")  # 14 bits width - 1, 14 bits height - 1
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _gif_size(data: bytes) -> tuple[int, int] | None:
    """The logical screen size (every frame is drawn inside it)."""
    return (_u16(data, 6, "little"), _u16(data, 8, "little")) if len(data) >= 10 else None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    """From the DIB header: OS/2's 12-byte one (16-bit sizes) or Windows' 40-byte and later (32-bit, signed: a
    negative height means rows top-down)."""
    if len(data) < 26:
        return None
    dib_size = _u32(data, 14, "little")
    if dib_size == 12:
        return _u16(data, 18, "little"), _u16(data, 20, "little")
    if dib_size < 40:
        return None
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)
    return width, abs(height)


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth and ImageLength from the first image file directory."""
    order: ByteOrder = "little" if data[:2] == b"II" else "big"
    ifd = _u32(data, 4, order)
    if ifd < 8 or ifd + 2 > len(data):
        return None
    count = _u16(data, ifd, order)
    sizes: dict[int, int] = {}
    for entry in range(ifd + 2, min(ifd + 2 + 12 * count, len(data) - 11), 12):
        tag, kind = _u16(data, entry, order), _u16(data, entry + 2, order)
        if tag in (_TIFF_WIDTH, _TIFF_HEIGHT) and kind in (_TIFF_SHORT, _TIFF_LONG):
            # A single value sits in the entry's value field, left-justified.
            sizes[tag] = _u16(data, entry + 8, order) if kind == _TIFF_SHORT else _u32(data, entry + 8, order)
    if _TIFF_WIDTH not in sizes or _TIFF_HEIGHT not in sizes:
        return None
    return sizes[_TIFF_WIDTH], sizes[_TIFF_HEIGHT]


_READERS: dict[str, Callable[[bytes], tuple[int, int] | None]] = {
    "JPEG": _jpeg_size,
    "PNG": _png_size,
    "WebP": _webp_size,
    "GIF": _gif_size,
    "BMP": _bmp_size,
    "TIFF": _tiff_size,
}
