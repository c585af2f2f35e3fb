"""The History table's rows: the jobs of the pages loaded so far, in the server's order.

`HistoryModel` appends pages as they arrive (Qt's canFetchMore/fetchMore: the view asks for more when the
user scrolls near the end, and the store fetches the next page by cursor). Rows are never re-sorted here:
the server sorts and filters, so paging stays correct. A live change of a job already shown replaces its
row in place (dataChanged for that row only); a brand-new job is not inserted: it shows, in the server's
order, at the next reload (the panel's Refresh, a change of the query, or a reconnection). A new query is
the one reset.
Cells answer `JobRole.LOOK` too, so the Status column is painted with the Jobs table's badge delegate.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from training_studio.contract.models import TERMINAL_STATUSES, TrainingJob, parse_timestamp
from training_studio.ui.jobs.format import (
    NO_VALUE,
    clamp_progress,
    format_elapsed,
    format_loss,
    format_step,
    known_status,
    placement_details,
    placement_text,
    status_label,
)
from training_studio.ui.jobs.model import CellLook, JobRole

__all__ = ["HistoryColumn", "HistoryRole", "HistoryModel", "SORT_FIELDS"]


class HistoryColumn(IntEnum):
    NAME = 0
    STATUS = 1
    STEP = 2
    LOSS = 3
    CREATED = 4
    FINISHED = 5
    DURATION = 6
    PLACEMENT = 7


HEADERS = {HistoryColumn.NAME: "Name", HistoryColumn.STATUS: "Status", HistoryColumn.STEP: "Step",
           HistoryColumn.LOSS: "Loss", HistoryColumn.CREATED: "Created", HistoryColumn.FINISHED: "Finished",
           HistoryColumn.DURATION: "Duration", HistoryColumn.PLACEMENT: "Ran on"}

# The server's sort field per column (docs/api.md history `order=`); columns without one do not sort.
SORT_FIELDS: dict[HistoryColumn, str] = {
    HistoryColumn.NAME: "name", HistoryColumn.STATUS: "status", HistoryColumn.LOSS: "currentLoss",
    HistoryColumn.CREATED: "createdAt", HistoryColumn.FINISHED: "finishedAt",
}


class HistoryRole(IntEnum):
    JOB = Qt.ItemDataRole.UserRole + 1  # the TrainingJob
    JOB_ID = Qt.ItemDataRole.UserRole + 2
    IS_FINISHED = Qt.ItemDataRole.UserRole + 3


def _local_time(text: str | None) -> str:
    moment = parse_timestamp(text)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def _duration(job: TrainingJob) -> str:
    started, finished = parse_timestamp(job.started_at), parse_timestamp(job.finished_at)
    if started is None or finished is None:
        return NO_VALUE  # never ran (cancelled while waiting), as the Step and Loss cells say
    return format_elapsed(max(0.0, (finished - started).total_seconds()))


def _placement(job: TrainingJob) -> str:
    # Shared with the Jobs table's "Runs on" (ui/jobs/format.py), "—" there too when the server did not say.
    return placement_text(job.placement) or NO_VALUE


_CELL_TEXT: dict[HistoryColumn, Callable[[TrainingJob], str]] = {
    HistoryColumn.NAME: lambda job: job.name,
    HistoryColumn.STATUS: lambda job: status_label(job.status),
    HistoryColumn.STEP: lambda job: format_step(job.current_step, job.total_steps),
    HistoryColumn.LOSS: lambda job: format_loss(job.current_loss),
    HistoryColumn.CREATED: lambda job: _local_time(job.created_at),
    HistoryColumn.FINISHED: lambda job: _local_time(job.finished_at),
    HistoryColumn.DURATION: _duration,
    HistoryColumn.PLACEMENT: _placement,
}


class HistoryModel(QAbstractTableModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: list[TrainingJob] = []
        self._row_of: dict[str, int] = {}
        self._can_fetch_more = False
        self.fetch_more_requested: Callable[[], None] | None = None  # the store's next-page call

    # loading -------------------------------------------------------------------------------------------
    def reset_rows(self, jobs: list[TrainingJob], more: bool) -> None:
        """A new query's first page: the one reset."""
        self.beginResetModel()
        self._jobs = []
        self._row_of = {}
        self._add(jobs)
        self._can_fetch_more = more
        self.endResetModel()

    def append_page(self, jobs: list[TrainingJob], more: bool) -> None:
        fresh = [job for job in jobs if job.id not in self._row_of]  # a job that moved pages: shown once
        if fresh:
            first = len(self._jobs)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            self._add(fresh)
            self.endInsertRows()
        self._can_fetch_more = more

    def _add(self, jobs: list[TrainingJob]) -> None:
        for job in jobs:
            self._row_of[job.id] = len(self._jobs)
            self._jobs.append(job)

    def update_job(self, job: TrainingJob) -> bool:
        """A live change of a job on screen: replace its row in place. False when it is not shown."""
        row = self._row_of.get(job.id)
        if row is None:
            return False
        held = self._jobs[row]
        if held.revision is not None and job.revision is not None and job.revision < held.revision:
            return True
        self._jobs[row] = job
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(HistoryColumn) - 1))
        return True

    def remove_job(self, job_id: str) -> None:
        row = self._row_of.get(job_id)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._jobs[row]
        self._row_of = {job.id: index for index, job in enumerate(self._jobs)}
        self.endRemoveRows()

    def job(self, row: int) -> TrainingJob | None:
        return self._jobs[row] if 0 <= row < len(self._jobs) else None

    def row_of(self, job_id: str) -> int | None:
        return self._row_of.get(job_id)

    def jobs(self) -> list[TrainingJob]:
        return list(self._jobs)

    # Qt model --------------------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._jobs)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(HistoryColumn)

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        return not parent.isValid() and self._can_fetch_more

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex) -> None:  # noqa: N802
        if parent.isValid() or not self._can_fetch_more:
            return
        self._can_fetch_more = False  # until the page arrives: one request at a time
        if self.fetch_more_requested is not None:
            self.fetch_more_requested()

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._jobs):
            return None
        job = self._jobs[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return _CELL_TEXT[HistoryColumn(index.column())](job)
        if role == Qt.ItemDataRole.ToolTipRole:
            column = index.column()
            if column == HistoryColumn.STATUS:  # named here too: a narrow badge shows only its icon
                label = status_label(known_status(job.status))
                return f"{label}: {job.error}" if job.error else label
            if column == HistoryColumn.NAME:
                return job.name
            if column == HistoryColumn.PLACEMENT:  # it shrinks first: the whole placement, as the Jobs table
                return placement_details(job.placement) or None
            if column == HistoryColumn.CREATED:  # it shrinks first too
                return _CELL_TEXT[HistoryColumn.CREATED](job) or None
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() in (HistoryColumn.STEP, HistoryColumn.LOSS,
                                                                             HistoryColumn.DURATION):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == JobRole.LOOK:  # the Jobs table's status badge delegate reads it (ui/jobs/delegates.py)
            status = known_status(job.status)
            return CellLook(status, status_label(status), clamp_progress(job.progress), False, None)
        if role == HistoryRole.JOB:
            return job
        if role == HistoryRole.JOB_ID:
            return job.id
        if role == HistoryRole.IS_FINISHED:
            return job.status in TERMINAL_STATUSES
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(HistoryColumn):
            return HEADERS[HistoryColumn(section)]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.TextAlignmentRole \
                and section in (HistoryColumn.STEP, HistoryColumn.LOSS, HistoryColumn.DURATION):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)  # over right-aligned numbers
        return None
