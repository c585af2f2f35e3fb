"""Hand-painted cells of the jobs table: the progress bar and the status badge.

This module owns how the Progress and Status cells look. Both delegates read only the named
roles of `JobRole` (never column numbers), paint the view's own cell background first (so
selection and hover look native in every style), then draw their content by hand: the macOS
style ignores the rect of CE_ProgressBar in item views, and a hand-drawn bar looks the same
everywhere, selected rows included. Colours come from `format` (WCAG AA in light and dark
palettes); status is never colour alone (icon + text). Icons come from the `icons` cache,
rendered at the painter's device pixel ratio, so nothing is built inside paint() after the
first frame. Every paint() saves and restores the painter in try/finally.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QPainter, QPainterPath, QPalette
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from training_studio.contract.models import JobStatus
from training_studio.ui import icons
from training_studio.ui.jobs import format as fmt
from training_studio.ui.jobs.model import JobRole

__all__ = ["ProgressBarDelegate", "StatusBadgeDelegate", "palette_is_dark"]

_ModelIndex = QModelIndex | QPersistentModelIndex

_CELL_MARGIN = 6
_BADGE_PADDING = 7
_BADGE_GAP = 5
_PERCENT_GAP = 8


_darkness: dict[int, bool] = {}


def palette_is_dark(palette: QPalette) -> bool:
    """Whether the view's base colour is dark, i.e. the dark badge/bar palette applies."""
    base = palette.color(QPalette.ColorRole.Base)
    key = base.rgb()
    dark = _darkness.get(key)
    if dark is None:
        dark = _darkness[key] = fmt.is_dark_background(base.name())
    return dark


def _status_of(index: _ModelIndex) -> JobStatus:
    return fmt.known_status(index.data(JobRole.STATUS))


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


def _text_colour(option: QStyleOptionViewItem, index: _ModelIndex) -> QColor:
    """What the default delegate would use: highlighted text on selection, else the model's
    foreground (dimmed finished rows), else the palette's text."""
    state = option.state.value  # int arithmetic: Python-level Flag operators are slow in paint()
    group = QPalette.ColorGroup.Normal if state & _ENABLED else QPalette.ColorGroup.Disabled
    if state & _SELECTED:
        return option.palette.color(group, QPalette.ColorRole.HighlightedText)
    foreground = index.data(Qt.ItemDataRole.ForegroundRole)
    if isinstance(foreground, QBrush):
        return foreground.color()
    if isinstance(foreground, QColor):
        return foreground
    return option.palette.color(group, QPalette.ColorRole.Text)


def _device_ratio(painter: QPainter) -> float:
    device = painter.device()
    return device.devicePixelRatioF() if device is not None else 1.0


class ProgressBarDelegate(QStyledItemDelegate):
    """A rounded bar filled to `JobRole.PROGRESS` in the status colour, with the percentage."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _ModelIndex) -> None:
        # A copy of the view's option (state, palette, font, alternate rows) is all we need:
        # initStyleOption would query a dozen roles for text and icons we draw ourselves.
        style_option = QStyleOptionViewItem(option)
        painter.save()
        try:
            _draw_cell_background(style_option, painter)
            progress = fmt.clamp_progress(index.data(JobRole.PROGRESS))
            colours = fmt.progress_colours(_status_of(index),
                                           dark=palette_is_dark(style_option.palette))
            metrics = QFontMetrics(style_option.font)
            label = fmt.format_progress(progress)
            label_width = metrics.horizontalAdvance("100%")
            area = QRectF(style_option.rect).adjusted(_CELL_MARGIN, 0, -_CELL_MARGIN, 0)
            bar_width = area.width() - label_width - _PERCENT_GAP
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            if bar_width >= 16:  # too narrow for a bar: the percentage alone still says it
                bar_height = max(6.0, min(10.0, area.height() - 10.0))
                top = round(area.center().y() - bar_height / 2)
                track = QRectF(area.left(), top, bar_width, bar_height)
                radius = bar_height / 2
                outline = QPainterPath()
                outline.addRoundedRect(track, radius, radius)
                painter.setPen(Qt.PenStyle.NoPen)
                painter.fillPath(outline, _colour(colours.track))
                if progress > 0:
                    # Clip to the rounded track so a small fill keeps the track's rounded end.
                    painter.setClipPath(outline, Qt.ClipOperation.IntersectClip)
                    filled = QRectF(track.left(), track.top(), track.width() * progress / 100.0,
                                    track.height())
                    painter.fillRect(filled, _colour(colours.fill))
                    painter.setClipping(False)
                text_rect = QRectF(track.right() + _PERCENT_GAP, area.top(), label_width,
                                   area.height())
            else:
                text_rect = area
            painter.setFont(style_option.font)
            painter.setPen(_text_colour(style_option, index))
            painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignRight
                                            | Qt.AlignmentFlag.AlignVCenter), label)
        finally:
            painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: _ModelIndex) -> QSize:
        metrics = QFontMetrics(option.font)
        width = 2 * _CELL_MARGIN + 80 + _PERCENT_GAP + metrics.horizontalAdvance("100%")
        return QSize(width, metrics.height() + 10)


class StatusBadgeDelegate(QStyledItemDelegate):
    """A pill with the status icon and label, coloured per status (neutral when unknown)."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _ModelIndex) -> None:
        # A copy of the view's option (state, palette, font, alternate rows) is all we need:
        # initStyleOption would query a dozen roles for text and icons we draw ourselves.
        style_option = QStyleOptionViewItem(option)
        painter.save()
        try:
            _draw_cell_background(style_option, painter)
            status = _status_of(index)
            label = index.data(JobRole.DISPLAY_STATUS) or fmt.status_label(status)
            if index.data(JobRole.IS_CANCELLING):
                status_for_look = JobStatus.CANCELLED
            else:
                status_for_look = status
            colours = fmt.status_colours(status_for_look,
                                         dark=palette_is_dark(style_option.palette))
            metrics = QFontMetrics(style_option.font)
            area = QRectF(style_option.rect).adjusted(_CELL_MARGIN - 2, 2, -_CELL_MARGIN, -2)
            if area.width() <= 4 or area.height() <= 4:
                return
            badge_height = min(area.height(), float(metrics.height() + 6))
            icon_size = max(8, int(badge_height - 6))
            text_width = metrics.horizontalAdvance(label)
            badge_width = min(area.width(), 2 * _BADGE_PADDING + icon_size + _BADGE_GAP
                              + text_width)
            top = round(area.center().y() - badge_height / 2)
            badge = QRectF(area.left(), top, badge_width, badge_height)
            radius = badge_height / 2
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(_colour(colours.background))
            painter.drawRoundedRect(badge, radius, radius)

            pixmap = icons.pixmap(icons.status_icon_name(status_for_look), icon_size,
                                  _device_ratio(painter), colours.foreground)
            icon_left = round(badge.left() + _BADGE_PADDING - 1)
            icon_top = round(badge.center().y() - icon_size / 2)
            painter.drawPixmap(QPointF(icon_left, icon_top), pixmap)

            text_left = icon_left + icon_size + _BADGE_GAP
            text_rect = QRectF(text_left, badge.top(), badge.right() - _BADGE_PADDING + 2
                               - text_left, badge_height)
            if text_rect.width() > metrics.horizontalAdvance("…"):
                shown = metrics.elidedText(label, Qt.TextElideMode.ElideRight,
                                           int(text_rect.width()))
                painter.setFont(style_option.font)
                painter.setPen(_colour(colours.foreground))
                painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignLeft
                                                | Qt.AlignmentFlag.AlignVCenter), shown)
        finally:
            painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: _ModelIndex) -> QSize:
        metrics = QFontMetrics(option.font)
        label = index.data(JobRole.DISPLAY_STATUS) or fmt.status_label(_status_of(index))
        widest = max(metrics.horizontalAdvance(label),
                     metrics.horizontalAdvance(fmt.CANCELLING_LABEL))
        icon_size = metrics.height()
        width = 2 * _CELL_MARGIN + 2 * _BADGE_PADDING + icon_size + _BADGE_GAP + widest
        return QSize(width, metrics.height() + 10)
