"""Request guards that run before routing: the Host check (DNS-rebinding guard) and bearer-token auth.

A pure ASGI middleware, so that every request, including ones for unknown routes, is checked before
anything else happens: first the Host header must name a loopback host (421 `bad_host`), then every
path except `GET /api/health` needs `Authorization: Bearer <token>` (401 `unauthorized`). With
`--allow-remote` the Host check is off, because remote clients legitimately use other names.
"""

from __future__ import annotations

import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

from training_studio.server.config import is_loopback_host
from training_studio.server.errors import error_response

PUBLIC_PATHS = frozenset({"/api/health"})


def host_name(host_header: str) -> str:
    """The host part of a Host header: strips the port and IPv6 brackets."""
    value = host_header.strip()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


class GuardMiddleware:
    def __init__(self, app: ASGIApp, *, token: str, check_host: bool = True) -> None:
        self.app = app
        self._token = token.encode("utf-8")
        self._check_host = check_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.lower(): value for key, value in scope.get("headers", [])}
        if self._check_host:
            host = headers.get(b"host", b"").decode("latin-1")
            if not host or not is_loopback_host(host_name(host)):
                response = error_response(421, "bad_host",
                                          "This server only answers requests addressed to a loopback host "
                                          "(localhost or 127.0.0.1).")
                await response(scope, receive, send)
                return
        if scope.get("path", "") not in PUBLIC_PATHS and not self._authorised(headers.get(b"authorization", b"")):
            response = error_response(401, "unauthorized", "A valid 'Authorization: Bearer <token>' header is "
                                      "required.", headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorised(self, header: bytes) -> bool:
        scheme, _, credentials = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return secrets.compare_digest(credentials.strip(), self._token)
