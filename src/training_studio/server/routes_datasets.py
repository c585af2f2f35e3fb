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
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from training_studio.contract import (
    CaptionUpdate,
    CreateDatasetRequest,
    Dataset,
    DatasetFile,
    SuccessResponse,
    to_wire,
)
from training_studio.server import files, layouts
from training_studio.server.context import ServerContext, server_context
from training_studio.server.errors import DISK_FULL_MESSAGE, ApiError, error_responses, is_disk_full
from training_studio.server.storage import BlobInfo, DatasetInUse

log = logging.getLogger(__name__)
router = APIRouter(tags=["datasets"])

MAX_NAME_CHARS = 200
_dataset_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


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
    return JSONResponse(to_wire(committed))


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
