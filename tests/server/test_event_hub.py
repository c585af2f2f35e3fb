"""The live-update hub on its own (server/events.py): per-job coalescing, resume cursors and the bounded
subscriber queue, driven on a real asyncio loop with the same Change objects storage hands it.

The runner writes a job's progress at most every 0.25 s, so through a real server the 10-a-second limit is
never the one that bites (tests/server/test_events.py checks the end-to-end stream); here changes arrive as
fast as a load generator can make them.
"""

from __future__ import annotations

import asyncio
import threading
import time

from training_studio.contract import Dataset, TrainingJob
from training_studio.server.events import EventHub, Subscription
from training_studio.server.storage import Change


def job_change(revision: int, job_id: str = "a", status: str = "running", step: int = 0) -> Change:
    job = TrainingJob(id=job_id, name=job_id, status=status, created_at="2026-01-01T00:00:00.000Z",
                      current_step=step, total_steps=10_000, revision=revision)
    return Change("job", job_id, revision, job)


def dataset_change(revision: int, dataset_id: str) -> Change:
    dataset = Dataset(id=dataset_id, name=dataset_id, type="image", status="processing",
                      created_at="2026-01-01T00:00:00.000Z", updated_at="2026-01-01T00:00:00.000Z",
                      revision=revision)
    return Change("dataset", dataset_id, revision, dataset)


async def drain_until(subscription: Subscription, revision: int, timeout: float = 30.0) -> list[tuple[int, int]]:
    """(revision, cursor) of everything taken until an event with `revision` arrives."""
    taken: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout
    while not any(rev == revision for rev, _cursor in taken):
        assert time.monotonic() < deadline, f"revision {revision} never arrived; got {taken[-5:]}"
        try:
            await asyncio.wait_for(subscription.wake.wait(), 0.5)
        except TimeoutError:
            continue
        taken += [(event.revision, cursor) for event, cursor in subscription.take(10_000)]
    return taken


def test_a_job_s_changes_go_out_at_most_ten_a_second_and_the_latest_always():
    async def scenario() -> tuple[list[tuple[int, int]], float, int]:
        hub = EventHub()
        hub.start(asyncio.get_running_loop())
        subscription = hub.subscribe()
        count = 3000

        def producer() -> None:  # a writer thread, as storage's are
            for revision in range(1, count + 1):
                hub.publish_threadsafe([job_change(revision, step=revision)])
                time.sleep(0.0003)

        started = time.monotonic()
        thread = threading.Thread(target=producer)
        thread.start()
        taken = await drain_until(subscription, count)
        elapsed = time.monotonic() - started
        thread.join()
        return taken, elapsed, count

    taken, elapsed, count = asyncio.run(scenario())
    revisions = [revision for revision, _cursor in taken]
    assert revisions[0] == 1  # the first change goes out at once
    assert revisions[-1] == count  # the trailing edge: the latest state is sent
    assert revisions == sorted(revisions)
    assert len(taken) <= 10 * elapsed + 2, (len(taken), elapsed)
    assert len(taken) < count / 10


def test_a_change_of_status_is_never_held_back_and_supersedes_the_held_progress():
    async def scenario() -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
        hub = EventHub()
        hub.start(asyncio.get_running_loop())
        subscription = hub.subscribe()
        hub.publish_threadsafe([job_change(1, step=1), job_change(2, step=2)])
        first = await drain_until(subscription, 1)
        hub.publish_threadsafe([job_change(3, status="completed")])
        second = await drain_until(subscription, 3)
        return first, second, len(hub._held)

    # 1 goes at once, 2 waits for the job's next slot, 3 (completed) goes at once and replaces 2 for good.
    first, second, still_held = asyncio.run(scenario())
    assert first == [(1, 1)] and second == [(3, 3)] and still_held == 0


def test_while_a_job_event_is_held_later_events_carry_a_cursor_below_it():
    async def scenario() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        hub = EventHub()
        hub.start(asyncio.get_running_loop())
        subscription = hub.subscribe()
        hub.publish_threadsafe([job_change(1, "a", step=1), job_change(2, "a", step=2), dataset_change(3, "d")])
        await asyncio.sleep(0)  # the loop runs the publication
        await asyncio.sleep(0)
        first = [(event.revision, cursor) for event, cursor in subscription.take(10)]
        later = await drain_until(subscription, 2)
        return first, later

    first, later = asyncio.run(scenario())
    # Job a's revision 2 waits for its slot: the dataset's event may not claim "everything up to 3".
    assert first == [(1, 1), (3, 1)]
    assert later == [(2, 3)]


def test_a_subscriber_that_falls_behind_overflows_and_keeps_nothing():
    async def scenario() -> tuple[Subscription, Subscription]:
        hub = EventHub(queue_limit=3)
        hub.start(asyncio.get_running_loop())
        slow, fast = hub.subscribe(), hub.subscribe()
        for revision in range(1, 6):
            hub.publish_threadsafe([dataset_change(revision, f"d{revision}")])
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            fast.take(100)
        hub.publish_threadsafe([dataset_change(6, "d1")])  # an entity already pending replaces its old state
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return slow, fast

    slow, fast = asyncio.run(scenario())
    assert slow.overflowed and not slow.pending
    assert not fast.overflowed and [event.revision for event, _cursor in fast.take(10)] == [6]


def test_a_stream_that_falls_behind_ends_with_reset(tmp_path):
    """The whole stream response over a real Storage, with an ASGI server played by two coroutines: three
    datasets created in one go overflow a queue of two before the stream's writer runs again."""
    from training_studio.server.events import EventStreamResponse
    from training_studio.server.storage import Storage

    async def scenario() -> list[dict]:
        storage = Storage(tmp_path / "data")
        hub = EventHub(queue_limit=2)
        hub.start(asyncio.get_running_loop(), storage.current_revision())
        storage.set_change_listener(hub.publish_threadsafe)
        sent: list[dict] = []
        client_left = asyncio.Event()

        async def send(message: dict) -> None:
            sent.append(message)

        async def receive() -> dict:
            await client_left.wait()
            return {"type": "http.disconnect"}

        scope = {"type": "http", "path": "/api/training/events", "client": ("127.0.0.1", 1)}
        stream = asyncio.create_task(EventStreamResponse(hub, storage, None)(scope, receive, send))
        deadline = time.monotonic() + 30
        while not any(b"event: hello" in message.get("body", b"") for message in sent):
            assert time.monotonic() < deadline and not stream.done()
            await asyncio.sleep(0.01)
        for name in ("a", "b", "c"):  # their notifications all run before the writer's next turn
            storage.create_dataset(name, "image")
        await asyncio.wait_for(stream, 30)
        storage.close()
        return sent

    sent = asyncio.run(scenario())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    last = sent[-1]
    assert last["more_body"] is False
    assert last["body"].startswith(b"event: reset\nid: ") and b'"reason":' in last["body"]
    assert not any(b"event: dataset" in message.get("body", b"") for message in sent)
