"""Trained-model endpoints: list, delete, sample sheet and checkpoint download, intermediate checkpoints.

Models are rows the job runner creates; their files live under the data dir. Deleting a model only
ever removes files inside the data dir, whatever path the row holds, and a model's checkpoint and sample
sheet are served only from its training job's folder, links resolved (served_files.py): 403
`outside_job_folder` otherwise. A model's intermediate checkpoints are its training job's (issue 13):
listed and served by routes_outputs.py's code, so the same names, patterns and confinement apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path
from typing import BinaryIO

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from training_studio.contract import JobOutputFile, ModelStatus, SuccessResponse, TrainedModel, to_wire
from training_studio.server.context import ServerContext, server_context
from training_studio.server.errors import ApiError, error_responses
from training_studio.server.routes_outputs import list_outputs, open_output
from training_studio.server.served_files import OpenFileResponse, OutsideFolder, open_confined

router = APIRouter(tags=["models"])


def _model_or_404(ctx: ServerContext, model_id: str) -> TrainedModel:
    model = ctx.storage.get_model(model_id)
    if model is None:
        raise ApiError(404, "model_not_found", f"There is no model with id {model_id!r}.")
    return model


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


@router.get("/api/models", response_model=list[TrainedModel], responses=error_responses())
async def list_models(ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    return JSONResponse([to_wire(model) for model in ctx.storage.list_models()])


@router.delete("/api/models/{model_id}", response_model=SuccessResponse, responses=error_responses(404, 409))
async def delete_model(model_id: str, ctx: ServerContext = Depends(server_context)) -> dict:
    model = _model_or_404(ctx, model_id)
    if model.status is ModelStatus.PROCESSING:
        raise ApiError(409, "model_processing", f"Model {model.name!r} is still being written by its trainer.")
    removed = ctx.storage.delete_model(model_id)
    if removed is not None and removed.path:
        path = Path(removed.path)

        def unlink() -> None:
            if _inside(path, ctx.config.data_dir) and path.is_file():
                with contextlib.suppress(OSError):
                    path.unlink()

        await asyncio.to_thread(unlink)
    # The folder it was given when its training job was deleted (issue 16), if any: nobody else uses it.
    await asyncio.to_thread(shutil.rmtree, ctx.storage.model_dir(model_id), True)
    return {"success": True}


def _model_folder(ctx: ServerContext, model: TrainedModel) -> Path:
    """The folder a model's files must lie in: its own once its training job was deleted, else the job's
    output folder (else the data dir)."""
    return ctx.storage.model_folder(model) or ctx.config.data_dir


async def _open_model_file(ctx: ServerContext, model: TrainedModel, path: Path, what: str,
                           missing: ApiError) -> tuple[BinaryIO, int]:
    """Open one of a model's files for serving, confined to its folder after resolving links."""
    try:
        return await asyncio.to_thread(open_confined, path, _model_folder(ctx, model))
    except OutsideFolder as exc:
        raise ApiError(403, "outside_job_folder", f"The {what} of model {model.name!r} leads outside its training "
                       "job's folder (through a link); it is not served.") from exc
    except OSError as exc:  # missing, not a regular file, unreadable
        raise missing from exc


@router.get("/api/models/{model_id}/samples",
            responses={200: {"content": {"image/png": {}}, "description": "Sample images from the trained model"},
                       **error_responses(403, 404)})
async def model_samples(model_id: str, ctx: ServerContext = Depends(server_context)) -> Response:
    model = _model_or_404(ctx, model_id)
    path = ctx.storage.model_samples_path(model)
    missing = ApiError(404, "samples_not_found", f"Model {model.name!r} has no sample images.")
    if path is None:
        raise missing
    handle, size = await _open_model_file(ctx, model, path, "sample sheet", missing)
    return OpenFileResponse(handle, size, "image/png")


@router.get("/api/models/{model_id}/checkpoint",
            responses={200: {"content": {"application/octet-stream": {}}, "description": "The checkpoint file"},
                       **error_responses(403, 404, 409)})
async def model_checkpoint(model_id: str, ctx: ServerContext = Depends(server_context)) -> Response:
    model = _model_or_404(ctx, model_id)
    if model.status is not ModelStatus.READY:
        raise ApiError(409, "model_not_ready", f"Model {model.name!r} is {model.status.value}; "
                       "its checkpoint is not available.")
    missing = ApiError(404, "checkpoint_not_found", f"The checkpoint file of model {model.name!r} is missing.")
    if not model.path:
        raise missing
    path = Path(model.path)
    handle, size = await _open_model_file(ctx, model, path, "checkpoint", missing)
    return OpenFileResponse(handle, size, "application/octet-stream", download_name=path.name)


@router.get("/api/models/{model_id}/checkpoints", response_model=list[JobOutputFile],
            responses=error_responses(404))
async def model_checkpoints(model_id: str, ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    """The intermediate checkpoints its trainer saved on the way (those of its training job), by step."""
    model = _model_or_404(ctx, model_id)
    if not model.training_job_id:
        return JSONResponse([])
    return JSONResponse(await asyncio.to_thread(list_outputs, ctx, model.base_model, model.training_job_id,
                                                "checkpoints", _model_folder(ctx, model)))


@router.get("/api/models/{model_id}/checkpoints/{name:path}",
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "An intermediate checkpoint file"}, **error_responses(403, 404)})
async def model_intermediate_checkpoint(model_id: str, name: str,
                                        ctx: ServerContext = Depends(server_context)) -> Response:
    model = _model_or_404(ctx, model_id)
    owner = f"model {model.name!r}"
    if not model.training_job_id:
        raise ApiError(404, "checkpoint_not_found", f"Model {model.name!r} has no checkpoint named {name!r}.")
    handle, size = await open_output(ctx, model.base_model, model.training_job_id, "checkpoints", name, owner,
                                     "its training job's folder", _model_folder(ctx, model))
    return OpenFileResponse(handle, size, "application/octet-stream", download_name=name.rsplit("/", 1)[-1])
