"""Typed errors raised by the API client: the only exceptions that leave `training_studio.client`.

Each error carries a human sentence (`message`) fit to show in the GUI as is, plus the HTTP status and
the contract's error code when the server gave one. The classes split failures by what a user or the
app can do about them: the server cannot be reached (retry), the token is wrong (reconnect), the thing
asked for is gone (drop it), the request conflicts with the state (show why), the server broke (retry
later) or answered something that is not the contract (show it, keep the last good data).
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "CannotConnect",
    "RequestTimedOut",
    "AuthFailed",
    "NotFound",
    "Conflict",
    "RequestRejected",
    "ServerError",
    "BadResponse",
    "CancelRejected",
]


class ApiError(Exception):
    """Base of every client error; `message` is one human sentence."""

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code

    def __str__(self) -> str:
        return self.message


class CannotConnect(ApiError):
    """No HTTP answer at all: refused, unreachable, DNS, connection reset."""


class RequestTimedOut(CannotConnect):
    """The server accepted the connection but did not answer in time."""


class AuthFailed(ApiError):
    """401: the token is missing or wrong."""


class NotFound(ApiError):
    """404: the job, dataset or model does not exist (any more)."""


class Conflict(ApiError):
    """409: the request does not fit the current state (e.g. cancelling a finished job)."""


class RequestRejected(ApiError):
    """Any other 4xx: the server refused the request as invalid (400, 413, 415, 421, 422...)."""


class ServerError(ApiError):
    """5xx: the server failed while handling the request."""


class BadResponse(ApiError):
    """The answer is not what the contract promises: not JSON, or JSON of the wrong shape."""


class CancelRejected(ApiError):
    """A cancel answered 200 with `{"success": false}` (possible on a foreign server)."""
