"""The samples store: the images a job's trainer writes as it trains, listed and fetched for the Samples strip.

`SamplesStore` owns the list of one job's samples (`SampleListModel`, rows in ascending step, each with a
thumbnail once fetched), polling that list while the job is active and the strip is shown (every
`interval` seconds, sooner when the jobs store reports the job's step advancing; a finished job is listed
once more and then no longer polled), and every image request. Images are decoded and scaled off the GUI
thread (`QImage` in an executor thread, like the Datasets thumbnails); at most `FETCHES_AT_ONCE` fetches
run together, only thumbnails a view asked for are fetched, and at most `THUMBNAILS_HELD` are kept. The
full-size image of one sample is fetched when the viewer asks (`request_image`) and not kept. The view
never calls HTTP.

States (`state_changed`): no job, loading, empty (running: "No samples yet"; finished: the trainer writes
none), showing, unavailable (a server without the samples listing: a plain 404). Errors are said through
`error` and the rows shown stay.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QImage, QPixmap

from training_studio.client import ApiClient, ApiError
from training_studio.contract.models import JobOutputFile
from training_studio.ui.jobs.details.output_follower import OutputFollower

__all__ = ["SampleListModel", "SampleRole", "SamplesState", "SamplesStore", "THUMBNAIL_SIZE"]

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 128
THUMBNAILS_HELD = 300  # decoded thumbnails kept (about 64 KB each); older ones are fetched again when shown
POLL_INTERVAL_S = 2.0
MIN_LIST_GAP_S = 0.5
FETCHES_AT_ONCE = 2

_ModelIndex = QModelIndex | QPersistentModelIndex


class SampleRole(enum.IntEnum):
    NAME = Qt.ItemDataRole.UserRole + 1
    STEP = Qt.ItemDataRole.UserRole + 2          # int or None
    TIME = Qt.ItemDataRole.UserRole + 3          # ISO text
    SIZE = Qt.ItemDataRole.UserRole + 4          # bytes
    THUMBNAIL = Qt.ItemDataRole.UserRole + 5     # QPixmap or None (asked for on first use)
    THUMBNAIL_FAILED = Qt.ItemDataRole.UserRole + 6  # bool: the image could not be fetched or decoded


class SamplesState(str, enum.Enum):
    NO_JOB = "no_job"
    LOADING = "loading"
    EMPTY = "empty"
    SHOWING = "showing"
    UNAVAILABLE = "unavailable"


@dataclass
class _Row:
    sample: JobOutputFile
    thumbnail: QImage | None = None
    pixmap: QPixmap | None = None
    failed: bool = False
    wanted: bool = False


def decode_scaled(data: bytes, size: int | None) -> QImage | None:
    """Decode an image and scale it to fit size×size (never up); runs in a worker thread (QImage is safe
    there, QPixmap is not)."""
    image = QImage.fromData(QByteArray(data))
    if image.isNull():
        return None
    if size is not None and (image.width() > size or image.height() > size):
        image = image.scaled(QSize(size, size), Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    return image


class SampleListModel(QAbstractListModel):
    """One row per sample, ascending step; see SampleRole."""

    thumbnail_wanted = Signal(str)  # sample name: a view painted a row whose thumbnail is not fetched yet

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_Row] = []
        self._row_of: dict[str, int] = {}
        self._held: deque[str] = deque()  # names with a thumbnail, oldest first

    # Qt model ------------------------------------------------------------------------------------------
    def rowCount(self, parent: _ModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        sample = row.sample
        if role == Qt.ItemDataRole.DisplayRole:
            return f"step {sample.step}" if sample.step is not None else sample.name.rsplit("/", 1)[-1]
        if role == Qt.ItemDataRole.ToolTipRole:
            step = f"step {sample.step}, " if sample.step is not None else ""
            return f"{sample.name}\n{step}written {sample.time}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"Sample {sample.name}" + (f" at step {sample.step}" if sample.step is not None else "")
        if role == SampleRole.NAME:
            return sample.name
        if role == SampleRole.STEP:
            return sample.step
        if role == SampleRole.TIME:
            return sample.time
        if role == SampleRole.SIZE:
            return sample.size
        if role == SampleRole.THUMBNAIL:
            if row.thumbnail is None:
                if not row.wanted and not row.failed:
                    row.wanted = True
                    self.thumbnail_wanted.emit(sample.name)
                return None
            if row.pixmap is None:
                row.pixmap = QPixmap.fromImage(row.thumbnail)  # GUI thread only: made here, on first paint
            return row.pixmap
        if role == SampleRole.THUMBNAIL_FAILED:
            return row.failed
        return None

    def roleNames(self) -> dict[int, QByteArray]:
        names = super().roleNames()
        for role in SampleRole:
            names[int(role)] = QByteArray(role.name.lower().encode())
        return names

    # queries --------------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [row.sample.name for row in self._rows]

    def sample_at(self, row: int) -> JobOutputFile | None:
        return self._rows[row].sample if 0 <= row < len(self._rows) else None

    def row_of(self, name: str) -> int | None:
        return self._row_of.get(name)

    def steps(self) -> list[int | None]:
        return [row.sample.step for row in self._rows]

    def has_thumbnail(self, name: str) -> bool:
        row = self._row_of.get(name)
        return row is not None and self._rows[row].thumbnail is not None

    def nearest_row(self, step: int) -> int | None:
        """The row whose step is nearest `step` (the later one on a tie); None without stepped rows."""
        best: tuple[int, int] | None = None
        for index, row in enumerate(self._rows):
            if row.sample.step is None:
                continue
            distance = abs(row.sample.step - step)
            if best is None or distance <= best[0]:
                best = (distance, index)
        return best[1] if best is not None else None

    # changes ----------------------------------------------------------------------------------------------
    def clear(self) -> None:
        if not self._rows:
            return
        self.beginResetModel()
        self._rows = []
        self._row_of = {}
        self._held.clear()
        self.endResetModel()

    def apply_listing(self, samples: list[JobOutputFile]) -> bool:
        """Make the rows the listing's (ascending step, then name); True when rows were added or removed."""
        ordered = sorted(samples, key=lambda s: (s.step is None, s.step or 0, s.name))
        current = [row.sample.name for row in self._rows]
        incoming = [s.name for s in ordered]
        if incoming[:len(current)] == current:
            for index, sample in enumerate(ordered[:len(current)]):
                self._update(index, sample)
            if len(incoming) > len(current):
                self.beginInsertRows(QModelIndex(), len(current), len(incoming) - 1)
                self._rows.extend(_Row(sample) for sample in ordered[len(current):])
                self._reindex()
                self.endInsertRows()
                return True
            return False
        kept = {row.sample.name: row for row in self._rows}
        self.beginResetModel()
        self._rows = []
        for sample in ordered:
            row = kept.get(sample.name)
            if row is not None and (row.sample.size, row.sample.time) == (sample.size, sample.time):
                row.sample = sample
                self._rows.append(row)
            else:
                self._rows.append(_Row(sample))
        self._reindex()
        self.endResetModel()
        return True

    def set_thumbnail(self, name: str, image: QImage | None) -> None:
        index = self._row_of.get(name)
        if index is None:
            return
        row = self._rows[index]
        row.thumbnail, row.pixmap, row.failed = image, None, image is None
        cell = self.index(index, 0)
        self.dataChanged.emit(cell, cell, [int(SampleRole.THUMBNAIL), int(SampleRole.THUMBNAIL_FAILED)])
        if image is not None:
            self._held.append(name)
            while len(self._held) > THUMBNAILS_HELD:
                self._evict(self._held.popleft())

    def _evict(self, name: str) -> None:
        """Forget a thumbnail (memory bound); it is fetched again if its cell is painted again."""
        index = self._row_of.get(name)
        if index is None:
            return
        row = self._rows[index]
        if row.thumbnail is not None:
            row.thumbnail, row.pixmap, row.wanted = None, None, False

    def _update(self, index: int, sample: JobOutputFile) -> None:
        row = self._rows[index]
        if (row.sample.size, row.sample.time, row.sample.step) == (sample.size, sample.time, sample.step):
            return
        # Rewritten under the same name: fetch its image again when next painted.
        self._rows[index] = _Row(sample)
        cell = self.index(index, 0)
        self.dataChanged.emit(cell, cell)

    def _reindex(self) -> None:
        self._row_of = {row.sample.name: index for index, row in enumerate(self._rows)}


class SamplesStore(OutputFollower):
    """One job's samples; see the module docstring (the listing loop is OutputFollower's)."""

    samples_added = Signal()               # rows were added (the strip may move to the newest)
    image_loaded = Signal(str, str, QImage)  # job id, sample name, full-size image (for the viewer)
    image_failed = Signal(str, str, str)   # job id, sample name, human text

    State = SamplesState
    NO_JOB_TEXT = "Select a job to see its samples."
    LOADING_TEXT = "Loading samples…"
    EMPTY_RUNNING_TEXT = "No samples yet."
    EMPTY_FINISHED_TEXT = "No samples yet — this trainer writes none."
    UNLISTED_TEXT = "This server does not list samples."
    LIST_ERROR_TEXT = "Could not list the samples"

    def __init__(self, client: ApiClient, *, jobs: Any = None, interval: float = POLL_INTERVAL_S,
                 parent: QObject | None = None) -> None:
        super().__init__(client, jobs=jobs, interval=interval, min_gap=MIN_LIST_GAP_S, task_name="SamplesStore",
                         unexpected_text="Unexpected error while loading samples", parent=parent)
        self.model: SampleListModel = SampleListModel(self)
        # Queued: the model asks from inside data(); fetching synchronously would re-enter the view.
        self.model.thumbnail_wanted.connect(self._want_thumbnail, Qt.ConnectionType.QueuedConnection)
        self._fetch_slots = asyncio.Semaphore(FETCHES_AT_ONCE)

    # intents -------------------------------------------------------------------------------------------
    def request_image(self, name: str) -> None:
        """Fetch one sample at full size: `image_loaded` or `image_failed`."""
        if self.job_id is None or self._shut_down:
            return
        self._tasks.spawn(self._load_image(self._generation, self.job_id, name))

    # the listing --------------------------------------------------------------------------------------
    async def _list(self, job_id: str) -> list[JobOutputFile]:
        return await self.client.job_samples(job_id)

    def _rows_added(self, added: bool) -> None:
        self.samples_added.emit()

    # images ---------------------------------------------------------------------------------------------
    def _want_thumbnail(self, name: str) -> None:
        if self.job_id is None or self._shut_down:
            return
        self._tasks.spawn(self._load_thumbnail(self._generation, self.job_id, name))

    async def _fetch_decoded(self, job_id: str, name: str, size: int | None) -> QImage | None:
        async with self._fetch_slots:
            data = await self.client.job_sample_image(job_id, name)
            return await asyncio.get_running_loop().run_in_executor(None, decode_scaled, data, size)

    async def _load_thumbnail(self, generation: int, job_id: str, name: str) -> None:
        try:
            image = await self._fetch_decoded(job_id, name, THUMBNAIL_SIZE)
        except ApiError as error:
            log.info("sample %s of job %s: %s", name, job_id, error.message)
            image = None
        if generation == self._generation:
            self.model.set_thumbnail(name, image)

    async def _load_image(self, generation: int, job_id: str, name: str) -> None:
        try:
            image = await self._fetch_decoded(job_id, name, None)
        except ApiError as error:
            if generation == self._generation:
                self.image_failed.emit(job_id, name, f"Could not load the sample: {error.message}")
            return
        if generation != self._generation:
            return
        if image is None:
            self.image_failed.emit(job_id, name, "The sample is not an image Qt can read.")
        else:
            self.image_loaded.emit(job_id, name, image)
