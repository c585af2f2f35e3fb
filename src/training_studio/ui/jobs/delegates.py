"""Hand-painted cells of the jobs table: the progress bar, the status badge and plain text cells.

This module owns how the cells of the jobs table look. The delegates read only the named roles
of `JobRole` (never column numbers): one `JobRole.LOOK` read per cell from a `JobListModel`, the
single roles (`STATUS`, `PROGRESS`, `DISPLAY_STATUS`, ...) from any other model. Each paints the
view's own cell background first (so selection and hover look native in every style), then its
content by hand: the macOS style ignores the rect of CE_ProgressBar in item views, and a
hand-drawn bar looks the same everywhere, selected rows included. Colours come from `format`
(WCAG AA in light and dark palettes); status is never colour alone (icon + text).

Speed: a 10,000-row table repaints its visible cells every second, and every Python call in
paint() counts. Badges, bar tracks, full bars and percentages are rendered once into pixmaps at
the painter's device pixel ratio and cached per look (status, label, size, colours, font,
ratio); a bar's fill is the left part of its full-bar pixmap, so a moving progress value needs
no new pixmap. After the first frame a cell costs one model read, the style's background and a
few drawPixmap calls. Font metrics are cached per font. Painter state is saved and restored
(try/finally) wherever paint() changes it. `TextCellDelegate` draws the plain text cells exactly
as Qt's default delegate does, from one `JobRole.TEXT_LOOK` read instead of seven role reads; a Name
cell whose job the details pane compares gets a swatch of the job's chart colour before its text
(`TextLook.swatch`), so the table says which curve is which.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetrics,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from training_studio.contract.models import JobStatus
from training_studio.ui import icons
from training_studio.ui.jobs import format as fmt
from training_studio.ui.jobs.model import CellLook, JobRole, TextLook

__all__ = ["ProgressBarDelegate", "StatusBadgeDelegate", "TextCellDelegate", "palette_is_dark"]

_ModelIndex = QModelIndex | QPersistentModelIndex

_CELL_MARGIN = 6
_BADGE_PADDING = 7
_BADGE_GAP = 5
_PERCENT_GAP = 8
# Rendered looks kept per delegate: a few per status and about one per percentage label; the
# bound only matters for a pathological mix of widths, ratios and fonts.
_MAX_CACHED_LOOKS = 1024

_LOOK = int(JobRole.LOOK)
_TEXT_LOOK = int(JobRole.TEXT_LOOK)
_MAX_CACHED_WIDTHS = 4096
_ALIGN_RIGHT_CENTRE = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_ALIGN_LEFT_CENTRE = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
SWATCH_SIZE = 10  # the compare colour's square in a Name cell
_SWATCH_SPACE = SWATCH_SIZE + 6  # what the text moves right by


_darkness: dict[int, bool] = {}


def palette_is_dark(palette: QPalette) -> bool:
    """Whether the view's base colour is dark, i.e. the dark badge/bar palette applies."""
    base = palette.color(QPalette.ColorRole.Base)
    key = base.rgb()
    dark = _darkness.get(key)
    if dark is None:
        dark = _darkness[key] = fmt.is_dark_background(base.name())
    return dark


def _look_of(index: _ModelIndex) -> CellLook:
    """The cell's look: one read from a JobListModel, single roles from any other model."""
    look = index.data(_LOOK)
    if isinstance(look, CellLook):
        return look
    status = fmt.known_status(index.data(JobRole.STATUS))
    label = index.data(JobRole.DISPLAY_STATUS) or fmt.status_label(status)
    foreground = index.data(Qt.ItemDataRole.ForegroundRole)
    if isinstance(foreground, QBrush):
        foreground = foreground.color()
    return CellLook(status, label, fmt.clamp_progress(index.data(JobRole.PROGRESS)),
                    bool(index.data(JobRole.IS_CANCELLING)),
                    foreground if isinstance(foreground, QColor) else None)


_colours: dict[str, QColor] = {}


def _colour(hex_colour: str) -> QColor:
    """A QColor per palette entry, parsed once rather than in every paint()."""
    colour = _colours.get(hex_colour)
    if colour is None:
        colour = _colours[hex_colour] = QColor(hex_colour)
    return colour


def _draw_cell_background(option: QStyleOptionViewItem, painter: QPainter) -> None:
    """The view's own panel (selection, hover, alternate row colour), without any text."""
    widget = option.widget
    style = widget.style() if widget is not None else QApplication.style()
    style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, widget)


_ENABLED = QStyle.StateFlag.State_Enabled.value
_SELECTED = QStyle.StateFlag.State_Selected.value
_HAS_FOCUS = QStyle.StateFlag.State_HasFocus.value
_LEFT_TO_RIGHT = Qt.LayoutDirection.LeftToRight
_NORMAL_GROUP = QPalette.ColorGroup.Normal
_DISABLED_GROUP = QPalette.ColorGroup.Disabled
_TEXT_ROLE = QPalette.ColorRole.Text
_HIGHLIGHTED_TEXT_ROLE = QPalette.ColorRole.HighlightedText


def _text_colour(option: QStyleOptionViewItem, foreground: QColor | None) -> QColor:
    """What the default delegate would use: highlighted text on selection, else the model's
    foreground (dimmed finished rows), else the palette's text."""
    state = option.state.value  # int arithmetic: Python-level Flag operators are slow in paint()
    group = _NORMAL_GROUP if state & _ENABLED else _DISABLED_GROUP
    if state & _SELECTED:
        return option.palette.color(group, _HIGHLIGHTED_TEXT_ROLE)
    if foreground is not None:
        return foreground
    return option.palette.color(group, _TEXT_ROLE)


def _device_ratio(painter: QPainter) -> float:
    device = painter.device()
    return device.devicePixelRatioF() if device is not None else 1.0


class _FontCache:
    """Metrics of the last font seen, and text widths in it; `serial` names the font in keys."""

    def __init__(self) -> None:
        self.font: QFont | None = None
        self.metrics: QFontMetrics | None = None
        self.serial = 0
        self._widths: dict[str, int] = {}

    def use(self, font: QFont) -> QFontMetrics:
        if self.font is None or font != self.font:
            self.font = QFont(font)
            self.metrics = QFontMetrics(self.font)
            self.serial += 1
            self._widths.clear()
        assert self.metrics is not None
        return self.metrics

    def width(self, text: str) -> int:
        width = self._widths.get(text)
        if width is None:
            assert self.metrics is not None
            if len(self._widths) >= _MAX_CACHED_WIDTHS:
                self._widths.clear()  # ever-new texts (elapsed times) must not pile up
            width = self._widths[text] = self.metrics.horizontalAdvance(text)
        return width


def _new_pixmap(width: float, height: float, ratio: float) -> QPixmap:
    pixmap = QPixmap(max(1, math.ceil(width * ratio)), max(1, math.ceil(height * ratio)))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    return pixmap


class _LookCache(dict):
    """Rendered pixmaps by look key, emptied when full (the looks in use come back at once)."""

    def put(self, key: tuple, rendered):
        if len(self) >= _MAX_CACHED_LOOKS:
            self.clear()
        self[key] = rendered
        return rendered


class ProgressBarDelegate(QStyledItemDelegate):
    """A rounded bar filled to `JobRole.PROGRESS` in the status colour, with the percentage."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._fonts = _FontCache()
        self._looks = _LookCache()

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _ModelIndex) -> None:
        # The view's option (state, palette, font, alternate rows) is all we need, unmodified:
        # initStyleOption would query a dozen roles for text and icons we draw ourselves.
        look = _look_of(index)
        _draw_cell_background(option, painter)
        rect = option.rect
        width = rect.width() - 2 * _CELL_MARGIN
        height = rect.height()
        if width <= 0 or height <= 0:
            return
        fonts = self._fonts
        fonts.use(option.font)
        ratio = _device_ratio(painter)
        ratio_key = round(ratio * 100)
        label_width = fonts.width("100%")
        bar_width = width - label_width - _PERCENT_GAP
        left = rect.left() + _CELL_MARGIN
        if bar_width >= 16:  # too narrow for a bar: the percentage alone still says it
            colours = fmt.progress_colours(look.status, dark=palette_is_dark(option.palette))
            bar_height = max(6, min(10, height - 10))
            top = rect.top() + round(height / 2 - bar_height / 2)
            track, fill = self._bars(bar_width, bar_height, colours, ratio, ratio_key)
            painter.drawPixmap(QPointF(left, top), track)
            # The fill is the left part of a full bar in the fill colour, cut at a device
            # pixel: so it keeps the track's rounded end, and no progress value needs a pixmap.
            filled = round(bar_width * ratio * look.progress / 100.0)
            if filled > 0:
                painter.drawPixmap(QRectF(left, top, filled / ratio, fill.height() / ratio), fill,
                                   QRectF(0, 0, filled, fill.height()))
            if option.state.value & _SELECTED:
                # On the selection's background the fill colour can all but vanish (a running job's blue on
                # the light theme's blue): outline the bar in the selected text's colour.
                painter.save()
                try:
                    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
                    painter.setPen(QPen(option.palette.color(QPalette.ColorRole.HighlightedText), 1))
                    painter.setBrush(Qt.BrushStyle.NoBrush)
                    painter.drawRoundedRect(QRectF(left - 0.5, top - 0.5, bar_width + 1, bar_height + 1),
                                            bar_height / 2 + 0.5, bar_height / 2 + 0.5)
                finally:
                    painter.restore()
            text_left, text_width = left + bar_width + _PERCENT_GAP, label_width
        else:
            text_left, text_width = left, width
        label = fmt.format_progress(look.progress)
        colour = _text_colour(option, look.foreground)
        key = ("text", label, colour.rgba(), text_width, height, ratio_key, fonts.serial)
        text = self._looks.get(key)
        if text is None:
            text = self._looks.put(key, self._render_text(label, colour, text_width, height,
                                                          ratio))
        painter.drawPixmap(QPointF(text_left, rect.top()), text)

    def _bars(self, width: int, height: int, colours: fmt.ProgressColours, ratio: float,
              ratio_key: int) -> tuple[QPixmap, QPixmap]:
        """The empty track and a full bar in the fill colour, rendered once per size and look."""
        key = ("bars", width, height, colours, ratio_key)
        cached = self._looks.get(key)
        if cached is None:
            cached = self._looks.put(key, tuple(  # type: ignore[arg-type]
                self._render_bar(width, height, _colour(colour), ratio)
                for colour in (colours.track, colours.fill)))
        return cached  # type: ignore[return-value]

    @staticmethod
    def _render_bar(width: int, height: int, colour: QColor, ratio: float) -> QPixmap:
        pixmap = _new_pixmap(width, height, ratio)
        painter = QPainter(pixmap)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            outline = QPainterPath()
            outline.addRoundedRect(QRectF(0, 0, width, height), height / 2, height / 2)
            painter.fillPath(outline, colour)
        finally:
            painter.end()
        return pixmap

    def _render_text(self, label: str, colour: QColor, width: int, height: int,
                     ratio: float) -> QPixmap:
        """The percentage, right-aligned and centred, on a transparent pixmap."""
        pixmap = _new_pixmap(width, height, ratio)
        painter = QPainter(pixmap)
        try:
            assert self._fonts.font is not None
            painter.setFont(self._fonts.font)
            painter.setPen(colour)
            painter.drawText(QRectF(0, 0, width, height), _ALIGN_RIGHT_CENTRE, label)
        finally:
            painter.end()
        return pixmap

    def sizeHint(self, option: QStyleOptionViewItem, index: _ModelIndex) -> QSize:
        metrics = QFontMetrics(option.font)
        width = 2 * _CELL_MARGIN + 80 + _PERCENT_GAP + metrics.horizontalAdvance("100%")
        return QSize(width, metrics.height() + 10)


class StatusBadgeDelegate(QStyledItemDelegate):
    """A pill with the status icon and label, coloured per status (neutral when unknown); in a column too
    narrow for the whole label, the icon alone (the model's tooltip names the status)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._fonts = _FontCache()
        self._looks = _LookCache()

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _ModelIndex) -> None:
        # The view's option (state, palette, font, alternate rows) is all we need, unmodified:
        # initStyleOption would query a dozen roles for text and icons we draw ourselves.
        look = _look_of(index)
        _draw_cell_background(option, painter)
        rect = option.rect
        area_width = rect.width() - 2 * _CELL_MARGIN + 2
        area_height = rect.height() - 4
        if area_width <= 4 or area_height <= 4:
            return
        status_for_look = JobStatus.CANCELLED if look.cancelling else look.status
        colours = fmt.status_colours(status_for_look, dark=palette_is_dark(option.palette))
        fonts = self._fonts
        metrics = fonts.use(option.font)
        badge_height = min(area_height, metrics.height() + 6)
        icon_size = max(8, badge_height - 6)
        label = look.label
        badge_width = 2 * _BADGE_PADDING + icon_size + _BADGE_GAP + fonts.width(label)
        if badge_width > area_width:
            # A narrow column: the icon alone says the status (the label is in the cell's tooltip), which
            # reads better than a label cut to "Com…"; in a sliver of a column, a smaller icon.
            label = ""
            icon_size = max(4, min(icon_size, area_width - 2 * _BADGE_PADDING + 2))
            badge_width = min(area_width, 2 * _BADGE_PADDING + icon_size - 2)
        ratio = _device_ratio(painter)
        key = (label, status_for_look, colours, badge_width, badge_height, icon_size,
               round(ratio * 100), fonts.serial)
        pixmap = self._looks.get(key)
        if pixmap is None:
            pixmap = self._looks.put(key, self._render(label, status_for_look, colours,
                                                       badge_width, badge_height, icon_size,
                                                       ratio))
        top = rect.top() + 2 + round(area_height / 2 - badge_height / 2)
        painter.drawPixmap(QPointF(rect.left() + _CELL_MARGIN - 2, top), pixmap)

    def _render(self, label: str, status: JobStatus, colours: fmt.StatusColours, width: int,
                height: int, icon_size: int, ratio: float) -> QPixmap:
        """The badge (pill, icon, elided label) on a transparent pixmap of its own size."""
        pixmap = _new_pixmap(width, height, ratio)
        painter = QPainter(pixmap)
        try:
            radius = height / 2
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(_colour(colours.background))
            painter.drawRoundedRect(QRectF(0, 0, width, height), radius, radius)

            icon = icons.pixmap(icons.status_icon_name(status), icon_size, ratio,
                                colours.foreground)
            icon_left = _BADGE_PADDING - 1
            icon_top = round(height / 2 - icon_size / 2)
            painter.drawPixmap(QPointF(icon_left, icon_top), icon)

            text_left = icon_left + icon_size + _BADGE_GAP
            text_rect = QRectF(text_left, 0, width - _BADGE_PADDING + 2 - text_left, height)
            metrics = self._fonts.metrics
            assert metrics is not None and self._fonts.font is not None
            if label and text_rect.width() > self._fonts.width("…"):
                shown = metrics.elidedText(label, Qt.TextElideMode.ElideRight,
                                           int(text_rect.width()))
                painter.setFont(self._fonts.font)
                painter.setPen(_colour(colours.foreground))
                painter.drawText(text_rect, _ALIGN_LEFT_CENTRE, shown)
        finally:
            painter.end()
        return pixmap

    def sizeHint(self, option: QStyleOptionViewItem, index: _ModelIndex) -> QSize:
        metrics = QFontMetrics(option.font)
        label = _look_of(index).label
        widest = max(metrics.horizontalAdvance(label),
                     metrics.horizontalAdvance(fmt.CANCELLING_LABEL))
        icon_size = metrics.height()
        width = 2 * _CELL_MARGIN + 2 * _BADGE_PADDING + icon_size + _BADGE_GAP + widest
        return QSize(width, metrics.height() + 10)


class TextCellDelegate(QStyledItemDelegate):
    """Plain text cells (name, step, loss, elapsed) as the default delegate draws them, cheaper.

    Qt's delegate reads seven roles per cell (font, alignment, colours, check state, icon...),
    each a mapping through the proxy into Python; this one reads `JobRole.TEXT_LOOK` once and
    draws the view's background and the elided text. The focused cell (its focus frame),
    right-to-left layouts and models without TEXT_LOOK are left to Qt's delegate.

    `leading`: extra space before the text, for a left-aligned column that follows a right-aligned one (the
    Jobs table's "Runs on" after "ETA"), so the two columns' texts do not read as one.
    """

    def __init__(self, parent=None, *, leading: int = 0) -> None:
        super().__init__(parent)
        self._leading = max(0, int(leading))
        self._fonts = _FontCache()
        self._margin_of: tuple[QStyle, int] | None = None

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _ModelIndex) -> None:
        look = index.data(_TEXT_LOOK)
        if (not isinstance(look, TextLook) or option.state.value & _HAS_FOCUS
                or option.direction != _LEFT_TO_RIGHT):
            swatch = look.swatch if isinstance(look, TextLook) else None
            if swatch is None and not self._leading:
                super().paint(painter, option, index)  # focus frame, mirrored layout, other models
                return
            if swatch is None:  # the same, after the leading gap (the background still fills the cell)
                _draw_cell_background(option, painter)
                shifted = QStyleOptionViewItem(option)
                shifted.rect = (option.rect.adjusted(self._leading, 0, 0, 0) if option.direction == _LEFT_TO_RIGHT
                                else option.rect.adjusted(0, 0, -self._leading, 0))
                super().paint(painter, shifted, index)
                return
            _draw_cell_background(option, painter)
            self._paint_swatch(painter, option, swatch)
            shifted = QStyleOptionViewItem(option)
            if option.direction == _LEFT_TO_RIGHT:
                shifted.rect = option.rect.adjusted(_SWATCH_SPACE, 0, 0, 0)
            else:
                shifted.rect = option.rect.adjusted(0, 0, -_SWATCH_SPACE, 0)
            super().paint(painter, shifted, index)
            return
        _draw_cell_background(option, painter)
        if look.swatch is not None:
            self._paint_swatch(painter, option, look.swatch)
        if not look.text:
            return
        widget = option.widget
        margin = self._margin(widget.style() if widget is not None else QApplication.style(),
                              widget)
        rect = option.rect.adjusted(margin + self._leading + (_SWATCH_SPACE if look.swatch is not None else 0), 0,
                                    -margin, 0)
        fonts = self._fonts
        metrics = fonts.use(option.font)
        text = look.text
        if fonts.width(text) > rect.width():
            text = metrics.elidedText(text, option.textElideMode, rect.width())
        painter.save()
        try:
            painter.setFont(option.font)
            painter.setPen(_text_colour(option, look.foreground))
            painter.drawText(rect, look.alignment, text)
        finally:
            painter.restore()

    @staticmethod
    def _paint_swatch(painter: QPainter, option: QStyleOptionViewItem, colour: QColor) -> None:
        """A rounded square of the compare colour at the cell's leading edge, outlined in the text
        colour at low alpha so that a pale swatch still shows on a pale row."""
        rect = option.rect
        left = rect.left() + 5 if option.direction == _LEFT_TO_RIGHT else rect.right() - 5 - SWATCH_SIZE
        top = rect.top() + (rect.height() - SWATCH_SIZE) / 2
        selected = option.state.value & _SELECTED
        outline = QColor(option.palette.color(_HIGHLIGHTED_TEXT_ROLE if selected else _TEXT_ROLE))
        outline.setAlpha(230 if selected else 90)  # on the selection colour the swatch needs a clear edge
        painter.save()
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(outline)
            painter.setBrush(colour)
            painter.drawRoundedRect(QRectF(left + 0.5, top + 0.5, SWATCH_SIZE - 1, SWATCH_SIZE - 1), 2, 2)
        finally:
            painter.restore()

    def _margin(self, style: QStyle, widget) -> int:
        """The text margin of the style's item views (QCommonStyle: focus frame margin + 1)."""
        cached = self._margin_of
        if cached is None or cached[0] is not style:
            margin = style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, widget) + 1
            cached = self._margin_of = (style, margin)
        return cached[1]
