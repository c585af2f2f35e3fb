"""Column widths for a table whose one stretching column (the name) must stay readable in a narrow window.

Plain logic, no Qt: `fit_widths` shares the width the stretching column leaves over (the viewport's width
less that column's minimum) among the fixed columns. With room, each gets its preferred width. Short of
room, the columns that elide gracefully (their full text in a tooltip) give way first, one after the other,
down to the minimum; only then do all shrink alike, a column at the minimum staying there while the others
share what is left. So the name never collapses to an ellipsis while dates and placements keep their full
width, and the table does not scroll sideways until even the minimums do not fit. `ui.fitted_table` calls it
on every resize of its tables (Jobs, History, Datasets, Models).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TypeVar

__all__ = ["fit_widths"]

ColumnT = TypeVar("ColumnT", bound=Hashable)


def fit_widths(available: int, preferred: Mapping[ColumnT, int], *, shrinks_first: Iterable[ColumnT] = (),
               minimum: int, shown: Callable[[ColumnT], bool] = lambda column: True) -> dict[ColumnT, int]:
    """Widths (px) for every column of `preferred` (hidden ones too, at the same scale) so that the shown ones
    fit in `available` px where they can; see the module docstring."""
    widths: dict[ColumnT, float] = {column: width for column, width in preferred.items() if shown(column)}
    for column in shrinks_first:
        excess = sum(widths.values()) - available
        if excess <= 0:
            break
        if column in widths:
            widths[column] = max(minimum, widths[column] - excess)
    # All shrink alike; a column that would go below the minimum stays at it and the others share the rest.
    pinned = {column for column, width in widths.items() if width <= minimum}
    while True:
        flexible = sum(width for column, width in widths.items() if column not in pinned)
        room = available - minimum * len(pinned)
        scale = 1.0 if room >= flexible else max(0.0, room / flexible) if flexible else 0.0
        below = {column for column, width in widths.items() if column not in pinned and width * scale < minimum}
        if not below:
            break
        pinned |= below
    fitted = {column: minimum if column in pinned else width * scale for column, width in widths.items()}
    return {column: max(minimum, int(fitted.get(column, width * scale))) for column, width in preferred.items()}
