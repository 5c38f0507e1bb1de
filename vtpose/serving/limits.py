"""Bounds on what one HTTP request may ask of the pose service, from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus

from vtpose.errors import RequestRejected
from vtpose.serving.decoding import ImagePolicy
from vtpose.serving.image_header import KNOWN_FORMATS

ENV_MAX_IMAGE_BYTES = "VTPOSE_MAX_IMAGE_BYTES"
ENV_MAX_IMAGE_PIXELS = "VTPOSE_MAX_IMAGE_PIXELS"
ENV_MAX_BATCH_IMAGES = "VTPOSE_MAX_BATCH_IMAGES"


@dataclass(frozen=True)
class ServingLimits:
    """Bounds on what one request may ask of the server.

    Attributes:
        max_image_bytes: largest encoded image accepted, in bytes.
        max_image_pixels: largest width x height accepted; checked from the header before any decoding, so a
            30000 x 30000 PNG of a few KB is refused without allocating its 2.7 GB of pixels.
        max_batch_images: most images in one /predict_batch request.
    """

    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    max_batch_images: int = 16

    def __post_init__(self) -> None:
        for name in ("max_image_bytes", "max_image_pixels", "max_batch_images"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingLimits:
        """Limits from VTPOSE_MAX_IMAGE_BYTES, VTPOSE_MAX_IMAGE_PIXELS and VTPOSE_MAX_BATCH_IMAGES, else defaults.

        Raises:
            ValueError: a variable is set to something other than a positive integer.
        """
        environ = os.environ if environ is None else environ
        defaults = cls()
        values: dict[str, int] = {}
        for attribute, variable in (
            ("max_image_bytes", ENV_MAX_IMAGE_BYTES),
            ("max_image_pixels", ENV_MAX_IMAGE_PIXELS),
            ("max_batch_images", ENV_MAX_BATCH_IMAGES),
        ):
            raw = environ.get(variable)
            if raw is None or raw == "":
                values[attribute] = getattr(defaults, attribute)
                continue
            try:
                values[attribute] = int(raw)
            except ValueError:
                raise ValueError(f"{variable}={raw!r} must be a positive integer") from None
        return cls(**values)

    def image_policy(self) -> ImagePolicy:
        """The policy an uploaded image is decoded under: these limits, every known format, EXIF orientation
        applied (as `vtpose infer` reads a file)."""
        return ImagePolicy(
            max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels, formats=KNOWN_FORMATS, apply_exif=True
        )


def check_batch_size(count: int, limits: ServingLimits) -> None:
    """Refuse an empty batch or one over `limits.max_batch_images`.

    Raises:
        RequestRejected: 400 for none, 413 for too many.
    """
    if count == 0:
        raise RequestRejected("images: the batch is empty; send one or more `images` fields.", field="images")
    if count > limits.max_batch_images:
        raise RequestRejected(
            f"images: {count} images is over the batch limit of {limits.max_batch_images} ({ENV_MAX_BATCH_IMAGES}); "
            "split the request.",
            field="images",
            status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
