"""The dataset workbench store: the one object that talks to the server for the dataset settings panel.

`WorkbenchStore` owns the client calls of issue 17's side panel: the resolution-bucket report of a dataset
(`GET /buckets`, the newest request wins: an older answer arriving late is dropped), the repeats and
validation-split changes (`PATCH /api/datasets/{id}`, one at a time per dataset; the server re-materialises
the layouts and answers 409 `dataset_in_use` while a trainer runs on the dataset) and the export of a
dataset as a zip, streamed into `<target>.part` with disk writes in a worker thread and renamed onto the
target only when complete (removed on any failure or cancel; ui.downloads, shared with the Models tab's
checkpoint download), or to a folder: the zip streamed into a hidden staging folder beside the chosen one,
unpacked there in a worker thread and renamed onto it when whole (ui.datasets.folder_export; a folder that
is not empty is refused before anything is downloaded). The validation split is set either as a percentage or as the exact files held out
(the grid's "Use for validation" / "Use for training").
Captioning (issue 17): the server's caption presets (`GET /api/captioners`, cached once loaded) and caption
jobs (`POST /api/datasets/{id}/caption`, one at a time per dataset), each followed by polling its status
until it ends: progress, completion (the server has stored the captions by then) or the job's reason.
Widgets never call HTTP: they call the `request_*` methods and listen to the signals; every server error
ends in a signal carrying the server's own sentence.
"""

from __future__ import annotations

import asyncio
import logging
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from PySide6.QtCore import QObject, Signal

from training_studio.client import ApiClient, ApiError
from training_studio.ui.datasets.folder_export import (
    EXPORT_ZIP_NAME,
    FolderNotEmpty,
    discard_staging,
    make_staging_folder,
    unpack_into_place,
)
from training_studio.ui.downloads import (
    PART_SUFFIX,
    discard_partial,
    finish_download,
    open_for_writing,
    part_path,
)
from training_studio.ui.tasks import TaskSet

__all__ = ["WorkbenchStore", "IN_USE_TEXT", "PART_SUFFIX", "CAPTION_POLL_S"]

log = logging.getLogger(__name__)

_FINISHED = ("completed", "failed", "cancelled")

# Shown for a 409 dataset_in_use after the server's own sentence: what the user can do about it.
IN_USE_TEXT = "Wait until the training job on this dataset ends (or cancel it), then apply again."
# How often a running caption job's status is asked for: one small request, and the bar moves smoothly.
CAPTION_POLL_S = 0.5
CAPTION_POLL_MAX_FAILURES = 20  # consecutive failed status requests before the view is told (~10 s)


class WorkbenchStore(QObject):
    """Client calls of the dataset settings panel; see the module docstring."""

    buckets_loading = Signal(str)                  # dataset id
    buckets_loaded = Signal(str, object)           # dataset id, BucketReportResponse
    buckets_failed = Signal(str, str)              # dataset id, human message
    update_started = Signal(str, str)              # dataset id, what ("repeats" | "validation")
    update_succeeded = Signal(str, str, object)    # dataset id, what, Dataset (the server's new state)
    update_failed = Signal(str, str, str)          # dataset id, what, human message
    export_started = Signal(str, str)              # dataset id, target path
    export_progress = Signal(str, object)          # dataset id, bytes written
    export_saved = Signal(str, str, object)        # dataset id, target path, bytes
    export_failed = Signal(str, str)               # dataset id, human message
    captioners_loaded = Signal(list)               # list[CaptionerInfo]
    captioners_failed = Signal(str)                # human message
    caption_started = Signal(str, object)          # dataset id, TrainingJob (kind "caption")
    caption_progress = Signal(str, object)         # dataset id, TrainingJob (its latest state)
    caption_finished = Signal(str, object)         # dataset id, TrainingJob (completed: captions stored)
    caption_failed = Signal(str, str)              # dataset id, human message (the job's reason)
    unexpected_error = Signal(str)

    def __init__(self, client: ApiClient, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self._tasks = TaskSet(type(self).__name__,
                              lambda error: self.unexpected_error.emit(
                                  f"Unexpected error: {error} (details in the log)."))
        self._bucket_request = 0               # the newest bucket request's number: older answers are dropped
        self._updating: set[tuple[str, str]] = set()
        self._exports: dict[str, asyncio.Task[Any]] = {}
        self.captioners: list[Any] | None = None      # the server's caption presets, once loaded
        self._loading_captioners = False
        self._captioning: dict[str, Any] = {}         # dataset id -> its caption job (latest state)
        self._shut_down = False

    # queries ----------------------------------------------------------------------------------------------
    def is_updating(self, dataset_id: str, what: str) -> bool:
        return (dataset_id, what) in self._updating

    def is_exporting(self, dataset_id: str) -> bool:
        return dataset_id in self._exports

    def is_captioning(self, dataset_id: str) -> bool:
        """A caption job for the dataset is being started or followed."""
        return dataset_id in self._captioning

    def caption_job(self, dataset_id: str) -> Any:
        """The caption job this store follows for the dataset (its latest state), or None."""
        return self._captioning.get(dataset_id)

    # intents -----------------------------------------------------------------------------------------------
    def request_buckets(self, dataset_id: str, *, resolution: int, step: int, batch_size: int) -> None:
        if self._shut_down:
            return
        self._bucket_request += 1
        self._tasks.spawn(self.load_buckets(dataset_id, resolution=resolution, step=step, batch_size=batch_size,
                                            request=self._bucket_request))

    def request_repeats(self, dataset_id: str, repeats: int) -> None:
        self._start_update(dataset_id, "repeats", repeats=repeats)

    def request_validation(self, dataset_id: str, percent: float) -> None:
        self._start_update(dataset_id, "validation", validation_percent=percent)

    def request_validation_files(self, dataset_id: str, files: list[str]) -> None:
        """Hold out exactly these files (sha256) for validation; every other file is trained on."""
        self._start_update(dataset_id, "validation", validation_files=list(files))

    def request_captioners(self, *, reload: bool = False) -> None:
        """Emit `captioners_loaded` (from the cache unless `reload`) or `captioners_failed`."""
        if self.captioners is not None and not reload:
            self.captioners_loaded.emit(list(self.captioners))
            return
        if self._shut_down or self._loading_captioners:
            return
        self._loading_captioners = True
        self._tasks.spawn(self.load_captioners())

    def request_caption(self, dataset_id: str, preset: str) -> None:
        """Start a caption job with this preset and follow it; one at a time per dataset."""
        if self._shut_down or dataset_id in self._captioning:
            return
        self._captioning[dataset_id] = None  # claimed before the request: a second click waits
        self._tasks.spawn(self.caption(dataset_id, preset))

    def request_export(self, dataset_id: str, target: Path, layout: str) -> None:
        if self._shut_down or dataset_id in self._exports:
            return
        self._exports[dataset_id] = self._tasks.spawn(self.export(dataset_id, target, layout))

    def request_export_folder(self, dataset_id: str, target: Path, layout: str) -> None:
        if self._shut_down or dataset_id in self._exports:
            return
        self._exports[dataset_id] = self._tasks.spawn(self.export_folder(dataset_id, target, layout))

    def shutdown(self) -> None:
        self._shut_down = True
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()

    # operations (coroutines; tests may await them) -----------------------------------------------------
    async def load_buckets(self, dataset_id: str, *, resolution: int, step: int, batch_size: int,
                           request: int | None = None) -> Any:
        self.buckets_loading.emit(dataset_id)
        try:
            report = await self.client.dataset_buckets(dataset_id, resolution=resolution, step=step,
                                                       batch_size=batch_size)
        except ApiError as error:
            if request is None or request == self._bucket_request:
                self.buckets_failed.emit(dataset_id, f"Could not compute the buckets: {error.message}")
            return None
        if request is not None and request != self._bucket_request:
            return None  # the inputs changed while this one was in flight; the newer answer follows
        self.buckets_loaded.emit(dataset_id, report)
        return report

    async def load_captioners(self) -> list[Any] | None:
        self._loading_captioners = True
        try:
            captioners = await self.client.captioners()
        except ApiError as error:
            self.captioners_failed.emit(f"Could not load the caption presets: {error.message}")
            return None
        finally:
            self._loading_captioners = False
        self.captioners = captioners
        self.captioners_loaded.emit(list(captioners))
        return captioners

    async def caption(self, dataset_id: str, preset: str) -> Any:
        """Start the caption job and poll it until it ends; the finished job, or None when it did not
        complete (`caption_failed` said why)."""
        self._captioning[dataset_id] = None
        try:
            try:
                job = await self.client.start_caption_job(dataset_id, preset)
            except ApiError as error:
                self._captioning.pop(dataset_id, None)  # before the signal: its slots may start again
                self.caption_failed.emit(dataset_id, f"The captioner was not started: {error.message}")
                return None
            self._captioning[dataset_id] = job
            self.caption_started.emit(dataset_id, job)
            failures = 0
            while job.status.value not in _FINISHED:
                await asyncio.sleep(CAPTION_POLL_S)
                try:
                    latest = await self.client.job_status(job.id)
                except ApiError as error:
                    failures += 1
                    if failures >= CAPTION_POLL_MAX_FAILURES:
                        self._captioning.pop(dataset_id, None)
                        self.caption_failed.emit(dataset_id, f"Lost track of the caption job “{job.name}”: "
                                                             f"{error.message} (see the Jobs tab).")
                        return None
                    continue
                failures = 0
                if latest != job:
                    job = latest
                    self._captioning[dataset_id] = job
                    self.caption_progress.emit(dataset_id, job)
        except BaseException:  # cancelled at quit: the job runs on, this store just stops following it
            self._captioning.pop(dataset_id, None)
            raise
        self._captioning.pop(dataset_id, None)
        if job.status.value == "completed":
            self.caption_finished.emit(dataset_id, job)
            return job
        if job.status.value == "cancelled":
            self.caption_failed.emit(dataset_id, f"The caption job “{job.name}” was cancelled; no caption "
                                                 f"was changed.")
        else:
            reason = job.error or "the server gave no reason"
            self.caption_failed.emit(dataset_id, f"The caption job “{job.name}” failed: {reason}")
        return None

    def _start_update(self, dataset_id: str, what: str, **change: Any) -> None:
        if self._shut_down or (dataset_id, what) in self._updating:
            return
        self._updating.add((dataset_id, what))
        self.update_started.emit(dataset_id, what)
        self._tasks.spawn(self.update(dataset_id, what, **change))

    async def update(self, dataset_id: str, what: str, **change: Any) -> Any:
        self._updating.add((dataset_id, what))
        try:
            dataset = await self.client.update_dataset(dataset_id, **change)
        except ApiError as error:
            self._updating.discard((dataset_id, what))  # before the signal: its slots may apply again
            message = f"Not applied: {error.message}"
            if error.code == "dataset_in_use" or error.status_code == 409:
                message = f"{message} {IN_USE_TEXT}"
            self.update_failed.emit(dataset_id, what, message)
            return None
        finally:
            self._updating.discard((dataset_id, what))
        self.update_succeeded.emit(dataset_id, what, dataset)
        return dataset

    async def export(self, dataset_id: str, target: Path, layout: str) -> bool:
        """Stream the zip into target + ".part", then rename; nothing is left behind on failure."""
        loop = asyncio.get_running_loop()
        part = part_path(target)
        handle: BinaryIO | None = None
        self.export_started.emit(dataset_id, str(target))
        try:
            try:
                handle = await loop.run_in_executor(None, open_for_writing, part)

                async def write(chunk: bytes) -> None:
                    await loop.run_in_executor(None, handle.write, chunk)  # type: ignore[union-attr]

                def progress(done: int, total: int | None) -> None:
                    self.export_progress.emit(dataset_id, done)

                size = await self.client.export_dataset(dataset_id, write, layout=layout, progress=progress)
                await loop.run_in_executor(None, finish_download, handle, part, target)
                handle = None
            except asyncio.CancelledError:
                await discard_partial(loop, handle, part)
                if not self._shut_down:
                    self._exports.pop(dataset_id, None)
                    self.export_failed.emit(dataset_id, "The export was cancelled; nothing was saved.")
                raise
            except ApiError as error:
                await discard_partial(loop, handle, part)
                self._exports.pop(dataset_id, None)  # before the signal: its slots enable Export…
                self.export_failed.emit(dataset_id, f"The dataset was not exported: {error.message}")
                return False
            except OSError as error:
                await discard_partial(loop, handle, part)
                reason = error.strerror or str(error)
                self._exports.pop(dataset_id, None)
                self.export_failed.emit(dataset_id, f"The dataset was not exported: could not write {target}: "
                                                    f"{reason}.")
                return False
        finally:
            self._exports.pop(dataset_id, None)
        self.export_saved.emit(dataset_id, str(target), size)
        return True

    async def export_folder(self, dataset_id: str, target: Path, layout: str) -> bool:
        """Stream the zip into a staging folder beside `target`, unpack it there and rename the result onto
        `target` (new or empty) when whole; the staging folder is removed on any failure or cancel."""
        loop = asyncio.get_running_loop()
        staging: Path | None = None
        handle: BinaryIO | None = None
        size = 0

        async def clean_up() -> None:
            def remove() -> None:
                if handle is not None:
                    try:
                        handle.close()
                    except OSError:
                        pass
                discard_staging(staging)
            await asyncio.shield(loop.run_in_executor(None, remove))  # a cancel still cleans up

        def failed(message: str) -> bool:
            self._exports.pop(dataset_id, None)  # before the signal: its slots enable Export…
            self.export_failed.emit(dataset_id, message)
            return False

        self.export_started.emit(dataset_id, str(target))
        try:
            try:
                staging = await loop.run_in_executor(None, make_staging_folder, target)
                handle = await loop.run_in_executor(None, open_for_writing, staging / EXPORT_ZIP_NAME)

                async def write(chunk: bytes) -> None:
                    await loop.run_in_executor(None, handle.write, chunk)  # type: ignore[union-attr]

                def progress(done: int, total: int | None) -> None:
                    self.export_progress.emit(dataset_id, done)

                size = await self.client.export_dataset(dataset_id, write, layout=layout, progress=progress)
                await loop.run_in_executor(None, handle.close)
                handle = None
                await loop.run_in_executor(None, unpack_into_place, staging, target)
                staging = None
            except asyncio.CancelledError:
                await clean_up()
                if not self._shut_down:
                    self._exports.pop(dataset_id, None)
                    self.export_failed.emit(dataset_id, "The export was cancelled; nothing was saved.")
                raise
            except FolderNotEmpty:
                await clean_up()
                return failed(f"The dataset was not exported: the folder {target} is not empty. Choose an empty or "
                              "a new folder; nothing in it was changed.")
            except ApiError as error:
                await clean_up()
                return failed(f"The dataset was not exported: {error.message}")
            except (OSError, zipfile.BadZipFile) as error:
                await clean_up()
                reason = getattr(error, "strerror", None) or str(error)
                return failed(f"The dataset was not exported: could not write {target}: {reason}.")
        finally:
            self._exports.pop(dataset_id, None)
        self.export_saved.emit(dataset_id, str(target), size)
        return True
