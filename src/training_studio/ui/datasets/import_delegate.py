"""Painting one file of the import: a grid tile (thumbnail over name) or a list row (type icon beside text).

`ImportFileDelegate` owns how a row of `ImportFileModel` looks, read only from its named roles: the
picture (thumbnail, placeholder or type icon), the elided name, and the upload state — a thin progress
bar while the file is sent, a green mark once stored, a red band with "Rejected" when refused. Every
tile has the same size, so a `QListView` with uniform item sizes lays out 10,000 of them instantly.
Progress bars are hand-painted (styles ignore the rect for progress bars in item views on some platforms).
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from training_studio.ui.datasets.import_model import FileState, ImportRole, format_bytes
from training_studio.ui.datasets.import_thumbnails import THUMBNAIL_SIZE, type_icon

__all__ = ["ImportFileDelegate", "GRID_TILE", "LIST_ROW_HEIGHT"]

_ModelIndex = QModelIndex | QPersistentModelIndex
GRID_TILE = QSize(THUMBNAIL_SIZE + 24, THUMBNAIL_SIZE + 40)
LIST_ROW_HEIGHT = 40
LIST_ICON = 32
_STATE_COLOURS = {FileState.STORED: QColor("#1e8e3e"), FileState.REJECTED: QColor("#c5221f"),
                  FileState.UPLOADING: QColor("#1a73e8"), FileState.QUEUED: QColor("#80868b"),
                  FileState.INTERRUPTED: QColor("#e37400")}


class ImportFileDelegate(QStyledItemDelegate):
    """See the module docstring; `grid=False` paints list rows for audio, video and text."""

    def __init__(self, parent: QWidget | None = None, *, grid: bool = True) -> None:
        super().__init__(parent)
        self.grid = grid

    def sizeHint(self, option: QStyleOptionViewItem, index: _ModelIndex) -> QSize:
        return QSize(GRID_TILE) if self.grid else QSize(max(200, option.rect.width()), LIST_ROW_HEIGHT)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _ModelIndex) -> None:
        painter.save()
        try:
            style = option.widget.style() if option.widget is not None else None
            if style is not None:
                # The selection/hover background only, drawn by the style so it matches the platform.
                background = QStyleOptionViewItem(option)
                background.text = ""
                background.icon = QIcon()
                style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, background, painter, option.widget)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            if self.grid:
                self._paint_tile(painter, option, index)
            else:
                self._paint_row(painter, option, index)
        finally:
            painter.restore()

    # grid ------------------------------------------------------------------------------------------------
    def _paint_tile(self, painter: QPainter, option: QStyleOptionViewItem, index: _ModelIndex) -> None:
        rect = option.rect.adjusted(4, 4, -4, -4)
        picture_box = QRect(rect.left(), rect.top(), rect.width(), THUMBNAIL_SIZE)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            _draw_centred(painter, pixmap, picture_box)
        state = _state_of(index)
        name_box = QRect(rect.left(), picture_box.bottom() + 4, rect.width(), option.fontMetrics.height())
        painter.setPen(option.palette.color(option.palette.ColorRole.HighlightedText
                                            if option.state & QStyle.StateFlag.State_Selected
                                            else option.palette.ColorRole.Text))
        name = option.fontMetrics.elidedText(str(index.data(Qt.ItemDataRole.DisplayRole) or ""),
                                             Qt.TextElideMode.ElideMiddle, name_box.width())
        painter.drawText(name_box, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, name)
        self._paint_state(painter, state, float(index.data(ImportRole.PROGRESS) or 0.0),
                          QRect(rect.left(), name_box.bottom() + 3, rect.width(), 5), picture_box)

    def _paint_state(self, painter: QPainter, state: FileState | None, progress: float, bar: QRect,
                     picture_box: QRect) -> None:
        if state in (FileState.UPLOADING, FileState.QUEUED):
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(128, 128, 128, 60))
            painter.drawRoundedRect(QRectF(bar), 2, 2)
            if progress > 0:
                filled = QRectF(bar)
                filled.setWidth(bar.width() * min(1.0, progress))
                painter.setBrush(_STATE_COLOURS[FileState.UPLOADING])
                painter.drawRoundedRect(filled, 2, 2)
        elif state == FileState.STORED:
            centre = QRectF(picture_box.right() - 20, picture_box.top() + 2, 18, 18)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(_STATE_COLOURS[FileState.STORED])
            painter.drawEllipse(centre)
            painter.setPen(QPen(QColor("white"), 2))
            painter.drawPolyline([centre.center() + offset for offset in
                                  (QPointF(-4.5, 0), QPointF(-1.5, 3.5), QPointF(4.5, -3.5))])
        elif state in (FileState.REJECTED, FileState.INTERRUPTED):
            band = QRectF(picture_box.left(), picture_box.bottom() - 18, picture_box.width(), 18)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(_STATE_COLOURS[state])
            painter.drawRect(band)
            painter.setPen(QColor("white"))
            painter.drawText(band, Qt.AlignmentFlag.AlignCenter, state.label)

    # list ------------------------------------------------------------------------------------------------
    def _paint_row(self, painter: QPainter, option: QStyleOptionViewItem, index: _ModelIndex) -> None:
        rect = option.rect.adjusted(6, 4, -6, -4)
        icon_box = QRect(rect.left(), rect.top() + (rect.height() - LIST_ICON) // 2, LIST_ICON, LIST_ICON)
        kind = str(index.data(ImportRole.KIND) or "")
        # Type icons are drawn for the size they are shown at, so the format label stays legible.
        pixmap = (type_icon(kind, str(index.data(ImportRole.FORMAT) or ""), LIST_ICON) if kind != "image"
                  else index.data(Qt.ItemDataRole.DecorationRole))
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            _draw_centred(painter, pixmap, icon_box)
        state = _state_of(index)
        state_width = 150
        text_box = QRect(icon_box.right() + 8, rect.top(), rect.width() - LIST_ICON - 16 - state_width, rect.height())
        metrics = option.fontMetrics
        painter.setPen(option.palette.color(option.palette.ColorRole.Text))
        name = metrics.elidedText(str(index.data(Qt.ItemDataRole.DisplayRole) or ""), Qt.TextElideMode.ElideMiddle,
                                  text_box.width())
        painter.drawText(text_box.adjusted(0, 0, 0, -rect.height() // 2), Qt.AlignmentFlag.AlignLeft
                         | Qt.AlignmentFlag.AlignBottom, name)
        detail = f"{index.data(ImportRole.FORMAT)}, {format_bytes(int(index.data(ImportRole.SIZE) or 0))}"
        reason = str(index.data(ImportRole.REASON) or "")
        if reason:
            detail += f" — {reason}"
        painter.setPen(option.palette.color(option.palette.ColorRole.PlaceholderText))
        painter.drawText(text_box.adjusted(0, rect.height() // 2, 0, 0), Qt.AlignmentFlag.AlignLeft
                         | Qt.AlignmentFlag.AlignTop, metrics.elidedText(detail, Qt.TextElideMode.ElideRight,
                                                                          text_box.width()))
        state_box = QRect(text_box.right() + 8, rect.top(), state_width, rect.height())
        if isinstance(state, FileState):
            colour = _STATE_COLOURS.get(state, option.palette.color(option.palette.ColorRole.Text))
            painter.setPen(colour)
            painter.drawText(state_box.adjusted(0, 0, 0, -rect.height() // 2), Qt.AlignmentFlag.AlignRight
                             | Qt.AlignmentFlag.AlignBottom, state.label)
            if state in (FileState.UPLOADING, FileState.QUEUED):
                bar = QRect(state_box.left() + 40, state_box.center().y() + 4, state_box.width() - 40, 5)
                self._paint_state(painter, state, float(index.data(ImportRole.PROGRESS) or 0.0), bar, icon_box)


def _state_of(index: _ModelIndex) -> FileState | None:
    # Through QVariant the str-enum arrives as its plain value.
    try:
        return FileState(index.data(ImportRole.STATE))
    except ValueError:
        return None


def _draw_centred(painter: QPainter, pixmap: QPixmap, box: QRect) -> None:
    ratio = pixmap.devicePixelRatio() or 1.0
    size = QSize(int(pixmap.width() / ratio), int(pixmap.height() / ratio))
    if size.width() > box.width() or size.height() > box.height():
        size = size.scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
    target = QRect(box.left() + (box.width() - size.width()) // 2, box.top() + (box.height() - size.height()) // 2,
                   size.width(), size.height())
    painter.drawPixmap(target, pixmap)
