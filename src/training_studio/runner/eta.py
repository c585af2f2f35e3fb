"""When a running job will finish (its `etaAt`), from a time-weighted moving average of its step rate.

Pure logic: no I/O and no clock of its own. The runner feeds `(monotonic seconds, step)` samples as it
records progress (a batch of points is one sample: its latest step at the moment it was recorded) and
asks for the moment the job should end; the server computes it so that every client shows the same ETA.

The rate is an exponentially decaying, time-weighted average over wall time: each interval between two
samples contributes its steps and its seconds, and older contributions fade with a half-life of
HALF_LIFE_S seconds, so rate = decayed steps / decayed seconds. A steady trainer therefore gets an exactly
steady rate however irregularly it is sampled, and a change of pace is followed within a few half-lives.
No estimate ("estimating…") until MIN_UPDATES intervals covering MIN_OBSERVED_S seconds were seen.

What does not count: a sample whose step did not move forward (a repeated or late point; its time is
part of the next interval), the first sample (the baseline: the start-up before the first step, or the
backlog a re-attached server reads, says nothing about the pace), samples read in a catch-up (`rebase`),
and a single *pause*: an interval at least PAUSE_MIN_S long and PAUSE_FACTOR times longer than its steps
should take at the current rate (sample generation, saving a checkpoint, a suspended machine). It is
left out once; if the next interval is just as slow, the trainer really got slower and both count.

A new estimator starts for each run of a trainer and each re-attach after a server restart: the ETA is
estimated afresh then. `EtaTracker` adds when a new value is worth publishing: only when it moves by
more than max(ETA_MIN_CHANGE_S, ETA_MIN_CHANGE_FRACTION of the time left), so clients see a steady value
and the database is written only along with the progress it records anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HALF_LIFE_S = 30.0
MIN_UPDATES = 3
MIN_OBSERVED_S = 2.0
PAUSE_MIN_S = 30.0
PAUSE_FACTOR = 10.0
ETA_MIN_CHANGE_S = 2.0
ETA_MIN_CHANGE_FRACTION = 0.02


@dataclass
class _Sample:
    time: float
    step: int


class StepRateEstimator:
    """The recent step rate of one run of a trainer, from (monotonic seconds, step) samples."""

    def __init__(self, *, half_life_s: float = HALF_LIFE_S, min_updates: int = MIN_UPDATES,
                 min_observed_s: float = MIN_OBSERVED_S, pause_min_s: float = PAUSE_MIN_S,
                 pause_factor: float = PAUSE_FACTOR) -> None:
        if half_life_s <= 0:
            raise ValueError("half_life_s must be positive")
        self.half_life_s = half_life_s
        self.min_updates = min_updates
        self.min_observed_s = min_observed_s
        self.pause_min_s = pause_min_s
        self.pause_factor = pause_factor
        self._last: _Sample | None = None
        self._steps = 0.0  # decayed steps
        self._seconds = 0.0  # decayed seconds
        self.updates = 0  # intervals counted
        self.observed_s = 0.0  # seconds counted (not decayed)
        self._pause: tuple[float, int] | None = None  # an interval left out as a pause: (seconds, steps)

    @property
    def step(self) -> int | None:
        """The latest step seen (the baseline of the next interval)."""
        return self._last.step if self._last is not None else None

    @property
    def rate(self) -> float | None:
        """Steps per second, or None while there is not enough to go on."""
        if self.updates < self.min_updates or self.observed_s < self.min_observed_s or self._seconds <= 0:
            return None
        rate = self._steps / self._seconds
        return rate if rate > 0 and math.isfinite(rate) else None

    def observe(self, now: float, step: int) -> None:
        """The trainer was at `step` at monotonic time `now`."""
        last = self._last
        if last is None:
            self._last = _Sample(now, step)
            return
        steps, seconds = step - last.step, now - last.time
        if steps <= 0 or seconds <= 0:
            return  # no progress (or a point from the same moment): its time belongs to the next interval
        self._last = _Sample(now, step)
        rate = self.rate
        if rate is not None and seconds >= self.pause_min_s and seconds > self.pause_factor * steps / rate:
            if self._pause is None:
                self._pause = (seconds, steps)  # left out, unless the next interval is as slow
                return
            pause_seconds, pause_steps = self._pause
            self._pause = None
            self._count(pause_seconds, pause_steps)
        else:
            self._pause = None
        self._count(seconds, steps)

    def rebase(self, now: float, step: int) -> None:
        """The trainer is at `step` now, but the interval since the last sample must not count (its
        points were read in a catch-up, all at once)."""
        if self._last is None or step >= self._last.step:
            self._last = _Sample(now, step)
        else:
            self._last = _Sample(now, self._last.step)
        self._pause = None

    def remaining_s(self, total_steps: int | None) -> float | None:
        """Seconds until the latest step reaches `total_steps` at the current rate; None while estimating
        or without a total."""
        rate = self.rate
        if rate is None or not total_steps or total_steps <= 0 or self._last is None:
            return None
        return max(0, total_steps - self._last.step) / rate

    def _count(self, seconds: float, steps: int) -> None:
        decay = 0.5 ** (seconds / self.half_life_s)
        self._steps = self._steps * decay + steps
        self._seconds = self._seconds * decay + seconds
        self.updates += 1
        self.observed_s += seconds


_UNPUBLISHED = object()


class EtaTracker:
    """One run's ETA as published on the job: the estimator, plus when a new value is worth writing."""

    def __init__(self, estimator: StepRateEstimator | None = None) -> None:
        self.estimator = estimator or StepRateEstimator()
        self._published: object = _UNPUBLISHED

    @property
    def published(self) -> float | None:
        """The ETA last published (wall-clock seconds since the epoch), None while estimating."""
        return self._published if isinstance(self._published, float) else None

    def update(self, monotonic_now: float, wall_now: float, step: int, total_steps: int | None, *,
               catch_up: bool = False) -> tuple[bool, float | None]:
        """Take the sample (step at this moment) and say whether the job's ETA should be written now, and
        its value: wall-clock seconds (never before `wall_now`), or None while estimating. The first call
        always says to write (what an earlier server published is not this estimate); so does a published
        ETA that the clock has passed while the new one has not."""
        if catch_up:
            self.estimator.rebase(monotonic_now, step)
        else:
            self.estimator.observe(monotonic_now, step)
        remaining = self.estimator.remaining_s(total_steps)
        eta = None if remaining is None else wall_now + remaining
        stale = self.published is not None and eta is not None and self.published < wall_now <= eta
        if self._published is _UNPUBLISHED or stale or eta_changed(self.published, eta, wall_now):
            self._published = eta
            return True, eta
        return False, self.published


def eta_changed(previous: float | None, new: float | None, now: float) -> bool:
    """Whether an ETA moved enough to be worth publishing: appearing or disappearing, or by more than
    max(ETA_MIN_CHANGE_S, ETA_MIN_CHANGE_FRACTION of the time left)."""
    if previous is None or new is None:
        return (previous is None) != (new is None)
    return abs(new - previous) > max(ETA_MIN_CHANGE_S, ETA_MIN_CHANGE_FRACTION * max(0.0, new - now))
