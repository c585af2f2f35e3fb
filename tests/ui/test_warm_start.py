"""Warm start: the first answers of a running local server are fetched while the GUI loads, and the app's
HTTP client uses each one once, for exactly the request it answers; everything else goes to the network."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from training_studio.ui.connection import make_local_http_client
from training_studio.ui.warm_start import MAX_AGE_S, LocalPrefetch, PrefetchedAnswer, is_fresh
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job


def _get(client: httpx.AsyncClient, url: str, token: str | None = None, **params) -> httpx.Response:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.get(url, params=params, headers=headers)


def test_prefetched_answers_are_the_servers_and_each_is_used_once(server_factory):
    srv = server_factory()
    with sync_client(srv.url, srv.token) as http:
        dataset_id = make_dataset(http, "warm", images=2)
        job = make_job(http, dataset_id, "warm-start job", total_steps=5000)
        expected_active = http.get("/api/training/jobs", params={"status": "active"}).json()
    assert [item["id"] for item in expected_active] == [job["id"]]

    prefetch = LocalPrefetch(srv.data_dir)
    assert prefetch.start() and prefetch.wait(10)
    srv.stop()  # from here on only the prefetch can answer

    async def scenario() -> None:
        async with make_local_http_client(prefetch) as client:
            health, probe, active = await asyncio.gather(
                _get(client, srv.url + "/api/health"),
                _get(client, srv.url + "/api/training/jobs", srv.token, status="all", limit=1),
                _get(client, srv.url + "/api/training/jobs", srv.token, status="active"))
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert probe.status_code == 200 and len(probe.json()) == 1
            assert active.status_code == 200 and active.json()[0]["id"] == job["id"]
            assert active.json()[0]["name"] == "warm-start job" and "date" in active.headers
            with pytest.raises(httpx.ConnectError):  # used once: the same request again needs the server
                await _get(client, srv.url + "/api/training/jobs", srv.token, status="active")

    asyncio.run(scenario())


def test_a_request_that_was_not_prefetched_goes_to_the_network(server_factory):
    srv = server_factory()
    prefetch = LocalPrefetch(srv.data_dir)
    assert prefetch.start() and prefetch.wait(10)

    async def scenario() -> None:
        async with make_local_http_client(prefetch) as client:
            wrong_token = await _get(client, srv.url + "/api/training/jobs", "not-the-token", status="active")
            assert wrong_token.status_code == 401  # asked of the server, not answered with the token's list
            other_query = await _get(client, srv.url + "/api/training/jobs", srv.token, status="queued")
            assert other_query.status_code == 200 and other_query.json() == []
            right = await _get(client, srv.url + "/api/training/jobs", srv.token, status="active")
            assert right.status_code == 200 and right.json() == []

    asyncio.run(scenario())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_nothing_is_prefetched_without_a_live_local_server(tmp_path):
    assert not LocalPrefetch(tmp_path / "empty").start()  # no server.json
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "server.json").write_text("{not json")
    assert not LocalPrefetch(tmp_path / "garbled").start()
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    (tmp_path / "dead").mkdir()
    (tmp_path / "dead" / "server.json").write_text(json.dumps(
        {"url": f"http://127.0.0.1:{_free_port()}", "token": "t", "pid": exited.pid, "version": "0"}))
    assert not LocalPrefetch(tmp_path / "dead").start()
    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / "server.json").write_text(json.dumps(
        {"url": "https://127.0.0.1:8765", "token": "t", "pid": os.getpid(), "version": "0"}))
    assert not LocalPrefetch(tmp_path / "remote").start()  # not the embedded server's plain http


def test_a_failed_prefetch_leaves_the_request_to_the_network(tmp_path):
    port = _free_port()  # nothing listens there: the prefetch fails, then so does the real request
    (tmp_path / "server.json").write_text(json.dumps(
        {"url": f"http://127.0.0.1:{port}", "token": "t", "pid": os.getpid(), "version": "0"}))
    prefetch = LocalPrefetch(tmp_path)
    assert prefetch.start() and prefetch.wait(10)

    async def scenario() -> None:
        async with make_local_http_client(prefetch) as client:
            with pytest.raises(httpx.ConnectError):
                await _get(client, f"http://127.0.0.1:{port}/api/health")

    asyncio.run(scenario())


def test_an_old_answer_is_not_fresh():
    answer = PrefetchedAnswer(200, [], b"[]", arrived=100.0)
    assert is_fresh(answer, now=100.0 + MAX_AGE_S)
    assert not is_fresh(answer, now=100.0 + MAX_AGE_S + 0.5)
    assert not is_fresh(None, now=100.0)


def test_a_warm_start_reuses_the_server_and_leaves_heavy_modules_unloaded(server, tmp_path):
    with sync_client(server.url, server.token) as http:
        dataset_id = make_dataset(http, "warm-gui", images=2)
        make_job(http, dataset_id, "shown at start", total_steps=5000)
    pid_before = json.loads((server.data_dir / "server.json").read_text())["pid"]
    # The real entry point, then a report of what the run imported; --quit-after outlasts the
    # start-up extras (entry points), so what is still missing was never needed.
    script = (
        "import json, sys\n"
        "from training_studio.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TRAINING_STUDIO_CONFIG_DIR": str(tmp_path / "config"),
           "TRAINING_STUDIO_LOG_DIR": str(tmp_path / "logs")}
    env.pop("TRAINING_STUDIO_SERVER", None)
    env.pop("TRAINING_STUDIO_TOKEN", None)
    result = subprocess.run([sys.executable, "-c", script, "--data-dir", str(server.data_dir), "--screenshot",
                             str(tmp_path / "shot.png"), "--quit-after", "3"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert json.loads((server.data_dir / "server.json").read_text())["pid"] == pid_before  # reused
    modules = set(report["modules"])
    assert "training_studio.ui.warm_start" in modules and "training_studio.ui.jobs.panel" in modules
    never = {"keyring", "fastapi", "uvicorn", "training_studio.server", "training_studio.server.config", "rich",
             "pygments", "click", "numpy", "training_studio.ui.datasets.panel", "training_studio.ui.models.panel",
             "training_studio.ui.dialogs.connect_dialog", "training_studio.ui.dialogs.settings_dialog",
             "training_studio.ui.dialogs.about_dialog"}
    assert not never & modules, sorted(never & modules)
    # The entry points came after the first screen, and the window was saved at quit.
    assert "training_studio.ui.datasets.import_dialog" in modules
    assert (tmp_path / "shot.png").stat().st_size > 0


def test_a_cold_start_launches_the_server_asks_it_first_and_the_manager_adopts_it(tmp_path):
    from training_studio.client import ApiClient, LocalServerManager
    from training_studio.ui.warm_start import launch_local_server

    data_dir = tmp_path / "data"
    launched = launch_local_server(data_dir)
    try:
        prefetch = LocalPrefetch(data_dir)
        prefetch.launched = launched
        prefetch.start_after_launch(launched)

        async def scenario() -> None:
            async with make_local_http_client(prefetch) as http:
                manager = LocalServerManager(data_dir, http)
                manager.adopt(launched.proc, launched.token)
                # At once, long before the server is up: the manager waits for the adopted one instead of
                # starting a second server (which would announce another pid and token).
                connected = await manager.connect()
                assert (connected.pid, connected.token) == (launched.proc.pid, launched.token)
                client = ApiClient(connected.url, connected.token, http=http)
                assert await client.list_active_jobs() == []
                # The prefetch found the server through its server.json and asked it (the app's client
                # discards what is left when it closes, so look before that).
                assert await asyncio.get_running_loop().run_in_executor(None, prefetch.wait, 60)
                port = int(connected.url.rsplit(":", 1)[1])
                system = prefetch.take("GET", "http", "127.0.0.1", port, "/api/system", "",
                                       f"Bearer {launched.token}")
                assert system is not None and system.result(0) is not None and system.result(0).status == 200

        asyncio.run(scenario())
        info = json.loads((data_dir / "server.json").read_text())
        assert (info["pid"], info["token"]) == (launched.proc.pid, launched.token)
        assert launched.proc.poll() is None
        assert Path(f"/proc/{launched.proc.pid}/cmdline").read_bytes().find(launched.token.encode()) == -1
    finally:
        launched.proc.terminate()
        launched.proc.wait(30)


def test_a_launched_server_that_exits_leaves_nothing_to_take(tmp_path):
    from training_studio.ui.warm_start import LaunchedServer

    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    prefetch = LocalPrefetch(tmp_path)
    prefetch.start_after_launch(LaunchedServer(exited, "token"))
    assert prefetch.wait(10)
    assert prefetch.take("GET", "http", "127.0.0.1", 1, "/api/health", "", None) is None


def test_the_local_server_is_started_early_only_when_it_is_sure_to_be_used(tmp_path):
    from training_studio.ui.warm_start import local_server_wanted

    config_dir = tmp_path / "config"
    env = {"TRAINING_STUDIO_CONFIG_DIR": str(config_dir)}
    assert local_server_wanted(True, env)  # --data-dir: always the local server
    assert local_server_wanted(False, env)  # no settings yet: nothing to go back to
    config_dir.mkdir()
    (config_dir / "settings.ini").write_text("[servers]\nactive=\nprofiles=[]\n")
    assert local_server_wanted(False, env)
    (config_dir / "settings.ini").write_text("[servers]\nactive=https://gpu-box:8443\n")
    assert not local_server_wanted(False, env)  # maybe back to that server: Qt's settings decide
    assert local_server_wanted(True, env)
    (config_dir / "settings.ini").write_text("[servers\nactive=")
    assert not local_server_wanted(False, env)  # unreadable here: the app decides later, as always
    xdg = tmp_path / "xdg"
    (xdg / "training-studio").mkdir(parents=True)
    (xdg / "training-studio" / "training-studio.conf").write_text('[servers]\nactive="http://10.0.0.2:8765"\n')
    assert not local_server_wanted(False, {"XDG_CONFIG_HOME": str(xdg)}, platform="linux")
    assert local_server_wanted(False, {"XDG_CONFIG_HOME": str(tmp_path / "none")}, platform="linux")
    assert not local_server_wanted(False, {}, platform="win32")  # the registry: not read here
