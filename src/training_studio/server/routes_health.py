"""GET /api/health: liveness plus the limits a client needs before uploading (no auth)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from training_studio import __version__
from training_studio.contract import Health
from training_studio.server.context import ServerContext, server_context
from training_studio.server.errors import error_responses

router = APIRouter(tags=["health"])


@router.get("/api/health", response_model=Health, responses=error_responses(authenticated=False))
async def health(ctx: ServerContext = Depends(server_context)) -> dict:
    return {"status": "ok", "version": __version__, "max_upload_bytes": ctx.config.max_upload_bytes,
            "max_pixels": ctx.config.max_pixels}
