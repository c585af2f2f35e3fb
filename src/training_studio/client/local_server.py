"""Find, start, watch, replace and stop the embedded local server that the GUI uses by default.

The local server is a separate process (`training-studio serve`), started detached in its own session
so that jobs keep running after the window closes. It announces itself in `<data_dir>/server.json`
({url, token, pid, version}, mode 0600), which is how this module finds an already running server, and
how it reconnects after the server restarted on another ephemeral port. A fresh token is handed to a
server we start through the `TRAINING_STUDIO_TOKEN` environment variable, never argv (visible in `ps`).
A server of another version (left over from before an upgrade) is replaced as soon as none of its jobs
is running. `LocalServerManager` reports what it did through a `notify` callback with a human sentence
(the GUI shows it in a banner); failures raise `LocalServerError`. Nothing here imports Qt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from training_studio import __version__
from training_studio.client.errors import ApiError
from training_studio.launcher import spawn_local_server

__all__ = ["ServerInfo", "LocalServerError", "LocalServerManager", "read_server_info"]

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 2.0
START_POLL_S = 0.005  # how often a starting server's server.json is looked for: a cold start waits on it


class LocalServerError(ApiError):
    """The local server could not be found, started or stopped; `message` says why."""


@dataclass(frozen=True)
class ServerInfo:
    url: str
    token: str
    pid: int
    version: str


def read_server_info(data_dir: Path) -> ServerInfo | None:
    """The server.json of `data_dir`, or None when it is missing, unreadable or incomplete."""
    try:
        data = json.loads((Path(data_dir) / "server.json").read_text(encoding="utf-8"))
        return ServerInfo(url=str(data["url"]).rstrip("/"), token=str(data["token"]), pid=int(data["pid"]),
                          version=str(data.get("version", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class LocalServerManager:
    """Keeps one embedded server running for a data dir and tells the caller where it is."""

    def __init__(self, data_dir: Path | str, http: httpx.AsyncClient, *,
                 notify: Callable[[str], None] | None = None, extra_args: Sequence[str] = (),
                 start_timeout: float = START_TIMEOUT_S, app_version: str = __version__) -> None:
        self.data_dir = Path(data_dir)
        self._http = http
        self._notify = notify or (lambda message: None)
        self._extra_args = list(extra_args)
        self._start_timeout = start_timeout
        self.app_version = app_version
        self.info: ServerInfo | None = None
        self.upgrade_pending = False  # a server of another version runs jobs: replace it once they end
        self._proc: subprocess.Popen[bytes] | None = None
        self._adopted: tuple[subprocess.Popen[bytes], str] | None = None  # started early by the app: see adopt()
        self._lock = asyncio.Lock()

    def _say(self, message: str) -> None:
        log.info("%s", message)
        self._notify(message)

    def adopt(self, proc: subprocess.Popen[bytes], token: str) -> None:
        """Take over a server the app started for this data dir before this manager existed (issue 19: at a
        cold start the server loads while the GUI does; `ui.warm_start.launch_local_server` starts it as
        `_start_locked` would). The next start waits for that process instead of starting another."""
        self._adopted = (proc, token)

    # queries -----------------------------------------------------------------------------------
    def is_alive(self) -> bool:
        return self.info is not None and self._pid_alive(self.info.pid)

    def _pid_alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None  # our child: poll() also reaps a zombie
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # alive, owned by someone else
        except OSError:
            return False
        return not _is_zombie(pid)

    async def _probe(self, info: ServerInfo) -> str | None:
        """The server's version if it answers health and accepts the token, else None."""
        headers = {"Authorization": f"Bearer {info.token}"}
        try:
            # Both at once: this sits on the start-up path. The authenticated one is the cheapest there
            # is (the active list may hold thousands of jobs).
            health, jobs = await asyncio.gather(
                self._http.get(info.url + "/api/health", timeout=PROBE_TIMEOUT_S),
                self._http.get(info.url + "/api/training/jobs", params={"status": "all", "limit": 1},
                               headers=headers, timeout=PROBE_TIMEOUT_S))
            if health.status_code != 200 or jobs.status_code != 200:
                return None
            return str(health.json().get("version", ""))
        except (httpx.HTTPError, OSError, ValueError, AttributeError):
            return None

    async def _running_job_count(self, info: ServerInfo) -> int | None:
        try:
            response = await self._http.get(info.url + "/api/training/jobs", params={"status": "active"},
                                             headers={"Authorization": f"Bearer {info.token}"},
                                             timeout=PROBE_TIMEOUT_S)
            jobs = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, OSError, ValueError):
            return None
        if not isinstance(jobs, list):
            return None
        return sum(1 for job in jobs if isinstance(job, dict) and job.get("status") == "running")

    # lifecycle ---------------------------------------------------------------------------------
    async def connect(self) -> ServerInfo:
        """Reuse the server recorded in server.json if it is alive and answers; else start one.

        When the server this manager was using has died meanwhile, starting another says so, whichever
        caller noticed first: the app's first request after a kill may be a reconnect, not a refresh."""
        async with self._lock:
            return await self._connect_locked()

    async def recover(self) -> ServerInfo:
        """After a request could not connect: as `connect`, and also says when another process (another
        window, `training-studio serve`) restarted the server meanwhile. A token re-read after a 401 uses
        `connect`: the same address answered, and the user need not hear of it."""
        async with self._lock:
            previous = self.info
            info = await self._connect_locked()
            started_by_us = self._proc is not None and self._proc.pid == info.pid
            if previous is not None and info.pid != previous.pid and not started_by_us:
                self._say("Reconnected to the local server (it was restarted).")
            return info

    async def _connect_locked(self) -> ServerInfo:
        previous = self.info
        info = read_server_info(self.data_dir)
        if info is not None and self._pid_alive(info.pid):
            version = await self._probe(info)
            if version is not None:
                info = ServerInfo(info.url, info.token, info.pid, version or info.version)
                self.info = info
                if version != self.app_version:
                    await self._handle_version_mismatch(info)
                return self.info
        started = await self._start_locked()
        if previous is not None:
            self._say("The local server stopped unexpectedly; it was started again and the app reconnected.")
        return started

    async def _handle_version_mismatch(self, info: ServerInfo) -> None:
        running = await self._running_job_count(info)
        if running == 0:
            self._say(f"Replacing the local server of version {info.version or 'unknown'} with version "
                         f"{self.app_version}.")
            await self._stop_locked()
            await self._start_locked()
            self.upgrade_pending = False
        else:
            self.upgrade_pending = True
            self._say(f"The local server is version {info.version or 'unknown'} (this app is "
                         f"{self.app_version}); it will be replaced once its running jobs finish.")

    async def upgrade_if_idle(self) -> bool:
        """Replace an old-version server once nothing runs on it; True if it was replaced."""
        if not self.upgrade_pending or self.info is None:
            return False
        async with self._lock:
            info = self.info
            if info is None or await self._running_job_count(info) != 0:
                return False
            self._say(f"Replacing the local server of version {info.version or 'unknown'} with version "
                         f"{self.app_version} (its jobs have finished).")
            await self._stop_locked()
            await self._start_locked()
            self.upgrade_pending = False
            return True

    async def start(self) -> ServerInfo:
        async with self._lock:
            return await self._start_locked()

    async def restart(self) -> ServerInfo:
        async with self._lock:
            await self._stop_locked()
            return await self._start_locked()

    async def stop(self, timeout: float = 15.0) -> None:
        async with self._lock:
            await self._stop_locked(timeout)

    async def _start_locked(self) -> ServerInfo:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalServerError(f"Cannot use {self.data_dir} as the local server's data directory: "
                                   f"{exc.strerror or exc}.") from exc
        log_path = self.data_dir / "server.log"  # where spawn_local_server sends its output
        adopted, self._adopted = self._adopted, None
        if adopted is not None and adopted[0].poll() is None:
            proc, token = adopted  # already starting (adopt()): wait for it below like for our own
        else:
            loop = asyncio.get_running_loop()
            try:
                proc, token = await loop.run_in_executor(None, spawn_local_server, self.data_dir, self._extra_args)
            except OSError as exc:
                raise LocalServerError(f"Could not start the local server: {exc.strerror or exc}.") from exc
        self._proc = proc
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            info = read_server_info(self.data_dir)
            exited = proc.poll() is not None
            # Ours announces our token; if ours exited, another app's server may have won the data dir.
            candidate = info is not None and self._pid_alive(info.pid) and (
                (info.pid == proc.pid and info.token == token) or (exited and info.pid != proc.pid))
            if candidate:
                assert info is not None
                version = await self._probe(info)
                if version is not None:
                    self.info = ServerInfo(info.url, info.token, info.pid, version or info.version)
                    return self.info
            if exited:
                raise LocalServerError(f"The local server exited at start (code {proc.returncode}); see "
                                       f"{log_path}.{_log_tail(log_path)}")
            # Often: this wait is on the cold start's path, and a read of server.json costs next to nothing.
            await asyncio.sleep(START_POLL_S)
        _terminate(proc)
        raise LocalServerError(f"The local server did not become ready within {self._start_timeout:.0f} s; see "
                               f"{log_path}.")

    async def _stop_locked(self, timeout: float = 15.0) -> None:
        info = self.info or read_server_info(self.data_dir)
        if info is None or not self._pid_alive(info.pid):
            self.info = None
            return
        try:
            os.kill(info.pid, signal.SIGTERM)
        except ProcessLookupError:
            self.info = None
            return
        except OSError as exc:
            raise LocalServerError(f"Could not stop the local server (pid {info.pid}): {exc.strerror}.") from exc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._pid_alive(info.pid):
            await asyncio.sleep(0.05)
        if self._pid_alive(info.pid):
            try:
                os.kill(info.pid, signal.SIGKILL)
            except OSError:
                pass
            while self._pid_alive(info.pid) and time.monotonic() < deadline + 5:
                await asyncio.sleep(0.05)
        self.info = None


def _is_zombie(pid: int) -> bool:
    """A zombie (exited, not yet reaped by its parent) still answers kill(pid, 0); Linux can tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may itself contain ")".
    return stat[stat.rfind(")") + 2:stat.rfind(")") + 3] == "Z"


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()


def _log_tail(path: Path, limit: int = 400) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    return f"\n{text[-limit:]}" if text else ""
