"""Keeping the garbage collector out of the GUI thread's frames during an update storm.

This module owns `GcPacing`: the jobs store tells it how many live job updates each frame applied, and while
they come faster than `HOLD_RATE` a second it holds the cyclic garbage collector's automatic collections off
(`gc.disable()`). Why: at 10,000 job updates a second every update is a new job object the model keeps for
about a second, so those objects keep outliving young collections, and CPython then runs a full collection
every 2-3 s: it walks every tracked object of the process (Qt wrappers, modules, the 10,000 jobs the model
holds and their field dicts and sets: some 150,000 objects), 40-200 ms on a loaded 2-core machine, measured as
the longest event-loop stall of the live-storm benchmark; the young collections in between (up to 5 ms of CPU
each, a few a second) walk the jobs of the last second. (Freezing the heap instead, `gc.freeze()`, would clash
with the dataset import, which freezes and unfreezes it for its own stalls.)

Holding collections off frees nothing less: objects go when their reference count drops to zero, collections
only find garbage reference cycles, which wait for the release. So the hold ends `RELEASE_AFTER_S` after the
storm (`tick()`, called every second), and at the latest after `MAX_HOLD_S` of a storm that never ends: one full
collection then (`gc.enable()`, `gc.collect()`), a single pause where the storm alone would have made dozens.
A collector that was already disabled (by anyone else) is left alone.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

__all__ = ["GcPacing", "HOLD_RATE", "RELEASE_AFTER_S", "MAX_HOLD_S"]

HOLD_RATE = 2_000.0  # job updates applied per second from which collections are held off
RATE_WINDOW_S = 0.25  # the rate is measured over windows this long
RELEASE_AFTER_S = 3.0  # the hold ends once the rate stayed below HOLD_RATE this long
MAX_HOLD_S = 60.0  # ...or after this long of an endless storm (one full collection, then held again)


class GcPacing:
    """See the module docstring. The gc module's functions are used unless others are given (tests)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 isenabled: Callable[[], bool] = gc.isenabled, disable: Callable[[], None] = gc.disable,
                 enable: Callable[[], None] = gc.enable, collect: Callable[[], object] = gc.collect) -> None:
        self._clock = clock
        self._isenabled = isenabled
        self._disable = disable
        self._enable = enable
        self._collect = collect
        self._window_start = clock()
        self._window_jobs = 0
        self._busy_at: float | None = None  # when a window last reached HOLD_RATE
        self._held_since: float | None = None

    @property
    def holding(self) -> bool:
        return self._held_since is not None

    def applied(self, jobs: int) -> None:
        """A frame applied `jobs` live job updates."""
        now = self._clock()
        self._window_jobs += jobs
        elapsed = now - self._window_start
        if elapsed >= RATE_WINDOW_S:
            if self._window_jobs / elapsed >= HOLD_RATE:
                self._busy_at = now
            self._window_start = now
            self._window_jobs = 0
        if self._busy_at is None or now - self._busy_at > RELEASE_AFTER_S:
            return
        if self._held_since is not None:
            if now - self._held_since >= MAX_HOLD_S:
                self.release()
                self._busy_at = now  # still storming: held again from the next frame on
            return
        if self._isenabled():
            self._disable()
            self._held_since = now

    def tick(self) -> None:
        """Called every second or so: ends the hold once the storm is over."""
        if self._held_since is not None and (self._busy_at is None
                                             or self._clock() - self._busy_at > RELEASE_AFTER_S):
            self.release()

    def release(self) -> None:
        """End the hold now (also when the store shuts down): collections on again, and one full one."""
        if self._held_since is None:
            return
        self._held_since = None
        self._busy_at = None
        self._enable()
        self._collect()
