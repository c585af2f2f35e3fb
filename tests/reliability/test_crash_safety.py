"""SIGKILL of the real server process at the worst moments, then a restart on the same data dir.

The server is killed mid-body of a large upload and while a job trains (and again at random moments
of mixed activity); after each restart the data dir must be consistent (see helpers.py), the upload
must be resumable (ask /files, PUT the rest, commit) and no job may be left running or queued forever.
A training run never pays for the crash: its trainer outlives the server, the restarted server
re-attaches and the job ends as it would have (every step recorded once, every log line once).
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx

from tests.reliability.helpers import (
    assert_data_dir_consistent,
    create_job,
    db_rows,
    finished,
    integrity_check,
    job_status,
    noise_png,
    pid_alive,
    wait_job,
)
from tests.server.helpers import committed_dataset, create_dataset, png_bytes, sha256_of, upload
from tests.support.jobs import full_log, wait_for
from training_studio.server.executor import INTERRUPTED_JOB_ERROR


def start_partial_upload(url: str, token: str, dataset_id: str, data: bytes, sent: int) -> socket.socket:
    """Send the request head and the first `sent` bytes of a PUT whose Content-Length is the whole file."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    head = (f"PUT /api/datasets/{dataset_id}/files/{sha256_of(data)}?filename=big.png HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    sock.sendall(head + data[:sent])
    return sock


def test_sigkill_mid_upload_then_restart_resumes_the_upload(server_factory):
    server = server_factory("data", extra_args=["--no-runner"])
    small = [png_bytes(color=(seed, 90, 20)) for seed in range(2)]
    big = noise_png(900, 3)
    assert len(big) > 1_000_000
    with server.client() as client:
        dataset = create_dataset(client)
        for index, data in enumerate(small):
            assert upload(client, dataset["id"], data, f"small{index}.png").status_code == 201
        sock = start_partial_upload(server.url, server.token, dataset["id"], big, len(big) // 2)
        tmp_dir = server.data_dir / "tmp"
        # The server is streaming the body into its temp dir: kill it right there.
        wait_for(lambda: [p for p in tmp_dir.iterdir() if p.stat().st_size > 0], timeout=20.0,
                 what="the upload's temp file")
        server.kill()
        sock.close()
    assert [p for p in tmp_dir.iterdir()], "the crash should have left the partial upload behind"
    assert integrity_check(server.data_dir / "studio.db") == "ok"

    server.start()
    assert_data_dir_consistent(server.data_dir)  # the temp file is swept at start
    with server.client() as client:
        state = client.get(f"/api/datasets/{dataset['id']}").json()
        assert state["status"] == "processing"  # never active before commit
        stored = {entry["sha256"] for entry in client.get(f"/api/datasets/{dataset['id']}/files").json()}
        assert stored == {sha256_of(data) for data in small}
        for data in [*small, big]:  # resume: the client PUTs what /files does not list (re-PUT is harmless)
            expected = 200 if sha256_of(data) in stored else 201
            assert upload(client, dataset["id"], data, "again.png").status_code == expected
        committed = client.post(f"/api/datasets/{dataset['id']}/commit")
        assert committed.status_code == 200, committed.text
        assert committed.json()["status"] == "active" and committed.json()["image_count"] == 3
    assert_data_dir_consistent(server.data_dir)


def test_sigkill_mid_training_then_restart_reattaches_and_runs_the_queue(server_factory):
    server = server_factory("data", extra_args=["--cancel-grace", "1"])
    with server.client() as client:
        dataset = committed_dataset(client, [png_bytes(color=(seed * 40, 10, 90)) for seed in range(4)])
        long_job = create_job(client, dataset["id"], total_steps=10_000_000, name="outlives the server")
        queued_job = create_job(client, dataset["id"], total_steps=20, name="waits")
        wait_job(client, long_job["id"], lambda job: (job["currentStep"] or 0) > 5)
        assert job_status(client, queued_job["id"])["status"] == "queued"
    wrapper = trainer_wrapper(server.data_dir, long_job["id"])
    assert pid_alive(wrapper["pid"]) and pid_alive(wrapper["trainer_pid"])

    server.kill()
    assert integrity_check(server.data_dir / "studio.db") == "ok"
    assert pid_alive(wrapper["trainer_pid"]), "kill -9 of the server must not kill the trainer"
    step_at_kill = db_rows(server.data_dir / "studio.db", "SELECT current_step FROM jobs WHERE id = ?",
                           (long_job["id"],))[0]["current_step"]
    server.start()
    with server.client() as client:
        # re-attached: the same trainer goes on reporting to the new server
        wait_job(client, long_job["id"], lambda job: job["status"] == "running"
                 and job["currentStep"] > step_at_kill + 5)
        assert pid_alive(wrapper["trainer_pid"])
        client.post(f"/api/training/jobs/{long_job['id']}/cancel")
        cancelled = wait_job(client, long_job["id"], finished, timeout=30)
        assert cancelled["status"] == "cancelled"
        assert not pid_alive(wrapper["trainer_pid"]) and not pid_alive(wrapper["pid"])
        done = wait_job(client, queued_job["id"], finished)
        assert done["status"] == "completed", done
        assert client.get("/api/training/jobs", params={"status": "active"}).json() == []
        models = {model["training_job_id"]: model for model in client.get("/api/models").json()}
        assert models[queued_job["id"]]["status"] == "ready"
        steps = [point["step"] for point in client.get(f"/api/training/jobs/{long_job['id']}/metrics").json()]
        assert steps == list(range(1, len(steps) + 1)), "no gap and no duplicate across the crash"
    assert_data_dir_consistent(server.data_dir)


def test_sigkill_during_a_builtin_job_costs_it_nothing(server_factory):
    """Killed mid-run, the job completes all the same (re-attached, or finished while no server ran):
    every step's metric once, every log line once, its model ready."""
    total = 3000
    server = server_factory("data", extra_args=["--cancel-grace", "1"])
    with server.client() as client:
        dataset = committed_dataset(client, [png_bytes(color=(seed * 40, 10, 90)) for seed in range(4)])
        job = create_job(client, dataset["id"], total_steps=total, name="crash-proof", resolution=8, batch_size=4)
        wait_job(client, job["id"], lambda state: (state["currentStep"] or 0) > 20)
    server.kill()
    server.start()
    with server.client() as client:
        done = wait_job(client, job["id"], finished, timeout=120)
        log = full_log(client, job["id"])
        assert done["status"] == "completed", (done, log[-2000:])
        steps = [point["step"] for point in client.get(f"/api/training/jobs/{job['id']}/metrics").json()]
        assert steps == list(range(1, total + 1))
        step_lines = [line for line in log.splitlines() if line.startswith('{"step": ')]
        assert [json.loads(line)["step"] for line in step_lines] == list(range(1, total + 1))
        assert log.count("starting: ") == 1 and log.count("the trainer ended") == 1
        model = next(m for m in client.get("/api/models").json() if m["id"] == done["modelId"])
        assert model["status"] == "ready" and model["size_bytes"] > 0
    assert_data_dir_consistent(server.data_dir)


def trainer_wrapper(data_dir, job_id: str) -> dict:
    """What a job's wrapper recorded about itself and its trainer (pids), once the trainer runs."""
    info_path = data_dir / "jobs" / job_id / ".training-studio" / "wrapper.json"
    return wait_for(lambda: (lambda info: info if info and info.get("trainer_pid") else None)(
        json.loads(info_path.read_text()) if info_path.exists() else None), timeout=20.0, what="the wrapper's record")


def _busy_client(url: str, token: str, dataset_id: str, stop: threading.Event, seed: int) -> None:
    """Upload new images to a dataset until told to stop or the server dies under it."""
    rng = random.Random(seed)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        while not stop.is_set():
            try:
                upload(client, dataset_id, noise_png(rng.randrange(64, 400), rng.randrange(10**6)))
            except httpx.HTTPError:
                return


def test_repeated_sigkills_during_mixed_activity_keep_the_data_dir_consistent(server_factory):
    server = server_factory("data", extra_args=["--cancel-grace", "1"])
    rng = random.Random(8)
    for round_number in range(3):
        with server.client() as client:
            committed = committed_dataset(client, [png_bytes(color=(round_number, seed, 7)) for seed in range(3)],
                                          name=f"round {round_number}")
            create_job(client, committed["id"], total_steps=rng.randrange(50, 400), name=f"job {round_number}")
            open_dataset = create_dataset(client, name=f"open {round_number}")
            stop = threading.Event()
            worker = threading.Thread(target=_busy_client, daemon=True,
                                      args=(server.url, server.token, open_dataset["id"], stop, round_number))
            worker.start()
            time.sleep(rng.uniform(0.2, 1.2))
            commit = threading.Thread(target=lambda: _try_commit(server.url, server.token, open_dataset["id"]),
                                      daemon=True)
            commit.start()
            time.sleep(rng.uniform(0.0, 0.2))
            server.kill()
            stop.set()
            worker.join(10)
            commit.join(10)
        server.start()
        assert_data_dir_consistent(server.data_dir)
    with server.client() as client:
        deadline = time.monotonic() + 60
        while client.get("/api/training/jobs", params={"status": "active"}).json():
            assert time.monotonic() < deadline, "jobs stayed active after the restarts"
            time.sleep(0.1)
        for job in client.get("/api/training/jobs", params={"status": "all"}).json():
            assert job["status"] in ("completed", "failed"), job
            if job["status"] == "failed":
                assert job["error"] == INTERRUPTED_JOB_ERROR, job
        for dataset in client.get("/api/datasets").json():
            assert dataset["status"] in ("active", "processing"), dataset
    assert_data_dir_consistent(server.data_dir)


def _try_commit(url: str, token: str, dataset_id: str) -> None:
    try:
        httpx.post(f"{url}/api/datasets/{dataset_id}/commit", headers={"Authorization": f"Bearer {token}"},
                   timeout=10)
    except httpx.HTTPError:
        pass
