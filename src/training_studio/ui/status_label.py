"""`StatusTextLabel`: the status bar's connection text, which gives way to the notices beside it.

The connection text ("Local server: http://127.0.0.1:43925 (version 0.1.0) — live updates") is the
window's longest permanent text, and the notices (a job finished, a job created) are the ones the user
needs to read while they show. So in a narrow status bar this label shrinks first, eliding its middle:
the URL and version go, the kind of server at its start and the state at its end ("live updates",
"Reconnecting…") stay. `text()` stays whole (and so does what assistive technology reads); the URL and
version are also in the tooltip and the Server menu.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

__all__ = ["StatusTextLabel", "MIN_STATUS_TEXT_WIDTH"]

MIN_STATUS_TEXT_WIDTH = 160  # never narrower than this: the start and the state stay readable


class StatusTextLabel(QLabel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self._gives_way_to: QWidget | None = None

    def give_way_to(self, other: QWidget) -> None:
        """Shrink first when `other`, in the same row, needs room: a status bar's layout would shrink both
        by the same amount. Whenever `other` is resized or wants another size, this label's maximum width
        becomes what leaves `other` its size hint (both share the same space; never below the minimum)."""
        self._gives_way_to = other
        other.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if watched is self._gives_way_to and event.type() in (QEvent.Type.Resize, QEvent.Type.LayoutRequest):
            self._give_way()
        return False

    def _give_way(self) -> None:
        other = self._gives_way_to
        if other is None or not self.isVisible():
            return
        shared = self.width() + other.width()  # what the row gives the two of them now
        self.setMaximumWidth(max(MIN_STATUS_TEXT_WIDTH, shared - other.sizeHint().width()))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        whole = super().minimumSizeHint()
        return QSize(min(whole.width(), MIN_STATUS_TEXT_WIDTH), whole.height())

    def shown_text(self) -> str:
        """What the label shows at its current width: the whole text, or its middle elided."""
        width = self.contentsRect().width() - 2 * self.margin()
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideMiddle, max(width, 0))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        shown = self.shown_text()
        if shown == self.text():
            super().paintEvent(event)
            return
        painter = QPainter(self)
        rect = self.contentsRect().adjusted(self.margin(), self.margin(), -self.margin(), -self.margin())
        self.style().drawItemText(painter, rect, int(self.alignment()), self.palette(), self.isEnabled(), shown,
                                  self.foregroundRole())
