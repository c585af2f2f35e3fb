"""Who may talk to the server: every operation in the OpenAPI document (and any unknown path) refuses a
request without the token, or with a wrong one, with 401, except GET /api/health; a request whose Host
is not a loopback name gets 421 everywhere (the DNS-rebinding guard), even with the right token.
Refused requests change nothing."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.reliability.helpers import quiet_server
from tests.server.helpers import assert_error, committed_dataset, png_bytes, sha256_of

PUBLIC = {("GET", "/api/health")}
HTTP = httpx.Client()  # keep-alive across the hundreds of requests below


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """One real server for the whole module: these tests only read, or are refused before anything happens."""
    yield from quiet_server(tmp_path_factory.mktemp("auth") / "data", ["unexpected error on"])


@pytest.fixture(scope="module")
def ops(srv) -> list[tuple[str, str]]:
    """(method, concrete path) for every operation the server documents, ids filled with real ones."""
    with srv.client() as client:
        dataset = committed_dataset(client, [png_bytes()])
        document = client.get("/api/openapi.json").json()
    values = {"dataset_id": dataset["id"], "job_id": "0" * 32, "model_id": "0" * 32, "template_id": "0" * 32,
              "sha256": sha256_of(png_bytes()),
              "name": "sample.png"}
    found = []
    for path, methods in document["paths"].items():
        concrete = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
        found.extend((method.upper(), concrete) for method in methods)
    assert len(found) >= 20  # the document really lists the API
    return found


def send(srv, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """One request with a body fitting the operation (raw bytes for an upload, JSON otherwise)."""
    body: dict = {}
    if method in ("POST", "PUT"):
        body = {"content": png_bytes(), "headers": {**headers, "Content-Type": "application/octet-stream"}} \
            if path.count("/files/") and not path.endswith("/caption") else {"json": {}, "headers": headers}
    else:
        body = {"headers": headers}
    if path.endswith("/events"):
        # The event stream never ends by itself: its status and headers are the answer.
        with HTTP.stream(method, srv.url + path, timeout=10, **body) as response:
            if response.status_code != 200:
                response.read()
            return response
    return HTTP.request(method, srv.url + path, timeout=10, **body)


BAD_CREDENTIALS = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "bearer wrong-token"},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
]


def test_every_endpoint_but_health_needs_the_token(srv, ops):
    variants = [*BAD_CREDENTIALS, {"Authorization": f"Bearer {srv.token}x"}, {"Authorization": f"Bearer {srv.token[:-1]}"},
                {"Authorization": f"Token {srv.token}"}, {"X-Token": srv.token}]
    for method, path in ops:
        for headers in variants:
            response = send(srv, method, path, headers)
            if (method, path) in PUBLIC:
                assert response.status_code == 200, (method, path, headers, response.text)
                continue
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer", (method, path)
        if (method, path) not in PUBLIC and method != "DELETE":  # the right token gets through the guard
            assert send(srv, method, path, srv.headers).status_code not in (401, 421), (method, path)


def test_unknown_paths_answer_401_not_404_to_strangers(srv):
    for method, path in [("GET", "/api/secret"), ("GET", "/"), ("POST", "/api/training/jobs/x/delete"),
                         ("GET", "/api/openapi.json"), ("GET", "/docs"), ("GET", "/api/health/../datasets")]:
        assert_error(HTTP.request(method, srv.url + path), 401, "unauthorized")


def test_refused_requests_change_nothing(srv):
    with srv.client() as client:
        dataset = committed_dataset(client, [png_bytes(color=(1, 2, 3))])
        before = client.get("/api/datasets").json()
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.post(f"{srv.url}/api/datasets", json={"name": "x", "type": "image"}, headers=wrong).status_code == 401
        assert httpx.delete(f"{srv.url}/api/datasets/{dataset['id']}", headers=wrong).status_code == 401
        evil = {**srv.headers, "Host": "evil.example"}
        assert httpx.delete(f"{srv.url}/api/datasets/{dataset['id']}", headers=evil).status_code == 421
        assert client.get("/api/datasets").json() == before


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "localhost.evil.example",
                                  "evil.example:127.0.0.1", "[::ffff:7f00:1]:80", "10.0.0.1", "0.0.0.0", "",
                                  "localhost:80:80", "127.0.0.1@evil.example"])
def test_a_foreign_host_header_gets_421_everywhere(srv, ops, host):
    for method, path in ops if host == "evil.example" else [("GET", "/api/health"), ("GET", "/api/datasets")]:
        response = send(srv, method, path, {**srv.headers, "Host": host})
        assert_error(response, 421, "bad_host")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "LOCALHOST:1234", "127.0.0.2"])
def test_loopback_host_names_are_served(srv, host):
    response = httpx.get(f"{srv.url}/api/datasets", headers={**srv.headers, "Host": host})
    assert response.status_code == 200, response.text
