"""The two labels every details view that reads from the server shows around its content: an error line above
it (hidden while there is no error) and a centred state page in its stack ("No samples yet", "The server no
longer knows this job"), built and switched to the same way by the log, samples and checkpoints views."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStackedWidget, QWidget

__all__ = ["error_line", "show_error", "show_state", "state_page"]


def error_line(parent: QWidget, object_name: str) -> QLabel:
    """A word-wrapped plain-text label, hidden until an error is set (server text is never rich text)."""
    label = QLabel(parent)
    label.setObjectName(object_name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.hide()
    return label


def state_page(parent: QWidget, object_name: str) -> QLabel:
    """A centred, word-wrapped label for a stacked widget's "nothing to show, and why" page."""
    label = QLabel(parent)
    label.setObjectName(object_name)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    return label


def show_error(label: QLabel, text: str) -> None:
    """Say `text` on an `error_line`; "" hides it."""
    label.setText(text)
    label.setVisible(bool(text))


def show_state(stack: QStackedWidget, content: QWidget, page: QLabel, showing: bool, text: str) -> None:
    """Show `content` in `stack` while there is something to show, else `text` on the state page."""
    if showing:
        stack.setCurrentWidget(content)
    else:
        page.setText(text)
        stack.setCurrentWidget(page)
