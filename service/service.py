"""The BentoML pose service: `make serve` (the Bento `vtpose model bento` names), or `bentoml serve` here.

A thin adapter: decoding, limits, schemas, batching, middlewares and /render live in `vtpose.serving`; this module
only maps HTTP onto them. Every endpoint calls the model in-process through one `PoseBatcher`: its worker threads take
whatever requests are queued (single images and batches alike) and run them together, one model call per input
shape, so concurrent /predict requests share forward passes without an HTTP hop between endpoints. A well-formed
upload to /predict or /predict_batch is answered by `UploadRoutes` straight from memory, by the same methods as the
endpoints, without BentoML's form parsing and temporary file (a few ms a request: benchmarks/bench_serve.py); the
`@bentoml.api` methods answer everything else and are what the OpenAPI page and BentoML's clients describe.

Which model: the Bento argument `model_tag` (set by `vtpose.serving.packaging.build_bento`), else $VTPOSE_MODEL_TAG,
else the latest `pose-estimator` in the local model store. Variant: $VTPOSE_BACKEND ("pytorch", "onnx", "openvino"
or "openvino-int8"), else the Bento argument `backend` (the variant packaging chose), else ONNX. `GET /model` says
which backend and precision run and why (`source`, the Bento argument packaging set: "production", "candidate",
"pretrained" or "packaged"; `description`, the line `vtpose.serving.what_runs` gives the CLI), and every answer's
`model_version` ends in `+<variant>`. `make serve` serves the Bento `vtpose model bento` names (the resolver's).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar, cast

import anyio
import bentoml
import numpy as np
from bentoml.validators import ContentType
from starlette.responses import JSONResponse, Response

from vtpose.backends import ENV_BACKEND, resolve_variant
from vtpose.backends.base import Letterboxed
from vtpose.backends.packaged import load_packaged_backend
from vtpose.errors import RequestRejected, VtposeError
from vtpose.pose import PersonPose
from vtpose.serving import decoding
from vtpose.serving.batcher import PoseBatcher
from vtpose.serving.limits import ServingLimits, check_batch_size
from vtpose.serving.memory import limit_malloc_retention
from vtpose.serving.middleware import (
    SERVICE_LOGGER,
    AdmissionLimit,
    InfoRoute,
    MultipartFieldCheck,
    UploadRoute,
    UploadRoutes,
    untraced_without_exporter,
)
from vtpose.serving.render import RenderStyle, render_png
from vtpose.serving.schemas import BatchResult, PoseResult, pose_result
from vtpose.serving.what_runs import PRETRAINED_VERSION, describe
from vtpose.studio.live import create_studio_app
from vtpose.studio.live.app import configure_websockets
from vtpose.studio.live.protocol import live_imgsz

logger = logging.getLogger(SERVICE_LOGGER)

ENV_MODEL_TAG = "VTPOSE_MODEL_TAG"
ENV_MAX_IN_FLIGHT = "VTPOSE_MAX_IN_FLIGHT"
ENV_MODEL_WORKERS = "VTPOSE_MODEL_WORKERS"
DEFAULT_MODEL_TAG = "pose-estimator:latest"
# The multipart field(s) each public endpoint takes; a part by any other name is a 400 (MultipartFieldCheck).
PUBLIC_FIELDS = {
    "/predict": ("image",),
    "/predict_batch": ("images",),
    "/render": ("image", "style", "avatar", "background"),
}
# One request may wait behind this many others before 503 + Retry-After; sized for 16 clients with room.
MAX_IN_FLIGHT = int(os.environ.get(ENV_MAX_IN_FLIGHT, "64"))
# Most images in one model call. On a CPU a batch costs as much per image as single calls (measured on 2 cores:
# 37.5 ms alone, 40.6 ms per image in fours, 44.5 in eights) while ONNX Runtime's arena keeps the memory of the
# largest batch it has seen (worker RSS reached 1.5 GiB under load with batches of 16, ~0.6 GiB with 4), so CPU
# batches stay small; a GPU gains from larger ones.
MAX_BATCH_SIZE_CPU = 4
MAX_BATCH_SIZE_GPU = 16
CPU_CORES = len(os.sched_getaffinity(0))
# Model calls that may run at once, each with CPU_CORES // MODEL_WORKERS threads under load (ONNX Runtime threads,
# or one OpenVINO CPU stream per worker): on 2 cores two single-threaded calls side by side beat one two-threaded
# call (ONNX, measured: ~35 vs ~42 ms per image). A call that runs while no other does takes every core instead
# (the backends' wide session / latency-compiled model): on a quiet machine /predict p50 went from 54 to 45 ms
# with throughput unchanged. PyTorch's thread pool is process-wide, so PyTorch always gets one worker.
MODEL_WORKERS = int(os.environ.get(ENV_MODEL_WORKERS, "2"))
# /render's images decoded and drawn at once: more than the cores only adds contention (and malloc arenas).
DECODE_THREADS = CPU_CORES
LIMITS = ServingLimits.from_env()

_args = bentoml.use_arguments()
MODEL_TAG: str = getattr(_args, "model_tag", None) or os.environ.get(ENV_MODEL_TAG) or DEFAULT_MODEL_TAG
VARIANT: str = resolve_variant(os.environ.get(ENV_BACKEND) or getattr(_args, "backend", None))
# What packaging said this is (vtpose.serving.packaging.build_bento). A Bento built before the argument existed, or
# a bare model tag: "pretrained" for the pretrained checkpoint, else "packaged" (nothing vouches for it).
SOURCE: str | None = getattr(_args, "source", None)


def _pinned(*names: str) -> list[str]:
    # The versions installed where the Bento is built are the tested ones (constraints.txt); pin exactly those.
    # (BentoML adds its own bentoml==<version> line.)
    return [f"{name}=={version(name)}" for name in names]


# Locking would resolve against PyPI at build time; the pins are already exact, so the build stays offline.
IMAGE = (
    bentoml.images.Image(python_version="3.11", lock_python_packages=False)
    .system_packages("libgl1", "libglib2.0-0")
    .python_packages(
        *_pinned(
            "ultralytics", "torch", "torchvision", "onnx", "onnxruntime", "openvino",
            "opencv-python", "pillow", "numpy", "pydantic",
        )
    )
)  # fmt: skip

# The live studio (/studio): the page, its WebSocket and its assets; it calls the model through `live_poses`. Its
# socket takes messages as large as a user's VRM file (uvicorn's own limit is 16 MiB), uncompressed.
configure_websockets()
# Tracing as BentoML ships it: off (no exporter) unless configured; then the public endpoints skip its span work.
untraced_without_exporter(PUBLIC_FIELDS)
STUDIO = create_studio_app(
    lambda: bentoml.get_current_service().live_poses,
    model_version=lambda: bentoml.get_current_service().model_version,
)

P = ParamSpec("P")
R = TypeVar("R")


def json_errors(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | Response]]:
    """Answer a `RequestRejected` as `{"error", "field", "status"}` JSON with its 4xx status.

    BentoML's own handler for `BentoMLException` (1.4.39) wraps the body in a one-element list, so the endpoints
    answer their known input errors themselves; anything unexpected still propagates to BentoML's 500 and its log.
    `functools.wraps` keeps the signature BentoML reads the request and response schemas from.
    """

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        try:
            return await func(*args, **kwargs)
        except RequestRejected as rejected:
            return JSONResponse(rejected.to_json(), status_code=rejected.status)

    return wrapper


@bentoml.service(
    name="pose-service",
    image=IMAGE,
    workers=1,
    # Every endpoint is async; decoding and the model run on PoseBatcher's own threads (/render's drawing on anyio's).
    threads=1,
    # Above ours (AdmissionLimit), so a full queue is our 503 + Retry-After rather than BentoML's bare 429.
    traffic={"timeout": 60, "max_concurrency": 2 * MAX_IN_FLIGHT},
    envs=[{"name": "BENTOML_DO_NOT_TRACK", "value": "true"}, {"name": "YOLO_OFFLINE", "value": "1"}],
    labels={"project": "vtpose"},
    # Loopback unless `--host` says otherwise: the studio streams a camera, and nothing here has authentication.
    http={"host": "127.0.0.1"},
)
@bentoml.asgi_app(STUDIO, path="/studio")
class PoseService:
    """Human pose estimation: COCO-17 keypoints per person, as JSON or drawn over the image."""

    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        stored = type(self).model_ref.stored
        if stored is None:
            # Without this check BentoModel would try to pull the model from BentoCloud.
            raise VtposeError(
                f"BentoML model {MODEL_TAG} is not in the local model store ({bentoml.models.list.__module__}); "
                "package one with vtpose.serving.packaging.build_bento, or set VTPOSE_MODEL_TAG to one listed by "
                "`bentoml models list`."
            )
        metadata: dict[str, Any] = dict(stored.info.metadata)
        self.model_tag = str(stored.tag)
        self.limits = LIMITS
        self.image_policy = LIMITS.image_policy()
        # Before any worker thread exists: malloc's thresholds fixed and its arenas capped (RSS plateaus under load,
        # a request's buffers are reused).
        limit_malloc_retention()
        # PyTorch: one worker (its thread pool is process-wide). ONNX Runtime / OpenVINO: MODEL_WORKERS calls at
        # once, a share of the cores each under load, all of them for a call that runs alone.
        workers = 1 if VARIANT == "pytorch" else MODEL_WORKERS
        self.predictor = load_packaged_backend(
            Path(stored.path), metadata, VARIANT, threads=max(1, CPU_CORES // workers), wide_threads=CPU_CORES
        )
        # `+<variant>` (semver build metadata): the same model version served by another backend is told apart.
        version = str(metadata.get("model_version", stored.tag.version))
        self.model_version = f"{version}+{self.predictor.variant}"
        self.source = SOURCE or ("pretrained" if version == PRETRAINED_VERSION else "packaged")
        self.description = describe(self.source, stored.tag.name, version, self.predictor.variant)
        self._decode_limiter = anyio.CapacityLimiter(DECODE_THREADS)
        # The first call sizes the runtime's buffers / compiles the graph: pay it before /readyz says yes.
        self.predictor.predict([np.zeros((720, 1280, 3), dtype=np.uint8)])
        max_batch = MAX_BATCH_SIZE_CPU if self.predictor.device.startswith("cpu") else MAX_BATCH_SIZE_GPU
        # Uploads and studio frames are decoded and letterboxed (the same rule for every backend) on the batcher's
        # workers, just before their model call, one call per input shape; /render decodes in a thread of its own.
        self._prepare: Callable[[np.ndarray], Any] = self.predictor.prepare
        # The studio's frames run smaller (vtpose.studio.live.protocol.live_imgsz: fps is one over the round trip).
        self._prepare_live = functools.partial(self.predictor.prepare, imgsz=live_imgsz())
        self.batcher = PoseBatcher(
            self.predictor.run, key=lambda item: item.tensor.shape, max_batch_size=max_batch, workers=workers
        )
        logger.info(
            "serving %s: %s, on %s", self.model_tag, self.description, self.predictor.device,
        )  # fmt: skip

    def model_info(self) -> dict[str, Any]:
        """What `GET /model` answers: model version and tag, which and why (source, description), backend,
        precision, variant, device, imgsz, and the studio's live_imgsz."""
        info = {
            "model_version": self.model_version, "model_tag": self.model_tag, "source": self.source,
            "description": self.description, **self.predictor.describe(),
        }  # fmt: skip
        return {**info, "live_imgsz": self._prepare_live.keywords["imgsz"]}

    @bentoml.on_shutdown
    def _stop_batcher(self) -> None:
        self.batcher.close()

    def _upload_input(self, upload: tuple[str, Path | bytes]) -> Letterboxed:
        """An upload's model input, made on a batcher worker just before its model call: the bytes (or the file
        BentoML wrote them to) checked and decoded by the one decoder (refused before any pixel is allocated), then
        letterboxed. `upload` is (the field messages name it by, the image)."""
        field, image = upload
        data = image.read_bytes() if isinstance(image, Path) else image
        return self._prepare(decoding.decode_image(data, self.image_policy, field=field))

    async def _decode(self, image: Path, field: str = "image") -> tuple[np.ndarray, Any]:
        """/render's image decoded and its model input, in a worker thread (the drawing needs the pixels)."""

        def decode() -> tuple[np.ndarray, Any]:
            bgr = decoding.decode_image(image.read_bytes(), self.image_policy, field=field)
            return bgr, self._prepare(bgr)

        return await anyio.to_thread.run_sync(decode, limiter=self._decode_limiter)

    async def _predict(self, image: Path | bytes) -> PoseResult:
        ((item, persons),) = await self.batcher.prepare_and_infer([("image", image)], self._upload_input)
        return pose_result(item.orig_shape, persons, self.model_version)

    async def _predict_batch(self, images: Sequence[Path | bytes]) -> BatchResult:
        check_batch_size(len(images), self.limits)
        # Split across the workers when larger than a model call (PoseBatcher); a refusal is the first bad image's
        # in request order, as when they were decoded one after the other.
        uploads = [(f"images[{i}]", image) for i, image in enumerate(images)]
        found = await self.batcher.prepare_and_infer(uploads, self._upload_input)
        results = [pose_result(item.orig_shape, persons, self.model_version) for item, persons in found]
        return BatchResult(results=results, model_version=self.model_version)

    @json_errors
    async def predict_uploaded(self, images: list[bytes]) -> Response:
        """/predict's answer to a well-formed upload (`UploadRoutes`): the same JSON, without BentoML's form
        handling."""
        (image,) = images
        return _json(await self._predict(image))

    @json_errors
    async def predict_batch_uploaded(self, images: list[bytes]) -> Response:
        """/predict_batch's answer to a well-formed upload (`UploadRoutes`)."""
        return _json(await self._predict_batch(images))

    async def live_poses(self, bgr: np.ndarray) -> list[PersonPose]:
        """The studio's model call for one decoded frame: the same preparation and batcher as /predict."""
        ((_, persons),) = await self.batcher.prepare_and_infer([bgr], self._prepare_live)
        return persons

    @bentoml.api(route="/predict")
    @json_errors
    async def predict(self, image: Annotated[Path, ContentType("image/*")]) -> PoseResult:
        """Poses in one image: image size, persons with bbox [x, y, w, h], score and 17 [x, y, confidence]."""
        return await self._predict(image)

    @bentoml.api(route="/predict_batch")
    @json_errors
    async def predict_batch(self, images: list[Annotated[Path, ContentType("image/*")]]) -> BatchResult:
        """Poses in several images (repeat the `images` field), in request order."""
        return await self._predict_batch(images)

    @bentoml.api(route="/render")
    @json_errors
    async def render(
        self,
        image: Annotated[Path, ContentType("image/*")],
        style: RenderStyle = "skeleton",
        avatar: str | None = None,
        background: str | None = None,
    ) -> Annotated[Path, ContentType("image/png")]:
        """A PNG: the skeletons over the image (`vtpose infer -o`), or the poses as avatars on a prepared background
        (`style=avatar`) or over the persons (`style=avatar-on-original`), as `vtpose avatar` draws them."""
        bgr, item = await self._decode(image)
        (persons,) = await self.batcher.infer([item])
        png = await anyio.to_thread.run_sync(
            lambda: render_png(bgr, persons, style, avatar, background), limiter=self._decode_limiter
        )
        # BentoML sends a returned Response as it is; the annotation above is what the OpenAPI page shows.
        return Response(png, media_type="image/png")  # type: ignore[return-value]


def _json(result: PoseResult | BatchResult) -> Response:
    # The bytes BentoML's JSON serde writes for a returned model (`model_dump_json`).
    return Response(result.model_dump_json(), media_type="application/json")


def _instance() -> PoseService | None:
    """The service instance once it is loaded (BentoML makes it at start-up, before /readyz says yes)."""
    service = bentoml.get_current_service()
    return service if service is not None and hasattr(service, "batcher") else None


def _model_info() -> dict[str, Any] | None:
    service = _instance()
    return service.model_info() if service is not None else None


async def _upload_predict(images: list[bytes]) -> Response:
    return await cast("PoseService", _instance()).predict_uploaded(images)


async def _upload_predict_batch(images: list[bytes]) -> Response:
    return await cast("PoseService", _instance()).predict_batch_uploaded(images)


# @bentoml.service turns the class into a bentoml.Service, but BentoML types the decorator as returning the class.
SERVICE = cast("bentoml.Service[PoseService]", PoseService)
# A batch may carry max_batch_images images plus multipart framing.
MAX_BODY_BYTES = LIMITS.max_image_bytes * LIMITS.max_batch_images + 64 * 1024
# Outermost first: BentoML's own middlewares (metrics, tracing, access log, timeout) run outside all of these.
SERVICE.add_asgi_middleware(InfoRoute, path="/model", info=_model_info)
SERVICE.add_asgi_middleware(
    AdmissionLimit, max_in_flight=MAX_IN_FLIGHT, paths=tuple(PUBLIC_FIELDS), max_body_bytes=MAX_BODY_BYTES
)
# /predict and /predict_batch given well-formed uploads: answered from memory, the same JSON as their endpoints;
# anything else (and /render) takes BentoML's path, through the field check.
SERVICE.add_asgi_middleware(
    UploadRoutes,
    routes={
        "/predict": UploadRoute(PUBLIC_FIELDS["/predict"][0], batch=False, answer=_upload_predict),
        "/predict_batch": UploadRoute(PUBLIC_FIELDS["/predict_batch"][0], batch=True, answer=_upload_predict_batch),
    },
    ready=lambda: _instance() is not None,
    max_body_bytes=MAX_BODY_BYTES,
    server_name=f"BentoML Service/{SERVICE.name}",
)
SERVICE.add_asgi_middleware(MultipartFieldCheck, fields=PUBLIC_FIELDS)
