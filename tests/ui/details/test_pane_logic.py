"""The details pane's plain pieces: ETA texts, table CSV, compare colours; and the jobs model's ETA column,
compare swatches and `detail` tooltip, driven with jobs as the server sends them (no server needed)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from training_studio.contract.models import TrainingJob, format_timestamp
from training_studio.ui.jobs import format as fmt
from training_studio.ui.jobs.details.colours import (
    DARK_BACKGROUND,
    DARK_COLOURS,
    LIGHT_BACKGROUND,
    LIGHT_COLOURS,
    assign_colours,
    compare_colour,
)
from training_studio.ui.jobs.model import JobColumn, JobListModel, JobRole, TextLook

UTC = timezone.utc


# -- ETA texts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, text", [
    (-30.0, "any moment now"), (0.0, "any moment now"), (0.5, "any moment now"), (45.0, "in 45 s"),
    (59.9, "in 59 s"), (60.0, "in 1 min"), (725.0, "in 12 min"), (3599.0, "in 1 h 00 min"), (3600.0, "in 1 h 00 min"),
    (3 * 3600 + 300.0, "in 3 h 05 min"), (3 * 86400.0, "in 3 days"), (float("nan"), "any moment now"),
])
def test_remaining_time_reads_as_a_countdown_and_is_never_negative(seconds, text):
    assert fmt.format_remaining(seconds) == text


def test_eta_cell_text_by_status_and_estimate():
    now = 1_800_000_000.0
    assert fmt.eta_cell_text("running", None, now) == "estimating…"
    assert fmt.eta_cell_text("running", now + 725, now) == "in 12 min"
    assert fmt.eta_cell_text("running", now - 600, now) == "any moment now"  # a stalled trainer: never "-10 min"
    for status in ("queued", "pending", "completed", "failed", "cancelled", "something new"):
        assert fmt.eta_cell_text(status, now + 725, now) == fmt.NO_VALUE


def test_eta_overview_text_is_a_local_clock_time_and_a_countdown():
    now = datetime(2026, 12, 4, 17, 20, tzinfo=UTC).timestamp()
    assert fmt.eta_overview_text("running", now + 12 * 60, now, UTC) == "17:32 (in 12 min)"
    assert fmt.eta_overview_text("running", now + 8 * 3600, now, UTC) == "tomorrow 01:20 (in 8 h 00 min)"
    assert fmt.eta_overview_text("running", now + 3 * 86400, now, UTC) == "Mon 7 Dec 17:20 (in 3 days)"
    assert fmt.eta_overview_text("running", now - 60, now, UTC) == "17:20 (any moment now)"  # not in the past
    assert fmt.eta_overview_text("running", None, now, UTC) == "estimating…"
    assert fmt.eta_overview_text("completed", now + 60, now, UTC) == fmt.NO_VALUE
    plus_two = timezone(timedelta(hours=2))
    assert fmt.eta_clock_text(now + 12 * 60, now, plus_two) == "19:32"


def test_a_constant_eta_gives_a_steady_countdown_from_timestamps():
    eta = 1_800_000_000.0
    texts = [fmt.eta_cell_text("running", eta, eta - 600 + second) for second in range(0, 30)]
    assert set(texts) == {"in 10 min"}  # the same moment 30 s apart, not a counter drifting


# -- CSV -------------------------------------------------------------------------------------------


def test_table_csv_quotes_and_defuses_spreadsheet_formulas():
    text = fmt.table_csv(["Name", "Loss"], [["a, \"quoted\" run", "-0.5"], ["=HYPERLINK(\"x\")", "@sum"],
                                              ["", "—"]])
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["Name", "Loss"], ["a, \"quoted\" run", "-0.5"], ["'=HYPERLINK(\"x\")", "'@sum"], ["", "—"]]


# -- compare colours ----------------------------------------------------------------------------------


def test_compare_palettes_are_distinct_and_visible_on_their_background():
    for palette, background in ((LIGHT_COLOURS, LIGHT_BACKGROUND), (DARK_COLOURS, DARK_BACKGROUND)):
        assert len(set(palette)) == len(palette) >= 8
        for colour in palette:
            assert fmt.contrast_ratio(colour, background) >= fmt.AA_GRAPHICS_RATIO, colour
    assert compare_colour(0, dark=False) == LIGHT_COLOURS[0] and compare_colour(0, dark=True) == DARK_COLOURS[0]
    assert compare_colour(len(LIGHT_COLOURS), dark=False) == LIGHT_COLOURS[0]  # wraps


def test_a_compared_job_keeps_its_colour_when_others_join_or_leave():
    first = assign_colours(["a", "b", "c"])
    assert first == {"a": 0, "b": 1, "c": 2}
    second = assign_colours(["c", "d"], first)  # a and b left, d joined: c keeps 2, d takes the lowest free
    assert second == {"c": 2, "d": 0}
    assert assign_colours(["a", "a", "b"]) == {"a": 0, "b": 1}


# -- the model's ETA column, swatches and detail --------------------------------------------------------


def job(number: int, status: str = "running", **fields) -> TrainingJob:
    now = datetime.now(UTC)
    values = dict(id=f"job-{number}", name=f"job {number}", status=status, progress=10.0, current_step=10,
                  total_steps=100, current_loss=0.5, created_at=format_timestamp(now - timedelta(minutes=10 - number)),
                  started_at=format_timestamp(now - timedelta(minutes=5)) if status != "queued" else None)
    values.update(fields)
    return TrainingJob.model_validate(values)


def eta_in(seconds: float) -> str:
    return format_timestamp(datetime.now(UTC) + timedelta(seconds=seconds))


def test_eta_column_reads_estimating_then_the_countdown_the_server_sends(qapp, qtmodeltester):
    model = JobListModel()
    qtmodeltester.check(model)
    model.apply_active_snapshot([job(0), job(1, "queued")])
    eta_cell = model.index(0, int(JobColumn.ETA))
    assert model.headerData(int(JobColumn.ETA), Qt.Orientation.Horizontal) == "ETA"
    assert eta_cell.data() == "estimating…" and eta_cell.data(JobRole.ETA_AT) is None
    assert model.index(1, int(JobColumn.ETA)).data() == fmt.NO_VALUE  # queued: no ETA
    changes: list[tuple[int, int, int, int]] = []
    model.dataChanged.connect(lambda tl, br, roles: changes.append((tl.row(), tl.column(), br.row(), br.column())))

    model.apply_updates([job(0, eta_at=eta_in(12 * 60 + 20))])

    assert any(first <= int(JobColumn.ETA) <= last for row, first, _, last in changes if row == 0)
    assert eta_cell.data() == "in 12 min"
    assert "Expected to finish at" in eta_cell.data(Qt.ItemDataRole.ToolTipRole)
    assert isinstance(eta_cell.data(JobRole.ETA_AT), float)
    assert eta_cell.data(Qt.ItemDataRole.AccessibleTextRole) == "finishes in 12 min"
    model.apply_updates([job(0, eta_at=eta_in(-90))])  # the trainer stalled past its estimate
    assert eta_cell.data() == "any moment now"
    model.apply_updates([job(0, status="completed", progress=100.0, eta_at=None,
                             finished_at=format_timestamp(datetime.now(UTC)))])
    assert eta_cell.data() == fmt.NO_VALUE


def test_the_tick_announces_eta_cells_of_running_jobs_with_an_estimate_only(qapp):
    model = JobListModel()
    model.apply_active_snapshot([job(0, eta_at=eta_in(600)), job(1), job(2, eta_at=eta_in(900)),
                                 job(3, eta_at=eta_in(60)), job(4, "queued")])
    changes: list[tuple[int, int, int, int]] = []
    model.dataChanged.connect(lambda tl, br, roles: changes.append((tl.row(), tl.column(), br.row(), br.column())))
    model.tick()
    eta = int(JobColumn.ETA)
    assert [c for c in changes if c[1] == eta] == [(0, eta, 0, eta), (2, eta, 3, eta)]


def test_detail_shows_in_the_status_tooltip_of_a_running_job_only(qapp):
    model = JobListModel()
    model.apply_active_snapshot([job(0)])
    status = model.index(0, int(JobColumn.STATUS))
    changes: list[int] = []
    model.dataChanged.connect(lambda tl, br, roles: changes.extend(range(tl.column(), br.column() + 1)))
    model.apply_updates([job(0, detail="loading image sizes 16/16")])
    assert int(JobColumn.STATUS) in changes
    assert "loading image sizes 16/16" in status.data(Qt.ItemDataRole.ToolTipRole)
    model.apply_updates([job(0, status="completed", detail="loading image sizes 16/16",
                             finished_at=format_timestamp(datetime.now(UTC)))])
    assert "loading image sizes" not in status.data(Qt.ItemDataRole.ToolTipRole)


def test_a_change_only_to_the_produced_model_still_reaches_readers_of_the_job(qapp):
    model = JobListModel()
    done = dict(status="completed", progress=100.0, finished_at=format_timestamp(datetime.now(UTC)))
    model.apply_active_snapshot([job(0, **done)])
    rows: list[int] = []
    model.dataChanged.connect(lambda tl, br, roles: rows.append(tl.row()) if int(JobRole.JOB) in roles else None)
    model.apply_updates([job(0, model_id="model-7", **done)])
    assert rows == [0] and model.job("job-0").model_id == "model-7"


def test_compare_colours_are_a_named_role_and_the_name_cells_swatch(qapp, qtmodeltester):
    model = JobListModel()
    qtmodeltester.check(model)
    model.apply_active_snapshot([job(0), job(1), job(2)])
    changed: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda tl, br, roles: changed.append((tl.row(), tl.column())))

    model.set_compare_colours({"job-0": "#0060b0", "job-2": "#d55e00"})

    assert sorted(changed) == [(0, int(JobColumn.NAME)), (2, int(JobColumn.NAME))]
    assert model.index(0, 0).data(JobRole.COMPARE_COLOUR) == QColor("#0060b0")
    assert model.index(1, 0).data(JobRole.COMPARE_COLOUR) is None
    name_look = model.index(2, int(JobColumn.NAME)).data(JobRole.TEXT_LOOK)
    assert isinstance(name_look, TextLook) and name_look.swatch == QColor("#d55e00")
    assert model.index(2, int(JobColumn.STEP)).data(JobRole.TEXT_LOOK).swatch is None  # the Name cell only
    changed.clear()
    model.set_compare_colours({"job-0": "#0060b0"})
    assert changed == [(2, int(JobColumn.NAME))]  # only the row whose swatch went away
    assert model.index(2, 0).data(JobRole.COMPARE_COLOUR) is None
