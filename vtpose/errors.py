"""The one exception type users see as a clear message instead of a traceback."""

from __future__ import annotations


class VtposeError(Exception):
    """A problem the user can fix: the message names the file or setting, what is wrong and the fix.

    The `vtpose` command prints it as one line and exits non-zero; pipeline steps let it end the run.
    """
