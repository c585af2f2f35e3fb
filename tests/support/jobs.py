"""Training jobs over real HTTP, shared by the runner and reliability tests: create one, read its status,
wait until it reaches a state. `wait_job` checks every status code and raises at its timeout, so a broken
route fails where it broke; `wait_status` returns what it last saw, for tests that assert on it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def create_job(client: httpx.Client, dataset_id: str, base_model: str, total_steps: int = 10,
               params: dict | None = None, name: str = "job") -> dict:
    response = client.post("/api/training/jobs", json={"name": name, "dataset_id": dataset_id,
                                                       "base_model": base_model, "total_steps": total_steps,
                                                       "params": params or {}})
    assert response.status_code == 201, response.text
    return response.json()


def job_status(client: httpx.Client, job_id: str) -> dict:
    response = client.get("/api/training/status", params={"job_id": job_id})
    assert response.status_code == 200, response.text
    return response.json()


def wait_job(client: httpx.Client, job_id: str, predicate: Callable[[dict], bool], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = job_status(client, job_id)
        if predicate(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job never reached the expected state; last seen: {job}")
        time.sleep(0.05)


def wait_status(http: httpx.Client, job_id: str, statuses: set[str], timeout: float = 30.0) -> dict[str, Any]:
    """The job once its status is one of `statuses`, or as last seen at the timeout: the caller asserts."""
    deadline = time.monotonic() + timeout
    while True:
        job = http.get("/api/training/status", params={"job_id": job_id}).json()
        if job["status"] in statuses or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def finished(job: dict) -> bool:
    return job["status"] in ("completed", "failed", "cancelled")


def full_log(client: httpx.Client, job_id: str) -> str:
    """A job's whole log, read through /logs chunk by chunk."""
    text, offset = "", 0
    while True:
        chunk = client.get(f"/api/training/jobs/{job_id}/logs", params={"offset": offset}).json()
        text += chunk["text"]
        if chunk["next_offset"] >= chunk["size"]:
            return text
        offset = chunk["next_offset"]


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy (returned); AssertionError naming `what` at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
