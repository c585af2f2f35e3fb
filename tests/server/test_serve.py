"""`training-studio serve` as a process: discovery file, lock, signals, options, auth and Host guards."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

import httpx
import pytest

from tests.server.helpers import assert_error
from tests.support.server import ServerProcess


def test_server_json_is_private_and_describes_the_running_server(server):
    info_path = server.data_dir / "server.json"
    info = json.loads(info_path.read_text())
    assert info["pid"] == server.proc.pid
    assert info["token"] == server.token
    assert info["url"].startswith("http://127.0.0.1:")
    assert info["version"]
    if os.name == "posix":
        assert stat.S_IMODE(info_path.stat().st_mode) == 0o600


def test_sigterm_stops_cleanly_and_removes_server_json(server_factory):
    srv = server_factory()
    code = srv.stop()
    assert code == 0, srv.log_tail()
    assert not (srv.data_dir / "server.json").exists()


def test_sigint_stops_cleanly_too(server_factory):
    srv = server_factory()
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(15) == 0, srv.log_tail()
    assert not (srv.data_dir / "server.json").exists()


def test_second_server_on_same_data_dir_is_refused_naming_the_first(server, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "training_studio", "serve", "--data-dir", str(server.data_dir), "--port", "0",
         "--token", "other"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert str(server.proc.pid) in result.stderr
    assert server.url in result.stderr
    # the running server is unaffected and still published
    assert httpx.get(server.url + "/api/health").status_code == 200
    assert json.loads((server.data_dir / "server.json").read_text())["pid"] == server.proc.pid


def test_non_loopback_host_is_refused_without_allow_remote(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "training_studio", "serve", "--data-dir", str(tmp_path / "d"), "--host", "0.0.0.0",
         "--port", "0", "--token", "t"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr
    assert not (tmp_path / "d" / "server.json").exists()


def test_token_from_environment_is_used(tmp_path):
    srv = ServerProcess(tmp_path / "d", token="env-token-123")
    # Start without a token file: ServerProcess always passes one, so run the command by hand.
    env = {**os.environ, "TRAINING_STUDIO_TOKEN": "env-token-123"}
    proc = subprocess.Popen([sys.executable, "-m", "training_studio", "serve", "--data-dir", str(srv.data_dir),
                             "--port", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        srv.proc = proc
        srv._wait_ready()
        assert httpx.get(srv.url + "/api/datasets", headers=srv.headers).status_code == 200
        assert httpx.get(srv.url + "/api/datasets", headers={"Authorization": "Bearer nope"}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(15)


def test_generated_token_only_in_server_json(tmp_path):
    data_dir = tmp_path / "d"
    env = {key: value for key, value in os.environ.items() if key != "TRAINING_STUDIO_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "training_studio", "serve", "--data-dir", str(data_dir),
                             "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    srv = ServerProcess(data_dir, token="unused")
    try:
        srv.proc = proc
        srv._wait_ready()
        token = json.loads((data_dir / "server.json").read_text())["token"]
        assert len(token) >= 32
        assert httpx.get(srv.url + "/api/datasets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    assert token.encode() not in out + err
    assert token not in (data_dir / "logs" / "server.log").read_text()


def test_health_needs_no_token_and_reports_limits(server_factory):
    srv = server_factory(extra_args=["--max-upload-bytes", "12345", "--max-pixels", "678"])
    body = httpx.get(srv.url + "/api/health").json()
    assert body["status"] == "ok"
    assert body["max_upload_bytes"] == 12345
    assert body["max_pixels"] == 678
    assert body["version"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer"}])
def test_missing_or_wrong_token_is_401(server, headers):
    for path in ("/api/training/jobs", "/api/datasets", "/api/models", "/api/openapi.json", "/api/no-such-route"):
        assert_error(httpx.get(server.url + path, headers=headers), 401, "unauthorized")
    assert_error(httpx.post(server.url + "/api/datasets", json={"name": "x", "type": "image"}, headers=headers),
                 401, "unauthorized")
    assert httpx.get(server.url + "/api/health").status_code == 200  # still healthy


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "192.168.1.10", "localhost.evil.example"])
def test_non_loopback_host_header_is_421(server, host):
    response = httpx.get(server.url + "/api/training/jobs", headers={**server.headers, "Host": host})
    assert_error(response, 421, "bad_host")
    assert_error(httpx.get(server.url + "/api/health", headers={"Host": host}), 421, "bad_host")


@pytest.mark.parametrize("host", ["localhost", "localhost:8080", "127.0.0.1", "[::1]:5000"])
def test_loopback_host_headers_are_accepted(server, host):
    response = httpx.get(server.url + "/api/training/jobs", headers={**server.headers, "Host": host})
    assert response.status_code == 200, response.text


def test_unknown_route_and_wrong_method_use_error_body(server):
    with server.client() as client:
        assert_error(client.get("/api/nothing-here"), 404, "not_found")
        assert_error(client.delete("/api/training/base-models"), 405, "method_not_allowed")
        assert_error(client.post("/api/datasets", content=b"{not json", headers={"Content-Type": "application/json"}),
                     400, "bad_request")
        assert_error(client.post("/api/datasets", json={"type": "image"}), 422, "validation_error")


def test_openapi_declares_error_bodies(server):
    with server.client() as client:
        spec = client.get("/api/openapi.json").json()
    assert "ErrorBody" in spec["components"]["schemas"]
    paths = spec["paths"]
    expected = {
        ("/api/training/jobs", "post"): {"400", "401", "404", "409", "421", "422"},
        ("/api/training/jobs/{job_id}/cancel", "post"): {"401", "404", "409"},
        ("/api/training/status", "get"): {"401", "404"},
        ("/api/datasets/{dataset_id}/files/{sha256}", "put"): {"400", "401", "404", "409", "413", "415", "507"},
        ("/api/datasets/{dataset_id}/commit", "post"): {"404", "409", "507"},
        ("/api/datasets/{dataset_id}", "delete"): {"404", "409"},
        ("/api/models/{model_id}", "delete"): {"404"},
        ("/api/health", "get"): {"421"},
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        for status in statuses:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, method, status, schema)
    # no operation falls back to FastAPI's own validation-error shape
    assert "HTTPValidationError" not in json.dumps(spec)
