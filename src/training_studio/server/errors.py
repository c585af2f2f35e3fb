"""The contract's error body and every path that produces it.

Every non-2xx answer of the server is `{"error": {"code", "message"}}`: our own `ApiError`s, FastAPI's
request validation (422, or 400 for a body that is not JSON), Starlette's HTTP errors (unknown route,
wrong method), a full disk met by any write (507) and, as a last resort that should never be reached,
unexpected exceptions (500, logged).
`error_responses()` declares the same body for OpenAPI.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from training_studio.contract import ErrorBody

log = logging.getLogger(__name__)

_DESCRIPTIONS = {
    400: "Bad request (for example `hash_mismatch`, `unknown_base_model`)",
    401: "Missing or wrong bearer token (`unauthorized`)",
    403: "A stored file leads outside the folder it belongs to (`outside_job_folder`)",
    404: "Unknown id or route",
    409: "Wrong state for this operation",
    413: "Body over the size limit (`too_large`)",
    415: "Unsupported or damaged file (`unsupported_file`)",
    421: "Host header is not a loopback name (`bad_host`)",
    422: "Validation error (`validation_error`)",
    500: "Unexpected server error (`internal_error`)",
    507: "Not enough disk space; nothing was half-written (`insufficient_storage`)",
}

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    421: "bad_host",
    422: "validation_error",
    507: "insufficient_storage",
}


# FastAPI's own words when a JSON body cannot be decoded at all (invalid UTF-8, too deep to parse).
_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


class ApiError(Exception):
    """An error answer: HTTP status, contract error code and one human sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


DISK_FULL_MESSAGE = "The server's disk is full; nothing was saved. Free some space and try again."


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC from a file write, or SQLite's 'database or disk is full'."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc).lower()


def error_payload(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_payload(code, message), status_code=status, headers=headers)


def error_responses(*statuses: int, authenticated: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring the error body; 421 and 422 always, 401 when authenticated."""
    wanted = sorted({421, 422, *statuses, *((401,) if authenticated else ())})
    return {status: {"model": ErrorBody, "description": _DESCRIPTIONS.get(status, "Error")} for status in wanted}


def _describe_validation(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        return 400, "bad_request", "The request body is not valid JSON."
    parts = []
    for err in errors[:5]:
        location = [str(item) for item in err.get("loc", ()) if item not in ("body", "query", "path", "header")]
        where = ".".join(location) or "request"
        message = str(err.get("msg", "is invalid"))
        if err.get("type") == "missing":
            message = "is required"
        parts.append(f"{where}: {message}")
    return 422, "validation_error", "; ".join(parts) or "The request is invalid."


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = _describe_validation(exc)
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 404:
            message = f"There is no endpoint at {request.url.path}."
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        elif exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_ERROR:
            message = "The request body could not be read as JSON (malformed, not UTF-8, or nested too deeply)."
        else:
            message = str(exc.detail) if exc.detail else "The request failed."
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    async def _storage_error(request: Request, exc: Exception) -> JSONResponse:
        # A full disk can surface from any write (a database COMMIT included). Answered here, by the
        # routing layer's handlers, the request ends as a normal 507; only the catch-all below would
        # log it as a crash and drop the client's keep-alive connection.
        if is_disk_full(exc):
            log.error("disk full on %s %s: %s", request.method, request.url.path, exc)
            return error_response(507, "insufficient_storage", DISK_FULL_MESSAGE)
        raise exc

    app.add_exception_handler(OSError, _storage_error)
    app.add_exception_handler(sqlite3.OperationalError, _storage_error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_disk_full(exc):
            log.error("disk full on %s %s: %s", request.method, request.url.path, exc)
            return error_response(507, "insufficient_storage", DISK_FULL_MESSAGE)
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "The server hit an unexpected error; see the server log.")
