"""Live updates in the GUI: the store follows the server's event stream and the window shows changes as they
happen, without a model reset; without a stream (a seed-only server, a 404) it polls, with deltas when it can;
a dropped stream shows in the banner and heals by itself.

Real server subprocesses and real trainers, except where the point is a server that is not ours: the
seed-only server (tests/support/seed_server.py) is a labelled stand-in on a real socket implementing only
the seed endpoints (plus, optionally, revisions without an event stream).
"""

from __future__ import annotations

import threading

import pytest

from training_studio.contract.models import JobStatus
from training_studio.ui.datasets.wiring import install_library_panels
from training_studio.ui.jobs.model import JobRole
from training_studio.ui.jobs.store import StreamState
from tests.support.seed_server import SeedOnlyServer
from tests.support.server import ServerProcess
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job, wait_status

# Bounds on waits (never speed assertions): generous, for a loaded 2-core machine.
WAIT_MS = 60_000


def statuses(store) -> dict[str, JobStatus]:
    model = store.model
    return {model.job_at(r).id: model.job_at(r).status for r in range(model.rowCount())}


def progress_of(store, job_id: str) -> float | None:
    row = store.model.row_of(job_id)
    return None if row is None else store.model.index(row, 0).data(JobRole.PROGRESS)


class ResetCounter:
    def __init__(self, model) -> None:
        self.count = 0
        model.modelReset.connect(self._reset)
        model.modelAboutToBeReset.connect(self._reset)

    def _reset(self) -> None:
        self.count += 1


def wait_live(qtbot, store, timeout: int = WAIT_MS) -> None:
    qtbot.waitUntil(lambda: store.stream_state is StreamState.LIVE, timeout=timeout)


# -- the real server ----------------------------------------------------------------------------------------

@pytest.mark.timeout(900)
def test_a_short_job_created_with_the_window_open_shows_completed_at_100_percent_20_times(
        harness, qtbot, qtmodeltester, server_factory):
    server = server_factory(extra_args=["--concurrency", "2"])
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    store = harness.store(server.url, server.token, refresh_interval=5.0, timeout=4.0)
    window = harness.window(store)
    qtmodeltester.check(store.model)
    resets = ResetCounter(store.model)
    store.start()
    wait_live(qtbot, store)
    assert window.jobs_panel.updated_label.text() == "Live"
    assert window.server_label.text().endswith(" — live updates")
    assert window.server_menu.updates_action.text() == "Updates: Live"

    for attempt in range(20):
        job = make_job(http, dataset, f"short run {attempt}", 50)
        qtbot.waitUntil(lambda: statuses(store).get(job["id"]) == JobStatus.COMPLETED, timeout=WAIT_MS)
        assert progress_of(store, job["id"]) == pytest.approx(100.0)
        row = store.model.row_of(job["id"])
        assert store.model.index(row, 0).data(JobRole.JOB).current_step == 50
    assert resets.count == 0
    assert store.model.rowCount() == 20
    assert store.stream_state is StreamState.LIVE and not window.banner.isVisible()
    http.close()


def test_a_job_created_and_finished_while_the_gui_thread_was_busy_arrives_through_events(
        harness, qtbot, server_factory):
    server = server_factory(extra_args=["--concurrency", "2"])
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    # No refresh for an hour: whatever reaches the model now comes through the event stream.
    store = harness.store(server.url, server.token, refresh_interval=3600.0, timeout=4.0)
    resets = ResetCounter(store.model)
    store.start()
    wait_live(qtbot, store)
    refreshed_at = store.last_success_at

    # While this blocking code runs, the Qt event loop does not: the job starts and ends unseen.
    jobs = [make_job(http, dataset, f"unseen {n}", 50) for n in range(3)]
    for job in jobs:
        assert wait_status(http, job["id"], {"completed", "failed", "cancelled"}, timeout=120)["status"] == "completed"
    assert all(store.model.row_of(job["id"]) is None for job in jobs)
    qtbot.waitUntil(lambda: all(statuses(store).get(job["id"]) == JobStatus.COMPLETED for job in jobs),
                    timeout=WAIT_MS)
    assert all(progress_of(store, job["id"]) == pytest.approx(100.0) for job in jobs)
    assert store.last_success_at == refreshed_at  # no refresh ran: the events did it
    assert resets.count == 0
    http.close()


def test_a_server_kill_shows_the_stream_reconnecting_then_heals_and_the_model_equals_the_server(
        harness, qtbot, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ServerProcess(tmp_path / "data", extra_args=["--no-runner", "--port", str(port)]).start()
    try:
        http = sync_client(server.url, server.token)
        dataset = make_dataset(http, images=2)
        first = [make_job(http, dataset, f"before {n}", 100)["id"] for n in range(3)]
        http.close()
        store = harness.store(server.url, server.token, refresh_interval=2.0, timeout=1.6)
        window = harness.window(store)
        resets = ResetCounter(store.model)
        store.start()
        wait_live(qtbot, store)
        qtbot.waitUntil(lambda: set(first) <= set(statuses(store)), timeout=WAIT_MS)

        server.kill()
        qtbot.waitUntil(lambda: window.banner.isVisible() and store.stream_state is StreamState.RECONNECTING,
                        timeout=WAIT_MS)
        assert "Live updates are reconnecting." in window.banner.text
        assert "Cannot connect to the server" in window.banner.text

        # Restart (same data dir, port and token) and change things at once, before the app reconnects.
        later: list[str] = []

        def restart_and_change() -> None:
            server.start()
            with sync_client(server.url, server.token) as client:
                later.append(make_job(client, dataset, "after the restart", 100)["id"])
                assert client.post(f"/api/training/jobs/{first[0]}/cancel").json()["success"] is True

        thread = threading.Thread(target=restart_and_change, daemon=True)
        thread.start()
        qtbot.waitUntil(lambda: not thread.is_alive(), timeout=WAIT_MS)
        assert later, "the restart or the changes after it failed"
        qtbot.waitUntil(lambda: store.stream_state is StreamState.LIVE and not window.banner.isVisible(),
                        timeout=WAIT_MS)
        with sync_client(server.url, server.token) as client:
            on_server = {job["id"]: JobStatus(job["status"]) for job in
                         client.get("/api/training/jobs", params={"status": "all"}).json()}
        qtbot.waitUntil(lambda: statuses(store) == on_server, timeout=WAIT_MS)
        assert on_server[first[0]] == JobStatus.CANCELLED and later[0] in on_server
        assert resets.count == 0
    finally:
        server.stop(timeout=10)


def test_the_models_tab_shows_a_model_when_its_job_completes_without_refresh(harness, qtbot, server_factory):
    server = server_factory(extra_args=["--concurrency", "2"])
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    store = harness.store(server.url, server.token, refresh_interval=3600.0, timeout=4.0)
    window = harness.window(store)
    library = install_library_panels(window, store.client, store, lazy=True)
    try:
        library.models.interval = 3600.0  # the tab never polls here: only events can bring the model
        store.start()
        wait_live(qtbot, store)
        assert window.show_panel("Models")
        qtbot.waitUntil(lambda: library.models.loaded_once and not library.models.is_refreshing, timeout=WAIT_MS)
        fetched_at = library.models.model.rowCount()
        assert fetched_at == 0

        job = make_job(http, dataset, "makes a model", 50)
        done = wait_status(http, job["id"], {"completed", "failed", "cancelled"}, timeout=120)
        assert done["status"] == "completed" and done["modelId"]
        qtbot.waitUntil(lambda: library.models.model.record(done["modelId"]) is not None, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: str(library.models.model.record(done["modelId"]).status) == "ready", timeout=WAIT_MS)
        panel = library.models_panel
        assert panel is not None and library.models.model.rowCount() == 1
    finally:
        library.shutdown()
        harness.run(library.wait_idle())
        http.close()


# -- servers that are not ours ------------------------------------------------------------------------------

@pytest.fixture
def seed_server():
    server = SeedOnlyServer().start()
    yield server
    server.stop()


def test_a_seed_only_server_is_polled_and_keeps_working(harness, qtbot, qtmodeltester, seed_server):
    seed_server.add_job("a", "alpha", total_steps=10)
    store = harness.store(seed_server.url, seed_server.token, refresh_interval=0.3)
    window = harness.window(store)
    qtmodeltester.check(store.model)
    resets = ResetCounter(store.model)
    store.start()
    qtbot.waitUntil(lambda: store.stream_state is StreamState.POLLING, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: statuses(store) == {"a": JobStatus.RUNNING}, timeout=WAIT_MS)
    assert seed_server.count("/api/training/events") == 1  # asked once, answered 404: polling from then on

    seed_server.advance("a", 4)
    qtbot.waitUntil(lambda: progress_of(store, "a") == pytest.approx(40.0), timeout=WAIT_MS)
    seed_server.add_job("b", "beta")
    qtbot.waitUntil(lambda: "b" in statuses(store), timeout=WAIT_MS)
    seed_server.finish("a")  # leaves the active list: its final state comes from /status
    qtbot.waitUntil(lambda: statuses(store).get("a") == JobStatus.COMPLETED, timeout=WAIT_MS)
    assert progress_of(store, "a") == pytest.approx(100.0)

    assert window.jobs_panel.updated_label.text() != "Live"
    assert "refreshed every 0.3 s" in window.server_label.text()
    assert not window.banner.isVisible() and store.last_failure is None
    assert seed_server.count("/api/training/events") == 1
    assert all("since" not in query for method, path, query in seed_server.requests
               if path == "/api/training/jobs")  # no revision header, so never a delta
    assert resets.count == 0


def test_a_server_with_revisions_but_no_event_stream_is_polled_with_deltas(harness, qtbot):
    server = SeedOnlyServer(revisions=True).start()
    try:
        server.add_job("a", "alpha")
        server.add_job("b", "beta")
        store = harness.store(server.url, server.token, refresh_interval=0.3)
        store.start()
        qtbot.waitUntil(lambda: store.stream_state is StreamState.POLLING, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: set(statuses(store)) == {"a", "b"}, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: server.count("/api/training/jobs", status="active", since=str(server.revision)) >= 1,
                        timeout=WAIT_MS)

        # A job that starts and finishes between two polls still shows, with its final state.
        server.add_job("c", "quick one")
        server.finish("c")
        server.advance("a", 5)
        qtbot.waitUntil(lambda: statuses(store).get("c") == JobStatus.COMPLETED, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: progress_of(store, "a") == pytest.approx(50.0), timeout=WAIT_MS)
        assert progress_of(store, "c") == pytest.approx(100.0)
        assert server.count("/api/training/status") == 0  # deltas carry final states: no /status needed
        assert full_fetches(server) == 1 and deltas(server) >= 2  # one full fetch at connect, deltas after

        # A revision the server no longer knows (409 revision_unknown): one full fetch, then deltas again.
        server.forget_history()
        qtbot.waitUntil(lambda: full_fetches(server) == 2, timeout=WAIT_MS)
        server.advance("b", 3)
        qtbot.waitUntil(lambda: progress_of(store, "b") == pytest.approx(30.0), timeout=WAIT_MS)
        assert store.last_failure is None
    finally:
        server.stop()


def deltas(server: SeedOnlyServer) -> int:
    return sum(1 for _method, path, query in list(server.requests) if path == "/api/training/jobs" and "since" in query)


def full_fetches(server: SeedOnlyServer) -> int:
    return server.count("/api/training/jobs", status="active") - deltas(server)


def test_a_stream_that_keeps_failing_while_the_server_answers_shows_in_the_banner_and_clears(harness, qtbot):
    server = SeedOnlyServer(revisions=True, events_status=503).start()
    try:
        server.add_job("a", "alpha")
        store = harness.store(server.url, server.token, refresh_interval=0.3)
        store.stream_grace = 1.0
        window = harness.window(store)
        store.start()
        qtbot.waitUntil(lambda: store.stream_state is StreamState.RECONNECTING, timeout=WAIT_MS)
        qtbot.waitUntil(window.banner.isVisible, timeout=WAIT_MS)
        assert "Live updates are interrupted" in window.banner.text and "HTTP 503" in window.banner.text
        assert "reconnecting live updates" in window.server_label.text()
        assert window.banner.button("Retry now") is not None
        server.advance("a", 2)  # meanwhile the list is still refreshed
        qtbot.waitUntil(lambda: progress_of(store, "a") == pytest.approx(20.0), timeout=WAIT_MS)

        server.events_status = 200
        window.banner.button("Retry now").click()
        qtbot.waitUntil(lambda: store.stream_state is StreamState.LIVE and not window.banner.isVisible(),
                        timeout=WAIT_MS)
        assert window.jobs_panel.updated_label.text() == "Live"
        assert store.last_failure is None
    finally:
        server.stop()


def test_a_job_deleted_on_the_server_leaves_the_table_live(harness, qtbot, qtmodeltester, server_factory):
    """Issue 16: a finished job deleted by any client is a `job` tombstone on the stream; its row goes,
    with no reset and no refresh."""
    server = server_factory()
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    store = harness.store(server.url, server.token, refresh_interval=5.0, timeout=4.0)
    harness.window(store)
    qtmodeltester.check(store.model)
    store.start()
    wait_live(qtbot, store)
    job = make_job(http, dataset, "to delete", 5)
    qtbot.waitUntil(lambda: statuses(store).get(job["id"]) == JobStatus.COMPLETED, timeout=WAIT_MS)
    resets = ResetCounter(store.model)
    with qtbot.waitSignal(store.job_deleted, timeout=WAIT_MS) as deleted:
        assert http.delete(f"/api/training/jobs/{job['id']}").status_code == 200
    assert deleted.args == [job["id"]]
    assert store.model.row_of(job["id"]) is None
    assert resets.count == 0 and store.stream_state is StreamState.LIVE
    http.close()
