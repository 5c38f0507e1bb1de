"""ASGI middlewares around the BentoML app: admission control (503 + Retry-After, body size), the read-only
`/model` route, well-formed image uploads answered without BentoML's form handling (`UploadRoutes`), and the
multipart field-name check that turns BentoML's 500 for a misnamed part into a 400."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from vtpose.errors import RequestRejected
from vtpose.serving.multipart import MultipartError, Part, PartHeader, PartParser, multipart_boundary

if TYPE_CHECKING:
    from starlette.responses import Response

# The service's logger, under BentoML's: what goes wrong in an answer given here is logged where BentoML logs its own.
SERVICE_LOGGER = "bentoml.service.pose"
logger = logging.getLogger(SERVICE_LOGGER)

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
            await _too_large(declared, self.max_body_bytes)(scope, receive, send)
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
        boundary = multipart_boundary(scope.get("headers", ())) if allowed is not None else None
        if allowed is None or boundary is None:
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        unknown: list[str] = []

        def on_header(header: PartHeader) -> None:
            if header.name not in allowed:
                unknown.append(header.name)

        parser: PartParser | None = PartParser(boundary, on_header, keep_data=False)
        replaced = False

        async def watched_receive() -> Any:
            nonlocal parser
            message = await receive()
            if parser is not None and message["type"] == "http.request":
                try:
                    parser.write(message.get("body", b""))
                except MultipartError:
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
                rejected = RequestRejected(
                    f"{unknown[0]}: unexpected form field {unknown[0]!r}; send the image(s) as {expected}.",
                    field=unknown[0],
                )
                await JSONResponse(rejected.to_json(), status_code=rejected.status)(scope, receive, send)

        await self.app(scope, watched_receive, guarded_send)


@dataclass(frozen=True)
class UploadRoute:
    """An endpoint `UploadRoutes` answers itself, given the bytes of its uploaded images.

    Attributes:
        field: the multipart field the images come in (the endpoint's parameter name).
        batch: several parts of that field (a list parameter), or exactly one.
        answer: the endpoint's work on the images' bytes, in body order; returns the whole response.
        content_type: the part Content-Type the endpoint declares (`ContentType`), as BentoML matches it
            (`fnmatch`; a part without one passes).
    """

    field: str
    batch: bool
    answer: Callable[[list[bytes]], Awaitable[Response]]
    content_type: str = "image/*"

    def takes(self, parts: Sequence[Part]) -> bool:
        """Whether BentoML would hand these parts to the endpoint as its one parameter, file for file."""
        if not parts or (len(parts) > 1 and not self.batch):
            return False
        return all(
            part.header.name == self.field
            and part.header.filename is not None  # a part without a filename is a string to BentoML, not a file
            and (not part.header.content_type or fnmatch.fnmatch(part.header.content_type, self.content_type))
            for part in parts
        )


class UploadRoutes:
    """ASGI middleware: a well-formed image upload to one of `routes` is answered here, in memory; any other
    request goes on to the app untouched (its body replayed), so every odd case gets BentoML's own answer.

    What it saves a request, against BentoML's path for the same upload: Starlette's form parser and its spooled
    file, BentoML's copy of the part to a temporary file on disk (and its removal after the response), reading that
    file back in a worker thread, a second multipart parser (`MultipartFieldCheck`'s), BentoML's input and output
    model validation, and its context middleware. Everything outside this middleware (metrics, tracing, the access
    log, timeouts, `AdmissionLimit`) still sees the request; the answer is the endpoint's, with BentoML's headers.

    Args:
        app: the wrapped ASGI app.
        routes: path -> what that endpoint takes and how it answers.
        ready: whether the answers can run now (the service instance exists); before, everything passes on.
        max_body_bytes: most body bytes read into memory; a longer body is a 413.
        server_name: the `Server` header BentoML gives its API answers ("BentoML Service/<name>").
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[str, UploadRoute],
        ready: Callable[[], bool],
        max_body_bytes: int,
        server_name: str,
    ) -> None:
        self.app = app
        self.routes = dict(routes)
        self.ready = ready
        self.max_body_bytes = max_body_bytes
        self.server_name = server_name

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """Answer a well-formed upload to a route; pass everything else on."""
        route = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        boundary = multipart_boundary(scope.get("headers", ())) if route is not None else None
        if route is None or boundary is None or scope.get("method") != "POST" or not self.ready():
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        parser: PartParser | None = PartParser(boundary)
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body was in
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body_bytes:
                await _too_large(size, self.max_body_bytes)(scope, receive, send)
                return
            chunks.append(body)
            if parser is not None:
                try:
                    parser.write(body)
                except MultipartError:
                    parser = None  # BentoML answers malformed framing, as before
            if not message.get("more_body", False):
                break
        try:
            parts = parser.finish() if parser is not None else None
        except MultipartError:
            parts = None
        if parts is None or not route.takes(parts):
            await self.app(scope, _replay(chunks, receive), send)
            return
        del chunks  # the parts hold their own bytes
        try:
            response = await route.answer([part.data for part in parts])
        except Exception:  # as BentoML answers an unexpected error: logged with its traceback, a 500
            logger.exception("Exception on %s [POST]", scope.get("path"))
            response = _json_response({"error": UNEXPECTED_ERROR}, HTTPStatus.INTERNAL_SERVER_ERROR)
        response.headers.update(self._headers())
        await response(scope, receive, send)

    def _headers(self) -> dict[str, str]:
        """BentoML's headers on an API answer: `Server`, and the request id its tracing middleware (outside this
        one) assigned, formatted as its logs print it."""
        from bentoml._internal.configuration.containers import BentoMLContainer
        from bentoml._internal.context import trace_context

        headers = {"Server": self.server_name}
        if trace_context.request_id is not None:
            span_format = BentoMLContainer.logging_formatting.get()["span_id"]
            headers["X-BentoML-Request-ID"] = format(trace_context.request_id, span_format)
        return headers


# BentoML's answer to an exception it did not expect (_bentoml_impl.server.app, 1.4.39).
UNEXPECTED_ERROR = "An unexpected error has occurred, please check the server log."


def _replay(chunks: list[bytes], receive: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """A `receive` that hands the app the body already read, chunk by chunk, then whatever comes next."""
    pending = iter(range(len(chunks)))

    async def replayed() -> Any:
        index = next(pending, None)
        if index is None:
            return await receive()
        return {"type": "http.request", "body": chunks[index], "more_body": index < len(chunks) - 1}

    return replayed


def _too_large(size: int, limit: int) -> Response:
    rejected = RequestRejected(
        f"request body: {size} bytes is over the limit of {limit} bytes; send fewer or smaller images.",
        field="body",
        status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    )
    return _json_response(rejected.to_json(), rejected.status)


def _json_response(body: dict[str, Any], status: int) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse(body, status_code=status)


def untraced_without_exporter(paths: Collection[str]) -> None:
    """Let BentoML's OpenTelemetry middleware pass requests to `paths` straight through while no tracing exporter
    is configured; with `tracing.exporter_type` set, every request is traced as before.

    BentoML wraps every request in OpenTelemetry's ASGI middleware, which builds a server span, a child span per
    ASGI message and their attributes even when nothing can receive them: its default configuration has no exporter
    and sample rate 0 ("By default, no traces will be collected", BentoML's docs, Observability > Tracing). On a
    /predict that work was ~0.7 ms of the ~3 ms around the model (A/B in one run, 150 rounds). Without the span
    there is no trace id in the access log line and no X-BentoML-Request-ID header, as when BentoML's own
    `tracing.excluded_urls` lists a path. BentoML imports the middleware class when its worker builds the app,
    after the service module (which calls this) is imported; the configuration is read then. Calling it twice is
    harmless.
    """
    import opentelemetry.instrumentation.asgi as otel_asgi

    base = getattr(otel_asgi.OpenTelemetryMiddleware, "_vtpose_base", otel_asgi.OpenTelemetryMiddleware)
    skipped = frozenset(paths)

    class TracedWithExporter(base):  # type: ignore[misc, valid-type]
        _vtpose_base = base

        def __init__(self, app: ASGIApp, *args: Any, **kwargs: Any) -> None:
            from bentoml._internal.configuration.containers import BentoMLContainer

            super().__init__(app, *args, **kwargs)
            self._vtpose_app = app
            self._vtpose_skipped = frozenset() if BentoMLContainer.tracing.exporter_type.get() else skipped

        async def __call__(
            self,
            scope: MutableMapping[str, Any],
            receive: Callable[[], Awaitable[Any]],
            send: Callable[[Any], Awaitable[None]],
        ) -> None:
            if scope.get("path") in self._vtpose_skipped:
                await self._vtpose_app(scope, receive, send)
                return
            await super().__call__(scope, receive, send)

    # Replacing the class BentoML looks up when it builds the app is the point here, hence the assignment to a type.
    otel_asgi.OpenTelemetryMiddleware = TracedWithExporter  # type: ignore[misc]
