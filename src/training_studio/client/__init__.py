"""The async client side of the wire contract (no Qt): `ApiClient`, its typed errors, and the manager
of the embedded local server."""

from training_studio.client.api import DEFAULT_TIMEOUT_S, ApiClient
from training_studio.client.errors import (
    ApiError,
    AuthFailed,
    BadResponse,
    CancelRejected,
    CannotConnect,
    Conflict,
    NotFound,
    RequestRejected,
    RequestTimedOut,
    ServerError,
)
from training_studio.client.local_server import LocalServerError, LocalServerManager, ServerInfo, read_server_info

__all__ = [
    "ApiClient", "DEFAULT_TIMEOUT_S", "ApiError", "AuthFailed", "BadResponse", "CancelRejected", "CannotConnect",
    "Conflict", "NotFound", "RequestRejected", "RequestTimedOut", "ServerError", "LocalServerError",
    "LocalServerManager", "ServerInfo", "read_server_info",
]
