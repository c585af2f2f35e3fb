"""Asking before something destructive: one non-blocking confirmation box with verbs on its buttons.

`ask_to_confirm()` opens a `QMessageBox` with `open()` (never `exec()` or the static `question()`, which
run a nested event loop), with two buttons that say what they do ("Delete dataset" / "Keep it"), the
safe one as the default and as Escape, so Enter or Escape never destroys anything. The caller's
`on_confirm` runs from the box's own signal (a plain slot) only when the destructive button was pressed.
The box is returned so callers (and tests) can hold it, look at it and click its buttons.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QMessageBox, QWidget

__all__ = ["ask_to_confirm", "ConfirmBox"]


class ConfirmBox(QMessageBox):
    """A confirmation: `confirm_button` does the destructive thing, `keep_button` (the default) does not."""

    def __init__(self, parent: QWidget | None, title: str, text: str, informative: str, *, confirm: str,
                 keep: str, on_confirm: Callable[[], None], icon: QMessageBox.Icon = QMessageBox.Icon.Question
                 ) -> None:
        super().__init__(icon, title, text, QMessageBox.StandardButton.NoButton, parent)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if informative:
            self.setInformativeText(informative)
        self.confirm_button = self.addButton(confirm, QMessageBox.ButtonRole.DestructiveRole)
        self.keep_button = self.addButton(keep, QMessageBox.ButtonRole.RejectRole)
        self.setDefaultButton(self.keep_button)
        self.setEscapeButton(self.keep_button)
        self.confirmed = False
        self._on_confirm = on_confirm
        self.buttonClicked.connect(self._on_clicked)

    def _on_clicked(self, button: QAbstractButton) -> None:
        if button is self.confirm_button and not self.confirmed:
            self.confirmed = True
            self._on_confirm()


def ask_to_confirm(parent: QWidget | None, title: str, text: str, informative: str = "", *, confirm: str,
                   keep: str, on_confirm: Callable[[], None]) -> ConfirmBox:
    """Open the confirmation (window-modal, non-blocking) and return it; see the module docstring."""
    box = ConfirmBox(parent, title, text, informative, confirm=confirm, keep=keep, on_confirm=on_confirm)
    box.open()
    box.keep_button.setFocus()
    return box
