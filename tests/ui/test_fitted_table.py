"""`FittedTableView` as the Jobs table uses it (no server: an empty model gives the columns): in a narrow
window Runs on and Status give way first, so steps and losses keep their digits; a width the user dragged, or
one restored from the settings, is what the table fits from afterwards."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QHeaderView

from training_studio.ui.fitted_table import FittedTableView
from training_studio.ui.jobs.model import JobColumn, JobListModel
from training_studio.ui.jobs.panel import MIN_COLUMN_WIDTH, MIN_NAME_WIDTH, PREFERRED_WIDTHS, JobsTableView
from training_studio.ui.settings import AppSettings


def _table(qtbot, width: int) -> JobsTableView:
    table = JobsTableView()
    table.setModel(JobListModel(table))
    header = table.horizontalHeader()  # as the Jobs panel sets it up: the name stretches, the rest fixed
    header.setStretchLastSection(False)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setSectionResizeMode(int(JobColumn.NAME), QHeaderView.ResizeMode.Stretch)
    qtbot.addWidget(table)
    table.resize(width, 300)
    table.show()
    qtbot.waitExposed(table)
    return table


def _sizes(table: JobsTableView) -> dict[JobColumn, int]:
    header = table.horizontalHeader()
    return {column: header.sectionSize(int(column)) for column in JobColumn}


def test_runs_on_and_status_give_way_before_the_numbers(qtbot):
    table = _table(qtbot, 1400)
    preferred = {JobColumn(int(column)): width for column, width in table.preferred_widths().items()}
    qtbot.waitUntil(lambda: all(_sizes(table)[column] == width for column, width in preferred.items()), timeout=5_000)
    # Narrow enough that Runs on and Status must give up most of their width, but not the others.
    width = MIN_NAME_WIDTH + sum(preferred.values()) - (preferred[JobColumn.RUNS_ON] - MIN_COLUMN_WIDTH) \
        - (preferred[JobColumn.STATUS] - MIN_COLUMN_WIDTH) // 2
    table.resize(width + (table.width() - table.viewport().width()), 300)
    qtbot.waitUntil(lambda: _sizes(table)[JobColumn.RUNS_ON] == MIN_COLUMN_WIDTH, timeout=5_000)
    sizes = _sizes(table)
    assert MIN_COLUMN_WIDTH < sizes[JobColumn.STATUS] < preferred[JobColumn.STATUS]
    for column in (JobColumn.PROGRESS, JobColumn.STEP, JobColumn.LOSS, JobColumn.ELAPSED, JobColumn.ETA):
        assert sizes[column] == preferred[column], column
    assert sizes[JobColumn.NAME] >= MIN_NAME_WIDTH


def test_a_width_the_user_gave_a_column_is_kept(qtbot):
    table = _table(qtbot, 1400)
    header = table.horizontalHeader()
    qtbot.waitUntil(lambda: header.sectionSize(int(JobColumn.LOSS)) == PREFERRED_WIDTHS[JobColumn.LOSS], timeout=5_000)
    header.resizeSection(int(JobColumn.LOSS), 140)  # as a drag of its edge does
    table.resize(700, 300)
    qtbot.waitUntil(lambda: _sizes(table)[JobColumn.RUNS_ON] == MIN_COLUMN_WIDTH, timeout=5_000)
    table.resize(1400, 300)
    qtbot.waitUntil(lambda: _sizes(table)[JobColumn.RUNS_ON] == PREFERRED_WIDTHS[JobColumn.RUNS_ON], timeout=5_000)
    assert header.sectionSize(int(JobColumn.LOSS)) == 140

    # A header state restored from the settings (restoreState emits no resize signal) counts the same.
    saved = header.saveState()
    other = _table(qtbot, 1400)
    qtbot.waitUntil(lambda: _sizes(other)[JobColumn.LOSS] == PREFERRED_WIDTHS[JobColumn.LOSS], timeout=5_000)
    assert other.horizontalHeader().restoreState(saved)
    other.resize(1300, 300)
    qtbot.waitUntil(lambda: other.viewport().width() < 1300, timeout=5_000)
    qtbot.waitUntil(lambda: _sizes(other)[JobColumn.RUNS_ON] == PREFERRED_WIDTHS[JobColumn.RUNS_ON], timeout=5_000)
    assert _sizes(other)[JobColumn.LOSS] == 140


def test_a_narrow_window_at_quit_saves_the_preferred_widths_not_the_squeezed_ones(qtbot, tmp_path):
    settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    table = _table(qtbot, 1400)
    header = table.horizontalHeader()
    qtbot.waitUntil(lambda: _sizes(table)[JobColumn.STATUS] == PREFERRED_WIDTHS[JobColumn.STATUS], timeout=5_000)
    header.resizeSection(int(JobColumn.LOSS), 140)  # the user's own width: saved as such
    table.resize(640, 300)
    qtbot.waitUntil(lambda: _sizes(table)[JobColumn.STATUS] < PREFERRED_WIDTHS[JobColumn.STATUS], timeout=5_000)
    squeezed = _sizes(table)
    settings.save_header(header, "jobs")
    assert _sizes(table) == squeezed  # saving changed nothing on screen

    # The bug: the next start restored the squeezed widths as the user's choice; Status stayed an icon.
    other = _table(qtbot, 1400)
    assert settings.restore_header(other.horizontalHeader(), "jobs")
    other.resize(1300, 300)
    qtbot.waitUntil(lambda: other.viewport().width() < 1300, timeout=5_000)
    qtbot.waitUntil(lambda: _sizes(other)[JobColumn.STATUS] == PREFERRED_WIDTHS[JobColumn.STATUS], timeout=5_000)
    assert _sizes(other)[JobColumn.RUNS_ON] == PREFERRED_WIDTHS[JobColumn.RUNS_ON]
    assert _sizes(other)[JobColumn.LOSS] == 140


def _content_table(qtbot, width: int):
    from PySide6.QtGui import QStandardItem, QStandardItemModel

    model = QStandardItemModel(0, 4)
    model.setHorizontalHeaderLabels(["Name", "Base model", "Status", "Created"])
    table = FittedTableView(preferred={3: 140}, min_name_width=120, minimum=48, shrinks_first=(3, 1),
                            fit_contents=(1, 2))
    table.setModel(model)
    header = table.horizontalHeader()
    header.setStretchLastSection(False)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    qtbot.addWidget(table)
    table.resize(width, 300)
    table.show()
    qtbot.waitExposed(table)

    def add(name: str, base: str) -> None:
        model.appendRow([QStandardItem(name), QStandardItem(base), QStandardItem("Ready"),
                         QStandardItem("2026-12-05 14:47")])

    return table, add


def test_content_columns_follow_their_contents_and_give_way_in_a_narrow_window(qtbot):
    table, add = _content_table(qtbot, 1000)
    header = table.horizontalHeader()
    add("first", "builtin-linear-vae")
    qtbot.waitUntil(lambda: header.sectionSize(1) >= table.sizeHintForColumn(1) > 48, timeout=5_000)
    short = header.sectionSize(1)
    add("second", "stabilityai/stable-diffusion-xl-base-1.0")  # a longer base model: the column grows
    qtbot.waitUntil(lambda: header.sectionSize(1) > short, timeout=5_000)
    assert header.sectionSize(1) >= table.sizeHintForColumn(1)

    table.resize(420, 300)  # narrow: Created gives way first, then Base model; Name keeps its minimum
    qtbot.waitUntil(lambda: header.sectionSize(3) == 48, timeout=5_000)
    assert 48 < header.sectionSize(1) < table.sizeHintForColumn(1)  # Base model gave way next, Status not
    assert header.sectionSize(2) >= table.sizeHintForColumn(2)
    assert header.sectionSize(0) >= 120
    table.resize(1000, 300)
    qtbot.waitUntil(lambda: header.sectionSize(3) == 140, timeout=5_000)

    # A width the user drags a content column to is kept; a restored one follows the contents again.
    header.resizeSection(2, 150)
    table.resize(990, 300)
    qtbot.waitUntil(lambda: table.viewport().width() < 990, timeout=5_000)
    assert header.sectionSize(2) == 150
    state = header.saveState()
    other, add_other = _content_table(qtbot, 1000)
    add_other("first", "builtin-linear-vae")
    assert other.horizontalHeader().restoreState(state)
    other.resize(990, 300)
    qtbot.waitUntil(lambda: other.horizontalHeader().sectionSize(2) < 150, timeout=5_000)
