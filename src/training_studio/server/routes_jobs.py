"""Training-job endpoints: list (active and history), status, create, cancel, metrics, logs, base models.

Routes validate and store; running a job is the executor's business (`submit` after the row exists,
`cancel` for an active job). Responses are the contract's TrainingJob in camelCase. The job list carries
the current revision in `X-Training-Studio-Revision` and answers deltas with `since=` (live updates).
"""

from __future__ import annotations

import asyncio
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse

from training_studio.contract import (
    ACTIVE_STATUSES,
    BaseModelInfo,
    CreateJobRequest,
    JobStatus,
    LogChunk,
    MetricPoint,
    SuccessResponse,
    TrainingJob,
    to_wire,
)
from training_studio.runner.registry import ParamsError, find_base_model, list_base_models, validate_params
from training_studio.server.context import ServerContext, server_context
from training_studio.server.errors import ApiError, error_response, error_responses
from training_studio.server.files import clean_display_text
from training_studio.server.served_files import OutsideFolder, open_confined
from training_studio.server.storage import DatasetUnavailable

router = APIRouter(tags=["jobs"])

LOG_CHUNK_BYTES = 64 * 1024
DEFAULT_HISTORY_LIMIT = 100
MAX_HISTORY_LIMIT = 1000
_STORABLE_STATUSES = [status.value for status in JobStatus if status is not JobStatus.UNKNOWN]
_ACTIVE = [status.value for status in JobStatus if status in ACTIVE_STATUSES]
# Every job list answer carries the current revision (a client detects `since` support by its presence).
REVISION_HEADER = "X-Training-Studio-Revision"
MAX_SINCE_JOBS = 20_000
_LEAP_SECOND = re.compile(r"([Tt ]\d{2}:\d{2}:)60")


def _job_or_404(ctx: ServerContext, job_id: str) -> TrainingJob:
    job = ctx.storage.get_job(job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"There is no job with id {job_id!r}.")
    return job


def _parse_statuses(text: str) -> list[str]:
    wanted: list[str] = []
    for part in (piece.strip().lower() for piece in text.split(",")):
        if not part:
            continue
        if part == "all":
            return list(_STORABLE_STATUSES)
        if part == "active":
            wanted.extend(_ACTIVE)
        elif part in _STORABLE_STATUSES:
            wanted.append(part)
        else:
            raise ApiError(422, "validation_error",
                           f"status: unknown job status {part!r} (use all, active or any of "
                           f"{', '.join(_STORABLE_STATUSES)}).")
    if not wanted:
        raise ApiError(422, "validation_error", "status: give at least one job status.")
    return list(dict.fromkeys(wanted))


@router.get("/api/training/jobs", response_model=list[TrainingJob], response_model_by_alias=True,
            responses={200: {"description": "The jobs", "headers": {REVISION_HEADER: {
                "description": "the server's current revision: pass it as `since` next time",
                "schema": {"type": "integer"}}}}, **error_responses(409)})
async def list_jobs(status: str | None = Query(None, description="active (default), all, or a comma list of statuses"),
                    limit: int = Query(DEFAULT_HISTORY_LIMIT, ge=1, le=MAX_HISTORY_LIMIT),
                    before: str | None = Query(None, description="only jobs created before this createdAt"),
                    since: int | None = Query(None, ge=0, le=2**62, description=(
                        "only jobs changed after this revision (a previous answer's X-Training-Studio-Revision), "
                        "finished ones included; 409 revision_unknown if this server cannot tell")),
                    ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    # Read before the jobs: a change racing this answer is sent again next time, never lost.
    headers = {REVISION_HEADER: str(ctx.storage.current_revision())}
    if since is not None:
        return _jobs_changed_since(ctx, since, status, headers)
    if status is None or status.strip().lower() == "active":
        jobs = ctx.storage.jobs_with_status(_ACTIVE)
    else:
        before_text = None
        if before is not None:
            before_text = _before_as_stored(before)
        jobs = ctx.storage.list_jobs(_parse_statuses(status), limit, before_text)
    return JSONResponse([to_wire(job) for job in jobs], headers=headers)


def _jobs_changed_since(ctx: ServerContext, since: int, status: str | None, headers: dict[str, str]) -> JSONResponse:
    """The delta answer: with `active` (the default) every changed job, since one that left the active set
    must be seen leaving it; with explicit statuses, the changed jobs now in one of them."""
    wanted = None if status is None or status.strip().lower() == "active" else set(_parse_statuses(status))
    if not ctx.storage.revision_known(since):
        return error_response(409, "revision_unknown", f"since: revision {since} is unknown to this server (too old, "
                              "or from another data dir); fetch the full list instead.", headers=headers)
    jobs = ctx.storage.jobs_changed_since(since, MAX_SINCE_JOBS + 1)
    if len(jobs) > MAX_SINCE_JOBS:
        return error_response(409, "revision_unknown", f"since: more than {MAX_SINCE_JOBS} jobs changed after "
                              f"revision {since}; fetch the full list instead.", headers=headers)
    if wanted is not None:
        jobs = [job for job in jobs if job.status.value in wanted]
    return JSONResponse([to_wire(job) for job in jobs], headers=headers)


def _before_as_stored(before: str) -> str:
    """`before` in the stored createdAt format: stored times compare as text in exactly that format.

    Any RFC 3339 date-time is accepted, as the OpenAPI document says: a leap second counts as the second
    before it, and a moment beyond year 1 or 9999 in UTC (a far offset at either end) as that end."""
    text = _LEAP_SECOND.sub(r"\g<1>59", before.strip(), count=1)
    try:
        local = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(422, "validation_error", f"before: {before[:80]!r} is not an ISO 8601 timestamp.") from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=timezone.utc)
    try:
        moment = local.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        moment = (datetime.min if local.year <= 1 else datetime.max).replace(tzinfo=timezone.utc)
    # isoformat, not strftime: strftime does not pad years below 1000 to four digits.
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


@router.get("/api/training/status", response_model=TrainingJob, response_model_by_alias=True,
            responses=error_responses(404))
async def job_status(job_id: str = Query(..., description="the job's id"),
                     ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    return JSONResponse(to_wire(_job_or_404(ctx, job_id)))


@router.post("/api/training/jobs", status_code=201, response_model=TrainingJob, response_model_by_alias=True,
             responses=error_responses(400, 404, 409, 413))
async def create_job(request: CreateJobRequest = Body(...),
                     ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    name = clean_display_text(request.name, "")
    if not name:
        raise ApiError(422, "validation_error", "name: must not be blank.")
    for field in ("dataset_id", "base_model"):
        # JSON may carry lone surrogates ("\ud800"); such text can be neither stored nor matched.
        if not getattr(request, field).isprintable():
            raise ApiError(422, "validation_error", f"{field}: must be printable text.")
    dataset = ctx.storage.get_dataset(request.dataset_id)
    if dataset is None:
        raise ApiError(404, "dataset_not_found", f"There is no dataset with id {request.dataset_id!r}.")
    if dataset.status.value != "active":
        raise ApiError(409, "dataset_not_active",
                       f"Dataset {dataset.name!r} is {dataset.status.value}; commit it before training on it.")
    base_model = find_base_model(request.base_model, ctx.config.data_dir)
    if base_model is None:
        known = ", ".join(model.id for model in list_base_models(ctx.config.data_dir))
        raise ApiError(400, "unknown_base_model", f"Unknown base model {request.base_model!r} (known: {known}).")
    try:
        params = validate_params(base_model.params_schema, request.params)
    except ParamsError as exc:
        raise ApiError(422, "validation_error", f"params: {exc}") from exc
    try:
        # The dataset is checked again in the transaction that inserts the job: a delete racing this
        # request either sees the job (409 dataset_in_use) or has removed the dataset first (404 here).
        job = ctx.storage.create_job(name, dataset.id, base_model.id, request.total_steps, params,
                                     require_active_dataset=True)
    except DatasetUnavailable as exc:
        if exc.status is None:
            raise ApiError(404, "dataset_not_found", f"Dataset {dataset.name!r} was just deleted.") from exc
        raise ApiError(409, "dataset_not_active",
                       f"Dataset {dataset.name!r} is {exc.status}; commit it before training on it.") from exc
    ctx.executor.submit(job.id)
    return JSONResponse(to_wire(ctx.storage.get_job(job.id) or job), status_code=201)


@router.post("/api/training/jobs/{job_id}/cancel", response_model=SuccessResponse,
             responses=error_responses(404, 409))
async def cancel_job(job_id: str, ctx: ServerContext = Depends(server_context)) -> dict[str, Any]:
    job = _job_or_404(ctx, job_id)
    if job.status in (JobStatus.COMPLETED, JobStatus.FAILED):
        raise ApiError(409, "job_finished", f"Job {job.name!r} has already {job.status.value}; it cannot be cancelled.")
    if job.status is JobStatus.CANCELLED:
        return {"success": True}
    await ctx.executor.cancel(job_id)
    return {"success": True}


@router.get("/api/training/base-models", response_model=list[BaseModelInfo], responses=error_responses())
async def base_models(ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    models = await asyncio.to_thread(list_base_models, ctx.config.data_dir)
    return JSONResponse([to_wire(model) for model in models])


@router.get("/api/training/jobs/{job_id}/metrics", response_model=list[MetricPoint], responses=error_responses(404))
async def job_metrics(job_id: str, since_step: int = Query(-1, ge=-1, le=2**62, description="only steps greater than this"),
                      stride: int = Query(1, ge=1, le=1_000_000, description="keep every K-th point"),
                      ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    _job_or_404(ctx, job_id)
    points = await asyncio.to_thread(ctx.storage.metrics, job_id, since_step, stride)
    return JSONResponse([to_wire(point) for point in points])


def read_log_chunk(path: os.PathLike[str] | str, offset: int, max_bytes: int = LOG_CHUNK_BYTES) -> LogChunk:
    """At most `max_bytes` of the log from `offset`, never ending inside a UTF-8 character.

    OutsideFolder when the log is a link that leads out of its folder (a trainer may write beside it)."""
    try:
        handle, _size = open_confined(Path(path), Path(path).parent)
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if offset >= size:
                return LogChunk(text="", next_offset=size, size=size)
            handle.seek(offset)
            data = handle.read(min(max_bytes, size - offset))
    except FileNotFoundError:
        return LogChunk(text="", next_offset=0, size=0)
    # A trailing partial character is left for the next read: the trainer may still be writing it.
    cut = _complete_utf8_prefix(data)
    chunk = data[:cut]
    return LogChunk(text=chunk.decode("utf-8", errors="replace"), next_offset=offset + cut, size=size)


def _complete_utf8_prefix(data: bytes) -> int:
    """Length of `data` without a trailing, still incomplete UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0b1100_0000 == 0b1000_0000:
            continue  # continuation byte: keep looking for the lead byte
        if byte & 0b1000_0000 == 0:
            return len(data)  # ASCII: complete
        needed = 2 if byte >= 0xC0 and byte < 0xE0 else 3 if byte < 0xF0 else 4
        return len(data) if back >= needed else len(data) - back
    return len(data)


@router.get("/api/training/jobs/{job_id}/logs", response_model=LogChunk, responses=error_responses(403, 404))
async def job_logs(job_id: str, offset: int = Query(0, ge=0, le=2**62, description="byte offset to read from"),
                   ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    job = _job_or_404(ctx, job_id)
    try:
        chunk = await asyncio.to_thread(read_log_chunk, ctx.storage.job_log_path(job_id), offset)
    except OutsideFolder as exc:
        raise ApiError(403, "outside_job_folder", f"The log of job {job.name!r} leads outside its folder "
                       "(through a link); it is not served.") from exc
    return JSONResponse(to_wire(chunk))
