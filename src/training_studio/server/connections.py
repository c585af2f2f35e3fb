"""Slow and idle clients cannot hold the server: header and body timeouts and a cap on open connections.

uvicorn's h11 protocol has one timer, the keep-alive one, armed only after a response and cancelled by the
first byte of the next request; a connection that sends half a request line, or half a body, is held forever
(with its descriptor and, for an upload, its temp file). `GuardedH11Protocol` adds, per connection:
- a header deadline: a request's headers must be complete within `header_timeout_s` of the connection
  opening or of the previous response (a total, not an idle time, so trickling bytes does not extend it);
  answered with 408 and closed;
- a body idle timeout: while the server waits for request body bytes (reading not paused by flow control,
  no 100-continue outstanding), `body_timeout_s` without one closes the connection; the app sees a
  disconnect, so an upload's temp file is removed by its own cleanup. The same timeout closes a connection
  whose client stops reading a response;
- a cap on open connections: past `max_connections`, the connection that has waited longest for its
  request's headers is closed to make room (slow and idle ones first); if every connection is busy with a
  request, the newcomer gets 503 and is closed. The cap is also kept under half the process's descriptor
  limit, so accepting never runs out of descriptors.
One timer per server (`ConnectionGuard`) checks every connection a few times a second, instead of a timer
per connection and chunk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    import resource
except ImportError:  # Windows: no descriptor limit to respect
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


def _answer(status_line: bytes, text: bytes) -> bytes:
    return (status_line + b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: "
            + str(len(text)).encode() + b"\r\nconnection: close\r\n\r\n" + text)


TIMEOUT_ANSWER = _answer(b"HTTP/1.1 408 Request Timeout", b"The request headers took too long to arrive.")
BUSY_ANSWER = _answer(b"HTTP/1.1 503 Service Unavailable", b"Too many open connections; try again.")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int


def descriptor_bound_cap(wanted: int) -> int:
    """`wanted`, but at most half the soft descriptor limit (the rest is for files, the database, trainers)."""
    if resource is None:
        return wanted
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return wanted
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return wanted
    return max(8, min(wanted, soft // 2))


class ConnectionGuard:
    """The open connections of one server and the periodic check of their deadlines."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.max_connections = descriptor_bound_cap(limits.max_connections)
        self.connections: set[GuardedH11Protocol] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._tick_s = max(0.05, min(1.0, limits.header_timeout_s / 4, limits.body_timeout_s / 4))

    def admit(self, protocol: GuardedH11Protocol, loop: asyncio.AbstractEventLoop) -> bool:
        """Register a new connection; False if it must be refused (every other one is mid-request)."""
        if len(self.connections) >= self.max_connections:
            waiting = [other for other in self.connections if other.awaiting_headers() and not other.closing()]
            if not waiting:
                return False
            oldest = min(waiting, key=lambda other: other.phase_started)
            oldest.close_now(None)
            # Forgotten now, not when its connection_lost runs: asyncio accepts a whole batch of connections
            # before that, and each must make room of its own.
            self.connections.discard(oldest)
        self.connections.add(protocol)
        if self._timer is None:
            self._timer = loop.call_later(self._tick_s, self._tick, loop)
        return True

    def forget(self, protocol: GuardedH11Protocol) -> None:
        self.connections.discard(protocol)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = time.monotonic()
        for protocol in list(self.connections):
            protocol.check_deadlines(now)
        if self.connections:
            self._timer = loop.call_later(self._tick_s, self._tick, loop)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the deadlines of `ConnectionGuard`; made by `guarded_protocol_class`."""

    guard: ConnectionGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phase_started = time.monotonic()
        self.last_progress = self.phase_started

    # connection life -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.phase_started = self.last_progress = time.monotonic()
        if not self.guard.admit(self, self.loop):
            transport.write(BUSY_ANSWER)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.last_progress = time.monotonic()
        super().data_received(data)

    def resume_writing(self) -> None:
        self.last_progress = time.monotonic()
        super().resume_writing()

    def on_response_complete(self) -> None:
        self.phase_started = self.last_progress = time.monotonic()
        super().on_response_complete()

    # deadlines -------------------------------------------------------------------------------------
    def awaiting_headers(self) -> bool:
        """No request in progress: idle, or the next request's headers are still arriving."""
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def check_deadlines(self, now: float) -> None:
        if self.closing():
            return
        limits = self.guard.limits
        if self.awaiting_headers():
            if now - self.phase_started > limits.header_timeout_s:
                # Only a half-sent request gets an answer; an idle connection is simply closed.
                self.close_now(TIMEOUT_ANSWER if self.conn.their_state is h11.IDLE and self._has_partial_request()
                               else None)
            return
        cycle = self.cycle
        waiting_for_body = (self.conn.their_state is h11.SEND_BODY and not self.flow.read_paused
                            and not (cycle is not None and cycle.waiting_for_100_continue))
        stuck_writing = self.flow.write_paused
        if not (waiting_for_body or stuck_writing):
            self.last_progress = now  # the server is busy, not the client: nothing to time
            return
        if now - self.last_progress > limits.body_timeout_s:
            log.info("closing a connection from %s: no body progress for %.0f s", self.client,
                     limits.body_timeout_s)
            self.close_now(None)

    def _has_partial_request(self) -> bool:
        return bool(self.conn.trailing_data[0])

    def close_now(self, answer: bytes | None) -> None:
        """Close at once; the app (if a request is running) sees a disconnect."""
        if self.closing():
            return
        if answer is not None:
            self.transport.write(answer)
            self.transport.close()
        else:
            # abort(): a client that reads nothing must not keep the socket open through close()'s flush.
            self.transport.abort()


def guarded_protocol_class(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A protocol class for uvicorn's `http=` bound to one `ConnectionGuard`."""
    return type("ServerH11Protocol", (GuardedH11Protocol,), {"guard": ConnectionGuard(limits)})
