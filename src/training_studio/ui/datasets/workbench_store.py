"""The dataset workbench store: the one object that talks to the server for the dataset settings panel.

`WorkbenchStore` owns the client calls of issue 17's side panel: the resolution-bucket report of a dataset
(`GET /buckets`, the newest request wins: an older answer arriving late is dropped), the repeats and
validation-split changes (`PATCH /api/datasets/{id}`, one at a time per dataset; the server re-materialises
the layouts and answers 409 `dataset_in_use` while a trainer runs on the dataset) and the export of a
dataset as a zip, streamed into `<target>.part` with disk writes in a worker thread and renamed onto the
target only when complete (removed on any failure or cancel), the same pattern as the Models tab's
checkpoint download. Widgets never call HTTP: they call the `request_*` methods and listen to the signals;
every server error ends in a signal carrying the server's own sentence.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, BinaryIO

from PySide6.QtCore import QObject, Signal

from training_studio.client import ApiClient, ApiError
from training_studio.ui.models.store import PART_SUFFIX, _discard, _finish, _open_for_writing
from training_studio.ui.tasks import TaskSet

__all__ = ["WorkbenchStore", "IN_USE_TEXT"]

log = logging.getLogger(__name__)

# Shown for a 409 dataset_in_use after the server's own sentence: what the user can do about it.
IN_USE_TEXT = "Wait until the training job on this dataset ends (or cancel it), then apply again."


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
        self._shut_down = False

    # queries ----------------------------------------------------------------------------------------------
    def is_updating(self, dataset_id: str, what: str) -> bool:
        return (dataset_id, what) in self._updating

    def is_exporting(self, dataset_id: str) -> bool:
        return dataset_id in self._exports

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

    def request_export(self, dataset_id: str, target: Path, layout: str) -> None:
        if self._shut_down or dataset_id in self._exports:
            return
        self._exports[dataset_id] = self._tasks.spawn(self.export(dataset_id, target, layout))

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
        part = target.with_name(target.name + PART_SUFFIX)
        handle: BinaryIO | None = None
        self.export_started.emit(dataset_id, str(target))
        try:
            try:
                handle = await loop.run_in_executor(None, _open_for_writing, part)

                async def write(chunk: bytes) -> None:
                    await loop.run_in_executor(None, handle.write, chunk)  # type: ignore[union-attr]

                def progress(done: int, total: int | None) -> None:
                    self.export_progress.emit(dataset_id, done)

                size = await self.client.export_dataset(dataset_id, write, layout=layout, progress=progress)
                await loop.run_in_executor(None, _finish, handle, part, target)
                handle = None
            except asyncio.CancelledError:
                await _discard(loop, handle, part)
                if not self._shut_down:
                    self._exports.pop(dataset_id, None)
                    self.export_failed.emit(dataset_id, "The export was cancelled; nothing was saved.")
                raise
            except ApiError as error:
                await _discard(loop, handle, part)
                self._exports.pop(dataset_id, None)  # before the signal: its slots enable Export…
                self.export_failed.emit(dataset_id, f"The dataset was not exported: {error.message}")
                return False
            except OSError as error:
                await _discard(loop, handle, part)
                reason = error.strerror or str(error)
                self._exports.pop(dataset_id, None)
                self.export_failed.emit(dataset_id, f"The dataset was not exported: could not write {target}: "
                                                    f"{reason}.")
                return False
        finally:
            self._exports.pop(dataset_id, None)
        self.export_saved.emit(dataset_id, str(target), size)
        return True
