"""Job endpoints against a real server process: create, list, status, cancel, metrics, logs, restart rules."""

from __future__ import annotations

import httpx
import pytest

from training_studio.contract import TrainingJob, format_timestamp, utc_now
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID
from training_studio.server.executor import INTERRUPTED_JOB_ERROR
from training_studio.server.storage import Storage
from tests.server.helpers import assert_error, committed_dataset, create_dataset


def new_job(client: httpx.Client, dataset_id: str, name: str = "job", **overrides) -> httpx.Response:
    body = {"name": name, "dataset_id": dataset_id, "base_model": BUILTIN_BASE_MODEL_ID, "total_steps": 100,
            "params": {}}
    body.update(overrides)
    return client.post("/api/training/jobs", json=body)


@pytest.fixture
def server(pending_server):
    # Job states are asserted exactly here, so no runner may move them; test_runner_integration.py
    # covers the server with the real runner plugged in.
    return pending_server


@pytest.fixture
def client(server):
    with server.client() as http:
        yield http


@pytest.fixture
def dataset(client):
    return committed_dataset(client)


def test_base_models_list_the_builtin_trainer_with_its_schema(client):
    models = client.get("/api/training/base-models").json()
    builtin = next(model for model in models if model["id"] == BUILTIN_BASE_MODEL_ID)
    names = {spec["name"] for spec in builtin["params_schema"]}
    assert {"resolution", "learning_rate", "batch_size"} <= names
    for spec in builtin["params_schema"]:
        assert spec["type"] in {"int", "float", "str", "bool", "choice"}
        assert "default" in spec and "description" in spec


def test_created_job_is_pending_with_defaults_filled(client, dataset):
    response = new_job(client, dataset["id"], name="first", params={"resolution": 16})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "pending"
    assert job["progress"] == 0
    assert job["currentStep"] is None and job["currentLoss"] is None and job["startedAt"] is None
    assert job["datasetId"] == dataset["id"] and job["baseModel"] == BUILTIN_BASE_MODEL_ID
    assert job["totalSteps"] == 100
    assert job["params"]["resolution"] == 16
    assert job["params"]["learning_rate"] == 0.01  # default filled in
    assert job["createdAt"].endswith("Z")
    fetched = client.get("/api/training/status", params={"job_id": job["id"]}).json()
    assert fetched == job


def test_create_job_rejections(client, dataset):
    assert_error(new_job(client, "no-such-dataset"), 404, "dataset_not_found")
    draft = create_dataset(client, "draft")
    assert_error(new_job(client, draft["id"]), 409, "dataset_not_active")
    assert_error(new_job(client, dataset["id"], base_model="sdxl-imaginary"), 400, "unknown_base_model")
    body = assert_error(new_job(client, dataset["id"], params={"resolution": 5000}), 422, "validation_error")
    assert "resolution" in body["error"]["message"]
    body = assert_error(new_job(client, dataset["id"], params={"typo_rate": 1}), 422, "validation_error")
    assert "typo_rate" in body["error"]["message"]
    assert_error(new_job(client, dataset["id"], name=""), 422, "validation_error")
    assert_error(new_job(client, dataset["id"], name="   "), 422, "validation_error")
    assert_error(new_job(client, dataset["id"], total_steps=0), 422, "validation_error")
    assert_error(new_job(client, dataset["id"], total_steps="many"), 422, "validation_error")
    for field in ("dataset_id", "base_model"):  # lone surrogates: valid JSON, not storable text
        raw = ('{"name": "x", "dataset_id": "%s", "base_model": "%s", "total_steps": 3}'
               % (("\\ud800", BUILTIN_BASE_MODEL_ID) if field == "dataset_id" else (dataset["id"], "\\udc80")))
        response = client.post("/api/training/jobs", content=raw.encode(), headers={"Content-Type": "application/json"})
        assert_error(response, 422, "validation_error")
    # nothing half-created
    assert client.get("/api/training/jobs", params={"status": "all"}).json() == []


def test_active_list_is_oldest_first_and_history_newest_first_with_paging(client, dataset):
    ids = [new_job(client, dataset["id"], name=f"job{i}").json()["id"] for i in range(5)]
    active = client.get("/api/training/jobs", params={"status": "active"}).json()
    assert [job["id"] for job in active] == ids
    assert [job["id"] for job in client.get("/api/training/jobs").json()] == ids
    assert client.post(f"/api/training/jobs/{ids[1]}/cancel").json() == {"success": True}

    history = client.get("/api/training/jobs", params={"status": "all"}).json()
    assert [job["id"] for job in history] == ids[::-1]
    page1 = client.get("/api/training/jobs", params={"status": "all", "limit": 2}).json()
    assert [job["id"] for job in page1] == [ids[4], ids[3]]
    page2 = client.get("/api/training/jobs",
                       params={"status": "all", "limit": 2, "before": page1[-1]["createdAt"]}).json()
    assert [job["id"] for job in page2] == [ids[2], ids[1]]
    cancelled = client.get("/api/training/jobs", params={"status": "cancelled"}).json()
    assert [job["id"] for job in cancelled] == [ids[1]]
    both = client.get("/api/training/jobs", params={"status": "cancelled,pending", "limit": 10}).json()
    assert len(both) == 5
    assert ids[1] not in [job["id"] for job in client.get("/api/training/jobs").json()]
    # unknown query parameters are ignored; bad values are validation errors
    assert client.get("/api/training/jobs", params={"whatever": "1"}).status_code == 200
    assert_error(client.get("/api/training/jobs", params={"status": "exploded"}), 422, "validation_error")
    assert_error(client.get("/api/training/jobs", params={"status": "all", "limit": 0}), 422, "validation_error")
    assert_error(client.get("/api/training/jobs", params={"status": "all", "limit": 1001}), 422, "validation_error")
    assert_error(client.get("/api/training/jobs", params={"status": "all", "before": "yesterday"}),
                 422, "validation_error")


def test_status_and_cancel_of_unknown_job_are_404(client):
    assert_error(client.get("/api/training/status", params={"job_id": "nope"}), 404, "job_not_found")
    assert_error(client.get("/api/training/status"), 422, "validation_error")
    assert_error(client.post("/api/training/jobs/nope/cancel"), 404, "job_not_found")
    assert_error(client.get("/api/training/jobs/nope/metrics"), 404, "job_not_found")
    assert_error(client.get("/api/training/jobs/nope/logs"), 404, "job_not_found")


def test_cancel_is_idempotent_and_refused_for_finished_jobs(server, client, dataset):
    job = new_job(client, dataset["id"]).json()
    assert client.post(f"/api/training/jobs/{job['id']}/cancel").json() == {"success": True}
    status = client.get("/api/training/status", params={"job_id": job["id"]}).json()
    assert status["status"] == "cancelled" and status["finishedAt"]
    assert client.post(f"/api/training/jobs/{job['id']}/cancel").json() == {"success": True}

    finished = [new_job(client, dataset["id"], name=name).json()["id"] for name in ("done", "broken")]
    storage = Storage(server.data_dir)  # the runner's view of the same database
    try:
        storage.set_job_status(finished[0], "running")
        storage.set_job_status(finished[0], "completed")
        storage.set_job_status(finished[1], "failed", error="trainer exploded")
    finally:
        storage.close()
    for job_id in finished:
        assert_error(client.post(f"/api/training/jobs/{job_id}/cancel"), 409, "job_finished")
    done = client.get("/api/training/status", params={"job_id": finished[0]}).json()
    assert done["progress"] == 100 and done["status"] == "completed"


def test_metrics_since_step_and_stride(server, client, dataset):
    job = new_job(client, dataset["id"], total_steps=20).json()
    storage = Storage(server.data_dir)
    try:
        storage.set_job_status(job["id"], "running")
        now = format_timestamp(utc_now())
        storage.record_progress([(job["id"], step, 20, 1.0 / step, now) for step in range(1, 11)])
    finally:
        storage.close()
    points = client.get(f"/api/training/jobs/{job['id']}/metrics").json()
    assert [p["step"] for p in points] == list(range(1, 11))
    assert points[1]["loss"] == pytest.approx(0.5)
    assert points[0]["time"].endswith("Z")
    assert [p["step"] for p in client.get(f"/api/training/jobs/{job['id']}/metrics",
                                          params={"since_step": 7}).json()] == [8, 9, 10]
    assert [p["step"] for p in client.get(f"/api/training/jobs/{job['id']}/metrics",
                                          params={"stride": 4}).json()] == [1, 5, 9, 10]
    live = TrainingJob.model_validate(client.get("/api/training/status", params={"job_id": job["id"]}).json())
    assert live.current_step == 10 and live.total_steps == 20
    assert live.current_loss == pytest.approx(0.1)
    assert live.progress == pytest.approx(50.0)
    assert_error(client.get(f"/api/training/jobs/{job['id']}/metrics", params={"stride": 0}), 422,
                 "validation_error")
    assert_error(client.get(f"/api/training/jobs/{job['id']}/metrics", params={"since_step": 2 ** 70}), 422,
                 "validation_error")


def test_progress_stays_below_100_until_completed(server, client, dataset):
    job = new_job(client, dataset["id"], total_steps=10).json()
    storage = Storage(server.data_dir)
    try:
        storage.set_job_status(job["id"], "running")
        storage.record_progress([(job["id"], 10, 10, 0.2, format_timestamp(utc_now()))])
        assert storage.get_job(job["id"]).progress < 100
        storage.set_job_status(job["id"], "completed")
        assert storage.get_job(job["id"]).progress == 100
        # terminal is final: later updates are refused and change nothing
        assert storage.set_job_status(job["id"], "running") is None
        storage.record_progress([(job["id"], 11, 10, 9.9, format_timestamp(utc_now()))])
        assert storage.get_job(job["id"]).current_loss == pytest.approx(0.2)
    finally:
        storage.close()


def test_logs_are_chunked_without_cutting_characters(server, client, dataset):
    job = new_job(client, dataset["id"]).json()
    empty = client.get(f"/api/training/jobs/{job['id']}/logs").json()
    assert empty == {"text": "", "next_offset": 0, "size": 0, "start": 0}

    # 'é' is two bytes; place one across the 64 KiB boundary, plus an invalid byte.
    content = b"a" * (64 * 1024 - 1) + "é".encode() + b"tail \xff end\n"
    log_path = server.data_dir / "logs" / f"{job['id']}.log"
    log_path.write_bytes(content)
    first = client.get(f"/api/training/jobs/{job['id']}/logs").json()
    assert first["size"] == len(content)
    assert first["next_offset"] == 64 * 1024 - 1
    assert first["text"] == "a" * (64 * 1024 - 1)
    second = client.get(f"/api/training/jobs/{job['id']}/logs", params={"offset": first["next_offset"]}).json()
    assert second["text"] == "étail \ufffd end\n"
    assert second["next_offset"] == len(content)
    past = client.get(f"/api/training/jobs/{job['id']}/logs", params={"offset": 10 ** 9}).json()
    assert past == {"text": "", "next_offset": len(content), "size": len(content), "start": len(content)}
    # a negative offset reads the end (issue 14), at most 1 MiB of it
    assert_error(client.get(f"/api/training/jobs/{job['id']}/logs", params={"offset": -(2 * 1024 * 1024)}), 422,
                 "validation_error")


def test_jobs_survive_restart_and_running_ones_fail(server, client, dataset):
    keep = new_job(client, dataset["id"], name="waiting").json()
    interrupted = new_job(client, dataset["id"], name="interrupted").json()
    queued = new_job(client, dataset["id"], name="queued").json()
    server.stop()
    storage = Storage(server.data_dir)
    try:
        storage.set_job_status(interrupted["id"], "running")
        storage.set_job_status(queued["id"], "queued")
    finally:
        storage.close()
    server.start()
    with server.client() as fresh:
        kept = fresh.get("/api/training/status", params={"job_id": keep["id"]}).json()
        assert kept["status"] == "pending" and kept["name"] == "waiting" and kept["params"] == keep["params"]
        failed = fresh.get("/api/training/status", params={"job_id": interrupted["id"]}).json()
        assert failed["status"] == "failed"
        assert failed["error"] == INTERRUPTED_JOB_ERROR
        assert failed["finishedAt"]
        requeued = fresh.get("/api/training/status", params={"job_id": queued["id"]}).json()
        assert requeued["status"] in ("pending", "queued")
        assert fresh.get(f"/api/datasets/{dataset['id']}").json()["status"] == "active"


def test_restart_kills_a_leftover_trainer_but_never_a_stranger(server, client, dataset):
    import os
    import subprocess
    import sys

    ours = new_job(client, dataset["id"], name="ours").json()
    stranger_job = new_job(client, dataset["id"], name="pid reused").json()
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    trainer = subprocess.Popen(sleeper, start_new_session=True,
                               env={**os.environ, "TRAINING_STUDIO_JOB_ID": ours["id"]})
    stranger = subprocess.Popen(sleeper, start_new_session=True,
                                env={k: v for k, v in os.environ.items() if k != "TRAINING_STUDIO_JOB_ID"})
    try:
        server.stop()
        storage = Storage(server.data_dir)
        try:
            for job, proc in ((ours, trainer), (stranger_job, stranger)):
                storage.set_job_status(job["id"], "running")
                storage.set_job_process(job["id"], proc.pid, proc.pid)
        finally:
            storage.close()
        server.start()
        assert trainer.wait(timeout=20) != 0  # killed by the restart rule
        assert stranger.poll() is None  # a process that is not the job's trainer is left alone
        with server.client() as fresh:
            for job in (ours, stranger_job):
                state = fresh.get("/api/training/status", params={"job_id": job["id"]}).json()
                assert state["status"] == "failed" and state["error"] == INTERRUPTED_JOB_ERROR
    finally:
        for proc in (trainer, stranger):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
