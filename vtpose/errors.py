"""The exception types users see as a clear message instead of a traceback."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class VtposeError(Exception):
    """A problem the user can fix: the message names the file or setting, what is wrong and the fix.

    The `vtpose` command prints it as one line and exits non-zero; pipeline steps let it end the run.
    """


class RequestRejected(VtposeError):
    """Something a client sent that a server refuses: an image, a form field, the request body, a render style.

    The HTTP service answers it as `to_json()` with `status`; the live studio's socket answers an image it refuses
    as its own error message (`vtpose.studio.live.protocol.decode_image` maps the status to a code).

    Args:
        message: what is wrong and what to send instead, starting with the field (`image: ...`).
        field: the request field (`image`, `images[3]`, `style`, `body`) or socket message (`frame 12`) concerned.
        status: the HTTP status to answer with: 400 (bad or corrupt data), 413 (too large), 415 (not an image),
            422 (nothing to work on).

    Raises:
        ValueError: `status` is not a 4xx status.
    """

    def __init__(self, message: str, *, field: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        if not 400 <= status < 500:
            raise ValueError(f"status={int(status)}: a rejected request is answered with a 4xx status")
        super().__init__(message)
        self.status = status
        self.field = field

    def to_json(self) -> dict[str, Any]:
        """The JSON error body: `{"error": message, "field": field, "status": code}`."""
        return {"error": str(self), "field": self.field, "status": int(self.status)}
