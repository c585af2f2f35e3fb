"""Plain tests of the Jobs table's queue logic (issue 16): where waiting rows are shown, and what a drop between
rows means. No Qt."""

from __future__ import annotations

from training_studio.ui.jobs.queue_order import DropTarget, display_keys, drop_target


def shown_order(rows, keys):
    """Row numbers as the view shows them after sorting by key."""
    return list(range(len(rows))) if keys is None else sorted(range(len(rows)), key=keys.__getitem__)


def test_waiting_rows_already_in_queue_order_need_no_sort():
    rows = [(False, None), (True, 1.0), (True, 2.0), (False, None), (True, 3.0)]
    assert display_keys(rows) is None
    assert display_keys([]) is None
    assert display_keys([(False, None)] * 3) is None


def test_waiting_rows_take_the_waiting_places_in_queue_order_and_others_stay():
    # rows: 0 finished, 1 waiting (3rd), 2 running, 3 waiting (1st), 4 waiting (2nd)
    rows = [(False, None), (True, 3.0), (False, None), (True, 1.0), (True, 2.0)]
    keys = display_keys(rows)
    assert keys is not None
    assert shown_order(rows, keys) == [0, 3, 2, 4, 1]  # the running row 2 and finished row 0 do not move


def test_a_waiting_job_without_a_position_goes_last_then_table_order():
    rows = [(True, None), (True, 2.0), (True, None), (True, 1.0)]
    assert shown_order(rows, display_keys(rows)) == [3, 1, 0, 2]


def test_a_drop_goes_before_the_first_waiting_row_below_the_line():
    rows = [("run", False), ("a", True), ("b", True), ("c", True), ("done", False)]
    assert drop_target(rows, ["c"], 1) == DropTarget(["c"], "a")  # above a: top of the queue
    assert drop_target(rows, ["a"], 3) == DropTarget(["a"], "c")  # between b and c
    assert drop_target(rows, ["a"], 4) == DropTarget(["a"], None)  # below c (above a finished row): last
    assert drop_target(rows, ["a"], 2) == DropTarget(["a"], "b")  # just below itself: where it is already


def test_dragged_rows_are_skipped_as_targets_and_keep_the_tables_order():
    rows = [("a", True), ("b", True), ("c", True), ("d", True)]
    assert drop_target(rows, ["c", "a"], 1) == DropTarget(["a", "c"], "b")
    assert drop_target(rows, ["b", "c"], 1) == DropTarget(["b", "c"], "d")  # above b, which is dragged


def test_lines_away_from_waiting_rows_and_non_waiting_drags_are_refused():
    rows = [("done", False), ("run", False), ("a", True), ("b", True)]
    assert drop_target(rows, ["a"], 1) is None  # between a finished and a running row
    assert drop_target(rows, ["a"], 0) is None  # above the first (finished) row
    assert drop_target(rows, ["a"], 2) == DropTarget(["a"], "b")  # below the running row, above a: fine
    assert drop_target(rows, ["run"], 3) is None  # a running job is not in the queue
    assert drop_target(rows, ["gone"], 3) is None  # a job the view does not show
    assert drop_target(rows, [], 3) is None
    assert drop_target(rows, ["a"], 5) is None and drop_target(rows, ["a"], -1) is None
