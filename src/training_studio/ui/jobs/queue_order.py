"""Where waiting jobs stand in the Jobs table, and what a drop between rows means (issue 16): plain logic, no Qt.

The table lists jobs in `createdAt` order; the server runs waiting (pending or queued) jobs in its queue order
(`queuePosition`), which the user changes. So the waiting rows are shown in queue order *within the places
waiting rows hold* (`display_keys`): running and finished rows never move, and a job moved to the top of the
queue swaps places with the waiting rows above it. With no move ever made, both orders agree and nothing is
re-sorted.

A drag of waiting rows ends on a line between two rows (`drop_target`): it is a valid place only next to a
waiting row, and means "run just before the first waiting row below this line that is not being dragged" (or
last in the queue when there is none). A line between two rows that are not waiting, or the empty area, is
refused: the queue is not there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["DropTarget", "display_keys", "drop_target", "queue_keys"]


def display_keys(rows: Sequence[tuple[bool, float | None]]) -> list[int] | None:
    """Display keys for rows given in table (createdAt) order as (waiting, queue position): sorting rows by
    key shows the waiting ones in queue order (as the server orders them: no position last, then table order)
    in the slots waiting rows take, every other row staying where it is. None when the waiting rows already
    stand in queue order (the usual case: nothing to sort)."""
    return queue_keys([(row, position) for row, (waiting, position) in enumerate(rows) if waiting], len(rows))


def queue_keys(waiting: Sequence[tuple[int, float | None]], row_count: int) -> list[int] | None:
    """`display_keys` from the waiting rows alone, given as (row, queue position) in row order, among
    `row_count` rows: the check that usually ends in None costs the waiting rows, not every row."""
    slots = [row for row, _position in waiting]
    wanted = [row for row, _position in sorted(waiting, key=lambda item: (item[1] is None, item[1] or 0.0, item[0]))]
    if wanted == slots:
        return None
    keys = list(range(row_count))
    for slot, row in zip(slots, wanted):
        keys[row] = slot
    return keys


class DropTarget(NamedTuple):
    """A drop the queue accepts: the dragged jobs go, in order, just before `before_job_id` (None: last)."""

    job_ids: list[str]
    before_job_id: str | None


def drop_target(rows: Sequence[tuple[str, bool]], dragged: Sequence[str], line: int) -> DropTarget | None:
    """What dropping `dragged` (job ids) on the line above row `line` means, for rows shown as (job id, waiting)
    in the view's order (`line` == len(rows): below the last row). None when refused: nothing dragged, a dragged
    job that is not waiting (or not shown), or a line with no waiting row on either side."""
    if not dragged or not 0 <= line <= len(rows):
        return None
    waiting = {job_id for job_id, is_waiting in rows if is_waiting}
    if any(job_id not in waiting for job_id in dragged):
        return None
    below_waits = line < len(rows) and rows[line][1]
    above_waits = line > 0 and rows[line - 1][1]
    if not (below_waits or above_waits):
        return None
    moving = set(dragged)
    before = next((job_id for job_id, is_waiting in rows[line:] if is_waiting and job_id not in moving), None)
    # The dragged jobs in the order the table shows them (the queue's), whatever order they were picked in.
    shown = [job_id for job_id, _ in rows if job_id in moving]
    return DropTarget(shown, before)
