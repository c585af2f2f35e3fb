"""Live updates in the GUI: the store follows the server's event stream and the window shows changes as they
happen, without a model reset; without a stream (a seed-only server, a 404) it polls, with deltas when it can;
a dropped stream shows in the banner and heals by itself.

Real server subprocesses and real trainers, except where the point is a server that is not ours: the
seed-only server (tests/support/seed_server.py) is a labelled stand-in on a real socket implementing only
the seed endpoints (plus, optionally, revisions without an event stream).
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import pytest

from training_studio.contract.models import JobStatus
from training_studio.ui.datasets.wiring import install_library_panels
from training_studio.ui.jobs.model import JobRole
from training_studio.ui.jobs.store import FRAME_MS, StreamState
from tests.support.burst_server import BurstEventServer
from tests.support.seed_server import SeedOnlyServer
from tests.support.server import ServerProcess
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job, png_bytes, wait_status

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


# -- reset, per-frame application, the cheap resync, the Datasets tab (audit of issue 12) -------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_reset_from_the_server_refetches_jobs_datasets_and_models_without_a_model_reset(harness, qtbot, tmp_path):
    """The server at the app's address is replaced by one with another data dir (same port and token): the
    stream's Last-Event-ID is foreign to its database, so it answers `reset`. The store fetches every job
    again (the rows of the old database go, the new ones come, no modelReset) and the Datasets and Models
    stores, loaded once but not on screen and never polling here, fetch their lists again too."""
    port, token = free_port(), "one-token-for-both"
    first = ServerProcess(tmp_path / "first", token=token, extra_args=["--no-runner", "--port", str(port)]).start()
    second = ServerProcess(tmp_path / "second", token=token, extra_args=["--no-runner", "--port", str(port)])
    try:
        with sync_client(first.url, token) as http:
            old_dataset = make_dataset(http, "old data", images=1)
            old_jobs = {make_job(http, old_dataset, f"old {n}", 100)["id"] for n in range(3)}
            old_revision = int(http.get("/api/training/jobs").headers["X-Training-Studio-Revision"])
        store = harness.store(first.url, token, refresh_interval=3600.0, timeout=4.0)
        window = harness.window(store)
        library = install_library_panels(window, store.client, store, lazy=True)
        library.datasets.interval = library.models.interval = 3600.0  # no polling: only the reset refetches
        store.start()
        wait_live(qtbot, store)
        qtbot.waitUntil(lambda: set(statuses(store)) == old_jobs, timeout=WAIT_MS)
        for title, kept in (("Datasets", library.datasets), ("Models", library.models)):
            assert window.show_panel(title)
            qtbot.waitUntil(lambda kept=kept: kept.loaded_once and not kept.is_refreshing, timeout=WAIT_MS)
        assert library.datasets.model.ids() == [old_dataset] and library.models.model.rowCount() == 0
        assert window.show_panel("Jobs")  # neither library tab on screen: a reconnect does not refresh them

        resets = ResetCounter(store.model)
        marks: list[str] = []
        store.library_resync.connect(lambda: marks.append("reset"))
        library.datasets.refresh_succeeded.connect(lambda: marks.append("datasets fetched"))
        library.models.refresh_succeeded.connect(lambda: marks.append("models fetched"))
        fetch_everything = store.fetch_active_jobs

        async def observed_fetch_everything():  # observation only: the store's own method runs
            jobs = await fetch_everything()
            marks.append("jobs fetched")
            return jobs

        store.fetch_active_jobs = observed_fetch_everything

        first.stop()
        qtbot.waitUntil(lambda: store.stream_state is StreamState.RECONNECTING, timeout=WAIT_MS)
        # The GUI thread is busy while the other server starts and gets its data: all of it is there when
        # the app next reaches it.
        second.start()
        with sync_client(second.url, token) as http:
            new_dataset = make_dataset(http, "new data", images=1)
            new_jobs = {make_job(http, new_dataset, f"new {n}", 100)["id"] for n in range(2)}
            new_revision = int(http.get("/api/training/jobs").headers["X-Training-Studio-Revision"])
        assert abs(new_revision - old_revision) > 1000  # (each database starts at a random revision)

        def refetched_after_reset() -> bool:
            after = marks[marks.index("reset"):] if "reset" in marks else []
            return {"jobs fetched", "datasets fetched", "models fetched"} <= set(after)

        qtbot.waitUntil(refetched_after_reset, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: statuses(store) == {job_id: JobStatus.PENDING for job_id in new_jobs},
                        timeout=WAIT_MS)
        qtbot.waitUntil(lambda: store.stream_state is StreamState.LIVE, timeout=WAIT_MS)
        assert library.datasets.model.ids() == [new_dataset]
        assert library.models.model.rowCount() == 0
        assert resets.count == 0
        with sync_client(second.url, token) as http:  # the model equals the server's jobs
            on_server = {job["id"]: JobStatus(job["status"]) for job in
                         http.get("/api/training/jobs", params={"status": "all"}).json()}
        assert statuses(store) == on_server
        library.shutdown()
        harness.run(library.wait_idle())
    finally:
        first.stop(timeout=10)
        second.stop(timeout=10)


def test_a_burst_of_job_events_in_one_frame_is_applied_in_at_most_one_model_update_per_frame(
        harness, qtbot, qtmodeltester):
    """200 job events (20 jobs x 10 steps) written at once by a labelled stand-in server (the real one
    coalesces a job's progress, so it cannot send such a burst on purpose) reach the model coalesced: no
    two `apply_updates` calls within one frame, each job at most once per call, the newest state applied,
    and far fewer job states applied than events received."""
    server = BurstEventServer().start()
    try:
        ids = [f"job{n:02d}" for n in range(20)]
        for job_id in [*ids, "sentinel"]:
            server.add_job(job_id, job_id, total_steps=10)
        store = harness.store(server.url, server.token, refresh_interval=3600.0)
        qtmodeltester.check(store.model)
        store.start()
        wait_live(qtbot, store)
        qtbot.waitUntil(lambda: set(statuses(store)) == {*ids, "sentinel"}, timeout=WAIT_MS)
        # The hello's resync (a delta) has run; the next refresh is an hour away.
        qtbot.waitUntil(lambda: deltas(server) >= 1 and not store.is_refreshing, timeout=WAIT_MS)
        resets = ResetCounter(store.model)

        calls: list[tuple[float, list[tuple[str, int | None]]]] = []
        apply_updates = store.model.apply_updates

        def observed_apply_updates(jobs):  # observation only: the model's own method runs
            jobs = list(jobs)
            calls.append((time.monotonic(), [(job.id, job.current_step) for job in jobs]))
            return apply_updates(jobs)

        store.model.apply_updates = observed_apply_updates
        sent = server.burst(ids, range(1, 11))
        assert sent == 200
        qtbot.waitUntil(lambda: all(progress_of(store, job_id) == pytest.approx(100.0) for job_id in ids),
                        timeout=WAIT_MS)
        # A later change proves nothing of the burst was still to come.
        server.burst(["sentinel"], range(1, 2))
        qtbot.waitUntil(lambda: progress_of(store, "sentinel") == pytest.approx(10.0), timeout=WAIT_MS)

        assert calls and all(job_id == "sentinel" for job_id, _step in calls[-1][1])
        burst_calls = calls[:-1]
        assert burst_calls
        for _moment, applied in calls:
            assert len({job_id for job_id, _step in applied}) == len(applied)  # each job once per update
        # At most one update per frame (a lower bound on the gaps: load only makes them longer; Qt's
        # coarse timers may fire up to 5 % early).
        gaps = [later[0] - earlier[0] for earlier, later in zip(calls, calls[1:])]
        assert all(gap >= 0.9 * FRAME_MS / 1000 for gap in gaps), gaps
        # Never an older state after a newer one, and the last state applied to each job is its final one.
        last_step: dict[str, int] = {}
        for _moment, applied in burst_calls:
            for job_id, step in applied:
                assert step is not None and step >= last_step.get(job_id, 0)
                last_step[job_id] = step
        assert last_step == {job_id: 10 for job_id in ids}
        assert sum(len(applied) for _moment, applied in burst_calls) < sent
        for job_id in ids:
            row = store.model.row_of(job_id)
            assert store.model.index(row, 0).data(JobRole.JOB).current_step == 10
        assert resets.count == 0 and store.stream_state is StreamState.LIVE
    finally:
        server.stop()


def test_while_the_stream_is_live_the_refresh_timer_asks_only_for_deltas_or_health(harness, qtbot):
    """Issue 12: "the 5 s timer remains only as a cheap delta resync while the stream is healthy". With a
    short interval against the labelled stand-in (revisions, an event stream): once live, never the whole
    active list again; an empty delta on a quiet stream, and only /api/health after the stream delivered."""
    server = BurstEventServer().start()
    try:
        server.add_job("a", "alpha")
        server.add_job("b", "beta")
        store = harness.store(server.url, server.token, refresh_interval=0.3)
        store.start()
        wait_live(qtbot, store)
        qtbot.waitUntil(lambda: set(statuses(store)) == {"a", "b"}, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: deltas(server) >= 1, timeout=WAIT_MS)  # the hello's resync
        live_from = len(server.requests)

        def after(start: int) -> list[tuple[str, str, dict[str, list[str]]]]:
            return list(server.requests)[start:]

        def count_deltas(start: int) -> int:
            return sum(1 for _m, path, query in after(start) if path == "/api/training/jobs" and "since" in query)

        def count_health(start: int) -> int:
            return sum(1 for _m, path, _q in after(start) if path == "/api/health")

        qtbot.waitUntil(lambda: count_deltas(live_from) >= 3, timeout=WAIT_MS)  # quiet stream: deltas
        events_from = len(server.requests)
        server.burst(["a"], range(1, 4))
        qtbot.waitUntil(lambda: progress_of(store, "a") == pytest.approx(30.0), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: count_health(events_from) >= 1, timeout=WAIT_MS)  # it delivered: health only
        health_at = len(server.requests)
        qtbot.waitUntil(lambda: count_deltas(health_at) >= 2, timeout=WAIT_MS)  # and the timer keeps going

        for method, path, query in after(live_from):
            assert method == "GET" and (path == "/api/health" or (path == "/api/training/jobs"
                                                                  and query.get("status") == ["active"]
                                                                  and "since" in query)), (path, query)
        assert full_fetches(server) == 1  # the one at connect
        assert server.count("/api/training/events") == 1  # one stream all along
        assert store.stream_state is StreamState.LIVE and store.last_failure is None
    finally:
        server.stop()


def test_the_datasets_tab_shows_a_dataset_created_committed_and_deleted_without_refresh(
        harness, qtbot, server_factory):
    server = server_factory(extra_args=["--no-runner"])
    http = sync_client(server.url, server.token)
    store = harness.store(server.url, server.token, refresh_interval=3600.0, timeout=4.0)
    window = harness.window(store)
    library = install_library_panels(window, store.client, store, lazy=True)
    try:
        library.datasets.interval = 3600.0  # the tab never polls here: only events can change its rows
        store.start()
        wait_live(qtbot, store)
        assert window.show_panel("Datasets")
        datasets = library.datasets
        qtbot.waitUntil(lambda: datasets.loaded_once and not datasets.is_refreshing, timeout=WAIT_MS)
        assert datasets.model.rowCount() == 0
        refreshes: list[bool] = []
        datasets.refreshing_changed.connect(lambda on: refreshes.append(on) if on else None)

        created = http.post("/api/datasets", json={"name": "arrives live", "type": "image"})
        assert created.status_code == 201, created.text
        dataset_id = created.json()["id"]
        qtbot.waitUntil(lambda: datasets.model.record(dataset_id) is not None, timeout=WAIT_MS)
        assert datasets.model.record(dataset_id).name == "arrives live"
        assert datasets.model.record(dataset_id).image_count == 0

        for seed in range(2):
            body = png_bytes(seed)
            put = http.put(f"/api/datasets/{dataset_id}/files/{hashlib.sha256(body).hexdigest()}",
                           params={"filename": f"img{seed}.png"}, content=body,
                           headers={"Content-Type": "application/octet-stream"})
            assert put.status_code == 201, put.text
        assert http.post(f"/api/datasets/{dataset_id}/commit").status_code == 200

        def committed() -> bool:
            record = datasets.model.record(dataset_id)
            return record is not None and str(record.status) == "active" and record.image_count == 2

        qtbot.waitUntil(committed, timeout=WAIT_MS)

        assert http.delete(f"/api/datasets/{dataset_id}").status_code == 200
        qtbot.waitUntil(lambda: datasets.model.record(dataset_id) is None, timeout=WAIT_MS)
        assert datasets.model.rowCount() == 0
        assert refreshes == []  # every change came through the event stream
        assert store.stream_state is StreamState.LIVE
    finally:
        library.shutdown()
        harness.run(library.wait_idle())
        http.close()
