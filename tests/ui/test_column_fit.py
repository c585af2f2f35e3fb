"""`ui.column_fit.fit_widths`: the fixed columns' widths beside a stretching name column (plain logic, no Qt)."""

from __future__ import annotations

from training_studio.ui.column_fit import fit_widths

PREFERRED = {"status": 120, "created": 130, "finished": 130, "ran_on": 120}  # 500 px in all


def test_with_room_every_column_gets_its_preferred_width():
    assert fit_widths(800, PREFERRED, shrinks_first=("ran_on",), minimum=48) == PREFERRED
    assert fit_widths(500, PREFERRED, shrinks_first=("ran_on",), minimum=48) == PREFERRED


def test_short_of_room_the_eliding_columns_give_way_first_one_after_the_other():
    # 60 px short: Ran on alone gives them up.
    assert fit_widths(440, PREFERRED, shrinks_first=("ran_on", "created"), minimum=48) == \
        {"status": 120, "created": 130, "finished": 130, "ran_on": 60}
    # 100 px short: Ran on down to the minimum (72 px), Created the other 28.
    assert fit_widths(400, PREFERRED, shrinks_first=("ran_on", "created"), minimum=48) == \
        {"status": 120, "created": 102, "finished": 130, "ran_on": 48}


def test_past_the_eliding_columns_all_shrink_alike_and_never_below_the_minimum():
    # Ran on and Created at the minimum (96 px) leave 204 of 300 px for Status and Finished (250 wanted).
    widths = fit_widths(300, PREFERRED, shrinks_first=("ran_on", "created"), minimum=48)
    assert widths == {"status": 97, "created": 48, "finished": 106, "ran_on": 48}
    assert sum(widths.values()) <= 300
    # A column that would fall below the minimum stays at it; the others share the rest.
    uneven = {"wide": 400, "narrow": 60}
    assert fit_widths(200, uneven, minimum=48) == {"wide": 152, "narrow": 48}
    # When even the minimums do not fit, every column is at the minimum (the table scrolls sideways).
    assert fit_widths(0, PREFERRED, shrinks_first=("ran_on",), minimum=48) == {column: 48 for column in PREFERRED}


def test_hidden_columns_take_no_room_but_keep_a_width_for_when_they_are_shown_again():
    widths = fit_widths(380, PREFERRED, shrinks_first=(), minimum=48, shown=lambda column: column != "ran_on")
    assert widths == {"status": 120, "created": 130, "finished": 130, "ran_on": 120}
