"""GcPacing: when the live-update storm hold on garbage collections starts and ends.

Plain tests: a hand-driven clock, and the gc switches replaced by recorders (the real ones are process-wide);
the last test drives the real collector with the real clock.
"""

from __future__ import annotations

import gc
import time

from training_studio.ui.gc_pacing import HOLD_RATE, MAX_HOLD_S, RELEASE_AFTER_S, GcPacing


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Collector:
    """Records what GcPacing asks of the collector, and keeps its on/off state."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.calls: list[str] = []

    def disable(self) -> None:
        self.enabled = False
        self.calls.append("disable")

    def enable(self) -> None:
        self.enabled = True
        self.calls.append("enable")

    def collect(self) -> None:
        self.calls.append("collect")


def pacing(enabled: bool = True) -> tuple[GcPacing, Clock, Collector]:
    clock, collector = Clock(), Collector(enabled)
    pace = GcPacing(clock=clock, isenabled=lambda: collector.enabled, disable=collector.disable,
                    enable=collector.enable, collect=collector.collect)
    return pace, clock, collector


def frames(pace: GcPacing, clock: Clock, seconds: float, per_second: float) -> None:
    """60 frames a second for `seconds`, applying `per_second` job updates a second in all."""
    for _ in range(int(seconds * 60)):
        clock.now += 1 / 60
        pace.applied(int(per_second / 60))


def test_a_trickle_of_updates_never_touches_the_collector():
    pace, clock, collector = pacing()
    frames(pace, clock, 10, HOLD_RATE / 4)
    pace.tick()
    assert collector.calls == [] and not pace.holding


def test_a_storm_holds_collections_off_until_it_is_over_then_collects_once():
    pace, clock, collector = pacing()
    frames(pace, clock, 5, HOLD_RATE * 5)
    assert pace.holding and collector.calls == ["disable"] and not collector.enabled
    # Calm: the tick ends the hold only once RELEASE_AFTER_S passed without a busy window.
    clock.now += RELEASE_AFTER_S / 2
    pace.tick()
    assert pace.holding and collector.calls == ["disable"]
    clock.now += RELEASE_AFTER_S
    pace.tick()
    assert not pace.holding and collector.calls == ["disable", "enable", "collect"] and collector.enabled
    pace.tick()
    assert collector.calls == ["disable", "enable", "collect"]


def test_an_endless_storm_gets_one_full_collection_at_least_every_max_hold():
    pace, clock, collector = pacing()
    frames(pace, clock, MAX_HOLD_S * 2.5, HOLD_RATE * 3)
    assert collector.calls == ["disable", "enable", "collect"] * 2 + ["disable"]
    assert pace.holding


def test_a_collector_someone_else_disabled_is_left_alone():
    pace, clock, collector = pacing(enabled=False)
    frames(pace, clock, 5, HOLD_RATE * 5)
    clock.now += RELEASE_AFTER_S * 2
    pace.tick()
    pace.release()
    assert collector.calls == [] and not collector.enabled


def test_release_at_shutdown_only_when_holding():
    pace, clock, collector = pacing()
    pace.release()
    assert collector.calls == []
    frames(pace, clock, 1, HOLD_RATE * 2)
    pace.release()
    assert collector.calls == ["disable", "enable", "collect"] and not pace.holding


def test_the_real_collector_is_off_during_a_hold_and_on_after_it():
    assert gc.isenabled()
    pace = GcPacing()
    pace.applied(0)
    time.sleep(0.3)  # one rate window of the real clock, with far more updates than HOLD_RATE in it
    pace.applied(int(HOLD_RATE))
    try:
        assert pace.holding and not gc.isenabled()
    finally:
        pace.release()
    assert gc.isenabled()
