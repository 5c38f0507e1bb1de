"""vtpose.serving's limits, batcher, multipart reading, upload routes and packaging without a server: request
limits, batching, what `UploadRoutes` answers itself and what it hands on untouched, version tags, malloc settings.
(The image decoder is in test_decoding.py; the model backends, the packaged-file checks and the letterbox in
test_backends.py; the whole service over HTTP in test_service.py.)"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.responses import JSONResponse, Response

from vtpose.errors import RequestRejected
from vtpose.keypoints import NUM_KEYPOINTS
from vtpose.pose import PersonPose
from vtpose.serving.batcher import PoseBatcher, gather_in_order
from vtpose.serving.limits import ServingLimits, check_batch_size
from vtpose.serving.memory import limit_malloc_retention
from vtpose.serving.middleware import UploadRoute, UploadRoutes, untraced_without_exporter
from vtpose.serving.multipart import MultipartError, PartHeader, PartParser, multipart_boundary
from vtpose.serving.packaging import sanitize_version

LIMITS = ServingLimits(max_image_bytes=2_000_000, max_image_pixels=10_000_000, max_batch_images=4)


def test_limits_from_env() -> None:
    limits = ServingLimits.from_env({"VTPOSE_MAX_IMAGE_BYTES": "123", "VTPOSE_MAX_BATCH_IMAGES": ""})
    assert limits.max_image_bytes == 123 and limits.max_batch_images == ServingLimits().max_batch_images
    with pytest.raises(ValueError, match="VTPOSE_MAX_IMAGE_PIXELS"):
        ServingLimits.from_env({"VTPOSE_MAX_IMAGE_PIXELS": "lots"})
    with pytest.raises(RequestRejected) as many:
        check_batch_size(5, LIMITS)
    assert many.value.to_json() == {
        "error": "images: 5 images is over the batch limit of 4 (VTPOSE_MAX_BATCH_IMAGES); split the request.",
        "field": "images",
        "status": 413,
    }
    with pytest.raises(RequestRejected) as none:
        check_batch_size(0, LIMITS)
    assert none.value.status == 400 and none.value.field == "images"
    # Uploads are decoded under these limits, every known format, EXIF orientation applied.
    policy = LIMITS.image_policy()
    assert (policy.max_bytes, policy.max_pixels, policy.max_side) == (2_000_000, 10_000_000, None)
    assert policy.formats == ("JPEG", "PNG", "WebP", "BMP", "GIF", "TIFF") and policy.apply_exif


def test_sanitize_version() -> None:
    assert sanitize_version("Run 3") == "run-3"
    assert sanitize_version("2024-11-24T05:53") == "2024-11-24t05-53"
    with pytest.raises(ValueError):
        sanitize_version("--")


def _person(value: float) -> PersonPose:
    return PersonPose(bbox=(value, 0, 1, 1), score=0.9, keypoints=np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32))


def test_batcher_merges_concurrent_requests_and_keeps_order() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[list[float]] = []

    def run(items: list[float]) -> list[list[PersonPose]]:
        started.set()
        assert release.wait(30), "the test never released the model call"
        calls.append(list(items))
        return [[_person(item)] for item in items]

    batcher = PoseBatcher(run, key=lambda item: int(item) % 2, max_batch_size=8)

    async def main() -> list[list[list[PersonPose]]]:
        first = asyncio.ensure_future(batcher.infer([1.0]))
        # The worker is inside the model call for [1.0], held there until `release`.
        assert await asyncio.to_thread(started.wait, 30), "the batcher never called the model"
        rest = [asyncio.ensure_future(batcher.infer(items)) for items in ([2.0, 3.0], [4.0], [5.0, 6.0, 8.0])]
        # One turn of the loop runs each new task up to its `await` on the answer, its request queued by then
        # (tasks start in the order they were made, before this coroutine resumes).
        await asyncio.sleep(0)
        assert not any(r.done() for r in rest) and calls == []
        release.set()
        return [await first, *[await r for r in rest]]

    try:
        results = asyncio.run(main())
    finally:
        batcher.close()
    assert [[p[0].bbox[0] for p in r] for r in results] == [[1.0], [2.0, 3.0], [4.0], [5.0, 6.0, 8.0]]
    assert calls[0] == [1.0]
    # The three requests queued meanwhile ran together: one call per key (input shape), items of all three mixed.
    assert sorted(map(sorted, calls[1:])) == [[2.0, 4.0, 6.0, 8.0], [3.0, 5.0]]


def test_batcher_hands_model_errors_to_the_request() -> None:
    def run(items: list[float]) -> list[list[PersonPose]]:
        raise RuntimeError("model broke")

    batcher = PoseBatcher(run, key=lambda item: 0)
    try:
        with pytest.raises(RuntimeError, match="model broke"):
            asyncio.run(batcher.infer([1.0]))
    finally:
        batcher.close()
    with pytest.raises(ValueError, match="workers"):
        PoseBatcher(run, key=lambda item: 0, workers=0)


def test_a_batch_larger_than_max_batch_size_is_shared_by_the_workers() -> None:
    """Seven items with max_batch_size 3 and two workers: three jobs (3, 3, 1), taken by both workers, answered in
    order."""
    both_in = threading.Barrier(2, timeout=30)
    threads: set[str] = set()

    def run(items: list[float]) -> list[list[PersonPose]]:
        threads.add(threading.current_thread().name)
        if len(threads) <= 2 and len(items) == 3:
            both_in.wait()  # both workers inside a model call at once, or this times out
        return [[_person(item)] for item in items]

    batcher = PoseBatcher(run, key=lambda item: 0, max_batch_size=3, workers=2)
    try:
        results = asyncio.run(batcher.infer([float(i) for i in range(7)]))
    finally:
        batcher.close()
    assert [r[0].bbox[0] for r in results] == [float(i) for i in range(7)]
    assert len(threads) == 2 and batcher.largest_batch == 3 and batcher.batches == 3


def test_gather_in_order_raises_the_first_failure_in_order() -> None:
    async def value(x: int, delay: float) -> int:
        await asyncio.sleep(delay)
        if x < 0:
            raise ValueError(f"bad {x}")
        return x

    assert asyncio.run(gather_in_order([value(1, 0.02), value(2, 0)])) == [1, 2]
    # The second fails first in time, the first fails later: the first one's error is raised.
    with pytest.raises(ValueError, match="bad -1"):
        asyncio.run(gather_in_order([value(-1, 0.02), value(-2, 0), value(3, 0)]))


def _multipart(parts: list[tuple[str, tuple[str, bytes, str] | str]]) -> tuple[bytes, str]:
    """A multipart body as httpx encodes it, and its Content-Type header."""
    files = [(name, value) for name, value in parts if isinstance(value, tuple)]
    data = {name: value for name, value in parts if isinstance(value, str)}
    content_type = "multipart/form-data; boundary=vtpose-test-boundary"  # the same bytes for the same parts
    request = httpx.Request("POST", "http://test/", files=files, data=data, headers={"content-type": content_type})
    return request.read(), content_type


def test_part_parser_reads_names_filenames_types_and_bytes() -> None:
    body, content_type = _multipart(
        [("image", ("a.jpg", b"\xff\xd8\xff" + bytes(range(256)) * 40, "image/jpeg")), ("note", "hello")]
    )
    boundary = multipart_boundary([(b"content-type", content_type.encode())])
    assert boundary is not None
    seen: list[PartHeader] = []
    parser = PartParser(boundary, seen.append)
    for start in range(0, len(body), 1000):  # as the body streams in
        parser.write(body[start : start + 1000])
    note, image = parser.finish()  # httpx writes the plain fields first
    assert image.header == PartHeader("image", "a.jpg", "image/jpeg")
    assert image.data == b"\xff\xd8\xff" + bytes(range(256)) * 40
    assert note.header == PartHeader("note", None, "") and note.data == b"hello"
    assert seen == [note.header, image.header]
    assert multipart_boundary([(b"content-type", b"application/json")]) is None
    cut = PartParser(boundary)
    cut.write(body[:-10])
    with pytest.raises(MultipartError, match="closing boundary"):
        cut.finish()
    with pytest.raises(MultipartError):
        PartParser(boundary).write(b"garbage before any boundary")


class _App:
    """The app behind the middleware: records the body it was handed and answers 299."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await Response(b"app", status_code=299)(scope, receive, send)


def _upload_routes(app: _App, answered: list[list[bytes]], max_body_bytes: int = 10_000) -> UploadRoutes:
    async def answer(images: list[bytes]) -> Response:
        answered.append(images)
        if images[0] == b"boom":
            raise RuntimeError("model broke")
        return JSONResponse({"n": len(images)})

    routes = {
        "/one": UploadRoute("image", batch=False, answer=answer),
        "/many": UploadRoute("images", batch=True, answer=answer),
    }
    return UploadRoutes(app, routes, ready=lambda: True, max_body_bytes=max_body_bytes, server_name="S/x")


def _post(asgi: UploadRoutes, path: str, parts: list[tuple[str, tuple[str, bytes, str] | str]]) -> httpx.Response:
    body, content_type = _multipart(parts)

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://test") as client:
            return await client.post(path, content=body, headers={"content-type": content_type})

    return asyncio.run(main())


def test_upload_routes_answer_well_formed_uploads_and_hand_on_the_rest_untouched() -> None:
    app, answered = _App(), []
    routes = _upload_routes(app, answered)
    jpeg = ("a.jpg", b"\xff\xd8\xffjpeg", "image/jpeg")
    ok = _post(routes, "/one", [("image", jpeg)])
    assert (ok.status_code, ok.json(), ok.headers["server"]) == (200, {"n": 1}, "S/x")
    assert answered == [[jpeg[1]]] and app.bodies == []
    assert _post(routes, "/many", [("images", jpeg), ("images", ("b.png", b"png", ""))]).json() == {"n": 2}
    # What BentoML would not hand the endpoint as its one file parameter goes to the app, byte for byte.
    odd: list[tuple[str, list[tuple[str, tuple[str, bytes, str] | str]]]] = [
        ("/one", [("image", ("a.txt", b"text", "text/plain"))]),  # BentoML's content-type check answers it
        ("/one", [("photo", jpeg)]),  # the field check answers it
        ("/one", [("image", jpeg), ("image", jpeg)]),  # BentoML takes the first
        ("/one", [("image", "not a file")]),  # no filename: a string to BentoML
        ("/many", [("images", jpeg), ("image", jpeg)]),
        ("/other", [("image", jpeg)]),
    ]
    for path, parts in odd:
        before = len(answered)
        response = _post(routes, path, parts)
        assert response.status_code == 299 and len(answered) == before, (path, parts)
        assert app.bodies[-1] == _multipart(parts)[0]


def test_upload_routes_refuse_a_long_body_and_answer_a_failure_as_bentoml_does() -> None:
    app, answered = _App(), []
    routes = _upload_routes(app, answered, max_body_bytes=1000)
    too_long = _post(routes, "/one", [("image", ("a.jpg", b"x" * 2000, "image/jpeg"))])
    assert too_long.status_code == 413 and too_long.json()["field"] == "body" and app.bodies == []
    failed = _post(routes, "/one", [("image", ("a.jpg", b"boom", "image/jpeg"))])
    assert failed.status_code == 500
    assert failed.json() == {"error": "An unexpected error has occurred, please check the server log."}
    # Not ready (the service instance not made yet): everything goes to the app.
    waiting = UploadRoutes(app, routes.routes, ready=lambda: False, max_body_bytes=1000, server_name="S/x")
    assert _post(waiting, "/one", [("image", ("a.jpg", b"\xff", "image/jpeg"))]).status_code == 299


def test_public_paths_skip_the_trace_span_only_while_no_tracing_exporter_is_configured() -> None:
    import opentelemetry.instrumentation.asgi as otel_asgi
    from bentoml._internal.configuration.containers import BentoMLContainer
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    traced: list[tuple[str, bool]] = []

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        traced.append((scope["path"], trace.get_current_span().get_span_context().is_valid))
        await JSONResponse({})(scope, receive, send)

    def requests(paths: list[str]) -> list[tuple[str, bool]]:
        # Built as BentoML builds it (the class looked up when the app is made), every span sampled.
        middleware = otel_asgi.OpenTelemetryMiddleware(app, tracer_provider=TracerProvider())

        async def main() -> None:
            transport = httpx.ASGITransport(app=middleware)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                for path in paths:
                    assert (await client.post(path)).status_code == 200

        traced.clear()
        asyncio.run(main())
        return list(traced)

    original, exporter = otel_asgi.OpenTelemetryMiddleware, BentoMLContainer.tracing.exporter_type
    assert exporter.get() is None  # BentoML's default: no exporter, nothing collected
    untraced_without_exporter(["/predict"])
    untraced_without_exporter(["/predict"])  # twice is harmless
    try:
        assert requests(["/predict", "/other"]) == [("/predict", False), ("/other", True)]
        exporter.set("otlp")
        assert requests(["/predict", "/other"]) == [("/predict", True), ("/other", True)]
    finally:
        exporter.set(None)
        otel_asgi.OpenTelemetryMiddleware = original


def test_malloc_settings_are_accepted() -> None:
    import platform

    assert limit_malloc_retention() == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_prepare_runs_on_the_worker_and_a_refusal_is_that_requests_alone() -> None:
    """Raw items are made model inputs on the worker thread; a request whose item `prepare` refuses gets that
    error (its first refused item's, in order), the others their answers; the inputs come back with the persons."""
    threads: set[str] = set()

    def prepare(item: str) -> float:
        threads.add(threading.current_thread().name)
        if item.startswith("bad"):
            raise RequestRejected(f"{item}: refused", field=item)
        return float(item)

    batcher = PoseBatcher(lambda items: [[_person(item)] for item in items], key=lambda item: 0, max_batch_size=2)

    async def main() -> list[Any]:
        requests = (["1", "2"], ["3", "bad-4", "bad-5"], ["6"])
        return await asyncio.gather(
            *(batcher.prepare_and_infer(items, prepare) for items in requests), return_exceptions=True
        )

    try:
        first, refused, last = asyncio.run(main())
    finally:
        batcher.close()
    assert [(item, persons[0].bbox[0]) for item, persons in first] == [(1.0, 1.0), (2.0, 2.0)]
    assert isinstance(refused, RequestRejected) and refused.field == "bad-4"
    assert [item for item, _ in last] == [6.0]
    assert threads == {"pose-batcher-0"}
