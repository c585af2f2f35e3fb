"""Job templates (issue 16): `GET/POST /api/training/templates`, `GET/DELETE /api/training/templates/{id}`.

A template is a job's settings under a name, stored on the server so every client sees the same list.
Saving under an existing name (any case) replaces its settings: "Save as template" twice updates rather
than piling up copies. The settings are not checked against today's datasets and base models: a template
outlives them, and the Train dialog says which one is gone when the template is used.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Response

from training_studio.contract import JobTemplate, SaveJobTemplateRequest, SuccessResponse
from training_studio.server.context import ServerContext, server_context
from training_studio.server.errors import ApiError, error_responses
from training_studio.server.files import clean_display_text

router = APIRouter(tags=["templates"])

MAX_TEMPLATES = 1000
MAX_SETTINGS_BYTES = 64 * 1024


@router.get("/api/training/templates", response_model=list[JobTemplate], responses=error_responses())
async def list_templates(ctx: ServerContext = Depends(server_context)) -> list[dict]:
    return ctx.storage.list_templates()


@router.post("/api/training/templates", response_model=JobTemplate, status_code=201,
             responses={200: {"model": JobTemplate, "description": "A template of that name was replaced"},
                        **error_responses(400, 409, 413)})
async def save_template(request: SaveJobTemplateRequest, response: Response,
                        ctx: ServerContext = Depends(server_context)) -> dict:
    name = clean_display_text(request.name, "")
    if not name:
        raise ApiError(422, "validation_error", "name: give the template a name with visible characters.")
    settings = request.settings.model_dump(mode="json")
    if len(json.dumps(settings)) > MAX_SETTINGS_BYTES:
        raise ApiError(413, "too_large", f"settings: more than {MAX_SETTINGS_BYTES // 1024} KiB of "
                       "parameters; a template holds a job's settings, not data.")
    existing = {template["name"].casefold() for template in ctx.storage.list_templates()}
    if name.casefold() not in existing and len(existing) >= MAX_TEMPLATES:
        raise ApiError(409, "too_many_templates", f"this server already keeps {MAX_TEMPLATES} templates; delete "
                       "some first.")
    template, created = ctx.storage.save_template(name, settings)
    response.status_code = 201 if created else 200
    return template


@router.get("/api/training/templates/{template_id}", response_model=JobTemplate, responses=error_responses(404))
async def get_template(template_id: str, ctx: ServerContext = Depends(server_context)) -> dict:
    template = ctx.storage.get_template(template_id)
    if template is None:
        raise ApiError(404, "template_not_found", f"No job template with id {template_id[:80]!r}.")
    return template


@router.delete("/api/training/templates/{template_id}", response_model=SuccessResponse,
               responses=error_responses(404))
async def delete_template(template_id: str, ctx: ServerContext = Depends(server_context)) -> dict:
    if not ctx.storage.delete_template(template_id):
        raise ApiError(404, "template_not_found", f"No job template with id {template_id[:80]!r}.")
    return {"success": True}
