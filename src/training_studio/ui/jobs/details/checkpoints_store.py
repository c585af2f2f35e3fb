"""The checkpoints store: the step checkpoints a job's trainer writes as it trains, listed live and saved to
disk, for the Checkpoints tab of the job details pane (and, through `CheckpointTableModel` and
`CheckpointSaver`, for a trained model's intermediate checkpoints in the Models tab).

`CheckpointsStore` owns the list of one job's checkpoints (`CheckpointTableModel`, newest step first so the
latest is always at the top), polling that list while the job is active and the tab is shown (every
`interval` seconds, sooner when the jobs store reports the job's step advancing, never more often than
`MIN_LIST_GAP_S`; a finished job is listed once more and then no longer polled), and its `CheckpointSaver`.

`CheckpointSaver` owns one download at a time: the file is streamed into `<target>.part` with every disk
operation in a worker thread (ui.downloads), renamed onto the target only when complete, and removed on
any failure or cancel, so no half-written file is ever left; it reports start, progress, success and
failure (in words) by signals. The views never call HTTP.

States (`state_changed`): no job, loading, empty (running: no checkpoints yet; finished: the run wrote
none), showing, unavailable (a server without the checkpoints listing: a plain 404; or a job the server no
longer knows). Listing errors are said through `error` and the rows shown stay.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from PySide6.QtCore import QAbstractTableModel, QByteArray, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal

from training_studio.client import ApiClient, ApiError
from training_studio.contract.models import TERMINAL_STATUSES, JobOutputFile, parse_timestamp
from training_studio.ui.datasets.format import format_bytes
from training_studio.ui.downloads import discard_partial, finish_download, open_for_writing, part_path
from training_studio.ui.jobs.details.job_state import job_is_active
from training_studio.ui.jobs.details.output_follower import OutputFollower
from training_studio.ui.tasks import TaskSet

__all__ = [
    "CheckpointColumn",
    "CheckpointRole",
    "CheckpointSaver",
    "CheckpointTableModel",
    "CheckpointsState",
    "CheckpointsStore",
    "format_written",
    "save_streamed",
    "suggested_filename",
]

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 2.0
MIN_LIST_GAP_S = 1.0  # checkpoints come far less often than steps: progress wakes the list at most this often

_ModelIndex = QModelIndex | QPersistentModelIndex
# write(chunk), progress(done, total) -> bytes written: an ApiClient download with its path bound.
Fetch = Callable[[Callable[[bytes], Awaitable[None]], Callable[[int, int | None], None]], Awaitable[int]]


class CheckpointColumn(enum.IntEnum):
    STEP = 0
    FILE = 1
    SIZE = 2
    WRITTEN = 3


COLUMN_TITLES = ("Step", "File", "Size", "Written")


class CheckpointRole(enum.IntEnum):
    NAME = Qt.ItemDataRole.UserRole + 1   # the path inside the job's folder (what the server serves it by)
    STEP = Qt.ItemDataRole.UserRole + 2   # int or None
    SIZE = Qt.ItemDataRole.UserRole + 3   # bytes
    TIME = Qt.ItemDataRole.UserRole + 4   # ISO text


class CheckpointsState(str, enum.Enum):
    NO_JOB = "no_job"
    LOADING = "loading"
    EMPTY = "empty"
    SHOWING = "showing"
    UNAVAILABLE = "unavailable"


def format_written(text: str | None) -> str:
    """A wire timestamp in local time to the second ("14:03:27" today, "2026-11-27 14:03:27" before)."""
    moment = parse_timestamp(text)
    if moment is None:
        return "—"
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def suggested_filename(owner: str | None, name: str) -> str:
    """A file name to offer for saving checkpoint `name` of a job or model called `owner`:
    "<owner>-step-000200.npz" (characters a file system may refuse become "_")."""
    base = name.rsplit("/", 1)[-1] or "checkpoint"
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in (owner or "")).strip("._")
    return f"{stem}-{base}" if stem else base


def _order(file: JobOutputFile) -> tuple[bool, int, str]:
    """Newest step first; files without a step after them, by name."""
    return (file.step is None, -(file.step or 0), file.name)


class CheckpointTableModel(QAbstractTableModel):
    """One row per checkpoint, newest step first; columns Step, File, Size, Written (see CheckpointRole)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._files: list[JobOutputFile] = []
        self._row_of: dict[str, int] = {}

    # Qt model ------------------------------------------------------------------------------------------
    def rowCount(self, parent: _ModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._files)

    def columnCount(self, parent: _ModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMN_TITLES)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMN_TITLES):
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMN_TITLES[section]
            if role == Qt.ItemDataRole.TextAlignmentRole:  # as the column's cells are aligned
                side = Qt.AlignmentFlag.AlignRight if section in (CheckpointColumn.STEP, CheckpointColumn.SIZE) \
                    else Qt.AlignmentFlag.AlignLeft
                return int(side | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: _ModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._files) or index.column() >= len(COLUMN_TITLES):
            return None
        file = self._files[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == CheckpointColumn.STEP:
                return f"{file.step:,}" if file.step is not None else "—"
            if column == CheckpointColumn.FILE:
                return file.name.rsplit("/", 1)[-1]
            if column == CheckpointColumn.SIZE:
                return format_bytes(file.size) if file.size > 0 else "—"
            if column == CheckpointColumn.WRITTEN:
                return format_written(file.time)
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if column in (CheckpointColumn.STEP, CheckpointColumn.SIZE):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            step = f"step {file.step:,}\n" if file.step is not None else ""
            size = f"{file.size:,} bytes\n" if file.size > 0 else ""
            return f"{file.name}\n{step}{size}written {format_written(file.time)}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"Checkpoint {file.name}" + (f" at step {file.step}" if file.step is not None else "")
        if role == CheckpointRole.NAME:
            return file.name
        if role == CheckpointRole.STEP:
            return file.step
        if role == CheckpointRole.SIZE:
            return file.size
        if role == CheckpointRole.TIME:
            return file.time
        return None

    def roleNames(self) -> dict[int, QByteArray]:
        names = super().roleNames()
        for role in CheckpointRole:
            names[int(role)] = QByteArray(role.name.lower().encode())
        return names

    # queries --------------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [file.name for file in self._files]

    def checkpoint_at(self, row: int) -> JobOutputFile | None:
        return self._files[row] if 0 <= row < len(self._files) else None

    def row_of(self, name: str) -> int | None:
        return self._row_of.get(name)

    def latest_step(self) -> int | None:
        steps = [file.step for file in self._files if file.step is not None]
        return max(steps) if steps else None

    # changes --------------------------------------------------------------------------------------------
    def clear(self) -> None:
        if not self._files:
            return
        self.beginResetModel()
        self._files = []
        self._row_of = {}
        self.endResetModel()

    def apply_listing(self, files: Iterable[JobOutputFile]) -> list[str]:
        """Make the rows the listing's (newest step first) with the narrowest signals: rows gone are
        removed, new ones inserted where they belong, changed ones (rewritten: size or time) updated.
        Returns the names added."""
        by_name = {file.name: file for file in files}
        ordered = sorted(by_name.values(), key=_order)
        kept = [file.name for file in self._files if file.name in by_name]
        if [file.name for file in ordered if file.name in self._row_of] != kept:
            # Only if a server changed a file's step under the same name: start over.
            self.beginResetModel()
            self._files = ordered
            self._reindex()
            self.endResetModel()
            return [file.name for file in ordered]
        for row in range(len(self._files) - 1, -1, -1):
            if self._files[row].name not in by_name:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._files[row]
                self.endRemoveRows()
        added: list[str] = []
        row = 0
        while row < len(ordered):
            if row < len(self._files) and self._files[row].name == ordered[row].name:
                if self._files[row] != ordered[row]:
                    self._files[row] = ordered[row]
                    self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMN_TITLES) - 1))
                row += 1
                continue
            # A run of new files: everything in `ordered` up to the next row already held.
            end = row
            held = self._files[row].name if row < len(self._files) else None
            while end < len(ordered) and ordered[end].name != held:
                end += 1
            self.beginInsertRows(QModelIndex(), row, end - 1)
            self._files[row:row] = ordered[row:end]
            self.endInsertRows()
            added.extend(file.name for file in ordered[row:end])
            row = end
        self._reindex()
        return added

    def _reindex(self) -> None:
        self._row_of = {file.name: row for row, file in enumerate(self._files)}


async def save_streamed(fetch: Fetch, target: Path, progress: Callable[[int, int | None], None]) -> int:
    """Stream `fetch`'s bytes into `target`.part and rename it onto `target` once complete; on any failure
    or cancel the part file is closed and removed, and the error raised. Every disk operation runs in a
    worker thread. Returns the byte count."""
    loop = asyncio.get_running_loop()
    part = part_path(target)
    handle: BinaryIO | None = None
    try:
        handle = await loop.run_in_executor(None, open_for_writing, part)

        async def write(chunk: bytes) -> None:
            await loop.run_in_executor(None, handle.write, chunk)  # type: ignore[union-attr]

        count = await fetch(write, progress)
        await loop.run_in_executor(None, finish_download, handle, part, target)
        handle = None
        return count
    except BaseException:
        await discard_partial(loop, handle, part)
        raise


class CheckpointSaver(QObject):
    """Saves one checkpoint at a time to a file; see the module docstring."""

    started = Signal(str, str)               # checkpoint name, target path
    progress = Signal(str, object, object)   # checkpoint name, bytes done, total bytes or None
    saved = Signal(str, str)                 # checkpoint name, target path
    failed = Signal(str, str)                # checkpoint name, human message (nothing was saved)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._task: asyncio.Task[Any] | None = None
        self._shut_down = False
        self._tasks = TaskSet("CheckpointSaver", lambda error: self.failed.emit(
            "", f"Unexpected error while saving the checkpoint: {error} (details in the app log)."))

    def is_busy(self) -> bool:
        return self._task is not None

    def save(self, name: str, target: str | Path, fetch: Fetch) -> bool:
        """Start saving `name` to `target` (the view asked where); False while another download runs."""
        if self._shut_down or self._task is not None:
            return False
        task = self._tasks.spawn(self._save(name, Path(target), fetch))
        self._task = task
        task.add_done_callback(lambda done: self._done(name, str(target), done))
        return True

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def shutdown(self) -> None:
        self._shut_down = True
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()

    async def _save(self, name: str, target: Path, fetch: Fetch) -> str | None:
        """None when saved, else the message saying why not (`_done` reports either, once the saver is
        free again, so a view enabling its action on the signal sees it free)."""
        file = name.rsplit("/", 1)[-1]
        self.started.emit(name, str(target))
        try:
            await save_streamed(fetch, target, lambda done, total: self.progress.emit(name, done, total))
        except ApiError as error:
            return f"The checkpoint {file} was not saved: {error.message}"
        except OSError as error:
            reason = error.strerror or str(error)
            return f"The checkpoint {file} was not saved: could not write {target}: {reason}."
        return None

    def _done(self, name: str, target: str, task: asyncio.Task[Any]) -> None:
        # Also runs for a task cancelled before it started, where the coroutine's own cleanup never ran.
        if self._task is task:
            self._task = None
        if task.cancelled():
            if not self._shut_down:
                self.failed.emit(name, f"The download of {name.rsplit('/', 1)[-1]} was cancelled; "
                                       "nothing was saved.")
            return
        if task.exception() is not None:
            return  # reported by the TaskSet
        message = task.result()
        if message is None:
            self.saved.emit(name, target)
        else:
            self.failed.emit(name, message)


class CheckpointsStore(OutputFollower):
    """One job's step checkpoints; see the module docstring (the listing loop is OutputFollower's)."""

    checkpoints_added = Signal(list)   # names of the rows added (the view may point at the newest)

    State = CheckpointsState
    NO_JOB_TEXT = "Select a job to see its checkpoints."
    LOADING_TEXT = "Loading checkpoints…"
    EMPTY_RUNNING_TEXT = "No checkpoints yet.\nThey appear here as the trainer writes them."
    EMPTY_FINISHED_TEXT = ("This run wrote no step checkpoints.\nIts final checkpoint, if it made one, is on the "
                           "Models tab.")
    UNLISTED_TEXT = "This server does not list checkpoints (it predates them)."
    LIST_ERROR_TEXT = "Could not list the checkpoints"

    def __init__(self, client: ApiClient, *, jobs: Any = None, interval: float = POLL_INTERVAL_S,
                 parent: QObject | None = None) -> None:
        super().__init__(client, jobs=jobs, interval=interval, min_gap=MIN_LIST_GAP_S,
                         task_name="CheckpointsStore",
                         unexpected_text="Unexpected error while listing the checkpoints", parent=parent)
        self.model: CheckpointTableModel = CheckpointTableModel(self)
        self.saver = CheckpointSaver(self)
        self._names: dict[str, str] = {}  # job id -> name, of jobs the jobs store does not hold

    # queries ---------------------------------------------------------------------------------------------
    def job_name(self, job_id: str | None = None) -> str | None:
        """The name of the job shown (or `job_id`) as the jobs store knows it; None when it does not."""
        job_id = job_id or self.job_id
        if job_id is None:
            return None
        job = self.jobs.model.job(job_id) if self.jobs is not None else None
        return job.name if job is not None else self._names.get(job_id)

    # intents ---------------------------------------------------------------------------------------------
    def save(self, name: str, target: str | Path, *, job_id: str | None = None) -> bool:
        """Save checkpoint `name` of `job_id` (default: the job shown) to `target`; see CheckpointSaver (one
        at a time)."""
        job_id = job_id or self.job_id
        if job_id is None or self._shut_down:
            return False

        def fetch(write: Callable[[bytes], Awaitable[None]], progress: Callable[[int, int | None], None]) -> Any:
            return self.client.download_job_checkpoint_file(job_id, name, write, progress)

        return self.saver.save(name, target, fetch)

    def shutdown(self) -> None:
        super().shutdown()
        self.saver.shutdown()

    async def wait_idle(self) -> None:
        await super().wait_idle()
        await self.saver.wait_idle()

    # the listing --------------------------------------------------------------------------------------
    async def _list(self, job_id: str) -> list[JobOutputFile]:
        return await self.client.job_checkpoints(job_id)

    def _rows_added(self, added: list[str]) -> None:
        self.checkpoints_added.emit(added)

    async def _job_active(self, job_id: str) -> bool:
        """job_state.job_is_active, keeping the name of a job the jobs store does not hold (for the file
        name "Save as…" suggests)."""
        if self.jobs is not None and self.jobs.model.job(job_id) is not None:
            return await job_is_active(self.jobs, self.client, job_id)
        try:
            job = await self.client.job_status(job_id)
        except ApiError:
            return False  # as job_is_active: a job the server cannot tell about counts as finished
        self._names[job_id] = job.name
        return job.status not in TERMINAL_STATUSES
