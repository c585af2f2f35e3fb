"""The two labels every details view that reads from the server shows around its content: an error line above
it (hidden while there is no error) and a centred state page in its stack ("No samples yet", "The server no
longer knows this job"), built the same way for the log and the samples views."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

__all__ = ["error_line", "state_page"]


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
