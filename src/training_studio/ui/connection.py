"""Connecting to another server at run time: the controllers behind the "Connect to server…" dialog.

This module owns the connection choices the dialog cannot make itself, because widgets never do HTTP:
`ConnectionRequest` (URL, token, TLS choice), the TLS context (the system's certificates, or only a CA
file the user chose), the "plain http to a non-loopback host" check, `ConnectionTester` (Test connection:
a short-lived `ApiClient` with the dialog's TLS settings asks /api/health, then a token-protected list,
and says in one sentence what worked) and `ConnectionSwitcher` (points the app's one `ApiClient` and
`JobStore` at the chosen server, or back at the embedded local server, and forgets the old server's rows).
It also makes the app's HTTP client for the local server (`make_local_http_client`), whose
`WarmStartTransport` hands out the answers `ui.warm_start` fetched while the GUI was loading.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from PySide6.QtCore import QObject, Signal

from training_studio.client import DEFAULT_TIMEOUT_S, ApiClient, ApiError, AuthFailed, CannotConnect, LocalServerManager
from training_studio.ui.tasks import TaskSet
from training_studio.ui.warm_start import LocalPrefetch, is_fresh

__all__ = [
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
                                             notify=lambda text: store.server_message.emit(text))
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
