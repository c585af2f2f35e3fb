"""A table model of server records keyed by id, refreshed by applying whole snapshots as narrow diffs.

`KeyedTableModel` owns the rows of one server list (datasets, trained models): one row per record, newest
`created_at` first. `apply_snapshot()` turns a fresh list from the server into the smallest set of model
signals: rows that left are removed (contiguous runs at once), new rows are inserted at their place, and a
changed record emits `dataChanged` for its row only — never a reset on a routine refresh, so selection and
scroll position survive. Subclasses say how a record looks (`display()`, `columns`); custom data goes
through the named roles of `RecordRole`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from pydantic import BaseModel

__all__ = ["KeyedTableModel", "RecordRole"]

_ModelIndex = QModelIndex | QPersistentModelIndex
RecordT = TypeVar("RecordT", bound=BaseModel)


class RecordRole(IntEnum):
    RECORD = Qt.ItemDataRole.UserRole + 1  # the pydantic record of the row
    ID = Qt.ItemDataRole.UserRole + 2
    STATUS = Qt.ItemDataRole.UserRole + 3  # the status enum value (str)
    SORT = Qt.ItemDataRole.UserRole + 4    # a value that sorts the column correctly


class KeyedTableModel(QAbstractTableModel, Generic[RecordT]):
    """Rows of records with an `id` and a `created_at`; see the module docstring."""

    columns: Sequence[str] = ()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._records: list[RecordT] = []
        self._row_by_id: dict[str, int] = {}

    # what subclasses define ------------------------------------------------------------------------
    def display(self, record: RecordT, column: int) -> str:
        raise NotImplementedError

    def tooltip(self, record: RecordT, column: int) -> str | None:
        return None

    def sort_value(self, record: RecordT, column: int) -> Any:
        return self.display(record, column).casefold()

    def decoration(self, record: RecordT, column: int) -> Any:
        return None

    # Qt model interface ------------------------------------------------------------------------------
    def rowCount(self, parent: _ModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: _ModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def flags(self, index: _ModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(self.columns):
            return self.columns[section]
        return None

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.parent().isValid():
            return None
        row, column = index.row(), index.column()
        if not (0 <= row < len(self._records) and 0 <= column < len(self.columns)):
            return None
        record = self._records[row]
        if role == Qt.ItemDataRole.DisplayRole or role == Qt.ItemDataRole.AccessibleTextRole:
            return self.display(record, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(record, column)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.decoration(record, column)
        if role == RecordRole.RECORD:
            return record
        if role == RecordRole.ID:
            return record.id  # type: ignore[attr-defined]
        if role == RecordRole.STATUS:
            return str(getattr(record, "status", ""))
        if role == RecordRole.SORT:
            return self.sort_value(record, column)
        return None

    # access ----------------------------------------------------------------------------------------------
    def record_at(self, row: int) -> RecordT | None:
        return self._records[row] if 0 <= row < len(self._records) else None

    def record(self, record_id: str) -> RecordT | None:
        row = self._row_by_id.get(record_id)
        return None if row is None else self._records[row]

    def row_of(self, record_id: str) -> int | None:
        return self._row_by_id.get(record_id)

    def ids(self) -> list[str]:
        return [r.id for r in self._records]  # type: ignore[attr-defined]

    # diffs -------------------------------------------------------------------------------------------------
    def apply_snapshot(self, records: Iterable[RecordT]) -> None:
        """Make the rows equal `records` (newest first) with removals, inserts and per-row dataChanged."""
        incoming: dict[str, RecordT] = {}
        for record in records:
            incoming[record.id] = record  # type: ignore[attr-defined]  # a duplicated id keeps the last copy
        target = sorted(incoming.values(), key=_newest_first)

        # 1. removals, in contiguous runs from the bottom so row numbers above stay valid
        gone = sorted((row for rid, row in self._row_by_id.items() if rid not in incoming), reverse=True)
        for first, last in _runs_descending(gone):
            self.beginRemoveRows(QModelIndex(), first, last)
            del self._records[first:last + 1]
            self.endRemoveRows()
        if gone:
            self._reindex()

        # 2. an existing row never moves: if the survivors' order disagrees with the target order (a
        # server changed a created_at), fall back to a layout change that keeps persistent indexes.
        target_ids = [r.id for r in target]  # type: ignore[attr-defined]
        survivors = [rid for rid in target_ids if rid in self._row_by_id]
        if survivors != self.ids():
            self._relayout(target)
            return

        # 3. inserts (in runs) and in-place updates, walking the target order
        row = 0
        index = 0
        while index < len(target):
            record = target[index]
            current = self._records[row] if row < len(self._records) else None
            if current is not None and current.id == record.id:  # type: ignore[attr-defined]
                if current != record:
                    self._records[row] = record
                    self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))
                row += 1
                index += 1
                continue
            run_end = index
            while run_end < len(target) and target[run_end].id not in self._row_by_id:  # type: ignore[attr-defined]
                run_end += 1
            new = target[index:run_end]
            self.beginInsertRows(QModelIndex(), row, row + len(new) - 1)
            self._records[row:row] = new
            self._reindex()
            self.endInsertRows()
            row += len(new)
            index = run_end

    def remove(self, record_id: str) -> None:
        row = self._row_by_id.get(record_id)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._records[row]
        self._reindex()
        self.endRemoveRows()

    def update(self, record: RecordT) -> None:
        """Replace one record in place (after an action answered with the new state)."""
        row = self._row_by_id.get(record.id)  # type: ignore[attr-defined]
        if row is None:
            self.apply_snapshot([*self._records, record])
            return
        if self._records[row] != record:
            self._records[row] = record
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))

    def _relayout(self, target: list[RecordT]) -> None:
        self.layoutAboutToBeChanged.emit()
        old_persistent = self.persistentIndexList()
        old_ids = [self._records[i.row()].id for i in old_persistent]  # type: ignore[attr-defined]
        old_columns = [i.column() for i in old_persistent]
        survivors = [r for r in target if r.id in self._row_by_id]  # type: ignore[attr-defined]
        self._records = survivors
        self._reindex()
        self.changePersistentIndexList(
            old_persistent, [self.index(self._row_by_id[rid], col) for rid, col in zip(old_ids, old_columns)])
        self.layoutChanged.emit()
        self.apply_snapshot(target)  # now only inserts and updates remain

    def _reindex(self) -> None:
        self._row_by_id = {r.id: i for i, r in enumerate(self._records)}  # type: ignore[attr-defined]


def _newest_first(record: BaseModel) -> tuple[str, str]:
    # ISO 8601 UTC strings of one server sort chronologically as text; invert by sorting descending.
    return _Descending(getattr(record, "created_at", "") or ""), record.id  # type: ignore[attr-defined,return-value]


class _Descending(str):
    def __lt__(self, other: str) -> bool:  # type: ignore[override]
        return str.__gt__(self, other)

    def __gt__(self, other: str) -> bool:  # type: ignore[override]
        return str.__lt__(self, other)


def _runs_descending(rows: list[int]) -> list[tuple[int, int]]:
    """[9, 8, 7, 3, 2] -> [(7, 9), (2, 3)]: contiguous runs, highest first."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and runs[-1][0] == row + 1:
            runs[-1] = (row, runs[-1][1])
        else:
            runs.append((row, row))
    return runs
