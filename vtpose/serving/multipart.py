"""multipart/form-data bodies as the pose service reads them: streamed through python-multipart (the parser
Starlette, and so BentoML, uses), each part's name, filename and content type from its headers, and its bytes kept
in memory when asked.

One parser for the two readers of an upload: `MultipartFieldCheck`, which only watches the part names go by, and
`UploadRoutes`, which answers a well-formed upload from the parts it collected (vtpose.serving.middleware).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header

MULTIPART_FORM = b"multipart/form-data"


@dataclass(frozen=True)
class PartHeader:
    """What a part's headers say about it.

    Attributes:
        name: the Content-Disposition `name` ("" when there is none).
        filename: its `filename`, or None for a plain form field (Starlette makes a part with a filename an
            UploadFile, any other a string).
        content_type: the part's own Content-Type header, "" when it has none.
    """

    name: str
    filename: str | None
    content_type: str


@dataclass(frozen=True)
class Part:
    """One part of a multipart body: its headers and its bytes."""

    header: PartHeader
    data: bytes


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data: bad framing, or it ended before the closing boundary."""


def multipart_boundary(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The boundary of a multipart/form-data request, from its raw ASGI headers; None for any other body."""
    for name, value in headers:
        if name == b"content-type":
            media_type, options = parse_options_header(value)
            if media_type == MULTIPART_FORM and options.get(b"boundary"):
                return options[b"boundary"]
            return None
    return None


class PartParser:
    """A streaming multipart/form-data parser: `write` the body as it arrives, then `finish`.

    Args:
        boundary: the body's boundary (`multipart_boundary`).
        on_header: called with each part's `PartHeader` as soon as its headers are read, before its data.
        keep_data: collect each part's bytes (for `finish` to return); False reads only the headers.
    """

    def __init__(
        self, boundary: bytes, on_header: Callable[[PartHeader], None] | None = None, keep_data: bool = True
    ) -> None:
        self._on_header = on_header
        self._keep_data = keep_data
        self._field, self._value = bytearray(), bytearray()
        self._disposition, self._content_type = b"", b""
        self._header: PartHeader | None = None
        self._chunks: list[memoryview] = []
        self._parts: list[Part] = []
        self._ended = False
        callbacks: Any = {  # python-multipart types them as a TypedDict of its own
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }
        if keep_data:
            # A view into the body's chunk, not a copy: the part's end joins its views into its bytes once.
            callbacks["on_part_data"] = lambda data, start, end: self._chunks.append(memoryview(data)[start:end])
        self._parser = MultipartParser(boundary, callbacks)

    def write(self, chunk: bytes) -> None:
        """Parse the next piece of the body.

        Raises:
            MultipartError: the framing is broken.
        """
        from python_multipart.exceptions import MultipartParseError

        try:
            self._parser.write(chunk)
        except MultipartParseError as error:
            raise MultipartError(str(error)) from error

    def finish(self) -> list[Part]:
        """The parts, in body order (their data empty unless `keep_data`).

        Raises:
            MultipartError: the body ended before its closing boundary.
        """
        if not self._ended:
            raise MultipartError("the multipart body ended before its closing boundary")
        return self._parts

    def _part_begin(self) -> None:
        self._disposition, self._content_type, self._chunks = b"", b"", []

    def _header_end(self) -> None:
        field = bytes(self._field).strip().lower()
        if field == b"content-disposition":
            self._disposition = bytes(self._value)
        elif field == b"content-type":
            self._content_type = bytes(self._value)
        self._field, self._value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        filename = options.get(b"filename")
        self._header = PartHeader(
            name=options.get(b"name", b"").decode("utf-8", "replace"),
            filename=None if filename is None else filename.decode("utf-8", "replace"),
            content_type=self._content_type.decode("latin-1").strip(),
        )
        if self._on_header is not None:
            self._on_header(self._header)

    def _part_end(self) -> None:
        if self._header is not None:
            data = b"".join(self._chunks) if self._keep_data else b""
            self._parts.append(Part(self._header, data))
        self._header, self._chunks = None, []

    def _end(self) -> None:
        self._ended = True
