"""The server's live event stream (`GET /api/training/events`), read through httpx-sse: typed events out.

This module owns everything between the socket and a consumer that wants "what changed": opening the
stream over the app's one `httpx.AsyncClient` (the `ApiClient`'s, so URL, token and TLS settings are the
same as every other request's), decoding it with httpx-sse, turning each event into a typed event whose
payload is a contract model (`JobEvent`, `DatasetEvent`, `ModelEvent`, `HelloEvent`, `ResetEvent`;
unknown types and comments are skipped), and keeping the stream alive: after a drop it reconnects with
jittered exponential backoff (capped by the server's `retry:` hint) and `Last-Event-ID` set to the highest
id seen, so the server replays exactly what was missed. There is no read timeout on an open stream (the
server may be silent between heartbeats); only waiting for the answer's headers is bounded.

`EventStream.run()` is one async iterator that yields those events and, between them, what happened to the
stream itself: `StreamOpened`, `StreamLost` (with the typed error and the delay before the next attempt; the
backoff starts afresh only after a stream that stayed up `STABLE_STREAM_S`),
and finally `StreamUnsupported` when the server has no event stream (404, 405, 406, 501, or a 200 that is
not `text/event-stream`), after which it ends: the caller polls instead. `run_batches()` is the same
sequence in lists (everything decoded since the last list), for a consumer that applies changes per frame.
Every failure is one of `training_studio.client.errors`; no httpx or httpx-sse exception leaves here. One
event may not exceed `MAX_EVENT_BYTES` (a server that sends an endless event is dropped, not buffered).
Nothing here imports Qt.

Decoding happens off the event loop's thread. In an update storm (10,000 job events a second) splitting lines,
building events and validating each job against the contract cost about 30 µs an event: a third of the
thread that, in the app, is the GUI thread. So the loop's thread only reads the body's raw chunks from the
one shared client (same connection pool, token and TLS settings as every request) and hands them to a
decoder thread of this connection (`_Decoder`), which runs httpx-sse's own `EventSource.iter_sse()` over
them (as the body of an `httpx.Response` fed from a queue: public API only) and `parse_event`, and hands the
typed events back in lists: one wake-up of the loop per chunk read, not one per event. The chunk
iterator publishes what it decoded before it waits for more, so an event is handed over as soon as its
chunk is decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError, aconnect_sse
from pydantic import ValidationError

from training_studio.client.api import ApiClient
from training_studio.client.errors import ApiError, BadResponse, CannotConnect, RequestTimedOut
from training_studio.contract.models import Dataset, TrainedModel, TrainingJob

__all__ = [
    "EVENTS_PATH", "MAX_EVENT_BYTES", "STABLE_STREAM_S", "Backoff", "EventStream", "parse_event",
    "JobEvent", "JobDeleted", "DatasetEvent", "ModelEvent", "HelloEvent", "ResetEvent",
    "StreamOpened", "StreamLost", "StreamUnsupported", "StreamEvent", "StreamItem",
]

EVENTS_PATH = "/api/training/events"
MAX_EVENT_BYTES = 8 * 1024 * 1024  # one event (a job with big params is a few kB): beyond this, a broken server
# Answers that mean "this server has no event stream": poll instead. Anything else is a failure to retry.
_UNSUPPORTED_STATUSES = frozenset({404, 405, 406, 501})
STABLE_STREAM_S = 5.0  # a stream open this long before it broke counts as healthy: reconnect quickly
# The decoder thread hands over what it decoded at least this often while chunks keep coming (it always does
# before it waits for the next chunk): a decoder that falls behind still delivers in small steps.
_PUBLISH_EVERY_S = 0.004
# Bytes read but not decoded yet beyond which reading pauses until the decoder thread catches up: a client that
# cannot keep up must leave the backlog in the server's bounded queue (which resets it), not in its own memory.
MAX_DECODE_BACKLOG = 4 * 1024 * 1024


# -- typed events ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class JobEvent:
    """A job changed (created, progressed, finished...): its whole current state."""

    revision: int | None
    job: TrainingJob


@dataclass(frozen=True, slots=True)
class JobDeleted:
    """A finished job was deleted on the server (issue 16): drop its row."""

    revision: int | None
    job_id: str


@dataclass(frozen=True, slots=True)
class DatasetEvent:
    """A dataset was created, changed or deleted (`dataset` None)."""

    revision: int | None
    dataset_id: str
    dataset: Dataset | None

    @property
    def deleted(self) -> bool:
        return self.dataset is None


@dataclass(frozen=True, slots=True)
class ModelEvent:
    """A trained model was created, became ready, changed or was deleted (`model` None)."""

    revision: int | None
    model_id: str
    model: TrainedModel | None

    @property
    def deleted(self) -> bool:
        return self.model is None


@dataclass(frozen=True, slots=True)
class HelloEvent:
    """The first event of a stream opened without `Last-Event-ID`: the server's current revision."""

    revision: int | None
    version: str


@dataclass(frozen=True, slots=True)
class ResetEvent:
    """The server cannot replay what was missed (or sent something unreadable): fetch everything again."""

    revision: int | None
    reason: str


StreamEvent = JobEvent | JobDeleted | DatasetEvent | ModelEvent | HelloEvent | ResetEvent


# -- what happened to the stream ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The server accepted the stream; `resumed_from` is the Last-Event-ID sent (None: a fresh start)."""

    resumed_from: int | None


@dataclass(frozen=True, slots=True)
class StreamLost:
    """The stream could not be opened or broke; the next attempt comes after `retry_in` seconds."""

    error: ApiError
    retry_in: float
    failures: int  # attempts in a row that failed, this one included


@dataclass(frozen=True, slots=True)
class StreamUnsupported:
    """The server has no event stream; the iterator ends after this."""

    error: ApiError


StreamItem = StreamEvent | StreamOpened | StreamLost | StreamUnsupported


# -- parsing -------------------------------------------------------------------------------------------------

def _revision(text: str) -> int | None:
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def parse_event(sse: ServerSentEvent) -> StreamEvent | None:
    """The typed event of one decoded SSE message; None for a type we do not know (ignored by contract).

    Raises BadResponse, naming the event type, when a known type's data is not what the contract says.
    """
    kind = sse.event
    if kind not in ("job", "dataset", "model", "hello", "reset"):
        return None
    revision = _revision(sse.id)
    if kind == "job":  # the hot path (thousands a second in a storm): pydantic parses the JSON itself
        if sse.data and '"deleted"' in sse.data:  # a deleted job's tombstone (issue 16): rare, read in full
            deleted = _job_deletion(sse.data, revision)
            if deleted is not None:
                return deleted
        try:
            job = TrainingJob.model_validate_json(sse.data or "null")
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {}
            if first.get("type") == "json_invalid":
                raise BadResponse("The server sent a “job” event whose data is not JSON.") from exc
            raise _contract_error(kind, exc) from exc
        return JobEvent(job.revision if job.revision is not None else revision, job)
    try:
        data = json.loads(sse.data) if sse.data else None
    except ValueError as exc:
        raise BadResponse(f"The server sent a “{kind}” event whose data is not JSON.") from exc
    try:
        if kind in ("dataset", "model"):
            if not isinstance(data, dict):
                raise BadResponse(f"The server sent a “{kind}” event whose data is not an object.")
            record_revision = data.get("revision") if isinstance(data.get("revision"), int) else revision
            if data.get("deleted") is True:
                record_id = data.get("id")
                if not isinstance(record_id, str) or not record_id:
                    raise BadResponse(f"The server sent a “{kind}” deletion without an id.")
                return (DatasetEvent(record_revision, record_id, None) if kind == "dataset"
                        else ModelEvent(record_revision, record_id, None))
            if kind == "dataset":
                dataset = Dataset.model_validate(data)
                return DatasetEvent(record_revision, dataset.id, dataset)
            model = TrainedModel.model_validate(data)
            return ModelEvent(record_revision, model.id, model)
        body = data if isinstance(data, dict) else {}
        stated = body.get("revision")
        stated_revision = stated if isinstance(stated, int) and not isinstance(stated, bool) else revision
        if kind == "hello":
            version = body.get("version")
            return HelloEvent(stated_revision, version if isinstance(version, str) else "")
        reason = body.get("reason")
        return ResetEvent(stated_revision, reason if isinstance(reason, str) and reason
                          else "the server cannot replay the changes since the last event seen")
    except ValidationError as exc:
        raise _contract_error(kind, exc) from exc


def _job_deletion(data: str, revision: int | None) -> "JobDeleted | None":
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise BadResponse("The server sent a “job” event whose data is not JSON.") from exc
    if not isinstance(body, dict) or body.get("deleted") is not True:
        return None
    job_id = body.get("id")
    if not isinstance(job_id, str) or not job_id:
        raise BadResponse("The server sent a “job” deletion without an id.")
    stated = body.get("revision")
    return JobDeleted(stated if isinstance(stated, int) and not isinstance(stated, bool) else revision, job_id)


def _contract_error(kind: str, exc: ValidationError) -> BadResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())) or "data"
    return BadResponse(f"The server sent a “{kind}” event that does not match the contract ({where}: "
                       f"{first.get('msg', 'invalid')}).")


# -- reconnecting -----------------------------------------------------------------------------------------

class Backoff:
    """Delays between reconnect attempts: `first` doubled after each failure up to `cap`, with "equal
    jitter" (a random point in the upper half), so that many clients dropped by one server restart do
    not all come back in the same instant. The server's `retry:` hint (milliseconds) replaces the cap,
    within [`min_cap`, `max_cap`]: a server may ask to be left alone longer, but never for hours."""

    def __init__(self, first: float = 0.25, cap: float = 3.0, *, min_cap: float = 0.5, max_cap: float = 60.0,
                 rng: Callable[[], float] = random.random) -> None:
        self.first = first
        self.cap = cap
        self.min_cap = min_cap
        self.max_cap = max_cap
        self.failures = 0
        self._rng = rng

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.first * (2 ** min(self.failures, 30)))
        self.failures += 1
        return ceiling / 2 + self._rng() * ceiling / 2

    def reset(self) -> None:
        self.failures = 0

    def use_hint(self, retry_ms: int) -> None:
        if retry_ms >= 0:
            self.cap = min(self.max_cap, max(self.min_cap, retry_ms / 1000))


class _BoundedEvents(httpx.AsyncByteStream):
    """The response body, refusing to let one event (the bytes since the last blank line) grow past a
    bound: httpx-sse buffers an event until its blank line comes, which a broken server may never send."""

    _SEPARATORS = (b"\n\n", b"\r\r", b"\r\n\r\n")

    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._pending = 0
        self._tail = b""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            joined = self._tail + chunk
            end = max((joined.rfind(sep) + len(sep) if sep in joined else -1) for sep in self._SEPARATORS)
            if end >= 0:
                self._pending = len(joined) - end
            else:
                self._pending += len(chunk)
            self._tail = joined[-3:]
            if self._pending > self._limit:
                raise BadResponse(f"The server sent an event larger than {self._limit // (1024 * 1024)} MB; "
                                  f"the event stream was dropped.")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class EventStream:
    """One server's event stream, kept open; see the module docstring.

    `last_event_id` is where the next connection resumes (the highest id seen, or what the caller set:
    e.g. the revision of a full fetch it just made). `reconnect_now()` cuts a backoff wait short (the
    caller knows the server is back, e.g. a poll just succeeded). `run()` may be iterated once at a time.
    """

    def __init__(self, client: ApiClient, *, last_event_id: int | None = None, backoff: Backoff | None = None,
                 header_timeout: float | None = None, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.client = client
        self.last_event_id = last_event_id
        self.backoff = backoff if backoff is not None else Backoff()
        self.header_timeout = header_timeout
        self.max_event_bytes = max_event_bytes
        self.connected = False
        self._wake: asyncio.Event | None = None

    def note_revision(self, revision: int | None) -> None:
        """Resume from `revision` unless the stream has already seen a later one."""
        if revision is not None and (self.last_event_id is None or revision > self.last_event_id):
            self.last_event_id = revision

    def reconnect_now(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> AsyncIterator[StreamItem]:
        """The stream's items one by one; `last_event_id` already covers the whole list each came in."""
        async for batch in self.run_batches():
            for item in batch:
                yield item

    async def run_batches(self) -> AsyncIterator[list[StreamItem]]:
        """The stream's items in lists, in order: every event decoded since the last list (never empty).
        `last_event_id` covers every event of a list when it is handed out."""
        opened_at: float | None = None
        while True:
            try:
                async with AsyncExitStack() as stack:
                    resumed_from = self.last_event_id
                    source = await self._open(stack, resumed_from)
                    self.connected = True
                    opened_at = time.monotonic()
                    yield [StreamOpened(resumed_from)]
                    async for batch in self._read(source, resumed_from):
                        yield batch
                    raise CannotConnect(f"The server at {self.client.base_url} closed the event stream.")
            except _Unsupported as unsupported:
                self.connected = False
                yield [StreamUnsupported(unsupported.error)]
                return
            except ApiError as error:
                self.connected = False
                # A stream that stayed up a while starts the backoff afresh; one the server keeps closing
                # at once (overloaded, resetting) does not, so the delays grow.
                if opened_at is not None and time.monotonic() - opened_at >= STABLE_STREAM_S:
                    self.backoff.reset()
                opened_at = None
                delay = self.backoff.next_delay()
                yield [StreamLost(error, delay, self.backoff.failures)]
                await self._pause(delay)
            finally:
                self.connected = False

    async def _pause(self, seconds: float) -> None:
        self._wake = asyncio.Event()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        finally:
            self._wake = None

    async def _open(self, stack: AsyncExitStack, resume_from: int | None) -> EventSource:
        client = self.client
        url, headers = client.prepare_request(EVENTS_PATH, accept="text/event-stream")
        if resume_from is not None:
            headers["Last-Event-ID"] = str(resume_from)
        limits = client.timeout
        # No read timeout: an open stream is silent between events and heartbeats, for as long as it likes.
        timeout = httpx.Timeout(connect=limits.connect, read=None, write=limits.write, pool=limits.pool)
        header_wait = self.header_timeout if self.header_timeout is not None else (limits.read or 4.0)
        try:
            async with asyncio.timeout(header_wait):
                source = await stack.enter_async_context(
                    aconnect_sse(client.http, "GET", url, headers=headers, timeout=timeout))
        except TimeoutError as exc:
            raise RequestTimedOut(f"The server at {client.base_url} did not open the event stream in time.") \
                from exc
        except httpx.TimeoutException as exc:
            raise RequestTimedOut(f"The server at {client.base_url} did not answer in time.") from exc
        except httpx.InvalidURL as exc:
            raise CannotConnect(f"The server address {client.base_url!r} is not a valid URL.") from exc
        except (httpx.HTTPError, OSError) as exc:
            raise CannotConnect(client.describe_connect_failure(exc)) from exc
        response = source.response
        client.note_response(response)
        if response.status_code >= 400:
            try:
                async with asyncio.timeout(header_wait):
                    await response.aread()
            except (TimeoutError, httpx.HTTPError, OSError):
                pass  # the status says enough
            error = client.error_for(response)
            if response.status_code in _UNSUPPORTED_STATUSES:
                raise _Unsupported(error)
            raise error
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if content_type != "text/event-stream":
            raise _Unsupported(BadResponse(f"The server answered the event stream request with "
                                           f"“{content_type or 'no content type'}”, not an event stream."))
        response.stream = _BoundedEvents(response.stream, self.max_event_bytes)  # type: ignore[arg-type]
        return source

    async def _read(self, source: EventSource, resumed_from: int | None) -> AsyncIterator[list[StreamItem]]:
        """Pump the body's raw chunks to this connection's decoder thread and yield what it decodes."""
        response = source.response
        decoder = _Decoder(response.headers, resumed_from, asyncio.get_running_loop())
        decoder.start()
        pump = asyncio.ensure_future(self._pump(response, decoder))
        try:
            while True:
                await decoder.ready.wait()
                decoder.ready.clear()
                decoded = decoder.take()
                if decoded.retry is not None:
                    self.backoff.use_hint(decoded.retry)
                if decoded.reset_seen:
                    # The server's own revision, even below ours (another database): resume from there.
                    self.last_event_id = decoded.cursor
                else:
                    self.note_revision(decoded.cursor)
                if decoded.events:
                    yield decoded.events  # type: ignore[misc]
                if decoded.failure is not None:
                    raise decoded.failure
                if decoded.finished:
                    break
            await pump  # the body ended: its error, if it broke
        finally:
            decoder.abandon()
            if not pump.done():
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, ApiError):
                    await pump

    async def _pump(self, response: httpx.Response, decoder: _Decoder) -> None:
        base_url = self.client.base_url
        try:
            async for chunk in response.aiter_raw():
                decoder.feed(chunk)
                while decoder.backlog() > MAX_DECODE_BACKLOG and not decoder.abandoned:
                    await asyncio.sleep(0.005)
        except httpx.TimeoutException as exc:
            raise RequestTimedOut(f"The event stream from {base_url} stalled.") from exc
        except (httpx.HTTPError, OSError) as exc:
            raise CannotConnect(f"The event stream from the server at {base_url} broke "
                                f"({type(exc).__name__}).") from exc
        finally:
            decoder.end()


@dataclass
class _Decoded:
    """What the decoder thread handed over since the last look."""

    events: list[StreamEvent]
    cursor: int | None  # the resume cursor after those events
    reset_seen: bool  # a `reset` among them: `cursor` may be below the one before
    retry: int | None  # the latest `retry:` hint among them
    failure: ApiError | None  # the body could not be decoded: after `events`, the stream is over
    finished: bool  # the decoder is done (the body ended, broke or was abandoned)


class _FedBody(httpx.SyncByteStream):
    """The body of a response as the loop's thread reads it, chunk by chunk, for the decoder thread."""

    def __init__(self, decoder: _Decoder) -> None:
        self._decoder = decoder

    def __iter__(self) -> Iterator[bytes]:
        decoder = self._decoder
        chunks = decoder.chunks
        while True:
            try:
                chunk = chunks.get_nowait()
                if time.monotonic() - decoder.published_at >= _PUBLISH_EVERY_S:
                    decoder.publish()
            except queue.Empty:
                decoder.publish()  # everything decoded so far goes out before waiting for more
                chunk = chunks.get()
            if chunk is None or decoder.abandoned:
                return
            decoder.consumed += len(chunk)
            yield chunk


class _Decoder:
    """Decodes one connection's event stream on a thread of its own; see the module docstring.

    The loop's thread calls `feed()` with raw chunks, `end()` after the last one, waits on `ready` and
    `take()`s what was decoded; `abandon()` when it stops listening. The thread runs httpx-sse's
    `EventSource.iter_sse()` over a response whose body is those chunks (same headers as the real answer,
    so its content and text decoding are httpx's own), parses each event (`parse_event`) and keeps the
    resume cursor the way `EventStream` documents it. A malformed event becomes a `ResetEvent` (the
    change it carried is lost: the caller resyncs) and the stream goes on."""

    def __init__(self, headers: httpx.Headers, cursor: int | None, loop: asyncio.AbstractEventLoop) -> None:
        self.chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.ready = asyncio.Event()  # set (through the loop) when something was handed over
        self.abandoned = False
        self.published_at = time.monotonic()
        # Bytes fed (written by the loop's thread only) and taken by the decoder (its thread only).
        self.fed = 0
        self.consumed = 0
        self._headers = headers
        self._loop = loop
        self._lock = threading.Lock()
        # Decoded by the thread, not handed over yet (the thread's own).
        self._events: list[StreamEvent] = []
        self._cursor = cursor
        self._reset_seen = False
        self._retry: int | None = None
        # Handed over, not taken yet (under the lock).
        self._out = _Decoded([], cursor, False, None, None, False)
        self._signalled = False
        self._thread = threading.Thread(target=self._run, name="event-stream-decoder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def feed(self, chunk: bytes) -> None:
        self.fed += len(chunk)
        self.chunks.put(chunk)

    def backlog(self) -> int:
        return self.fed - self.consumed

    def end(self) -> None:
        self.chunks.put(None)

    def abandon(self) -> None:
        self.abandoned = True
        self.chunks.put(None)

    def take(self) -> _Decoded:
        with self._lock:
            out = self._out
            self._out = _Decoded([], out.cursor, False, None, None, out.finished)
            self._signalled = False
        return out

    # -- the decoder thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        failure: ApiError | None = None
        response = httpx.Response(200, headers=self._headers, stream=_FedBody(self))
        try:
            for sse in EventSource(response).iter_sse():
                self._decode(sse)
        except SSEError as exc:
            failure = BadResponse(f"The server's event stream is not valid ({exc}).")
        except httpx.DecodingError as exc:
            failure = BadResponse(f"The server's event stream could not be decoded ({exc}).")
        except Exception as exc:  # a bug must end this stream (the caller reconnects), not hang it
            failure = BadResponse(f"The server's event stream could not be read ({type(exc).__name__}: {exc}).")
        self.publish(failure=failure, finished=True)

    def _decode(self, sse: ServerSentEvent) -> None:
        if sse.retry is not None:
            self._retry = sse.retry
        try:
            event = parse_event(sse)
        except BadResponse as error:
            event = ResetEvent(_revision(sse.id), error.message)
        revision = _revision(sse.id)
        if revision is not None:
            if sse.event == "reset":
                self._cursor = revision
                self._reset_seen = True
            elif self._cursor is None or revision > self._cursor:
                self._cursor = revision
        if event is not None:
            self._events.append(event)

    def publish(self, *, failure: ApiError | None = None, finished: bool = False) -> None:
        self.published_at = time.monotonic()
        if not self._events and failure is None and not finished and self._retry is None:
            return
        with self._lock:
            out = self._out
            out.events.extend(self._events)
            out.cursor = self._cursor
            out.reset_seen = out.reset_seen or self._reset_seen
            if self._retry is not None:
                out.retry = self._retry
            out.failure = out.failure or failure
            out.finished = out.finished or finished
            wake = not self._signalled
            self._signalled = True
        self._events = []
        self._reset_seen = False
        self._retry = None
        if wake and not self.abandoned:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
                self._loop.call_soon_threadsafe(self.ready.set)


class _Unsupported(Exception):
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error
