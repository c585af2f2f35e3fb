"""TensorBoard's smoothing of a scalar series: the debiased exponential moving average, whole or incremental.

No Qt here. The formula is TensorBoard's `classicSmoothing` (webapp/widgets/line_chart_v2/data_transformer.ts),
reproduced rule for rule so a curve here looks like the same run in TensorBoard:
- the weight `s` is clamped to [0, 1] (a non-finite weight counts as 0);
- `last = last * s + (1 - s) * value`, starting from 0, then divided by `1 - s ** n` (the debias), `n` being
  the number of finite values so far (with `s == 1` the divisor is 1);
- a non-finite value (NaN, ±inf) is passed through as it is and does not count towards `n`;
- a series whose values are all equal (to the first) is returned unchanged (TensorBoard issue #786).

`smooth()` computes a whole series with numpy (the initial load of up to millions of points, and every change
of the weight); `Smoother` continues a series point by point as new metrics arrive, without recomputing
what it already has. Both give the reference loop's values: the incremental path runs the very same
recurrence; the vectorised one agrees to rounding (relative 1e-9 at worst, see `_ema_finite`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["clamp_weight", "smooth", "Smoother", "DEFAULT_WEIGHT"]

DEFAULT_WEIGHT = 0.6
# Inside one block of the vectorised EMA, values are scaled by s**-k before a cumulative sum: the block is
# as long as keeps that scale under this bound (no overflow, and the sum stays well conditioned).
_MAX_BLOCK_SCALE = 1e150
# Below this many new values, Smoother runs the plain loop (exactly the reference; numpy's fixed cost per
# call is larger than the loop's at a handful of points).
_LOOP_BELOW = 64


def clamp_weight(weight: float) -> float:
    """The weight as TensorBoard uses it: non-finite -> 0, then clamped to [0, 1]."""
    weight = float(weight)
    if not math.isfinite(weight):
        return 0.0
    return min(max(weight, 0.0), 1.0)


def _ema_finite(values: np.ndarray, weight: float, last: float = 0.0) -> np.ndarray:
    """The un-debiased EMA of finite `values`, continuing from `last`: out[i] = s*out[i-1] + (1-s)*v[i].

    Blocked closed form, all blocks at once: the series is cut into rows of `block` values; inside a row,
    out[k] = (1-s) * s**k * cumsum(v[j] * s**-j)[k] + s**(k+1) * carry, where carry is the EMA at the end of
    the previous row. The row length keeps s**-k below _MAX_BLOCK_SCALE (no overflow, a well-conditioned
    sum), so the factor between two rows' carries, a = s**block, is about 1/_MAX_BLOCK_SCALE: the carries
    are the rows' own ends plus a few a**m-weighted earlier ends, until a**m underflows (two terms).
    """
    n = values.size
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    s = weight
    if s == 0.0:
        out[:] = values
        return out
    if s == 1.0:
        out[:] = last
        return out
    block = max(1, min(n, int(math.log(_MAX_BLOCK_SCALE) / -math.log(s))))
    rows = -(-n // block)
    grid = np.zeros(rows * block, dtype=np.float64)
    grid[:n] = values
    grid = grid.reshape(rows, block)
    k = np.arange(block, dtype=np.float64)
    local = np.cumsum(grid * np.power(s, -k), axis=1)
    local *= np.power(s, k) * (1.0 - s)          # each row's EMA as if it started from 0
    carry_in = np.power(s, k + 1.0)               # how much of the previous row's end reaches position k
    ends = local[:, -1].copy()
    # carry[j] = the EMA at the end of row j = ends[j] + a*ends[j-1] + a**2*ends[j-2] + ... + a**(j+1)*last
    a = s ** block
    carry = ends.copy()
    factor, shift = a, 1
    while factor > 0.0 and shift <= rows:
        carry[shift:] += factor * ends[:-shift] if shift < rows else 0.0
        carry[shift - 1] += factor * last
        factor *= a
        shift += 1
    previous = np.empty(rows, dtype=np.float64)
    previous[0] = last
    previous[1:] = carry[:-1]
    local += previous[:, None] * carry_in[None, :]
    out[:] = local.reshape(-1)[:n]
    return out


def _debias(count_from: int, size: int, weight: float) -> np.ndarray:
    """1 - s**n for n = count_from .. count_from + size - 1, as Math.pow gives it.

    Only the first few hundred or thousand powers are worth computing: once s**n < 2**-54, 1 - s**n rounds
    to exactly 1.0 in double precision (and np.power is the slow part of a long series)."""
    out = np.ones(size, dtype=np.float64)
    if weight == 0.0:
        return out
    needed = size if weight >= 1.0 else int(math.ceil(-54 * math.log(2) / math.log(weight))) + 1 - count_from
    needed = max(0, min(size, needed))
    if needed:
        out[:needed] = 1.0 - np.power(weight, np.arange(count_from, count_from + needed, dtype=np.float64))
    return out


def smooth(values: np.ndarray | list[float], weight: float) -> np.ndarray:
    """The smoothed series (float64, same length), computed at once with numpy."""
    y = np.asarray(values, dtype=np.float64)
    s = clamp_weight(weight)
    if y.size == 0:
        return y.copy()
    if np.all(y == y[0]):
        return y.copy()  # a constant series is left as it is (NaN != NaN, so a NaN series is not constant)
    finite = np.isfinite(y)
    out = y.copy()  # non-finite values pass through
    if finite.all():
        ema = _ema_finite(y, s)
        if s != 1.0:
            ema /= _debias(1, y.size, s)
        return ema
    kept = y[finite]
    ema = _ema_finite(kept, s)
    if s != 1.0:
        ema /= _debias(1, kept.size, s)
    out[finite] = ema
    return out


class Smoother:
    """The smoothed values of a series that grows at its end; see the module docstring.

    `extend(values)` takes the new raw values and returns `(start, smoothed)`: the smoothed series from
    index `start` on. Normally `start` is the old length and `smoothed` has one value per new raw value;
    only when a series that was constant so far stops being constant do the earlier values change (they were
    shown raw, see the module docstring), and then `start` is 0. That happens at most once per series, and
    recomputing that prefix needs no history: it was one repeated value.
    """

    def __init__(self, weight: float = DEFAULT_WEIGHT) -> None:
        self.weight = clamp_weight(weight)
        self.length = 0
        self._last = 0.0      # the un-debiased EMA so far
        self._count = 0       # finite values so far
        self._first = math.nan
        self._constant = True  # every value so far equals the first (vacuously true while empty)

    def reset(self, weight: float | None = None) -> None:
        self.__init__(self.weight if weight is None else weight)  # type: ignore[misc]

    def extend(self, values: np.ndarray | list[float]) -> tuple[int, np.ndarray]:
        new = np.asarray(values, dtype=np.float64)
        start = self.length
        if new.size == 0:
            return start, new.copy()
        if self.length == 0:
            self._first = float(new[0])
        was_constant = self._constant
        if was_constant and not np.all(new == self._first):
            self._constant = False
        if self._constant:
            # Still constant: shown raw, but the running state advances as if smoothing (it is needed the
            # moment a different value arrives).
            self._advance(new)
            self.length += new.size
            return start, new.copy()
        if was_constant and start > 0:
            # The constant prefix becomes smoothed now: recompute it from its one value.
            prefix = self._replay_constant(start)
            tail = self._advance(new)
            self.length += new.size
            return 0, np.concatenate([prefix, tail])
        smoothed = self._advance(new)
        self.length += new.size
        return start, smoothed

    # the recurrence --------------------------------------------------------------------------------
    def _replay_constant(self, count: int) -> np.ndarray:
        replay = Smoother(self.weight)
        replay._constant = False
        return replay._advance(np.full(count, self._first))

    def _advance(self, new: np.ndarray) -> np.ndarray:
        """Run the recurrence over `new`, updating the state; the debiased values (non-finite passed)."""
        s = self.weight
        if new.size < _LOOP_BELOW:
            out = new.copy()
            last, count = self._last, self._count
            for index, value in enumerate(new.tolist()):
                if not math.isfinite(value):
                    continue
                last = last * s + (1.0 - s) * value
                count += 1
                out[index] = last if s == 1.0 else last / (1.0 - math.pow(s, count))
            self._last, self._count = last, count
            return out
        out = new.copy()
        finite = np.isfinite(new)
        kept = new[finite] if not finite.all() else new
        if kept.size == 0:
            return out
        ema = _ema_finite(kept, s, self._last)
        self._last = float(ema[-1])
        if s != 1.0:
            ema /= _debias(self._count + 1, kept.size, s)
        self._count += kept.size
        out[finite] = ema
        return out
