"""The server with the real job runner plugged in (the default): jobs really run, over real HTTP.

The runner's own behaviour is tested in tests/runner/; here we check the seam: a job created through
the API reaches the runner, its progress shows up in the job endpoints, and cancel goes through.
"""

from __future__ import annotations

import httpx

from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID
from tests.server.helpers import committed_dataset, jpeg_bytes
from tests.support.jobs import wait_status

WAIT_S = 90.0


def wait_for_status(client: httpx.Client, job_id: str, wanted: set[str]) -> dict:
    return wait_status(client, job_id, wanted, timeout=WAIT_S)


def start_job(client: httpx.Client, total_steps: int) -> dict:
    dataset = committed_dataset(client, [jpeg_bytes(48, 48, seed=seed) for seed in range(4)])
    response = client.post("/api/training/jobs", json={
        "name": "real run", "dataset_id": dataset["id"], "base_model": BUILTIN_BASE_MODEL_ID,
        "total_steps": total_steps, "params": {"resolution": 8, "batch_size": 4}})
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    return response.json()


def test_created_job_runs_to_completion(server):
    with server.client() as client:
        job = start_job(client, total_steps=20)
        done = wait_for_status(client, job["id"], {"completed", "failed", "cancelled"})
        assert done["status"] == "completed", (done, server.log_tail())
        assert done["progress"] == 100 and done["currentStep"] == 20 and done["startedAt"] and done["finishedAt"]
        points = client.get(f"/api/training/jobs/{job['id']}/metrics").json()
        assert points and points[-1]["step"] == 20
        assert client.get(f"/api/training/jobs/{job['id']}/logs").json()["size"] >= 0
        assert job["id"] not in {j["id"] for j in client.get("/api/training/jobs").json()}
        assert job["id"] in {j["id"] for j in client.get("/api/training/jobs", params={"status": "completed"}).json()}
        model = next(m for m in client.get("/api/models").json() if m["id"] == done["modelId"])
        assert model["status"] == "ready" and model["training_job_id"] == job["id"]
        checkpoint = client.get(f"/api/models/{model['id']}/checkpoint")
        assert checkpoint.status_code == 200 and len(checkpoint.content) == model["size_bytes"]
        samples = client.get(f"/api/models/{model['id']}/samples")
        assert samples.status_code == 200 and samples.content.startswith(b"\x89PNG")


def test_cancel_reaches_the_runner(server):
    with server.client() as client:
        job = start_job(client, total_steps=10_000_000)
        wait_for_status(client, job["id"], {"running"})
        assert client.post(f"/api/training/jobs/{job['id']}/cancel").json() == {"success": True}
        final = wait_for_status(client, job["id"], {"cancelled", "failed", "completed"})
        assert final["status"] == "cancelled", (final, server.log_tail())
        assert client.post(f"/api/training/jobs/{job['id']}/cancel").json() == {"success": True}
