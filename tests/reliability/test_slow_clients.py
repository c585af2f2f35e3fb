"""Slowloris-style clients against the real server, on loopback only and in bounded numbers.

Half-sent headers are answered 408 and closed once the header timeout passes, even while bytes keep
trickling in; a connection that sends nothing is closed; a stalled upload body is closed after the body
timeout and its temp file removed, while an upload that keeps making progress is not cut; and with the
connection cap lowered (and the server's descriptor limit lowered too) /api/health still answers while far
more slow connections are open than the cap allows. The servers here use short timeouts (1 s headers,
1.5 s bodies) so that each wait is short; every wait is a poll for the expected event with a generous deadline.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.server.helpers import create_dataset, png_bytes, sha256_of
from tests.support.server import ServerProcess

NEVER_LOGGED = ["unexpected error on", "Exception in ASGI application"]
DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("slow") / "data"
    server = ServerProcess(data_dir, extra_args=["--no-runner", "--header-timeout", "1",
                                                 "--body-timeout", "1.5"]).start()
    yield server
    server.stop()
    log = (data_dir / "logs" / "server.log").read_text(errors="replace")
    assert not any(text in log for text in NEVER_LOGGED), log[-3000:]


def connect(srv) -> socket.socket:
    parts = urlsplit(srv.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=DEADLINE_S)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails after DEADLINE_S)."""
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer


def request_head(srv, method: str, path: str, extra: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {srv.token}\r\n{extra}"
            "\r\n").encode()


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_half_sent_headers_are_answered_408_and_closed(srv):
    with connect(srv) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line: never complete
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]


def test_a_connection_that_sends_nothing_is_closed(srv):
    with connect(srv) as sock:
        assert read_until_closed(sock) == b""


def test_trickled_headers_do_not_extend_the_deadline(srv):
    """One header byte every 50 ms would take 30 s to finish: the total deadline closes it first."""
    request = request_head(srv, "GET", "/api/health", "X-Slow: " + "a" * 600 + "\r\n")
    sent = 0
    with connect(srv) as sock:
        stop = threading.Event()

        def trickle() -> None:
            nonlocal sent
            try:
                for byte in request[:-2]:  # never the final blank line
                    if stop.is_set():
                        return
                    sock.send(bytes([byte]))
                    sent += 1
                    time.sleep(0.05)
            except OSError:
                return  # the server closed the connection: what we wait for

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        answer = read_until_closed(sock)
        stop.set()
        sender.join(DEADLINE_S)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert sent < len(request) - 2


def _stalled_upload(srv, dataset_id: str, declared: int, first: bytes) -> socket.socket:
    sock = connect(srv)
    head = request_head(srv, "PUT", f"/api/datasets/{dataset_id}/files/{'ab' * 32}?filename=slow.png",
                        f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n")
    sock.sendall(head + first)
    return sock


def test_a_stalled_upload_is_closed_and_its_temp_file_removed(srv):
    dataset = create_dataset(srv.client(), name="stalled")
    tmp_dir = srv.data_dir / "tmp"
    with _stalled_upload(srv, dataset["id"], 1_000_000, b"\x89PNG" + b"x" * 20_000) as sock:
        wait_for(lambda: any(tmp_dir.iterdir()), "the upload's temp file")  # the body is streaming to disk
        read_until_closed(sock)  # closed by the body timeout; the stalled request gets no answer
    wait_for(lambda: not any(tmp_dir.iterdir()), "the temp file to be removed")
    with srv.client() as client:
        assert client.get(f"/api/datasets/{dataset['id']}/files").json() == []
    log = (srv.data_dir / "logs" / "server.log").read_text(errors="replace")
    assert "no body progress" in log


def test_an_upload_that_keeps_making_progress_is_not_cut(srv):
    """Ten times slower than the body timeout in total, but never idle for long."""
    with srv.client() as client:
        dataset = create_dataset(client, name="slow but steady")
        data = png_bytes(64, 64)
        pieces = [data[i:i + max(1, len(data) // 30)] for i in range(0, len(data), max(1, len(data) // 30))]

        def slowly():
            for piece in pieces:
                yield piece
                time.sleep(0.1)

        response = client.put(f"/api/datasets/{dataset['id']}/files/{sha256_of(data)}", content=slowly(),
                              headers={"Content-Type": "application/octet-stream",
                                       "Content-Length": str(len(data))})
    assert response.status_code == 201, response.text


@pytest.fixture()
def capped_server(tmp_path):
    """Long timeouts (the slow connections stay open throughout), a cap of 32 connections and a descriptor
    limit of 96: without the cap, 100 idle sockets would exhaust the descriptors and /health would hang."""
    server = ServerProcess(tmp_path / "capped", extra_args=["--no-runner", "--header-timeout", "120",
                                                            "--body-timeout", "120", "--max-connections", "32"])
    server.start()
    _soft, hard = resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (96, hard))
    yield server
    server.stop()


def test_health_answers_while_many_slow_connections_are_open(capped_server):
    srv = capped_server
    slow: list[socket.socket] = []
    try:
        for index in range(100):
            sock = connect(srv)
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: " + str(index).encode())
            slow.append(sock)
            if index % 10 == 9:  # the server keeps answering while they pile up
                assert httpx.get(f"{srv.url}/api/health", timeout=DEADLINE_S).json()["status"] == "ok"
        assert httpx.get(f"{srv.url}/api/health", timeout=DEADLINE_S).json()["status"] == "ok"
        # The oldest slow connections were closed to make room (the server is alive and answering)...
        closed = 0
        for sock in slow[:50]:
            sock.settimeout(DEADLINE_S)
            if read_until_closed(sock) == b"":
                closed += 1
        assert closed == 50
    finally:
        for sock in slow:
            sock.close()
    # ...and nothing of it reached the app as an error.
    with srv.client() as client:
        assert client.get("/api/datasets").status_code == 200


@pytest.mark.parametrize("option, value", [("--header-timeout", "0"), ("--body-timeout", "-1"),
                                           ("--body-timeout", "inf"), ("--max-connections", "3")])
def test_unusable_timeouts_and_caps_are_refused_at_start(tmp_path, option, value):
    result = subprocess.run(
        [sys.executable, "-m", "training_studio", "serve", "--data-dir", str(tmp_path / "d"), "--port", "0",
         "--token", "t", "--no-runner", option, value], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert option in result.stderr
    assert not (tmp_path / "d" / "server.json").exists()
