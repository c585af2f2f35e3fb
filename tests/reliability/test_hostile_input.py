"""Hostile input to the real server: path traversal in ids, hashes and file names; oversized headers and
URLs; huge and deeply nested JSON; invalid UTF-8 in bodies, paths, query strings and headers.

Each must get a clear 4xx (the contract's error body wherever the request reached the app), never a 5xx,
never a file outside the data dir, never a file's content served for the wrong name; and the server
stays healthy throughout (the module checks its log for the catch-all handler at the end).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.reliability.helpers import quiet_server
from tests.server.helpers import (
    assert_error, committed_dataset, create_dataset, png_bytes, sha256_of, upload, wait_spare_ready)
from training_studio.server.auth import MAX_JSON_BODY_BYTES


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    yield from quiet_server(tmp_path_factory.mktemp("hostile") / "data",
                            ["unexpected error on", "Exception in ASGI application"])


@pytest.fixture(scope="module")
def client(srv):
    with srv.client() as http:
        yield http


@pytest.fixture(scope="module")
def dataset(srv, client) -> dict:
    committed = committed_dataset(client, [png_bytes(color=(5, 6, 7))])
    # The server prepares the dataset's spare layouts in the background after a commit: wait for its positive
    # "ready" signal (the folder appears by one rename), so data-dir snapshots taken later are not racy.
    wait_spare_ready(srv.data_dir, committed["id"])
    return committed


def raw_request(srv, data: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (no client library cleaning them up); (status, body) of the answer."""
    parts = urlsplit(srv.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # the server answered and closed before reading everything we sent: fine
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def request_line(srv, target: bytes, extra: bytes = b"", method: bytes = b"GET") -> bytes:
    return (method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + srv.token.encode() + b"\r\nConnection: close\r\n" + extra + b"\r\n")


def assert_healthy(srv) -> None:
    assert httpx.get(f"{srv.url}/api/health", timeout=10).json()["status"] == "ok"


# --- path traversal ---------------------------------------------------------------------------------

TRAVERSALS = ["..", "../..", "..%2F..%2Fstudio.db", "%2e%2e%2f%2e%2e%2fstudio.db", "..%5c..%5cstudio.db",
              "%2e%2e", "studio.db%00", "....//....//etc//passwd", "%252e%252e%252fstudio.db", "~root",
              "%00", "a" * 5000]


@pytest.mark.parametrize("segment", TRAVERSALS)
def test_traversal_in_ids_is_a_clean_4xx_and_serves_no_file(srv, client, dataset, segment):
    sha = sha256_of(png_bytes(color=(5, 6, 7)))
    secret = (srv.data_dir / "studio.db").read_bytes()[:16]
    targets = [f"/api/datasets/{segment}", f"/api/datasets/{segment}/files",
               f"/api/datasets/{dataset['id']}/files/{segment}/thumbnail",
               f"/api/datasets/{segment}/files/{sha}/thumbnail",
               f"/api/training/jobs/{segment}/logs", f"/api/training/jobs/{segment}/metrics",
               f"/api/training/status?job_id={segment}", f"/api/models/{segment}/checkpoint",
               f"/api/models/{segment}/samples"]
    for target in targets:
        status, body = raw_request(srv, request_line(srv, target.encode()))
        assert 400 <= status < 500, (target, status, body[:300])
        assert secret not in body
        if status != 400 or body.startswith(b"{"):
            assert set(json.loads(body)) == {"error"}, (target, body[:300])
    assert_healthy(srv)


@pytest.mark.parametrize("segment", ["..%2F..%2Fstudio.db", "..", "%2e%2e", "0" * 63 + "/", "g" * 64,
                                     "A" * 64 + "/../x"])
def test_traversal_in_sha256_segments_writes_nothing(srv, client, segment):
    target = create_dataset(client, name="traversal target")
    before = sorted(p.relative_to(srv.data_dir) for p in srv.data_dir.rglob("*") if "logs" not in p.parts)
    data = png_bytes(color=(99, 1, 1))
    status, body = raw_request(srv, request_line(
        srv, f"/api/datasets/{target['id']}/files/{segment}?filename=x.png".encode(),
        b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n" % len(data), b"PUT") + data)
    assert status in (307, 400, 404, 405), (status, body)  # 307: Starlette drops a trailing slash
    after = sorted(p.relative_to(srv.data_dir) for p in srv.data_dir.rglob("*")
                   if "logs" not in p.parts and not p.name.startswith("studio.db"))
    assert after == [p for p in before if not p.name.startswith("studio.db")]


@pytest.mark.parametrize("filename", ["../../../../tmp/evil.png", "/etc/passwd", "..\\..\\evil.png",
                                      "evil\x00.png", "a/b/c.png", "\u202egnp.exe", "CON", ".", ".."])
def test_a_file_name_is_display_text_never_a_path(srv, client, filename):
    target = create_dataset(client, name="names")
    data = png_bytes(color=(len(filename), 200, 100))
    response = upload(client, target["id"], data, filename)
    assert response.status_code == 201, response.text
    stored = response.json()["filename"]
    assert "\x00" not in stored and "\u202e" not in stored and stored.strip()
    assert (srv.data_dir / "blobs" / sha256_of(data)[:2] / sha256_of(data)).is_file()
    # Nothing was written under the client's name, inside or outside the data dir.
    assert not Path("/tmp/evil.png").exists()
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if base not in ("", ".", ".."):
        assert [p for p in srv.data_dir.rglob("*") if p.name == base] == []
    listed = client.get(f"/api/datasets/{target['id']}/files").json()
    assert [entry["filename"] for entry in listed] == [stored]


# --- oversized and malformed requests --------------------------------------------------------------

def test_oversized_headers_and_urls_are_refused_and_the_server_lives_on(srv):
    cases = [
        request_line(srv, b"/api/datasets", b"X-Big: " + b"a" * 200_000 + b"\r\n"),
        request_line(srv, b"/api/training/status?job_id=" + b"a" * 200_000),
        request_line(srv, b"/api/datasets", b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(2000))),
        request_line(srv, b"/api/datasets", b"Authorization: Bearer " + b"t" * 100_000 + b"\r\n"),
    ]
    for data in cases:
        status, _body = raw_request(srv, data)
        assert status in (400, 401, 413, 414, 431), status
        assert_healthy(srv)


@pytest.mark.parametrize("path", ["/api/datasets", "/api/training/jobs"])
def test_a_huge_json_body_is_413_before_it_is_held_in_memory(srv, path):
    payload = {"name": "x" * (2 * MAX_JSON_BODY_BYTES), "type": "image", "dataset_id": "d", "base_model": "b",
               "total_steps": 1}
    response = httpx.post(srv.url + path, json=payload, headers=srv.headers, timeout=30)
    assert_error(response, 413, "too_large")

    def chunked():  # no Content-Length: the limit must hold while reading
        yield b'{"name": "x", "type": "image", "pad": "'
        for _ in range(64):
            yield b"y" * 65536
        yield b'"}'

    response = httpx.post(srv.url + path, content=chunked(), timeout=30,
                          headers={**srv.headers, "Content-Type": "application/json"})
    assert_error(response, 413, "too_large")
    assert_healthy(srv)


def test_a_json_body_just_under_the_limit_is_read(srv, client, dataset):
    sha = sha256_of(png_bytes(color=(5, 6, 7)))
    caption = "é" * 10_000  # the longest caption, every character escaped as \\u00e9 by json.dumps
    body = json.dumps({"caption": caption, "pad": "p" * (MAX_JSON_BODY_BYTES - 70_000)}).encode()
    assert len(body) <= MAX_JSON_BODY_BYTES
    response = client.put(f"/api/datasets/{dataset['id']}/files/{sha}/caption", content=body,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["caption"] == caption


@pytest.mark.parametrize("body", [
    b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b', "type": "image"}',
    b'{"name": "x", "type": "image", "extra": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}",
    b'{"name": "x", "type": "image", "params": ' + b"[" * 3_000 + b"]" * 3_000 + b"}",
    b'{"name": "\xff\xfe", "type": "image"}',
    b"\xef\xbb\xbf\xff" + b"{}",
    b'{"name": "\\ud800", "type": "image"}',
    b'{"name": "ok", "type": "image"',
    b'{"name": "ok", "type": "image", "name": "' + b"z" * 300 + b'"}',
    b'{"name": 1e999999, "type": "image"}',
    b"",
    b"null",
    b"[]",
])
def test_malformed_json_gets_a_clear_4xx(srv, client, body):
    for path in ("/api/datasets", "/api/training/jobs"):
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] in ("bad_request", "validation_error"), error
        assert error["message"].strip() and "There was an error" not in error["message"], error
    assert_healthy(srv)


def test_a_lone_surrogate_in_a_name_is_stored_as_clean_text_or_refused(client):
    response = client.post("/api/datasets", content=b'{"name": "a\\ud800b", "type": "image"}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code in (201, 422), response.text
    if response.status_code == 201:
        assert "\ud800" not in response.json()["name"]
        assert client.get(f"/api/datasets/{response.json()['id']}").status_code == 200


def test_invalid_utf8_in_paths_queries_and_headers(srv, client):
    cases = [
        request_line(srv, b"/api/datasets/\xff\xfe"),  # raw bytes in the request line
        request_line(srv, b"/api/training/status?job_id=\xff\xfe"),
        request_line(srv, b"/api/datasets/%ff%fe%c0%af"),  # percent-encoded invalid UTF-8
        request_line(srv, b"/api/training/status?job_id=%ff%fe%00"),
        request_line(srv, b"/api/training/jobs?status=%ff&before=%c0%af&limit=%ff"),
        request_line(srv, b"/api/datasets/x/files/y/thumbnail?size=%ff"),
        request_line(srv, b"/api/datasets", b"X-Junk: \xff\xfe\x80\r\nAccept: \xc0\xaf\r\n"),
        request_line(srv, b"/api/training/jobs/%ff/logs?offset=%ff"),
    ]
    for data in cases:
        status, body = raw_request(srv, data)
        assert status < 500, (data[:80], status, body[:300])
        if body.startswith(b"{"):
            json.loads(body)  # a JSON answer must be valid JSON, whatever bytes came in
    status, body = raw_request(srv, b"GET /api/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n")
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized"
    status, body = raw_request(srv, b"GET /api/health HTTP/1.1\r\nHost: \xff\xfe\r\nConnection: close\r\n\r\n")
    assert status == 421 and json.loads(body)["error"]["code"] == "bad_host"
    assert_healthy(srv)


def test_an_upload_body_that_is_not_what_it_claims(srv, client):
    target = create_dataset(client, name="lies")
    data = png_bytes(color=(1, 2, 250))
    assert_error(upload(client, target["id"], data, sha=sha256_of(data + b"x")), 400, "hash_mismatch")
    garbage = b"\x89PNG\r\n\x1a\n" + b"\xff" * 5000
    assert_error(upload(client, target["id"], garbage), 415, "unsupported_file")
    status, _ = raw_request(srv, request_line(
        srv, f"/api/datasets/{target['id']}/files/{sha256_of(data)}".encode(),
        b"Content-Length: -5\r\n", b"PUT"))
    assert status == 400
    assert list((srv.data_dir / "tmp").iterdir()) == []
    assert client.get(f"/api/datasets/{target['id']}/files").json() == []
