"""GUI test setup: one qasync event loop for the whole session, per-test task cleanup, and a probe
timer that records the longest stall of the GUI thread.

A qasync loop cannot be created and closed per test (from the second one on, its timers never fire),
so a session-scoped `QEventLoop(qapp, already_running=True)` runs under pytest-qt's QApplication and
tests are plain functions that start work with `loop.create_task(...)` and wait with
qtbot.waitUntil/waitSignal (never qtbot.wait* inside a coroutine).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import qasync
from PySide6.QtCore import QTimer


@pytest.fixture(scope="session")
def qasync_loop(qapp):
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    # It is marked running only inside the tests that use it (see `loop`), so tests elsewhere in the
    # session can still call asyncio.run().
    asyncio.events._set_running_loop(None)
    yield loop
    asyncio.events._set_running_loop(loop)
    for task in asyncio.all_tasks(loop):
        task.cancel()
    qapp.processEvents()
    loop.stop()
    loop.close()
    asyncio.events._set_running_loop(None)


@pytest.fixture
def loop(qasync_loop, qapp, qtbot):
    """The shared loop; tasks a test leaves behind are cancelled and drained afterwards."""
    asyncio.events._set_running_loop(qasync_loop)
    try:
        yield qasync_loop
        tasks = [task for task in asyncio.all_tasks(qasync_loop) if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            qtbot.waitUntil(lambda: all(task.done() for task in tasks), timeout=10_000)
        qapp.processEvents()
    finally:
        asyncio.events._set_running_loop(None)


class StallProbe:
    """Fires every 50 ms; `longest_gap` is the longest time the GUI thread did not get to it."""

    def __init__(self) -> None:
        self.longest_gap = 0.0
        self._last = time.monotonic()
        self.timer = QTimer()
        self.timer.setInterval(50)
        self.timer.timeout.connect(self._fired)

    def start(self) -> "StallProbe":
        self._last = time.monotonic()
        self.timer.start()
        return self

    def _fired(self) -> None:
        now = time.monotonic()
        self.longest_gap = max(self.longest_gap, now - self._last)
        self._last = now

    def reset(self) -> None:
        """Forget gaps so far (e.g. after the test itself blocked the thread on purpose)."""
        self.longest_gap = 0.0
        self._last = time.monotonic()

    def stop(self) -> None:
        self.timer.stop()


@pytest.fixture
def stall_probe(qapp):
    probe = StallProbe().start()
    yield probe
    probe.stop()


from tests.ui.app_fixtures import harness  # noqa: E402,F401  (fixture re-export)
