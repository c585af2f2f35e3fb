"""LocalServerManager against the real `training-studio serve` process, started the way the GUI does."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from training_studio.client import LocalServerError, LocalServerManager, read_server_info


def _run(data_dir: Path, body, **kwargs):
    """Run `body(manager, messages)` on a fresh manager; stop any server it started afterwards."""
    messages: list[str] = []

    async def main():
        async with httpx.AsyncClient() as http:
            manager = LocalServerManager(data_dir, http, notify=messages.append, **kwargs)
            try:
                return await body(manager, messages)
            finally:
                await manager.stop(timeout=10)

    return asyncio.run(main())


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_starts_a_server_with_the_token_in_env_not_argv(tmp_path):
    async def body(manager: LocalServerManager, messages):
        info = await manager.connect()
        assert manager.is_alive()
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
        assert info.token.encode() not in b" ".join(cmdline)
        assert b"serve" in cmdline and b"--port" in cmdline
        mode = (tmp_path / "server.json").stat().st_mode & 0o777
        async with httpx.AsyncClient() as http:
            jobs = await http.get(info.url + "/api/training/jobs",
                                  headers={"Authorization": f"Bearer {info.token}"})
            assert jobs.status_code == 200
            assert (await http.get(info.url + "/api/training/jobs")).status_code == 401
        return info, mode

    info, mode = _run(tmp_path, body)
    assert mode == 0o600
    assert _wait_dead(info.pid)


def test_reuses_a_running_server_and_restarts_a_dead_one(tmp_path):
    async def body(manager: LocalServerManager, messages):
        first = await manager.connect()
        # A second manager (another window of the app) reuses it instead of starting another.
        async with httpx.AsyncClient() as http:
            other = LocalServerManager(tmp_path, http)
            again = await other.connect()
        assert again == first
        os.kill(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while manager.is_alive() and time.monotonic() < deadline:  # is_alive() reaps our killed child
            await asyncio.sleep(0.05)
        assert not manager.is_alive()
        # connect(), not only a recovery after a failed request: the app's first request after a kill may be
        # its reconnect (the bug: a server started again in silence).
        recovered = await manager.connect()
        assert recovered.pid != first.pid
        assert read_server_info(tmp_path).pid == recovered.pid
        return messages

    messages = _run(tmp_path, body)
    assert any("started again" in m for m in messages), messages


def test_a_server_restarted_by_another_window_is_named_only_after_a_lost_connection(tmp_path):
    async def body(manager: LocalServerManager, messages):
        first = await manager.connect()
        async with httpx.AsyncClient() as http:
            other = LocalServerManager(tmp_path, http)  # another window of the app restarts it
            await other.connect()
            second = await other.restart()
            assert second.pid != first.pid
            # A token re-read (the same address answered 401) says nothing...
            assert (await manager.connect()).pid == second.pid and messages == []
            # ...a recovery after a lost connection names the restart, and does not call it a crash.
            third = await other.restart()
            assert (await manager.recover()).pid == third.pid
            assert messages == ["Reconnected to the local server (it was restarted)."]
        return messages

    _run(tmp_path, body)


def test_replaces_an_idle_server_of_another_version(tmp_path):
    async def body(manager: LocalServerManager, messages):
        old = await manager.connect()  # this one reports the real version
        async with httpx.AsyncClient() as http:
            newer_app = LocalServerManager(tmp_path, http, notify=messages.append, app_version="99.0.0")
            replaced = await newer_app.connect()
        old_alive = manager.is_alive()  # polls (and reaps) our child
        manager.info = replaced  # let _run's stop() find the new one even if an assertion fails
        assert replaced.pid != old.pid
        assert not old_alive
        return messages

    messages = _run(tmp_path, body)
    assert any("Replacing the local server" in m and "99.0.0" in m for m in messages), messages


def test_stale_server_json_is_ignored(tmp_path):
    (tmp_path / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "token": "x",
                                                      "pid": 999999, "version": "0.0.1"}))

    async def body(manager: LocalServerManager, messages):
        info = await manager.connect()
        assert info.pid != 999999
        return info

    _run(tmp_path, body)


def test_a_server_that_cannot_start_says_why(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")

    async def body(manager: LocalServerManager, messages):
        with pytest.raises(LocalServerError) as info:
            await manager.connect()
        return info.value.message

    message = _run(blocker, body, start_timeout=20)
    assert "local server" in message


def test_an_old_server_with_a_running_job_is_replaced_only_once_idle(tmp_path):
    import hashlib

    from training_studio.client import ApiClient
    from tests.ui.jobs_helpers import png_bytes

    async def body(manager: LocalServerManager, messages):
        old = await manager.connect()
        api = ApiClient(old.url, old.token)
        try:
            dataset = await api.create_dataset("tiny")
            for seed in range(4):
                data = png_bytes(seed)
                await api.upload_file(dataset.id, hashlib.sha256(data).hexdigest(), f"{seed}.png", data)
            await api.commit_dataset(dataset.id)
            job = await api.create_job(name="busy", dataset_id=dataset.id, base_model="builtin-linear-vae",
                                       total_steps=1_000_000)
            for _ in range(600):
                if (await api.job_status(job.id)).status == "running":
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the job never started running")
            async with httpx.AsyncClient() as http:
                newer_app = LocalServerManager(tmp_path, http, notify=messages.append, app_version="99.0.0")
                kept = await newer_app.connect()
                assert kept.pid == old.pid and newer_app.upgrade_pending
                assert not await newer_app.upgrade_if_idle()  # still running
                await api.cancel_job(job.id)
                for _ in range(600):
                    if (await api.job_status(job.id)).status == "cancelled":
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the job was never cancelled")
                assert await newer_app.upgrade_if_idle()
                assert not newer_app.upgrade_pending and newer_app.info.pid != old.pid
                manager.info = newer_app.info  # let the fixture's stop() find the new one
        finally:
            await api.aclose()
        return messages

    messages = _run(tmp_path, body, extra_args=["--cancel-grace", "1"])
    assert any("replaced once its running jobs finish" in m for m in messages), messages
    assert any("its jobs have finished" in m for m in messages), messages
