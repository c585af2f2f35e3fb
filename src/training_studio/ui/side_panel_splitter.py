"""A main area beside a side panel that folds away: `SidePanelSplitter`.

It owns when the side panel is shown. The user hides or shows it with its checkable `toggle_action` or
by dragging the handle to the edge and back. It also folds by itself when the splitter is narrower than
the main area needs (`main_width`) plus the side panel's minimum, so a narrow window keeps a usable main
area instead of squeezing both to slivers, and comes back once there is room again. It does not come back
if the user hid it, and it does not fold if the user showed it while the splitter was narrow. It comes back
at the width the user last gave it (a drag, a restored state), not the sliver a shrinking window left. The
settings (the app saves every splitter) get it as shown when it only folded for the width, so a folded side
panel in a restored state means the user hid it.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSignalBlocker, Qt
from PySide6.QtGui import QAction, QResizeEvent, QShowEvent
from PySide6.QtWidgets import QSplitter, QWidget

__all__ = ["SidePanelSplitter"]


class SidePanelSplitter(QSplitter):
    def __init__(self, main: QWidget, side: QWidget, *, main_width: int, toggle_text: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.addWidget(main)
        self.addWidget(side)
        self.setCollapsible(0, False)
        self.setCollapsible(1, True)
        self.setStretchFactor(0, 3)
        self.setStretchFactor(1, 1)
        self.main_width = main_width
        self.hidden_by_user = False
        self.folded_for_width = False
        self._shown_while_narrow = False  # the user asked for it in a narrow splitter: it stays
        self._side_width = max(side.sizeHint().width(), self._side_minimum())
        self.toggle_action = QAction(toggle_text, self)
        self.toggle_action.setCheckable(True)
        self.toggle_action.setChecked(True)
        self.toggle_action.toggled.connect(self._on_toggled)
        self.splitterMoved.connect(self._on_moved)

    # what it shows ---------------------------------------------------------------------------------------------
    @property
    def side(self) -> QWidget:
        return self.widget(1)

    def side_shown(self) -> bool:
        return self.sizes()[1] > 0

    def fold_below(self) -> int:
        """The splitter width under which the side panel folds by itself."""
        return self.main_width + self._side_minimum() + self.handleWidth()

    def _side_minimum(self) -> int:
        side = self.side
        return max(side.minimumWidth(), side.minimumSizeHint().width())

    def saveState(self) -> QByteArray:  # noqa: N802 (Qt's name)
        """The state for the settings. A side panel folded only for the width is saved as shown, at its
        width, so a folded side panel in a saved state always means the user hid it."""
        if not self.folded_for_width:
            return super().saveState()
        sizes = self.sizes()
        total = sum(sizes)
        side = max(self._side_width, self._side_minimum())
        self.setSizes([max(total - side, 0), side])  # no event in between: nothing on screen changes
        state = super().saveState()
        self.setSizes(sizes)
        return state

    def restoreState(self, state: QByteArray | bytes) -> bool:  # noqa: N802 (Qt's name)
        restored = super().restoreState(state)
        if restored:
            self.hidden_by_user = not self.side_shown()
            self.folded_for_width = self._shown_while_narrow = False
            self._remember_side_width()
            self._sync_action()
            if self.isVisible() and self.side_shown() and self.width() >= self.fold_below():
                self._show_side(True)  # restored into another width: the main area keeps what it needs
            self._fit_width()  # a shown panel restored into a narrow splitter folds at once
        return restored

    # reactions ----------------------------------------------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit_width()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self._fit_width()

    def _fit_width(self) -> None:
        if not self.isVisible() or self.width() <= 0:
            return
        narrow = self.width() < self.fold_below()
        if not narrow:
            self._shown_while_narrow = False
        if narrow and self.side_shown() and not self._shown_while_narrow:
            self.folded_for_width = True
            self._show_side(False)
        elif not narrow and self.folded_for_width:
            self.folded_for_width = False
            if not self.hidden_by_user:
                self._show_side(True)

    def _on_toggled(self, shown: bool) -> None:
        """The user's choice, through the action (a toolbar button, a menu)."""
        self.hidden_by_user = not shown
        self.folded_for_width = False
        self._shown_while_narrow = shown and self.width() < self.fold_below()
        if not shown:
            self._remember_side_width()
        self._show_side(shown)

    def _on_moved(self, pos: int, index: int) -> None:
        """The user dragged the handle: to the edge hides the panel, back out shows it again."""
        shown = self.side_shown()
        if shown:
            self._remember_side_width()
            if self.hidden_by_user or self.folded_for_width:
                self._shown_while_narrow = self.width() < self.fold_below()
        self.hidden_by_user = not shown
        self.folded_for_width = False
        self._sync_action()

    # helpers ------------------------------------------------------------------------------------------------
    def _remember_side_width(self) -> None:
        width = self.sizes()[1]
        if width > 0:
            self._side_width = width

    def _show_side(self, shown: bool) -> None:
        total = sum(self.sizes()) or max(self.width() - self.handleWidth(), 0)
        if shown:
            # Its width, but never taking the main area below the width it needs (when there is room).
            side = max(self._side_minimum(), min(self._side_width, total - self.main_width))
            side = min(side, max(total - 1, 0))
            self.setSizes([total - side, side])
        else:
            self.setSizes([total, 0])
        self._sync_action()

    def _sync_action(self) -> None:
        with QSignalBlocker(self.toggle_action):
            self.toggle_action.setChecked(self.side_shown())
