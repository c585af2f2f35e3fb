"""The ETA estimator (runner/eta.py): plain unit tests with made-up clocks, no server, no sleeping."""

from __future__ import annotations

import random

import pytest

from training_studio.runner.eta import (
    ETA_MIN_CHANGE_S,
    EtaTracker,
    StepRateEstimator,
    eta_changed,
)

WALL0 = 1_800_000_000.0  # any wall-clock origin: the tracker only adds seconds to it


def run(tracker: EtaTracker, samples: list[tuple[float, int]], total: int) -> list[tuple[float, float | None]]:
    """Feed (seconds since start, step) samples; (time, published ETA as seconds since start) after each."""
    seen = []
    for t, step in samples:
        tracker.update(100.0 + t, WALL0 + t, step, total)
        seen.append((t, None if tracker.published is None else tracker.published - WALL0))
    return seen


def steady_samples(rate: float, start: float, end: float, step0: int = 0, seed: int = 1) -> list[tuple[float, int]]:
    """The samples the runner takes of a trainer stepping at exactly `rate` steps/s from `start`: a batch
    at irregular moments (0.05-0.4 s apart, or every step of a slower trainer), each with the latest step
    printed, read up to 20 ms after it was printed."""
    rng = random.Random(seed)
    samples: list[tuple[float, int]] = []
    gap, k = 0.0, 0
    while (printed := start + k / rate) < end:
        if not samples or printed - samples[-1][0] >= gap:
            samples.append((printed + rng.uniform(0.0, 0.02), step0 + k))
            gap = rng.uniform(0.05, 0.4)
        k += 1
    return samples


def test_a_constant_rate_gives_a_constant_eta_within_two_percent():
    total, rate = 3000, 5.0  # the job ends 600 s after it started
    seen = run(EtaTracker(), steady_samples(rate, 0.0, 500.0), total)
    estimates = [(t, eta) for t, eta in seen if eta is not None]
    assert estimates, "no estimate in 500 s of steady stepping"
    assert estimates[0][0] < 5.0  # it stops "estimating…" within seconds
    duration = total / rate
    for t, eta in estimates:
        assert abs(eta - duration) <= 0.02 * duration, (t, eta)
    # and it is steady: the published moment changes rarely, by little
    moments = [eta for _t, eta in estimates]
    changes = sum(1 for a, b in zip(moments, moments[1:]) if a != b)
    assert changes < 0.01 * len(moments)


def test_the_remaining_seconds_of_a_constant_rate_are_exact():
    estimator = StepRateEstimator()
    for t, step in steady_samples(4.0, 0.0, 60.0):
        estimator.observe(t, step)
    assert estimator.rate == pytest.approx(4.0, rel=0.02)
    assert estimator.remaining_s(2000) == pytest.approx((2000 - estimator.step) / 4.0, rel=0.02)


def test_estimating_until_three_updates_over_two_seconds():
    estimator = StepRateEstimator()
    estimator.observe(0.0, 10)  # the baseline: it does not count
    estimator.observe(0.5, 20)
    estimator.observe(1.0, 30)
    estimator.observe(1.5, 40)
    assert estimator.updates == 3 and estimator.rate is None  # 1.5 s observed
    assert estimator.remaining_s(100) is None
    estimator.observe(2.0, 50)
    assert estimator.rate == pytest.approx(20.0)
    assert estimator.remaining_s(100) == pytest.approx(2.5)
    fast = StepRateEstimator()
    fast.observe(0.0, 0)
    fast.observe(5.0, 50)
    fast.observe(10.0, 100)
    assert fast.rate is None  # 10 s, but only two updates


def test_a_rate_change_converges_to_the_new_rate():
    total = 100_000
    samples = steady_samples(10.0, 0.0, 120.0)
    slow_start_step = samples[-1][1]
    samples += steady_samples(2.0, 120.0, 420.0, step0=slow_start_step, seed=2)
    tracker = EtaTracker()
    seen = run(tracker, samples, total)
    t_end, step_end = samples[-1]
    expected = t_end + (total - step_end) / 2.0  # at the new pace from now on
    assert tracker.estimator.rate == pytest.approx(2.0, rel=0.02)
    remaining = tracker.estimator.remaining_s(total)
    assert remaining is not None and abs(t_end + remaining - expected) <= 0.02 * (expected - t_end)
    # what is published follows it, within the change it takes to publish again (2 % of the time left)
    eta = seen[-1][1]
    assert eta is not None and abs(eta - expected) <= 0.04 * (expected - t_end)
    # and it moved monotonically towards it: later and later, never back
    after_change = [eta for t, eta in seen if t >= 120.0 and eta is not None]
    assert after_change == sorted(after_change)


def test_a_step_going_backwards_or_standing_still_is_ignored():
    estimator = StepRateEstimator()
    for t, step in steady_samples(5.0, 0.0, 30.0):
        estimator.observe(t, step)
    rate, step, updates = estimator.rate, estimator.step, estimator.updates
    estimator.observe(30.5, step - 40)  # a late point of an earlier step
    estimator.observe(30.6, 3)
    estimator.observe(30.7, step)  # the same step again
    assert (estimator.rate, estimator.step, estimator.updates) == (rate, step, updates)
    # the time it stood still belongs to the next interval
    estimator.observe(31.0, step + 5)
    assert estimator.updates == updates + 1 and estimator.step == step + 5


def test_an_isolated_pause_is_left_out_and_a_lasting_slowdown_is_not():
    total = 10_000
    samples = steady_samples(5.0, 0.0, 60.0)
    last_t, last_step = samples[-1]
    tracker = EtaTracker()
    seen = run(tracker, samples, total)
    before = seen[-1][1]
    # 90 s without a step (sample generation), then the same pace again
    resumed = [(last_t + 90.0 + t, last_step + 1 + step) for t, step in steady_samples(5.0, 0.0, 30.0)]
    seen = run(tracker, resumed, total)
    assert before is not None
    assert tracker.estimator.rate == pytest.approx(5.0, rel=0.02)
    # the finish moves later by the pause, no more
    assert seen[-1][1] == pytest.approx(before + 90.0, abs=0.02 * (total / 5.0))

    slow = StepRateEstimator()
    for t, step in steady_samples(5.0, 0.0, 60.0):
        slow.observe(t, step)
    t, step = 60.0, slow.step
    for _ in range(12):  # the trainer now takes 60 s per step, for good
        t += 60.0
        step += 1
        slow.observe(t, step)
    assert slow.rate is not None and slow.rate < 0.05  # it followed the new pace


def test_a_catch_up_does_not_count_as_pace():
    tracker = EtaTracker()
    samples = steady_samples(2.0, 0.0, 20.0)
    run(tracker, samples, 100_000)
    t, step = samples[-1]
    rate = tracker.estimator.rate
    # a re-read backlog: 20,000 steps arrive within a tenth of a second
    tracker.update(100.0 + t + 0.1, WALL0 + t + 0.1, step + 20_000, 100_000, catch_up=True)
    assert tracker.estimator.rate == rate
    assert tracker.estimator.step == step + 20_000


def test_the_first_update_always_publishes_and_the_eta_is_never_in_the_past():
    tracker = EtaTracker()
    assert tracker.update(0.0, WALL0, 5, 100) == (True, None)  # clears what an earlier server published
    assert tracker.update(0.5, WALL0 + 0.5, 6, 100) == (False, None)
    finished = EtaTracker()
    for t in range(10):
        finished.update(float(t), WALL0 + t, t * 10, 50)  # past the total: the ETA is now
    assert finished.published is not None and finished.published >= WALL0 + 9


def test_when_an_eta_is_worth_publishing():
    now = 1000.0
    assert eta_changed(None, now + 60, now) and eta_changed(now + 60, None, now)
    assert not eta_changed(None, None, now)
    assert not eta_changed(now + 60, now + 60 + ETA_MIN_CHANGE_S * 0.9, now)
    assert eta_changed(now + 60, now + 60 + ETA_MIN_CHANGE_S * 1.1, now)
    # 2 % of an hour left is 72 s
    assert not eta_changed(now + 3600, now + 3660, now)
    assert eta_changed(now + 3600, now + 3680, now)
