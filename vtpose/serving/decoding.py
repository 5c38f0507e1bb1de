"""The one decoder for every image a client sends: HTTP uploads (/predict, /predict_batch, /render) and the live
studio's socket (camera frames, uploaded backgrounds), under one policy whose limits are parameters.

The checks run from cheapest to dearest: the byte count, the format and the size read from the header
(`vtpose.serving.image_header`: nothing is allocated for a decompression bomb), then OpenCV's decode, which is
what catches a truncated or corrupt file, and the limits once more on what it produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

import cv2
import numpy as np

from vtpose.errors import RequestRejected
from vtpose.serving.image_header import KNOWN_FORMATS, header_size, image_format


@dataclass(frozen=True)
class ImagePolicy:
    """What an untrusted image may be.

    Attributes:
        max_bytes: most encoded bytes.
        max_pixels: most width x height, or None for no such limit.
        max_side: most pixels on the longer side, or None for no such limit.
        formats: the formats taken, a subset of `KNOWN_FORMATS`, in the order messages name them.
        apply_exif: turn the image as its EXIF orientation tag says (JPEG, PNG, WebP, TIFF), as `cv2.imread` and so
            `vtpose infer` do; False decodes the pixels as stored.

    Raises:
        ValueError: a limit that is not positive, or an unknown or empty format list.
    """

    max_bytes: int
    max_pixels: int | None = None
    max_side: int | None = None
    formats: tuple[str, ...] = KNOWN_FORMATS
    apply_exif: bool = True

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_side"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name}={value} must be a positive integer")
        unknown = [name for name in self.formats if name not in KNOWN_FORMATS]
        if unknown or not self.formats:
            raise ValueError(f"formats={self.formats!r}: use one or more of {', '.join(KNOWN_FORMATS)}")


def decode_image(data: bytes, policy: ImagePolicy, field: str = "image") -> np.ndarray:
    """Check an encoded image against `policy`, then decode it.

    Args:
        data: the encoded image.
        policy: its limits and formats.
        field: how messages name it (`image`, `images[2]`, `frame 12`).

    Returns:
        (H, W, 3) uint8 BGR.

    Raises:
        RequestRejected: empty (400), over the byte, pixel or side limit (413), not one of `policy.formats` (415),
            a header or data that is corrupt or truncated (400).
    """
    if not data:
        raise RequestRejected(f"{field}: the image is empty (0 bytes); send an image file.", field=field)
    if len(data) > policy.max_bytes:
        raise RequestRejected(
            f"{field}: {len(data)} bytes is over the {policy.max_bytes}-byte limit; send a smaller or more "
            "compressed image.",
            field=field,
            status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    kind = image_format(data)
    if kind not in policy.formats:
        raise RequestRejected(
            f"{field}: not a readable image (the bytes are not a {_either(policy.formats)} image); send one of those.",
            field=field,
            status=HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        )
    size = header_size(data, kind)
    if size is None:
        raise RequestRejected(
            f"{field}: the {kind} header is broken (corrupt or truncated); send the complete file.", field=field
        )
    if min(size) <= 0:
        raise RequestRejected(f"{field}: the header says {size[0]}x{size[1]} pixels; the file is corrupt.", field=field)
    _check_size(size, policy, field)
    flags = cv2.IMREAD_COLOR if policy.apply_exif else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.size == 0:
        raise RequestRejected(
            f"{field}: the {kind} data is broken (corrupt or truncated) and cannot be decoded; send the complete file.",
            field=field,
        )
    # A header may under-declare what its frames hold (a GIF frame larger than its screen, say).
    _check_size((image.shape[1], image.shape[0]), policy, field)
    return image


def _check_size(size: tuple[int, int], policy: ImagePolicy, field: str) -> None:
    width, height = size
    if policy.max_pixels is not None and width * height > policy.max_pixels:
        raise RequestRejected(
            f"{field}: {width}x{height} = {width * height} pixels is over the limit of {policy.max_pixels} pixels; "
            "downscale the image before sending it.",
            field=field,
            status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    if policy.max_side is not None and max(width, height) > policy.max_side:
        raise RequestRejected(
            f"{field}: {width}x{height} pixels; the long side may be at most {policy.max_side}, so downscale the "
            "image before sending it.",
            field=field,
            status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )


def _either(names: tuple[str, ...]) -> str:
    """`JPEG`, `JPEG or WebP`, `JPEG, PNG or WebP`."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
