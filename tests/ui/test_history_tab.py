"""The History tab against a real server subprocess with 1,000 SEEDED jobs (written through the server's
own Storage before it starts): pages load as the table scrolls, search and filters are the server's,
a header click asks the server for that order, the filter chosen in the tab is there again at the next app
start (a real settings file, the tab built by `install_history_panel` as the app builds it), and
qtmodeltester checks the model throughout."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from training_studio.client import ApiClient
from training_studio.server.storage import Storage
from training_studio.ui.history.model import HistoryColumn
from training_studio.ui.history.panel import HistoryPanel
from training_studio.ui.history.query import HistoryQuery
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
