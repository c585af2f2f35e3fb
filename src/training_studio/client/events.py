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
not `text/event-stream`), after which it ends: the caller polls instead. Every failure is one of
`training_studio.client.errors`; no httpx or httpx-sse exception leaves here. One event may not exceed
`MAX_EVENT_BYTES` (a server that sends an endless event is dropped, not buffered). Nothing here imports Qt.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable
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
    "JobEvent", "DatasetEvent", "ModelEvent", "HelloEvent", "ResetEvent",
    "StreamOpened", "StreamLost", "StreamUnsupported", "StreamEvent", "StreamItem",
]

EVENTS_PATH = "/api/training/events"
MAX_EVENT_BYTES = 8 * 1024 * 1024  # one event (a job with big params is a few kB): beyond this, a broken server
# Answers that mean "this server has no event stream": poll instead. Anything else is a failure to retry.
_UNSUPPORTED_STATUSES = frozenset({404, 405, 406, 501})
STABLE_STREAM_S = 5.0  # a stream open this long before it broke counts as healthy: reconnect quickly


# -- typed events ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobEvent:
    """A job changed (created, progressed, finished...): its whole current state."""

    revision: int | None
    job: TrainingJob


@dataclass(frozen=True)
class DatasetEvent:
    """A dataset was created, changed or deleted (`dataset` None)."""

    revision: int | None
    dataset_id: str
    dataset: Dataset | None

    @property
    def deleted(self) -> bool:
        return self.dataset is None


@dataclass(frozen=True)
class ModelEvent:
    """A trained model was created, became ready, changed or was deleted (`model` None)."""

    revision: int | None
    model_id: str
    model: TrainedModel | None

    @property
    def deleted(self) -> bool:
        return self.model is None


@dataclass(frozen=True)
class HelloEvent:
    """The first event of a stream opened without `Last-Event-ID`: the server's current revision."""

    revision: int | None
    version: str


@dataclass(frozen=True)
class ResetEvent:
    """The server cannot replay what was missed (or sent something unreadable): fetch everything again."""

    revision: int | None
    reason: str


StreamEvent = JobEvent | DatasetEvent | ModelEvent | HelloEvent | ResetEvent


# -- what happened to the stream ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamOpened:
    """The server accepted the stream; `resumed_from` is the Last-Event-ID sent (None: a fresh start)."""

    resumed_from: int | None


@dataclass(frozen=True)
class StreamLost:
    """The stream could not be opened or broke; the next attempt comes after `retry_in` seconds."""

    error: ApiError
    retry_in: float
    failures: int  # attempts in a row that failed, this one included


@dataclass(frozen=True)
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
        opened_at: float | None = None
        while True:
            try:
                async with AsyncExitStack() as stack:
                    resumed_from = self.last_event_id
                    source = await self._open(stack, resumed_from)
                    self.connected = True
                    opened_at = time.monotonic()
                    yield StreamOpened(resumed_from)
                    async for item in self._read(source):
                        yield item
                    raise CannotConnect(f"The server at {self.client.base_url} closed the event stream.")
            except _Unsupported as unsupported:
                self.connected = False
                yield StreamUnsupported(unsupported.error)
                return
            except ApiError as error:
                self.connected = False
                # A stream that stayed up a while starts the backoff afresh; one the server keeps closing
                # at once (overloaded, resetting) does not, so the delays grow.
                if opened_at is not None and time.monotonic() - opened_at >= STABLE_STREAM_S:
                    self.backoff.reset()
                opened_at = None
                delay = self.backoff.next_delay()
                yield StreamLost(error, delay, self.backoff.failures)
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

    async def _read(self, source: EventSource) -> AsyncIterator[StreamEvent]:
        base_url = self.client.base_url
        try:
            async for sse in source.aiter_sse():
                if sse.retry is not None:
                    self.backoff.use_hint(sse.retry)
                try:
                    event = parse_event(sse)
                except BadResponse as error:
                    # The change it carried is lost: the caller resyncs, the stream goes on.
                    event = ResetEvent(_revision(sse.id), error.message)
                if sse.event == "reset" and _revision(sse.id) is not None:
                    # The server's own revision, even below ours (another database): resume from there.
                    self.last_event_id = _revision(sse.id)
                else:
                    self.note_revision(_revision(sse.id))
                if event is not None:
                    yield event
        except SSEError as exc:
            raise BadResponse(f"The server's event stream is not valid ({exc}).") from exc
        except httpx.TimeoutException as exc:
            raise RequestTimedOut(f"The event stream from {base_url} stalled.") from exc
        except (httpx.HTTPError, OSError) as exc:
            raise CannotConnect(f"The event stream from the server at {base_url} broke "
                                f"({type(exc).__name__}).") from exc


class _Unsupported(Exception):
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error
