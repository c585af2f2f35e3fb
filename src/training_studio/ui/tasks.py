"""TaskSet: the asyncio tasks a store or controller starts, kept alive, reported and cancelled together.

qasync 0.28's loop keeps only weak references to tasks, so an object that starts tasks from Qt slots must
hold them itself. Every store and controller in the GUI does the same four things with its tasks: start
one on the running loop, forget it when it ends, log and report a task that died of an unexpected
exception (an ApiError is handled inside the coroutines; anything reaching here is a bug), and at quit
cancel what is left and wait for it. This class is that, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    def __init__(self, owner: str, on_failure: Callable[[BaseException], None],
                 on_done: Callable[[asyncio.Task[Any]], None] | None = None) -> None:
        self._owner = owner
        self._on_failure = on_failure
        self._on_done = on_done
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_event_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def wait_idle(self) -> None:
        """Until no task is left, including tasks started while waiting."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if self._on_done is not None:
            self._on_done(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.error("%s task failed", self._owner, exc_info=error)
            self._on_failure(error)
