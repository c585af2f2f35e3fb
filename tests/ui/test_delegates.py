"""Delegates painted into real images, the SVG icons from package data, and the colour and text
choices behind them (WCAG contrast computed for every palette entry)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter, QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QApplication,
    QHeaderView,
    QStyle,
    QStyleOptionViewItem,
    QTableView,
)

from training_studio.contract.models import JobStatus, TrainingJob
from training_studio.ui import icons
from training_studio.ui.jobs import format as fmt
from training_studio.ui.jobs.delegates import (
    ProgressBarDelegate,
    StatusBadgeDelegate,
    TextCellDelegate,
)
from training_studio.ui.jobs.model import JobColumn, JobFilterProxyModel, JobListModel, JobRole

CELL_WIDTH, CELL_HEIGHT = 220, 30
ALL_STATUSES = list(JobStatus)


def light_palette() -> QPalette:
    palette = QPalette(QApplication.palette())
    palette.setColor(QPalette.ColorRole.Base, QColor("#ffffff"))
    palette.setColor(QPalette.ColorRole.Text, QColor("#1a1a1a"))
    palette.setColor(QPalette.ColorRole.Highlight, QColor("#3070c0"))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    return palette


def dark_palette() -> QPalette:
    palette = QPalette(QApplication.palette())
    palette.setColor(QPalette.ColorRole.Base, QColor("#1b1b1d"))
    palette.setColor(QPalette.ColorRole.Window, QColor("#1b1b1d"))
    palette.setColor(QPalette.ColorRole.Text, QColor("#e8eaed"))
    return palette


def model_with(qapp, status: str, progress: float = 0.0, cancelling: bool = False) -> JobListModel:
    model = JobListModel()
    model.apply_active_snapshot([TrainingJob(
        id="job", name="a job", status=status, progress=progress, current_step=1, total_steps=10,
        started_at="2026-01-01T00:00:00.000Z", created_at="2026-01-01T00:00:00.000Z")])
    model.set_cancelling("job", cancelling)
    return model


def paint_cell(delegate, model: JobListModel, column: JobColumn, *, palette: QPalette | None = None,
               selected: bool = False, ratio: float = 1.0,
               width: int = CELL_WIDTH) -> QImage:
    palette = palette or light_palette()
    image = QImage(round(width * ratio), round(CELL_HEIGHT * ratio),
                   QImage.Format.Format_ARGB32_Premultiplied)
    image.setDevicePixelRatio(ratio)
    image.fill(palette.color(QPalette.ColorRole.Base))
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, width, CELL_HEIGHT)
    option.palette = palette
    option.font = QApplication.font()
    option.state = QStyle.StateFlag.State_Enabled
    if selected:
        option.state |= QStyle.StateFlag.State_Selected
    option.showDecorationSelected = True
    painter = QPainter(image)
    try:
        delegate.paint(painter, option, model.index(0, column))
    finally:
        painter.end()
    return image


def colour_count(image: QImage, colour: str, tolerance: int = 6) -> int:
    """Pixels within `tolerance` per channel of `colour`."""
    target = QColor(colour)
    count = 0
    for y in range(image.height()):
        for x in range(image.width()):
            pixel = image.pixelColor(x, y)
            if (abs(pixel.red() - target.red()) <= tolerance
                    and abs(pixel.green() - target.green()) <= tolerance
                    and abs(pixel.blue() - target.blue()) <= tolerance):
                count += 1
    return count


def columns_with(image: QImage, colour: str, row: int, tolerance: int = 6) -> list[int]:
    target = QColor(colour)
    found = []
    for x in range(image.width()):
        pixel = image.pixelColor(x, row)
        if (abs(pixel.red() - target.red()) <= tolerance
                and abs(pixel.green() - target.green()) <= tolerance
                and abs(pixel.blue() - target.blue()) <= tolerance):
            found.append(x)
    return found


# -- progress bar --------------------------------------------------------------------------


@pytest.mark.parametrize("progress", [0.0, 25.0, 50.0, 100.0])
def test_progress_bar_fill_is_proportional(qapp, progress):
    model = model_with(qapp, "running", progress)
    colours = fmt.progress_colours(JobStatus.RUNNING, dark=False)

    image = paint_cell(ProgressBarDelegate(), model, JobColumn.PROGRESS)

    middle = CELL_HEIGHT // 2
    fill = columns_with(image, colours.fill, middle)
    track = columns_with(image, colours.track, middle)
    bar_width = len(fill) + len(track)
    assert bar_width > 80  # the bar is there and spans most of the cell
    assert len(fill) / bar_width == pytest.approx(progress / 100, abs=0.04)
    if fill:
        assert max(fill) < min(track or [image.width()])  # fill on the left, track on the right


def test_progress_bar_draws_the_percentage_text(qapp):
    blank = paint_cell(ProgressBarDelegate(), model_with(qapp, "running", 0.0), JobColumn.PROGRESS)
    image = paint_cell(ProgressBarDelegate(), model_with(qapp, "running", 88.0), JobColumn.PROGRESS)

    text_area = image.copy(QRect(CELL_WIDTH - 50, 0, 44, CELL_HEIGHT))
    blank_area = blank.copy(QRect(CELL_WIDTH - 50, 0, 44, CELL_HEIGHT))
    assert colour_count(text_area, "#1a1a1a", tolerance=60) > 10  # dark glyph pixels
    assert text_area != blank_area  # "88%" and "0%" differ


def test_progress_bar_on_a_selected_row_keeps_its_colours(qapp):
    palette = light_palette()
    model = model_with(qapp, "failed", 60.0)
    colours = fmt.progress_colours(JobStatus.FAILED, dark=False)

    image = paint_cell(ProgressBarDelegate(), model, JobColumn.PROGRESS, selected=True)

    assert colour_count(image, palette.color(QPalette.ColorRole.Highlight).name()) > 500
    middle = CELL_HEIGHT // 2
    assert len(columns_with(image, colours.fill, middle)) > 60
    assert len(columns_with(image, colours.track, middle)) > 30


def test_progress_bar_uses_the_dark_palette_on_dark_backgrounds(qapp):
    model = model_with(qapp, "running", 50.0)
    dark = fmt.progress_colours(JobStatus.RUNNING, dark=True)
    light = fmt.progress_colours(JobStatus.RUNNING, dark=False)

    image = paint_cell(ProgressBarDelegate(), model, JobColumn.PROGRESS, palette=dark_palette())

    middle = CELL_HEIGHT // 2
    assert len(columns_with(image, dark.fill, middle)) > 40
    assert columns_with(image, light.fill, middle, tolerance=2) == []


def test_progress_bar_in_a_narrow_cell_shows_text_only(qapp):
    model = model_with(qapp, "running", 50.0)
    colours = fmt.progress_colours(JobStatus.RUNNING, dark=False)

    image = paint_cell(ProgressBarDelegate(), model, JobColumn.PROGRESS, width=50)

    assert colour_count(image, colours.fill) == 0
    assert colour_count(image, "#1a1a1a", tolerance=60) > 10


# -- status badge ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "queued", "running", "completed", "failed",
                                    "cancelled", "paused"])
def test_badge_paints_background_icon_and_text_in_status_colours(qapp, status):
    model = model_with(qapp, status)
    colours = fmt.status_colours(JobStatus(status), dark=False)

    image = paint_cell(StatusBadgeDelegate(), model, JobColumn.STATUS)

    assert colour_count(image, colours.background) > 300
    icon_area = image.copy(QRect(4, 0, 26, CELL_HEIGHT))
    text_area = image.copy(QRect(30, 0, CELL_WIDTH - 30, CELL_HEIGHT))
    assert colour_count(icon_area, colours.foreground, tolerance=40) > 8
    assert colour_count(text_area, colours.foreground, tolerance=40) > 15



def test_a_badge_too_narrow_for_its_label_shows_the_icon_alone(qapp):
    """A Status column narrower than the whole badge (a narrow window) shows the status's icon on its pill,
    not a label cut to "Com…"; the cell's tooltip still names the status."""
    model = model_with(qapp, "completed")
    colours = fmt.status_colours(JobStatus.COMPLETED, dark=False)

    image = paint_cell(StatusBadgeDelegate(), model, JobColumn.STATUS, width=70)

    # The pill: from the cell's margin, the icon (the font's height) with the badge's padding either side.
    icon = max(8, min(CELL_HEIGHT - 4, QFontMetrics(QApplication.font()).height() + 6) - 6)
    pill_right = 4 + 2 * 7 + icon - 2
    assert pill_right < 60  # (else the cell is too narrow for this check)
    icon_area = image.copy(QRect(4, 0, pill_right - 4, CELL_HEIGHT))
    beyond_icon = image.copy(QRect(pill_right + 2, 0, 70 - pill_right - 2, CELL_HEIGHT))
    assert colour_count(icon_area, colours.foreground, tolerance=40) > 8
    assert colour_count(icon_area, colours.background) > 100  # the pill around it
    assert colour_count(beyond_icon, colours.foreground, tolerance=40) == 0  # no text
    assert colour_count(beyond_icon, colours.background) == 0  # a round pill, not a stretched one
    assert "Completed" in model.index(0, int(JobColumn.STATUS)).data(Qt.ItemDataRole.ToolTipRole)
    # Wide enough for the whole label: the label is there.
    wide = paint_cell(StatusBadgeDelegate(), model, JobColumn.STATUS)
    text_area = wide.copy(QRect(pill_right + 2, 0, CELL_WIDTH - pill_right - 2, CELL_HEIGHT))
    assert colour_count(text_area, colours.foreground, tolerance=40) > 15


def test_each_status_draws_its_own_icon(qapp):
    icon_areas = {}
    for status in ["queued", "running", "completed", "failed", "cancelled", "paused"]:
        image = paint_cell(StatusBadgeDelegate(), model_with(qapp, status), JobColumn.STATUS)
        # Compare shapes, not colours: each icon's opaque-ish foreground mask.
        area = image.copy(QRect(4, 0, 26, CELL_HEIGHT))
        background = QColor(fmt.status_colours(JobStatus(status), dark=False).background)
        mask = tuple(
            area.pixelColor(x, y) != background
            for y in range(area.height()) for x in range(area.width()))
        icon_areas[status] = mask
    assert len(set(icon_areas.values())) == len(icon_areas)


def test_cancelling_badge_reads_cancelling(qapp):
    running = paint_cell(StatusBadgeDelegate(), model_with(qapp, "running"), JobColumn.STATUS)
    cancelling = paint_cell(StatusBadgeDelegate(), model_with(qapp, "running", cancelling=True),
                            JobColumn.STATUS)
    colours = fmt.status_colours(JobStatus.CANCELLED, dark=False)
    assert colour_count(cancelling, colours.background) > 300
    assert cancelling != running


def test_badge_is_crisp_at_device_pixel_ratio_two(qapp):
    model = model_with(qapp, "completed")

    double = paint_cell(StatusBadgeDelegate(), model, JobColumn.STATUS, ratio=2.0)

    assert (double.width(), double.height()) == (2 * CELL_WIDTH, 2 * CELL_HEIGHT)
    # An icon rendered at 1x and scaled up is made of uniform 2x2 device-pixel blocks; one
    # rendered at 2x has detail inside those blocks. Ink: the dark green strokes on pale green.
    detailed_blocks = inked_blocks = 0
    for y in range(0, 2 * CELL_HEIGHT - 1, 2):
        for x in range(8, 52, 2):
            block = [double.pixelColor(x + dx, y + dy) for dy in (0, 1) for dx in (0, 1)]
            if any(pixel.lightness() < 200 for pixel in block):
                inked_blocks += 1
                if len({pixel.rgba() for pixel in block}) > 1:
                    detailed_blocks += 1
    assert inked_blocks > 20
    assert detailed_blocks > inked_blocks // 2


def test_badge_on_dark_palette_uses_dark_colours(qapp):
    model = model_with(qapp, "failed")
    image = paint_cell(StatusBadgeDelegate(), model, JobColumn.STATUS, palette=dark_palette())
    assert colour_count(image, fmt.status_colours(JobStatus.FAILED, dark=True).background) > 300
    assert colour_count(image, fmt.status_colours(JobStatus.FAILED, dark=False).background) == 0


def test_size_hints_fit_the_content(qapp):
    model = model_with(qapp, "running")
    option = QStyleOptionViewItem()
    option.font = QApplication.font()
    badge = StatusBadgeDelegate().sizeHint(option, model.index(0, JobColumn.STATUS))
    bar = ProgressBarDelegate().sizeHint(option, model.index(0, JobColumn.PROGRESS))
    assert badge.width() > option.fontMetrics.horizontalAdvance("Cancelling…")
    assert bar.height() >= option.fontMetrics.height()


def test_cached_looks_paint_exactly_what_a_fresh_delegate_paints(qapp):
    # One delegate instance paints a sequence of different cells (it caches rendered looks);
    # each must come out pixel for pixel as a brand-new delegate paints it.
    badge, bar = StatusBadgeDelegate(), ProgressBarDelegate()
    cases = [("running", 10.0, False, False, 1.0, CELL_WIDTH),
             ("running", 10.0, False, True, 1.0, CELL_WIDTH),  # selected: white percentage
             ("running", 60.0, False, True, 1.0, CELL_WIDTH),
             ("running", 60.0, True, True, 1.0, CELL_WIDTH),  # cancelling: another badge
             ("failed", 60.0, False, False, 1.0, CELL_WIDTH),
             ("failed", 60.0, False, False, 2.0, CELL_WIDTH),  # another device ratio
             ("failed", 60.0, False, False, 1.0, 120),  # a narrower column
             ("completed", 100.0, False, False, 1.0, CELL_WIDTH),
             ("running", 10.0, False, False, 1.0, CELL_WIDTH)]  # back to the first look
    for status, progress, cancelling, selected, ratio, width in cases:
        model = model_with(qapp, status, progress, cancelling)
        for palette in (light_palette(), dark_palette()):
            for column, cached, fresh in ((JobColumn.STATUS, badge, StatusBadgeDelegate()),
                                          (JobColumn.PROGRESS, bar, ProgressBarDelegate())):
                kwargs = dict(palette=palette, selected=selected, ratio=ratio, width=width)
                assert paint_cell(cached, model, column, **kwargs) == \
                    paint_cell(fresh, model, column, **kwargs), (status, progress, column)


def test_delegates_paint_models_without_the_look_roles(qapp):
    # Any model offering the single roles (STATUS, DISPLAY_STATUS, PROGRESS) paints alike.
    ours = model_with(qapp, "failed", 40.0)
    plain = QStandardItemModel(1, len(JobColumn))
    for column in (JobColumn.STATUS, JobColumn.PROGRESS):
        item = QStandardItem()
        item.setData("failed", JobRole.STATUS)
        item.setData("Failed", JobRole.DISPLAY_STATUS)
        item.setData(40.0, JobRole.PROGRESS)
        # Finished rows are dimmed: the percentage takes the row's foreground colour.
        item.setData(ours.index(0, 0).data(Qt.ItemDataRole.ForegroundRole),
                     Qt.ItemDataRole.ForegroundRole)
        plain.setItem(0, int(column), item)

    for delegate, column in ((StatusBadgeDelegate(), JobColumn.STATUS),
                             (ProgressBarDelegate(), JobColumn.PROGRESS)):
        assert paint_cell(delegate, plain, column) == paint_cell(delegate, ours, column)


def grab_table(model, delegate=None) -> QImage:
    proxy = JobFilterProxyModel()
    proxy.setSourceModel(model)
    view = QTableView()
    view.setModel(proxy)
    if delegate is not None:
        view.setItemDelegate(delegate)
    view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
    view.setAlternatingRowColors(True)
    view.setShowGrid(False)
    view.setWordWrap(False)
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    view.setColumnWidth(int(JobColumn.NAME), 160)
    view.resize(760, 260)
    view.selectRow(2)
    view.show()
    QApplication.processEvents()
    image = view.viewport().grab().toImage()
    view.close()
    return image


def test_text_cells_paint_exactly_like_qt_default_delegate(qapp):
    model = JobListModel()
    model.apply_active_snapshot([
        TrainingJob(id=f"job-{n}", name=f"job {n} " + "with a long name " * (n % 3), status=status,
                    progress=10.0 * n, current_step=n * 1000 if n else None, total_steps=9000,
                    current_loss=0.5 / (n + 1) if n % 4 else None,
                    started_at="2026-01-01T00:00:00.000Z", created_at=f"2026-01-01T00:00:0{n}.000Z",
                    finished_at="2026-01-01T01:02:03.000Z" if status == "completed" else None)
        for n, status in enumerate(["running", "completed", "running", "queued", "completed",
                                    "failed", "running"])])

    default = grab_table(model)
    ours = grab_table(model, TextCellDelegate())

    assert ours == default  # names elided, dimmed finished rows, the selected row, alignments
    assert grab_table(model, TextCellDelegate()) != grab_table(JobListModel())  # not blank


# -- icons ------------------------------------------------------------------------------------


def test_every_status_icon_ships_as_package_data_with_its_licence():
    folder = resources.files("training_studio.resources").joinpath("icons")
    names = icons.icon_names()
    for status in ALL_STATUSES:
        assert icons.status_icon_name(status) in names
    assert {"clock", "zap", "circle-check", "circle-alert", "circle-x", "circle-help"} <= set(names)
    licence = folder.joinpath("LICENSE").read_text(encoding="utf-8")
    assert "ISC" in licence and "Lucide" in licence
    for name in names:
        markup = icons.svg_bytes(name)
        assert b'viewBox="0 0 24 24"' in markup and b"currentColor" in markup


def test_icons_load_when_the_package_is_imported_from_a_zip(tmp_path):
    # Frozen apps and zipapps import packages from archives, where paths built from __file__
    # do not exist; importlib.resources must be what finds the SVGs.
    package_root = Path(icons.__file__).resolve().parents[1]
    archive = tmp_path / "packaged.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in package_root.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                bundle.write(path, Path("training_studio") / path.relative_to(package_root))
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from PySide6.QtGui import QGuiApplication; app = QGuiApplication([])\n"
        "from training_studio.ui import icons\n"
        "assert icons.__file__.startswith(sys.argv[1]), icons.__file__\n"
        "image = icons.pixmap('circle-check', 16, 2.0, '#00aa00').toImage()\n"
        "inked = sum(image.pixelColor(x, y).alpha() > 0 for x in range(32) for y in range(32))\n"
        "print(','.join(icons.icon_names()), inked)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(archive)], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
    names, inked = result.stdout.split()
    assert set(names.split(",")) >= set(icons.STATUS_ICON_NAMES.values())
    assert int(inked) > 50


def test_icon_pixmaps_render_in_colour_at_the_device_ratio_and_are_cached(qapp):
    first = icons.pixmap("zap", 16, 2.0, "#ff0000")
    again = icons.pixmap("zap", 16, 2.0, "#ff0000")
    other_ratio = icons.pixmap("zap", 16, 1.0, "#ff0000")

    assert again is first
    assert (first.width(), first.height(), first.devicePixelRatio()) == (32, 32, 2.0)
    assert other_ratio.width() == 16
    image = first.toImage()
    red = sum(1 for y in range(32) for x in range(32)
              if image.pixelColor(x, y).alpha() > 200 and image.pixelColor(x, y).red() > 200
              and image.pixelColor(x, y).green() < 60)
    assert red > 30


def test_a_missing_icon_gives_an_empty_pixmap_not_an_exception(qapp):
    missing = icons.pixmap("no-such-icon", 16, 1.0)
    image = missing.toImage()
    assert all(image.pixelColor(x, y).alpha() == 0 for y in range(16) for x in range(16))


def test_qicon_has_sizes_for_buttons(qapp):
    icon = icons.icon("circle-x", "#333333")
    assert not icon.isNull()
    assert 16 in [size.width() for size in icon.availableSizes()]


# -- contrast and formats -----------------------------------------------------------------------


def test_wcag_contrast_formula():
    assert fmt.contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert fmt.contrast_ratio("#777777", "#777777") == pytest.approx(1.0)
    assert fmt.contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("status", ALL_STATUSES)
def test_badge_and_bar_colours_meet_wcag_aa(status, dark):
    badge = fmt.status_colours(status, dark=dark)
    assert fmt.contrast_ratio(badge.foreground, badge.background) >= fmt.AA_TEXT_RATIO
    bar = fmt.progress_colours(status, dark=dark)
    assert fmt.contrast_ratio(bar.fill, bar.track) >= fmt.AA_GRAPHICS_RATIO


@pytest.mark.parametrize("text,base", [("#000000", "#ffffff"), ("#1a1a1a", "#ffffff"),
                                        ("#e8eaed", "#1b1b1d"), ("#ffffff", "#2b2b2b")])
def test_dimmed_text_is_dimmer_but_still_aa(text, base):
    dimmed = fmt.dimmed_text_colour(text, base)
    assert dimmed != text
    assert fmt.contrast_ratio(dimmed, base) >= fmt.AA_TEXT_RATIO
    assert fmt.contrast_ratio(dimmed, base) < fmt.contrast_ratio(text, base)


def test_dimming_never_worsens_an_already_low_contrast_theme():
    assert fmt.dimmed_text_colour("#999999", "#ffffff") == "#999999"


def test_dark_background_detection():
    assert fmt.is_dark_background("#1b1b1d")
    assert not fmt.is_dark_background("#ffffff")


def test_value_formats():
    assert fmt.format_elapsed(None) == "—"
    assert fmt.format_elapsed(-5) == "0:00"
    assert fmt.format_elapsed(65.9) == "1:05"
    assert fmt.format_elapsed(3725) == "1:02:05"
    assert fmt.spoken_elapsed(3725) == "1 hour 2 minutes 5 seconds"
    assert fmt.spoken_elapsed(0) == "0 seconds"
    assert fmt.format_loss(None) == "—"
    assert fmt.format_loss(0.08312) == "0.0831"
    assert fmt.format_loss(2.5) == "2.5"
    assert fmt.format_loss(0.00002) == "2.000e-05"
    assert fmt.format_loss(float("nan")) == "NaN"
    assert fmt.format_loss(float("inf")) == "∞"
    assert fmt.format_step(1200, 10000) == "1,200 / 10,000"
    assert fmt.format_step(None, 500) == "— / 500"
    assert fmt.format_step(None, None) == "—"
    assert fmt.format_progress(99.7) == "99%"  # an unfinished job never reads 100%
    assert fmt.format_progress(100) == "100%"
    assert fmt.format_progress(250) == "100%"
    assert fmt.format_progress(float("nan")) == "0%"
    assert fmt.status_label("bogus") == "Unknown"
    assert fmt.status_label(JobStatus.CANCELLED) == "Cancelled"
