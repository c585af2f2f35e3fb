"""TensorBoard's debiased EMA (ui/jobs/details/smoothing.py) against a reference loop: whole series
(numpy), point by point, in uneven batches, with non-finite values, constant series and edge weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training_studio.ui.jobs.details.smoothing import Smoother, clamp_weight, smooth


def reference(values: list[float], weight: float) -> list[float]:
    """TensorBoard's classicSmoothing, transliterated statement by statement (one series)."""
    if not math.isfinite(weight):
        weight = 0.0
    weight = max(0.0, min(weight, 1.0))
    if values and all(v == values[0] for v in values):
        return list(values)
    last = 0.0 if values else math.nan
    num_accum = 0
    out = []
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        last = last * weight + (1 - weight) * value
        num_accum += 1
        debias = 1.0 if weight == 1 else 1 - math.pow(weight, num_accum)
        out.append(last / debias)
    return out


def noisy_loss(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = np.arange(n, dtype=np.float64)
    return 2.0 * np.exp(-steps / max(n / 5, 1)) + 0.1 + rng.normal(0, 0.05, n)


def assert_same(actual, expected, rtol=1e-9):
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    # Non-finite values must sit at the same places with the same value.
    np.testing.assert_array_equal(np.isfinite(actual), np.isfinite(expected))
    np.testing.assert_array_equal(actual[~np.isfinite(actual)], expected[~np.isfinite(expected)])
    np.testing.assert_allclose(actual[np.isfinite(actual)], expected[np.isfinite(expected)], rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("weight", [0.0, 0.01, 0.3, 0.6, 0.9, 0.99, 0.999, 1.0])
def test_whole_series_matches_the_reference(weight):
    values = noisy_loss(20_000, seed=int(weight * 1000))
    assert_same(smooth(values, weight), reference(values.tolist(), weight))


@pytest.mark.parametrize("weight", [0.0, 0.6, 0.95])
def test_point_by_point_is_exactly_the_reference(weight):
    values = noisy_loss(500).tolist()
    smoother = Smoother(weight)
    got = []
    for index, value in enumerate(values):
        start, tail = smoother.extend([value])
        # Only the second point can rewrite the first: one point is a constant series, shown raw.
        assert start == (0 if index == 1 else index)
        got[start:] = tail.tolist()
    assert got == reference(values, weight)  # the same recurrence, bit for bit


def test_uneven_batches_match_the_whole_series():
    values = noisy_loss(30_000, seed=3)
    rng = np.random.default_rng(7)
    smoother = Smoother(0.8)
    got = np.empty(0)
    position = 0
    while position < values.size:
        size = int(rng.choice([1, 3, 63, 64, 500, 4000]))
        start, tail = smoother.extend(values[position:position + size])
        got = np.concatenate([got[:start], tail])
        position += size
    assert_same(got, reference(values.tolist(), 0.8))


def test_non_finite_values_pass_through_and_do_not_count():
    values = [1.0, math.nan, 2.0, math.inf, 3.0, -math.inf, 4.0, math.nan]
    expected = reference(values, 0.6)
    assert math.isnan(expected[1]) and expected[3] == math.inf
    assert_same(smooth(values, 0.6), expected)
    smoother = Smoother(0.6)
    got = []
    for value in values:
        start, tail = smoother.extend([value])
        got[start:] = tail.tolist()
    assert_same(got, expected)
    # In a vectorised batch too (more than the loop threshold).
    long = np.tile(np.array(values), 50)
    start, tail = Smoother(0.6).extend(long)
    assert start == 0
    assert_same(tail, reference(long.tolist(), 0.6))


def test_a_constant_series_stays_raw_until_it_changes():
    smoother = Smoother(0.6)
    got: list[float] = []
    for value in [0.1, 0.1, 0.1]:
        start, tail = smoother.extend([value])
        got[start:] = tail.tolist()
    assert got == [0.1, 0.1, 0.1] == reference([0.1] * 3, 0.6)
    start, tail = smoother.extend([0.5])
    assert start == 0  # the prefix is now smoothed, as TensorBoard recomputes it
    got[start:] = tail.tolist()
    assert got == reference([0.1, 0.1, 0.1, 0.5], 0.6)
    assert_same(smooth([0.1, 0.1, 0.1, 0.5], 0.6), got)


def test_edge_cases():
    assert smooth([], 0.6).size == 0
    start, tail = Smoother(0.6).extend([])
    assert start == 0 and tail.size == 0
    assert clamp_weight(math.nan) == 0.0 and clamp_weight(-1) == 0.0 and clamp_weight(3) == 1.0
    nans = [math.nan, math.nan]
    assert_same(smooth(nans, 0.5), reference(nans, 0.5))
    # Huge and tiny magnitudes do not overflow the blocked cumulative sum.
    values = np.concatenate([np.full(10, 1e300), np.full(10, 1e-300), noisy_loss(5000)])
    assert_same(smooth(values, 0.99), reference(values.tolist(), 0.99))
