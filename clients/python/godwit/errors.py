"""Errors: the daemon's answers as exceptions carrying its message and status.

Every error the daemon answers is {"error": "...", "code": N}; the client
raises it as an APIError of the class that matches the status, so callers
can catch NotFound or Conflict, or APIError and look at .status.
"""

from __future__ import annotations

import json
import re
from typing import Optional


class GodwitError(Exception):
    """Base of every error this package raises."""


class Unreachable(GodwitError, ConnectionError):
    """The daemon did not answer: not running, wrong socket or address, no permission."""


class Timeout(GodwitError, TimeoutError):
    """A wait ran out of time; the operation may still be running."""


class APIError(GodwitError):
    """The daemon refused a request; message and status are its own."""

    status: int = 0

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    @property
    def code(self) -> int:
        """The HTTP status, as the API's "code" names it."""
        return self.status

    @property
    def fields(self) -> list[str]:
        """The request fields a 400 names, e.g. ["cpus"] for "cpus: must be at
        least 1" (the daemon starts each problem with its field)."""
        out = []
        for part in self.message.split("; "):
            m = _FIELD.match(part)
            if m and m.group(1) not in out:
                out.append(m.group(1))
        return out

    def __str__(self) -> str:
        return "%s (%d)" % (self.message, self.status)

    def __repr__(self) -> str:
        return "%s(%r, %d)" % (type(self).__name__, self.message, self.status)


_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:(?:\.[A-Za-z_][A-Za-z0-9_]*)|\[\d+\])*): ")


class BadRequest(APIError):
    """400: the request (a spec, a parameter) is wrong; .fields names the fields."""

    status = 400


class Unauthorized(APIError):
    """401: no valid credentials (token or client certificate)."""

    status = 401


class Forbidden(APIError):
    """403: the credentials do not allow this (a read-only token, say)."""

    status = 403


class NotFound(APIError):
    """404: no such VM, image, network, operation, ..."""

    status = 404


class Conflict(APIError):
    """409: the resource is in the wrong state, or the name is taken."""

    status = 409


class TooLarge(APIError):
    """413: the request body is over the daemon's limit."""

    status = 413


class ServerError(APIError):
    """500: the daemon failed."""

    status = 500


class Unavailable(APIError):
    """503: libvirt is down or the host is not brought up yet."""

    status = 503


class OperationError(APIError):
    """An operation ended failed or cancelled; .operation is its last state."""

    def __init__(self, message: str, status: int, operation):
        super().__init__(message, status)
        self.operation = operation


_BY_STATUS = {c.status: c for c in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooLarge, ServerError, Unavailable)}


def error_for(status: int, message: str) -> APIError:
    """The APIError subclass for status, with message."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        return APIError(message, status)
    return cls(message, status)


def from_response(status: int, reason: str, body: bytes) -> APIError:
    """Decodes an error answer: {"error", "code"} or, failing that, its text."""
    message, code = None, status
    try:
        data = json.loads(body.decode("utf-8", "replace"))
        if isinstance(data, dict) and data.get("error"):
            message = str(data["error"])
            code = int(data.get("code") or status)
    except ValueError:
        pass
    if message is None:
        message = body.decode("utf-8", "replace").strip() or ("%d %s" % (status, reason))
    return error_for(code, message)
