"""Schemathesis against the real server's /api/openapi.json, with the bearer token: generated valid and
invalid requests for every operation must get no 5xx answer and no answer that breaks the document
(undeclared status codes, wrong content type, bodies that do not match their declared schema), every
request the document calls valid must be accepted (or be a 404/409 about the state of things, never a
400/422 for its shape), and a method the document does not list must get 405 with an `Allow` header that
names exactly the documented methods.

Examples per operation are capped (fewer under CI=true) so the whole run stays within seconds.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from PIL import Image
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.checks import allow_header_conformance, positive_data_acceptance, unsupported_method

from tests.reliability.helpers import create_job
from tests.server.helpers import committed_dataset, png_bytes, sha256_of
from tests.support.server import ServerProcess
from training_studio.server.app import create_app
from training_studio.server.config import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_BYTES, ServerConfig
from training_studio.server.storage import Storage

EXAMPLES_PER_OPERATION = 25 if os.environ.get("CI", "").lower() == "true" else 60
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          positive_data_acceptance, unsupported_method, allow_header_conformance]


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory):
    """One real server for every operation (starting one per operation would dominate the run), with a
    committed dataset, a pending job on it and a ready model, so list answers carry real rows to validate
    and the by-id operations are fuzzed past their 404. DELETE and cancel get a second set of the same, so
    that they too run on real rows without destroying what the other operations use."""
    server = ServerProcess(tmp_path_factory.mktemp("fuzz") / "data", extra_args=["--no-runner"]).start()
    server.known_ids = _real_rows(server, seed=0)
    server.disposable_ids = _real_rows(server, seed=1)
    yield server
    server.stop()
    log = (server.data_dir / "logs" / "server.log").read_text(errors="replace")
    assert "unexpected error on" not in log and "Exception in ASGI application" not in log, log[-3000:]


def _real_rows(server: ServerProcess, seed: int) -> dict[str, str]:
    with server.client() as client:
        images = [png_bytes(color=(9, seed, n)) for n in range(2)]
        dataset = committed_dataset(client, images)
        job = create_job(client, dataset["id"], total_steps=5)
    # Model rows are the runner's to make (it does not run here): made through Storage, as the runner does,
    # with the checkpoint and sample sheet in the job's folder.
    storage = Storage(server.data_dir)
    try:
        folder = storage.job_output_dir(job["id"])
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint = folder / "model.npz"
        checkpoint.write_bytes(b"weights" * 100)
        (folder / "samples.png").write_bytes(png_bytes(16, 16))
        model = storage.create_model(f"model {seed}", job["baseModel"], job["id"], path=checkpoint)
        storage.update_model(model.id, status="ready", size_bytes=checkpoint.stat().st_size)
    finally:
        storage.close()
    return {"dataset_id": dataset["id"], "job_id": job["id"], "sha256": sha256_of(images[0]),
            "model_id": model.id}


def served_document() -> dict:
    """The server's OpenAPI document, built in-process at collection time: schemathesis makes one test per
    operation from it before any server runs (its fixture-based loader does not work with pytest 9).
    `test_the_served_document_is_the_one_fuzzed` checks the live /api/openapi.json is this document."""
    with tempfile.TemporaryDirectory() as data_dir:
        config = ServerConfig(data_dir=Path(data_dir), host="127.0.0.1", port=0, token="unused",
                              token_generated=False, allow_remote=False, max_upload_bytes=DEFAULT_MAX_UPLOAD_BYTES,
                              max_pixels=DEFAULT_MAX_PIXELS, concurrency=1, cancel_grace_s=1.0, run_jobs=False)
        storage = Storage(config.data_dir)
        pixel_limit = Image.MAX_IMAGE_PIXELS  # create_app sets Pillow's process-wide limit: keep ours
        try:
            return create_app(config, storage=storage).openapi()
        finally:
            storage.close()
            Image.MAX_IMAGE_PIXELS = pixel_limit


DOCUMENT = served_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# GET /api/training/events never ends by design: judge each answer on its first event (the stream always opens
# with hello, reset or the catch-up at once), instead of reading until the request timeout.
schema.config.max_stream_events = 1


def test_the_served_document_is_the_one_fuzzed(fuzzed_server):
    served = httpx.get(f"{fuzzed_server.url}/api/openapi.json", headers=fuzzed_server.headers)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_documented_contract(case, fuzzed_server):
    case.call_and_validate(base_url=fuzzed_server.url, headers=fuzzed_server.headers, checks=CHECKS,
                           timeout=30)


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_on_real_ids_answers_within_its_documented_contract(case, fuzzed_server):
    destructive = case.method.upper() == "DELETE" or case.path.endswith("/cancel")
    real_ids = fuzzed_server.disposable_ids if destructive else fuzzed_server.known_ids
    for name in list(case.path_parameters or {}):
        if name in real_ids:
            case.path_parameters[name] = real_ids[name]
    case.call_and_validate(base_url=fuzzed_server.url, headers=fuzzed_server.headers, checks=CHECKS,
                           timeout=30)
