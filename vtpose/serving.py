"""What the pose service needs besides BentoML: input limits, image decoding, response schemas, model loading.

The BentoML service in `service/service.py` only adapts HTTP to these functions, so everything that can go wrong
with a request (an empty body, a text file, a truncated JPEG, a decompression bomb) is decided here, in plain
functions a test can call without a server.
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vtpose.artifacts import sha256_file
from vtpose.errors import VtposeError
from vtpose.keypoints import NUM_KEYPOINTS
from vtpose.predict import PersonPose, PosePredictor

# Formats Pillow is allowed to try: the ones cameras, browsers and screen grabbers produce. Naming them keeps
# Pillow from probing exotic decoders (EPS through Ghostscript, for one) on untrusted bytes.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
BACKENDS = ("onnx", "pytorch")

ENV_MAX_IMAGE_BYTES = "VTPOSE_MAX_IMAGE_BYTES"
ENV_MAX_IMAGE_PIXELS = "VTPOSE_MAX_IMAGE_PIXELS"
ENV_MAX_BATCH_IMAGES = "VTPOSE_MAX_BATCH_IMAGES"
ENV_BACKEND = "VTPOSE_BACKEND"


class ImageRejected(VtposeError):
    """A request's image cannot be used; `status` is the HTTP status to answer with (always 4xx).

    Args:
        message: what is wrong and what to send instead.
        status: 400 (bad or corrupt data), 413 (too large), 415 (not an image).
        field: the request field (or `images[3]`) the problem is in.
    """

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST, field: str = "image") -> None:
        super().__init__(message)
        self.status = status
        self.field = field

    def to_json(self) -> dict[str, Any]:
        """The JSON error body: `{"error": message, "field": field, "status": code}`."""
        return {"error": str(self), "field": self.field, "status": int(self.status)}


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
    def from_env(cls, environ: MutableMapping[str, str] | None = None) -> ServingLimits:
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


def decode_image_bytes(
    data: bytes,
    limits: ServingLimits,
    content_type: str | None = None,
    field: str = "image",
) -> np.ndarray:
    """Validate and decode an uploaded image into the BGR array the predictor takes.

    The checks run from cheapest to dearest: size of the bytes, the declared content type, the format and
    dimensions read from the header, and only then the full decode, which is what catches a truncated file.
    EXIF orientation is applied, as `cv2.imread` (and so `vtpose infer`) does.

    Args:
        data: the encoded image (JPEG, PNG, WebP, BMP, GIF, TIFF).
        limits: byte and pixel limits.
        content_type: the part's declared media type, if any; anything but `image/*` (or a generic
            `application/octet-stream`) is refused.
        field: the request field, named in errors.

    Returns:
        (H, W, 3) uint8 BGR array.

    Raises:
        ImageRejected: empty (400), over the byte or pixel limit (413), not an image (415), corrupt or truncated (400).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageRejected(f"{field}: the upload is empty (0 bytes); send a JPEG or PNG file.", field=field)
    if len(data) > limits.max_image_bytes:
        raise ImageRejected(
            f"{field}: {len(data)} bytes is over the limit of {limits.max_image_bytes} bytes "
            f"({ENV_MAX_IMAGE_BYTES}); send a smaller or more compressed image.",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            field,
        )
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type and not (media_type.startswith("image/") or media_type == "application/octet-stream"):
        raise ImageRejected(
            f"{field}: content type {media_type!r} is not an image; send image/jpeg, image/png or image/webp.",
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            field,
        )
    try:
        # Pillow's own bomb guard warns or raises at 1-2x MAX_IMAGE_PIXELS; ours below is the one that decides,
        # so silence the warning and treat its error as the same 413.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = _pillow_open()(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise ImageRejected(
            f"{field}: not a readable image (the bytes are not {', '.join(ACCEPTED_FORMATS)}); send a JPEG or PNG.",
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            field,
        ) from None
    except Image.DecompressionBombError as error:
        raise ImageRejected(
            f"{field}: the header declares a decompression-bomb-sized image ({error}); the limit is "
            f"{limits.max_image_pixels} pixels ({ENV_MAX_IMAGE_PIXELS}).",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            field,
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        # A recognised signature with a header cut short or malformed: Pillow raises these while parsing it.
        raise ImageRejected(
            f"{field}: the image header is corrupt or truncated ({error}); send the complete file.", field=field
        ) from None
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageRejected(f"{field}: the header says {width}x{height} pixels; the file is corrupt.", field=field)
        if width * height > limits.max_image_pixels:
            raise ImageRejected(
                f"{field}: {width}x{height} = {width * height} pixels is over the limit of {limits.max_image_pixels} "
                f"({ENV_MAX_IMAGE_PIXELS}); downscale the image before sending it.",
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                field,
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image.load()
                oriented = ImageOps.exif_transpose(image)
                rgb = oriented.convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            # Pillow reports a truncated or corrupt stream as OSError ("image file is truncated"), a bad header
            # field as SyntaxError and some broken chunks as ValueError; all three are the sender's data.
            raise ImageRejected(
                f"{field}: the {image.format} data is corrupt or truncated ({error}); send the complete file.",
                field=field,
            ) from None
    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def _pillow_open() -> Callable[..., Any]:
    """Pillow's own `Image.open`, even after Ultralytics has replaced it.

    Importing Ultralytics swaps `PIL.Image.open` for a wrapper that, on a file Pillow cannot identify, runs
    `check_requirements("pi-heif")` (a pip install when online) and retries. An upload of junk bytes must not
    install packages on the server, so unidentifiable data goes to Pillow's original function and becomes a 415.
    """
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    return original if callable(original) else Image.open


def check_batch_size(count: int, limits: ServingLimits) -> None:
    """Refuse an empty batch or one over `limits.max_batch_images`.

    Raises:
        ImageRejected: 400 for none, 413 for too many.
    """
    if count == 0:
        raise ImageRejected("images: the batch is empty; send one or more `images` fields.", field="images")
    if count > limits.max_batch_images:
        raise ImageRejected(
            f"images: {count} images is over the batch limit of {limits.max_batch_images} ({ENV_MAX_BATCH_IMAGES}); "
            "split the request.",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "images",
        )


def shrink_for_model(image: np.ndarray, imgsz: int) -> tuple[np.ndarray, float]:
    """Downscale an image the way Ultralytics' letterbox would, so less data travels to the batched model call.

    The resize is the letterbox's own (same target size, rounding and INTER_LINEAR), so the model sees the same
    pixels; Ultralytics then finds nothing to resize. Images that fit are returned as they are.

    Args:
        image: (H, W, 3) uint8.
        imgsz: the model's square input side in pixels.

    Returns:
        The image to run on and the ratio r (<= 1): divide coordinates found on it by r to get original pixels.
    """
    height, width = image.shape[:2]
    ratio = min(imgsz / height, imgsz / width)
    if ratio >= 1.0:
        return image, 1.0
    size = (max(round(width * ratio), 1), max(round(height * ratio), 1))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), ratio


def rescale_poses(persons: Sequence[PersonPose], ratio: float) -> list[PersonPose]:
    """Persons found on an image shrunk by `ratio`, in the original image's pixels."""
    if ratio == 1.0:
        return list(persons)
    out = []
    for person in persons:
        keypoints = person.keypoints.copy()
        keypoints[:, :2] /= ratio
        x, y, w, h = person.bbox
        out.append(
            PersonPose(
                bbox=(x / ratio, y / ratio, w / ratio, h / ratio),
                score=person.score,
                keypoints=keypoints,
                track_id=person.track_id,
            )
        )
    return out


# --- Response and transfer schemas -------------------------------------------------------------------------------


class ImageSize(BaseModel):
    """The input image's size in pixels."""

    width: int = Field(description="pixels")
    height: int = Field(description="pixels")


class PersonRecord(BaseModel):
    """DESIGN.md's person record."""

    bbox: list[float] = Field(
        description="[x, y, w, h] in pixels, top-left corner and size", min_length=4, max_length=4
    )
    score: float = Field(description="person confidence in [0, 1]")
    keypoints: list[list[float]] = Field(
        description=f"{NUM_KEYPOINTS} [x, y, confidence] triples in COCO order, pixels",
        min_length=NUM_KEYPOINTS,
        max_length=NUM_KEYPOINTS,
    )

    @classmethod
    def from_pose(cls, person: PersonPose) -> PersonRecord:
        """The record of one `PersonPose` (rounded as `PersonPose.to_json` rounds)."""
        return cls.model_validate(person.to_json())

    def to_pose(self) -> PersonPose:
        """Back to a `PersonPose`, for drawing."""
        x, y, w, h = self.bbox
        return PersonPose(bbox=(x, y, w, h), score=self.score, keypoints=np.asarray(self.keypoints, dtype=np.float32))


class PoseResult(BaseModel):
    """DESIGN.md's inference JSON plus the model version that produced it."""

    image: ImageSize
    persons: list[PersonRecord]
    model_version: str = Field(description="the packaged model version (the ZenML model version it came from)")


class BatchResult(BaseModel):
    """One `PoseResult` per image, in request order."""

    results: list[PoseResult]
    model_version: str


class PixelImage(BaseModel):
    """A decoded BGR image on its way to the batched model call.

    The service calls its own batchable endpoint through BentoML's in-process client, which speaks JSON; raw
    pixels as base64 cost a memcpy-like encode, where a nested list of numbers would cost seconds.
    """

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    pixels: bytes = Field(description="height x width x 3 uint8 BGR, row-major, base64 in JSON")

    @model_validator(mode="after")
    def _pixels_match_size(self) -> PixelImage:
        # Checked while the request is parsed (a 400), not inside the batch, where one bad item would fail all.
        expected = self.width * self.height * 3
        if len(self.pixels) != expected:
            raise ValueError(f"pixels: {len(self.pixels)} bytes, expected width*height*3 = {expected}")
        return self

    @classmethod
    def from_array(cls, image: np.ndarray) -> PixelImage:
        """Wrap a (H, W, 3) uint8 array."""
        height, width = image.shape[:2]
        return cls(width=width, height=height, pixels=np.ascontiguousarray(image, dtype=np.uint8).tobytes())

    def to_array(self) -> np.ndarray:
        """The (H, W, 3) uint8 array (a writable copy: Ultralytics may modify its input in place)."""
        return np.frombuffer(self.pixels, dtype=np.uint8).reshape(self.height, self.width, 3).copy()


def pose_result(image: np.ndarray, persons: Sequence[PersonPose], model_version: str) -> PoseResult:
    """The response for one image."""
    height, width = image.shape[:2]
    return PoseResult(
        image=ImageSize(width=width, height=height),
        persons=[PersonRecord.from_pose(p) for p in persons],
        model_version=model_version,
    )


# --- Model loading ----------------------------------------------------------------------------------------------


def resolve_backend(requested: str | None) -> str:
    """The backend to serve with: `requested` (e.g. from VTPOSE_BACKEND) if set, else "onnx".

    Raises:
        ValueError: an unknown backend name.
    """
    backend = (requested or "onnx").strip().lower()
    if backend not in BACKENDS:
        raise ValueError(f"{ENV_BACKEND}={requested!r} is not a backend; use one of {BACKENDS}.")
    return backend


def verify_model_file(path: Path, expected_sha256: str) -> None:
    """Refuse a model file whose bytes are not the packaged ones.

    Raises:
        VtposeError: the file is missing or its sha256 differs from the packaging metadata.
    """
    if not path.is_file():
        raise VtposeError(f"{path}: packaged model file missing; rebuild the Bento with vtpose.packaging.build_bento.")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise VtposeError(
            f"{path}: sha256 {actual} does not match the packaged {expected_sha256}; the model store was modified "
            "after packaging. Refusing to serve it: rebuild the Bento (vtpose.packaging.build_bento)."
        )


def load_packaged_predictor(
    model_dir: Path,
    metadata: dict[str, Any],
    backend: str,
    device: str | None = None,
) -> PosePredictor:
    """Open the packaged model file for `backend` after checking it is the one packaged.

    Args:
        model_dir: the BentoML model's folder (holding model.pt and model.onnx).
        metadata: the BentoML model's metadata, as written by `vtpose.packaging.build_bento`.
        backend: "onnx" or "pytorch".
        device: passed to `PosePredictor`; None for CUDA when present, else CPU.

    Raises:
        VtposeError: metadata incomplete, file missing or sha256 mismatch.
    """
    from vtpose.packaging import MODEL_FILES

    filename = MODEL_FILES[backend]
    checksums = metadata.get("sha256") or {}
    if filename not in checksums:
        raise VtposeError(
            f"{model_dir}: the model's metadata has no sha256 for {filename}; it was not packaged by "
            "vtpose.packaging.build_bento. Rebuild the Bento."
        )
    path = model_dir / filename
    verify_model_file(path, checksums[filename])
    return PosePredictor(path, imgsz=int(metadata.get("imgsz", 640)), device=device)


# --- Admission control ------------------------------------------------------------------------------------------

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class AdmissionLimit:
    """ASGI middleware: at most `max_in_flight` requests to `paths`; beyond that 503 with Retry-After.

    BentoML's own `max_concurrency` answers 429 without Retry-After and also counts the service's calls to its
    own batched endpoint, so the queue a client sees is bounded here, on the public paths only. A declared
    Content-Length over `max_body_bytes` is refused (413) before the body is read into a temporary file.

    Args:
        app: the wrapped ASGI app.
        max_in_flight: requests admitted at once (queued behind the model or running).
        paths: the paths counted; others pass straight through.
        max_body_bytes: largest declared request body, bytes; None for no check.
        retry_after_s: the Retry-After value, seconds.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_in_flight: int,
        paths: Sequence[str],
        max_body_bytes: int | None = None,
        retry_after_s: int = 1,
    ) -> None:
        if max_in_flight <= 0:
            raise ValueError(f"max_in_flight={max_in_flight} must be positive")
        self.app = app
        self.max_in_flight = max_in_flight
        self.paths = frozenset(paths)
        self.max_body_bytes = max_body_bytes
        self.retry_after_s = retry_after_s
        self.in_flight = 0

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """Pass the request on, or answer 503 when `max_in_flight` are already being served."""
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        declared = _content_length(scope)
        if self.max_body_bytes is not None and declared is not None and declared > self.max_body_bytes:
            rejected = ImageRejected(
                f"request body: {declared} bytes is over the limit of {self.max_body_bytes} bytes; "
                "send fewer or smaller images.",
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "body",
            )
            await JSONResponse(rejected.to_json(), status_code=rejected.status)(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            response = JSONResponse(
                {"error": f"the server is busy ({self.in_flight} requests in flight); retry shortly", "status": 503},
                status_code=HTTPStatus.SERVICE_UNAVAILABLE,
                headers={"Retry-After": str(self.retry_after_s)},
            )
            await response(scope, receive, send)
            return
        # One event loop per worker: the counter needs no lock.
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _content_length(scope: MutableMapping[str, Any]) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
