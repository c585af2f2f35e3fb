"""Queue control and GPU assignment through a real server and real trainers (issue 16): jobs start in the
order the user set (also after a server restart), held jobs wait, a chained job starts only when the job
it waits for ends (and never, if it was to run only after a success that did not come), a job set to start
at a time waits for it and then starts without anything else happening, passed over meanwhile by a job
queued after it, a failed job does not stop the queue, and `serve --gpus` hands each running job its own
GPU through CUDA_VISIBLE_DEVICES.

The trainer is tests/runner/trainers/gated_env.py: it appends {job, gpus} to a record file when it starts
and ends only when the test creates the gate file `go` in its output folder.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from tests.server.helpers import committed_dataset
from tests.support.jobs import wait_for, wait_job, wait_status
from tests.support.server import ServerProcess
from training_studio.contract.models import parse_timestamp

TRAINER = Path(__file__).parent / "trainers" / "gated_env.py"


def _presets(record: Path) -> str:
    command = json.dumps([sys.executable, str(TRAINER), str(record), "{output_dir}/go", "{params.outcome}"])
    return (f'[[preset]]\nid = "gated"\nname = "gated"\ncommand = {command}\nprogress = "jsonl"\n'
            '[[preset.params]]\nname = "outcome"\ntype = "str"\ndefault = "succeed"\ndescription = "x"\n')


@pytest.fixture
def record(tmp_path) -> Path:
    return tmp_path / "started.jsonl"


def _serve(tmp_path: Path, record: Path, *args: str) -> ServerProcess:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    (data_dir / "presets.toml").write_text(_presets(record))
    return ServerProcess(data_dir, extra_args=["--cancel-grace", "1", *args]).start()


def _started(record: Path) -> list[dict]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


def _create(client: httpx.Client, dataset_id: str, name: str, **extra) -> str:
    body = {"name": name, "dataset_id": dataset_id, "base_model": "gated", "total_steps": 2, **extra}
    response = client.post("/api/training/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _release(server: ServerProcess, job_id: str) -> None:
    (server.data_dir / "jobs" / job_id / "go").write_text("go")


def _queue(client: httpx.Client, job_id: str, **body) -> dict:
    response = client.patch(f"/api/training/jobs/{job_id}/queue", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _wait_started(record: Path, count: int) -> list[str]:
    wait_for(lambda: len(_started(record)) >= count, 60, f"{count} trainers started")
    return [entry["job"] for entry in _started(record)]


def test_reordered_and_held_jobs_start_in_the_users_order_also_after_a_restart(tmp_path, record):
    server = _serve(tmp_path, record, "--concurrency", "1")
    try:
        with server.client() as client:
            dataset = committed_dataset(client)["id"]
            first = _create(client, dataset, "first")
            _wait_started(record, 1)
            a, b, c, d = (_create(client, dataset, name) for name in "abcd")
            wait_for(lambda: all(client.get(f"/api/training/status?job_id={j}").json()["status"] == "queued"
                                 for j in (a, b, c, d)), 30, "all queued")
            _queue(client, c, move="top")           # c a b d
            _queue(client, d, before_job_id=a)      # c d a b
            held = _queue(client, a, held=True)     # c d (b), a held
            assert held["held"] is True and held["status"] == "queued"
            positions = {j: client.get(f"/api/training/status?job_id={j}").json()["queuePosition"] for j in (a, b, c, d)}
            assert sorted(positions, key=positions.get) == [c, d, a, b]
        server.stop()  # the order is the server's: it survives a restart
        server.start()
        with server.client() as client:
            _release(server, first)
            assert _wait_started(record, 2)[-1] == c
            _release(server, c)
            assert _wait_started(record, 3)[-1] == d
            _release(server, d)
            assert _wait_started(record, 4)[-1] == b  # a is held: b goes first
            assert client.get(f"/api/training/status?job_id={a}").json()["status"] == "queued"
            _queue(client, a, held=False)
            _release(server, b)
            assert _wait_started(record, 5)[-1] == a
            _release(server, a)
            for job_id in (first, a, b, c, d):
                assert wait_status(client, job_id, {"completed", "failed", "cancelled"}, 60)["status"] == "completed"
    finally:
        server.stop()


def test_a_chained_job_waits_for_its_job_and_a_failure_does_not_stop_the_queue(tmp_path, record):
    server = _serve(tmp_path, record, "--concurrency", "2")
    try:
        with server.client() as client:
            dataset = committed_dataset(client)["id"]
            failing = _create(client, dataset, "fails", params={"outcome": "fail"})
            after_any = _create(client, dataset, "after any end", after_job_id=failing)
            only_if_ok = _create(client, dataset, "only after success", after_job_id=failing,
                                 after_condition="completed")
            free = _create(client, dataset, "free")
            # Two slots: the failing job and the free one run; the chained ones wait although a slot is free.
            assert set(_wait_started(record, 2)) == {failing, free}
            waiting = client.get(f"/api/training/status?job_id={after_any}").json()
            assert waiting["status"] == "queued" and waiting["afterJobId"] == failing
            _release(server, free)
            wait_status(client, free, {"completed"}, 60)
            _release(server, failing)
            assert wait_status(client, failing, {"failed"}, 60)["status"] == "failed"
            assert _wait_started(record, 3)[-1] == after_any
            skipped = wait_status(client, only_if_ok, {"cancelled"}, 60)
            assert "only if 'fails' completed" in skipped["error"]
            _release(server, after_any)
            assert wait_status(client, after_any, {"completed"}, 60)["status"] == "completed"
            assert only_if_ok not in [entry["job"] for entry in _started(record)]
    finally:
        server.stop()


NOT_BEFORE_S = 3.0  # how far ahead the timed job is set to start
START_BOUND_S = 5.0  # how soon after its time it must be running (the runner wakes for it; nothing else does)


def test_a_job_set_to_start_at_a_time_waits_for_it_then_starts_without_blocking_the_queue(tmp_path, record):
    server = _serve(tmp_path, record, "--concurrency", "2")
    try:
        with server.client() as client:
            dataset = committed_dataset(client)["id"]
            due = datetime.now(timezone.utc) + timedelta(seconds=NOT_BEFORE_S)
            later = _create(client, dataset, "later", not_before=due.isoformat())
            free = _create(client, dataset, "free")  # queued after it, with no time
            # Two slots and `later` first in the queue: `free` starting proves the runner looked at `later`
            # and passed it over (a job not due yet never blocks those behind it).
            assert _wait_started(record, 1) == [free]
            waiting = client.get(f"/api/training/status?job_id={later}").json()
            checked_at = datetime.now(timezone.utc)
            assert checked_at < due, "the machine was too slow to look before the time: nothing was shown"
            assert waiting["status"] == "queued" and waiting["queuePosition"] is not None, waiting
            assert waiting["startedAt"] is None and not waiting["held"]
            stored_due = parse_timestamp(waiting["notBefore"])
            assert stored_due is not None and abs((stored_due - due).total_seconds()) < 0.001

            # Nothing else happens (no job ends, no request): the time alone starts it, with a slot free.
            started = wait_job(client, later, lambda job: job["status"] != "queued", NOT_BEFORE_S + 60)
            assert started["status"] == "running", started
            started_at = parse_timestamp(started["startedAt"])
            assert started_at >= stored_due, (started["startedAt"], waiting["notBefore"])
            assert (started_at - stored_due).total_seconds() < START_BOUND_S, (started["startedAt"],
                                                                               waiting["notBefore"])
            assert _wait_started(record, 2) == [free, later]
            assert client.get(f"/api/training/status?job_id={free}").json()["status"] == "running"
            for job_id in (free, later):
                _release(server, job_id)
                assert wait_status(client, job_id, {"completed", "failed", "cancelled"}, 60)["status"] == "completed"
    finally:
        server.stop()


def test_queue_changes_are_refused_clearly(tmp_path, record):
    server = _serve(tmp_path, record, "--concurrency", "1")
    try:
        with server.client() as client:
            dataset = committed_dataset(client)["id"]
            running = _create(client, dataset, "running")
            _wait_started(record, 1)
            waiting = _create(client, dataset, "waiting")
            refused = client.patch(f"/api/training/jobs/{running}/queue", json={"move": "top"})
            assert refused.status_code == 409 and refused.json()["error"]["code"] == "job_not_waiting"
            loop = client.patch(f"/api/training/jobs/{waiting}/queue", json={"after_job_id": waiting})
            assert loop.status_code == 409 and "wait for each other" in loop.text
            unknown = client.patch(f"/api/training/jobs/{waiting}/queue", json={"after_job_id": "nope"})
            assert unknown.status_code == 404 and "no job with id 'nope'" in unknown.text
            assert client.patch("/api/training/jobs/nope/queue", json={"held": True}).status_code == 404
            _release(server, running)
            wait_status(client, running, {"completed"}, 60)
            _release_when_started = _wait_started(record, 2)
            assert _release_when_started[-1] == waiting
            _release(server, waiting)
            wait_status(client, waiting, {"completed"}, 60)
    finally:
        server.stop()


def test_each_running_job_gets_its_own_gpu(tmp_path, record):
    server = _serve(tmp_path, record, "--gpus", "0,1")  # concurrency follows the GPU count: 2
    try:
        with server.client() as client:
            dataset = committed_dataset(client)["id"]
            one, two, three = (_create(client, dataset, name) for name in ("one", "two", "three"))
            started = {entry["job"]: entry["gpus"] for entry in (_started(record) or [])}
            _wait_started(record, 2)
            started = {entry["job"]: entry["gpus"] for entry in _started(record)}
            assert set(started) == {one, two} and sorted(started.values()) == ["0", "1"]
            for job_id in (one, two):
                placement = client.get(f"/api/training/status?job_id={job_id}").json()["placement"]
                assert placement["executor"] == "local" and placement["gpus"] == [started[job_id]]
            system = client.get("/api/system").json()
            assert system["assigned_gpus"] == ["0", "1"]
            freed = started[one]
            _release(server, one)
            wait_status(client, one, {"completed"}, 60)
            _wait_started(record, 3)
            assert _started(record)[-1] == {"job": three, "gpus": freed}  # the GPU that came free
            for job_id in (two, three):
                _release(server, job_id)
                wait_status(client, job_id, {"completed"}, 60)
    finally:
        server.stop()
