"""The file grid's validation role and badge, without a server: `FileRole.VALIDATION` follows the files
(Qt's model tester attached while a refresh flips it), and the tile delegate paints the "Validation" badge
only on held-out files, in both colour schemes."""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QStyleOptionViewItem

from training_studio.contract.models import DatasetFile
from training_studio.ui.datasets.files_model import DatasetFilesModel, FileRole
from training_studio.ui.datasets.store import THUMBNAIL_SIZE
from training_studio.ui.datasets.viewer import TILE_PADDING, FileTileDelegate, badge_colours

FILES = [DatasetFile(sha256=f"{n:064x}", filename=f"f{n}.png", size=10, caption="a cap", validation=n == 1)
         for n in range(3)]


def test_validation_role_follows_a_refresh(qtmodeltester, qtbot):
    model = DatasetFilesModel()
    model.set_files("d", FILES)
    qtmodeltester.check(model)
    assert [model.index(r, 0).data(FileRole.VALIDATION) for r in range(3)] == [False, True, False]
    assert model.validation_shas() == [FILES[1].sha256]
    assert model.counts() == (3, 1, 3)
    assert "Held out for validation" in model.index(1, 0).data(Qt.ItemDataRole.ToolTipRole)
    flipped = [f.model_copy(update={"validation": not f.validation}) for f in FILES]
    with qtbot.waitSignal(model.dataChanged, timeout=1000) as changed:
        model.set_files("d", flipped)  # the same files: a diff, not a reset
    assert FileRole.VALIDATION in changed.args[2]
    assert [model.index(r, 0).data(FileRole.VALIDATION) for r in range(3)] == [True, False, True]


def paint_tile(file: DatasetFile, dark: bool) -> tuple[QImage, QPalette]:
    model = DatasetFilesModel()
    model.set_files("d", [file])
    delegate = FileTileDelegate()
    option = QStyleOptionViewItem()
    palette = QApplication.palette()
    if dark:
        for role, colour in ((QPalette.ColorRole.Window, "#202020"), (QPalette.ColorRole.Base, "#181818"),
                             (QPalette.ColorRole.Text, "#eeeeee")):
            palette.setColor(role, QColor(colour))
    option.palette = palette
    option.font = QApplication.font()
    option.fontMetrics = QFontMetrics(option.font)
    size = delegate.sizeHint(option, model.index(0, 0))
    option.rect = QRect(0, 0, size.width(), size.height())
    image = QImage(size, QImage.Format.Format_ARGB32)
    image.fill(palette.color(QPalette.ColorRole.Base))
    painter = QPainter(image)
    delegate.paint(painter, option, model.index(0, 0))
    painter.end()
    return image, palette


def test_the_badge_is_painted_only_on_held_out_files(qapp):
    assert THUMBNAIL_SIZE > 40
    square_left = (THUMBNAIL_SIZE + 2 * TILE_PADDING - THUMBNAIL_SIZE) // 2
    probe = (square_left + 4, TILE_PADDING + 4)  # inside the badge's rounded rectangle
    for dark in (False, True):
        held, palette = paint_tile(FILES[1], dark)
        trained, _ = paint_tile(FILES[0], dark)
        background, _text = badge_colours(palette)
        assert QColor(held.pixel(*probe)) == background
        assert QColor(trained.pixel(*probe)) != background
