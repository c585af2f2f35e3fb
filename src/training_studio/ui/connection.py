"""Connecting to another server at run time: the controllers behind the "Connect to server…" dialog.

This module owns the connection choices the dialog cannot make itself, because widgets never do HTTP:
`ConnectionRequest` (URL, token, TLS choice), the TLS context (the system's certificates, or only a CA
file the user chose), the "plain http to a non-loopback host" check, `ConnectionTester` (Test connection:
a short-lived `ApiClient` with the dialog's TLS settings asks /api/health, then a token-protected list,
and says in one sentence what worked) and `ConnectionSwitcher` (points the app's one `ApiClient` and
`JobStore` at the chosen server, or back at the embedded local server, and forgets the old server's rows).
It also makes the app's HTTP client for the local server (`make_local_http_client`), whose
`WarmStartTransport` hands out the answers `ui.warm_start` fetched while the GUI was loading.

One truth about the connection: `ConnectionState` is the one object that says what the app's connection
is (connecting, connected and how updates arrive, unreachable, token rejected, failing, stopped by the
user) as an immutable `ConnectionSnapshot`, with ONE signal, `changed(snapshot)`. The status bar, the
connection banner, the Server menu and the tray all render the same snapshot through the plain functions
`status_bar_text`, `menu_status_text`, `tray_tooltip` and `banner_for`, so no two of them can disagree and a
new banner always replaces the one before. It follows the `JobStore`'s signals, and is also the way to
restart or stop the local server (`restart_local()`, `stop_local()`), so "Restarting…" or "Stopping…" shows
the moment the user asks. A note about the server ("The local server was restarted…") is shown until the
state changes or `NOTE_SECONDS` pass, never beside a banner that contradicts it.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from PySide6.QtCore import QObject, QTimer, Signal

from training_studio.client import DEFAULT_TIMEOUT_S, ApiClient, ApiError, AuthFailed, CannotConnect, LocalServerManager
from training_studio.ui.tasks import TaskSet
from training_studio.ui.warm_start import LocalPrefetch, is_fresh

__all__ = [
    "ConnectionPhase",
    "ConnectionSnapshot",
    "ConnectionState",
    "BannerSpec",
    "banner_for",
    "menu_status_text",
    "status_bar_text",
    "tray_tooltip",
    "NOTE_SECONDS",
    "ConnectionRequest",
    "ConnectionSwitcher",
    "ConnectionTester",
    "TEST_TIMEOUT_S",
    "is_loopback_url",
    "needs_plain_http_warning",
    "tls_context",
    "make_http_client",
    "make_local_http_client",
    "WarmStartTransport",
]

log = logging.getLogger(__name__)

TEST_TIMEOUT_S = 8.0


@dataclass(frozen=True)
class ConnectionRequest:
    """A remote server to use. `ca_file` "": verify https with the system's certificates."""

    url: str
    token: str = ""
    ca_file: str = ""


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def needs_plain_http_warning(url: str, token: str) -> bool:
    """True when a token would travel unencrypted over the network (http:// to a non-loopback host)."""
    return bool(token) and urlsplit(url).scheme.lower() == "http" and not is_loopback_url(url)


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """Verify servers with the system's certificate store, or with `ca_file` only.

    Raises ValueError with a sentence for the user when the CA file cannot be used.
    """
    if not ca_file:
        return ssl.create_default_context()
    path = Path(ca_file).expanduser()
    if not path.is_file():
        raise ValueError(f"The CA file {path} does not exist.")
    try:
        return ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as error:
        raise ValueError(f"The CA file {path} holds no usable PEM certificate ({error.reason or error}).") from None
    except OSError as error:
        raise ValueError(f"The CA file {path} cannot be read: {error.strerror or error}.") from None


def make_http_client(ca_file: str = "") -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=tls_context(ca_file), follow_redirects=False)


class WarmStartTransport(httpx.AsyncBaseTransport):
    """Answers a request from `prefetch` when it fetched exactly that request (once, while fresh), and
    sends everything else over the network. The network transport is made on first use: a warm start
    that is answered from the prefetch does not even load httpcore and anyio before its first screen."""

    def __init__(self, prefetch: LocalPrefetch | None, verify: ssl.SSLContext | bool) -> None:
        self.prefetch = prefetch
        self._verify = verify
        self._network: httpx.AsyncHTTPTransport | None = None

    def _network_transport(self) -> httpx.AsyncHTTPTransport:
        if self._network is None:
            self._network = httpx.AsyncHTTPTransport(verify=self._verify)
        return self._network

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.prefetch is not None:
            url = request.url
            pending = self.prefetch.take(request.method, url.scheme, url.host, url.port, url.path,
                                         url.query.decode("ascii", errors="replace"),
                                         request.headers.get("authorization"))
            if pending is not None:
                answer = await asyncio.wrap_future(pending)
                if answer is not None and is_fresh(answer):
                    return httpx.Response(answer.status, headers=answer.headers,
                                          stream=httpx.ByteStream(answer.body), request=request)
        return await self._network_transport().handle_async_request(request)

    async def aclose(self) -> None:
        if self.prefetch is not None:
            self.prefetch.discard()
        if self._network is not None:
            await self._network.aclose()


def make_local_http_client(prefetch: LocalPrefetch | None = None) -> httpx.AsyncClient:
    """The app's HTTP client for the embedded local server (plain http on loopback): like the one
    `ApiClient` makes for an http URL (a TLS context with no trusted roots, so it fails closed if ever
    pointed at https), answering the first requests from `prefetch` when they were prefetched."""
    return httpx.AsyncClient(transport=WarmStartTransport(prefetch, ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)),
                             timeout=httpx.Timeout(DEFAULT_TIMEOUT_S, connect=min(DEFAULT_TIMEOUT_S, 3.0)),
                             follow_redirects=False)


def _tls_reason(error: BaseException) -> str | None:
    """The certificate problem behind a failed connect, if that is what it was."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or str(current)
        if isinstance(current, ssl.SSLError):
            return current.reason or str(current)
        text = str(current)
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text and "certificate" in text:
            return text
        current = current.__cause__ or current.__context__
    return None


async def check_connection(request: ConnectionRequest, *, timeout: float = TEST_TIMEOUT_S) -> tuple[bool, str]:
    """Try `request` the way the app would use it; (worked, one sentence saying what happened)."""
    try:
        http = make_http_client(request.ca_file)
    except ValueError as error:
        return False, str(error)
    async with http:
        client = ApiClient(request.url, request.token or None, timeout=timeout, http=http)
        try:
            health = await client.health()
        except CannotConnect as error:
            reason = _tls_reason(error)
            if reason is not None:
                hint = ("choose the CA file that signed the server's certificate" if not request.ca_file
                        else "check that this CA file signed the server's certificate")
                return False, f"The server's certificate could not be verified ({reason}): {hint}."
            return False, error.message
        except ApiError as error:
            return False, f"{error.message} Is this a Training Studio server?"
        version = f" (version {health.version})" if health.version else ""
        try:
            await client.list_active_jobs()
        except AuthFailed:
            what = "a token is needed" if not request.token else "the token was rejected"
            return False, f"The server answered{version}, but {what}."
        except ApiError as error:
            return False, f"The server answered{version}, but listing jobs failed: {error.message}"
        return True, f"Connected to Training Studio server{version}; the token was accepted."


class ConnectionTester(QObject):
    """Runs Test connection for the dialog; one test at a time (a new one replaces a running one)."""

    started = Signal()
    finished = Signal(bool, str)  # worked, sentence

    def __init__(self, parent: QObject | None = None, *, timeout: float = TEST_TIMEOUT_S) -> None:
        super().__init__(parent)
        self.timeout = timeout
        self._tasks = TaskSet("connection test", self._on_crash)
        self._current: asyncio.Task[Any] | None = None

    def test(self, request: ConnectionRequest) -> None:
        if self._current is not None:
            self._current.cancel()
        self.started.emit()
        self._current = self._tasks.spawn(self._run(request))

    async def _run(self, request: ConnectionRequest) -> None:
        worked, message = await check_connection(request, timeout=self.timeout)
        self.finished.emit(worked, message)

    def _on_crash(self, error: BaseException) -> None:
        log.error("connection test failed", exc_info=error)
        self.finished.emit(False, f"The test failed unexpectedly ({type(error).__name__}: {error}).")

    def shutdown(self) -> None:
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()


class ConnectionSwitcher(QObject):
    """Points the app at another server: `switch_to(request)` for a remote one, `switch_to(None)` for the
    embedded local server of `data_dir`. The store stops, the client gets the new URL, token and TLS
    settings, the old server's rows go, and the store starts again (its signals tell the window)."""

    switched = Signal(str)  # the new URL, or "" for the local server
    failed = Signal(str)    # a sentence

    def __init__(self, client: ApiClient, store: Any, data_dir: Path | None, *,
                 local_args: tuple[str, ...] = (), on_switched: Callable[[ConnectionRequest | None], None]
                 | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.store = store
        self.data_dir = data_dir
        self.local_args = local_args
        self.on_switched = on_switched
        self.ca_file = ""
        self.uses_system_tls = False  # the client still has httpx's default (certifi) verification
        self._tasks = TaskSet("server switch", lambda error: self.failed.emit(
            f"Switching servers failed unexpectedly ({type(error).__name__}: {error})."))

    def request_switch(self, request: ConnectionRequest | None) -> None:
        """Plain-slot entry point (from the dialog's accepted signal)."""
        self._tasks.spawn(self.switch_to(request))

    async def switch_to(self, request: ConnectionRequest | None) -> None:
        if request is not None:
            try:
                tls_context(request.ca_file)
            except ValueError as error:
                self.failed.emit(str(error))
                return
        store = self.store
        # A local server the user stopped leaves the store refusing to refresh until it reconnects.
        was_stopped = store.last_failure is not None and str(getattr(store.last_failure[0], "value", "")) == "stopped"
        store.shutdown()
        await store.wait_idle()
        if request is not None:
            await self._use_tls(request.ca_file)
            store.local = None
            self.client.set_connection(request.url, request.token or None)
        else:
            if self.data_dir is None:
                self.failed.emit("This app was started without a local data folder, so there is no local server.")
                store.start()
                return
            store.local = LocalServerManager(self.data_dir, self.client.http, extra_args=self.local_args,
                                             notify=lambda text: store.connection_note.emit(text))
            self.client.set_connection("", None)
        for job_id in store.model.job_ids():
            store.model.remove_job(job_id)
        store.connected = False
        store.last_failure = None
        store.last_success_at = None
        store.server_version = ""
        store.start()
        if was_stopped:
            store.reconnect()  # clears the "stopped by the user" state; the new server is not stopped
        if self.on_switched is not None:
            self.on_switched(request)
        self.switched.emit(request.url if request is not None else "")

    async def _use_tls(self, ca_file: str) -> None:
        if self.uses_system_tls and ca_file == self.ca_file:
            return
        old = self.client.replace_http(make_http_client(ca_file))
        self.ca_file = ca_file
        self.uses_system_tls = True
        await old.aclose()

    def shutdown(self) -> None:
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()


# One truth about the connection ------------------------------------------------------------------------------

NOTE_SECONDS = 10.0  # how long a note about the server ("… was restarted") stays, unless the state changes


class ConnectionPhase(str, enum.Enum):
    CONNECTING = "connecting"    # starting, connecting, restarting, stopping, reconnecting: `activity` says which
    CONNECTED = "connected"      # the last refresh worked
    UNREACHABLE = "unreachable"  # no answer (retrying automatically)
    AUTH = "auth"                # the token was rejected
    FAILING = "failing"          # the server answers, badly (HTTP 500, not the contract…; retrying)
    STOPPED = "stopped"          # the user stopped the local server


_FAILURE_PHASES = {"unreachable": ConnectionPhase.UNREACHABLE, "auth": ConnectionPhase.AUTH,
                   "stopped": ConnectionPhase.STOPPED}


@dataclass(frozen=True)
class ConnectionSnapshot:
    """What the connection is, everything its four views need; equal snapshots render the same."""

    phase: ConnectionPhase
    is_local: bool
    activity: str = ""          # while CONNECTING: "Starting local server…", "Restarting local server…"
    url: str = ""
    version: str = ""
    stream: str = "off"         # the store's StreamState value: how changes arrive while connected
    refresh_interval: float = 5.0
    failure: str = ""           # the store's sentence for a failed refresh
    age_s: int | None = None    # while failing: seconds since the last good data (None: none yet)
    stream_trouble: str = ""    # while connected: live updates have been down for a while
    note: str = ""              # a passing remark about the server (restarted, replaced)


@dataclass(frozen=True)
class BannerSpec:
    """The connection banner: its text, level ("info", "warning", "error") and actions by key
    ("start", "reconnect", "retry", "retry_stream"), which the window maps to the store's methods."""

    text: str
    level: str
    actions: tuple[tuple[str, str], ...] = ()  # (button label, action key)


def _where(snapshot: ConnectionSnapshot) -> str:
    return "Local server" if snapshot.is_local else "Server"


def _updates_words(snapshot: ConnectionSnapshot) -> str:
    if snapshot.stream == "live":
        return "live updates"
    if snapshot.stream == "reconnecting":
        return "reconnecting live updates…"
    if snapshot.stream == "polling":
        return f"refreshed every {snapshot.refresh_interval:g} s"
    return ""


_PHASE_WORDS = {ConnectionPhase.UNREACHABLE: "unreachable", ConnectionPhase.AUTH: "token rejected",
                ConnectionPhase.FAILING: "error", ConnectionPhase.STOPPED: "stopped"}


def status_bar_text(snapshot: ConnectionSnapshot) -> str:
    """The status bar's permanent text: "Local server: URL (version 1.2) — live updates"."""
    if snapshot.phase is ConnectionPhase.CONNECTING:
        return snapshot.activity or ("Starting local server…" if snapshot.is_local else "Connecting…")
    if snapshot.phase is ConnectionPhase.STOPPED:
        return f"{_where(snapshot)}: stopped"
    head = f"{_where(snapshot)}: {snapshot.url or '—'}"
    if snapshot.version:
        head += f" (version {snapshot.version})"
    if snapshot.phase is ConnectionPhase.CONNECTED:
        words = _updates_words(snapshot)
        return f"{head} — {words}" if words else head
    return f"{head} — {_PHASE_WORDS[snapshot.phase]}"


def menu_status_text(snapshot: ConnectionSnapshot) -> str:
    """The Server menu's status entry, without the "Local server:" prefix."""
    if snapshot.phase is ConnectionPhase.CONNECTING:
        return snapshot.activity or "Connecting…"
    return {ConnectionPhase.CONNECTED: "Connected", ConnectionPhase.UNREACHABLE: "Unreachable",
            ConnectionPhase.AUTH: "Token rejected", ConnectionPhase.FAILING: "Error",
            ConnectionPhase.STOPPED: "Stopped"}[snapshot.phase]


def tray_tooltip(snapshot: ConnectionSnapshot) -> str:
    """The tray icon's tooltip: the app's name and the same status as the menu."""
    status = menu_status_text(snapshot)
    words = _updates_words(snapshot) if snapshot.phase is ConnectionPhase.CONNECTED else ""
    return f"Training Studio\n{_where(snapshot)}: {status}" + (f" ({words})" if words else "")


def banner_for(snapshot: ConnectionSnapshot) -> BannerSpec | None:
    """The connection banner for this state, or None for no banner."""
    phase = snapshot.phase
    if phase is ConnectionPhase.STOPPED:
        return BannerSpec("The local server is stopped. Jobs that were running keep running and are "
                          "re-attached when it starts again.", "info", (("S&tart local server", "start"),))
    if phase in (ConnectionPhase.UNREACHABLE, ConnectionPhase.AUTH, ConnectionPhase.FAILING):
        message = snapshot.failure
        if phase is ConnectionPhase.AUTH:
            message += (" Reconnect re-reads the local server's token." if snapshot.is_local
                        else " Check the token (--token or TRAINING_STUDIO_TOKEN), then Reconnect.")
        freshness = ("No data loaded yet." if snapshot.age_s is None
                     else f"Showing the last good data, updated {snapshot.age_s} s ago.")
        text = f"{message} {freshness}"
        if phase is ConnectionPhase.AUTH:
            return BannerSpec(text, "error", (("Reconn&ect", "reconnect"),))
        text += " Retrying automatically."
        if snapshot.stream == "reconnecting":
            text += " Live updates are reconnecting."
        level = "warning" if phase is ConnectionPhase.UNREACHABLE else "error"
        return BannerSpec(text, level, (("Retry &now", "retry"),))
    if phase is ConnectionPhase.CONNECTED:
        if snapshot.stream_trouble:
            return BannerSpec(snapshot.stream_trouble, "warning", (("Retry &now", "retry_stream"),))
        if snapshot.note:
            return BannerSpec(snapshot.note, "info")
    return None


class ConnectionState(QObject):
    """The connection as one snapshot with one signal; see the module docstring.

    `store` is the app's `JobStore` (typed loosely: this module does not import the jobs package).
    """

    changed = Signal(object)  # ConnectionSnapshot

    def __init__(self, store: Any, parent: QObject | None = None, *, note_seconds: float = NOTE_SECONDS) -> None:
        super().__init__(parent)
        self.store = store
        self._phase = ConnectionPhase.CONNECTING
        self._activity = "Starting local server…" if store.is_local else "Connecting…"
        self._url = ""
        self._version = ""
        self._failure = ""
        self._note = ""
        self._note_timer = QTimer(self)
        self._note_timer.setSingleShot(True)
        self._note_timer.setInterval(int(note_seconds * 1000))
        self._note_timer.timeout.connect(self._clear_note)
        self.snapshot = self._build()
        store.connecting.connect(self._on_connecting)
        store.connection_changed.connect(self._on_connection_changed)
        store.refresh_failed.connect(self._on_refresh_failed)
        store.refreshing_changed.connect(self._on_refreshing_changed)
        store.connection_restored.connect(self._on_success)
        store.jobs_changed.connect(self._on_success)
        store.stream_state_changed.connect(lambda _state: self._update())
        store.ticked.connect(self._update)
        connection_note = getattr(store, "connection_note", None)
        if connection_note is not None:
            connection_note.connect(self.show_note)

    # intent ---------------------------------------------------------------------------------------------
    def restart_local(self) -> None:
        """Restart the local server (the user confirmed); "Restarting local server…" shows at once."""
        if not self.store.is_local:
            return
        self._enter_connecting("Restarting local server…")
        self.store.restart_local_server()

    def stop_local(self) -> None:
        """Stop the local server (the user confirmed); "Stopping local server…" shows at once."""
        if not self.store.is_local:
            return
        self._enter_connecting("Stopping local server…")
        self.store.stop_local_server()

    def start_local(self) -> None:
        """Start the stopped local server again (the banner's button)."""
        if not self.store.is_local:
            return
        self._enter_connecting("Starting local server…")
        self.store.start_local_server()

    def show_note(self, text: str) -> None:
        """A passing remark about the server; it goes when the state changes or after a few seconds."""
        self._note = text
        self._note_timer.start()
        self._update()

    # reactions ------------------------------------------------------------------------------------------
    def _enter_connecting(self, activity: str, *, keep_note: bool = False) -> None:
        self._phase = ConnectionPhase.CONNECTING
        self._activity = activity
        if not keep_note:
            self._note = ""
        self._update()

    def _on_connecting(self, text: str) -> None:
        # The store reconnects right after saying the server was restarted: that remark stays.
        self._enter_connecting(text, keep_note=True)

    def _on_connection_changed(self, url: str, version: str) -> None:
        self._url, self._version = url, version
        self._update()

    def _on_refresh_failed(self, kind: str, message: str) -> None:
        self._phase = _FAILURE_PHASES.get(kind, ConnectionPhase.FAILING)
        self._failure = message
        self._note = ""  # a remark about the server never sits beside a problem
        self._update()

    def _on_refreshing_changed(self, refreshing: bool) -> None:
        if not refreshing:
            self._on_success()

    def _on_success(self) -> None:
        store = self.store
        # A refresh that was cancelled (a reconnect or a restart began) or failed does not count.
        if store.last_failure is not None or not store.connected or store.last_success_at is None:
            return
        if self._phase is ConnectionPhase.CONNECTING and self._activity.startswith("Stopping"):
            return  # a refresh that began before Stop was asked for
        self._phase = ConnectionPhase.CONNECTED
        self._failure = ""
        if store.client.base_url and not self._url:
            self._url, self._version = store.client.base_url, store.server_version
        self._update()

    def _clear_note(self) -> None:
        self._note = ""
        self._update()

    def _build(self) -> ConnectionSnapshot:
        store = self.store
        age = store.seconds_since_success() if self._phase in (
            ConnectionPhase.UNREACHABLE, ConnectionPhase.AUTH, ConnectionPhase.FAILING) else None
        trouble = store.stream_trouble() if self._phase is ConnectionPhase.CONNECTED else None
        stream = getattr(store.stream_state, "value", str(store.stream_state))
        return ConnectionSnapshot(
            phase=self._phase, is_local=store.is_local, activity=self._activity, url=self._url,
            version=self._version, stream=stream, refresh_interval=store.refresh_interval, failure=self._failure,
            age_s=None if age is None else int(age), stream_trouble=trouble or "", note=self._note)

    def _update(self) -> None:
        snapshot = self._build()
        if snapshot != self.snapshot:
            self.snapshot = snapshot
            self.changed.emit(snapshot)

    def refresh_now(self) -> None:
        """Re-read the store (after a server switch reset it) and tell the views."""
        self._url, self._version = self.store.client.base_url, self.store.server_version
        self._update()
