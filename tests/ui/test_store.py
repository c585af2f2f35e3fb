"""JobStore: the refresh cycle, final states, cancels and failures, against real servers on real sockets."""

from __future__ import annotations

import pytest

from training_studio.client import BadResponse
from training_studio.contract.models import JobStatus
from training_studio.ui.jobs.model import JobRole
from tests.support.faulty_server import Reply, job_json
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job, wait_status

JOBS = ("GET", "/api/training/jobs")
STATUS = ("GET", "/api/training/status")


def statuses(store) -> dict[str, JobStatus]:
    model = store.model
    return {model.job_at(r).id: model.job_at(r).status for r in range(model.rowCount())}


def test_active_snapshot_fills_the_model_and_reports_the_server(harness, qtbot, faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("a", name="alpha"), job_json("b", name="beta", status="queued")])
    store = harness.store(faulty.url, "t")
    with qtbot.waitSignal(store.connection_changed, timeout=5000) as connected:
        store.start()
    assert connected.args == [faulty.url, "0.0.1"]
    qtbot.waitUntil(lambda: store.model.rowCount() == 2, timeout=5000)
    assert statuses(store) == {"a": JobStatus.RUNNING, "b": JobStatus.QUEUED}
    assert store.last_failure is None and store.seconds_since_success() is not None


def test_a_job_that_leaves_the_active_list_gets_its_final_state_once(harness, qtbot, faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("a"), job_json("b")])
    store = harness.store(faulty.url, "t")
    store.start()
    qtbot.waitUntil(lambda: store.model.rowCount() == 2, timeout=5000)
    faulty.routes[STATUS] = Reply(200, job_json("a", status="failed", progress=40.0,
                                                error="out of memory", finishedAt="2026-01-01T00:01:00.000Z"))
    faulty.routes[JOBS] = Reply(200, [job_json("b")])
    qtbot.waitUntil(lambda: statuses(store).get("a") == JobStatus.FAILED, timeout=5000)
    row = store.model.row_of("a")
    assert store.model.job_at(row).error == "out of memory"
    assert store.model.index(row, 0).data(JobRole.IS_FINISHED) is True
    # Fetched once, not on every refresh.
    n_before = sum(1 for r in faulty.requests if r[1] == "/api/training/status")
    refreshes = len(faulty.requests)
    qtbot.waitUntil(lambda: len(faulty.requests) >= refreshes + 3, timeout=5000)
    assert sum(1 for r in faulty.requests if r[1] == "/api/training/status") == n_before == 1
    # ... and it stays visible until cleared.
    assert store.clear_finished() == 1
    assert statuses(store) == {"b": JobStatus.RUNNING}


def test_a_job_the_server_forgot_is_removed(harness, qtbot, faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("a")])
    store = harness.store(faulty.url, "t")
    store.start()
    qtbot.waitUntil(lambda: store.model.rowCount() == 1, timeout=5000)
    faulty.routes[JOBS] = Reply(200, [])
    faulty.routes[STATUS] = Reply(404, {"error": {"code": "job_not_found", "message": "gone"}})
    qtbot.waitUntil(lambda: store.model.rowCount() == 0, timeout=5000)


@pytest.mark.parametrize("reply, kind, words", [
    (Reply(500, {"error": {"code": "internal", "message": "database is locked"}}), "server_error",
     "database is locked"),
    (Reply(200, b"[{not json"), "bad_response", "not JSON"),
    (Reply(200, {"jobs": []}), "bad_response", "contract"),
    (Reply(401, {"error": {"code": "unauthorized", "message": "bad token"}}), "auth", "token"),
])
def test_failures_keep_the_last_good_data_and_recover(harness, qtbot, faulty, reply, kind, words):
    faulty.routes[JOBS] = Reply(200, [job_json("a", name="alpha")])
    store = harness.store(faulty.url, "t")
    store.start()
    qtbot.waitUntil(lambda: store.model.rowCount() == 1, timeout=5000)
    faulty.routes[JOBS] = reply
    with qtbot.waitSignal(store.refresh_failed, timeout=5000) as failed:
        pass
    assert failed.args[0] == kind and words in failed.args[1]
    assert statuses(store) == {"a": JobStatus.RUNNING}  # last good data kept
    faulty.routes[JOBS] = Reply(200, [job_json("a", name="alpha", progress=60.0)])
    if kind == "auth":
        store.reconnect()
    with qtbot.waitSignal(store.connection_restored, timeout=5000):
        pass
    assert store.last_failure is None
    assert store.model.index(0, 0).data(JobRole.PROGRESS) == pytest.approx(60.0)


def test_unknown_status_shows_as_unknown(harness, qtbot, faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("a", status="hibernating")])
    store = harness.store(faulty.url, "t")
    store.start()
    qtbot.waitUntil(lambda: store.model.rowCount() == 1, timeout=5000)
    assert statuses(store) == {"a": JobStatus.UNKNOWN}


def test_refreshes_never_overlap(harness, qtbot, faulty):
    from PySide6.QtCore import QTimer

    faulty.routes[JOBS] = Reply(200, [job_json("a")], delay=0.3)
    store = harness.store(faulty.url, "t", refresh_interval=0.01, timeout=2.0)
    hammer = QTimer()
    hammer.setInterval(20)
    hammer.timeout.connect(store.request_refresh)  # F5 held down, on top of the timer
    store.start()
    hammer.start()
    qtbot.waitUntil(lambda: sum(1 for r in faulty.requests if r[1] == JOBS[1]) >= 4, timeout=10_000)
    hammer.stop()
    # (The event stream request, answered 404 here, may come beside a refresh: only refreshes count.)
    assert faulty.max_in_flight_by_path[JOBS[1]] == 1


def test_slow_server_times_out_as_unreachable(harness, qtbot, faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("a")], delay=1.5)
    store = harness.store(faulty.url, "t", refresh_interval=0.05, timeout=0.3)
    with qtbot.waitSignal(store.refresh_failed, timeout=5000) as failed:
        store.start()
    assert failed.args[0] == "unreachable" and "did not answer in time" in failed.args[1]


def test_cancel_rejected_with_success_false_is_reported(harness, qtbot, faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("j1", name="big run")])
    faulty.routes[("POST", "/api/training/jobs/j1/cancel")] = Reply(200, {"success": False}, delay=0.3)
    store = harness.store(faulty.url, "t")
    store.start()
    qtbot.waitUntil(lambda: store.model.rowCount() == 1, timeout=5000)
    with qtbot.waitSignal(store.cancel_failed, timeout=5000) as failed:
        store.request_cancel("j1")
        assert store.is_cancel_in_flight("j1")
        assert store.model.index(0, 0).data(JobRole.IS_CANCELLING) is True
        store.request_cancel("j1")  # ignored while in flight
    assert failed.args[0] == "j1" and "big run" in failed.args[1]
    assert store.model.index(0, 0).data(JobRole.IS_CANCELLING) is False
    assert not store.is_cancel_in_flight("j1")
    assert sum(1 for r in faulty.requests if r[1].endswith("/cancel")) == 1


def test_real_server_jobs_progress_complete_and_cancel(harness, qtbot, server_factory):
    server = server_factory(extra_args=["--cancel-grace", "1", "--concurrency", "2"])
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    long_job = make_job(http, dataset, "long run", 1_000_000)
    assert wait_status(http, long_job["id"], {"running"})["status"] == "running"
    store = harness.store(server.url, server.token)
    store.start()
    qtbot.waitUntil(lambda: store.model.row_of(long_job["id"]) is not None, timeout=30_000)
    row = store.model.row_of(long_job["id"])
    first = store.model.index(row, 0).data(JobRole.PROGRESS)
    qtbot.waitUntil(lambda: store.model.index(row, 0).data(JobRole.PROGRESS) > first, timeout=60_000)

    # The 50 steps take about 0.3 s: on a loaded machine the job may start and end between two refreshes.
    # Wait for the server to say it completed, then for the store to show it, either way.
    short_job = make_job(http, dataset, "short run", 50)
    assert wait_status(http, short_job["id"], {"completed", "failed", "cancelled"}, timeout=120)["status"] \
        == "completed"
    qtbot.waitUntil(lambda: statuses(store).get(short_job["id"]) == JobStatus.COMPLETED, timeout=60_000)
    done_row = store.model.row_of(short_job["id"])
    assert store.model.index(done_row, 0).data(JobRole.PROGRESS) == pytest.approx(100.0)
    assert store.model.row_of(long_job["id"]) == row  # the older row did not move

    with qtbot.waitSignal(store.cancel_succeeded, timeout=30_000):
        store.request_cancel(long_job["id"])
    qtbot.waitUntil(lambda: statuses(store).get(long_job["id"]) == JobStatus.CANCELLED, timeout=60_000)
    assert store.model.index(row, 0).data(JobRole.IS_CANCELLING) is False
    http.close()


def test_a_job_that_starts_and_ends_between_two_refreshes_still_shows_completed(harness, qtbot, server):
    """Polling only (no event stream): a job that was never in an active answer still shows, through the
    `since=` delta where the server keeps revisions, else through the store's fetch of recently finished
    jobs that repeats every FINISHED_CHECK_EVERY refreshes."""
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    store = harness.store(server.url, server.token)
    store.live_updates = False
    store.start()
    qtbot.waitUntil(lambda: store.connected and not store._history_pending and not store.is_refreshing,
                    timeout=30_000)
    # While this blocking code runs the Qt event loop does not, so no refresh can see the job active.
    job = make_job(http, dataset, "between two refreshes", 50)
    assert wait_status(http, job["id"], {"completed", "failed", "cancelled"}, timeout=120)["status"] == "completed"
    assert store.model.row_of(job["id"]) is None
    qtbot.waitUntil(lambda: statuses(store).get(job["id"]) == JobStatus.COMPLETED, timeout=60_000)
    row = store.model.row_of(job["id"])
    assert store.model.index(row, 0).data(JobRole.PROGRESS) == pytest.approx(100.0)
    assert store.model.index(row, 0).data(JobRole.IS_FINISHED) is True
    http.close()


def test_from_a_server_without_revisions_such_a_job_shows_through_the_finished_jobs_check(harness, qtbot, server):
    """The same through the labelled proxy of tests/support/faulty_server.py, which passes on neither the
    revision header nor the event stream: the store can only poll whole active lists, and its fetch of
    recently finished jobs every FINISHED_CHECK_EVERY refreshes is what finds the job."""
    from tests.support.faulty_server import SwitchableServer

    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    proxy = SwitchableServer(server.url).start()
    try:
        store = harness.store(proxy.url, server.token)
        store.start()
        qtbot.waitUntil(lambda: store.connected and not store._history_pending and not store.is_refreshing,
                        timeout=30_000)
        # While this blocking code runs the Qt event loop does not, so no refresh can see the job active.
        job = make_job(http, dataset, "between two refreshes", 50)
        final = wait_status(http, job["id"], {"completed", "failed", "cancelled"}, timeout=120)
        assert final["status"] == "completed"
        qtbot.waitUntil(lambda: statuses(store).get(job["id"]) == JobStatus.COMPLETED, timeout=60_000)
        assert store.model.index(store.model.row_of(job["id"]), 0).data(JobRole.IS_FINISHED) is True
    finally:
        proxy.stop()
        http.close()


def test_a_failing_final_state_fetch_is_retried_without_failing_the_refresh(harness, qtbot, faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("a"), job_json("b")])
    store = harness.store(faulty.url, "t")
    failures: list[str] = []
    store.refresh_failed.connect(lambda kind, message: failures.append(kind))
    store.start()
    qtbot.waitUntil(lambda: store.model.rowCount() == 2, timeout=5000)
    faulty.routes[STATUS] = Reply(503, {"error": {"code": "busy", "message": "try later"}})
    faulty.routes[JOBS] = Reply(200, [job_json("b")])
    qtbot.waitUntil(lambda: sum(1 for r in faulty.requests if r[1] == STATUS[1]) >= 2, timeout=5000)
    assert failures == [] and statuses(store)["a"] == JobStatus.RUNNING  # last known state, kept
    faulty.routes[STATUS] = Reply(200, job_json("a", status="completed", progress=100.0))
    qtbot.waitUntil(lambda: statuses(store)["a"] == JobStatus.COMPLETED, timeout=5000)
    assert failures == []


# Reuse of unchanged jobs across refreshes ----------------------------------------------------------

def by_id(jobs) -> dict:
    return {job.id: job for job in jobs}


def test_real_server_unchanged_job_keeps_its_object_and_a_changed_one_gets_a_new_one(harness, server_factory):
    server = server_factory(extra_args=["--cancel-grace", "1", "--concurrency", "1"])
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    running = make_job(http, dataset, "long run", 1_000_000)
    wait_status(http, running["id"], {"running"})
    queued = make_job(http, dataset, "waits its turn", 50)  # concurrency 1: it stays queued
    store = harness.store(server.url, server.token)

    first = by_id(harness.run(store.fetch_active_jobs()))
    assert first[queued["id"]].status in (JobStatus.QUEUED, JobStatus.PENDING)
    assert first[running["id"]].status == JobStatus.RUNNING
    moved = wait_progress_beyond(http, running["id"], first[running["id"]].progress)
    assert moved, "the running job made no progress on the real server"
    second = by_id(harness.run(store.fetch_active_jobs()))

    assert second[queued["id"]] is first[queued["id"]]
    assert second[running["id"]] is not first[running["id"]]
    assert second[running["id"]].progress > first[running["id"]].progress
    row = store.model.row_of(queued["id"])
    assert store.model.job_at(row) is first[queued["id"]]
    http.close()


def wait_progress_beyond(http, job_id: str, progress: float, timeout: float = 20.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http.get("/api/training/status", params={"job_id": job_id}).json()["progress"] > progress:
            return True
        time.sleep(0.05)
    return False


def test_only_changed_jobs_get_new_objects_with_unknown_statuses_and_extra_fields(harness, faulty):
    odd = job_json("b", status="hibernating", gpuTemperature=71.5, schedule={"kind": "cosine", "warmup": [1, 2]})
    faulty.routes[JOBS] = Reply(200, [job_json("a", progress=10.0), odd, job_json("c")])
    store = harness.store(faulty.url, "t")
    first = by_id(harness.run(store.fetch_active_jobs()))
    assert first["b"].status is JobStatus.UNKNOWN

    faulty.routes[JOBS] = Reply(200, [job_json("a", progress=20.0), odd, job_json("c", name="renamed")])
    second = by_id(harness.run(store.fetch_active_jobs()))
    assert second["b"] is first["b"]
    assert second["a"] is not first["a"] and second["a"].progress == pytest.approx(20.0)
    assert second["c"] is not first["c"] and second["c"].name == "renamed"

    # An extra field the contract ignores still counts as a change of the item: parsed again, same result.
    faulty.routes[JOBS] = Reply(200, [job_json("a", progress=20.0), {**odd, "gpuTemperature": 72.0},
                                      job_json("c", name="renamed")])
    third = by_id(harness.run(store.fetch_active_jobs()))
    assert third["a"] is second["a"] and third["c"] is second["c"]
    assert third["b"] is not second["b"] and third["b"] == second["b"]
    assert statuses(store) == {"a": JobStatus.RUNNING, "b": JobStatus.UNKNOWN, "c": JobStatus.RUNNING}


def test_a_job_that_moves_position_or_reappears_keeps_its_object(harness, faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("a"), job_json("b"), job_json("c")])
    store = harness.store(faulty.url, "t")
    first = by_id(harness.run(store.fetch_active_jobs()))
    faulty.routes[JOBS] = Reply(200, [job_json("c"), job_json("a"), job_json("new")])
    second = by_id(harness.run(store.fetch_active_jobs()))
    assert second["a"] is first["a"] and second["c"] is first["c"]
    assert second["new"].id == "new"


@pytest.mark.parametrize("bad_items", [
    ["not a job"],                                     # not an object: the reuse step cannot read an id
    [5],
    [None],
    [[job_json("x")]],                                 # a list where a job should be
    [{"name": "no id", "status": "running", "createdAt": "2026-01-01T00:00:00.000Z"}],
    [job_json("x", id=["un", "hashable"])],            # an id that cannot be a dict key
    [job_json("x", id=7)],                             # a hashable id of the wrong type
    [job_json("a", progress="lots")],                  # a known job, changed into something invalid
])
def test_malformed_items_after_a_good_refresh_are_bad_responses_and_keep_the_last_data(harness, faulty, bad_items):
    faulty.routes[JOBS] = Reply(200, [job_json("a"), job_json("b")])
    store = harness.store(faulty.url, "t")
    first = by_id(harness.run(store.fetch_active_jobs()))
    body = [job_json("b"), *bad_items]
    faulty.routes[JOBS] = Reply(200, body)

    async def attempt(coro):
        try:
            await coro
        except BadResponse as error:
            return error
        return None

    error = harness.run(attempt(store.fetch_active_jobs()))
    assert isinstance(error, BadResponse) and "contract" in error.message
    whole_list = harness.run(attempt(store.client.list_active_jobs()))
    assert whole_list is not None and error.message == whole_list.message  # the message a full parse gives
    assert statuses(store) == {"a": JobStatus.RUNNING, "b": JobStatus.RUNNING}  # last good data kept

    # The failed refresh did not replace what reuse compares against.
    faulty.routes[JOBS] = Reply(200, [job_json("a"), job_json("b")])
    again = by_id(harness.run(store.fetch_active_jobs()))
    assert again["a"] is first["a"] and again["b"] is first["b"]


def test_a_cancelling_job_listed_as_finished_stops_cancelling(harness, faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("j1"), job_json("j2")])
    faulty.routes[("POST", "/api/training/jobs/j1/cancel")] = Reply(200, {"success": True})
    faulty.routes[STATUS] = Reply(200, job_json("j1"))  # still running right after the cancel
    store = harness.store(faulty.url, "t")
    harness.run(store.fetch_active_jobs())
    assert harness.run(store.cancel_job("j1")) is True
    row = store.model.row_of("j1")
    assert store.model.index(row, 0).data(JobRole.IS_CANCELLING) is True

    harness.run(store.fetch_active_jobs())  # unchanged: still cancelling
    assert store.model.index(row, 0).data(JobRole.IS_CANCELLING) is True
    faulty.routes[JOBS] = Reply(200, [job_json("j1", status="cancelled"), job_json("j2")])
    harness.run(store.fetch_active_jobs())
    assert store.model.index(row, 0).data(JobRole.IS_CANCELLING) is False
    assert statuses(store) == {"j1": JobStatus.CANCELLED, "j2": JobStatus.RUNNING}


def test_the_log_says_when_the_store_connects_loses_and_regains_the_server(harness, qtbot, server, caplog):
    import logging

    from tests.support.faulty_server import SwitchableServer

    caplog.set_level(logging.INFO, logger="training_studio.ui.jobs.store")
    proxy = SwitchableServer(server.url).start()
    try:
        store = harness.store(proxy.url, server.token)
        store.start()
        qtbot.waitUntil(lambda: store.connected and not store.is_refreshing, timeout=10_000)
        assert f"connected to {proxy.url} (server " in caplog.text
        assert "connection lost" not in caplog.text
        proxy.go_offline()
        with qtbot.waitSignal(store.refresh_failed, timeout=10_000):
            pass
        lost = [r.getMessage() for r in caplog.records if r.getMessage().startswith("connection lost")]
        assert len(lost) == 1 and proxy.url in lost[0] and "unreachable" in lost[0]
        proxy.go_online()
        with qtbot.waitSignal(store.connection_restored, timeout=10_000):
            pass
        assert f"connection restored ({proxy.url})" in caplog.text
        # One "lost" line per outage, however many retries failed meanwhile.
        assert len([r for r in caplog.records if r.getMessage().startswith("connection lost")]) == 1
    finally:
        proxy.stop()


def test_a_big_active_list_is_parsed_on_the_decoding_thread_reusing_jobs_whose_revision_is_held(harness, faulty):
    import json

    from training_studio.client.api import DECODE_IN_THREAD_MIN_BYTES

    items = [job_json(f"j{n:03d}", name=f"a name long enough for job {n:03d}", revision=100 + n) for n in range(400)]
    assert len(json.dumps(items)) >= DECODE_IN_THREAD_MIN_BYTES  # decoded and reused on the client's worker thread
    faulty.routes[JOBS] = Reply(200, items, headers={"X-Training-Studio-Revision": "500"})
    store = harness.store(faulty.url, "t")
    first = by_id(harness.run(store.fetch_active_jobs()))
    assert store.model.rowCount() == 400

    items[5] = {**items[5], "progress": 80.0, "revision": 900}
    items[6] = {**items[6], "name": "renamed without a new revision"}  # the revision says unchanged: not parsed
    faulty.routes[JOBS] = Reply(200, items, headers={"X-Training-Studio-Revision": "900"})
    second = by_id(harness.run(store.fetch_active_jobs()))
    assert second["j005"] is not first["j005"] and second["j005"].progress == pytest.approx(80.0)
    assert all(second[job_id] is first[job_id] for job_id in first if job_id != "j005")
    assert store.model.index(store.model.row_of("j005"), 2).data() == "80%"

    # A bad item in a big answer: the message a whole-list parse gives, and the last good data kept.
    items[200] = {**items[200], "progress": "lots", "revision": 901}
    faulty.routes[JOBS] = Reply(200, items, headers={"X-Training-Studio-Revision": "901"})

    async def attempt(coro):
        try:
            await coro
        except BadResponse as error:
            return error
        return None

    error = harness.run(attempt(store.fetch_active_jobs()))
    whole_list = harness.run(attempt(store.client.list_active_jobs()))
    assert error is not None and whole_list is not None and error.message == whole_list.message
    assert "200.progress" in error.message
    assert store.model.job_at(store.model.row_of("j200")).progress == pytest.approx(40.0)
