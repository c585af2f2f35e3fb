"""JobListModel and JobFilterProxyModel: diffs with exact signals, ticks, elapsed, filtering."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtWidgets import QAbstractItemView, QApplication, QHeaderView, QTableView

from training_studio.contract.models import JobStatus, TrainingJob, format_timestamp
from training_studio.ui.jobs.model import (
    CellLook,
    JobColumn,
    JobFilterProxyModel,
    JobListModel,
    JobRole,
    TextLook,
)

BASE = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
ALL_COLUMNS = len(JobColumn) - 1


def stamp(seconds: float) -> str:
    return format_timestamp(BASE + timedelta(seconds=seconds))


def make_job(number: int, status: str = "running", **fields) -> TrainingJob:
    values = dict(
        id=f"job-{number}",
        name=f"job {number}",
        status=status,
        progress=10.0,
        current_step=10,
        total_steps=100,
        current_loss=0.5,
        started_at=stamp(number * 10 + 5) if status not in ("pending", "queued") else None,
        created_at=stamp(number * 10),
    )
    values.update(fields)
    return TrainingJob.model_validate(values)


class SignalLog:
    """Records structural and data signals of a model, in order, with their arguments."""

    def __init__(self, model) -> None:
        self.events: list[tuple] = []
        model.rowsInserted.connect(lambda parent, first, last: self.events.append(
            ("inserted", first, last)))
        model.rowsRemoved.connect(lambda parent, first, last: self.events.append(
            ("removed", first, last)))
        model.rowsMoved.connect(lambda *args: self.events.append(("moved",)))
        model.modelReset.connect(lambda: self.events.append(("reset",)))
        model.layoutChanged.connect(lambda *args: self.events.append(("layout",)))
        model.dataChanged.connect(lambda top_left, bottom_right, roles: self.events.append(
            ("changed", top_left.row(), top_left.column(), bottom_right.row(),
             bottom_right.column(), tuple(roles))))

    def kinds(self) -> list[tuple]:
        """Events without the roles, for exact comparison of ranges."""
        return [event[:5] if event[0] == "changed" else event for event in self.events]

    def clear(self) -> None:
        self.events.clear()


@pytest.fixture(params=[True, False], ids=["py-tester", "qt-tester"])
def model(request, qapp, qtmodeltester) -> JobListModel:
    built = JobListModel()
    # Stays attached: every later diff is verified, by pytest-qt's Python port and by Qt's own
    # QAbstractItemModelTester.
    qtmodeltester.check(built, force_py=request.param)
    return built


def ids_in_rows(model: JobListModel) -> list[str]:
    return [model.job_at(row).id for row in range(model.rowCount())]


# -- diffs ---------------------------------------------------------------------------------


def test_first_snapshot_inserts_all_rows_in_created_order_with_one_signal(model):
    log = SignalLog(model)
    jobs = [make_job(3), make_job(1), make_job(2, "queued")]

    gone = model.apply_active_snapshot(jobs)

    assert gone == []
    assert ids_in_rows(model) == ["job-1", "job-2", "job-3"]
    assert log.kinds() == [("inserted", 0, 2)]
    assert model.columnCount() == 8
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in JobColumn] == [
        "Name", "Status", "Progress", "Step", "Loss", "Elapsed", "ETA", "Runs on"]


def test_refresh_emits_data_changed_for_exactly_the_changed_cells(model):
    jobs = [make_job(n) for n in range(6)]
    model.apply_active_snapshot(jobs)
    log = SignalLog(model)

    fresh = [job.model_copy() for job in jobs]  # new objects, same values: not a change
    fresh[0] = make_job(0, name="renamed")
    fresh[2] = make_job(2, progress=50.0)
    fresh[3] = make_job(3, current_loss=0.25)
    fresh[4] = make_job(4, progress=60.0, current_step=60)  # rows 4 and 5 change alike:
    fresh[5] = make_job(5, progress=70.0, current_step=70)  # one signal covering both
    gone = model.apply_active_snapshot(fresh)

    assert gone == []
    assert log.kinds() == [
        ("changed", 0, JobColumn.NAME, 0, JobColumn.NAME),
        ("changed", 2, JobColumn.PROGRESS, 2, JobColumn.PROGRESS),
        ("changed", 3, JobColumn.LOSS, 3, JobColumn.LOSS),
        ("changed", 4, JobColumn.PROGRESS, 5, JobColumn.STEP),
    ]
    roles_by_row = {event[1]: event[5] for event in log.events}
    assert int(JobRole.FILTER_KEY) in roles_by_row[0]  # name changed: the proxy must re-check
    assert int(JobRole.FILTER_KEY) not in roles_by_row[2]
    assert int(Qt.ItemDataRole.DisplayRole) in roles_by_row[3]
    assert model.data(model.index(0, JobColumn.NAME)) == "renamed"
    assert model.data(model.index(5, JobColumn.STEP)) == "70 / 100"


def test_same_values_in_new_objects_emit_nothing(model):
    jobs = [make_job(n) for n in range(4)]
    model.apply_active_snapshot(jobs)
    log = SignalLog(model)

    model.apply_active_snapshot([job.model_copy(deep=True) for job in jobs])
    model.apply_active_snapshot(jobs)

    assert log.events == []


def test_status_change_marks_status_and_progress_cells(model):
    model.apply_active_snapshot([make_job(0, "queued"), make_job(1, "queued")])
    log = SignalLog(model)

    model.apply_active_snapshot([make_job(0, "running"), make_job(1, "queued")])

    # started_at appears with the status: status, progress (bar colour), elapsed and ETA ("estimating…") cells.
    assert log.kinds() == [
        ("changed", 0, JobColumn.STATUS, 0, JobColumn.PROGRESS),
        ("changed", 0, JobColumn.ELAPSED, 0, JobColumn.ETA),
    ]
    assert int(JobRole.FILTER_KEY) in log.events[0][5]
    assert int(JobRole.FILTER_KEY) not in log.events[1][5]


def test_new_jobs_are_inserted_at_their_created_position_without_moving_rows(model):
    model.apply_active_snapshot([make_job(1), make_job(3), make_job(5)])
    kept = {job_id: QPersistentModelIndex(model.index(model.row_of(job_id), 0))
            for job_id in ("job-1", "job-3", "job-5")}
    log = SignalLog(model)

    model.apply_active_snapshot([make_job(n) for n in (1, 3, 5, 6, 2, 7)])

    assert ids_in_rows(model) == ["job-1", "job-2", "job-3", "job-5", "job-6", "job-7"]
    assert log.kinds() == [("inserted", 1, 1), ("inserted", 4, 5)]
    for job_id, index in kept.items():  # persistent indexes follow their job
        assert index.data(JobRole.JOB_ID) == job_id
    assert [model.row_of(f"job-{n}") for n in (1, 2, 3, 5, 6, 7)] == [0, 1, 2, 3, 4, 5]


def test_equal_or_unreadable_created_at_keeps_arrival_order(model):
    model.apply_active_snapshot([make_job(1), make_job(2, created_at=stamp(10))])  # a tie
    model.apply_active_snapshot(make_job(n) for n in (1, 2, 3))  # any iterable will do
    model.update_job(make_job(4, created_at="yesterday-ish"))  # unreadable: sorts as "now"
    model.update_job(make_job(0))  # readable and oldest: still goes first

    assert ids_in_rows(model) == ["job-0", "job-1", "job-2", "job-3", "job-4"]


def test_ten_thousand_rows_with_one_percent_changed_emit_only_those_cells(qapp):
    model = JobListModel()  # no model tester here: it re-walks every row on every signal
    jobs = [make_job(n, "running" if n % 10 == 0 else "queued") for n in range(10_000)]
    model.apply_active_snapshot(jobs)
    log = SignalLog(model)

    refreshed = [job.model_copy() for job in jobs]
    for n in range(0, 10_000, 100):
        refreshed[n] = make_job(n, "running", progress=55.0)
    refreshed[101] = make_job(101, "queued", name="renamed")  # adjacent to no other change
    gone = model.apply_active_snapshot(refreshed)

    assert gone == []
    assert ("changed", 101, JobColumn.NAME, 101, JobColumn.NAME) in log.kinds()
    progress_rows = sorted(event[1] for event in log.kinds()
                           if event[2] == JobColumn.PROGRESS)
    assert progress_rows == list(range(0, 10_000, 100))
    assert len(log.events) == 101
    assert model.index(500, JobColumn.PROGRESS).data() == "55%"


def test_repeated_id_in_one_snapshot_keeps_one_row_and_the_last_copy(model):
    model.apply_active_snapshot([make_job(1), make_job(2, name="first"),
                                 make_job(2, name="second")])
    assert ids_in_rows(model) == ["job-1", "job-2"]
    assert model.job_at(1).name == "second"

    model.apply_active_snapshot([make_job(1, name="a"), make_job(1, name="b"), make_job(2)])
    assert model.job_at(0).name == "b"


def test_job_leaving_active_list_is_kept_returned_then_finalised(model):
    model.apply_active_snapshot([make_job(1), make_job(2), make_job(3)])
    log = SignalLog(model)

    gone = model.apply_active_snapshot([make_job(1), make_job(3)])

    assert gone == ["job-2"]
    assert ids_in_rows(model) == ["job-1", "job-2", "job-3"]
    assert log.events == []
    # Until its final state arrives, it is reported again (so a failed fetch gets retried).
    assert model.apply_active_snapshot([make_job(1), make_job(3)]) == ["job-2"]

    model.update_job(make_job(2, "completed", progress=100.0, finished_at=stamp(90)))

    assert log.kinds() == [("changed", 1, 0, 1, ALL_COLUMNS)]  # the whole row dims
    assert model.data(model.index(1, 0), JobRole.IS_FINISHED) is True
    assert model.data(model.index(1, 0), Qt.ItemDataRole.ForegroundRole) is not None
    assert model.data(model.index(0, 0), Qt.ItemDataRole.ForegroundRole) is None
    assert model.apply_active_snapshot([make_job(1), make_job(3)]) == []
    assert (model.active_count(), model.finished_count()) == (2, 1)


def test_update_job_adds_an_absent_job_and_remove_job_drops_one(model):
    model.apply_active_snapshot([make_job(1), make_job(4)])
    log = SignalLog(model)

    model.update_job(make_job(2, "failed", error="out of memory", finished_at=stamp(50)))
    model.remove_job("job-1")
    model.remove_job("no-such-job")

    assert log.kinds() == [("inserted", 1, 1), ("removed", 0, 0)]
    assert ids_in_rows(model) == ["job-2", "job-4"]
    assert model.row_of("job-1") is None
    assert "out of memory" in model.data(model.index(0, JobColumn.STATUS),
                                         Qt.ItemDataRole.ToolTipRole)


def test_clear_finished_removes_terminal_runs_bottom_first(model):
    statuses = ["completed", "running", "failed", "cancelled", "queued", "completed"]
    model.apply_active_snapshot([make_job(n, s) for n, s in enumerate(statuses)])
    assert (model.active_count(), model.finished_count()) == (2, 4)
    log = SignalLog(model)

    removed = model.clear_finished()

    assert removed == 4
    assert log.kinds() == [("removed", 5, 5), ("removed", 2, 3), ("removed", 0, 0)]
    assert ids_in_rows(model) == ["job-1", "job-4"]
    assert (model.active_count(), model.finished_count()) == (2, 0)
    assert model.clear_finished() == 0


def test_selection_and_scroll_survive_refreshes(qtbot, model):
    model.apply_active_snapshot([make_job(n) for n in range(0, 400, 2)])
    proxy = JobFilterProxyModel()
    proxy.setSourceModel(model)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(proxy)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.resize(600, 300)
    view.show()
    qtbot.waitExposed(view)
    selected_row = model.row_of("job-300")
    view.selectionModel().select(
        proxy.index(selected_row, 0),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
    view.scrollTo(proxy.index(selected_row, 0), QAbstractItemView.ScrollHint.PositionAtTop)
    top_before = view.indexAt(view.viewport().rect().topLeft()).data(JobRole.JOB_ID)
    log = SignalLog(model)

    refreshed = [make_job(n, progress=float(n % 100)) for n in range(0, 400, 2)]
    refreshed.append(make_job(401))  # a new newest job, appended at the bottom
    model.apply_active_snapshot(refreshed)
    model.tick()

    assert ("reset",) not in log.events and ("layout",) not in log.events
    selected = view.selectionModel().selectedRows()
    assert [index.data(JobRole.JOB_ID) for index in selected] == ["job-300"]
    assert view.indexAt(view.viewport().rect().topLeft()).data(JobRole.JOB_ID) == top_before


def test_unchanged_jobs_passed_as_the_same_objects_diff_like_fresh_copies(qapp):
    # A store that skips re-parsing unchanged jobs hands the model the same objects again; the
    # model then compares pointers instead of fields. Both ways must announce the same cells.
    def run(reuse: bool) -> list[tuple]:
        model = JobListModel()
        jobs = [make_job(n, "running" if n % 3 else "queued") for n in range(300)]
        model.apply_active_snapshot(jobs)
        log = SignalLog(model)
        for round_number in range(1, 4):
            jobs = [job if reuse else job.model_copy() for job in jobs]
            for n in range(round_number, 300, 37):
                jobs[n] = make_job(n, "running", progress=float(round_number * 10 + n % 7),
                                   current_step=round_number)
            jobs[5] = make_job(5, "running", name=f"renamed {round_number}")
            assert model.apply_active_snapshot(jobs) == []
        assert [model.job_at(row) for row in range(model.rowCount())] == jobs
        return log.events

    assert run(reuse=True) == run(reuse=False)
    assert run(reuse=True)  # and the rounds did change something


def test_a_removed_job_listed_again_is_inserted_again(model):
    jobs = [make_job(n) for n in range(4)]
    model.apply_active_snapshot(jobs)
    model.remove_job("job-2")
    log = SignalLog(model)

    model.apply_active_snapshot(jobs)  # the very same objects, in the same order

    assert log.kinds() == [("inserted", 2, 2)]
    assert ids_in_rows(model) == ["job-0", "job-1", "job-2", "job-3"]


def test_a_snapshot_overrides_a_fresher_update_of_the_same_job(model):
    jobs = [make_job(n) for n in range(3)]
    model.apply_active_snapshot(jobs)
    model.update_job(make_job(1, progress=90.0))
    log = SignalLog(model)

    model.apply_active_snapshot(jobs)  # the same objects as before the update

    assert log.kinds() == [("changed", 1, JobColumn.PROGRESS, 1, JobColumn.PROGRESS)]
    assert model.index(1, JobColumn.PROGRESS).data(JobRole.PROGRESS) == 10.0


def test_membership_changes_between_snapshots_keep_rows_and_counts_right(model):
    model.apply_active_snapshot([make_job(n) for n in (1, 2, 3)])
    model.apply_active_snapshot([make_job(n) for n in (1, 3, 4)])  # 2 left, 4 arrived
    log = SignalLog(model)

    gone = model.apply_active_snapshot([make_job(1), make_job(3, progress=70.0), make_job(4)])

    assert gone == ["job-2"]
    assert ids_in_rows(model) == ["job-1", "job-2", "job-3", "job-4"]
    assert log.kinds() == [("changed", 2, JobColumn.PROGRESS, 2, JobColumn.PROGRESS)]
    model.update_job(make_job(2, "completed", finished_at=stamp(40)))
    assert model.apply_active_snapshot([make_job(1), make_job(3, progress=70.0), make_job(4)]) == []
    assert (model.active_count(), model.finished_count()) == (3, 1)


def test_a_reordered_snapshot_is_matched_by_id_not_by_position(model):
    start = stamp(5)  # every shown field alike but the name
    model.apply_active_snapshot([make_job(1, name="x", started_at=start),
                                 make_job(2, name="y", started_at=start)])
    log = SignalLog(model)

    # Listed the other way round, each job now carrying what the other had at that position.
    model.apply_active_snapshot([make_job(2, name="x", started_at=start),
                                 make_job(1, name="y", started_at=start)])

    assert [model.job_at(row).name for row in range(2)] == ["y", "x"]
    assert log.kinds() == [("changed", 0, JobColumn.NAME, 1, JobColumn.NAME)]


def test_big_changed_blocks_are_announced_in_slices_views_repaint_precisely(qapp):
    # Qt's views repaint the whole viewport for any dataChanged range over 200 cells.
    model = JobListModel()
    model.apply_active_snapshot([make_job(n) for n in range(100)])
    log = SignalLog(model)

    model.apply_active_snapshot([make_job(n, "failed", finished_at=stamp(n * 10 + 9))
                                 for n in range(100)])  # every row dims: 7 cells each

    rows_per_signal = 200 // len(JobColumn)  # 28 rows of 7 cells stay within 200 cells
    assert log.kinds() == [("changed", first, 0, min(first + rows_per_signal - 1, 99), ALL_COLUMNS)
                           for first in range(0, 100, rows_per_signal)]


class PaintRegions(QObject):
    """Records the region of every paint event a widget receives."""

    def __init__(self, widget) -> None:
        super().__init__()
        self.regions: list = []
        widget.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt name)
        if event.type() == QEvent.Type.Paint:
            self.regions.append(event.region().boundingRect())
        return False


def test_tick_repaints_only_the_visible_elapsed_cells(qtbot):
    model = JobListModel()
    model.apply_active_snapshot([live_job(n, "running", 60) for n in range(1_000)])
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    view.resize(700, 400)
    view.show()
    qtbot.waitExposed(view)
    view.viewport().repaint()  # the first full paint happens now, not during the tick
    QApplication.processEvents()
    regions = PaintRegions(view.viewport())
    log = SignalLog(model)

    model.tick()
    qtbot.waitUntil(lambda: bool(regions.regions), timeout=5_000)

    assert log.kinds() == [("changed", first, JobColumn.ELAPSED, min(first + 199, 999),
                            JobColumn.ELAPSED) for first in range(0, 1_000, 200)]
    elapsed_left = view.columnViewportPosition(int(JobColumn.ELAPSED))
    for region in regions.regions:  # the Elapsed column only, never the whole viewport
        assert region.left() >= elapsed_left
        assert region.width() <= view.columnWidth(int(JobColumn.ELAPSED)) + 1  # + grid line


# -- elapsed and ticks -----------------------------------------------------------------------


def live_job(number: int, status: str, started_ago: float | None, **fields) -> TrainingJob:
    now = datetime.now(timezone.utc)
    started = None if started_ago is None else format_timestamp(now - timedelta(seconds=started_ago))
    return make_job(number, status, started_at=started, **fields)


def test_tick_touches_only_the_elapsed_cells_of_running_rows(model):
    model.apply_active_snapshot([
        live_job(0, "running", 30),
        live_job(1, "queued", None),
        live_job(2, "running", 20),
        live_job(3, "running", 10),
        live_job(4, "completed", 40, finished_at=stamp(100)),
        live_job(5, "running", 5),
    ])
    log = SignalLog(model)

    model.tick()

    assert log.kinds() == [
        ("changed", 0, JobColumn.ELAPSED, 0, JobColumn.ELAPSED),
        ("changed", 2, JobColumn.ELAPSED, 3, JobColumn.ELAPSED),
        ("changed", 5, JobColumn.ELAPSED, 5, JobColumn.ELAPSED),
    ]
    for event in log.events:
        assert int(JobRole.FILTER_KEY) not in event[5]
        assert int(JobRole.SORT_KEY) not in event[5]
    assert model.running_rows() == [0, 2, 3, 5]


def test_tick_over_many_scattered_running_rows_emits_one_elapsed_range(model):
    # 100 running rows between queued ones would be 100 signals; past a threshold the tick
    # announces one Elapsed range from the first to the last running row instead.
    model.apply_active_snapshot([
        live_job(n, "running", 5) if n % 2 else live_job(n, "queued", None) for n in range(200)])
    log = SignalLog(model)

    model.tick()

    assert log.kinds() == [("changed", 1, JobColumn.ELAPSED, 199, JobColumn.ELAPSED)]


def test_tick_with_nothing_running_emits_nothing(model):
    model.apply_active_snapshot([live_job(0, "queued", None), live_job(1, "pending", None)])
    log = SignalLog(model)
    model.tick()
    assert log.events == []


def test_elapsed_is_wall_clock_corrected_by_the_server_offset(model):
    model.apply_active_snapshot([live_job(0, "running", 100)])
    elapsed = model.data(model.index(0, 0), JobRole.ELAPSED_SECONDS)
    assert 99 <= elapsed <= 105
    log = SignalLog(model)

    model.set_clock_offset(3600.0)  # the server's clock is an hour ahead of ours

    elapsed = model.data(model.index(0, 0), JobRole.ELAPSED_SECONDS)
    assert 3699 <= elapsed <= 3705
    assert model.data(model.index(0, JobColumn.ELAPSED)).startswith("1:0")
    assert log.kinds() == [("changed", 0, JobColumn.ELAPSED, 0, JobColumn.ELAPSED)]


def test_elapsed_is_never_negative_and_finished_jobs_use_finished_at(model):
    model.apply_active_snapshot([
        live_job(0, "running", -600),  # started "in the future": skewed server clock
        make_job(1, "completed", started_at=stamp(0), finished_at=stamp(125)),
        make_job(2, "failed", started_at=stamp(500), finished_at=stamp(400)),  # inverted
        make_job(3, "queued"),
    ])
    model.set_clock_offset(-7200.0)

    def elapsed(row: int):
        return model.data(model.index(row, 0), JobRole.ELAPSED_SECONDS)

    assert elapsed(0) == 0.0
    assert elapsed(1) == 125.0
    assert model.data(model.index(1, JobColumn.ELAPSED)) == "2:05"
    assert elapsed(2) == 0.0
    assert elapsed(3) is None
    assert model.data(model.index(3, JobColumn.ELAPSED)) == "—"


def test_job_finishing_without_finished_at_stops_its_clock(model):
    model.apply_active_snapshot([live_job(0, "running", 60)])
    model.update_job(live_job(0, "completed", 60, progress=100.0))  # a seed server: no finishedAt
    frozen = model.data(model.index(0, 0), JobRole.ELAPSED_SECONDS)
    assert 59 <= frozen <= 65

    model.set_clock_offset(10_000.0)
    log = SignalLog(model)
    model.tick()

    assert model.data(model.index(0, 0), JobRole.ELAPSED_SECONDS) == frozen
    assert log.events == []
    assert model.running_rows() == []


# -- roles, statuses, cancelling ---------------------------------------------------------------


def test_named_roles_and_accessible_text(model):
    model.apply_active_snapshot([make_job(0, progress=42.4, current_loss=0.0831)])
    index = model.index(0, JobColumn.PROGRESS)

    assert index.data(JobRole.JOB).id == "job-0"
    assert index.data(JobRole.JOB_ID) == "job-0"
    # Through Qt a str-based enum arrives as its str value; JobStatus() restores it.
    assert JobStatus(index.data(JobRole.STATUS)) is JobStatus.RUNNING
    assert model.data(index, JobRole.STATUS) is JobStatus.RUNNING
    assert index.data(JobRole.PROGRESS) == pytest.approx(42.4)
    assert index.data(JobRole.IS_FINISHED) is False
    assert index.data(JobRole.DISPLAY_STATUS) == "Running"
    assert index.data(Qt.ItemDataRole.AccessibleTextRole) == "Running, 42%"
    assert model.index(0, JobColumn.STATUS).data(Qt.ItemDataRole.AccessibleTextRole) == "Running"
    assert model.index(0, JobColumn.STEP).data(Qt.ItemDataRole.AccessibleTextRole) == \
        "step 10 of 100"
    assert model.index(0, JobColumn.LOSS).data() == "0.0831"
    assert model.index(0, JobColumn.LOSS).data(Qt.ItemDataRole.AccessibleTextRole) == \
        "loss 0.0831"
    assert model.data(QModelIndex()) is None
    assert model.rowCount(model.index(0, 0)) == 0  # a flat table: rows have no children


def test_look_roles_carry_what_the_delegates_draw(model):
    model.apply_active_snapshot([make_job(0, progress=142.0), make_job(1, "completed",
                                                                      finished_at=stamp(20))])
    model.set_cancelling("job-0", True)
    proxy = JobFilterProxyModel()
    proxy.setSourceModel(model)

    look = proxy.index(0, JobColumn.STATUS).data(JobRole.LOOK)  # through the proxy too
    assert look == CellLook(JobStatus.RUNNING, "Cancelling…", 100.0, True, None)
    finished = model.index(1, JobColumn.PROGRESS).data(JobRole.LOOK)
    assert finished.foreground == model.index(1, 0).data(Qt.ItemDataRole.ForegroundRole)
    assert finished.foreground is not None and not finished.cancelling

    text = proxy.index(0, JobColumn.STEP).data(JobRole.TEXT_LOOK)
    assert text == TextLook("10 / 100", int(Qt.AlignmentFlag.AlignRight
                                             | Qt.AlignmentFlag.AlignVCenter), None)
    name = model.index(1, JobColumn.NAME).data(JobRole.TEXT_LOOK)
    assert name.text == "job 1" and name.foreground is not None
    assert name.alignment == model.index(1, JobColumn.NAME).data(Qt.ItemDataRole.TextAlignmentRole)


def test_index_is_invalid_outside_the_table(model):
    model.apply_active_snapshot([make_job(0), make_job(1)])
    assert model.index(1, JobColumn.ELAPSED).isValid()
    assert model.flags(model.index(1, JobColumn.ELAPSED)) == (
        Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        | Qt.ItemFlag.ItemNeverHasChildren)
    assert model.flags(QModelIndex()) == Qt.ItemFlag.NoItemFlags
    assert not model.index(2, 0).isValid()
    assert not model.index(0, len(JobColumn)).isValid()
    assert not model.index(-1, 0).isValid()
    assert not model.index(0, 0, model.index(0, 0)).isValid()  # rows have no children


def test_unknown_status_is_shown_neutrally_and_never_crashes(model):
    model.apply_active_snapshot([make_job(0, "paused", progress=float("nan"),
                                          current_loss=float("nan"))])

    status_index = model.index(0, JobColumn.STATUS)
    assert JobStatus(status_index.data(JobRole.STATUS)) is JobStatus.UNKNOWN
    assert status_index.data() == "Unknown"
    assert status_index.data(JobRole.IS_FINISHED) is False
    assert model.index(0, JobColumn.PROGRESS).data(JobRole.PROGRESS) == 0.0
    assert model.index(0, JobColumn.PROGRESS).data() == "0%"
    assert model.index(0, JobColumn.LOSS).data() == "NaN"
    assert (model.active_count(), model.finished_count()) == (0, 0)
    assert model.apply_active_snapshot([]) == ["job-0"]  # unfinished: its fate gets fetched


def test_cancelling_shows_until_the_job_is_terminal(model):
    model.apply_active_snapshot([make_job(0), make_job(1)])
    log = SignalLog(model)

    model.set_cancelling("job-1", True)
    model.set_cancelling("job-1", True)  # no change, no signal
    model.set_cancelling("nope", True)

    assert log.kinds() == [("changed", 1, JobColumn.STATUS, 1, JobColumn.STATUS)]
    index = model.index(1, JobColumn.STATUS)
    assert index.data() == "Cancelling…"
    assert index.data(JobRole.IS_CANCELLING) is True
    assert model.index(1, JobColumn.PROGRESS).data(Qt.ItemDataRole.AccessibleTextRole) == \
        "Cancelling…, 10%"

    model.update_job(make_job(1, "cancelled", finished_at=stamp(30)))

    assert index.data() == "Cancelled"
    assert index.data(JobRole.IS_CANCELLING) is False

    model.set_cancelling("job-0", True)
    model.set_cancelling("job-0", False)  # a failed cancel
    assert model.index(0, JobColumn.STATUS).data() == "Running"


# -- the proxy --------------------------------------------------------------------------------


class CountingProxy(JobFilterProxyModel):
    """The real proxy, counting how often Qt asks it to filter a row."""

    calls = 0

    def filterAcceptsRow(self, source_row, source_parent):
        CountingProxy.calls += 1
        return super().filterAcceptsRow(source_row, source_parent)


def visible_ids(proxy) -> list[str]:
    return [proxy.index(row, 0).data(JobRole.JOB_ID) for row in range(proxy.rowCount())]


def test_proxy_filters_by_text_and_statuses(model, qtmodeltester):
    model.apply_active_snapshot([
        make_job(0, name="Portrait LoRA"),
        make_job(1, "queued", name="landscape"),
        make_job(2, "completed", name="portrait v2", finished_at=stamp(80)),
        make_job(3, "paused", name="mystery"),
    ])
    proxy = JobFilterProxyModel()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy, force_py=True)

    proxy.set_text("  PORTRAIT ")
    assert visible_ids(proxy) == ["job-0", "job-2"]

    proxy.set_statuses({JobStatus.COMPLETED, JobStatus.QUEUED})
    assert visible_ids(proxy) == ["job-2"]

    proxy.set_text("")
    assert visible_ids(proxy) == ["job-1", "job-2"]

    proxy.set_statuses({JobStatus.UNKNOWN})
    assert visible_ids(proxy) == ["job-3"]

    proxy.set_statuses(set())
    assert visible_ids(proxy) == []

    proxy.set_statuses(None)
    assert visible_ids(proxy) == ["job-0", "job-1", "job-2", "job-3"]


def test_proxy_follows_status_and_name_changes_but_ticks_never_refilter(model):
    model.apply_active_snapshot([live_job(n, "running", 10 * n + 1) for n in range(50)])
    proxy = CountingProxy()
    proxy.setSourceModel(model)
    proxy.set_statuses({JobStatus.RUNNING})
    assert proxy.rowCount() == 50
    CountingProxy.calls = 0

    for _ in range(3):
        model.tick()
    model.update_job(live_job(7, "running", 71, progress=80.0))  # progress only

    assert CountingProxy.calls == 0
    assert proxy.rowCount() == 50

    model.update_job(live_job(7, "completed", 71, progress=100.0))
    assert proxy.rowCount() == 49
    assert "job-7" not in visible_ids(proxy)

    proxy.set_statuses(None)
    proxy.set_text("job 1")
    assert set(visible_ids(proxy)) == {"job-1"} | {f"job-{n}" for n in range(10, 20)}
    model.update_job(live_job(3, "running", 31, name="job 13 renamed"))
    assert "job-3" in visible_ids(proxy)


def test_proxy_filters_rows_inserted_later(model):
    proxy = JobFilterProxyModel()
    proxy.setSourceModel(model)
    proxy.set_statuses({JobStatus.QUEUED})

    model.apply_active_snapshot([make_job(0), make_job(1, "queued"), make_job(2, "queued")])

    assert visible_ids(proxy) == ["job-1", "job-2"]


# -- random diff sequences against a plain reference -------------------------------------------

_statuses = st.sampled_from(["pending", "queued", "running", "completed", "failed", "cancelled",
                             "paused"])


@st.composite
def snapshots(draw):
    """A sequence of snapshots over a small id space, with random field changes."""
    steps = draw(st.lists(
        st.lists(st.tuples(st.integers(0, 11), _statuses, st.integers(0, 3),
                           st.sampled_from(["a", "b"])), max_size=9),
        min_size=1, max_size=6))
    return steps


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=snapshots())
def test_random_snapshot_sequences_match_a_reference(qapp, qtmodeltester, steps):
    model = JobListModel()
    qtmodeltester.check(model, force_py=True)
    expected: dict[str, TrainingJob] = {}
    for step in steps:
        jobs = [make_job(number, status, progress=float(progress * 25), name=f"job {number}{tag}")
                for number, status, progress, tag in step]
        for job in jobs:
            expected[job.id] = job
        listed = {job.id for job in jobs}
        gone = model.apply_active_snapshot(jobs)

        finished = {"completed", "failed", "cancelled"}
        assert gone == [job_id for job_id in ids_in_rows(model)
                        if job_id not in listed and expected[job_id].status.value not in finished]
        ordered = sorted(expected.values(), key=lambda job: job.created_at)
        assert ids_in_rows(model) == [job.id for job in ordered]
        for row, job in enumerate(ordered):
            assert model.job_at(row) == job
            assert model.row_of(job.id) == row
        assert model.active_count() == sum(job.status.value in ("pending", "queued", "running")
                                           for job in ordered)
        assert model.finished_count() == sum(job.status.value in finished for job in ordered)
    removed = model.clear_finished()
    assert removed == sum(job.status.value in ("completed", "failed", "cancelled")
                          for job in expected.values())
