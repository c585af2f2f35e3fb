"""The Jobs table's proxy with the queue in it (issue 16): waiting rows in queue order, dragged to reorder it.

`QueueOrderProxyModel` is the `JobFilterProxyModel` (text and status filters) plus two things:

- Order: waiting (pending, queued) rows show in the server's queue order, in the places waiting rows hold
  (`queue_order.display_keys`); other rows keep their createdAt order. The model's rows never move: the proxy
  re-sorts (a layout change, so selection and current row follow their jobs) when a job's status or queue
  position changes, a row comes or goes, or a filter changes, coalesced into one pass per event-loop turn.
  Nothing is re-sorted while the queue order matches createdAt order (no move made), nor while the rows shown
  are already in order (checked from the waiting rows alone: a few ms at 10,000 rows); a re-sort that changes the order costs about
  0.7 s at 10,000 rows (Python comparisons; it happens when a job of a reordered queue starts or is moved) and
  a few ms at the usual hundred.
- Drag and drop: only waiting rows can be dragged (`flags`), and only a line next to a waiting row takes the
  drop (`queue_order.drop_target`, checked in `canDropMimeData`, so the view shows the drop indicator only
  there). A drop emits `reorder_requested(job ids, before job id or None)`; the panel hands it to the store,
  which sends `PATCH …/queue {before_job_id}`. Rows are not moved on the drop: the server's job events bring
  the new queue positions, and the proxy re-sorts from them, so the view never fights the server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QByteArray, QMimeData, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, Signal

from training_studio.contract.models import TrainingJob
from training_studio.ui.jobs.model import WAITING_STATUSES, JobColumn, JobFilterProxyModel, JobListModel, JobRole
from training_studio.ui.jobs.queue_order import DropTarget, drop_target, queue_keys

__all__ = ["QueueOrderProxyModel", "JOB_IDS_MIME_TYPE", "WAITING_STATUSES"]

JOB_IDS_MIME_TYPE = "application/x-training-studio-job-ids"  # a JSON list of job ids: only this table reads it
MAX_DRAGGED = 1000  # job ids one drag carries; a longer payload is not ours

_ModelIndex = QModelIndex | QPersistentModelIndex


def _is_waiting(job: Any) -> bool:
    return isinstance(job, TrainingJob) and job.status in WAITING_STATUSES


class QueueOrderProxyModel(JobFilterProxyModel):
    """See the module docstring."""

    reorder_requested = Signal(list, object)  # job ids in queue order, the waiting job id to go before (or None)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._keys: list[int] | None = None  # display key per source row while the queue order differs
        self._sorted = False  # whether the proxy is sorted by _keys (else: source order)
        self._order_timer = QTimer(self)
        self._order_timer.setSingleShot(True)
        self._order_timer.setInterval(0)
        self._order_timer.timeout.connect(self.apply_queue_order)
        self._order_source: JobListModel | None = None
        self.sourceModelChanged.connect(self._follow_source)
        for signal in (self.rowsInserted, self.rowsRemoved):  # a filter change re-inserts rows unsorted
            signal.connect(self._schedule_order)

    # order ------------------------------------------------------------------------------------------
    def _follow_source(self) -> None:
        # A status change always spans the Status column, and a queue position (or hold) change alone touches
        # the Name or Status cell: the model's once-per-batch `name_or_status_changed` says when the order may
        # have changed (progress, step, loss and the 1 s tick never do), without a slot per dataChanged.
        old = self._order_source
        if old is not None:  # (a source swap: the Jobs panel's Finished view)
            for signal in (old.rowsInserted, old.rowsRemoved, old.modelReset, old.name_or_status_changed):
                try:
                    signal.disconnect(self._schedule_order)
                except (RuntimeError, TypeError):
                    pass
        source = self.sourceModel()
        self._order_source = source if isinstance(source, JobListModel) else None
        if self._order_source is not None:
            for signal in (self._order_source.rowsInserted, self._order_source.rowsRemoved,
                           self._order_source.modelReset, self._order_source.name_or_status_changed):
                signal.connect(self._schedule_order)
        self._schedule_order()

    def _schedule_order(self, *args: object) -> None:
        if not self._order_timer.isActive():
            self._order_timer.start()

    def apply_queue_order(self) -> None:
        """Show the waiting rows in queue order now (normally done once per event-loop turn after a change)."""
        self._order_timer.stop()
        source = self._order_source
        if source is None:
            return
        waiting = source.waiting_rows()  # the usual answer, "already in queue order", from these alone
        keys = queue_keys(waiting, source.rowCount())
        self._keys = keys
        if keys is None:
            if self._sorted:
                self._sorted = False
                self.sort(-1)  # back to the model's (createdAt) order
            return
        self._sorted = True
        shown = [self.mapToSource(self.index(row, 0)).row() for row in range(self.rowCount())]
        if shown != sorted(shown, key=lambda source_row: keys[source_row] if source_row < len(keys) else source_row):
            self.sort(0)  # only when the rows on screen are out of order: a sort re-reads every row

    def lessThan(self, left: _ModelIndex, right: _ModelIndex) -> bool:  # noqa: N802 (Qt name)
        keys = self._keys
        a, b = left.row(), right.row()
        if keys is None or not (a < len(keys) and b < len(keys)):
            return a < b
        return keys[a] < keys[b]

    # drag and drop ----------------------------------------------------------------------------------
    def flags(self, index: _ModelIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        if not index.isValid():
            return flags | Qt.ItemFlag.ItemIsDropEnabled  # drops go between rows, never onto one
        if _is_waiting(self._job(index)):
            return flags | Qt.ItemFlag.ItemIsDragEnabled
        return flags

    def supportedDragActions(self) -> Qt.DropAction:  # noqa: N802 (Qt name)
        return Qt.DropAction.MoveAction

    def supportedDropActions(self) -> Qt.DropAction:  # noqa: N802 (Qt name)
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:  # noqa: N802 (Qt name)
        return [JOB_IDS_MIME_TYPE]

    def mimeData(self, indexes: Sequence[_ModelIndex]) -> QMimeData | None:  # noqa: N802 (Qt name)
        """The dragged waiting jobs' ids (in the table's order); None (no drag) when none of them waits."""
        rows = sorted({index.row() for index in indexes if index.isValid()})
        ids = [job.id for job in (self._job(self.index(row, 0)) for row in rows) if _is_waiting(job)]
        if not ids:
            return None
        data = QMimeData()
        data.setData(JOB_IDS_MIME_TYPE, QByteArray(json.dumps(ids).encode("utf-8")))
        return data

    def canDropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int,  # noqa: N802
                        parent: _ModelIndex) -> bool:
        return self.drop_target_for(data, action, row, parent) is not None

    def dropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int,  # noqa: N802
                     parent: _ModelIndex) -> bool:
        target = self.drop_target_for(data, action, row, parent)
        if target is None:
            return False
        self.reorder_requested.emit(target.job_ids, target.before_job_id)
        return True

    def removeRows(self, row: int, count: int, parent: _ModelIndex = QModelIndex()) -> bool:  # noqa: N802
        # A finished move drag asks the view to remove the dragged rows: they are not removed, the server's
        # events move them.
        return False

    def drop_target_for(self, data: QMimeData | None, action: Qt.DropAction, row: int,
                        parent: _ModelIndex) -> DropTarget | None:
        """What a drop at (row, parent) in this proxy means, or None when it is refused."""
        if data is None or action != Qt.DropAction.MoveAction or not data.hasFormat(JOB_IDS_MIME_TYPE):
            return None
        if parent.isValid():  # onto a row (not offered: rows are not drop targets): above it
            row = parent.row()
        if row < 0:
            return None  # the empty area below the rows: no queue there
        dragged = _decode_ids(bytes(data.data(JOB_IDS_MIME_TYPE).data()))
        if dragged is None:
            return None
        shown = [(job.id, _is_waiting(job)) if isinstance(job, TrainingJob) else ("", False)
                 for job in (self._job(self.index(r, 0)) for r in range(self.rowCount()))]
        return drop_target(shown, dragged, min(row, len(shown)))

    def _job(self, index: _ModelIndex) -> TrainingJob | None:
        source = self._order_source
        if source is None:
            job = index.data(JobRole.JOB)
            return job if isinstance(job, TrainingJob) else None
        return source.job_at(self.mapToSource(index).row())


def _decode_ids(raw: bytes) -> list[str] | None:
    try:
        ids = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(ids, list) or not ids or len(ids) > MAX_DRAGGED or not all(isinstance(i, str) for i in ids):
        return None
    return ids
