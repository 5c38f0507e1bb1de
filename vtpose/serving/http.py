"""What the pose service needs besides BentoML: input limits, image decoding, response schemas, batching, ASGI
middlewares and /render. The model itself lives in `vtpose.backends`.

The BentoML service in `service/service.py` only adapts HTTP to these functions, so everything that can go wrong
with a request (an empty body, a text file, a truncated JPEG, a decompression bomb) is decided here, in plain
functions a test can call without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal, get_args

import cv2
import numpy as np
from pydantic import BaseModel, Field

from vtpose.errors import VtposeError
from vtpose.keypoints import NUM_KEYPOINTS
from vtpose.overlay import draw_skeletons, encode_png
from vtpose.pose import PersonPose

# Formats Pillow is allowed to try: the ones cameras, browsers and screen grabbers produce. Naming them keeps
# Pillow from probing exotic decoders (EPS through Ghostscript, for one) on untrusted bytes.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
EXIF_ORIENTATION = 0x0112

ENV_MAX_IMAGE_BYTES = "VTPOSE_MAX_IMAGE_BYTES"
ENV_MAX_IMAGE_PIXELS = "VTPOSE_MAX_IMAGE_PIXELS"
ENV_MAX_BATCH_IMAGES = "VTPOSE_MAX_BATCH_IMAGES"


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
                # exif_transpose copies the image even when there is nothing to turn; skip it then.
                turned = image.getexif().get(EXIF_ORIENTATION, 1) not in (0, 1)
                oriented = ImageOps.exif_transpose(image) if turned else image
                rgb = oriented if oriented.mode == "RGB" else oriented.convert("RGB")
                bgr = cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            # Pillow reports a truncated or corrupt stream as OSError ("image file is truncated"), a bad header
            # field as SyntaxError and some broken chunks as ValueError; all three are the sender's data.
            raise ImageRejected(
                f"{field}: the {image.format} data is corrupt or truncated ({error}); send the complete file.",
                field=field,
            ) from None
    return bgr


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


class PoseResult(BaseModel):
    """DESIGN.md's inference JSON plus the model version that produced it."""

    image: ImageSize
    persons: list[PersonRecord]
    model_version: str = Field(description="the packaged model version (the ZenML model version it came from)")


class BatchResult(BaseModel):
    """One `PoseResult` per image, in request order."""

    results: list[PoseResult]
    model_version: str


def pose_result(image: np.ndarray, persons: Sequence[PersonPose], model_version: str) -> PoseResult:
    """The response for one image."""
    height, width = image.shape[:2]
    return PoseResult(
        image=ImageSize(width=width, height=height),
        persons=[PersonRecord.from_pose(p) for p in persons],
        model_version=model_version,
    )


# --- In-process adaptive batching -------------------------------------------------------------------------------


@dataclass
class _Job:
    items: list[Any]
    future: asyncio.Future[list[list[PersonPose]]]
    loop: asyncio.AbstractEventLoop


class PoseBatcher:
    """Adaptive batching on the server, in-process: worker threads own the model and run queued requests together.

    Endpoints `await batcher.infer(items)`; a worker thread takes the first waiting request, then what else is
    already queued, up to `max_batch_size` items and its 1 / `workers` share of the queue (waiting at most
    `max_wait_ms` for more), runs it as one model call per input shape and hands each request its own results.
    With one client nothing waits; under load the requests that arrived during a model call share the next one.
    Only the `workers` threads call the model, so at most that many calls run at once whatever the load.

    Args:
        run: the model call, items -> persons per item (a backend's `run` on letterboxed images).
        key: groups items that may share one call (their input shape).
        max_batch_size: most items per model call.
        max_wait_ms: how long the thread waits for more requests once it has one; 0 takes only those already
            queued, which adds no latency at low load.
        workers: threads making model calls at once (ONNX Runtime sessions and OpenVINO compiled models are run
            from several threads; PyTorch's own thread pool is process-wide, so use 1 for it).

    Raises:
        ValueError: max_batch_size < 1 or max_wait_ms < 0.
    """

    def __init__(
        self,
        run: Callable[[list[Any]], list[list[PersonPose]]],
        key: Callable[[Any], Hashable],
        max_batch_size: int = 16,
        max_wait_ms: float = 0.0,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers={workers} must be at least 1")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size={max_batch_size} must be at least 1")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms={max_wait_ms} must be >= 0")
        self._run = run
        self._key = key
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.batches = 0  # model calls made, for tests and logs
        self.largest_batch = 0
        self._threads = [
            threading.Thread(target=self._serve, name=f"pose-batcher-{n}", daemon=True) for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    async def infer(self, items: list[Any]) -> list[list[PersonPose]]:
        """Persons for each item, in order; raises what the model call raised."""
        if not items:
            return []
        if not any(thread.is_alive() for thread in self._threads):
            raise VtposeError("the pose batcher threads have stopped; restart the service.")
        loop = asyncio.get_running_loop()
        job = _Job(list(items), loop.create_future(), loop)
        self._queue.put(job)
        return await job.future

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the threads after the requests already queued."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout_s)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, count, stop = [first], len(first.items), False
            deadline = time.monotonic() + self.max_wait_s
            # Leave the other workers their share of what is queued: one worker taking all of it would run it on
            # its own threads while the others idle.
            share = -(-(count + self._queue.qsize()) // len(self._threads))  # requests queued ~ images queued
            while count < min(self.max_batch_size, share):
                try:
                    remaining = deadline - time.monotonic()
                    job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
                count += len(job.items)
            self._run_jobs(jobs)
            if stop:
                return

    def _run_jobs(self, jobs: list[_Job]) -> None:
        groups: dict[Hashable, list[tuple[int, int]]] = {}
        for j, job in enumerate(jobs):
            for i, item in enumerate(job.items):
                groups.setdefault(self._key(item), []).append((j, i))
        results: list[list[list[PersonPose] | None]] = [[None] * len(job.items) for job in jobs]
        failed: dict[int, BaseException] = {}
        for members in groups.values():
            for start in range(0, len(members), self.max_batch_size):
                chunk = [(j, i) for j, i in members[start : start + self.max_batch_size] if j not in failed]
                if not chunk:
                    continue
                try:
                    found = self._run([jobs[j].items[i] for j, i in chunk])
                except Exception as error:  # handed to the waiting requests, which re-raise it (a 500)
                    for j, _ in chunk:
                        failed[j] = error
                    continue
                self.batches += 1
                self.largest_batch = max(self.largest_batch, len(chunk))
                for (j, i), persons in zip(chunk, found, strict=True):
                    results[j][i] = persons
        for j, job in enumerate(jobs):
            outcome: Any = failed.get(j, results[j])
            with contextlib.suppress(RuntimeError):  # the request's event loop already closed (shutdown)
                job.loop.call_soon_threadsafe(_settle, job.future, outcome)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():  # the request was cancelled (client gone) while it waited
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


# --- Memory --------------------------------------------------------------------------------------------------

# glibc mallopt parameters (malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def limit_malloc_retention(mmap_threshold_bytes: int = 1 << 20, arena_max: int = 4) -> bool:
    """Make glibc give large freed buffers back to the system, so a long-running server's memory plateaus.

    Every request allocates a few MB (the decoded image, its letterbox, the model's input) on one of many threads.
    glibc raises its mmap threshold after the first large free (up to 32 MB), so such buffers then come from
    per-thread arenas that keep the memory. Measured on the service at concurrency 16 for 40 s: worker RSS crept
    from 721 to 752 MiB without this, held at 614-621 MiB with it. Fixing the threshold keeps buffers over
    `mmap_threshold_bytes` on mmap (returned on free) and caps the arenas. Call it once, early, before the worker
    threads start. No-op (False) where the C library is not glibc.

    Args:
        mmap_threshold_bytes: allocations at least this large are mmapped.
        arena_max: most malloc arenas.

    Returns:
        Whether glibc accepted both settings.
    """
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold_bytes)) and bool(libc.mallopt(_M_ARENA_MAX, arena_max))


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


class InfoRoute:
    """ASGI middleware: `GET path` answers `info()` as JSON; every other request passes on.

    BentoML's endpoints are POST-only; this is the read-only page a client or a load balancer fetches to learn what
    the server runs (`/model`: backend, precision, model version).

    Args:
        app: the wrapped ASGI app.
        path: the route answered.
        info: called per request; returns a JSON-able dict, or None while the model is not loaded (then 503).
    """

    def __init__(self, app: ASGIApp, path: str, info: Callable[[], dict[str, Any] | None]) -> None:
        self.app = app
        self.path = path
        self.info = info

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """Answer GET `path`, pass everything else on."""
        if scope["type"] != "http" or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        if scope.get("method") not in ("GET", "HEAD"):
            body = {"error": f"{self.path} answers GET only", "status": 405}
            await JSONResponse(body, status_code=HTTPStatus.METHOD_NOT_ALLOWED, headers={"Allow": "GET"})(
                scope, receive, send
            )
            return
        info = self.info()
        if info is None:
            body = {"error": "the model is still loading; retry shortly", "status": 503}
            await JSONResponse(body, status_code=HTTPStatus.SERVICE_UNAVAILABLE)(scope, receive, send)
            return
        await JSONResponse(info)(scope, receive, send)


def _content_length(scope: MutableMapping[str, Any]) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class MultipartFieldCheck:
    """ASGI middleware: a multipart request whose parts are not the endpoint's fields is a 400 naming the part.

    BentoML 1.4.39 `json.loads()` every multipart part that is not a parameter of the endpoint, so a binary part
    under the wrong name (`curl -F photo=@a.jpg`) becomes its 500. Here the part headers are parsed as the body
    streams past on its way to the app (nothing is buffered); if a part has an unexpected name, whatever the app
    answers is replaced by `{"error", "field", "status": 400}`.

    Args:
        app: the wrapped ASGI app.
        fields: for each path checked, the part names it accepts (e.g. {"/predict": {"image"}}).
    """

    def __init__(self, app: ASGIApp, fields: Mapping[str, Collection[str]]) -> None:
        self.app = app
        self.fields = {path: frozenset(names) for path, names in fields.items()}

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """Pass the request on, watching its multipart part names."""
        allowed = self.fields.get(scope.get("path", "")) if scope["type"] == "http" else None
        boundary = _multipart_boundary(scope) if allowed is not None else None
        if allowed is None or boundary is None:
            await self.app(scope, receive, send)
            return
        from python_multipart.exceptions import MultipartParseError
        from starlette.responses import JSONResponse

        unknown: list[str] = []
        parser: Any = _part_name_parser(boundary, lambda name: name in allowed or unknown.append(name))
        replaced = False

        async def watched_receive() -> Any:
            nonlocal parser
            message = await receive()
            if parser is not None and message["type"] == "http.request":
                try:
                    parser.write(message.get("body", b""))
                except MultipartParseError:
                    parser = None  # malformed framing: BentoML's own parser answers it
            return message

        async def guarded_send(message: Any) -> None:
            nonlocal replaced
            if not unknown:
                await send(message)
                return
            if message["type"] == "http.response.start" and not replaced:
                replaced = True
                expected = " or ".join(f"`{name}`" for name in sorted(allowed))
                rejected = ImageRejected(
                    f"{unknown[0]}: unexpected form field {unknown[0]!r}; send the image(s) as {expected}.",
                    field=unknown[0],
                )
                await JSONResponse(rejected.to_json(), status_code=rejected.status)(scope, receive, send)

        await self.app(scope, watched_receive, guarded_send)


def _multipart_boundary(scope: MutableMapping[str, Any]) -> bytes | None:
    from python_multipart.multipart import parse_options_header

    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media_type, options = parse_options_header(value)
            if media_type == b"multipart/form-data" and options.get(b"boundary"):
                return options[b"boundary"]
            return None
    return None


def _part_name_parser(boundary: bytes, on_name: Callable[[str], Any]) -> Any:
    """A streaming multipart parser that only reads part headers, calling `on_name` with each part's name."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        if bytes(header["field"]).strip().lower() == b"content-disposition":
            _, options = parse_options_header(bytes(header["value"]))
            on_name(options.get(b"name", b"").decode("utf-8", "replace"))
        header["field"], header["value"] = bytearray(), bytearray()

    return MultipartParser(
        boundary,
        {"on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end},
    )


# --- /render --------------------------------------------------------------------------------------------------

RenderStyle = Literal["skeleton", "avatar", "avatar-on-original"]
RENDER_STYLES: tuple[str, ...] = get_args(RenderStyle)


def render_png(
    bgr: np.ndarray,
    persons: Sequence[PersonPose],
    style: str = "skeleton",
    avatar: str | None = None,
    background: str | None = None,
) -> bytes:
    """The PNG /render answers with, drawn by the same renderers as `vtpose infer -o` and `vtpose avatar`.

    Args:
        bgr: the request's image, BGR (H, W, 3) uint8.
        persons: its poses.
        style: "skeleton" (skeletons over the image), "avatar" (avatars on a prepared background) or
            "avatar-on-original" (avatars over the persons in the image).
        avatar: a prepared avatar's name; None gives each person one in turn.
        background: a prepared background's name (style "avatar"); None for the default.

    Raises:
        ImageRejected: an unknown style, avatar or background (400; only prepared names, never server paths),
            or nobody in the image to pose (422).
    """
    if style not in RENDER_STYLES:
        raise ImageRejected(f"style {style!r} is not one of {', '.join(RENDER_STYLES)}.", field="style")
    if style == "skeleton":
        return encode_png(draw_skeletons(bgr, persons))
    from vtpose.studio.avatar import background_files, list_avatars, render_scene

    avatars = [spec.name for spec in list_avatars()]
    if avatar is not None and avatar not in avatars:
        raise ImageRejected(
            f"avatar {avatar!r} is not a prepared avatar; use one of {', '.join(avatars)}.", field="avatar"
        )
    backgrounds = list(background_files())
    if background is not None and background not in backgrounds:
        raise ImageRejected(
            f"background {background!r} is not a prepared background; use one of {', '.join(backgrounds)}.",
            field="background",
        )
    try:
        scene = render_scene(bgr, persons, avatar, background, on_original=style == "avatar-on-original",
                             source_name="the image")  # fmt: skip
    except VtposeError as error:
        raise ImageRejected(str(error), HTTPStatus.UNPROCESSABLE_ENTITY, field="image") from error
    return encode_png(scene)
