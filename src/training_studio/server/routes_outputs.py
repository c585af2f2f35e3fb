"""What a job's trainer writes as it trains (issue 13): its sample images and intermediate checkpoints.

A command preset declares them as patterns inside the job's output folder (`samples_glob`,
`checkpoints_glob`, with `{step}` in the name); these endpoints list the matching files as they appear and
serve one by name. Only a name the preset's pattern matches is served, and only once it resolves (links
included) to a regular file inside the job's folder (served_files.open_confined): 403 `outside_job_folder`
otherwise. A sample is served only if its bytes are an image (PNG, JPEG, WebP or GIF), with that type.
The built-in trainer declares its own patterns (registry.py). `list_outputs` and `open_output` also serve
a trained model's intermediate checkpoints (routes_models.py): those of its training job.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from training_studio.contract import JobOutputFile, TrainingJob, format_timestamp, to_wire
from training_studio.runner.presets import find_outputs, output_file_allowed, output_globs
from training_studio.server.context import ServerContext, server_context
from training_studio.server.errors import ApiError, error_responses
from training_studio.server.served_files import OpenFileResponse, OutsideFolder, open_confined

router = APIRouter(tags=["jobs"])

_IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
                (b"GIF89a", "image/gif"))
_KINDS = {"samples": (0, "sample", "sample_not_found"),
          "checkpoints": (1, "checkpoint", "checkpoint_not_found")}


def _job_or_404(ctx: ServerContext, job_id: str) -> TrainingJob:
    job = ctx.storage.get_job(job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"There is no job with id {job_id!r}.")
    return job


def _glob_of(ctx: ServerContext, base_model: str | None, kind: str) -> str | None:
    return output_globs(ctx.config.data_dir, base_model)[_KINDS[kind][0]]


def list_outputs(ctx: ServerContext, base_model: str | None, job_id: str, kind: str,
                 folder: Path | None = None) -> list[dict]:
    """The wire list of a job's samples or checkpoints ("samples" | "checkpoints"), by step. Blocking.
    `folder`: where the files are when not in the job's folder (a deleted job's model keeps them)."""
    glob = _glob_of(ctx, base_model, kind)
    if glob is None:
        return []
    files = find_outputs(folder or ctx.storage.job_output_dir(job_id), glob, job_id)
    return [to_wire(JobOutputFile(name=f.name, step=f.step, size=f.size,
                                  time=format_timestamp(datetime.fromtimestamp(f.mtime, timezone.utc))))
            for f in files]


def image_type(head: bytes) -> str | None:
    for magic, media_type in _IMAGE_TYPES:
        if head.startswith(magic):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


async def open_output(ctx: ServerContext, base_model: str | None, job_id: str, kind: str, name: str,
                      owner: str, folder_text: str = "its folder", folder: Path | None = None) -> tuple[BinaryIO, int]:
    """Open one of a job's samples or checkpoints by name for serving; `owner` ("job 'x'", "model 'y'")
    and `folder_text` name it in the errors: 404 unless the pattern declares the name and the file is
    there, 403 when it leads out of the job's folder."""
    _index, what, missing_code = _KINDS[kind]
    missing = ApiError(404, missing_code, f"{owner[:1].upper()}{owner[1:]} has no {what} named {name!r}.")
    glob = _glob_of(ctx, base_model, kind)
    if glob is None or not output_file_allowed(glob, job_id, name):
        raise missing
    folder = folder or ctx.storage.job_output_dir(job_id)
    try:
        return await asyncio.to_thread(open_confined, folder / name, folder)
    except OutsideFolder as exc:
        raise ApiError(403, "outside_job_folder", f"The {what} {name!r} of {owner} leads outside {folder_text} "
                       "(through a link); it is not served.") from exc
    except OSError as exc:  # missing, not a regular file, unreadable
        raise missing from exc


async def _open_output(ctx: ServerContext, job: TrainingJob, kind: str, name: str) -> tuple[BinaryIO, int]:
    return await open_output(ctx, job.base_model, job.id, kind, name, f"job {job.name!r}")


@router.get("/api/training/jobs/{job_id}/samples", response_model=list[JobOutputFile],
            responses=error_responses(404))
async def job_samples(job_id: str, ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    job = _job_or_404(ctx, job_id)
    return JSONResponse(await asyncio.to_thread(list_outputs, ctx, job.base_model, job.id, "samples"))


@router.get("/api/training/jobs/{job_id}/samples/{name:path}",
            responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "image/gif": {}},
                             "description": "The sample image"}, **error_responses(403, 404, 415)})
async def job_sample(job_id: str, name: str, ctx: ServerContext = Depends(server_context)) -> Response:
    job = _job_or_404(ctx, job_id)
    handle, size = await _open_output(ctx, job, "samples", name)
    try:
        head = await asyncio.to_thread(handle.read, 16)
        await asyncio.to_thread(handle.seek, 0)
    except OSError as exc:
        handle.close()
        raise ApiError(404, "sample_not_found", f"The sample {name!r} could not be read.") from exc
    media_type = image_type(head)
    if media_type is None:
        handle.close()
        raise ApiError(415, "unsupported_file", f"The sample {name!r} of job {job.name!r} is not an image.")
    return OpenFileResponse(handle, size, media_type)


@router.get("/api/training/jobs/{job_id}/checkpoints", response_model=list[JobOutputFile],
            responses=error_responses(404))
async def job_checkpoints(job_id: str, ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    job = _job_or_404(ctx, job_id)
    return JSONResponse(await asyncio.to_thread(list_outputs, ctx, job.base_model, job.id, "checkpoints"))


@router.get("/api/training/jobs/{job_id}/checkpoints/{name:path}",
            responses={200: {"content": {"application/octet-stream": {}}, "description": "The checkpoint file"},
                       **error_responses(403, 404)})
async def job_checkpoint(job_id: str, name: str, ctx: ServerContext = Depends(server_context)) -> Response:
    job = _job_or_404(ctx, job_id)
    handle, size = await _open_output(ctx, job, "checkpoints", name)
    return OpenFileResponse(handle, size, "application/octet-stream", download_name=name.rsplit("/", 1)[-1])
