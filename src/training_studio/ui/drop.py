"""Drag-and-drop of files and folders onto any widget, with an overlay that shows where to drop.

This module owns turning a drop of URLs into local paths for whoever installed it. `install_drop_target(
widget, on_paths)` makes `widget` (a panel, or the whole main window) accept drags that carry URLs; while
such a drag hovers, a translucent `DropOverlay` covers the widget and says what dropping will do; on
drop it calls `on_paths(paths, refused)` with the local file paths and, separately, the URLs that are
not local files (a web link, say), so the caller can list those with a reason instead of losing them.
It only reads the event's mime data: nothing here touches the files themselves.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QMimeData, QObject, QRectF, Qt
from PySide6.QtGui import QColor, QDragEnterEvent, QDragMoveEvent, QDropEvent, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

__all__ = ["DropTarget", "DropOverlay", "install_drop_target", "paths_from_mime"]

OnPaths = Callable[[list[str], list[str]], None]
DEFAULT_TEXT = "Drop files or folders here to add them to a new dataset"


def paths_from_mime(mime: QMimeData) -> tuple[list[str], list[str]]:
    """(local paths, refused URL texts) of a drag's URLs, in the order they came."""
    paths: list[str] = []
    refused: list[str] = []
    for url in mime.urls():
        if url.isLocalFile() and url.toLocalFile():
            paths.append(url.toLocalFile())
        else:
            refused.append(url.toDisplayString() or "(an empty link)")
    return paths, refused


class DropOverlay(QWidget):
    """A translucent cover with a dashed frame and a sentence; invisible to the mouse."""

    def __init__(self, parent: QWidget, text: str) -> None:
        super().__init__(parent)
        self.text = text
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAccessibleName("Drop area")
        self.hide()

    def cover(self) -> None:
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())
        self.raise_()
        self.show()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.save()
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            highlight = self.palette().highlight().color()
            veil = QColor(self.palette().window().color())
            veil.setAlpha(215)  # mostly hides what is under it, so the sentence reads clearly
            painter.fillRect(self.rect(), veil)
            fill = QColor(highlight)
            fill.setAlpha(40)
            frame = QRectF(self.rect()).adjusted(8, 8, -8, -8)
            painter.setBrush(fill)
            painter.setPen(QPen(highlight, 3, Qt.PenStyle.DashLine))
            painter.drawRoundedRect(frame, 12, 12)
            font = QFont(self.font())
            font.setPointSizeF(font.pointSizeF() * 1.4)
            font.setBold(True)
            painter.setFont(font)
            painter.setPen(self.palette().text().color())
            painter.drawText(frame, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.text)
        finally:
            painter.restore()
            painter.end()


class DropTarget(QObject):
    """Event filter that accepts URL drags on its widget; see the module docstring."""

    def __init__(self, widget: QWidget, on_paths: OnPaths, text: str = DEFAULT_TEXT) -> None:
        super().__init__(widget)
        self.widget = widget
        self.on_paths = on_paths
        self.overlay = DropOverlay(widget, text)
        widget.setAcceptDrops(True)
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is not self.widget:
            return False
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            assert isinstance(event, (QDragEnterEvent, QDragMoveEvent))
            if event.mimeData() is not None and event.mimeData().hasUrls():
                event.setDropAction(Qt.DropAction.CopyAction)
                event.accept()
                if kind == QEvent.Type.DragEnter:
                    self.overlay.cover()
            else:
                event.ignore()
            return True
        if kind == QEvent.Type.DragLeave:
            self.overlay.hide()
            return True
        if kind == QEvent.Type.Drop:
            assert isinstance(event, QDropEvent)
            self.overlay.hide()
            mime = event.mimeData()
            if mime is None or not mime.hasUrls():
                event.ignore()
                return True
            paths, refused = paths_from_mime(mime)
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            if paths or refused:
                self.on_paths(paths, refused)
            return True
        return False


def install_drop_target(widget: QWidget, on_paths: OnPaths, text: str = DEFAULT_TEXT) -> DropTarget:
    """Make `widget` take dropped files and folders; `on_paths(paths, refused_urls)` gets each drop."""
    return DropTarget(widget, on_paths, text)
