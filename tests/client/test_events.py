"""The event stream client: parsing, ids, Last-Event-ID on reconnect, backoff, fallbacks and bounds.

Parsing and backoff are plain functions. The stream itself runs against `ScriptedEventServer`, a
labelled fake on a real socket (tests/support/sse_server.py), for what the real server never does on
purpose; resuming across a real server restart is tested against the real server in tests/ui.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest
from httpx_sse import ServerSentEvent

from training_studio.client import ApiClient, AuthFailed, BadResponse, CannotConnect, NotFound, RequestTimedOut
from training_studio.client.events import (
    Backoff,
    DatasetEvent,
    EventStream,
    HelloEvent,
    JobEvent,
    ModelEvent,
    ResetEvent,
    StreamLost,
    StreamOpened,
    StreamUnsupported,
    parse_event,
)
from training_studio.contract.models import JobStatus
from tests.support.faulty_server import job_json
from tests.support.sse_server import Script, ScriptedEventServer, sse


def model_json(model_id: str = "m1", **extra) -> dict:
    return {"id": model_id, "name": "my model", "base_model": "b", "status": "ready",
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z", **extra}


def dataset_json(dataset_id: str = "d1", **extra) -> dict:
    return {"id": dataset_id, "name": "shapes", "type": "image", "status": "active",
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z", **extra}


# -- parsing ---------------------------------------------------------------------------------------------

def test_a_job_event_carries_the_contract_model_and_its_revision():
    event = parse_event(ServerSentEvent("job", json.dumps(job_json("a", revision=7, status="completed")), "7"))
    assert isinstance(event, JobEvent)
    assert event.revision == 7 and event.job.id == "a" and event.job.status is JobStatus.COMPLETED


def test_the_id_stands_in_for_a_revision_the_data_does_not_carry():
    event = parse_event(ServerSentEvent("job", json.dumps(job_json("a")), "12"))
    assert isinstance(event, JobEvent) and event.revision == 12


def test_dataset_and_model_events_and_their_deletions():
    created = parse_event(ServerSentEvent("model", json.dumps(model_json("m1", revision=3)), "3"))
    assert isinstance(created, ModelEvent) and not created.deleted and created.model.name == "my model"
    gone = parse_event(ServerSentEvent("model", json.dumps({"id": "m1", "deleted": True, "revision": 4}), "4"))
    assert isinstance(gone, ModelEvent) and gone.deleted and gone.model_id == "m1" and gone.revision == 4
    dataset = parse_event(ServerSentEvent("dataset", json.dumps(dataset_json("d1")), "5"))
    assert isinstance(dataset, DatasetEvent) and dataset.dataset.id == "d1" and dataset.revision == 5
    deleted = parse_event(ServerSentEvent("dataset", json.dumps({"id": "d1", "deleted": True}), "6"))
    assert isinstance(deleted, DatasetEvent) and deleted.deleted and deleted.revision == 6


def test_hello_and_reset():
    hello = parse_event(ServerSentEvent("hello", json.dumps({"revision": 41, "version": "0.1.0"}), "41"))
    assert hello == HelloEvent(41, "0.1.0")
    reset = parse_event(ServerSentEvent("reset", json.dumps({"revision": 41, "reason": "too old"}), "41"))
    assert reset == ResetEvent(41, "too old")


@pytest.mark.parametrize("kind", ["message", "progress", "keepalive", "Job"])
def test_types_we_do_not_know_are_ignored(kind):
    assert parse_event(ServerSentEvent(kind, "{not even json", "3")) is None


@pytest.mark.parametrize("kind, data, words", [
    ("job", "{not json", "not JSON"),
    ("job", json.dumps({"id": "a"}), "does not match the contract"),
    ("job", json.dumps(job_json("a", progress="lots")), "progress"),
    ("model", json.dumps([1, 2]), "not an object"),
    ("dataset", json.dumps({"deleted": True}), "without an id"),
])
def test_a_malformed_known_event_is_a_bad_response_naming_its_type(kind, data, words):
    with pytest.raises(BadResponse) as caught:
        parse_event(ServerSentEvent(kind, data, "1"))
    assert f"“{kind}”" in caught.value.message and words in caught.value.message


# -- backoff ---------------------------------------------------------------------------------------------

def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half():
    low = Backoff(first=0.25, cap=3.0, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(6)] == [0.125, 0.25, 0.5, 1.0, 1.5, 1.5]
    high = Backoff(first=0.25, cap=3.0, rng=lambda: 1.0)
    assert [high.next_delay() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]
    high.reset()
    assert high.next_delay() == 0.25


def test_the_servers_retry_hint_becomes_the_cap_within_bounds():
    backoff = Backoff(first=1.0, cap=3.0, rng=lambda: 1.0)
    backoff.use_hint(10_000)
    assert [backoff.next_delay() for _ in range(6)][-1] == 10.0
    backoff.use_hint(10)  # far too eager
    assert backoff.cap == backoff.min_cap
    backoff.use_hint(10 ** 9)  # "come back next week"
    assert backoff.cap == backoff.max_cap


# -- the stream against a scripted server -----------------------------------------------------------------

@pytest.fixture
def scripted():
    server = ScriptedEventServer().start()
    yield server
    server.stop()


def collect(url: str, count: int, *, token: str | None = "secret", last_event_id: int | None = None,
            backoff: Backoff | None = None, timeout: float = 10.0, header_timeout: float | None = None,
            max_event_bytes: int | None = None) -> tuple[list, EventStream]:
    """The first `count` items of a stream (fewer if it ends), with the stream object."""
    items: list = []

    async def main():
        client = ApiClient(url, token, timeout=2.0)
        extra = {} if max_event_bytes is None else {"max_event_bytes": max_event_bytes}
        stream = EventStream(client, last_event_id=last_event_id,
                             backoff=backoff or Backoff(first=0.01, cap=0.05), header_timeout=header_timeout,
                             **extra)
        try:
            async def read():
                async for item in stream.run():
                    items.append(item)
                    if len(items) >= count:
                        return
            await asyncio.wait_for(read(), timeout)
        finally:
            await client.aclose()
        return stream

    return items, asyncio.run(main())


def kinds(items: list) -> list[str]:
    return [type(item).__name__ for item in items]


def test_events_arrive_typed_in_order_and_comments_are_skipped(scripted):
    scripted.scripts = [Script(chunks=[
        b"retry: 3000\n\n",
        sse("hello", json.dumps({"revision": 5, "version": "9.9"}), 5),
        b": keep-alive\n\n",
        sse("job", json.dumps(job_json("a", revision=6)), 6),
        sse("mystery", "whatever", 7),
        sse("model", json.dumps(model_json("m", revision=8)), 8),
    ], hold_open=True)]
    items, stream = collect(scripted.url, 4)
    assert kinds(items) == ["StreamOpened", "HelloEvent", "JobEvent", "ModelEvent"]
    assert items[0] == StreamOpened(None)
    assert items[2].job.id == "a" and items[3].model.id == "m"
    assert stream.last_event_id == 8  # the unknown event's id counts too: it was delivered
    assert stream.backoff.cap == 3.0
    headers = scripted.requests[0]
    assert headers["Authorization"] == "Bearer secret"
    assert headers["Accept"] == "text/event-stream"
    assert "Last-Event-ID" not in headers


def test_a_dropped_stream_reconnects_with_the_highest_id_seen(scripted):
    scripted.scripts = [
        Script(chunks=[sse("job", json.dumps(job_json("a")), 3), sse("job", json.dumps(job_json("b")), 4)]),
        Script(chunks=[sse("job", json.dumps(job_json("c")), 9)]),
        Script(hold_open=True),
    ]
    items, _stream = collect(scripted.url, 8, last_event_id=2)
    assert kinds(items) == ["StreamOpened", "JobEvent", "JobEvent", "StreamLost",
                            "StreamOpened", "JobEvent", "StreamLost", "StreamOpened"]
    assert [item.resumed_from for item in items if isinstance(item, StreamOpened)] == [2, 4, 9]
    assert [headers.get("Last-Event-ID") for headers in scripted.requests] == ["2", "4", "9"]
    lost = items[3]
    assert isinstance(lost.error, CannotConnect) and "closed the event stream" in lost.error.message


def test_a_server_that_keeps_closing_the_stream_at_once_gets_growing_delays(scripted):
    scripted.scripts = [Script(chunks=[b": hi\n\n"])]  # opens, then closes straight away, every time
    items, _stream = collect(scripted.url, 6)
    lost = [item for item in items if isinstance(item, StreamLost)]
    assert kinds(items) == ["StreamOpened", "StreamLost"] * 3
    assert [item.failures for item in lost] == [1, 2, 3]  # not reset by each short-lived open


def test_a_malformed_event_asks_for_a_resync_and_the_stream_goes_on(scripted):
    scripted.scripts = [Script(chunks=[
        sse("job", "{half a job", 3),
        sse("job", json.dumps(job_json("ok")), 4),
    ], hold_open=True)]
    items, stream = collect(scripted.url, 3)
    assert kinds(items) == ["StreamOpened", "ResetEvent", "JobEvent"]
    assert "not JSON" in items[1].reason
    assert stream.last_event_id == 4


@pytest.mark.parametrize("script", [
    Script(status=404, content_type="application/json",
           chunks=[b'{"error": {"code": "not_found", "message": "no such route"}}']),
    Script(status=405, content_type="text/plain", chunks=[b"Method Not Allowed"]),
    Script(status=200, content_type="text/html", chunks=[b"<html>a catch-all page</html>"]),
])
def test_a_server_without_an_event_stream_is_told_apart_and_the_iterator_ends(scripted, script):
    scripted.scripts = [script]
    items, _stream = collect(scripted.url, 5)
    assert kinds(items) == ["StreamUnsupported"]
    if script.status == 404:
        assert isinstance(items[0].error, NotFound)
    else:
        assert items[0].error.message


def test_a_server_error_or_a_rejected_token_is_retried_not_taken_as_unsupported(scripted):
    scripted.scripts = [
        Script(status=500, content_type="application/json",
               chunks=[b'{"error": {"code": "internal", "message": "database is locked"}}']),
        Script(status=401, content_type="application/json",
               chunks=[b'{"error": {"code": "unauthorized", "message": "bad token"}}']),
        Script(hold_open=True),
    ]
    items, _stream = collect(scripted.url, 3)
    assert kinds(items) == ["StreamLost", "StreamLost", "StreamOpened"]
    assert "HTTP 500: database is locked." in items[0].error.message
    assert isinstance(items[1].error, AuthFailed)
    assert items[1].failures == 2


def test_an_endless_event_is_dropped_not_buffered(scripted):
    endless = [b"event: job\n"] + [b"data: " + b"x" * 60_000 + b"\n"] * 40  # 2.4 MB, never a blank line
    scripted.scripts = [Script(chunks=endless, hold_open=True), Script(hold_open=True)]
    items, _stream = collect(scripted.url, 3, max_event_bytes=1024 * 1024)
    assert kinds(items) == ["StreamOpened", "StreamLost", "StreamOpened"]
    assert isinstance(items[1].error, BadResponse) and "larger than 1 MB" in items[1].error.message


def test_many_small_events_are_not_mistaken_for_one_big_one(scripted):
    events = [sse("job", json.dumps(job_json(f"j{n}")), n) for n in range(1, 301)]
    scripted.scripts = [Script(chunks=[b"".join(events)], hold_open=True)]  # 300 events in one write
    items, stream = collect(scripted.url, 301, max_event_bytes=4096)
    assert kinds(items).count("JobEvent") == 300 and stream.last_event_id == 300


def test_events_come_in_lists_per_chunk_decoded_not_one_by_one(scripted):
    events = [sse("job", json.dumps(job_json(f"j{n}", revision=n)), n) for n in range(1, 301)]
    scripted.scripts = [Script(chunks=[b"".join(events)], hold_open=True)]  # 300 events in one write

    async def main():
        client = ApiClient(scripted.url, "t", timeout=2.0)
        stream = EventStream(client, backoff=Backoff(first=0.01, cap=0.05))
        batches = []
        try:
            async def read():
                async for batch in stream.run_batches():
                    batches.append(batch)
                    if sum(len(b) for b in batches) >= 301:
                        return
            await asyncio.wait_for(read(), 30)
        finally:
            await client.aclose()
        return batches, stream

    batches, stream = asyncio.run(main())
    items = [item for batch in batches for item in batch]
    assert kinds(items) == ["StreamOpened"] + ["JobEvent"] * 300
    assert [item.job.id for item in items[1:]] == [f"j{n}" for n in range(1, 301)]
    # A list per decoded chunk of the body (150 kB: a handful of reads), never one per event.
    assert all(batches) and len(batches) <= 50, [len(batch) for batch in batches]
    assert stream.last_event_id == 300


def test_a_burst_bigger_than_the_decode_backlog_arrives_whole_and_in_order(scripted):
    # About 6 MB in one write: more than MAX_DECODE_BACKLOG, so reading pauses for the decoder thread.
    events = [sse("job", json.dumps(job_json(f"j{n}", revision=n, params={"pad": "x" * 400})), n)
              for n in range(1, 12_001)]
    scripted.scripts = [Script(chunks=[b"".join(events)], hold_open=True)]
    items, stream = collect(scripted.url, 12_001, timeout=120)
    assert kinds(items) == ["StreamOpened"] + ["JobEvent"] * 12_000
    assert [item.revision for item in items[1:]] == list(range(1, 12_001))
    assert stream.last_event_id == 12_000


def test_nothing_listening_is_cannot_connect_and_retried():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    items, _stream = collect(f"http://127.0.0.1:{port}", 2)
    assert kinds(items) == ["StreamLost", "StreamLost"]
    assert isinstance(items[0].error, CannotConnect) and "connection refused" in items[0].error.message


def test_a_server_that_never_answers_the_request_times_out_on_the_headers_only():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # accepts and never answers: a wedged server
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        items, _stream = collect(f"http://127.0.0.1:{listener.getsockname()[1]}", 1, header_timeout=0.3)
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
    assert kinds(items) == ["StreamLost"]
    assert isinstance(items[0].error, RequestTimedOut) and "did not open the event stream" in items[0].error.message


def test_an_open_stream_has_no_read_timeout(scripted):
    # Silent for longer than the client's whole request timeout (2 s), then an event: still the same stream.
    scripted.scripts = [Script(chunks=[b": hi\n\n", sse("job", json.dumps(job_json("late")), 1)], pause=2.5,
                               hold_open=True)]
    items, _stream = collect(scripted.url, 2, header_timeout=1.0)
    assert kinds(items) == ["StreamOpened", "JobEvent"] and items[1].job.id == "late"


def test_reconnect_now_cuts_the_backoff_short(scripted):
    scripted.scripts = [Script(status=503, content_type="application/json", chunks=[b"{}"]), Script(hold_open=True)]

    async def main():
        client = ApiClient(scripted.url, "t", timeout=2.0)
        stream = EventStream(client, backoff=Backoff(first=60.0, cap=60.0))
        seen = []
        try:
            async def read():
                async for item in stream.run():
                    seen.append(item)
                    if isinstance(item, StreamLost):
                        asyncio.get_running_loop().call_later(0.05, stream.reconnect_now)
                    if isinstance(item, StreamOpened):
                        return
            await asyncio.wait_for(read(), 10)
        finally:
            await client.aclose()
        return seen

    seen = asyncio.run(main())
    assert kinds(seen) == ["StreamLost", "StreamOpened"] and seen[0].retry_in >= 30


def test_not_connected_yet_is_a_lost_stream_not_a_crash():
    items, _stream = collect("", 1)
    assert kinds(items) == ["StreamLost"] and "Not connected" in items[0].error.message


def test_a_job_tombstone_is_a_typed_deletion():
    """A deleted job's `job` event (issue 16) is a JobDeleted, not a contract error."""
    from httpx_sse import ServerSentEvent

    from training_studio.client.events import JobDeleted, parse_event

    event = parse_event(ServerSentEvent(event="job", data='{"id": "j1", "deleted": true, "revision": 42}', id="42"))
    assert event == JobDeleted(42, "j1")
    # A job whose name merely contains the word is still a job.
    job = parse_event(ServerSentEvent(event="job", id="43", data=(
        '{"id": "j2", "name": "\\"deleted\\" run", "status": "running", "createdAt": "2026-01-01T00:00:00.000Z",'
        ' "revision": 43}')))
    assert job.job.name == '"deleted" run'
