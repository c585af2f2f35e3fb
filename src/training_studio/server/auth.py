"""Request guards that run before routing: the Host check (DNS-rebinding guard), bearer-token auth and
the size limit of JSON bodies.

A pure ASGI middleware, so that every request, including ones for unknown routes, is checked before
anything else happens: first the Host header must name a loopback host (421 `bad_host`), then every
path except `GET /api/health` needs `Authorization: Bearer <token>` (401 `unauthorized`). With
`--allow-remote` the Host check is off, because remote clients legitimately use other names. Last, a
request body other than a file upload (which streams to disk under its own limit) may not exceed
`MAX_JSON_BODY_BYTES` (413 `too_large`), or `MAX_FILE_LIST_BODY_BYTES` for the two requests that carry a list
of a dataset's files: the framework would otherwise hold any amount in memory.
"""

from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from training_studio.server.config import is_loopback_host
from training_studio.server.errors import error_response

PUBLIC_PATHS = frozenset({"/api/health"})
# The largest JSON request is a 10,000-character caption; 1 MiB leaves room for escapes and params.
MAX_JSON_BODY_BYTES = 1024 * 1024
# Except the two that carry a list of a dataset's files (a caption edit over a selection, a validation split of
# chosen files): up to MAX_BATCH_FILES (100,000) hashes of 67 bytes each in JSON, plus the edit's texts.
MAX_FILE_LIST_BODY_BYTES = 8 * 1024 * 1024
_FILE_LIST_PATHS = (("POST", re.compile(r"^/api/datasets/[^/]+/captions/batch$")),
                    ("PATCH", re.compile(r"^/api/datasets/[^/]+$")))
# The raw file upload, which streams its body to disk and enforces --max-upload-bytes itself.
_UPLOAD_PATH = re.compile(r"^/api/datasets/[^/]+/files/[^/]+$")


def host_name(host_header: str) -> str:
    """The host part of a Host header: strips the port and IPv6 brackets."""
    value = host_header.strip()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


class GuardMiddleware:
    def __init__(self, app: ASGIApp, *, token: str, check_host: bool = True,
                 max_body_bytes: int = MAX_JSON_BODY_BYTES) -> None:
        self.app = app
        self._token = token.encode("utf-8")
        self._check_host = check_host
        self._max_body_bytes = max_body_bytes

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
        if scope.get("method") == "PUT" and _UPLOAD_PATH.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        method, path = scope.get("method"), scope.get("path", "")
        carries_files = any(method == verb and pattern.match(path) for verb, pattern in _FILE_LIST_PATHS)
        limit = max(self._max_body_bytes, MAX_FILE_LIST_BODY_BYTES) if carries_files else self._max_body_bytes
        await self._with_bounded_body(scope, receive, send, headers, limit)

    async def _with_bounded_body(self, scope: Scope, receive: Receive, send: Send,
                                 headers: dict[bytes, bytes], limit: int) -> None:
        """Read the (small) body up front: 413 past `limit`, whether declared or chunked."""
        too_large = error_response(413, "too_large", f"The request body is larger than the server's limit of "
                                   f"{limit:,} bytes for this request.")
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > limit:
            await too_large(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away; the app sees the disconnect
            size += len(message.get("body", b""))
            if size > limit:
                await too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _authorised(self, header: bytes) -> bool:
        scheme, _, credentials = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return secrets.compare_digest(credentials.strip(), self._token)
