"""Live updates over the real server: GET /api/training/events (server-sent events) and the job list's
`since=` deltas with the X-Training-Studio-Revision header.

Streams are read with httpx and parsed here by hand (the wire format is what is under test); the
stalled consumer is a raw socket that sends its request and never reads. Every wait is on a positive
signal (an event arrived, the server logged a drop, the process exited) with a generous deadline.
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.server.helpers import assert_error, committed_dataset, create_dataset, png_bytes, upload
from tests.support.jobs import create_job, finished, wait_job
from training_studio.contract import parse_timestamp
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID

EVENTS = "/api/training/events"
REVISION_HEADER = "X-Training-Studio-Revision"
WAIT_S = 90.0
TRAINERS = Path(__file__).parent.parent / "runner" / "trainers"


@dataclass
class Sse:
    event: str
    id: int | None
    data: dict

    @property
    def key(self) -> tuple[str, str]:
        return self.event, self.data.get("id", "")


@dataclass
class StreamReader:
    """Reads one event stream in a thread: parsed events land in `events`, the rest in `fields`."""

    url: str
    headers: dict[str, str]
    events: queue.Queue = field(default_factory=queue.Queue)
    retry: list[int] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    error: list[BaseException] = field(default_factory=list)
    status: list[int] = field(default_factory=list)

    def start(self) -> StreamReader:
        self._client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self.url + EVENTS, headers=self.headers) as response:
                self._socket = response.extensions["network_stream"].get_extra_info("socket")
                self.status.append(response.status_code)
                assert response.headers["content-type"].startswith("text/event-stream")
                kind, event_id, data = "message", None, []
                for line in response.iter_lines():
                    if line == "":
                        if data:
                            self.events.put(Sse(kind, event_id, json.loads("\n".join(data))))
                        kind, event_id, data = "message", None, []
                    elif line.startswith(":"):
                        self.comments.append(line)
                    else:
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if name == "event":
                            kind = value
                        elif name == "id":
                            event_id = int(value)
                        elif name == "data":
                            data.append(value)
                        elif name == "retry":
                            self.retry.append(int(value))
        except BaseException as exc:  # noqa: BLE001 - reported to the test through `error`
            self.error.append(exc)
        finally:
            self.ended.set()

    def next(self, timeout: float = WAIT_S) -> Sse:
        deadline = time.monotonic() + timeout
        while True:
            ended = self.ended.is_set()  # read first: an event put before the end is still found below
            try:
                return self.events.get(timeout=0.2)
            except queue.Empty:
                if ended or time.monotonic() > deadline:
                    raise AssertionError(f"no event within {timeout} s (stream ended: {ended}, "
                                         f"error: {self.error})") from None

    def until(self, predicate, timeout: float = WAIT_S) -> list[Sse]:
        """Every event up to and including the first that satisfies `predicate`."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.1, deadline - time.monotonic()))
            seen.append(event)
            if predicate(event):
                return seen

    def close(self) -> None:
        # A blocked read in the reader thread wakes only when its socket is shut down.
        sock = getattr(self, "_socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        self._client.close()


@pytest.fixture
def streams():
    opened: list[StreamReader] = []

    def open_stream(server, last_event_id: str | int | None = None) -> StreamReader:
        headers = dict(server.headers)
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        reader = StreamReader(server.url, headers).start()
        opened.append(reader)
        return reader

    yield open_stream
    for reader in opened:
        reader.close()


def all_jobs(client: httpx.Client) -> dict[str, dict]:
    return {job["id"]: job for job in client.get("/api/training/jobs", params={"status": "all", "limit": 1000}).json()}


def current_revision(client: httpx.Client) -> int:
    return int(client.get("/api/training/jobs").headers[REVISION_HEADER])


def assert_ids_never_decrease(events: list[Sse]) -> None:
    ids = [event.id for event in events]
    assert all(isinstance(i, int) for i in ids), ids
    assert ids == sorted(ids), ids


# --- stream basics ------------------------------------------------------------------------------------
def test_a_fresh_stream_says_hello_with_the_current_revision(pending_server, streams):
    with pending_server.client() as client:
        create_dataset(client, "before")
        revision = current_revision(client)
    reader = streams(pending_server)
    hello = reader.next()
    assert hello.event == "hello" and hello.id == revision and hello.data["revision"] == revision
    assert hello.data["version"]
    assert reader.retry == [3000]


def test_a_quiet_stream_gets_keep_alive_comments_which_the_client_skips(server_factory, streams):
    """The heartbeat comment on the wire (raw reader), and the app's client (EventStream over httpx-sse) reading
    the same quiet server: it yields nothing for the comments and stays open for the next real event."""
    import asyncio

    from training_studio.client import ApiClient
    from training_studio.client.events import DatasetEvent, EventStream, HelloEvent, StreamOpened

    srv = server_factory("heartbeat", extra_args=["--no-runner"], env={"TRAINING_STUDIO_EVENT_HEARTBEAT_S": "0.2"})
    raw = streams(srv)
    assert raw.next().event == "hello"

    def keep_alives() -> int:
        return raw.comments.count(": keep-alive")

    async def until_keep_alives(count: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while keep_alives() < count:
            assert time.monotonic() < deadline, f"only {keep_alives()} keep-alive comments within {WAIT_S} s"
            await asyncio.sleep(0.05)

    async def main() -> list:
        client = ApiClient(srv.url, srv.token, timeout=10)
        items = EventStream(client).run()
        try:
            opened = await asyncio.wait_for(anext(items), WAIT_S)
            hello = await asyncio.wait_for(anext(items), WAIT_S)
            # Both streams are quiet: each gets a comment every 0.2 s; wait for a few on the raw one.
            await until_keep_alives(keep_alives() + 3)

            def create() -> dict:
                with srv.client() as http:
                    return create_dataset(http, "after the heartbeats")

            created = await asyncio.to_thread(create)
            after = await asyncio.wait_for(anext(items), WAIT_S)
            return [opened, hello, after, created]
        finally:
            await items.aclose()
            await client.aclose()

    opened, hello, after, created = asyncio.run(main())
    assert isinstance(opened, StreamOpened) and isinstance(hello, HelloEvent)
    # The next item after hello is the dataset: no item for the comments, and no drop (StreamLost) either.
    assert isinstance(after, DatasetEvent) and after.dataset_id == created["id"]
    assert keep_alives() >= 3 and set(raw.comments) == {": keep-alive"}


def test_the_stream_needs_the_token(pending_server):
    response = httpx.get(pending_server.url + EVENTS, timeout=10)
    assert_error(response, 401, "unauthorized")


def test_datasets_and_models_stream_created_committed_deleted_and_ready(server, streams):
    reader = streams(server)
    assert reader.next().event == "hello"
    with server.client() as client:
        dataset = create_dataset(client, "live")
        created = reader.until(lambda e: e.event == "dataset")[-1]
        assert created.data["id"] == dataset["id"] and created.data["status"] == "processing"
        assert created.id == created.data["revision"]
        assert upload(client, dataset["id"], png_bytes()).status_code == 201
        assert client.post(f"/api/datasets/{dataset['id']}/commit").status_code == 200
        committed = reader.until(lambda e: e.event == "dataset" and e.data["status"] == "active")[-1]
        assert committed.data["image_count"] == 1 and committed.data["revision"] > created.data["revision"]

        job = client.post("/api/training/jobs", json={
            "name": "live run", "dataset_id": dataset["id"], "base_model": BUILTIN_BASE_MODEL_ID,
            "total_steps": 20, "params": {"resolution": 8, "batch_size": 4}}).json()
        seen = reader.until(lambda e: e.event == "job" and e.data["status"] == "completed")
        assert_ids_never_decrease([created, committed, *seen])
        job_events = [e for e in seen if e.event == "job"]
        assert {e.data["id"] for e in job_events} == {job["id"]}
        # Unsent states of one job are superseded by newer ones: "pending" may already be "queued".
        assert job_events[0].data["status"] in ("pending", "queued")
        assert "running" in {e.data["status"] for e in job_events}
        final = job_events[-1].data
        assert final["progress"] == 100 and final["currentStep"] == 20 and final["finishedAt"]
        revisions = [e.data["revision"] for e in job_events]
        assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)
        assert final == client.get("/api/training/status", params={"job_id": job["id"]}).json()

        model_events = [e for e in seen if e.event == "model"]
        if not any(e.data["status"] == "ready" for e in model_events):
            model_events += reader.until(lambda e: e.event == "model" and e.data["status"] == "ready")
        ready = [e for e in model_events if e.data["status"] == "ready"][-1]
        assert ready.data["id"] == final["modelId"] and ready.data["training_job_id"] == job["id"]
        assert ready.data["size_bytes"] > 0

        assert client.delete(f"/api/models/{ready.data['id']}").status_code == 200
        gone = reader.until(lambda e: e.event == "model" and e.data.get("deleted"))[-1]
        assert gone.data["id"] == ready.data["id"] and gone.data["revision"] > ready.data["revision"]
        orphaned = reader.until(lambda e: e.event == "job")[-1]  # its modelId is gone
        assert orphaned.data["id"] == job["id"] and orphaned.data["modelId"] is None

        assert client.delete(f"/api/datasets/{dataset['id']}").status_code == 200
        deleted = reader.until(lambda e: e.event == "dataset" and e.data.get("deleted"))[-1]
        assert deleted.data == {"id": dataset["id"], "deleted": True, "revision": deleted.id}


# --- resuming -----------------------------------------------------------------------------------------
def test_resume_after_kill_9_and_restart_sends_every_missed_change_once(pending_server, streams):
    srv = pending_server
    with srv.client() as client:
        dataset = committed_dataset(client)
        jobs = [create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, name=f"job {i}") for i in range(4)]
    first = streams(srv)
    resume_from = first.next().id
    first.close()
    with srv.client() as client:  # missed while disconnected, before the crash
        assert client.post(f"/api/training/jobs/{jobs[0]['id']}/cancel").status_code == 200
        late = create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, name="late")
        doomed = create_dataset(client, "doomed")
        assert client.delete(f"/api/datasets/{doomed['id']}").status_code == 200
    srv.kill()
    srv.start()
    with srv.client() as client:  # and after the restart
        assert client.post(f"/api/training/jobs/{jobs[1]['id']}/cancel").status_code == 200
        current = current_revision(client)
        server_jobs = all_jobs(client)
    assert current > resume_from

    resumed = streams(srv, last_event_id=resume_from)
    caught_up = resumed.until(lambda event: event.id == current)
    assert all(event.event in ("job", "dataset") for event in caught_up), [e.event for e in caught_up]
    assert_ids_never_decrease(caught_up)
    assert all(event.id > resume_from for event in caught_up)
    keys = [event.key for event in caught_up]
    assert len(keys) == len(set(keys)), "an entity was sent twice"
    changed_jobs = {event.data["id"]: event.data for event in caught_up if event.event == "job"}
    assert set(changed_jobs) == {jobs[0]["id"], jobs[1]["id"], late["id"]}
    for job_id, state in changed_jobs.items():
        assert state == server_jobs[job_id]  # the latest state, as the job list has it
    assert changed_jobs[jobs[1]["id"]]["status"] == "cancelled"
    datasets = [event.data for event in caught_up if event.event == "dataset"]
    assert datasets == [{"id": doomed["id"], "deleted": True, "revision": datasets[0]["revision"]}]

    with srv.client() as client:  # live events follow the catch-up
        after = create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, name="after")
    live = resumed.until(lambda event: event.event == "job" and event.data["id"] == after["id"])[-1]
    assert live.id > current and live.data["status"] == "pending"


def test_unknown_revisions_get_reset_then_live_events(pending_server, server_factory, streams):
    with pending_server.client() as client:
        create_dataset(client, "one")
        current = current_revision(client)
    other = server_factory("other", extra_args=["--no-runner"])
    with other.client() as client:
        create_dataset(client, "elsewhere")
        foreign = current_revision(client)
    for resume_from in ("not-a-revision", current + 1000, 1, foreign, ""):
        reader = streams(pending_server, last_event_id=resume_from)
        first = reader.next()
        if resume_from == "":  # blank is no Last-Event-ID at all
            assert first.event == "hello"
            continue
        assert first.event == "reset", (resume_from, first)
        assert first.id == current and first.data["revision"] == current and first.data["reason"]
    with httpx.Client(timeout=httpx.Timeout(30, read=None)) as http:
        with http.stream("GET", pending_server.url + EVENTS, params={"lastEventId": str(current + 7)},
                         headers=pending_server.headers) as response:
            lines = response.iter_lines()
            assert next(lines) == "retry: 3000" and next(lines) == ""
            assert next(lines) == "event: reset"
    with pending_server.client() as client:
        created = create_dataset(client, "two")
    assert reader.until(lambda event: event.event == "dataset")[-1].data["id"] == created["id"]


# --- the job list's deltas ----------------------------------------------------------------------------
def test_since_answers_only_the_jobs_changed_after_it(pending_server):
    with pending_server.client() as client:
        dataset = committed_dataset(client)
        first, second = (create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, name=name) for name in "ab")
        full = client.get("/api/training/jobs")
        since = int(full.headers[REVISION_HEADER])
        assert {job["id"] for job in full.json()} == {first["id"], second["id"]}
        assert all(job["revision"] <= since for job in full.json())

        assert client.post(f"/api/training/jobs/{first['id']}/cancel").status_code == 200
        third = create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, name="c")
        delta = client.get("/api/training/jobs", params={"status": "active", "since": since})
        assert delta.status_code == 200, delta.text
        # Only the changed jobs, oldest change first; the cancelled one left the active set and is still here.
        assert [job["id"] for job in delta.json()] == [first["id"], third["id"]]
        assert delta.json()[0]["status"] == "cancelled" and delta.json()[0]["finishedAt"]
        now = int(delta.headers[REVISION_HEADER])
        assert now > since and now == max(job["revision"] for job in delta.json())
        assert client.get("/api/training/jobs", params={"since": now}).json() == []
        history = client.get("/api/training/jobs", params={"status": "cancelled", "since": since}).json()
        assert [job["id"] for job in history] == [first["id"]]

        for unknown in (now + 1, 0):
            answer = client.get("/api/training/jobs", params={"since": unknown})
            assert_error(answer, 409, "revision_unknown")
            assert int(answer.headers[REVISION_HEADER]) == now
        assert_error(client.get("/api/training/jobs", params={"since": "yesterday"}), 422, "validation_error")


# --- coalescing, slow clients, shutdown -----------------------------------------------------------------
# 100 progress lines a second, each flushed: far more than the 10 events a second a job may produce.
FAST_PRESET = (f'[[preset]]\nid = "fast"\nname = "fast"\ncommand = [{json.dumps(sys.executable)}, '
               f'{json.dumps(str(TRAINERS / "steady.py"))}, "{{total_steps}}", "0.01"]\nprogress = "jsonl"\n')


def test_a_fast_trainer_streams_in_order_within_the_rate_limit_to_its_final_state(server_factory, tmp_path,
                                                                                    streams):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "presets.toml").write_text(FAST_PRESET)
    srv = server_factory("data")
    reader = streams(srv)
    assert reader.next().event == "hello"
    steps = 400
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "fast", total_steps=steps)
        done = wait_job(client, job["id"], finished, timeout=WAIT_S)
    assert done["status"] == "completed", done
    events = [e for e in reader.until(lambda e: e.event == "job" and e.data["status"] == "completed")
              if e.event == "job"]
    assert events[-1].data == done and events[-1].data["progress"] == 100
    assert events[-1].data["currentStep"] == steps
    step_values = [e.data["currentStep"] or 0 for e in events]
    assert step_values == sorted(step_values)
    # At most one event per 0.1 s per job (plus the status changes, which are never held back), measured
    # on the server's own clock: created ... finished.
    lifetime = (parse_timestamp(done["finishedAt"]) - parse_timestamp(done["createdAt"])).total_seconds()
    assert len(events) <= 10 * lifetime + 6, (len(events), lifetime)
    assert len(events) < steps / 3


def stalled_stream(server) -> socket.socket:
    """A client that asks for the event stream and then never reads a byte."""
    host, port = server.url.split("//")[1].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET {EVENTS} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.token}\r\n\r\n".encode())
    return sock


def server_log(server) -> str:
    return (server.data_dir / "logs" / "server.log").read_text(errors="replace")


def test_a_stalled_client_is_dropped_while_another_receives_every_change(server_factory, streams):
    srv = server_factory("small", extra_args=["--no-runner"], env={
        "TRAINING_STUDIO_EVENT_QUEUE_LIMIT": "8", "TRAINING_STUDIO_EVENT_SEND_BUFFER": "4096"})
    healthy = streams(srv)
    assert healthy.next().event == "hello"
    stalled = stalled_stream(srv)
    try:
        created: list[str] = []
        with srv.client() as client:
            # Changes until the server gives up on the stalled client (bounded: its buffers are small).
            while "dropping it" not in server_log(srv):
                assert len(created) < 5000, "the stalled client was never dropped"
                created.append(create_dataset(client, f"{len(created):05d} " + "x" * 150)["id"])
            last = create_dataset(client, "after the drop")["id"]
        received = healthy.until(lambda event: event.event == "dataset" and event.data["id"] == last)
        assert [e.data["id"] for e in received if e.event == "dataset"] == [*created, last]
        assert_ids_never_decrease(received)
        # The stalled connection is gone: reading it now ends (EOF or reset) instead of waiting for more.
        stalled.settimeout(WAIT_S)
        with pytest.raises((ConnectionResetError, EOFError)):
            while stalled.recv(65536):
                pass
            raise EOFError
    finally:
        stalled.close()


def test_sigterm_ends_open_streams_at_once(pending_server, streams):
    reader = streams(pending_server)
    assert reader.next().event == "hello"
    stalled = stalled_stream(pending_server)
    try:
        pending_server.proc.send_signal(signal.SIGTERM)
        assert pending_server.proc.wait(WAIT_S) == 0
        assert reader.ended.wait(WAIT_S)
        assert not reader.error, reader.error  # a clean end of the stream, not a broken connection
    finally:
        stalled.close()
    log = server_log(pending_server)
    # uvicorn's graceful wait never had to give up on a stream (the sign that one held the shutdown).
    assert "timeout graceful shutdown exceeded" not in log, log[-2000:]


def test_a_slow_reader_that_overflows_reads_reset_last_and_is_dropped_while_another_gets_every_change(
        server_factory, streams):
    """A raw socket reads the stream slowly (512 bytes every 50 ms, far slower than the changes come), so its
    bounded queue overflows; as soon as the server's log says it gives up on it (`FINAL_SEND_TIMEOUT_S`,
    0.5 s, is how long the server waits for the last words of a client that does not read), it reads
    everything: the stream's last event is `reset`, then the response ends and the connection closes.
    Meanwhile another client receives every change."""
    srv = server_factory("small", extra_args=["--no-runner"], env={
        "TRAINING_STUDIO_EVENT_QUEUE_LIMIT": "8", "TRAINING_STUDIO_EVENT_SEND_BUFFER": "4096"})
    healthy = streams(srv)
    assert healthy.next().event == "hello"
    host, port = srv.url.split("//")[1].rsplit(":", 1)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect((host, int(port)))
    slow.sendall(f"GET {EVENTS} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {srv.token}\r\n"
                 "Connection: close\r\n\r\n".encode())
    dropped = threading.Event()
    stop = threading.Event()
    received = bytearray()
    outcome: list[BaseException | str] = []

    def watch_log() -> None:  # the server's word that it dropped the slow client, as soon as it is written
        log_path, offset, tail = srv.data_dir / "logs" / "server.log", 0, b""
        while not stop.is_set():
            with contextlib.suppress(OSError), open(log_path, "rb") as log:
                log.seek(offset)
                new = log.read()
                offset += len(new)
                tail = (tail + new)[-200:]
                if b"dropping it" in tail or b"dropping it" in new:
                    dropped.set()
                    return
            stop.wait(0.005)

    def read_slowly_then_all() -> None:
        try:
            slow.settimeout(0.05)
            while not dropped.is_set() and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    chunk = slow.recv(512)
                    if not chunk:
                        outcome.append("closed before the drop")
                        return
                    received.extend(chunk)
                dropped.wait(0.05)
            slow.settimeout(WAIT_S)
            while chunk := slow.recv(65536):
                received.extend(chunk)
            outcome.append("eof")
        except BaseException as exc:  # noqa: BLE001 - reported to the test through `outcome`
            outcome.append(exc)

    threads = [threading.Thread(target=target, daemon=True) for target in (watch_log, read_slowly_then_all)]
    for thread in threads:
        thread.start()
    try:
        created: list[str] = []
        with srv.client() as client:
            while not dropped.is_set():
                assert len(created) < 5000, "the slow client was never dropped"
                created.append(create_dataset(client, f"{len(created):05d} " + "x" * 150)["id"])
            last = create_dataset(client, "after the drop")["id"]
        threads[1].join(WAIT_S)
        assert outcome == ["eof"], outcome  # the server ended the response and closed: no abort
        body = bytes(received)
        assert body.startswith(b"HTTP/1.1 200"), body[:200]
        final = body.rfind(b"event: ")
        assert body[final:].startswith(b"event: reset\n"), body[final - 300:]
        reset = body[final:].split(b"\n\n", 1)[0].decode()
        assert '"reason":"this client fell too far behind"' in reset, reset
        assert body.endswith(b"\r\n0\r\n\r\n"), body[-100:]  # the last chunk: the response ended there
        reset_id = int(reset.split("\nid: ", 1)[1].split("\n", 1)[0])
        ids = [int(line[4:]) for line in body.decode(errors="replace").split("\n") if line.startswith("id: ")]
        assert ids[-1] == reset_id and ids == sorted(ids)

        received_events = healthy.until(lambda event: event.event == "dataset" and event.data["id"] == last)
        assert [e.data["id"] for e in received_events if e.event == "dataset"] == [*created, last]
        assert_ids_never_decrease(received_events)
    finally:
        stop.set()
        slow.close()
        for thread in threads:
            thread.join(10)
