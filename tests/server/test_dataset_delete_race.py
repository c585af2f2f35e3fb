"""Deleting a dataset while a job is created on it, against a real server: exactly one of the two wins.

The delete checks for active jobs and removes the rows in one transaction, and the job's insert checks
that its dataset is still there and active in its own: so either the job exists (the delete answers 409
`dataset_in_use` and the dataset stays whole) or the dataset is gone (the create answers 404), never both
successes, which used to leave a job training on a missing folder.
"""

from __future__ import annotations

import threading

import httpx

from tests.server.helpers import assert_error, committed_dataset, png_bytes
from tests.support.jobs import create_job
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID

ROUNDS = 100


def test_delete_of_a_dataset_with_an_active_job_is_409_with_the_jobs_name(pending_server):
    with pending_server.client() as client:
        dataset = committed_dataset(client, name="holiday photos")
        create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, name="first portrait run")
        body = assert_error(client.delete(f"/api/datasets/{dataset['id']}"), 409, "dataset_in_use")
        message = body["error"]["message"]
        assert "'holiday photos'" in message and "'first portrait run'" in message and "cancel" in message
        assert client.get(f"/api/datasets/{dataset['id']}").json()["status"] == "active"
        assert len(client.get(f"/api/datasets/{dataset['id']}/files").json()) == 1


def _race(url: str, headers: dict[str, str], dataset_id: str) -> tuple[httpx.Response, httpx.Response]:
    """POST the job and DELETE the dataset at the same moment, from two threads with their own connections."""
    start = threading.Barrier(2)
    answers: dict[str, httpx.Response] = {}

    def create() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            start.wait()
            answers["create"] = http.post("/api/training/jobs", json={
                "name": "racer", "dataset_id": dataset_id, "base_model": BUILTIN_BASE_MODEL_ID,
                "total_steps": 5, "params": {}})

    def delete() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            start.wait()
            answers["delete"] = http.delete(f"/api/datasets/{dataset_id}")

    threads = [threading.Thread(target=create), threading.Thread(target=delete)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return answers["create"], answers["delete"]


def test_create_job_racing_delete_dataset_never_both_succeed(pending_server):
    image = png_bytes(color=(1, 2, 3))
    outcomes = {"job won": 0, "delete won": 0}
    with pending_server.client() as client:
        for round_number in range(ROUNDS):
            dataset = committed_dataset(client, [image], name=f"round {round_number}")
            created, deleted = _race(pending_server.url, pending_server.headers, dataset["id"])
            if created.status_code == 201:
                assert_error(deleted, 409, "dataset_in_use")
                job = created.json()
                assert job["datasetId"] == dataset["id"]
                # The job's dataset is still whole: the row, its file and its layout.
                assert client.get(f"/api/datasets/{dataset['id']}").json()["status"] == "active"
                assert len(client.get(f"/api/datasets/{dataset['id']}/files").json()) == 1
                assert (pending_server.data_dir / "datasets" / dataset["id"] / "imagefolder").is_dir()
                outcomes["job won"] += 1
            else:
                assert deleted.status_code == 200, deleted.text
                assert_error(created, 404, "dataset_not_found")
                assert_error(client.get(f"/api/datasets/{dataset['id']}"), 404, "dataset_not_found")
                outcomes["delete won"] += 1
        # Every job that was created points at a dataset that exists.
        jobs = client.get("/api/training/jobs", params={"status": "all", "limit": 1000}).json()
        existing = {dataset["id"] for dataset in client.get("/api/datasets").json()}
        assert len(jobs) == outcomes["job won"]
        assert all(job["datasetId"] in existing for job in jobs)
    assert sum(outcomes.values()) == ROUNDS
