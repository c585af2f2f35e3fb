"""Warm start: the first answers of an already running local server, asked for while the GUI still loads.

When the embedded server of the data dir is already running (its server.json names a live process),
`LocalPrefetch.start()` asks it, from a background thread and with the standard library only, the
GETs the app's first refresh makes (health and the one-job token check of `LocalServerManager`'s probe,
the active jobs list, the recently finished jobs), while the main thread imports Qt, httpx and pydantic
and builds the window.
The app's HTTP client then gets each answer from `take()` instead of asking again
(`ui.connection.WarmStartTransport`): only for the very same request (method, URL, query, token), once,
and only within `MAX_AGE_S` of its arrival; anything else, or a prefetch that failed, goes to the network
as usual. Nothing here imports Qt or httpx: this runs before they are loaded.

Cold start: when no server runs yet and the app is sure to use the local one (`local_server_wanted`),
`launch_local_server()` starts it at once, exactly as `LocalServerManager` would (same command, token in
the environment, log file), so that the server loads while the GUI does instead of after it; the manager
adopts that process (`LocalServerManager.adopt`) instead of starting another, and `LocalPrefetch.
start_after_launch()` asks it the first requests as soon as its server.json names it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["PrefetchedAnswer", "LocalPrefetch", "LaunchedServer", "FIRST_REQUESTS", "MAX_AGE_S", "TIMEOUT_S",
           "is_fresh", "launch_local_server", "local_server_wanted"]

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0  # as the local-server probe's: a server that does not answer this fast is not reused as is
MAX_AGE_S = 10.0  # an answer older than this is stale for a first screen: ask again
LAUNCH_WAIT_S = 30.0  # as LocalServerManager's start timeout: how long the prefetch waits for a launched server
LAUNCH_POLL_S = 0.005  # how often the prefetch looks for the launched server's server.json (a cold start waits on it)
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# (path, query, sent with the token): what the first refresh asks of a running local server, in order:
# the local-server probe (health, one job with the token), the active list, then the recently finished
# jobs the jobs store shows at connect (ui.jobs.store: its history statuses and limit), and last the
# machine summary's first ask (ui.system.store): answered here, it no longer loads httpcore and anyio and
# opens a connection on the GUI thread while the jobs are on their way (about 20 ms of CPU before the
# first paint). A request that no longer matches is simply asked of the server.
FIRST_REQUESTS: tuple[tuple[str, tuple[tuple[str, str], ...], bool], ...] = (
    ("/api/health", (), False),
    ("/api/training/jobs", (("status", "all"), ("limit", "1")), True),
    ("/api/training/jobs", (("status", "active"),), True),
    ("/api/training/jobs", (("status", "completed,failed,cancelled"), ("limit", "50")), True),
    ("/api/system", (), True),
)


@dataclass(frozen=True)
class PrefetchedAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    arrived: float  # time.monotonic()


@dataclass
class _Entry:
    path: str
    query: tuple[tuple[str, str], ...]
    authorization: str | None
    future: Future[PrefetchedAnswer | None]


class LocalPrefetch:
    """The warm-start requests for the local server of `data_dir`; see the module docstring."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.host = ""
        self.port = 0
        self.scheme = ""
        self._entries: list[_Entry] = []  # not taken yet
        self._requests: tuple[_Entry, ...] = ()  # all of them, for the thread
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.launched: LaunchedServer | None = None  # the server run_gui started early, at a cold start

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> bool:
        """Begin fetching if server.json names a live local server; False (and nothing to take) if not."""
        token, url, _pid = self._read_server_json()
        if token is None or url is None or not self._use_url(url):
            return False
        self._begin(token, self._run)
        return True

    def start_after_launch(self, launched: LaunchedServer) -> None:
        """Fetch from the server `launched` (just started, not listening yet) as soon as its server.json
        names it; until then (or if it never does) nothing is taken and the app asks the network."""
        self._begin(launched.token, lambda: self._run_after_launch(launched))

    def _begin(self, token: str, target: Any) -> None:
        for path, query, with_token in FIRST_REQUESTS:
            self._entries.append(_Entry(path, query, f"Bearer {token}" if with_token else None, Future()))
        self._requests = tuple(self._entries)
        self._thread = threading.Thread(target=target, name="warm-start-prefetch", daemon=True)
        self._thread.start()

    def _use_url(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in _LOOPBACK_HOSTS or parts.port is None:
            return False  # the embedded server is plain http on loopback; anything else is not ours to guess
        with self._lock:
            self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        return True

    def _read_server_json(self) -> tuple[str | None, str | None, int | None]:
        try:
            data = json.loads((self.data_dir / "server.json").read_text(encoding="utf-8"))
            token, url, pid = str(data["token"]), str(data["url"]).rstrip("/"), int(data["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None, None, None
        try:
            os.kill(pid, 0)
        except PermissionError:
            pass  # alive, someone else's: the probe decides
        except OSError:
            return None, None, None  # no such process: the app will start a server, nothing to ask
        return token, url, pid

    def _run_after_launch(self, launched: LaunchedServer) -> None:
        deadline = time.monotonic() + LAUNCH_WAIT_S
        try:
            while time.monotonic() < deadline and any(not entry.future.done() for entry in self._requests):
                token, url, pid = self._read_server_json()
                if pid == launched.proc.pid and token == launched.token and url is not None:
                    if self._use_url(url):
                        self._run()
                    return
                if launched.proc.poll() is not None:
                    return  # it exited (another app's server took the data dir?): the manager finds out
                time.sleep(LAUNCH_POLL_S)
        finally:
            for entry in self._requests:
                _resolve(entry.future, None)

    def _run(self) -> None:
        import http.client

        connection = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)
        try:
            for entry in self._requests:
                if entry.future.done():  # given up on by the app already
                    continue
                target = entry.path + ("?" + urlencode(entry.query) if entry.query else "")
                headers = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate"}
                if entry.authorization is not None:
                    headers["Authorization"] = entry.authorization
                try:
                    connection.request("GET", target, headers=headers)
                    response = connection.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException) as error:
                    log.debug("warm-start prefetch of %s failed: %s", target, error)
                    break  # the app asks again itself; so do the requests after this one
                # http.client has already undone the chunking; what httpx sees must say so.
                kept = [(name, value) for name, value in response.getheaders()
                        if name.lower() not in ("transfer-encoding", "connection", "keep-alive")]
                _resolve(entry.future, PrefetchedAnswer(response.status, kept, body, time.monotonic()))
                if response.will_close:
                    connection.close()
        finally:
            connection.close()
            for entry in self._requests:
                _resolve(entry.future, None)

    def take(self, method: str, scheme: str, host: str, port: int | None, path: str, query: str,
             authorization: str | None) -> Future[PrefetchedAnswer | None] | None:
        """The pending or arrived answer for exactly this request, handed out once; None when there is
        none (another request, already taken, given up). The future's result is None when the prefetch
        failed: the caller then asks the network."""
        wanted = sorted(parse_qsl(query, keep_blank_values=True))
        with self._lock:
            if method != "GET" or not self.port or (scheme, host, port) != (self.scheme, self.host, self.port):
                return None  # another request, or a launched server not found yet
            for entry in self._entries:
                if (entry.path == path and sorted(entry.query) == wanted
                        and entry.authorization == authorization):
                    self._entries.remove(entry)
                    return entry.future
        return None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every request has been answered or has failed; True if so within `timeout`.
        Not for the GUI thread (the app awaits `take()`'s future instead)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def discard(self) -> None:
        """Forget what was not taken (the app connected elsewhere, or has its first screen)."""
        with self._lock:
            entries, self._entries = self._entries, []
        for entry in entries:
            _resolve(entry.future, None)


def _resolve(future: Future[PrefetchedAnswer | None], answer: PrefetchedAnswer | None) -> None:
    try:
        future.set_result(answer)
    except Exception:  # noqa: BLE001 (InvalidStateError: resolved already, e.g. discarded)
        pass


def is_fresh(answer: PrefetchedAnswer | None, now: float | None = None) -> bool:
    return answer is not None and (time.monotonic() if now is None else now) - answer.arrived <= MAX_AGE_S


@dataclass(frozen=True)
class LaunchedServer:
    """A local server started by `launch_local_server`, not known to be listening yet."""

    proc: Any  # subprocess.Popen[bytes]
    token: str


def launch_local_server(data_dir: Path | str) -> LaunchedServer:
    """Start the embedded server of `data_dir` now, exactly as `LocalServerManager` starts one (same command,
    a fresh token handed over in the environment, never argv; output appended to server.log; its own
    session, so it outlives the window), and return at once. OSError when it cannot be started."""
    from training_studio.launcher import spawn_local_server

    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    proc, token = spawn_local_server(folder)
    return LaunchedServer(proc, token)


def local_server_wanted(data_dir_explicit: bool, environ: Mapping[str, str] = os.environ,
                        platform: str = sys.platform) -> bool:
    """True when the app is sure to use the local server even before Qt is loaded: the data dir was chosen
    (--data-dir, TRAINING_STUDIO_DATA_DIR), or the settings name no remote server to go back to
    (`AppSettings.active_server`, key servers/active). Anything unclear (a settings format we do not read
    here, an unreadable file) is False: the app then decides as always, with Qt, and starts the server
    itself if it needs one. A --server run never gets here."""
    if data_dir_explicit:
        return True
    override = environ.get("TRAINING_STUDIO_CONFIG_DIR")
    if override:
        path = Path(override).expanduser() / "settings.ini"
    elif platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        # QSettings' native format there: an INI file under the XDG config dir.
        config_home = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        path = Path(config_home) / "training-studio" / "training-studio.conf"
    else:
        return False  # the registry or a property list: Qt reads those
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return True  # no settings at all: nothing to go back to
    except (OSError, ValueError):
        return False
    import configparser

    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return False
    value = parser.get("servers", "active", fallback="").strip().strip('"')
    return not value
