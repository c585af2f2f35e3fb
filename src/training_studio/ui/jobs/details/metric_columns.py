"""A job's metrics as numpy columns: parsing /metrics answers, and growing buffers that append in O(1).

No Qt here. The server answers `GET /api/training/jobs/{id}/metrics?since_step=S` with a JSON list of
`{step, loss, time, scalars?}` (docs/api.md). `parse_points()` turns one answer into `MetricColumns`: step
(int64), wall time (float64 epoch seconds, NaN when unreadable), and one float64 column per series, "loss"
first, then every scalar name the points carry, NaN where a point has no value. It never raises on a
malformed item: a point without an integer step is skipped, an unreadable value is NaN, and it says how many
it skipped. `MetricColumns.extend()` appends another answer (new scalar names get a column filled with NaN
for the earlier rows); the buffers grow by doubling, so appending is amortised O(new points), and the
column views (`steps`, `times`, `series[name]`) never copy.

At most `MAX_SERIES` series per job are kept (a trainer printing a new key every step must not grow memory
without bound); further names are counted in `dropped_series`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np

from training_studio.contract.models import parse_timestamp

__all__ = ["GrowingArray", "MetricColumns", "parse_points", "parse_times", "format_time_ms", "LOSS",
           "MAX_SERIES"]

LOSS = "loss"
MAX_SERIES = 64
_INITIAL_CAPACITY = 1024


class GrowingArray:
    """A 1-D numpy buffer with spare capacity at its end: `append`/`extend` in amortised O(1) per value,
    `view` (the filled part) without copying. The view stays valid until the next growth."""

    __slots__ = ("_data", "size")

    def __init__(self, dtype: Any = np.float64, capacity: int = _INITIAL_CAPACITY, fill: float = math.nan) -> None:
        self._data = np.empty(max(1, capacity), dtype=dtype)
        self._data[:] = fill if self._data.dtype.kind == "f" else 0
        self.size = 0

    @property
    def view(self) -> np.ndarray:
        return self._data[:self.size]

    @property
    def capacity(self) -> int:
        return self._data.size

    def _reserve(self, total: int) -> None:
        if total <= self._data.size:
            return
        capacity = self._data.size
        while capacity < total:
            capacity *= 2
        grown = np.empty(capacity, dtype=self._data.dtype)
        grown[:self.size] = self._data[:self.size]
        if grown.dtype.kind == "f":
            grown[self.size:] = math.nan
        else:
            grown[self.size:] = 0
        self._data = grown

    def extend(self, values: np.ndarray | Iterable[float]) -> None:
        values = np.asarray(values, dtype=self._data.dtype)
        self._reserve(self.size + values.size)
        self._data[self.size:self.size + values.size] = values
        self.size += values.size

    def pad(self, count: int, value: float = math.nan) -> None:
        """Append `count` copies of `value` (NaN: a series that has no values in those rows)."""
        self._reserve(self.size + count)
        self._data[self.size:self.size + count] = value
        self.size += count


def format_time_ms(epoch_seconds: float) -> str:
    """The contract's timestamp text (UTC, milliseconds, `Z`) for epoch seconds; "" for NaN."""
    if not math.isfinite(epoch_seconds):
        return ""
    millis = int(round(epoch_seconds * 1000.0))
    seconds, ms = divmod(millis, 1000)
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms:03d}Z"


def parse_times(texts: list[Any]) -> np.ndarray:
    """Wire timestamps to float64 epoch seconds (NaN where unreadable).

    Fast path: the contract's own form (`2026-01-02T03:04:05.678Z`) is parsed by numpy in one call. Anything
    else (another offset, a missing fraction, junk) falls back to `parse_timestamp` per item."""
    out = np.full(len(texts), math.nan)
    if not texts:
        return out
    try:
        if all(isinstance(text, str) and len(text) == 24 and text[-1] == "Z" for text in texts):
            stamps = np.array([text[:-1] for text in texts], dtype="datetime64[ms]")
            return stamps.astype(np.int64).astype(np.float64) / 1000.0
    except ValueError:
        pass
    for index, text in enumerate(texts):
        moment = parse_timestamp(text) if isinstance(text, str) else None
        if moment is not None:
            out[index] = moment.timestamp()
    return out


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    number = float(value)
    return number if math.isfinite(number) else math.nan


class MetricColumns:
    """Columns of one job's metric points, in ascending step order; see the module docstring."""

    def __init__(self) -> None:
        self._steps = GrowingArray(np.int64)
        self._times = GrowingArray(np.float64)
        self._series: dict[str, GrowingArray] = {LOSS: GrowingArray(np.float64)}
        self.dropped_series = 0  # scalar names beyond MAX_SERIES, ignored
        self.skipped_points = 0  # malformed items ignored

    def __len__(self) -> int:
        return self._steps.size

    @property
    def steps(self) -> np.ndarray:
        return self._steps.view

    @property
    def times(self) -> np.ndarray:
        return self._times.view

    @property
    def names(self) -> list[str]:
        """"loss" first, then the scalar names in the order they first appeared."""
        return list(self._series)

    def column(self, name: str) -> np.ndarray:
        return self._series[name].view

    @property
    def last_step(self) -> int | None:
        return int(self._steps.view[-1]) if self._steps.size else None

    def extend(self, other: "MetricColumns") -> None:
        """Append `other`'s rows (steps after ours: what `since_step` returns)."""
        if not len(other):
            self.dropped_series += other.dropped_series
            self.skipped_points += other.skipped_points
            return
        before = len(self)
        for name in other.names:
            if name not in self._series:
                if len(self._series) >= MAX_SERIES:
                    self.dropped_series += 1
                    continue
                column = GrowingArray(np.float64, capacity=max(_INITIAL_CAPACITY, self._steps.capacity))
                column.pad(before)
                self._series[name] = column
        self._steps.extend(other.steps)
        self._times.extend(other.times)
        added = len(other)
        for name, column in self._series.items():
            if name in other._series:
                column.extend(other.column(name))
            else:
                column.pad(added)
        self.dropped_series += other.dropped_series
        self.skipped_points += other.skipped_points

    def rows(self) -> Iterable[tuple[int, float, dict[str, float]]]:
        """(step, epoch seconds, {series: value}) per row, NaN-valued series left out; for tests and export."""
        views = {name: self.column(name) for name in self.names}
        for index in range(len(self)):
            values = {name: float(view[index]) for name, view in views.items() if not math.isnan(view[index])}
            yield int(self.steps[index]), float(self.times[index]), values


def parse_points(items: Any, *, after_step: int | None = None) -> MetricColumns:
    """One /metrics answer as columns. Items that are not objects with an integer `step`, and steps not after
    `after_step` or not ascending (a server that ignored `since_step`), are skipped and counted."""
    columns = MetricColumns()
    if not isinstance(items, list):
        columns.skipped_points += 1
        return columns
    steps: list[int] = []
    times: list[Any] = []
    losses: list[float] = []
    scalars: dict[str, list[float]] = {}
    last = after_step
    skipped = 0
    dropped: set[str] = set()
    for item in items:
        step = item.get("step") if isinstance(item, Mapping) else None
        if isinstance(step, bool) or not isinstance(step, int) or (last is not None and step <= last):
            skipped += 1
            continue
        row = len(steps)
        steps.append(step)
        last = step
        times.append(item.get("time"))
        losses.append(_number(item.get("loss")))
        extra = item.get("scalars")
        if isinstance(extra, Mapping):
            for name, value in extra.items():
                if not isinstance(name, str) or name == LOSS:
                    continue
                column = scalars.get(name)
                if column is None:
                    if len(scalars) + 1 >= MAX_SERIES:
                        dropped.add(name)
                        continue
                    column = scalars[name] = [math.nan] * row
                column.append(_number(value))
        for column in scalars.values():
            if len(column) < row + 1:
                column.append(math.nan)
    columns.skipped_points = skipped
    columns.dropped_series = len(dropped)
    columns._steps.extend(np.array(steps, dtype=np.int64))
    columns._times.extend(parse_times(times))
    columns._series[LOSS].extend(np.array(losses, dtype=np.float64))
    for name, values in scalars.items():
        column = GrowingArray(np.float64, capacity=max(_INITIAL_CAPACITY, len(values)))
        column.extend(np.array(values, dtype=np.float64))
        columns._series[name] = column
    return columns
