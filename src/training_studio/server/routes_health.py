"""GET /api/health: liveness plus the limits a client needs before uploading (no auth).

The answer is the same for the life of the process (version and limits), and clients poll it (a live
window's resync, every monitor): its JSON is built once per distinct set of limits, exactly as the
framework would render the `Health` model, and then sent as bytes, with no model validation or encoding
per request (issue 19)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from training_studio import __version__
from training_studio.contract import Health
from training_studio.server.errors import error_responses

router = APIRouter(tags=["health"])

# (max_upload_bytes, max_pixels) -> the rendered body; a server has one entry (tests may run a few apps).
_BODIES: dict[tuple[int, int], bytes] = {}


def health_body(max_upload_bytes: int, max_pixels: int) -> bytes:
    key = (max_upload_bytes, max_pixels)
    body = _BODIES.get(key)
    if body is None:
        model = Health(status="ok", version=__version__, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels)
        # JSONResponse's own rendering of the model's wire form: the bytes the response_model path sent.
        body = _BODIES[key] = JSONResponse(model.model_dump(mode="json", by_alias=True)).body
    return body


@router.get("/api/health", response_model=Health, responses=error_responses(authenticated=False))
async def health(request: Request) -> Response:
    # The request itself rather than a dependency: resolving one is a measurable part of this answer.
    config = request.app.state.context.config
    return Response(health_body(config.max_upload_bytes, config.max_pixels), media_type="application/json")
