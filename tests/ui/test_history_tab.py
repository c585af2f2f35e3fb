"""The History tab against a real server subprocess with 1,000 SEEDED jobs (written through the server's
own Storage before it starts): pages load as the table scrolls, search and filters are the server's,
a header click asks the server for that order, and qtmodeltester checks the model throughout."""

from __future__ import annotations

from pathlib import Path

import pytest

from training_studio.client import ApiClient
from training_studio.server.storage import Storage
from training_studio.ui.history.panel import HistoryPanel
from training_studio.ui.history.query import HistoryQuery
from training_studio.ui.history.store import PAGE_SIZE, HistoryStore
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
