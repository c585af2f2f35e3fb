"""Dataset endpoints: create, list, upload files (content-addressed, resumable), captions, commit, delete,
thumbnails.

A dataset is `processing` while files are added, `active` after commit (layouts materialised),
`failed` if materialising failed. Uploads are checked before anything is recorded (see files.py);
per-dataset locks keep commit, caption edits and delete of one dataset from interleaving.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from pathlib import Path

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from training_studio.contract import (
    BucketReportResponse,
    CaptionBatchRequest,
    CaptionBatchResult,
    CaptionerInfo,
    CaptionUpdate,
    DatasetSettingsUpdate,
    StartCaptionJobRequest,
    TrainingJob,
    CreateDatasetRequest,
    Dataset,
    DatasetFile,
    SuccessResponse,
    to_wire,
)
from training_studio.server import buckets, dataset_ops, files, layouts
from training_studio.server.context import ServerContext, server_context
from training_studio.server.errors import DISK_FULL_MESSAGE, ApiError, error_responses, is_disk_full
from training_studio.server.storage import BlobInfo, DatasetInUse, DatasetUnavailable

log = logging.getLogger(__name__)
router = APIRouter(tags=["datasets"])

MAX_NAME_CHARS = 200
# Shared with the job runner's caption read-back (dataset_ops.apply_caption_folder).
_dataset_locks: defaultdict[str, asyncio.Lock] = dataset_ops.dataset_locks


def _dataset_or_404(ctx: ServerContext, dataset_id: str) -> Dataset:
    dataset = ctx.storage.get_dataset(dataset_id)
    if dataset is None:
        raise ApiError(404, "dataset_not_found", f"There is no dataset with id {dataset_id!r}.")
    return dataset


def _clean_name(name: str) -> str:
    cleaned = files.clean_display_text(name, "")
    if not cleaned:
        raise ApiError(422, "validation_error", "name: must not be empty or blank.")
    return cleaned


@router.get("/api/datasets", response_model=list[Dataset], responses=error_responses())
async def list_datasets(ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    return JSONResponse([to_wire(dataset) for dataset in ctx.storage.list_datasets()])


@router.post("/api/datasets", status_code=201, response_model=Dataset, responses=error_responses(400, 413))
async def create_dataset(request: CreateDatasetRequest = Body(...),
                         ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    dataset = ctx.storage.create_dataset(_clean_name(request.name), request.type)
    return JSONResponse(to_wire(dataset), status_code=201)


@router.get("/api/datasets/{dataset_id}", response_model=Dataset, responses=error_responses(404))
async def get_dataset(dataset_id: str, ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    return JSONResponse(to_wire(_dataset_or_404(ctx, dataset_id)))


@router.get("/api/datasets/{dataset_id}/files", response_model=list[DatasetFile], responses=error_responses(404))
async def list_files(dataset_id: str, ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    _dataset_or_404(ctx, dataset_id)
    return JSONResponse([to_wire(file) for file in ctx.storage.dataset_files(dataset_id)])


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.put("/api/datasets/{dataset_id}/files/{sha256}", status_code=201, response_model=DatasetFile,
            responses={200: {"model": DatasetFile, "description": "Already in this dataset; nothing re-written"},
                       **error_responses(400, 404, 409, 413, 415, 503, 507)},
            openapi_extra=_UPLOAD_BODY)
async def upload_file(dataset_id: str, sha256: str, request: Request,
                      filename: str | None = Query(None, description="display name (sanitised, never a path)"),
                      ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    sha = files.normalise_sha256(sha256)
    dataset = _dataset_or_404(ctx, dataset_id)
    existing = ctx.storage.get_dataset_file(dataset_id, sha)
    if existing is not None:
        return JSONResponse(to_wire(existing), status_code=200)
    if dataset.status.value != "processing":
        raise ApiError(409, "dataset_not_processing",
                       f"Dataset {dataset.name!r} is {dataset.status.value}; files can only be added before commit.")
    max_bytes = ctx.config.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "too_large", f"The file ({int(declared):,} bytes) is larger than the server's limit of "
                       f"{max_bytes:,} bytes.")
    display_name = files.clean_display_text(filename, sha)

    known = ctx.storage.get_blob(sha)
    if known is not None and ctx.storage.blob_path(sha).exists():
        if known.kind != dataset.type.value:
            raise ApiError(415, "unsupported_file", f"This file is already stored as a {known.kind} file; "
                           f"it cannot go into a {dataset.type.value} dataset.")
        # Already stored for another dataset: link it, do not write it again.
        return await _record(ctx, dataset_id, known, display_name, placed=False)

    try:
        upload = await files.stream_to_temp(request.stream(), ctx.storage, max_bytes)
    except ClientDisconnect as exc:
        raise ApiError(400, "bad_request", "The upload was interrupted before the whole body arrived.") from exc
    try:
        if upload.sha256 != sha:
            raise ApiError(400, "hash_mismatch", f"The body's SHA-256 is {upload.sha256}, not {sha}: the file was "
                           "changed or damaged in transit. Nothing was stored.")
        try:
            verified = await files.verify_upload(upload.path, dataset.type.value, ctx.config.max_pixels)
        except files.ImageTooComplex as exc:
            raise ApiError(415, "image_too_complex", f"{display_name}: {exc}.") from exc
        except files.UnsupportedFile as exc:
            raise ApiError(415, "unsupported_file", f"{display_name}: {exc}.") from exc
        blob = BlobInfo(sha256=sha, size=upload.size, kind=dataset.type.value, ext=verified.ext,
                        width=verified.width, height=verified.height)
        return await _record(ctx, dataset_id, blob, display_name, placed=True, temp_path=upload.path)
    finally:
        files.discard(upload.path)


async def _record(ctx: ServerContext, dataset_id: str, blob: BlobInfo, display_name: str, *, placed: bool,
                  temp_path: Path | None = None) -> JSONResponse:
    """Move a verified upload into the blob store (or reuse the stored copy) and add it to the dataset."""
    storage = ctx.storage

    def place_and_record() -> tuple[DatasetFile, bool]:
        with files.blob_lock:
            moved = False
            if placed:
                assert temp_path is not None
                moved = files.move_into_store(storage, temp_path, blob.sha256)
            elif not storage.blob_path(blob.sha256).exists():
                raise ApiError(409, "conflict", "The stored copy of this file was just removed; upload it again.")
            try:
                return storage.add_dataset_file(dataset_id, blob, display_name)
            except BaseException:
                if moved and storage.get_blob(blob.sha256) is None:
                    files.discard(storage.blob_path(blob.sha256))
                raise

    try:
        # Under the dataset's lock so a concurrent commit either sees this file or refuses it (409).
        async with _dataset_locks[dataset_id]:
            file, added = await asyncio.to_thread(place_and_record)
    except LookupError as exc:
        raise ApiError(404, "dataset_not_found", f"There is no dataset with id {dataset_id!r}.") from exc
    except ValueError as exc:
        raise ApiError(409, "dataset_not_processing",
                       f"The dataset is {exc}; files can only be added before commit.") from exc
    except OSError as exc:
        if is_disk_full(exc):
            raise ApiError(507, "insufficient_storage", DISK_FULL_MESSAGE) from exc
        raise
    return JSONResponse(to_wire(file), status_code=201 if added else 200)


@router.put("/api/datasets/{dataset_id}/files/{sha256}/caption", response_model=DatasetFile,
            responses=error_responses(400, 404, 413, 507))
async def set_caption(dataset_id: str, sha256: str, update: CaptionUpdate = Body(...),
                      ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    sha = files.normalise_sha256(sha256)
    async with _dataset_locks[dataset_id]:
        dataset = _dataset_or_404(ctx, dataset_id)
        if ctx.storage.get_dataset_file(dataset_id, sha) is None:
            raise ApiError(404, "file_not_found", f"Dataset {dataset.name!r} has no file {sha}.")
        file = ctx.storage.set_caption(dataset_id, sha, files.sanitise_caption(update.caption))
        if dataset.status.value == "active":
            await asyncio.to_thread(layouts.update_caption, ctx.storage, dataset, sha)
    return JSONResponse(to_wire(file))


@router.post("/api/datasets/{dataset_id}/commit", response_model=Dataset, responses=error_responses(404, 409, 507))
async def commit_dataset(dataset_id: str, ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    async with _dataset_locks[dataset_id]:
        dataset = _dataset_or_404(ctx, dataset_id)
        if dataset.status.value == "active":
            return JSONResponse(to_wire(dataset))
        stored = ctx.storage.dataset_files(dataset_id)
        if not stored:
            raise ApiError(409, "dataset_empty", f"Dataset {dataset.name!r} has no files yet; upload some first.")
        try:
            await asyncio.to_thread(layouts.materialise, ctx.storage, dataset)
        except OSError as exc:
            message = DISK_FULL_MESSAGE if is_disk_full(exc) else f"could not build the dataset folders: {exc}"
            ctx.storage.set_dataset_status(dataset_id, "failed", error=message)
            log.error("commit of dataset %s failed: %s", dataset_id, exc)
            if is_disk_full(exc):
                raise ApiError(507, "insufficient_storage", message) from exc
            raise ApiError(500, "internal_error", message) from exc
        committed = ctx.storage.set_dataset_status(dataset_id, "active", image_count=len(stored))
    # The spare layouts (for the first batch edit) are prepared once the answer is out: begun before it, their
    # thousands of new files competed with the commit's own for the disk and the GIL (about a fifth of a
    # 1,000-file commit, benchmarks/bench_import.py).
    return JSONResponse(to_wire(committed), background=BackgroundTask(dataset_ops.begin_missing_spare, ctx.storage,
                                                                     dataset_id))


@router.delete("/api/datasets/{dataset_id}", response_model=SuccessResponse,
               responses=error_responses(404, 409, 507))
async def delete_dataset(dataset_id: str, ctx: ServerContext = Depends(server_context)) -> dict:
    async with _dataset_locks[dataset_id]:
        _dataset_or_404(ctx, dataset_id)

        def remove() -> bool:
            # The in-use check and the removal of the rows are one transaction (storage.delete_dataset), so
            # a job created at the same moment either blocks this delete or is refused itself. Files go
            # only after their rows are gone.
            with files.blob_lock:
                orphans = ctx.storage.delete_dataset(dataset_id)
                if orphans is None:
                    return False
                files.remove_blob_files(ctx.storage, orphans)
            layouts.remove_layouts(ctx.storage, dataset_id)
            ctx.storage.ensure_reserve()  # given up if the disk was full; taken back when there is room
            return True

        try:
            removed = await asyncio.to_thread(remove)
        except DatasetInUse as exc:
            names = ", ".join(repr(name) for name in exc.job_names)
            raise ApiError(409, "dataset_in_use", f"Dataset {exc.dataset_name!r} is used by the active job(s) "
                           f"{names}; cancel them or wait for them to finish, then delete it.") from exc
        if not removed:
            raise ApiError(404, "dataset_not_found", f"There is no dataset with id {dataset_id!r}.")
    _dataset_locks.pop(dataset_id, None)
    return {"success": True}


@router.get("/api/datasets/{dataset_id}/files/{sha256}/thumbnail",
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}},
                             "description": "A JPEG or PNG no larger than size×size"},
                       **error_responses(400, 404, 415, 503)})
async def thumbnail(dataset_id: str, sha256: str, size: int = Query(256, ge=16, le=1024),
                    ctx: ServerContext = Depends(server_context)) -> Response:
    sha = files.normalise_sha256(sha256)
    dataset = _dataset_or_404(ctx, dataset_id)
    if ctx.storage.get_dataset_file(dataset_id, sha) is None:
        raise ApiError(404, "file_not_found", f"Dataset {dataset.name!r} has no file {sha}.")
    blob = ctx.storage.get_blob(sha)
    if blob is None or blob.kind != "image":
        raise ApiError(415, "unsupported_file", "Thumbnails exist only for image files.")
    try:
        data, media_type = await files.thumbnail(ctx.storage, blob, size, ctx.config.max_pixels)
    except FileNotFoundError as exc:
        raise ApiError(404, "file_not_found", f"The stored copy of {sha} is missing.") from exc
    except files.ImageTooComplex as exc:
        raise ApiError(415, "image_too_complex", f"No thumbnail: {exc}.") from exc
    except files.UnsupportedFile as exc:
        raise ApiError(415, "unsupported_file", f"No thumbnail: {exc}.") from exc
    return Response(content=data, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})


# dataset workbench (issue 17) ----------------------------------------------------------------------
def _selection(ctx: ServerContext, dataset: Dataset, requested: list[str] | str) -> list[tuple[str, str]]:
    """(sha256, caption) of the selected files in dataset order; 404 naming unknown files."""
    captions = ctx.storage.dataset_captions(dataset.id)
    if requested == "all":
        return captions
    wanted: set[str] = set()
    for text in requested:
        wanted.add(files.normalise_sha256(text))
    known = {sha for sha, _caption in captions}
    unknown = sorted(wanted - known)
    if unknown:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3:,} more" if len(unknown) > 3 else "")
        raise ApiError(404, "file_not_found", f"Dataset {dataset.name!r} has no file {shown}; nothing was changed.")
    return [(sha, caption) for sha, caption in captions if sha in wanted]


def _in_use_check(ctx: ServerContext, dataset: Dataset) -> None:
    if dataset.status.value != "active":
        return
    users = dataset_ops.running_trainers(ctx.storage, dataset.id)
    if users:
        names = ", ".join(repr(name) for name in users[:3])
        raise ApiError(409, "dataset_in_use", f"Dataset {dataset.name!r} is being trained on by {names}; its folders "
                       "cannot be rebuilt until that finishes. Nothing was changed.")


@router.post("/api/datasets/{dataset_id}/captions/batch", response_model=CaptionBatchResult,
             responses=error_responses(400, 404, 409, 413, 422, 507))
async def batch_captions(dataset_id: str, request: CaptionBatchRequest = Body(...),
                         ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    """One caption operation over a selection, all or none: one database commit and, for a committed
    dataset, one swap of the rebuilt layouts. `dry_run` only says what would change."""
    op = dataset_ops.CaptionOp(op=request.op, text=request.text or "", find=request.find or "",
                               replace=request.replace or "", ignore_case=request.ignore_case)
    async with _dataset_locks[dataset_id]:
        dataset = _dataset_or_404(ctx, dataset_id)
        restore = None
        if request.op == "restore":
            restore = {files.normalise_sha256(sha): caption for sha, caption in (request.captions or {}).items()}
            selected = _selection(ctx, dataset, list(restore))
        else:
            selected = _selection(ctx, dataset, request.files)
        try:
            changes = await asyncio.to_thread(dataset_ops.compute_caption_changes, op, selected, restore)
        except dataset_ops.CaptionOpConflict as exc:
            raise ApiError(409, exc.code, f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from exc
        except dataset_ops.CaptionOpError as exc:
            raise ApiError(422, "validation_error", f"{exc}.") from exc
        if request.dry_run:
            shown = changes[:dataset_ops.DRY_RUN_EXAMPLES]
            return JSONResponse(_batch_result(True, len(selected), changes, shown, len(shown) == len(changes)))
        if changes:
            _in_use_check(ctx, dataset)
            try:
                await dataset_ops.store_captions(ctx.storage, dataset, {sha: after for sha, _b, after in changes})
            except LookupError as exc:
                raise ApiError(404, "dataset_not_found", f"There is no dataset with id {dataset_id!r}.") from exc
            except OSError as exc:
                if is_disk_full(exc):
                    raise ApiError(507, "insufficient_storage", DISK_FULL_MESSAGE) from exc
                raise
    shown, used = [], 0
    for change in changes:
        used += len(change[1]) + len(change[2])
        if used > dataset_ops.CHANGES_CHARS_LIMIT:
            break
        shown.append(change)
    return JSONResponse(_batch_result(False, len(selected), changes, shown, len(shown) == len(changes)))


def _batch_result(dry_run: bool, selected: int, changes: list[tuple[str, str, str]],
                  shown: list[tuple[str, str, str]], complete: bool) -> dict:
    return {"dry_run": dry_run, "selected": selected, "changed": len(changes),
            "files": [sha for sha, _before, _after in changes],
            "changes": [{"sha256": sha, "before": before, "after": after} for sha, before, after in shown],
            "changes_complete": complete}


@router.get("/api/datasets/{dataset_id}/buckets", response_model=BucketReportResponse,
            responses=error_responses(404, 422))
async def dataset_buckets(dataset_id: str, resolution: int = Query(1024, ge=64, le=8192),
                          step: int = Query(64, ge=8, le=512), batch_size: int = Query(1, ge=1, le=4096),
                          min_bucket: int = Query(buckets.DEFAULT_MIN_BUCKET, ge=8, le=8192),
                          max_bucket: int | None = Query(None, ge=64, le=16384),
                          ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    """How the images fall into kohya's aspect-ratio buckets at `resolution` (server/buckets.py)."""
    _dataset_or_404(ctx, dataset_id)
    top = max_bucket if max_bucket is not None else max(buckets.DEFAULT_MAX_BUCKET, resolution)
    min_bucket = min(min_bucket, top)  # as kohya would have it: no bucket side below the smallest allowed
    sizes = ctx.storage.dataset_sizes(dataset_id)
    report = buckets.bucket_report(sizes, resolution=resolution, step=step, batch_size=batch_size,
                                   min_size=min_bucket, max_size=top)
    return JSONResponse({
        "resolution": resolution, "step": report.step, "batch_size": batch_size, "min_bucket": min_bucket,
        "max_bucket": top, "image_count": len(sizes),
        "buckets": [{"width": b.width, "height": b.height, "count": b.count, "small": b.count < batch_size,
                     "files": b.files} for b in report.buckets],
        "upscaled": report.upscaled, "unsized": report.unsized,
    })


@router.patch("/api/datasets/{dataset_id}", response_model=Dataset,
              responses=error_responses(400, 404, 409, 413, 422, 507))
async def update_dataset(dataset_id: str, update: DatasetSettingsUpdate = Body(...),
                         ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    """Repeats and the validation split; a committed dataset's layouts are rebuilt and swapped in."""
    async with _dataset_locks[dataset_id]:
        dataset = _dataset_or_404(ctx, dataset_id)
        validation = None
        if update.validation is not None:
            split = update.validation  # files win over percent; neither: the split stays as it is
            if split.files is not None:
                validation = {sha for sha, _caption in _selection(ctx, dataset, split.files)}
            elif split.percent is not None:
                hashes = [sha for sha, _caption in ctx.storage.dataset_captions(dataset_id)]
                validation = dataset_ops.validation_pick(hashes, float(split.percent or 0))
        _in_use_check(ctx, dataset)
        built = None
        if dataset.status.value == "active":
            # Built first with the new settings, then stored, then swapped in: a full disk changes nothing.
            planned = dataset.model_copy(update={"repeats": update.repeats or dataset.repeats})

            def planned_rows() -> list:
                rows = ctx.storage.dataset_layout_rows(dataset_id)
                if validation is None:
                    return rows
                return [row._replace(validation=row.sha256 in validation) for row in rows]

            try:
                built = await asyncio.to_thread(lambda: layouts.build(ctx.storage, planned, planned_rows()))
            except OSError as exc:
                if is_disk_full(exc):
                    raise ApiError(507, "insufficient_storage", DISK_FULL_MESSAGE) from exc
                raise ApiError(500, "internal_error", f"could not rebuild the dataset folders: {exc}") from exc
        try:
            changed = ctx.storage.set_dataset_training_split(dataset_id, repeats=update.repeats, validation=validation)
        except BaseException:
            if built is not None:
                layouts.discard_build(built)
            raise
        if changed is None:
            if built is not None:
                layouts.discard_build(built)
            raise ApiError(404, "dataset_not_found", f"There is no dataset with id {dataset_id!r}.")
        if built is not None:
            await asyncio.to_thread(layouts.swap_in, ctx.storage, dataset_id, built)
    return JSONResponse(to_wire(changed))


@router.get("/api/datasets/{dataset_id}/export",
            responses={200: {"content": {"application/zip": {}}, "description": "The dataset as a zip"},
                       **error_responses(404, 409, 422)})
async def export_dataset(dataset_id: str, layout: str = Query("kohya", pattern="^(kohya|imagefolder)$"),
                         ctx: ServerContext = Depends(server_context)) -> StreamingResponse:
    dataset = _dataset_or_404(ctx, dataset_id)
    name = f"{layouts.safe_folder_name(dataset.name)}-{layout}.zip"
    return StreamingResponse(dataset_ops.export_zip(ctx.storage, dataset, layout), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/api/captioners", response_model=list[CaptionerInfo], responses=error_responses())
async def list_captioners(ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    """The `kind = "caption"` presets of presets.toml (issue 17)."""
    from training_studio.runner.presets import load_presets

    presets = await asyncio.to_thread(load_presets, ctx.config.data_dir)
    return JSONResponse([{"id": p.id, "name": p.name, "description": p.description}
                         for p in presets if p.kind == "caption"])


@router.post("/api/datasets/{dataset_id}/caption", status_code=201, response_model=TrainingJob,
             responses=error_responses(400, 404, 409, 413, 422))
async def start_caption_job(dataset_id: str, request: StartCaptionJobRequest = Body(...),
                            ctx: ServerContext = Depends(server_context)) -> JSONResponse:
    """A job of kind `caption`: the preset's command runs over the dataset's images through the normal
    runner; when it completes, the `.txt` files it wrote become the captions (one commit)."""
    from training_studio.runner.presets import find_preset

    dataset = _dataset_or_404(ctx, dataset_id)
    preset = await asyncio.to_thread(find_preset, ctx.config.data_dir, request.preset)
    if preset is None or preset.kind != "caption":
        raise ApiError(404, "unknown_captioner", f"There is no caption preset {request.preset[:100]!r} in presets.toml "
                       "(a [[preset]] with kind = \"caption\").")
    if dataset.status.value != "active":
        raise ApiError(409, "dataset_not_active", f"Dataset {dataset.name!r} is {dataset.status.value}; commit it first.")
    name = files.clean_display_text(request.name, "") if request.name else ""
    name = name or f"Captions for {dataset.name} ({preset.name})"[:200]
    count = max(1, dataset.image_count or len(ctx.storage.dataset_captions(dataset_id)))
    try:
        job = ctx.storage.create_job(name, dataset.id, preset.id, count, {}, require_active_dataset=True,
                                     kind="caption")
    except DatasetUnavailable as exc:
        raise ApiError(409, "dataset_not_active", f"Dataset {dataset.name!r} is {exc.status or 'gone'}.") from exc
    ctx.executor.submit(job.id)
    return JSONResponse(to_wire(ctx.storage.get_job(job.id) or job), status_code=201)
