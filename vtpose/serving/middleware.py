"""ASGI middlewares around the BentoML app: admission control (503 + Retry-After, body size), the read-only
`/model` route, and the multipart field-name check that turns BentoML's 500 for a misnamed part into a 400."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping, Sequence
from http import HTTPStatus
from typing import Any

from vtpose.errors import RequestRejected

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
            rejected = RequestRejected(
                f"request body: {declared} bytes is over the limit of {self.max_body_bytes} bytes; "
                "send fewer or smaller images.",
                field="body",
                status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
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

        def on_name(name: str) -> None:
            if name not in allowed:
                unknown.append(name)

        parser: Any = _part_name_parser(boundary, on_name)
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
                rejected = RequestRejected(
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


def _part_name_parser(boundary: bytes, on_name: Callable[[str], None]) -> Any:
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
