"""What the chart draws (ui/jobs/details/chart_data.py), without Qt: the min/max pyramid kept up to date
point by point equals one built at once and the plain per-bucket reduction; the envelope keeps every
extreme of the range it covers; a series keeps only finite points and its smoothing continues."""

from __future__ import annotations

import numpy as np

from training_studio.ui.jobs.details.chart_data import BASE_BUCKET, MinMaxPyramid, SeriesData
from training_studio.ui.jobs.details.metric_columns import GrowingArray
from tests.ui.details.test_smoothing import reference


def reduced(values: np.ndarray, size: int, reduce) -> np.ndarray:
    count = -(-values.size // size)
    padded = np.full(count * size, np.nan)
    padded[:values.size] = values
    return reduce.reduce(padded.reshape(count, size), axis=1)


def test_the_pyramid_updated_in_pieces_equals_one_built_at_once():
    rng = np.random.default_rng(1)
    values = rng.normal(size=50_003)
    grown, pyramid = GrowingArray(), MinMaxPyramid()
    position = 0
    while position < values.size:
        size = int(rng.choice([1, 1, 1, 7, 100, 2500]))
        start = grown.size
        grown.extend(values[position:position + size])
        pyramid.update(grown.view, start)
        position += size
    built = MinMaxPyramid()
    built.rebuild(values)
    assert pyramid.levels == built.levels
    for level in range(built.levels):
        size = BASE_BUCKET << level
        np.testing.assert_array_equal(pyramid._mins[level].view, reduced(values, size, np.fmin))  # noqa: SLF001
        np.testing.assert_array_equal(pyramid._maxs[level].view, reduced(values, size, np.fmax))  # noqa: SLF001
        np.testing.assert_array_equal(built._mins[level].view, pyramid._mins[level].view)  # noqa: SLF001
    assert built._mins[-1].size == 1  # noqa: SLF001  (the top level is one bucket: the whole series)


def test_the_envelope_is_small_and_keeps_the_extremes():
    rng = np.random.default_rng(2)
    values = rng.normal(size=1_000_000)
    values[123_457] = 50.0  # one spike: it must be drawn at any zoom level that contains it
    x = np.arange(values.size, dtype=np.float64)
    pyramid = MinMaxPyramid()
    pyramid.rebuild(values)
    out_x, out_y = pyramid.envelope(x, values, 0, values.size, target=500)
    assert out_y.size <= 4 * 500 + 1
    assert out_y.max() == 50.0 and out_y.min() == values.min()
    assert out_x[0] == 0 and out_x[-1] == x[-1] and out_y[-1] == values[-1]  # reaches the last point
    lo, hi = 100_000, 200_000
    zoom_x, zoom_y = pyramid.envelope(x, values, lo, hi, target=500)
    assert zoom_y.max() == 50.0 and zoom_x.min() <= lo and zoom_x.max() <= hi
    small_x, small_y = pyramid.envelope(x, values, 10, 400, target=500)
    np.testing.assert_array_equal(small_y, values[10:400])  # few points: drawn as they are


def test_a_series_keeps_finite_points_and_smooths_as_it_grows():
    series = SeriesData(0.6)
    steps = np.arange(1, 11)
    values = np.array([1.0, np.nan, 0.8, 0.7, np.inf, 0.5, 0.6, 0.4, 0.45, 0.3])
    series.append(steps[:4].astype(float), steps[:4] * 10.0, values[:4])
    series.append(steps[4:].astype(float), steps[4:] * 10.0, values[4:])
    kept = values[np.isfinite(values)]
    assert series.steps.view.tolist() == [1, 3, 4, 6, 7, 8, 9, 10]
    assert series.raw.view.tolist() == kept.tolist()
    np.testing.assert_allclose(series.smoothed.view, reference(kept.tolist(), 0.6), rtol=1e-12)
    series.set_weight(0.9)
    np.testing.assert_allclose(series.smoothed.view, reference(kept.tolist(), 0.9), rtol=1e-12)
    assert series.nearest("step", 5.2) == 3 and series.nearest("time", 1e9) == 7
    (raw_x, raw_y), (smooth_x, smooth_y) = series.view("step", 3.5, 8.5, target=100)
    assert raw_x.tolist() == [3, 4, 6, 7, 8, 9]  # the visible points and one on each side
    assert smooth_x.tolist() == raw_x.tolist()
