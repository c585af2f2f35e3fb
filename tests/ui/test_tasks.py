"""TaskSet: tasks kept alive, failures reported once, cancel and wait at quit."""

from __future__ import annotations

import asyncio

from training_studio.ui.tasks import TaskSet


def test_a_failing_task_is_reported_and_forgotten_and_finished_ones_too():
    failures: list[BaseException] = []
    done: list[asyncio.Task] = []

    async def scenario() -> None:
        tasks = TaskSet("test", failures.append, on_done=done.append)

        async def boom() -> None:
            raise RuntimeError("boom")

        async def fine() -> int:
            return 1

        tasks.spawn(boom())
        tasks.spawn(fine())
        assert len(tasks) == 2
        await tasks.wait_idle()
        assert len(tasks) == 0

    asyncio.run(scenario())
    assert [str(error) for error in failures] == ["boom"]
    assert len(done) == 2


def test_wait_idle_waits_for_tasks_started_meanwhile_and_cancel_all_is_not_a_failure():
    failures: list[BaseException] = []
    order: list[str] = []

    async def scenario() -> None:
        tasks = TaskSet("test", failures.append)

        async def second() -> None:
            await asyncio.sleep(0.05)
            order.append("second")

        async def first() -> None:
            tasks.spawn(second())
            order.append("first")

        tasks.spawn(first())
        await tasks.wait_idle()
        assert order == ["first", "second"]

        tasks.spawn(asyncio.sleep(60))
        tasks.cancel_all()
        await tasks.wait_idle()
        assert len(tasks) == 0

    asyncio.run(scenario())
    assert failures == []
