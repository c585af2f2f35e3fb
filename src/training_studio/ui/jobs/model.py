"""The table model of training jobs, keyed by job id, and its filter proxy.

This module owns the rows the jobs monitor shows: one row per job, in `createdAt` order, columns
Name, Status, Progress, Step, Loss, Elapsed, ETA and Runs on (the placement). Refreshes are applied
as diffs: new jobs are inserted with begin/endInsertRows at their `createdAt` position (an existing row never moves),
changed jobs emit `dataChanged` for exactly the cells whose shown value changed (adjacent cells
and rows coalesced into ranges of at most 200 cells: above that, Qt's views repaint their whole
viewport; a batch that would need more than 16 signals also merges ranges of the same columns that
lie at most 32 rows apart), and a job that left the active list stays, so the caller can fetch its final state.
There is never a model reset on a routine refresh, so selection and scroll position survive.
Live events and `since=` deltas come as batches of jobs (`apply_updates`): inserted or updated in one pass
of signals. Whatever the path, a job whose server `revision` is older than the one held is not applied.

Elapsed time is `(finishedAt or now) - startedAt`, with `now` the local wall clock corrected by
the server's clock offset; it is computed from timestamps on every read, never by counting
ticks, and never negative. `tick()` (driven by a 1 s timer) only announces that the Elapsed cells
of running rows changed (and the ETA cells of those with an `etaAt`: the countdown is `etaAt - now`, from
timestamps too). The compare set of the details pane (`set_compare_colours`) is shown as a colour swatch
in the Name cell (`JobRole.COMPARE_COLOUR`, `TextLook.swatch`); a job's `detail` (its current phase) is in the
Status cell's tooltip. Custom data goes through the named roles of `JobRole`; delegates and the
proxy read those, never column numbers. Jobs handed to the model are treated as immutable.

Performance (10,000 rows): a refresh listing the same ids in the same order as the last one (the
usual case) is compared position by position in C (map/compress, no Python loop over rows) with the
objects the last refresh passed: by identity when the caller passes unchanged jobs as the same
objects (about 0.4 ms), else by the server's `revision` (one int per job), else (no revisions) by
the shown fields; other refreshes look ids up through a dict, also in C. Per-field work happens only
for the jobs that differ. Whole-list listeners need not walk the rows either: `status_changes_since`
names the rows whose status changed (the finished-job watcher reads only those). Ticks walk the
set of running jobs only. `index()` is answered without the rowCount/columnCount calls of Qt's
default, which a proxy would make for every role a delegate reads. The proxy re-checks a row only
when the model announces `JobRole.FILTER_KEY` (name or status changed), which the tick never
does, so the ticking column costs the filter nothing.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from functools import lru_cache
from itertools import compress, count, repeat
from operator import attrgetter, is_not, itemgetter, ne, or_
from collections.abc import Iterable, Sequence
from enum import IntEnum
from types import SimpleNamespace
from typing import Any, NamedTuple

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QGuiApplication, QPalette

from training_studio.contract.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    JobStatus,
    TrainingJob,
    parse_timestamp,
)
from training_studio.ui.shared_fields import share_fields_set  # issue 19: 730 bytes a job less
from training_studio.ui.jobs import format as fmt

__all__ = ["JobColumn", "JobRole", "CellLook", "TextLook", "JobListModel", "JobFilterProxyModel", "WAITING_STATUSES"]

WAITING_STATUSES = frozenset({JobStatus.PENDING, JobStatus.QUEUED})  # the queue: pending or queued

_ModelIndex = QModelIndex | QPersistentModelIndex


class JobColumn(IntEnum):
    NAME = 0
    STATUS = 1
    PROGRESS = 2
    STEP = 3
    LOSS = 4
    ELAPSED = 5
    ETA = 6  # when the server expects a running job to finish, as a countdown
    RUNS_ON = 7  # where the job runs or ran (its placement: host or node, GPUs); text, left-aligned


_COLUMN_TITLES = {
    JobColumn.NAME: "Name",
    JobColumn.STATUS: "Status",
    JobColumn.PROGRESS: "Progress",
    JobColumn.STEP: "Step",
    JobColumn.LOSS: "Loss",
    JobColumn.ELAPSED: "Elapsed",
    JobColumn.ETA: "ETA",
    JobColumn.RUNS_ON: "Runs on",
}
_COLUMN_COUNT = len(JobColumn)
_LAST_COLUMN = _COLUMN_COUNT - 1


class JobRole(IntEnum):
    """Named data roles; every column answers all of them for its row."""

    JOB = Qt.ItemDataRole.UserRole + 1  # the TrainingJob
    JOB_ID = Qt.ItemDataRole.UserRole + 2  # str
    # JobStatus (UNKNOWN for statuses we do not know). Through QModelIndex.data() Qt hands a
    # str-based enum back as its plain str value: wrap it in JobStatus(...) before comparing.
    STATUS = Qt.ItemDataRole.UserRole + 3
    PROGRESS = Qt.ItemDataRole.UserRole + 4  # float, clamped 0-100
    ELAPSED_SECONDS = Qt.ItemDataRole.UserRole + 5  # float, or None before the job started
    IS_FINISHED = Qt.ItemDataRole.UserRole + 6  # bool: completed, failed or cancelled (dimmed)
    IS_CANCELLING = Qt.ItemDataRole.UserRole + 7  # bool: cancel requested, job not yet finished
    DISPLAY_STATUS = Qt.ItemDataRole.UserRole + 8  # str: "Running", "Cancelling…", "Unknown"
    # (name casefolded, JobStatus): what the proxy filters on
    FILTER_KEY = Qt.ItemDataRole.UserRole + 9
    SORT_KEY = Qt.ItemDataRole.UserRole + 10  # a comparable value of this cell, for static sorting
    # CellLook: everything the badge and bar delegates draw, in one read (a read through the
    # proxy costs two Python calls; a delegate reading five roles per cell paid ten).
    LOOK = Qt.ItemDataRole.UserRole + 11
    TEXT_LOOK = Qt.ItemDataRole.UserRole + 12  # TextLook: a text cell's display, in one read
    ETA_AT = Qt.ItemDataRole.UserRole + 13  # float epoch seconds (server clock) of the job's etaAt, or None
    # QColor of the job in the details pane's comparison (its curve's colour), or None when not compared
    COMPARE_COLOUR = Qt.ItemDataRole.UserRole + 14


class CellLook(NamedTuple):
    """What a hand-painted cell shows, whatever its column (see `JobRole.LOOK`)."""

    status: JobStatus  # UNKNOWN for statuses we do not know
    label: str  # the display status: "Running", "Cancelling…", "Unknown"
    progress: float  # clamped 0-100
    cancelling: bool
    foreground: QColor | None  # the dimmed text colour of a finished row, else None


class TextLook(NamedTuple):
    """What a plain text cell shows (see `JobRole.TEXT_LOOK`): DisplayRole, TextAlignmentRole
    and ForegroundRole together."""

    text: str
    alignment: int
    foreground: QColor | None
    swatch: QColor | None = None  # the Name cell of a compared job: its colour, painted before the text


_DISPLAY = Qt.ItemDataRole.DisplayRole
_ACCESSIBLE = Qt.ItemDataRole.AccessibleTextRole
_TOOLTIP = Qt.ItemDataRole.ToolTipRole
_FOREGROUND = Qt.ItemDataRole.ForegroundRole
_ALIGNMENT = Qt.ItemDataRole.TextAlignmentRole

# Roles announced when a job's data changed. FILTER_KEY is added only when name or status changed
# (JobFilterProxyModel re-checks a row only then), and the tick announces neither it nor SORT_KEY.
_CHANGE_ROLES = [
    int(_DISPLAY), int(_ACCESSIBLE), int(_TOOLTIP), int(_FOREGROUND),
    int(JobRole.JOB), int(JobRole.STATUS), int(JobRole.PROGRESS), int(JobRole.ELAPSED_SECONDS),
    int(JobRole.IS_FINISHED), int(JobRole.IS_CANCELLING), int(JobRole.DISPLAY_STATUS),
    int(JobRole.SORT_KEY), int(JobRole.LOOK), int(JobRole.TEXT_LOOK), int(JobRole.ETA_AT),
]
_CHANGE_ROLES_WITH_FILTER = _CHANGE_ROLES + [int(JobRole.FILTER_KEY)]
_TICK_ROLES = [int(_DISPLAY), int(_ACCESSIBLE), int(JobRole.ELAPSED_SECONDS),
               int(JobRole.TEXT_LOOK)]

_ANSWERED_ROLES = frozenset(
    [int(_DISPLAY), int(_ACCESSIBLE), int(_TOOLTIP), int(_FOREGROUND), int(_ALIGNMENT)]
    + [int(role) for role in JobRole])

_NUMERIC_ALIGNMENT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_TEXT_ALIGNMENT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
# Each column's alignment: text columns to the left, numbers to the right.
_ALIGNMENTS = tuple(_TEXT_ALIGNMENT if column <= JobColumn.PROGRESS or column == JobColumn.RUNS_ON
                    else _NUMERIC_ALIGNMENT for column in JobColumn)

# Above this many separate row ranges, a tick merges neighbouring runs of running rows into
# shared ranges: a thousand tiny signals cost more than views re-reading a few idle cells.
_MAX_TICK_RANGES = 64
# Qt's item views (6.x) repaint the WHOLE viewport for a dataChanged range of more than 200
# cells, even one lying entirely off screen; within it they repaint just the range's visible
# rect. So no signal ever spans more cells than this: bigger ranges go out in slices.
_MAX_RANGE_CELLS = 200
# Above this many dataChanged signals for one batch of changes (a refresh moving a hundred scattered
# running jobs), ranges of the same columns at most _MAX_BRIDGED_ROWS unchanged rows apart are merged
# (within _MAX_RANGE_CELLS): each signal costs the proxy, the view and the panel's slot a crossing
# (about 5 µs), while views re-reading a few unchanged cells cost nothing off screen. Sparser changes
# keep announcing exactly their cells.
_MAX_CHANGE_SIGNALS = 16
_MAX_BRIDGED_ROWS = 32
# The identity pass of a refresh pays off when the caller reuses the objects of unchanged jobs;
# past this share of new objects, comparing revisions (or shown fields) directly is the cheaper pass.
_MAX_NEW_OBJECT_SHARE = 8


_fields_of = attrgetter("__dict__")  # a pydantic model keeps its field values in __dict__
_id_of = attrgetter("id")
_revision_of = attrgetter("revision")
# The id and every field a cell, tooltip or derived value depends on. Fields outside it (dataset,
# base model, params, createdAt) never change after creation: a job whose shown fields are equal
# is not a change, even if its object (or an unshown field) is new.
_shown_fields = itemgetter("id", "name", "status", "progress", "current_step", "total_steps",
                           "current_loss", "started_at", "finished_at", "error", "model_id", "detail",
                           "eta_at", "held", "queue_position", "placement")
# Stands in for the job of an id we do not hold: its empty field dict equals no job's.
_ABSENT = SimpleNamespace()


def _epoch(text: str | None) -> float | None:
    moment = parse_timestamp(text)
    return None if moment is None else moment.timestamp()


@lru_cache(maxsize=4096)
def _eta_epoch(text: str | None) -> float | None:
    """etaAt as epoch seconds; cached, as the ETA cells of running rows are read at every tick."""
    return _epoch(text)


def _same_number(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))


_NAME_BIT = 1 << JobColumn.NAME
_STATUS_BIT = 1 << JobColumn.STATUS


def _column_runs(mask: int) -> tuple[tuple[int, int], ...]:
    """The runs of adjacent columns set in `mask` (bit n: column n changed), as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    column = 0
    while column < _COLUMN_COUNT:
        if not mask >> column & 1:
            column += 1
            continue
        first = column
        while column + 1 < _COLUMN_COUNT and mask >> (column + 1) & 1:
            column += 1
        runs.append((first, column))
        column += 1
    return tuple(runs)


# Every combination of changed columns, worked out once: a row's change is a table lookup, not a loop.
_COLUMN_RUNS = [_column_runs(mask) for mask in range(1 << _COLUMN_COUNT)]


def _merge_nearby(signals: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """(top, bottom, first column, last column) ranges, sorted, with ranges of the same columns at most
    _MAX_BRIDGED_ROWS rows apart merged while the merged range stays within _MAX_RANGE_CELLS. Ranges that
    include Name or Status are kept as they are: they carry FILTER_KEY, for which the proxy re-checks every
    row of the range."""
    merged: list[list[int]] = []
    open_ranges: dict[tuple[int, int], list[int]] = {}
    for top, bottom, first_column, last_column in signals:
        if first_column <= JobColumn.STATUS:
            merged.append([top, bottom, first_column, last_column])
            continue
        rows_per_signal = max(1, _MAX_RANGE_CELLS // (last_column - first_column + 1))
        current = open_ranges.get((first_column, last_column))
        if current is not None and top - current[1] <= _MAX_BRIDGED_ROWS + 1 \
                and bottom - current[0] < rows_per_signal:
            current[1] = bottom
        else:
            current = open_ranges[(first_column, last_column)] = [top, bottom, first_column, last_column]
            merged.append(current)
    return sorted((top, bottom, first, last) for top, bottom, first, last in merged)


class _Row:
    """One job plus what the model derived from it (parsed times, flags)."""

    __slots__ = ("job", "sort_key", "started", "ended", "finished", "cancelling")

    def __init__(self, job: TrainingJob, sort_key: tuple[float, int], started: float | None,
                 ended: float | None, finished: bool) -> None:
        self.job = job
        self.sort_key = sort_key
        self.started = started
        # When the job stopped running: finishedAt, or the moment we saw it finish if the server
        # does not send finishedAt. None while it runs (and when a finished job's end is unknown).
        self.ended = ended
        self.finished = finished
        self.cancelling = False

    @property
    def ticking(self) -> bool:
        return self.started is not None and self.ended is None and not self.finished


class JobListModel(QAbstractTableModel):
    """Training jobs in `createdAt` order, updated by diffs; see the module docstring."""

    # Once per batch of changes (after its dataChanged signals) that touched a Name or Status cell: a status,
    # a hold, a queue position, a name. The argument: whether a Status cell was among them. Those who follow
    # only these (the counts, the actions, the queue order) listen here instead of to each dataChanged: a
    # refresh moving a hundred running jobs emits a hundred ranges, each a crossing into Python per slot.
    name_or_status_changed = Signal(bool)
    # Once per batch too: the ids of the held jobs whose state changed in it (not the 1 s tick, which changes
    # no job), for those that follow the jobs themselves (the History tab's rows) rather than the cells.
    jobs_updated = Signal(list)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_Row] = []
        self._job_by_id: dict[str, TrainingJob] = {}  # the job each row holds, for C-level lookups
        self._keys: list[tuple[float, int]] = []  # sort keys of _rows, for bisecting
        self._row_of: dict[str, int] = {}
        self._ticking_ids: set[str] = set()
        self._unfinished_ids: set[str] = set()
        # The last snapshot's order, as the job objects it passed (what the model has already looked
        # at): a refresh listing the same ids in the same order (the usual case) is compared position
        # by position, without id lookups. None when rows changed outside a snapshot (update,
        # removal) or ids repeated.
        self._last_jobs: list[TrainingJob] | None = None
        self._last_ids: set[str] = set()
        self._unfinished_version = 0  # bumped whenever _unfinished_ids changes
        # Ids whose row was added, removed or changed status (or started/stopped ticking), in order,
        # for `status_changes_since`; entry i has the absolute number _journal_base + i.
        self._status_journal: list[str] = []
        self._journal_base = 0
        self._gone_cache: tuple[int, list[str]] | None = None
        self._active_count = 0
        self._finished_count = 0
        self._clock_offset = 0.0
        self._sequence = 0  # tie-breaker keeping arrival order among equal createdAt
        self._dimmed_cache: tuple[tuple[int, int], QColor] | None = None
        self._compare_colours: dict[str, QColor] = {}  # job id -> its colour in the details pane's chart

    # -- Qt model API ------------------------------------------------------------------------

    def rowCount(self, parent: _ModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _ModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else _COLUMN_COUNT

    # flags() is Qt's own: enabled, selectable and never has children for a valid index, which
    # is what every cell is. Views ask it for every cell they paint; in C++ that costs nothing.

    def index(self, row: int, column: int, parent: _ModelIndex = QModelIndex()) -> QModelIndex:
        # Qt's own index() asks rowCount() and columnCount() first: two more calls into Python
        # for every cell a proxy maps, i.e. for every role a delegate reads through it.
        if 0 <= row < len(self._rows) and 0 <= column < _COLUMN_COUNT and not parent.isValid():
            return self.createIndex(row, column)
        return QModelIndex()

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < _COLUMN_COUNT:
            if role in (_DISPLAY, _ACCESSIBLE):
                return _COLUMN_TITLES[JobColumn(section)]
            if role == _ALIGNMENT:
                return _ALIGNMENTS[section]
            return None
        return super().headerData(section, orientation, role)

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # Views ask for many roles per cell on every paint (font, decoration, check state...);
        # roles we never answer leave at the first line.
        if role not in _ANSWERED_ROLES or not index.isValid():
            return None
        row_number = index.row()
        if row_number >= len(self._rows) or index.column() >= _COLUMN_COUNT:
            return None
        row = self._rows[row_number]
        job = row.job
        column = index.column()
        if role == _DISPLAY:
            return self._display_text(row, column)
        if role == _ACCESSIBLE:
            return self._accessible_text(row, column)
        if role == _ALIGNMENT:
            return _ALIGNMENTS[column]
        if role == _FOREGROUND:
            return self._dimmed_colour() if row.finished else None
        if role == _TOOLTIP:
            return self._tooltip(row, column)
        if role == JobRole.TEXT_LOOK:
            return TextLook(self._display_text(row, column),
                            _ALIGNMENTS[column],
                            self._dimmed_colour() if row.finished else None,
                            self._compare_colours.get(job.id) if column == JobColumn.NAME
                            and self._compare_colours else None)
        if role == JobRole.LOOK:
            return CellLook(fmt.known_status(job.status), self._display_status(row),
                            fmt.clamp_progress(job.progress), self._is_cancelling(row),
                            self._dimmed_colour() if row.finished else None)
        if role == JobRole.JOB:
            return job
        if role == JobRole.JOB_ID:
            return job.id
        if role == JobRole.STATUS:
            return job.status
        if role == JobRole.PROGRESS:
            return fmt.clamp_progress(job.progress)
        if role == JobRole.ELAPSED_SECONDS:
            return self._elapsed(row)
        if role == JobRole.IS_FINISHED:
            return row.finished
        if role == JobRole.IS_CANCELLING:
            return self._is_cancelling(row)
        if role == JobRole.DISPLAY_STATUS:
            return self._display_status(row)
        if role == JobRole.FILTER_KEY:
            return (job.name.casefold(), job.status)
        if role == JobRole.SORT_KEY:
            return self._sort_value(row, column)
        if role == JobRole.ETA_AT:
            return _eta_epoch(job.eta_at)
        if role == JobRole.COMPARE_COLOUR:
            return self._compare_colours.get(job.id)
        return None

    # -- reading ----------------------------------------------------------------------------

    def job_at(self, row: int) -> TrainingJob | None:
        if 0 <= row < len(self._rows):
            return self._rows[row].job
        return None

    def row_of(self, job_id: str) -> int | None:
        return self._row_of.get(job_id)

    def job_ids(self) -> list[str]:
        return [row.job.id for row in self._rows]

    def waiting_rows(self) -> list[tuple[int, float | None]]:
        """(row, queue position) of every pending or queued job, in row order: one pass at C speed over the
        rows, for the queue order's check after each status change."""
        waiting = WAITING_STATUSES
        return [(number, row.job.queue_position) for number, row in enumerate(self._rows)
                if row.job.status in waiting]

    def active_count(self) -> int:
        """Rows whose job is pending, queued or running."""
        return self._active_count

    def finished_count(self) -> int:
        """Rows whose job is completed, failed or cancelled (what "Clear finished" removes)."""
        return self._finished_count

    def running_rows(self) -> list[int]:
        """Rows whose Elapsed cell depends on the clock, ascending."""
        row_of = self._row_of
        return sorted(row_of[job_id] for job_id in self._ticking_ids)

    def status_changes_since(self, cursor: int) -> tuple[int, list[str] | None]:
        """(the cursor to pass next time, the ids whose row was added, removed or changed status since
        `cursor`, oldest first, possibly repeated). Start from 0. None instead of the ids when the
        journal no longer reaches back that far (it keeps about two entries per row): look at every row
        then. What a listener of whole-list changes (the finished-job watcher) uses to look only at the
        rows that changed, whatever the number of rows."""
        journal = self._status_journal
        end = self._journal_base + len(journal)
        if cursor < self._journal_base or cursor > end:
            changed = None
        else:
            changed = journal[cursor - self._journal_base:]
        return end, changed

    def clock_offset(self) -> float:
        return self._clock_offset

    def server_now(self) -> float:
        """The server's wall clock as far as we know it, in epoch seconds."""
        return time.time() + self._clock_offset

    # -- updating ---------------------------------------------------------------------------

    def apply_active_snapshot(self, jobs: Iterable[TrainingJob]) -> list[str]:
        """Apply a fresh `GET /jobs?status=active` answer as a diff.

        Returns the ids of rows that are kept although their job left the active list and is
        still shown as unfinished: fetch their final state (`/status`) and pass it to
        `update_job()`, or `remove_job()` on 404. An id is returned again by later snapshots
        until that happens, so a failed fetch is retried naturally.

        Passing the previous snapshot's object again for a job that did not change (as a store
        that skips re-parsing unchanged jobs does) makes that job cost one pointer comparison.
        """
        now = self.server_now()
        incoming = jobs if isinstance(jobs, list) else list(jobs)
        last = self._last_jobs
        positions = None
        if last is not None and len(last) == len(incoming):
            positions = self._positional_changes(last, incoming)
        if positions is None:
            return self._apply_keyed(incoming, now)
        # Same ids in the same order as last time: only the listed positions may differ.
        changes: list[tuple[int, int, int]] = []
        rows, row_of = self._rows, self._row_of
        for position in positions:
            job = incoming[position]
            index = row_of[job.id]
            self._update_row(index, rows[index], job, now, changes)
        # Remember the objects as passed (not the ones held: a stale job is not held), so the next
        # refresh of a caller that reuses its unchanged objects goes by identity from now on, whatever
        # objects the model held before (e.g. those of a first load validated elsewhere).
        self._last_jobs = list(incoming)
        self._emit_changes(changes)
        return self._gone()

    def _positional_changes(self, last: list[TrainingJob], incoming: list[TrainingJob]
                            ) -> list[int] | None:
        """Positions whose job differs from the one we hold there, or None if an id moved."""
        # The hot path at 10,000 rows runs in C (map/compress, no Python-level loop over rows).
        positions: list[int] | None = None
        if self._objects_reused(last, incoming):
            positions = list(compress(count(), map(is_not, last, incoming)))
            if len(positions) > len(incoming) // _MAX_NEW_OBJECT_SHARE:
                positions = None
        if positions is None:
            # New objects throughout. The server's revision first: a job whose revision is the
            # one last passed at its position did not change (one int per job, in C); without
            # revisions (an older server), the shown fields (with the id) are compared: building
            # the tuples and comparing them in C measured 15% faster than comparing whole field
            # dicts (`dict.__eq__`) at 10,000 jobs.
            revisions = list(map(_revision_of, incoming))
            if None not in revisions:
                held_revisions = list(map(_revision_of, last))
                if None not in held_revisions:
                    # The id too: jobs may share a revision (those stamped by one migration).
                    positions = list(compress(count(), map(or_, map(ne, held_revisions, revisions),
                                                           map(ne, map(_id_of, last), map(_id_of, incoming)))))
            if positions is None:
                positions = list(compress(count(), map(ne, map(_shown_fields, map(_fields_of, last)),
                                                       map(_shown_fields, map(_fields_of, incoming)))))
        for position in positions:
            if incoming[position].id != last[position].id:
                return None
        return positions

    @staticmethod
    def _objects_reused(last: list[TrainingJob], incoming: list[TrainingJob]) -> bool:
        """Whether the caller seems to pass unchanged jobs as the same objects (a few samples)."""
        size = len(incoming)
        step = max(1, size // 7)
        return any(last[position] is incoming[position] for position in range(0, size, step))

    def _apply_keyed(self, incoming: list[TrainingJob], now: float) -> list[str]:
        """The general diff: ids looked up one by one (new, reordered, repeated or missing)."""
        ids = list(map(_id_of, incoming))
        unique_ids = set(ids)
        repeated = len(unique_ids) != len(ids)
        changes: list[tuple[int, int, int]] = []
        new_jobs: dict[str, TrainingJob] = {}
        if repeated:
            # A repeated id: apply the copies in order against the current state (last one wins).
            candidates: Iterable[int] = range(len(incoming))
        else:
            held = map(self._job_by_id.get, ids, repeat(_ABSENT))
            candidates = list(compress(count(), map(ne, map(_fields_of, held),
                                                    map(_fields_of, incoming))))
        rows, row_of = self._rows, self._row_of
        for position in candidates:
            job = incoming[position]
            index = row_of.get(job.id)
            if index is None:
                new_jobs[job.id] = job
            else:
                self._update_row(index, rows[index], job, now, changes)
        self._emit_changes(changes)
        if new_jobs:
            self._insert(list(new_jobs.values()), now)
        # The objects as passed (see apply_active_snapshot); a repeated id has no single position.
        self._last_jobs = None if repeated else list(incoming)
        self._last_ids = unique_ids
        self._gone_cache = None
        return self._gone()

    def _forget_order(self) -> None:
        """The next refresh takes the keyed path (rows changed outside a snapshot)."""
        self._last_jobs = None

    def _gone(self) -> list[str]:
        """Unfinished rows missing from the last snapshot, in row order (cached: at 10,000 rows
        the set difference costs more than the rest of an unchanged refresh)."""
        cached = self._gone_cache
        if cached is None or cached[0] != self._unfinished_version:
            gone = sorted(self._unfinished_ids.difference(self._last_ids),
                          key=self._row_of.__getitem__)
            cached = self._gone_cache = (self._unfinished_version, gone)
        return list(cached[1])

    def _update_row(self, index: int, row: _Row, job: TrainingJob, now: float,
                    changes: list[tuple[int, int, int]]) -> TrainingJob:
        """Hold `job` in `row`, recording the cells that read differently; returns the job held after.

        A job older than the one held (a lower server `revision`: a slow answer overtaken by an event)
        is not applied: the row keeps the newer state."""
        held = row.job
        if job.revision is not None and held.revision is not None and job.revision < held.revision:
            return held
        if _shown_fields(held.__dict__) == _shown_fields(job.__dict__):
            row.job = share_fields_set(job)  # nothing shown changed; keep the fresher object for JobRole.JOB
            self._job_by_id[job.id] = job
        else:
            self._replace(index, row, job, now, changes)
        return job

    def apply_updates(self, jobs: Iterable[TrainingJob]) -> None:
        """Apply a batch of jobs' fresh states (live events, or a `since=` delta) at once: new jobs are
        inserted, held ones updated unless the held state is newer (see `_update_row`), and the
        `dataChanged` signals go out once for the whole batch. Never a reset. A job repeated in the
        batch counts in its newest state."""
        latest: dict[str, TrainingJob] = {}
        for job in jobs:
            previous = latest.get(job.id)
            if previous is None or not (previous.revision is not None and job.revision is not None
                                        and job.revision < previous.revision):
                latest[job.id] = job
        if not latest:
            return
        now = self.server_now()
        self._forget_order()  # the held jobs are no longer those of the last snapshot
        changes: list[tuple[int, int, int]] = []
        new_jobs: list[TrainingJob] = []
        rows, row_of = self._rows, self._row_of
        for job in latest.values():
            index = row_of.get(job.id)
            if index is None:
                new_jobs.append(job)
            else:
                self._update_row(index, rows[index], job, now, changes)
        self._emit_changes(changes)
        if new_jobs:
            self._insert(new_jobs, now)

    def job(self, job_id: str) -> TrainingJob | None:
        """The job held for an id, if any."""
        return self._job_by_id.get(job_id)

    def update_job(self, job: TrainingJob) -> None:
        """One job's fresh state (e.g. its final state from `/status`); inserted if absent."""
        index = self._row_of.get(job.id)
        now = self.server_now()
        self._forget_order()  # the held job may no longer be the one the last snapshot had
        if index is None:
            self._insert([job], now)
            return
        changes: list[tuple[int, int, int]] = []
        self._update_row(index, self._rows[index], job, now, changes)
        self._emit_changes(changes)

    def remove_job(self, job_id: str) -> None:
        """Drop a job's row (e.g. the server answered 404 for it). Unknown ids are ignored."""
        index = self._row_of.get(job_id)
        if index is not None:
            self._remove_runs([(index, index)])

    def clear_finished(self) -> int:
        """Remove every row in a terminal state; returns how many were removed."""
        runs: list[tuple[int, int]] = []
        for index, row in enumerate(self._rows):
            if not row.finished:
                continue
            if runs and runs[-1][1] == index - 1:
                runs[-1] = (runs[-1][0], index)
            else:
                runs.append((index, index))
        removed = sum(last - first + 1 for first, last in runs)
        if runs:
            self._remove_runs(runs)
        return removed

    def set_cancelling(self, job_id: str, cancelling: bool) -> None:
        """Show (or stop showing) "Cancelling…" for a job until it reaches a terminal state."""
        index = self._row_of.get(job_id)
        if index is None:
            return
        row = self._rows[index]
        was = self._is_cancelling(row)
        row.cancelling = bool(cancelling)
        if self._is_cancelling(row) != was:
            self._emit_changes([(index, JobColumn.STATUS, JobColumn.STATUS)])

    def set_compare_colours(self, colours: dict[str, QColor]) -> None:
        """The jobs the details pane compares, each with its colour (empty: no comparison); their
        Name cells show it as a swatch."""
        old = self._compare_colours
        new = {job_id: QColor(colour) for job_id, colour in colours.items()}
        changed = [job_id for job_id in old.keys() | new.keys()
                   if old.get(job_id) != new.get(job_id)]
        self._compare_colours = new
        rows = [self._row_of[job_id] for job_id in changed if job_id in self._row_of]
        self._emit_changes([(row, JobColumn.NAME, JobColumn.NAME) for row in rows])

    def compare_colours(self) -> dict[str, QColor]:
        return dict(self._compare_colours)

    def set_clock_offset(self, seconds: float) -> None:
        """Server clock minus local clock, e.g. from an HTTP `Date` header."""
        if not math.isfinite(seconds) or seconds == self._clock_offset:
            return
        self._clock_offset = float(seconds)
        self.tick()

    def tick(self) -> None:
        """Announce that the Elapsed cells of running jobs changed (call once a second)."""
        if not self._ticking_ids:
            return
        rows = self.running_rows()
        ranges: list[tuple[int, int]] = []
        start = previous = rows[0]
        for row in rows[1:]:
            if row != previous + 1:
                ranges.append((start, previous))
                start = row
            previous = row
        ranges.append((start, previous))
        if len(ranges) > _MAX_TICK_RANGES:
            # Merge neighbouring runs while the merged range stays within one signal's cells.
            merged = [ranges[0]]
            for first, last in ranges[1:]:
                if last - merged[-1][0] < _MAX_RANGE_CELLS:
                    merged[-1] = (merged[-1][0], last)
                else:
                    merged.append((first, last))
            ranges = merged
        column = JobColumn.ELAPSED
        for first, last in ranges:
            self._emit_range(first, last, column, column, _TICK_ROLES)
        # The ETA countdowns of the running rows that have one (usually a handful).
        rows_with_eta = [row for row in rows if self._rows[row].job.eta_at is not None]
        if rows_with_eta:
            start = previous = rows_with_eta[0]
            for row in rows_with_eta[1:] + [-2]:
                if row != previous + 1:
                    self._emit_range(start, previous, JobColumn.ETA, JobColumn.ETA, _TICK_ROLES)
                    start = row
                previous = row

    # -- internals: diffs -------------------------------------------------------------------

    def _derive(self, job: TrainingJob, now: float, previous: _Row | None
                ) -> tuple[float | None, float | None, bool]:
        finished = job.status in TERMINAL_STATUSES
        if previous is not None and previous.job.started_at == job.started_at:
            started = previous.started  # parsing costs more than the rest of a row's diff
        else:
            started = _epoch(job.started_at)
        if previous is not None and previous.job.finished_at == job.finished_at \
                and job.finished_at is not None:
            ended = previous.ended
        else:
            ended = _epoch(job.finished_at)
        if ended is None and finished:
            if previous is not None and previous.finished:
                ended = previous.ended
            elif previous is not None and started is not None:
                ended = now  # it finished since we last looked: freeze the clock here
        return started, ended, finished

    def _replace(self, index: int, row: _Row, job: TrainingJob, now: float,
                 changes: list[tuple[int, int, int]]) -> None:
        old = row.job
        before, after = old.__dict__, job.__dict__
        if before["status"] == after["status"] and before["started_at"] == after["started_at"] \
                and before["finished_at"] == after["finished_at"]:
            # The usual change of a refresh: a running job's step, progress, loss or ETA moved. Nothing the
            # row derives from its status and times (the counts, the clock, dimming, "Cancelling…") can
            # change with those the same, so none of it is worked out again (this path is most of a
            # refresh's model work: about a hundred rows of ten thousand).
            row.job = share_fields_set(job)
            self._job_by_id[after["id"]] = job
            status_changed = cancelling_changed = elapsed_changed = False
        else:
            old_elapsed = self._elapsed(row, now)
            old_cancelling = self._is_cancelling(row)
            old_finished = row.finished
            started, ended, finished = self._derive(job, now, row)
            recount = old.status != job.status or row.ticking != (
                started is not None and ended is None and not finished)
            if recount:
                self._count(row, -1)
            row.job = share_fields_set(job)
            self._job_by_id[job.id] = job
            row.started, row.ended, row.finished = started, ended, finished
            if finished:
                row.cancelling = False
            if recount:
                self._count(row, +1)

            if finished != old_finished:
                changes.append((index, 0, _LAST_COLUMN))  # the whole row dims or undims
                return
            status_changed = before["status"] != after["status"]
            cancelling_changed = old_cancelling != self._is_cancelling(row)
            elapsed_changed = old_elapsed != self._elapsed(row, now) or before["started_at"] != after["started_at"]
        mask = ((before["name"] != after["name"])
                | (status_changed or cancelling_changed) << JobColumn.STATUS
                | (status_changed or not _same_number(before["progress"], after["progress"])) << JobColumn.PROGRESS
                | (before["current_step"] != after["current_step"]
                   or before["total_steps"] != after["total_steps"]) << JobColumn.STEP
                | (not _same_number(before["current_loss"], after["current_loss"])) << JobColumn.LOSS
                | elapsed_changed << JobColumn.ELAPSED
                | (status_changed or before["eta_at"] != after["eta_at"]) << JobColumn.ETA
                | (before["placement"] != after["placement"]) << JobColumn.RUNS_ON)
        if before["error"] != after["error"] and not mask & _NAME_BIT:
            mask |= _NAME_BIT | _STATUS_BIT  # the name cell's tooltip carries the error
        if before["detail"] != after["detail"] or before["held"] != after["held"]:
            mask |= _STATUS_BIT  # the status cell's tooltip carries the detail; "Held" its badge
        if not mask:
            mask = _NAME_BIT  # e.g. the model it produced: JobRole.JOB readers must hear it
        for first, last in _COLUMN_RUNS[mask]:
            changes.append((index, first, last))

    def _emit_changes(self, changes: Sequence[tuple[int, int, int]]) -> None:
        """Emit dataChanged per run of adjacent rows sharing the same changed column range."""
        if not changes:
            return
        by_columns: dict[tuple[int, int], list[int]] = {}
        for row, first, last in dict.fromkeys(changes):  # a repeated id can repeat a change
            by_columns.setdefault((first, last), []).append(row)
        signals: list[tuple[int, int, int, int]] = []
        for (first_column, last_column), rows in by_columns.items():
            rows.sort()
            start = previous = rows[0]
            for row in rows[1:]:
                if row != previous + 1:
                    signals.append((start, previous, first_column, last_column))
                    start = row
                previous = row
            signals.append((start, previous, first_column, last_column))
        signals.sort()
        if len(signals) > _MAX_CHANGE_SIGNALS:
            signals = _merge_nearby(signals)
        head_changed = status_changed = False
        for top, bottom, first_column, last_column in signals:
            roles = (_CHANGE_ROLES_WITH_FILTER if first_column <= JobColumn.STATUS
                     else _CHANGE_ROLES)
            self._emit_range(top, bottom, first_column, last_column, roles)
            if first_column <= JobColumn.STATUS:
                head_changed = True
                status_changed = status_changed or last_column >= JobColumn.STATUS
        if head_changed:
            self.name_or_status_changed.emit(status_changed)
        rows = self._rows
        self.jobs_updated.emit([rows[row].job.id for row in sorted({change[0] for change in changes})])

    def _emit_range(self, top: int, bottom: int, first_column: int, last_column: int,
                    roles: list[int]) -> None:
        """dataChanged over a cell range, in slices of at most _MAX_RANGE_CELLS cells."""
        rows_per_signal = max(1, _MAX_RANGE_CELLS // (last_column - first_column + 1))
        emit, create = self.dataChanged.emit, self.createIndex
        while top <= bottom:
            end = min(bottom, top + rows_per_signal - 1)
            emit(create(top, first_column), create(end, last_column), roles)
            top = end + 1

    def _insert(self, jobs: list[TrainingJob], now: float) -> None:
        new_rows: list[_Row] = []
        for job in jobs:
            created = _epoch(job.created_at)
            self._sequence += 1
            # An unreadable createdAt sorts as "now": where it arrived, after what we had.
            key = (now if created is None else created, self._sequence)
            started, ended, finished = self._derive(job, now, None)
            new_rows.append(_Row(share_fields_set(job), key, started, ended, finished))
        new_rows.sort(key=lambda row: row.sort_key)
        # Positions against the rows as they are now; earlier groups shift later ones by offset.
        groups: list[tuple[int, list[_Row]]] = []
        for row in new_rows:
            position = bisect_right(self._keys, row.sort_key)
            if groups and groups[-1][0] == position:
                groups[-1][1].append(row)
            else:
                groups.append((position, [row]))
        offset = 0
        for position, group in groups:
            first = position + offset
            last = first + len(group) - 1
            self.beginInsertRows(QModelIndex(), first, last)
            self._rows[first:first] = group
            self._job_by_id.update((row.job.id, row.job) for row in group)
            self._keys[first:first] = [row.sort_key for row in group]
            for row in group:
                self._count(row, +1)
            self._reindex(first)
            self.endInsertRows()
            offset += len(group)

    def _remove_runs(self, runs: list[tuple[int, int]]) -> None:
        """Remove inclusive row runs, bottom run first so earlier numbers stay valid."""
        self._forget_order()  # a removed job listed again must be inserted, not compared
        for first, last in sorted(runs, reverse=True):
            self.beginRemoveRows(QModelIndex(), first, last)
            for row in self._rows[first:last + 1]:
                self._count(row, -1)
                self._row_of.pop(row.job.id, None)
                self._job_by_id.pop(row.job.id, None)
            del self._rows[first:last + 1]
            del self._keys[first:last + 1]
            self._reindex(first)
            self.endRemoveRows()

    def _reindex(self, start: int) -> None:
        row_of = self._row_of
        for index in range(start, len(self._rows)):
            row_of[self._rows[index].job.id] = index

    def _count(self, row: _Row, sign: int) -> None:
        """Add (+1) or withdraw (-1) a row from the counters and id sets."""
        job_id = row.job.id
        status = row.job.status
        if status in ACTIVE_STATUSES:
            self._active_count += sign
        elif status in TERMINAL_STATUSES:
            self._finished_count += sign
        self._unfinished_version += 1
        journal = self._status_journal
        journal.append(job_id)
        if len(journal) > 2 * len(self._rows) + 1024:  # bounded, whether anyone reads it or not
            drop = len(journal) // 2
            del journal[:drop]
            self._journal_base += drop
        if sign > 0:
            if not row.finished:
                self._unfinished_ids.add(job_id)
            if row.ticking:
                self._ticking_ids.add(job_id)
        else:
            self._unfinished_ids.discard(job_id)
            self._ticking_ids.discard(job_id)

    # -- internals: values ------------------------------------------------------------------

    def _elapsed(self, row: _Row, now: float | None = None) -> float | None:
        if row.started is None:
            return None
        end = row.ended
        if end is None:
            if row.finished:
                return None  # finished, and the server never said when
            end = self.server_now() if now is None else now
        return max(0.0, end - row.started)

    def _is_cancelling(self, row: _Row) -> bool:
        return row.cancelling and not row.finished

    def _display_status(self, row: _Row) -> str:
        if self._is_cancelling(row):
            return fmt.CANCELLING_LABEL
        if row.job.held and row.job.status in (JobStatus.QUEUED, JobStatus.PENDING):
            return fmt.HELD_LABEL  # waits in the queue until released (issue 16)
        return fmt.status_label(row.job.status)

    def _display_text(self, row: _Row, column: int) -> str:
        job = row.job
        if column == JobColumn.NAME:
            return job.name
        if column == JobColumn.STATUS:
            return self._display_status(row)
        if column == JobColumn.PROGRESS:
            return fmt.format_progress(job.progress)
        if column == JobColumn.STEP:
            return fmt.format_step(job.current_step, job.total_steps)
        if column == JobColumn.LOSS:
            return fmt.format_loss(job.current_loss)
        if column == JobColumn.ETA:
            return self._eta_text(row)
        if column == JobColumn.RUNS_ON:
            return fmt.placement_text(job.placement) or fmt.NO_VALUE
        return fmt.format_elapsed(self._elapsed(row))

    def _accessible_text(self, row: _Row, column: int) -> str:
        job = row.job
        if column == JobColumn.NAME:
            return job.name
        if column == JobColumn.STATUS:
            return self._display_status(row)
        if column == JobColumn.PROGRESS:
            return f"{self._display_status(row)}, {fmt.format_progress(job.progress)}"
        if column == JobColumn.STEP:
            return fmt.spoken_step(job.current_step, job.total_steps)
        if column == JobColumn.LOSS:
            if job.current_loss is None:
                return "no loss yet"
            return f"loss {fmt.format_loss(job.current_loss)}"
        if column == JobColumn.ETA:
            text = self._eta_text(row)
            return "no estimate" if text == fmt.NO_VALUE else f"finishes {text}"
        if column == JobColumn.RUNS_ON:
            where = fmt.placement_text(job.placement)
            return f"runs on {where}" if where else "not placed yet"
        return f"elapsed {fmt.spoken_elapsed(self._elapsed(row))}"

    def _tooltip(self, row: _Row, column: int) -> str | None:
        job = row.job
        if column in (JobColumn.NAME, JobColumn.STATUS):
            label = self._display_status(row)
            lines = [job.name, f"{label}: {job.error}" if job.error else label]
            if job.detail and not row.finished:
                lines.append(job.detail)
            return "\n".join(lines)
        if column == JobColumn.ETA:
            eta = _eta_epoch(job.eta_at)
            if eta is not None and job.status == JobStatus.RUNNING:
                now = self.server_now()
                return f"Expected to finish at {fmt.eta_clock_text(eta - self._clock_offset, now - self._clock_offset)}"
        if column == JobColumn.RUNS_ON:
            # The whole placement: the cell is narrow and elides.
            return fmt.placement_details(job.placement) or "Not placed yet: the server says where once it starts"
        return None

    def _sort_value(self, row: _Row, column: int) -> Any:
        job = row.job
        if column == JobColumn.NAME:
            return job.name.casefold()
        if column == JobColumn.STATUS:
            return self._display_status(row)
        if column == JobColumn.PROGRESS:
            return fmt.clamp_progress(job.progress)
        if column == JobColumn.STEP:
            return -1 if job.current_step is None else job.current_step
        if column == JobColumn.LOSS:
            loss = job.current_loss
            return math.inf if loss is None or math.isnan(loss) else loss
        if column == JobColumn.ETA:
            eta = _eta_epoch(job.eta_at) if job.status == JobStatus.RUNNING else None
            return math.inf if eta is None else eta
        if column == JobColumn.RUNS_ON:
            return fmt.placement_text(job.placement).casefold()
        elapsed = self._elapsed(row)
        return -1.0 if elapsed is None else elapsed

    def _eta_text(self, row: _Row) -> str:
        job = row.job
        return fmt.eta_cell_text(job.status, _eta_epoch(job.eta_at), self.server_now())

    def _dimmed_colour(self) -> QColor:
        palette = QGuiApplication.palette()
        text = palette.color(QPalette.ColorRole.Text)
        base = palette.color(QPalette.ColorRole.Base)
        key = (text.rgba(), base.rgba())
        if self._dimmed_cache is None or self._dimmed_cache[0] != key:
            dimmed = fmt.dimmed_text_colour(text.name(), base.name())
            self._dimmed_cache = (key, QColor(dimmed))
        return self._dimmed_cache[1]


class JobFilterProxyModel(QSortFilterProxyModel):
    """Narrows the jobs by text (a substring of the name, case-insensitive) and by statuses.

    Qt's dynamic filtering re-runs `filterAcceptsRow` for every row in every `dataChanged`
    range, whatever the roles; with a 1 s tick over the Elapsed column of thousands of rows,
    that is a full re-filter per second. So dynamic sorting and filtering are off, and this
    proxy re-checks rows itself, only when the source announces `JobRole.FILTER_KEY` (a name
    or status changed) and only while a filter is set; it re-filters when a checked row's
    verdict actually flipped. Inserted rows are filtered by Qt as usual. Sorting is static.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._statuses: frozenset[JobStatus] | None = None
        self.setDynamicSortFilter(False)
        self.setFilterRole(JobRole.FILTER_KEY)
        self.setSortRole(JobRole.SORT_KEY)
        self._watched: QAbstractItemModel | None = None
        self._watching = False  # whether _on_source_data_changed is connected to _watched
        self.sourceModelChanged.connect(self._watch_source)

    def text(self) -> str:
        return self._text

    def statuses(self) -> frozenset[JobStatus] | None:
        return self._statuses

    def is_filtering(self) -> bool:
        return bool(self._text) or self._statuses is not None

    def set_text(self, text: str) -> None:
        """Show only jobs whose name contains `text` (ignoring case and surrounding spaces)."""
        folded = (text or "").strip().casefold()
        if folded != self._text:
            self._refilter(lambda: setattr(self, "_text", folded))
            self._set_watching(self.is_filtering())

    def set_statuses(self, statuses: set[JobStatus] | frozenset[JobStatus] | None) -> None:
        """Show only jobs in these statuses; None shows every status (an empty set shows none)."""
        wanted = None if statuses is None else frozenset(JobStatus(s) for s in statuses)
        if wanted != self._statuses:
            self._refilter(lambda: setattr(self, "_statuses", wanted))
            self._set_watching(self.is_filtering())

    def filterAcceptsRow(self, source_row: int, source_parent: _ModelIndex) -> bool:
        source = self.sourceModel()
        if isinstance(source, JobListModel):
            job = source.job_at(source_row)
        else:
            job = source.index(source_row, 0, source_parent).data(JobRole.JOB)
        if job is None:
            return False
        if self._statuses is not None and job.status not in self._statuses:
            return False
        return not self._text or self._text in job.name.casefold()

    def _watch_source(self) -> None:
        self._set_watching(False)
        self._watched = self.sourceModel()
        self._set_watching(self.is_filtering())

    def _set_watching(self, watching: bool) -> None:
        # Connected only while a filter is set: unfiltered, each of the hundred dataChanged
        # signals of a busy refresh would cross into Python just to return.
        if watching == self._watching or self._watched is None:
            self._watching = watching and self._watched is not None
            return
        if watching:
            self._watched.dataChanged.connect(self._on_source_data_changed)
        else:
            try:
                self._watched.dataChanged.disconnect(self._on_source_data_changed)
            except (RuntimeError, TypeError):
                pass  # the source is already gone
        self._watching = watching

    def _on_source_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex,
                                roles: list[int]) -> None:
        if roles and int(JobRole.FILTER_KEY) not in roles:
            return
        if not self.is_filtering():
            return
        source = self.sourceModel()
        parent = top_left.parent()
        for row in range(top_left.row(), bottom_right.row() + 1):
            shown = self.mapFromSource(source.index(row, 0, parent)).isValid()
            if shown != self.filterAcceptsRow(row, parent):
                self._refilter(lambda: None)
                return

    def _refilter(self, change: Any) -> None:
        # Qt >= 6.9 wants begin/endFilterChange around the change; older Qt has invalidateRowsFilter.
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateRowsFilter()
