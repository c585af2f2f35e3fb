"""Live updates: fans committed changes out to the clients of `GET /api/training/events` (server-sent events).

This module owns the in-process `EventHub` and the `EventStreamResponse` that writes one client's stream.

- Storage calls `EventHub.publish_threadsafe` after each commit, in the writer's thread (routes, worker
  threads of `asyncio.to_thread`, the runner) and under its lock, so calls arrive in revision order; the
  hub serialises each change once there and hands it to the event loop with `call_soon_threadsafe`,
  which keeps that order.
- Job events are coalesced per job: the first change goes out at once, later ones at most every
  `job_interval_s` (0.1 s), and the latest state is always sent when its slot comes (trailing edge). A
  change of status is never held back.
- Each subscriber has a bounded queue keyed by entity (a newer state replaces an unsent older one), so a
  slow client costs at most `queue_limit` pending entities; past that it overflows: it gets `reset`
  (best effort) and its connection is closed, to resync. Nothing here ever waits for a client: the
  runner, the database and the other clients never slow down.
- Event ids are resume cursors: a client that has received id N has received (the latest state of)
  every change with a revision up to N. Usually id == the event's revision; while a job's trailing
  event is held back, later events carry at most its revision - 1, so a reconnect never misses it.
  Ids never decrease on a stream.
- `close()` (server shutdown) ends every stream at once; a stream whose client stopped reading is
  aborted through the transport finder the serving process installs (see server/main.py), which also caps
  each stream's kernel send buffer, so a stalled client pins little memory before its queue overflows.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from training_studio import __version__
from training_studio.contract import to_wire
from training_studio.server.config import seconds_from_env
from training_studio.server.storage import Change, Storage

log = logging.getLogger(__name__)

QUEUE_LIMIT_ENV = "TRAINING_STUDIO_EVENT_QUEUE_LIMIT"
DEFAULT_QUEUE_LIMIT = 20_000
# The kernel send buffer of a stream's socket (bytes; 0: the kernel's own autotuning, which lets a client
# that stopped reading pin megabytes before its queue ever fills). Tests make it small.
SEND_BUFFER_ENV = "TRAINING_STUDIO_EVENT_SEND_BUFFER"
DEFAULT_SEND_BUFFER = 256 * 1024
# A resume that would replay more entities than this gets `reset`: a full fetch is cheaper then.
MAX_CATCH_UP = 20_000
JOB_EVENT_INTERVAL_S = 0.1
HEARTBEAT_S = 15.0
# For tests only (not a user setting): seconds between heartbeats, so a test can see one without waiting 15 s.
HEARTBEAT_ENV = "TRAINING_STUDIO_EVENT_HEARTBEAT_S"
MIN_HEARTBEAT_S = 0.05
RETRY_MS = 3000
# How long the last words of a stream (its end, or `reset` on overflow) may wait for a client that does
# not read before the connection is aborted.
FINAL_SEND_TIMEOUT_S = 0.5
# Events written per send: fewer, larger writes when many changes are waiting.
BATCH = 256

EntityKey = tuple[str, str]
TransportFinder = Callable[[Scope], "asyncio.Transport | None"]


def _int_from_env(name: str, default: int, minimum: int, environ: dict[str, str] | None) -> int:
    text = (os.environ if environ is None else environ).get(name, "").strip()
    try:
        return max(minimum, int(text)) if text else default
    except ValueError:
        log.warning("%s=%r is not a number; using %d", name, text, default)
        return default


def queue_limit_from_env(environ: dict[str, str] | None = None) -> int:
    return _int_from_env(QUEUE_LIMIT_ENV, DEFAULT_QUEUE_LIMIT, 1, environ)


def send_buffer_from_env(environ: dict[str, str] | None = None) -> int:
    return _int_from_env(SEND_BUFFER_ENV, DEFAULT_SEND_BUFFER, 0, environ)


def heartbeat_from_env(environ: dict[str, str] | None = None) -> float:
    return seconds_from_env(HEARTBEAT_ENV, HEARTBEAT_S, MIN_HEARTBEAT_S, environ)


@dataclass(frozen=True)
class Event:
    """One change ready to send: its SSE `event:` and `data:` bytes, shared by every subscriber."""

    kind: str
    key: EntityKey
    revision: int
    data: bytes
    status: str | None = None  # a job's status: a change of status is never held back


def event_from_change(change: Change) -> Event:
    if change.entity is None:
        payload: dict[str, Any] = {"id": change.id, "deleted": True, "revision": change.revision}
        status = None
    else:
        payload = to_wire(change.entity)
        status = payload.get("status") if change.kind == "job" else None
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Event(change.kind, (change.kind, change.id), change.revision, data, status)


def frame(kind: str, event_id: int, data: bytes) -> bytes:
    """One SSE event. `data` is single-line JSON (json.dumps escapes newlines), so one data: line."""
    return b"event: " + kind.encode("ascii") + b"\nid: " + str(event_id).encode("ascii") + b"\ndata: " + data + b"\n\n"


def control_frame(kind: str, revision: int, **fields: Any) -> bytes:
    return frame(kind, revision, json.dumps({"revision": revision, **fields}, separators=(",", ":")).encode())


class Subscription:
    """One stream's pending events: latest state per entity, in dispatch order, bounded."""

    def __init__(self, hub: EventHub, limit: int) -> None:
        self.hub = hub
        self.limit = limit
        # key -> (event, cursor stamped at dispatch)
        self.pending: OrderedDict[EntityKey, tuple[Event, int]] = OrderedDict()
        self.wake = asyncio.Event()
        self.overflowed = False
        self.closed = False
        self.writer: asyncio.Task[None] | None = None

    def offer(self, event: Event, cursor: int) -> None:
        if self.overflowed or self.closed:
            return
        self.pending.pop(event.key, None)  # an unsent older state of the same entity is superseded
        self.pending[event.key] = (event, cursor)
        if len(self.pending) > self.limit:
            self.overflowed = True
            self.pending.clear()
            self.stop()
        self.wake.set()

    def stop(self) -> None:
        # The writer may be stuck in a send to a client that does not read: cancel it, wherever it waits.
        if self.writer is not None and not self.writer.done():
            self.writer.cancel()

    def take(self, count: int) -> list[tuple[Event, int]]:
        taken = []
        while self.pending and len(taken) < count:
            taken.append(self.pending.popitem(last=False)[1])
        if not self.pending:
            self.wake.clear()
        return taken


class EventHub:
    """The process's change fan-out; every method except `publish_threadsafe` runs on the event loop."""

    def __init__(self, *, queue_limit: int = DEFAULT_QUEUE_LIMIT, send_buffer: int = DEFAULT_SEND_BUFFER,
                 job_interval_s: float = JOB_EVENT_INTERVAL_S, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.queue_limit = queue_limit
        self.send_buffer = send_buffer
        self.job_interval_s = job_interval_s
        self.heartbeat_s = heartbeat_s
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[Subscription] = set()
        self._high = 0  # highest revision published so far (sent or held)
        # Coalescing: jobs whose trailing event waits for its slot, their due times, and when each job's
        # last event went out with which status (entries older than the interval are pruned).
        self._held: dict[EntityKey, tuple[Event, float]] = {}
        self._due: list[tuple[float, int, EntityKey]] = []
        self._due_seq = 0
        self._held_revisions: list[tuple[int, EntityKey]] = []  # min-heap, stale entries skipped lazily
        self._timer: asyncio.TimerHandle | None = None
        self._last_sent: dict[EntityKey, tuple[float, str | None]] = {}
        self._last_prune = 0.0
        self._find_transport: TransportFinder | None = None

    # lifecycle ---------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop, current_revision: int = 0) -> None:
        self._loop = loop
        self._high = max(self._high, current_revision)

    def close(self) -> None:
        """Server shutdown: every stream ends now (idempotent)."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for subscription in list(self._subscribers):
            subscription.closed = True
            subscription.stop()
            subscription.wake.set()

    def set_transport_finder(self, finder: TransportFinder | None) -> None:
        """How to reach a stream's connection (the ASGI server's business, not ours): to cap its send buffer
        and to drop it when its client stops reading. Without one, neither happens."""
        self._find_transport = finder

    def _transport(self, scope: Scope) -> asyncio.Transport | None:
        if self._find_transport is None:
            return None
        try:
            return self._find_transport(scope)
        except Exception:  # the finder reaches into the ASGI server; never let it break a stream
            log.exception("could not find an event stream's connection")
            return None

    def abort_connection(self, scope: Scope) -> bool:
        transport = self._transport(scope)
        if transport is None:
            return False
        transport.abort()
        return True

    def limit_send_buffer(self, scope: Scope) -> None:
        if self.send_buffer <= 0:
            return
        transport = self._transport(scope)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)

    @property
    def high(self) -> int:
        """The highest revision this hub has heard of."""
        return self._high

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self, self.queue_limit)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    # publishing --------------------------------------------------------------------------------
    def publish_threadsafe(self, changes: list[Change]) -> None:
        """Storage's change listener: any thread, called under the storage lock in revision order."""
        loop = self._loop
        if loop is None or self.closed or not changes:
            return
        events = [event_from_change(change) for change in changes]
        try:
            loop.call_soon_threadsafe(self._publish, events)
        except RuntimeError:  # the loop is closed: the server is exiting and nobody is listening
            pass

    def _publish(self, events: list[Event]) -> None:
        if self.closed:
            return
        now = asyncio.get_running_loop().time()
        for event in events:
            self._high = max(self._high, event.revision)
            if event.kind == "job" and not self._goes_now(event, now):
                self._hold(event, now)
                continue
            self._held.pop(event.key, None)  # a newer state supersedes a held one
            self._dispatch(event, now)
        if len(self._last_sent) > 1024 and now - self._last_prune > 1.0:
            self._last_prune = now
            horizon = now - self.job_interval_s
            self._last_sent = {key: value for key, value in self._last_sent.items() if value[0] >= horizon}

    def _goes_now(self, event: Event, now: float) -> bool:
        held = self._held.get(event.key)
        last = self._last_sent.get(event.key)
        if held is None and last is None:
            return True  # the first change (or the first after a quiet interval) goes at once
        status_now = held[0].status if held else last[1] if last else None
        if event.status != status_now:
            return True  # a change of status is never held back
        if held is not None:
            return False  # a trailing event already waits for the slot: this newer state replaces it
        return last is None or now - last[0] >= self.job_interval_s

    def _hold(self, event: Event, now: float) -> None:
        previous = self._held.get(event.key)
        due = previous[1] if previous else self._last_sent.get(event.key, (now, None))[0] + self.job_interval_s
        self._held[event.key] = (event, due)
        heapq.heappush(self._held_revisions, (event.revision, event.key))
        if previous is None:
            self._due_seq += 1
            heapq.heappush(self._due, (due, self._due_seq, event.key))
            self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None or not self._due:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(self._due[0][0], self._release_due)

    def _release_due(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = asyncio.get_running_loop().time()
        while self._due and self._due[0][0] <= now:
            due, _seq, key = heapq.heappop(self._due)
            held = self._held.get(key)
            if held is not None and held[1] == due:
                del self._held[key]
                self._dispatch(held[0], now)
        self._arm_timer()

    def _cursor(self) -> int:
        """Every change up to this revision has been dispatched (none is held back)."""
        heap = self._held_revisions
        while heap:
            revision, key = heap[0]
            held = self._held.get(key)
            if held is not None and held[0].revision == revision:
                return revision - 1
            heapq.heappop(heap)
        return self._high

    def _dispatch(self, event: Event, now: float) -> None:
        if event.kind == "job":
            self._last_sent[event.key] = (now, event.status)
        cursor = self._cursor()
        for subscription in list(self._subscribers):
            subscription.offer(event, cursor)


class EventStreamResponse(Response):
    """One client's `text/event-stream`: catch-up or hello/reset, then live events until either side ends."""

    media_type = "text/event-stream"

    def __init__(self, hub: EventHub, storage: Storage, last_event_id: str | None) -> None:
        # No Response.__init__: it would declare `content-length: 0` for a body that never ends.
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                            (b"x-accel-buffering", b"no")]
        self.hub = hub
        self.storage = storage
        self.last_event_id = last_event_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscription = self.hub.subscribe()  # before reading the database: no change falls in between
        self.hub.limit_send_buffer(scope)
        watcher: asyncio.Task[None] | None = None
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            writer = asyncio.create_task(self._write(subscription, send))
            subscription.writer = writer
            watcher = asyncio.create_task(_wait_for_disconnect(receive))
            await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            writer.cancel()
            await asyncio.wait({writer})  # (asyncio.wait never raises what the writer raised)
            if not writer.cancelled() and writer.exception() is not None:
                log.error("an event stream failed", exc_info=writer.exception())
            if watcher.done():
                return  # the client left; nothing more to say
            # Our side ends the stream: server shutdown, the client fell too far behind, or a failure.
            last = b""
            if subscription.overflowed:
                log.warning("the event stream of %s fell more than %d changes behind; dropping it (the client "
                            "resyncs)", _client_text(scope), subscription.limit)
                last = control_frame("reset", self.hub.high, reason="this client fell too far behind")
            try:
                await asyncio.wait_for(send({"type": "http.response.body", "body": last, "more_body": False}),
                                       FINAL_SEND_TIMEOUT_S)
            except TimeoutError:
                # The client does not read and its buffers are full: only dropping the connection frees it.
                if self.hub.abort_connection(scope):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(watcher), FINAL_SEND_TIMEOUT_S)
        finally:
            if watcher is not None:
                watcher.cancel()
            self.hub.unsubscribe(subscription)

    async def _write(self, subscription: Subscription, send: Send) -> None:
        async def write(body: bytes) -> None:
            await send({"type": "http.response.body", "body": body, "more_body": True})

        await write(f"retry: {RETRY_MS}\n\n".encode())
        floor, snapshot, caught_up = await self._opening(write)
        while not subscription.closed and not subscription.overflowed:
            if not subscription.pending:
                try:
                    await asyncio.wait_for(subscription.wake.wait(), self.hub.heartbeat_s)
                except TimeoutError:
                    await write(b": keep-alive\n\n")
                continue
            chunks = []
            for event, cursor in subscription.take(BATCH):
                if caught_up:
                    if event.revision <= caught_up.get(event.key, -1):
                        continue  # the catch-up already sent this state or a newer one
                    if cursor > snapshot:
                        caught_up = {}  # live events are past the catch-up's snapshot now
                floor = max(floor, cursor)
                chunks.append(frame(event.kind, floor, event.data))
            if chunks:
                await write(b"".join(chunks))

    async def _opening(self, write: Callable[[bytes], Awaitable[None]]) -> tuple[int, int, dict[EntityKey, int]]:
        """hello, reset or the catch-up. Returns the stream's cursor, the revision of the database snapshot
        the opening reflects, and the revision the catch-up sent for each entity."""
        if self.last_event_id is None or not self.last_event_id.strip():
            current = await asyncio.to_thread(self.storage.current_revision)
            await write(control_frame("hello", current, version=__version__))
            return current, current, {}
        resume = _parse_revision(self.last_event_id)
        answer = None
        if resume is not None and await asyncio.to_thread(self.storage.revision_known, resume):
            answer = await asyncio.to_thread(self.storage.changes_since, resume, MAX_CATCH_UP)
        if answer is None:
            current, horizon = await asyncio.to_thread(
                lambda: (self.storage.current_revision(), self.storage.revision_horizon()))
            if resume is None:
                reason = "not a revision of this server"
            elif resume > current:
                reason = "revision ahead of this server (another data dir?)"
            elif resume < horizon:
                reason = "revision too old for this server (or from another data dir)"
            else:
                reason = f"more than {MAX_CATCH_UP} changes since that revision"
            await write(control_frame("reset", current, reason=reason))
            return current, current, {}
        current, changes = answer
        sent: dict[EntityKey, int] = {}
        for start in range(0, len(changes), BATCH):
            events = [event_from_change(change) for change in changes[start:start + BATCH]]
            await write(b"".join(frame(event.kind, event.revision, event.data) for event in events))
            for event in events:
                sent[event.key] = event.revision
        return max(resume, current), current, sent


def _parse_revision(text: str | None) -> int | None:
    value = (text or "").strip()
    if not value or len(value) > 19 or not value.isascii() or not value.isdigit():
        return None
    return int(value)


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def _client_text(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "a client"
