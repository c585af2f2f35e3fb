"""Training-job endpoints: list (active and history), status, create, cancel, metrics, logs, base models.

Routes validate and store; running a job is the executor's business (`submit` after the row exists,
`cancel` for an active job). Responses are the contract's TrainingJob in camelCase. The job list carries
the current revision in `X-Training-Studio-Revision` and answers deltas with `since=` (live updates).
"""

from __future__ import annotations

import asyncio
import enum
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter

from training_studio.contract import (
    ACTIVE_STATUSES,
    BaseModelInfo,
    CreateJobRequest,
    JobStatus,
    LogChunk,
    MetricPoint,
    QueueUpdateRequest,
    TERMINAL_STATUSES,
    SuccessResponse,
    TrainedModel,
    TrainingJob,
    to_wire,
)
from training_studio.runner.registry import ParamsError, find_base_model, list_base_models, validate_params
from training_studio.server.context import ServerContext, server_context
from training_studio.server.errors import ApiError, error_response, error_responses
from training_studio.server.files import clean_display_text
from training_studio.server.served_files import OutsideFolder, open_confined
from training_studio.server.storage import HISTORY_ORDERS, DatasetUnavailable, JobNotFinished

router = APIRouter(tags=["jobs"])

LOG_CHUNK_BYTES = 64 * 1024
# The most one /logs answer carries (limit, or N of a negative offset).
MAX_LOG_CHUNK_BYTES = 1024 * 1024
DEFAULT_HISTORY_LIMIT = 100
MAX_HISTORY_LIMIT = 1000
_STORABLE_STATUSES = [status.value for status in JobStatus if status is not JobStatus.UNKNOWN]
_ACTIVE = [status.value for status in JobStatus if status in ACTIVE_STATUSES]
# Every job list answer carries the current revision (a client detects `since` support by its presence).
REVISION_HEADER = "X-Training-Studio-Revision"
NEXT_CURSOR_HEADER = "X-Training-Studio-Next-Cursor"
# The history's sort orders (storage.HISTORY_ORDERS), ascending and descending, as the document lists them.
HistoryOrder = enum.Enum("HistoryOrder", {f"{prefix}{name}": f"{prefix}{name}" for name in HISTORY_ORDERS
                                          for prefix in ("", "-")}, type=str)
MAX_SINCE_JOBS = 20_000
_LEAP_SECOND = re.compile(r"([Tt ]\d{2}:\d{2}:)60")
# The hot answers (list, status) are rendered by pydantic-core straight from the models to JSON bytes: no
# dict per job and no json.dumps (issue 19). The JSON values are the ones to_wire + JSONResponse gave; only
# the spelling of tiny floats differs (1e-05 is now written 0.00001, as orjson would).
_JOB_LIST_JSON = TypeAdapter(list[TrainingJob])


def _jobs_response(jobs: list[TrainingJob], headers: dict[str, str]) -> Response:
    return Response(_JOB_LIST_JSON.dump_json(jobs, by_alias=True), media_type="application/json", headers=headers)


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
                "schema": {"type": "integer"}}, NEXT_CURSOR_HEADER: {
                "description": "present when more jobs follow in this order: pass it as `cursor` for the next page",
                "schema": {"type": "string"}}}}, **error_responses(409)})
async def list_jobs(status: str | None = Query(None, description="active (default), all, or a comma list of statuses"),
                    limit: int = Query(DEFAULT_HISTORY_LIMIT, ge=1, le=MAX_HISTORY_LIMIT),
                    before: str | None = Query(None, description="only jobs created before this createdAt"),
                    since: int | None = Query(None, ge=0, le=2**62, description=(
                        "only jobs changed after this revision (a previous answer's X-Training-Studio-Revision), "
                        "finished ones included; 409 revision_unknown if this server cannot tell")),
                    after: str | None = Query(None, description="only jobs created after this createdAt"),
                    q: str | None = Query(None, max_length=200,
                                          description="only jobs whose name contains this text (any case)"),
                    order: HistoryOrder | None = Query(None, description=(
                        "sort field (createdAt, name, status, startedAt, finishedAt, progress, currentLoss), "
                        "'-' first for descending; default -createdAt")),
                    cursor: str | None = Query(None, max_length=1000, description=(
                        "the previous page's X-Training-Studio-Next-Cursor: the page after it in this order")),
                    ctx: ServerContext = Depends(server_context)) -> Response:
    # Read before the jobs: a change racing this answer is sent again next time, never lost.
    headers = {REVISION_HEADER: str(ctx.storage.current_revision())}
    if since is not None:
        return _jobs_changed_since(ctx, since, status, headers)
    history = any(value is not None for value in (after, q, order, cursor))
    if not history and (status is None or status.strip().lower() == "active"):
        return _jobs_response(ctx.storage.jobs_with_status(_ACTIVE), headers)
    order = _parse_order(order.value if isinstance(order, enum.Enum) else order)
    statuses = _parse_statuses(status) if status is not None else list(_ACTIVE)
    before_text = _before_as_stored(before, "before") if before is not None else None
    after_text = _before_as_stored(after, "after") if after is not None else None
    jobs, next_cursor = ctx.storage.job_history(statuses, limit=limit, order=order, before=before_text,
                                                after=after_text, query=q or None,
                                                cursor=_decode_cursor(cursor, order) if cursor else None)
    if next_cursor is not None:
        headers[NEXT_CURSOR_HEADER] = _encode_cursor(next_cursor, order)
    return _jobs_response(jobs, headers)


def _parse_order(order: str | None) -> str:
    if order is None or not order.strip():
        return "-createdAt"
    text = order.strip()
    if text.lstrip("-") not in HISTORY_ORDERS or text.startswith("--"):
        raise ApiError(422, "validation_error", f"order: {order[:40]!r} is not a sort field (use "
                       f"{', '.join(HISTORY_ORDERS)}, with '-' first for descending).")
    return text


# A next-page cursor: the last row's createdAt (the stored form), "~", its sort key as text.
_CURSOR = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)~(.*)$", re.DOTALL)
CURSOR_PATTERN = _CURSOR.pattern


def _encode_cursor(cursor: tuple[Any, str], order: str) -> str:
    """`<createdAt>~<sort key>`: transparent, so that every value of the documented form is a position (a
    cursor is a place in the order, not a secret)."""
    key = "" if cursor[0] is None else (repr(cursor[0]) if isinstance(cursor[0], float) else str(cursor[0]))
    return f"{cursor[1]}~{key}"


def _decode_cursor(text: str, order: str) -> tuple[Any, str]:
    match = _CURSOR.match(text)
    if match is None:
        raise ApiError(422, "validation_error", "cursor: not of the form <createdAt>~<key> (pass the "
                       "X-Training-Studio-Next-Cursor header of the previous page unchanged).")
    created, key = match.group(1), match.group(2)
    if order.lstrip("-") in ("progress", "currentLoss"):
        try:
            return float(key), created
        except ValueError:
            return key, created  # compares after every number: a position past the numbers
    return key, created


def _jobs_changed_since(ctx: ServerContext, since: int, status: str | None, headers: dict[str, str]) -> Response:
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
    return _jobs_response(jobs, headers)


def _before_as_stored(before: str, name: str = "before") -> str:
    """`before` in the stored createdAt format: stored times compare as text in exactly that format.

    Any RFC 3339 date-time is accepted, as the OpenAPI document says: a leap second counts as the second
    before it, and a moment beyond year 1 or 9999 in UTC (a far offset at either end) as that end."""
    text = _LEAP_SECOND.sub(r"\g<1>59", before.strip(), count=1)
    try:
        local = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(422, "validation_error", f"{name}: {before[:80]!r} is not an ISO 8601 timestamp.") from None
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
async def job_status(request: Request, job_id: str = Query(..., description="the job's id")) -> Response:
    # The request rather than Depends(server_context): resolving a dependency is a measurable part of this
    # much-polled answer (issue 19).
    job = _job_or_404(request.app.state.context, job_id)
    return Response(job.model_dump_json(by_alias=True), media_type="application/json")


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
    schedule = _schedule_fields(ctx, request.held, request.after_job_id, request.after_condition,
                                request.not_before)
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
    if schedule:
        ctx.storage.set_job_schedule(job.id, **schedule)
    ctx.executor.submit(job.id)
    return JSONResponse(to_wire(ctx.storage.get_job(job.id) or job), status_code=201)


def _schedule_fields(ctx: ServerContext, held: bool | None, after_job_id: str | None, after_condition: str | None,
                     not_before: str | None, *, job_id: str | None = None) -> dict[str, Any]:
    """Checked scheduling fields for storage (issue 16); "" clears after_job_id / not_before."""
    fields: dict[str, Any] = {}
    if held is not None:
        fields["held"] = held
    if after_job_id is not None:
        if after_job_id == "":
            fields["after_job_id"] = None
            fields["after_condition"] = None
        else:
            after = ctx.storage.get_job(after_job_id)
            if after is None:
                raise ApiError(404, "job_not_found", f"after_job_id: there is no job with id {after_job_id[:80]!r} "
                               "to wait for.")
            if after_job_id == job_id or (job_id is not None and _waits_for(ctx, after_job_id, job_id)):
                raise ApiError(409, "schedule_loop", "after_job_id: the jobs would wait for each other forever.")
            fields["after_job_id"] = after_job_id
            fields["after_condition"] = after_condition or "finished"
    elif after_condition is not None:
        fields["after_condition"] = after_condition
    if not_before is not None:
        fields["not_before"] = _before_as_stored(not_before, "not_before") if not_before else None
    return fields


def _waits_for(ctx: ServerContext, first: str, second: str) -> bool:
    """Whether `first` waits, directly or through others, for `second` (a chain must not become a loop)."""
    seen: set[str] = set()
    current: str | None = first
    while current is not None and current not in seen:
        if current == second:
            return True
        seen.add(current)
        job = ctx.storage.get_job(current)
        current = job.after_job_id if job is not None else None
    return False


@router.delete("/api/training/jobs/{job_id}", response_model=SuccessResponse, responses=error_responses(404, 409))
async def delete_job(job_id: str, ctx: ServerContext = Depends(server_context)) -> dict:
    """Delete a finished job with its log, metrics and files. A model it produced is kept: the job's folder
    (checkpoint, intermediate checkpoints, samples) becomes the model's own folder first, by one rename."""
    job = ctx.storage.get_job(job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"There is no job with id {job_id[:80]!r}.")
    if job.status not in TERMINAL_STATUSES:
        raise ApiError(409, "job_active", f"Job {job.name!r} is {job.status.value}; cancel it before deleting it.")
    if job.model_id:
        model = ctx.storage.get_model(job.model_id)
        if model is not None:
            await asyncio.to_thread(_give_files_to_model, ctx, job, model)
    try:
        deleted = ctx.storage.delete_job(job_id)
    except JobNotFinished as exc:  # pragma: no cover - terminal is final; kept for safety
        raise ApiError(409, "job_active", f"Job {exc.name!r} is {exc.status}; cancel it before deleting it.") from exc
    if deleted is None:
        raise ApiError(404, "job_not_found", f"There is no job with id {job_id[:80]!r}.")
    await asyncio.to_thread(_remove_job_files, ctx, job_id)
    return {"success": True}


def _give_files_to_model(ctx: ServerContext, job: TrainingJob, model: TrainedModel) -> None:
    """Move the job's output folder to the model's own folder (one rename: all or nothing) and point the
    model's checkpoint path there; without a job folder there is nothing to move."""
    job_dir = ctx.storage.job_output_dir(job.id)
    target = ctx.storage.model_dir(model.id)
    if not job_dir.is_dir() or target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(job_dir, target)
    shutil.rmtree(target / ".training-studio", ignore_errors=True)  # the finished trainer's control files
    if model.path:
        try:
            relative = Path(model.path).resolve().relative_to(job_dir.resolve())
        except ValueError:
            return  # a checkpoint outside the job's folder stays where it is
        ctx.storage.update_model(model.id, path=str(target / relative))


def _remove_job_files(ctx: ServerContext, job_id: str) -> None:
    ctx.storage.job_log_path(job_id).unlink(missing_ok=True)
    shutil.rmtree(ctx.storage.job_output_dir(job_id), ignore_errors=True)


@router.patch("/api/training/jobs/{job_id}/queue", response_model=TrainingJob, response_model_by_alias=True,
              responses=error_responses(400, 404, 409))
async def update_queue(job_id: str, request: QueueUpdateRequest = Body(...),
                       ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    """Move a waiting job in the queue and/or change how it waits (held, after another job, not before)."""
    job = ctx.storage.get_job(job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"There is no job with id {job_id[:80]!r}.")
    if job.status not in (JobStatus.PENDING, JobStatus.QUEUED):
        raise ApiError(409, "job_not_waiting", f"Job {job.name!r} is {job.status.value}: only a pending or queued "
                       "job can be moved, held or scheduled.")
    schedule = _schedule_fields(ctx, request.held, request.after_job_id, request.after_condition,
                                request.not_before, job_id=job_id)
    if schedule and ctx.storage.set_job_schedule(job_id, **schedule) is None:
        raise ApiError(409, "job_not_waiting", f"Job {job.name!r} just started or ended.")
    if request.move is not None or request.before_job_id:
        # `move` wins over `before_job_id`; a job to go before that is not waiting means "last".
        if not ctx.storage.move_in_queue(job_id, to=request.move, before_job_id=request.before_job_id or None):
            raise ApiError(409, "job_not_waiting", f"Job {job.name!r} just started or ended.")
    ctx.executor.queue_changed()
    return JSONResponse(to_wire(ctx.storage.get_job(job_id) or job))


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
                      ctx: ServerContext = Depends(server_context)) -> Response:
    _job_or_404(ctx, job_id)
    # `scalars` only on the points that have some (docs/api.md): a client that never heard of it sees the
    # old answer, and a million points do not carry a million nulls.
    body = await asyncio.to_thread(ctx.storage.metrics_json, job_id, since_step, stride)
    return Response(body, media_type="application/json")


def read_log_chunk(path: os.PathLike[str] | str, offset: int, max_bytes: int = LOG_CHUNK_BYTES) -> LogChunk:
    """At most `max_bytes` of the log from `offset`, never ending inside a UTF-8 character.

    OutsideFolder when the log is a link that leads out of its folder (a trainer may write beside it)."""
    try:
        handle, _size = open_confined(Path(path), Path(path).parent)
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if offset >= size:
                return LogChunk(text="", next_offset=size, size=size, start=size)
            handle.seek(offset)
            data = handle.read(min(max_bytes, size - offset))
    except FileNotFoundError:
        return LogChunk(text="", next_offset=0, size=0, start=0)
    # A trailing partial character is left for the next read: the trainer may still be writing it.
    cut = _complete_utf8_prefix(data)
    chunk = data[:cut]
    return LogChunk(text=chunk.decode("utf-8", errors="replace"), next_offset=offset + cut, size=size, start=offset)


def read_log_before(path: os.PathLike[str] | str, before: int | None, max_bytes: int = LOG_CHUNK_BYTES) -> LogChunk:
    """At most `max_bytes` of the log that end at byte `before` (None: at the end of the log), for reading a
    huge log from its end backwards. The text begins at a line start (after "\\n" or "\\r", a "\\r\\n" kept
    whole) whenever the window holds one, else (one line longer than the window) at a character boundary;
    `start` says where, so consecutive chunks stitch into the exact file. With `before=None` the end is the
    current size less a trailing incomplete character (the trainer may still be writing it).

    OutsideFolder when the log is a link that leads out of its folder."""
    try:
        handle, _size = open_confined(Path(path), Path(path).parent)
        with handle:
            size = os.fstat(handle.fileno()).st_size
            end = size if before is None else min(max(0, before), size)
            # At least one whole character (4 bytes), so that every chunk makes progress backwards.
            window = max(0, end - max(max_bytes, 4))
            # One byte more in front: whether the window already begins at a line start.
            first = max(0, window - 1)
            handle.seek(first)
            data = handle.read(end - first)
    except FileNotFoundError:
        return LogChunk(text="", next_offset=0, size=0, start=0)
    if before is None:
        data = data[:_complete_utf8_prefix(data)]
    end = first + len(data)  # (also: the file may have been truncated meanwhile)
    window = min(window, end)
    start = 0 if window == 0 else first + _line_start(data, window - first)
    text = data[start - first:]
    return LogChunk(text=text.decode("utf-8", errors="replace"), next_offset=end, size=size, start=start)


def _line_start(data: bytes, window_at: int) -> int:
    """Where in `data` the first line that starts at or after `window_at` begins (a line starts after "\\n",
    after "\\r" unless "\\n" follows, which belongs to it); without one before the end of `data`, the first
    character boundary at or after `window_at` (a line longer than the window)."""
    for index in range(max(1, window_at), len(data)):
        previous = data[index - 1]
        if previous == 0x0A or (previous == 0x0D and data[index] != 0x0A):
            return index
    index = window_at
    while index < len(data) and index < window_at + 3 and data[index] & 0b1100_0000 == 0b1000_0000:
        index += 1  # a continuation byte: the character began before the window
    return index


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
async def job_logs(job_id: str,
                   offset: int | None = Query(None, ge=-MAX_LOG_CHUNK_BYTES, le=2**62, description=(
                       "byte offset to read forward from (default 0); negative -N: the last N bytes of the log, "
                       "beginning at a line start")),
                   before: int | None = Query(None, ge=0, le=2**62, description=(
                       "read the bytes that end at this offset (older text), beginning at a line start; "
                       "`offset` is then ignored")),
                   limit: int = Query(LOG_CHUNK_BYTES, ge=1, le=MAX_LOG_CHUNK_BYTES,
                                      description="at most this many bytes"),
                   ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    job = _job_or_404(ctx, job_id)
    path = ctx.storage.job_log_path(job_id)
    try:
        if before is not None:
            chunk = await asyncio.to_thread(read_log_before, path, before, limit)
        elif offset is not None and offset < 0:
            chunk = await asyncio.to_thread(read_log_before, path, None, -offset)
        else:
            chunk = await asyncio.to_thread(read_log_chunk, path, offset or 0, limit)
    except OutsideFolder as exc:
        raise ApiError(403, "outside_job_folder", f"The log of job {job.name!r} leads outside its folder "
                       "(through a link); it is not served.") from exc
    return JSONResponse(to_wire(chunk))
