"""Fixtures for the Datasets/Models panel tests: stores on a real server subprocess, and shortcuts to make
datasets and models there over HTTP (real PNG files made with Pillow)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from training_studio.client import ApiClient
from training_studio.ui.datasets.polling import PollingStore
from training_studio.ui.datasets.store import DatasetStore
from training_studio.ui.models.store import ModelStore
from tests.support.gui import server_client
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job, wait_status

__all__ = ["api_client", "http", "dataset_store", "model_store", "dataset_store_on_request", "model_store_on_request",
           "make_dataset", "make_job", "wait_status", "trained_model"]


@pytest.fixture
def api_client(server, harness) -> ApiClient:
    return server_client(server, harness)


@pytest.fixture
def http(server):
    with sync_client(server.url, server.token) as client:
        yield client


def _running(store: PollingStore, harness) -> Iterator[PollingStore]:
    """Body of a store fixture: the store, then shut down and drained so no task outlives the test."""
    yield store
    store.shutdown()
    harness.run(store.wait_idle())


@pytest.fixture
def dataset_store(api_client, harness):
    yield from _running(DatasetStore(api_client, interval=0.3), harness)


@pytest.fixture
def model_store(api_client, harness):
    yield from _running(ModelStore(api_client, interval=0.3), harness)


# Stores whose timer never fires within a test (10 minutes): they refresh on their panel's first show and when
# asked, so a test sees exactly the refreshes it caused.
ON_REQUEST_INTERVAL_S = 600


@pytest.fixture
def dataset_store_on_request(api_client, harness):
    yield from _running(DatasetStore(api_client, interval=ON_REQUEST_INTERVAL_S), harness)


@pytest.fixture
def model_store_on_request(api_client, harness):
    yield from _running(ModelStore(api_client, interval=ON_REQUEST_INTERVAL_S), harness)


def trained_model(http: httpx.Client, name: str = "tiny", steps: int = 5) -> dict:
    """Train a tiny model with the built-in trainer and return the server's TrainedModel for it."""
    dataset_id = make_dataset(http, f"{name}-data", images=4)
    job = make_job(http, dataset_id, name, steps, resolution=8, batch_size=4)
    final = wait_status(http, job["id"], {"completed", "failed", "cancelled"}, timeout=60)
    assert final["status"] == "completed", final
    models = [m for m in http.get("/api/models").json() if m["training_job_id"] == job["id"]]
    assert len(models) == 1, models
    return models[0]
