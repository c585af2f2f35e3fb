"""The routers a starting server loads after its first answer (server/route_loading.py): no request ever
sees one missing, whether it comes before they are in (it waits) or after (the background load)."""

from __future__ import annotations

import concurrent.futures
import time

import httpx

from tests.server.helpers import assert_error

# Long enough that every request of these tests comes before the background load: each must bring the
# routers in itself (the server log says which way they came).
HELD_BACK = {"TRAINING_STUDIO_DEFERRED_ROUTES_DELAY_S": "600"}
# One request per deferred router (and a 404 and a 405 that only the full route list can tell apart).
FIRST_ASKS = [
    ("GET", "/api/datasets", 200),
    ("GET", "/api/models", 200),
    ("GET", "/api/system", 200),
    ("GET", "/api/training/templates", 200),
    ("GET", "/api/captioners", 200),
    ("GET", "/api/training/jobs/job-unknown/samples", 404),
    ("GET", "/api/no-such-thing", 404),
    ("PUT", "/api/models", 405),
]


def _loaded_lines(server) -> list[str]:
    log = server.data_dir / "logs" / "server.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line for line in text.splitlines() if "deferred routers loaded" in line]


def test_requests_before_the_background_load_wait_for_the_routers_and_get_their_real_answers(server_factory):
    server = server_factory("early", extra_args=["--no-runner"], env=HELD_BACK)
    assert _loaded_lines(server) == []  # the first answer (health, by the fixture) came without them
    with concurrent.futures.ThreadPoolExecutor(len(FIRST_ASKS)) as pool:
        def ask(method: str, path: str) -> httpx.Response:
            return httpx.request(method, server.url + path, headers=server.headers, timeout=30)

        answers = list(pool.map(lambda entry: ask(entry[0], entry[1]), FIRST_ASKS))
    for (method, path, status), response in zip(FIRST_ASKS, answers):
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
    assert answers[0].json() == []
    assert_error(answers[5], 404, "job_not_found")
    assert_error(answers[6], 404, "not_found")
    # The 405's Allow names the methods of every router's routes on the path, the deferred one included.
    assert set(answers[7].headers["allow"].split(", ")) >= {"GET"}
    lines = _loaded_lines(server)
    assert len(lines) == 1 and "on request" in lines[0], lines  # loaded once, for all those requests


def test_the_openapi_document_lists_every_router_from_the_first_moment(server_factory):
    server = server_factory("document", extra_args=["--no-runner"], env=HELD_BACK)
    with server.client() as client:
        paths = client.get("/api/openapi.json").json()["paths"]
    for path in ("/api/health", "/api/training/jobs", "/api/training/events", "/api/datasets",
                 "/api/models/{model_id}/checkpoints", "/api/training/jobs/{job_id}/samples", "/api/system",
                 "/api/training/templates"):
        assert path in paths, sorted(paths)


def test_unauthorised_requests_do_not_bring_the_routers_in(server_factory):
    server = server_factory("guarded", extra_args=["--no-runner"], env=HELD_BACK)
    response = httpx.get(server.url + "/api/datasets", timeout=30)
    assert_error(response, 401, "unauthorized")
    with server.client() as client:
        assert client.get("/api/training/jobs").status_code == 200  # a first router's answer: no load needed
        assert client.get("/api/datasets").status_code == 200
    lines = _loaded_lines(server)
    assert len(lines) == 1 and "on request" in lines[0], lines


def test_without_requests_the_routers_come_in_the_background(server_factory):
    server = server_factory("background", extra_args=["--no-runner"],
                            env={"TRAINING_STUDIO_DEFERRED_ROUTES_DELAY_S": "0.2"})
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not lines:  # the server's log line is the signal
        lines = _loaded_lines(server)
        time.sleep(0.05)
    assert len(lines) == 1 and "in the background" in lines[0], lines
    with server.client() as client:
        assert client.get("/api/datasets").json() == []
