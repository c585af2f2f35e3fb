"""What the loss chart draws, without Qt: a series' points, its smoothing, and a min/max pyramid to draw
a million points in a few thousand.

`MinMaxPyramid` keeps, for bucket sizes 8, 16, 32, … points, the minimum and maximum of every bucket of a
growing series. Appending a point updates one bucket per level (a few microseconds); `envelope()` gives, for
any index range, the min/max outline at the coarsest level that still has about two values per pixel: what
pyqtgraph's "peak" downsampling would draw, but without reading every visible point on every frame (at a
million points pyqtgraph's own clip + downsample costs ~20 ms per update; this costs well under 1 ms).

`SeriesData` is one curve of one job: x by step and by wall time, the raw values (finite only: a step
without a value for this series is not a point of it), the smoothed values (`smoothing.Smoother`, TensorBoard's
EMA, continued incrementally), and the raw values' pyramid. `view(...)` returns the arrays to
hand to pyqtgraph for the visible x range.
"""

from __future__ import annotations

import math

import numpy as np

from training_studio.ui.jobs.details.metric_columns import GrowingArray
from training_studio.ui.jobs.details.smoothing import DEFAULT_WEIGHT, Smoother

__all__ = ["MinMaxPyramid", "SeriesData", "X_STEP", "X_TIME"]

X_STEP = "step"
X_TIME = "time"
BASE_BUCKET = 8


def _pairs(reduce: np.ufunc, values: np.ndarray) -> np.ndarray:
    """`reduce` (fmin or fmax) over consecutive pairs of `values` (a lone last value stands alone)."""
    if values.size % 2:
        values = np.append(values, np.nan)
    return reduce.reduce(values.reshape(-1, 2), axis=1)


class MinMaxPyramid:
    """Min and max per bucket at bucket sizes BASE_BUCKET * 2**level; see the module docstring."""

    def __init__(self) -> None:
        self.size = 0  # raw points covered
        self._mins: list[GrowingArray] = []
        self._maxs: list[GrowingArray] = []

    def bucket(self, level: int) -> int:
        return BASE_BUCKET << level

    @property
    def levels(self) -> int:
        return len(self._mins)

    def rebuild(self, values: np.ndarray) -> None:
        self.size = 0
        self._mins, self._maxs = [], []
        self.update(values, 0)

    def update(self, values: np.ndarray, start: int) -> None:
        """`values` is the whole series (a view); points from index `start` on are new or changed."""
        n = values.size
        if n == 0:
            self.size = 0
            return
        start = min(start, self.size)
        if n - start == 1 and start == self.size and self._mins:
            self._append_one(float(values[-1]))
            return
        level = 0
        below_mins, below_maxs = values, values
        while True:
            size = self.bucket(level)
            count = -(-n // size)
            first = start // size
            if level == self.levels:
                self._mins.append(GrowingArray(np.float64, capacity=max(16, count)))
                self._maxs.append(GrowingArray(np.float64, capacity=max(16, count)))
            mins, maxs = self._mins[level], self._maxs[level]
            # Recompute buckets first..count-1 from the level below (raw values for level 0).
            factor = size if level == 0 else 2
            lo = first * factor
            chunk_min, chunk_max = below_mins[lo:], below_maxs[lo:]
            rows = -(-chunk_min.size // factor)
            pad = rows * factor - chunk_min.size
            if pad:
                chunk_min = np.concatenate([chunk_min, np.full(pad, np.nan)])
                chunk_max = np.concatenate([chunk_max, np.full(pad, np.nan)])
            new_min = np.fmin.reduce(chunk_min.reshape(rows, factor), axis=1)
            new_max = np.fmax.reduce(chunk_max.reshape(rows, factor), axis=1)
            mins.size = maxs.size = first
            mins.extend(new_min)
            maxs.extend(new_max)
            if count <= 1:
                del self._mins[level + 1:], self._maxs[level + 1:]
                break
            below_mins, below_maxs = mins.view, maxs.view
            level += 1
        self.size = n

    def _append_one(self, value: float) -> None:
        index = self.size
        self.size += 1
        level = 0
        while level < self.levels:
            bucket = index // self.bucket(level)
            mins, maxs = self._mins[level], self._maxs[level]
            if bucket < mins.size:
                view_min, view_max = mins.view, maxs.view
                if value < view_min[bucket]:
                    view_min[bucket] = value
                if value > view_max[bucket]:
                    view_max[bucket] = value
            else:
                mins.extend((value,))
                maxs.extend((value,))
            level += 1
        while self._mins[-1].size > 1:  # the series outgrew the top level: add the level above it
            below_min, below_max = self._mins[-1].view, self._maxs[-1].view
            mins, maxs = GrowingArray(np.float64, capacity=16), GrowingArray(np.float64, capacity=16)
            mins.extend(_pairs(np.fmin, below_min))
            maxs.extend(_pairs(np.fmax, below_max))
            self._mins.append(mins)
            self._maxs.append(maxs)

    def envelope(self, x: np.ndarray, values: np.ndarray, lo: int, hi: int, target: int
                 ) -> tuple[np.ndarray, np.ndarray]:
        """The points to draw for indices [lo, hi): the raw ones if there are at most 2 * target, else
        (x of each bucket's first point, min) and (same x, max) interleaved, at the coarsest level with at
        least `target` buckets in the range, plus the last raw point when the range reaches the end."""
        count = hi - lo
        if count <= 2 * target or not self.levels:
            return x[lo:hi], values[lo:hi]
        level = 0
        while level + 1 < self.levels and count / self.bucket(level + 1) >= target:
            level += 1
        size = self.bucket(level)
        first, last = lo // size, -(-hi // size)
        mins = self._mins[level].view[first:last]
        maxs = self._maxs[level].view[first:last]
        xs = x[first * size:last * size:size][:mins.size]
        out_x = np.repeat(xs, 2)
        out_y = np.empty(out_x.size, dtype=np.float64)
        out_y[0::2] = mins
        out_y[1::2] = maxs
        if hi == values.size:
            out_x = np.append(out_x, x[hi - 1])
            out_y = np.append(out_y, values[hi - 1])
        return out_x, out_y


class SeriesData:
    """One curve of one job (one series): raw and smoothed values over step and wall time."""

    def __init__(self, weight: float = DEFAULT_WEIGHT) -> None:
        self.steps = GrowingArray(np.float64)
        self.times = GrowingArray(np.float64)
        self.raw = GrowingArray(np.float64)
        self.smoothed = GrowingArray(np.float64)
        self.smoother = Smoother(weight)
        self.raw_pyramid = MinMaxPyramid()

    def __len__(self) -> int:
        return self.raw.size

    def append(self, steps: np.ndarray, times: np.ndarray, values: np.ndarray) -> None:
        keep = np.isfinite(values)
        if not keep.all():
            steps, times, values = steps[keep], times[keep], values[keep]
        if values.size == 0:
            return
        start = self.raw.size
        self.steps.extend(steps)
        self.times.extend(times)
        self.raw.extend(values)
        self.raw_pyramid.update(self.raw.view, start)
        first, smoothed = self.smoother.extend(values)
        self.smoothed.size = first
        self.smoothed.extend(smoothed)

    def set_weight(self, weight: float) -> None:
        self.smoother = Smoother(weight)
        _first, smoothed = self.smoother.extend(self.raw.view)
        self.smoothed.size = 0
        self.smoothed.extend(smoothed)

    def x(self, axis: str) -> np.ndarray:
        return self.times.view if axis == X_TIME else self.steps.view

    def index_range(self, axis: str, x_min: float | None, x_max: float | None) -> tuple[int, int]:
        """Indices of the points inside [x_min, x_max], widened by one on each side (so lines leave the view)."""
        n = len(self)
        if x_min is None or x_max is None or n == 0:
            return 0, n
        x = self.x(axis)
        lo = max(0, int(np.searchsorted(x, x_min, side="left")) - 1)
        hi = min(n, int(np.searchsorted(x, x_max, side="right")) + 1)
        return lo, max(lo, hi)

    def view(self, axis: str, x_min: float | None, x_max: float | None, target: int
             ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """((x, raw), (x, smoothed)) to draw for the visible x range (None: everything).

        The raw values as their min/max envelope (noise spikes must stay visible); the smoothed ones, which
        are low-pass already, as every k-th point (about one per pixel, views, no copy) plus the last one:
        a thin line, cheap to stroke at 2 px where a min/max zigzag of the same curve is not."""
        lo, hi = self.index_range(axis, x_min, x_max)
        x = self.x(axis)
        raw = self.raw_pyramid.envelope(x, self.raw.view, lo, hi, target)
        stride = max(1, (hi - lo) // max(1, target))
        smoothed_x, smoothed_y = x[lo:hi:stride], self.smoothed.view[lo:hi:stride]
        if stride > 1 and hi > lo and (hi - 1 - lo) % stride:
            smoothed_x = np.append(smoothed_x, x[hi - 1])
            smoothed_y = np.append(smoothed_y, self.smoothed.view[hi - 1])
        return raw, (smoothed_x, smoothed_y)

    def nearest(self, axis: str, x_value: float) -> int | None:
        """Index of the point nearest to `x_value` on that axis (hover readout)."""
        n = len(self)
        if n == 0 or not math.isfinite(x_value):
            return None
        x = self.x(axis)
        index = int(np.searchsorted(x, x_value))
        if index <= 0:
            return 0
        if index >= n:
            return n - 1
        return index if abs(x[index] - x_value) < abs(x_value - x[index - 1]) else index - 1
