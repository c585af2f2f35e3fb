"""The datasets store: the one object that talks to the server for the Datasets panel.

`DatasetStore` owns the dataset list (`DatasetListModel`, refreshed by `PollingStore` while the panel is
shown and after every change), the files of the dataset being viewed (`DatasetFilesModel`) with their
thumbnails (fetched lazily, a few at a time, kept compressed by content hash, decoded off the GUI thread), the
caption saves, deletes, the base-model list and job creation for the Train dialog (with the scheduling
fields of issue 16, the jobs a new job can wait for, and the names of the server's jobs its default name
avoids). Widgets never call
HTTP: they call the `request_*`/`open_dataset`/`save_caption`/`create_job` methods and listen to the
signals, each named for the event it reports. Every server error ends in a signal with the server's own
sentence; nothing is swallowed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication, QImage, QPixmap

from training_studio.client import ApiClient, ApiError
from training_studio.contract.models import BaseModelInfo, Dataset, TrainingJob
from training_studio.ui.datasets.files_model import DatasetFilesModel
from training_studio.ui.datasets.list_model import DatasetListModel
from training_studio.ui.datasets.polling import REFRESH_INTERVAL_S, PollingStore

__all__ = ["DatasetStore", "THUMBNAIL_SIZE", "decode_image"]

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 128        # logical pixels of a grid cell's picture
THUMBNAIL_CONCURRENCY = 4   # requests in flight at once: a big dataset must not flood the server
# The thumbnails as the server sent them (JPEG/PNG, a few KB at 128 px): kept compressed, decoded again when
# their rows come back into view (issue 19: 10,000 decoded ones were 470 MB). Oldest dropped past this.
THUMBNAIL_DATA_BUDGET = 64 * 1024 * 1024
# One thread decodes every grid thumbnail (0.2-0.5 ms each): scrolling re-decodes dozens at a time, and each
# extra worker thread would keep its own malloc arena of freed images (measured: 4 MiB more resident).
_decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thumbnail-decoder")
FOLLOWABLE_ACTIVE = 200     # active jobs listed to schedule after (a queue longer than this is rare)
FOLLOWABLE_FINISHED = 30    # and the most recently finished ones
JOB_NAMES_LIMIT = 1000      # names fetched for the Train dialog's default name (the server's most per page)
JOB_NAME_QUERY_MAX = 200    # the server's longest search text


def decode_image(data: bytes) -> QImage | None:
    """Decode an encoded image; runs in a worker thread (QImage, unlike QPixmap, is thread-safe)."""
    image = QImage.fromData(data)
    return None if image.isNull() else image


class DatasetStore(PollingStore):
    """Datasets of one server, kept fresh; see the module docstring."""

    datasets_changed = Signal()
    files_loading = Signal(str)                # dataset id
    files_loaded = Signal(str)                 # dataset id
    files_failed = Signal(str, str)            # dataset id, human message
    caption_saved = Signal(str, str)           # dataset id, sha256
    caption_failed = Signal(str, str, str)     # dataset id, sha256, human message
    base_models_loaded = Signal(list)          # list[BaseModelInfo]
    base_models_failed = Signal(str)
    job_created = Signal(object)               # TrainingJob
    job_create_failed = Signal(str)
    # The jobs a new job can be scheduled after (issue 16): active ones, then recently finished ones.
    followable_jobs_loaded = Signal(list)      # list[TrainingJob]
    followable_jobs_failed = Signal(str)
    # Names of the server's jobs (any status, cleared from the Jobs list or not) containing a text: the Train
    # dialog's default name avoids them (issue 15). A failure is only logged: the name is a suggestion.
    job_names_found = Signal(str, list)        # the text asked for, list[str]

    def __init__(self, client: ApiClient, *, interval: float = REFRESH_INTERVAL_S,
                 parent: QObject | None = None) -> None:
        super().__init__(client, interval=interval, parent=parent)
        self.model = DatasetListModel(self)
        self.files_model = DatasetFilesModel(self)
        # Queued: the model asks from inside data(); answering synchronously would re-enter the view.
        self.files_model.thumbnail_needed.connect(self._on_thumbnail_needed, Qt.ConnectionType.QueuedConnection)
        self.base_models: list[BaseModelInfo] | None = None
        self._thumbnail_data: OrderedDict[str, bytes] = OrderedDict()  # sha256 -> encoded, least recent first
        self._thumbnail_data_bytes = 0
        self._thumbnail_gate: asyncio.Semaphore | None = None
        self._thumbnails_in_flight: set[str] = set()
        self._files_task: asyncio.Task[Any] | None = None
        self._files_version: str | None = None  # updated_at of the viewed dataset when its files were read
        self._creating_job = False

    # queries for views ---------------------------------------------------------------------------------
    def dataset(self, dataset_id: str) -> Dataset | None:
        return self.model.record(dataset_id)

    @property
    def is_creating_job(self) -> bool:
        return self._creating_job

    # intents ----------------------------------------------------------------------------------------------
    def open_dataset(self, dataset_id: str | None) -> None:
        """Show this dataset's files in `files_model` (None clears it)."""
        if self._files_task is not None and not self._files_task.done():
            self._files_task.cancel()
        if dataset_id is None:
            self.files_model.set_files(None, [])
            return
        if dataset_id != self.files_model.dataset_id:
            self.files_model.set_files(dataset_id, [])
        self._files_task = self._spawn(self.load_files(dataset_id))

    def save_caption(self, dataset_id: str, sha256: str, caption: str) -> None:
        if self._shut_down:
            return
        self._spawn(self._save_caption(dataset_id, sha256, caption))

    def request_base_models(self) -> None:
        """Emit `base_models_loaded` (from the cache after the first success) or `base_models_failed`."""
        if self.base_models is not None:
            self.base_models_loaded.emit(list(self.base_models))
            return
        if not self._shut_down:
            self._spawn(self.load_base_models())

    def create_job(self, *, name: str, dataset_id: str, base_model: str, total_steps: int,
                   params: dict[str, Any], schedule: dict[str, Any] | None = None) -> None:
        """`schedule`: the optional scheduling fields of `ApiClient.create_job` (held, after_job_id,
        after_condition, not_before)."""
        if self._shut_down or self._creating_job:
            return
        self._creating_job = True
        self._spawn(self._create_job(name=name, dataset_id=dataset_id, base_model=base_model,
                                     total_steps=total_steps, params=params, **(schedule or {})))

    def request_followable_jobs(self) -> None:
        """Emit `followable_jobs_loaded` with the server's active jobs and its most recently finished ones (the
        Train dialog's "after another job" list), or `followable_jobs_failed`."""
        if not self._shut_down:
            self._spawn(self.load_followable_jobs())

    def request_job_names(self, text: str) -> None:
        """Emit `job_names_found(text, names)` with the names of the server's jobs containing `text` (its
        history search, `q=`), whatever their status and whether or not the Jobs list still shows them."""
        if not self._shut_down and text.strip():
            self._spawn(self.load_job_names(text))

    # operations (coroutines; tests may await them) ------------------------------------------------------
    async def _fetch(self) -> None:
        datasets = await self.client.list_datasets()
        self.model.apply_snapshot(datasets)
        self.datasets_changed.emit()
        viewed = self.model.record(self.files_model.dataset_id) if self.files_model.dataset_id else None
        files_busy = self._files_task is not None and not self._files_task.done()
        if viewed is not None and viewed.updated_at != self._files_version and not files_busy:
            self.open_dataset(viewed.id)  # its files changed on the server (e.g. committed meanwhile)

    async def delete_dataset(self, dataset_id: str) -> bool:
        return await self.delete_record(dataset_id)

    async def _delete_on_server(self, dataset_id: str) -> None:
        await self.client.delete_dataset(dataset_id)

    def _forget(self, dataset_id: str) -> None:
        if self.files_model.dataset_id == dataset_id:
            self.open_dataset(None)

    def _rows_changed(self) -> None:
        self.datasets_changed.emit()

    def _record_event_applied(self, dataset_id: str, dataset: Any | None) -> None:
        # The viewed dataset's files changed on the server (e.g. committed): show them.
        files_busy = self._files_task is not None and not self._files_task.done()
        if dataset is not None and self.files_model.dataset_id == dataset_id and not files_busy \
                and dataset.updated_at != self._files_version:
            self.open_dataset(dataset_id)

    async def load_files(self, dataset_id: str) -> bool:
        self.files_loading.emit(dataset_id)
        known = self.model.record(dataset_id)
        version = known.updated_at if known is not None else None
        try:
            files = await self.client.list_dataset_files(dataset_id)
        except ApiError as error:
            self.files_failed.emit(dataset_id, f"Could not load the files of “{self._name_of(dataset_id)}”: "
                                               f"{error.message}")
            return False
        self._files_version = version
        self.files_model.set_files(dataset_id, files)
        self.files_loaded.emit(dataset_id)
        return True

    async def _save_caption(self, dataset_id: str, sha256: str, caption: str) -> bool:
        try:
            await self.client.set_caption(dataset_id, sha256, caption)
        except ApiError as error:
            self.caption_failed.emit(dataset_id, sha256, f"The caption was not saved: {error.message}")
            return False
        if self.files_model.dataset_id == dataset_id:
            self.files_model.set_caption(sha256, caption)
        self.caption_saved.emit(dataset_id, sha256)
        return True

    async def load_base_models(self) -> list[BaseModelInfo] | None:
        try:
            models = await self.client.base_models()
        except ApiError as error:
            self.base_models_failed.emit(f"Could not load the base models: {error.message}")
            return None
        self.base_models = models
        self.base_models_loaded.emit(list(models))
        return models

    async def load_followable_jobs(self) -> list[TrainingJob] | None:
        try:
            active = await self.client.job_history(["running", "queued", "pending"], limit=FOLLOWABLE_ACTIVE)
            finished = await self.client.job_history(["completed", "failed", "cancelled"],
                                                     limit=FOLLOWABLE_FINISHED)
        except ApiError as error:
            self.followable_jobs_failed.emit(f"Could not load the jobs to wait for: {error.message}")
            return None
        jobs = list(active.jobs) + list(finished.jobs)
        self.followable_jobs_loaded.emit(jobs)
        return jobs

    async def load_job_names(self, text: str) -> list[str] | None:
        try:
            page = await self.client.job_history(None, query=text.strip()[:JOB_NAME_QUERY_MAX], limit=JOB_NAMES_LIMIT)
        except ApiError as error:
            log.info("job names like %r not fetched: %s", text, error.message)
            return None
        names = [job.name for job in page.jobs]
        self.job_names_found.emit(text, names)
        return names

    async def _create_job(self, **request: Any) -> TrainingJob | None:
        try:
            job = await self.client.create_job(**request)
        except ApiError as error:
            self.job_create_failed.emit(f"The job was not created: {error.message}")
            return None
        finally:
            self._creating_job = False
        self.job_created.emit(job)
        return job

    # thumbnails -------------------------------------------------------------------------------------------------
    # The model keeps the decoded pixmaps of the rows on screen (a small LRU, files_model.py) and asks again
    # for one it dropped; the store keeps every thumbnail compressed, as the server sent it, so asking again
    # costs a decode off the GUI thread, not a request.
    def _on_thumbnail_needed(self, sha256: str) -> None:
        dataset_id = self.files_model.dataset_id
        if self._shut_down or dataset_id is None or sha256 in self._thumbnails_in_flight:
            return
        self._thumbnails_in_flight.add(sha256)
        self._spawn(self._load_thumbnail(dataset_id, sha256))

    def cache_thumbnail_data(self, sha256: str, data: bytes) -> None:
        """Keep a thumbnail's encoded bytes (what the server sent), the least recently used dropped past
        `THUMBNAIL_DATA_BUDGET`."""
        previous = self._thumbnail_data.pop(sha256, None)
        if previous is not None:
            self._thumbnail_data_bytes -= len(previous)
        self._thumbnail_data[sha256] = data
        self._thumbnail_data_bytes += len(data)
        while self._thumbnail_data_bytes > THUMBNAIL_DATA_BUDGET and len(self._thumbnail_data) > 1:
            _sha, dropped = self._thumbnail_data.popitem(last=False)
            self._thumbnail_data_bytes -= len(dropped)

    def thumbnail_data_size(self) -> tuple[int, int]:
        """(thumbnails, bytes) held compressed."""
        return len(self._thumbnail_data), self._thumbnail_data_bytes

    def has_thumbnail_data(self, sha256: str) -> bool:
        return sha256 in self._thumbnail_data

    async def _load_thumbnail(self, dataset_id: str, sha256: str) -> None:
        ratio = QGuiApplication.instance().devicePixelRatio() if QGuiApplication.instance() else 1.0
        size = max(16, min(1024, round(THUMBNAIL_SIZE * max(1.0, ratio))))
        try:
            data = self._thumbnail_data.get(sha256)
            if data is not None:
                self._thumbnail_data.move_to_end(sha256)
            else:
                if self._thumbnail_gate is None:
                    self._thumbnail_gate = asyncio.Semaphore(THUMBNAIL_CONCURRENCY)
                async with self._thumbnail_gate:
                    if self.files_model.dataset_id != dataset_id:
                        return  # the user moved on before our turn came
                    try:
                        data = await self.client.dataset_thumbnail(dataset_id, sha256, size)
                    except ApiError as error:
                        log.info("thumbnail of %s failed: %s", sha256, error.message)
                        if self.files_model.dataset_id == dataset_id:
                            self.files_model.set_thumbnail(sha256, None)
                        return
                self.cache_thumbnail_data(sha256, data)
            image = await asyncio.get_running_loop().run_in_executor(_decoder, decode_image, data)
        finally:
            self._thumbnails_in_flight.discard(sha256)
        pixmap = QPixmap.fromImage(image) if image is not None else None  # GUI thread only
        if pixmap is not None:
            pixmap.setDevicePixelRatio(max(1.0, size / THUMBNAIL_SIZE))
        else:
            self._drop_thumbnail_data(sha256)  # not an image: ask the server again next time
        if self.files_model.dataset_id == dataset_id:
            self.files_model.set_thumbnail(sha256, pixmap)

    def _drop_thumbnail_data(self, sha256: str) -> None:
        dropped = self._thumbnail_data.pop(sha256, None)
        if dropped is not None:
            self._thumbnail_data_bytes -= len(dropped)
