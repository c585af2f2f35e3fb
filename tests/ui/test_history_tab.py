"""The History tab against a real server subprocess with 1,000 SEEDED jobs (written through the server's
own Storage before it starts): pages load as the table scrolls, search and filters are the server's,
a header click asks the server for that order, the filter chosen in the tab is there again at the next app
start (a real settings file, the tab built by `install_history_panel` as the app builds it), and
qtmodeltester checks the model throughout.

The custom date range runs against a second real server whose few jobs were created (and finished) on
chosen local days, their times written into the database the same way before the server starts."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import QDate, QSettings, Qt

from training_studio.client import ApiClient
from training_studio.contract.models import format_timestamp
from training_studio.server.storage import Storage
from training_studio.ui.history.model import HistoryColumn
from training_studio.ui.history.panel import HistoryPanel
from training_studio.ui.history.query import CUSTOM_RANGE, RANGE_ERROR, HistoryQuery
from training_studio.ui.history.store import PAGE_SIZE, HistoryStore
from training_studio.ui.history.wiring import HISTORY_TITLE, SETTINGS_KEY, install_history_panel
from training_studio.ui.settings import AppSettings
from tests.support.server import ServerProcess

JOBS = 1000
NAMES = ["Portrait LoRA", "Landscape", "cat style", "Portrait v2"]
STATUSES = ["completed", "failed", "cancelled", "completed"]


@pytest.fixture(scope="module")
def seeded_server(tmp_path_factory):
    data_dir = Path(tmp_path_factory.mktemp("history-ui")) / "data"
    storage = Storage(data_dir)
    for index in range(JOBS):
        job = storage.create_job(f"{NAMES[index % 4]} {index:04d}", None, "builtin-tiny", 10, None)
        storage.set_job_status(job.id, "running", started_at=job.created_at)
        storage.set_job_status(job.id, STATUSES[(index // 4) % 4])
    storage.close()
    server = ServerProcess(data_dir, extra_args=["--no-runner"]).start()
    yield server
    server.stop()


# (name, local creation time): the custom range 2024-11-01 … 2024-11-15 holds exactly the "in" ones, its
# first and last millisecond included.
DATED_JOBS = [
    ("before: Oct 31 noon", datetime(2024, 10, 31, 12, 0)),
    ("in: Nov 1 midnight", datetime(2024, 11, 1, 0, 0)),
    ("in: Nov 8 noon", datetime(2024, 11, 8, 12, 0)),
    ("in: Nov 15 last ms", datetime(2024, 11, 15, 23, 59, 59, 999_000)),
    ("after: Nov 16 midnight", datetime(2024, 11, 16, 0, 0)),
    ("after: Dec 1 noon", datetime(2024, 12, 1, 12, 0)),
]
NOV_1, NOV_15 = date(2024, 11, 1), date(2024, 11, 15)


def _inside(first: date, last: date) -> set[str]:
    return {name for name, moment in DATED_JOBS if first <= moment.date() <= last}


@pytest.fixture(scope="module")
def dated_server(tmp_path_factory):
    data_dir = Path(tmp_path_factory.mktemp("history-dated")) / "data"
    storage = Storage(data_dir)
    ids = []
    for name, _moment in DATED_JOBS:
        job = storage.create_job(name, None, "builtin-tiny", 10, None)
        storage.set_job_status(job.id, "running", started_at=job.created_at)
        storage.set_job_status(job.id, "completed")
        ids.append(job.id)
    storage.close()
    db = sqlite3.connect(data_dir / "studio.db")  # created and finished on the chosen local days
    with db:
        for job_id, (_name, moment) in zip(ids, DATED_JOBS):
            stamp = format_timestamp(moment.astimezone())
            finished = format_timestamp((moment + timedelta(minutes=5)).astimezone())
            db.execute("UPDATE jobs SET created_at = ?, started_at = ?, finished_at = ? WHERE id = ?",
                       (stamp, stamp, finished, job_id))
    db.close()
    server = ServerProcess(data_dir, extra_args=["--no-runner"]).start()
    yield server
    server.stop()


@pytest.fixture
def dated_history(dated_server, loop, qtbot, qtmodeltester):
    client = ApiClient(dated_server.url, dated_server.token, timeout=10)
    store = HistoryStore(client)
    panel = HistoryPanel(store)
    qtbot.addWidget(panel)
    panel.resize(900, 500)
    panel.show()
    yield store, panel
    store.shutdown()
    task = loop.create_task(store.wait_idle())
    qtbot.waitUntil(task.done, timeout=10_000)
    closing = loop.create_task(client.aclose())
    qtbot.waitUntil(closing.done, timeout=10_000)
    qtmodeltester.check(store.model)


@pytest.fixture
def history(seeded_server, loop, qtbot, qtmodeltester):
    client = ApiClient(seeded_server.url, seeded_server.token, timeout=10)
    store = HistoryStore(client)
    panel = HistoryPanel(store)
    qtbot.addWidget(panel)
    panel.resize(900, 500)
    panel.show()
    yield store, panel
    store.shutdown()
    task = loop.create_task(store.wait_idle())
    qtbot.waitUntil(task.done, timeout=10_000)
    closing = loop.create_task(client.aclose())
    qtbot.waitUntil(closing.done, timeout=10_000)
    qtmodeltester.check(store.model)


def _names(store: HistoryStore) -> list[str]:
    return [job.name for job in store.model.jobs()]


def test_pages_load_as_the_table_scrolls(history, qtbot, qtmodeltester):
    store, panel = history
    store.set_query(HistoryQuery(statuses=frozenset({"completed", "failed", "cancelled"})))
    qtbot.waitUntil(lambda: store.model.rowCount() == PAGE_SIZE, timeout=20_000)
    qtmodeltester.check(store.model)
    assert "scroll for more" in panel.status_label.text()
    for expected in (2 * PAGE_SIZE, 3 * PAGE_SIZE):
        panel.table.scrollToBottom()
        qtbot.waitUntil(lambda: store.model.rowCount() >= expected and not store.is_loading, timeout=20_000)
    created = [job.created_at for job in store.model.jobs()]
    assert created == sorted(created, reverse=True) and len(set(created)) == len(created)


def test_search_status_filter_and_order_are_the_servers(history, qtbot):
    store, panel = history
    store.set_query(HistoryQuery(statuses=frozenset({"completed"})))
    qtbot.waitUntil(lambda: store.model.rowCount() > 0 and not store.is_loading, timeout=20_000)
    panel.search_edit.setText("PORTRAIT")  # debounced: one query when typing stops
    qtbot.waitUntil(lambda: store.query.text == "PORTRAIT" and not store.is_loading
                    and all("portrait" in name.lower() for name in _names(store)), timeout=20_000)
    assert store.model.rowCount() > 0
    assert all(job.status.value == "completed" for job in store.model.jobs())
    panel.status_actions["failed"].setChecked(True)  # completed + failed
    qtbot.waitUntil(lambda: "failed" in store.query.statuses and not store.is_loading
                    and {job.status.value for job in store.model.jobs()} == {"completed", "failed"},
                    timeout=20_000)
    panel.table.horizontalHeader().sectionClicked.emit(0)  # Name: A→Z, by the server
    qtbot.waitUntil(lambda: store.query.order == "name" and not store.is_loading, timeout=20_000)
    names = _names(store)
    assert names == sorted(names, key=str.lower)
    panel.table.horizontalHeader().sectionClicked.emit(0)  # again: Z→A
    qtbot.waitUntil(lambda: store.query.order == "-name" and not store.is_loading
                    and _names(store) == sorted(_names(store), key=str.lower, reverse=True), timeout=20_000)


def test_no_match_says_so(history, qtbot):
    store, panel = history
    store.set_query(HistoryQuery(text="no job is called this"))
    qtbot.waitUntil(lambda: not store.is_loading and panel.status_label.text() == "No jobs match these filters",
                    timeout=20_000)
    assert store.model.rowCount() == 0


def _choose_custom_range(panel: HistoryPanel, first: date, last: date) -> None:
    """What the user does: "Custom range…" in the date combo, then the From and To days."""
    panel.date_combo.setCurrentIndex(panel.date_combo.findData(CUSTOM_RANGE))
    panel.from_edit.setDate(QDate(first))
    panel.to_edit.setDate(QDate(last))


def test_a_custom_range_shows_exactly_the_jobs_inside_it(dated_history, qtbot):
    store, panel = dated_history
    every = {name for name, _ in DATED_JOBS}
    store.set_query(HistoryQuery())
    qtbot.waitUntil(lambda: not store.is_loading and set(_names(store)) == every, timeout=20_000)
    assert not panel.range_row.isVisible()

    _choose_custom_range(panel, NOV_1, NOV_15)
    assert panel.range_row.isVisible() and not panel.range_message.isVisible()
    qtbot.waitUntil(lambda: store.query.date_from == NOV_1 and store.query.date_to == NOV_15
                    and not store.is_loading and set(_names(store)) == _inside(NOV_1, NOV_15), timeout=20_000)
    assert _inside(NOV_1, NOV_15) == {"in: Nov 1 midnight", "in: Nov 8 noon", "in: Nov 15 last ms"}
    assert store.query.date_range == CUSTOM_RANGE

    # One day: To = From.
    panel.to_edit.setDate(QDate(NOV_1))
    qtbot.waitUntil(lambda: store.query.date_to == NOV_1 and not store.is_loading
                    and _names(store) == ["in: Nov 1 midnight"], timeout=20_000)

    # Back to a fixed range: the fields go, and every job is back.
    panel.date_combo.setCurrentIndex(panel.date_combo.findData("any"))
    assert not panel.range_row.isVisible()
    qtbot.waitUntil(lambda: store.query.date_range == "any" and not store.is_loading
                    and set(_names(store)) == every, timeout=20_000)


def test_from_after_to_is_refused_with_a_message_and_sends_nothing(dated_history, qtbot):
    store, panel = dated_history
    _choose_custom_range(panel, NOV_1, NOV_15)
    qtbot.waitUntil(lambda: store.query.date_to == NOV_15 and not store.is_loading
                    and set(_names(store)) == _inside(NOV_1, NOV_15), timeout=20_000)
    sent: list[HistoryQuery] = []
    loading: list[bool] = []
    store.query_changed.connect(sent.append)
    store.loading_changed.connect(loading.append)

    panel.to_edit.setDate(QDate(2024, 10, 20))  # before From
    qtbot.waitUntil(lambda: panel.range_message.isVisible(), timeout=5_000)
    assert panel.range_message.text() == RANGE_ERROR == "From is after To"
    assert panel.from_edit.date() == QDate(NOV_1) and panel.to_edit.date() == QDate(2024, 10, 20)  # kept
    panel.to_edit.editingFinished.emit()  # leaving the field does not send it either
    assert sent == [] and loading == []
    assert store.query.date_to == NOV_15 and set(_names(store)) == _inside(NOV_1, NOV_15)

    # Corrected: the message goes, and only the corrected range is sent.
    nov_8 = date(2024, 11, 8)
    panel.to_edit.setDate(QDate(nov_8))
    assert not panel.range_message.isVisible()
    qtbot.waitUntil(lambda: store.query.date_to == nov_8 and not store.is_loading
                    and set(_names(store)) == _inside(NOV_1, nov_8), timeout=20_000)
    assert [(query.date_from, query.date_to) for query in sent] == [(NOV_1, nov_8)]
    assert panel.from_edit.date() == QDate(NOV_1)


def test_the_custom_range_is_there_again_at_the_next_app_start(dated_server, harness, qtbot, tmp_path):
    settings_path = tmp_path / "settings.ini"
    settings, panel = _start_app(harness, dated_server, settings_path)
    qtbot.waitUntil(lambda: _loaded(panel), timeout=20_000)
    _choose_custom_range(panel, NOV_1, NOV_15)
    chosen = HistoryQuery(date_range=CUSTOM_RANGE, date_from=NOV_1, date_to=NOV_15)
    qtbot.waitUntil(lambda: panel.store.query == chosen and _loaded(panel)
                    and {job.name for job in panel.model.jobs()} == _inside(NOV_1, NOV_15), timeout=20_000)
    panel.window().close()
    settings.sync()
    on_disk = settings_path.read_text()  # written to the file, for the next process to read
    assert "2024-11-01" in on_disk and "2024-11-15" in on_disk and CUSTOM_RANGE in on_disk

    _settings, again = _start_app(harness, dated_server, settings_path)
    assert again.store.query == chosen  # restored before the first request went out
    assert again.date_combo.currentData() == CUSTOM_RANGE
    assert again.range_row.isVisibleTo(again) and not again.range_message.isVisibleTo(again)
    assert again.from_edit.date() == QDate(NOV_1) and again.to_edit.date() == QDate(NOV_15)
    qtbot.waitUntil(lambda: _loaded(again) and {job.name for job in again.model.jobs()} == _inside(NOV_1, NOV_15),
                    timeout=20_000)


def test_a_custom_range_round_trips_through_json_and_sends_both_bounds():
    query = HistoryQuery(statuses=frozenset({"completed"}), text="cat", date_range=CUSTOM_RANGE,
                         date_from=NOV_1, date_to=NOV_15, order="name")
    saved = json.dumps(query.to_json())  # as the settings file keeps it
    assert HistoryQuery.from_json(json.loads(saved)) == query
    params = query.params()
    # From's first millisecond and To's last are inside (the server compares strictly), in UTC.
    assert params["after"] == format_timestamp(datetime(2024, 11, 1).astimezone() - timedelta(milliseconds=1))
    assert params["before"] == format_timestamp(datetime(2024, 11, 16).astimezone())
    assert params["after"].endswith("Z") and params["before"].endswith("Z")
    assert HistoryQuery(date_range="week").params()["before"] is None

    # A query saved before the custom range existed still reads, as it was.
    old = {"statuses": ["failed"], "text": "cat", "date_range": "week", "order": "name"}
    assert HistoryQuery.from_json(old) == HistoryQuery(statuses=frozenset({"failed"}), text="cat",
                                                       date_range="week", order="name")
    # An edited file: a custom range missing a day, reversed or unreadable reads as any time, never an error.
    for broken in ({"date_range": CUSTOM_RANGE},
                   {"date_range": CUSTOM_RANGE, "date_from": "2024-11-15", "date_to": "2024-11-01"},
                   {"date_range": CUSTOM_RANGE, "date_from": "yesterday", "date_to": 5}):
        assert HistoryQuery.from_json(broken) == HistoryQuery()


def test_query_round_trips_through_json_and_ignores_garbage():
    query = HistoryQuery(statuses=frozenset({"failed"}), text="cat", date_range="week", order="name")
    assert HistoryQuery.from_json(query.to_json()) == query
    assert HistoryQuery.from_json({"statuses": ["nope"], "date_range": 5, "order": "x; DROP"}) == HistoryQuery()
    assert HistoryQuery.from_json("garbage") == HistoryQuery()


def _start_app(harness, server, settings_path: Path) -> tuple[AppSettings, HistoryPanel]:
    """What an app start does for the History tab: settings read from the file, the tab installed on a new
    window by `install_history_panel` and shown (it is built on first show)."""
    settings = AppSettings(QSettings(str(settings_path), QSettings.Format.IniFormat))
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    install_history_panel(window, store.client, store, settings=settings)
    store.start()
    panel = window.panel(HISTORY_TITLE)
    assert isinstance(panel, HistoryPanel)
    window.tabs.setCurrentWidget(panel)
    return settings, panel


def _loaded(panel: HistoryPanel) -> bool:
    return not panel.store.is_loading and panel.model.rowCount() > 0


def test_the_filter_is_there_again_at_the_next_app_start(seeded_server, harness, qtbot, tmp_path):
    settings_path = tmp_path / "settings.ini"
    settings, panel = _start_app(harness, seeded_server, settings_path)
    qtbot.waitUntil(lambda: _loaded(panel), timeout=20_000)
    assert panel.store.query == HistoryQuery()  # nothing remembered yet: the default

    # The user's choices, through the tab's own controls.
    panel.status_actions["completed"].setChecked(False)  # failed + cancelled
    panel.search_edit.setText("portrait")
    panel.search_edit.returnPressed.emit()
    panel.date_combo.setCurrentIndex(panel.date_combo.findData("week"))
    panel.table.horizontalHeader().sectionClicked.emit(int(HistoryColumn.NAME))
    chosen = HistoryQuery(statuses=frozenset({"failed", "cancelled"}), text="portrait", date_range="week",
                          order="name")
    qtbot.waitUntil(lambda: panel.store.query == chosen and _loaded(panel), timeout=20_000)
    panel.window().close()
    settings.sync()
    on_disk = settings_path.read_text()  # written to the file, for the next process to read
    assert f"[{SETTINGS_KEY.split('/')[0]}]" in on_disk and "portrait" in on_disk and "week" in on_disk

    # The next start: a new window, store and settings object on the same file.
    _settings, again = _start_app(harness, seeded_server, settings_path)
    assert again.store.query == chosen  # restored before the first request went out
    assert again.search_edit.text() == "portrait"
    assert {status for status, action in again.status_actions.items() if action.isChecked()} == {"failed",
                                                                                                "cancelled"}
    assert again.status_button.text() == "Failed, Cancelled"
    assert again.date_combo.currentData() == "week"
    header = again.table.horizontalHeader()
    assert header.sortIndicatorSection() == int(HistoryColumn.NAME)
    assert header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
    # ...and the server was asked with it: its rows are those of the restored query.
    qtbot.waitUntil(lambda: _loaded(again), timeout=20_000)
    jobs = again.model.jobs()
    assert {job.status.value for job in jobs} == {"failed", "cancelled"}
    assert all("portrait" in job.name.lower() for job in jobs)
    names = [job.name for job in jobs]
    assert names == sorted(names, key=str.lower)


def test_a_narrow_window_keeps_the_names_readable(history, qtbot):
    """At 700 px the fixed columns (780 px preferred) give way, Ran on, Created and Status first, so that the
    names keep their minimum width and nothing runs past the right edge; what shrinks first has its full text
    in a tooltip (a status badge too narrow for its label shows its icon, the tooltip names the status). A
    width the user gave a column is theirs: wide again, the table gives it back."""
    from training_studio.ui.history.panel import MIN_NAME_WIDTH, PREFERRED_WIDTHS

    store, panel = history
    store.set_query(HistoryQuery(statuses=frozenset({"completed", "failed", "cancelled"})))
    qtbot.waitUntil(lambda: store.model.rowCount() > 0 and not store.is_loading, timeout=20_000)
    header = panel.table.horizontalHeader()
    panel.resize(700, 500)
    qtbot.waitUntil(lambda: panel.table.viewport().width() < 700, timeout=5_000)
    qtbot.waitUntil(lambda: header.sectionSize(int(HistoryColumn.NAME)) >= MIN_NAME_WIDTH, timeout=5_000)
    assert header.length() <= panel.table.viewport().width()  # no sideways scrolling
    for column in (HistoryColumn.PLACEMENT, HistoryColumn.CREATED, HistoryColumn.STATUS):
        assert header.sectionSize(int(column)) < PREFERRED_WIDTHS[column]
    created = store.model.index(0, int(HistoryColumn.CREATED))
    assert created.data(Qt.ItemDataRole.ToolTipRole) == created.data()
    status = store.model.index(0, int(HistoryColumn.STATUS)).data(Qt.ItemDataRole.ToolTipRole)
    assert status.split(":")[0] in ("Completed", "Failed", "Cancelled")

    panel.resize(1200, 500)  # room again: every column at its preferred width
    qtbot.waitUntil(lambda: header.sectionSize(int(HistoryColumn.CREATED)) == PREFERRED_WIDTHS[HistoryColumn.CREATED],
                    timeout=5_000)
    assert all(header.sectionSize(int(column)) == width for column, width in PREFERRED_WIDTHS.items())

    # The user widens Finished (as a drag of its edge does) and narrows the window, then widens it again.
    header.resizeSection(int(HistoryColumn.FINISHED), 170)
    panel.resize(700, 500)
    qtbot.waitUntil(lambda: header.sectionSize(int(HistoryColumn.NAME)) >= MIN_NAME_WIDTH, timeout=5_000)
    panel.resize(1300, 500)
    qtbot.waitUntil(lambda: header.sectionSize(int(HistoryColumn.CREATED)) == PREFERRED_WIDTHS[HistoryColumn.CREATED],
                    timeout=5_000)
    assert header.sectionSize(int(HistoryColumn.FINISHED)) == 170


def test_a_job_that_never_ran_says_no_value_in_every_cell_it_has_none_for(qtmodeltester):
    from training_studio.contract.models import TrainingJob
    from training_studio.ui.history.model import HistoryModel

    model = HistoryModel()
    qtmodeltester.check(model)
    never_ran = TrainingJob.model_validate({
        "id": "j1", "name": "cancelled while waiting", "status": "cancelled", "progress": 0.0,
        "created_at": "2026-12-05T15:03:00.000Z", "finished_at": "2026-12-05T15:09:00.000Z",
        "total_steps": 40_000})
    model.reset_rows([never_ran], more=False)
    cells = {column: model.index(0, column).data() for column in HistoryColumn}
    # The bug: Duration and Ran on were blank beside Step "— / 40,000" and Loss "—".
    assert cells[HistoryColumn.DURATION] == "—" and cells[HistoryColumn.PLACEMENT] == "—"
    assert cells[HistoryColumn.LOSS] == "—" and cells[HistoryColumn.STEP] == "— / 40,000"
