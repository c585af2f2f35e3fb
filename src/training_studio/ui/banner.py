"""A non-modal message bar shown at the top of a window or panel (no dialogs for routine trouble).

`Banner` shows one message at a time with a severity (info, warning, error), optional action buttons
(e.g. "Retry now", "Reconnect") and a close button. Severity is said in words and an icon-like glyph, not
by colour alone, and the bar is announced to screen readers through its accessible name/description. It
holds no logic: whoever owns it decides what the buttons do. Its tint follows the app's theme (light or
dark) when that changes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton, QWidget

__all__ = ["Banner", "BannerLevel"]


class BannerLevel(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


# (prefix word, light background, dark background); text is black on light and white on dark: all >= 7:1.
_LEVEL_STYLE = {
    BannerLevel.INFO: ("Info", "#dbeafe", "#1e3a5f"),
    BannerLevel.WARNING: ("Warning", "#fef3c7", "#4a3a0a"),
    BannerLevel.ERROR: ("Problem", "#fee2e2", "#5c1a1a"),
}


class Banner(QFrame):
    closed = Signal()

    def __init__(self, parent: QWidget | None = None, *, closable: bool = True) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.level = BannerLevel.INFO
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self._prefix = QLabel(self)
        self._prefix.setTextFormat(Qt.TextFormat.PlainText)
        font = self._prefix.font()
        font.setBold(True)
        self._prefix.setFont(font)
        self._text = QLabel(self)
        self._text.setTextFormat(Qt.TextFormat.PlainText)
        self._text.setWordWrap(True)
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout.addWidget(self._prefix, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self._text, 1)
        self._buttons_layout = QHBoxLayout()
        self._buttons_layout.setSpacing(4)
        layout.addLayout(self._buttons_layout)
        self._buttons: list[QPushButton] = []
        self._close = QToolButton(self)
        self._close.setText("✕")
        self._close.setAutoRaise(True)
        self._close.setToolTip("Dismiss this message")
        self._close.setAccessibleName("Dismiss message")
        self._close.clicked.connect(self.dismiss)
        self._close.setVisible(closable)
        layout.addWidget(self._close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    @property
    def text(self) -> str:
        return self._text.text()

    def button(self, text: str) -> QPushButton | None:
        return next((b for b in self._buttons if b.text().replace("&", "") == text.replace("&", "")), None)

    def show_message(self, text: str, level: BannerLevel = BannerLevel.INFO,
                     actions: list[tuple[str, Callable[[], None]]] | None = None) -> None:
        self.level = level
        prefix = _LEVEL_STYLE[level][0]
        self._prefix.setText(f"{prefix}:")
        self._text.setText(text)
        self._apply_colours()
        self._set_actions(actions or [])
        self.setAccessibleName(f"{prefix} message")
        self.setAccessibleDescription(text)
        self.show()

    def _apply_colours(self) -> None:
        """The level's tint for the surrounding palette (light or dark): from the parent, since this
        widget's own palette holds the tint. Re-run when the app's theme changes."""
        _, light, dark = _LEVEL_STYLE[self.level]
        parent = self.parentWidget()
        around = parent.palette() if parent is not None else QApplication.palette()
        is_dark = around.color(QPalette.ColorRole.Window).lightness() < 128
        palette = QPalette(around)
        palette.setColor(QPalette.ColorRole.Window, QColor(dark if is_dark else light))
        palette.setColor(QPalette.ColorRole.WindowText, QColor("#ffffff" if is_dark else "#000000"))
        palette.setColor(QPalette.ColorRole.ButtonText, around.color(QPalette.ColorRole.ButtonText))
        self._restyling = True
        try:
            self.setPalette(palette)
        finally:
            self._restyling = False

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt name)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and not getattr(self, "_restyling", False):
            self._apply_colours()  # the theme changed (light ↔ dark): the tint follows

    def update_text(self, text: str) -> None:
        """Change the text only (e.g. the "N s ago" counter) without rebuilding the buttons."""
        if text != self._text.text():
            self._text.setText(text)
            self.setAccessibleDescription(text)

    def dismiss(self) -> None:
        self.hide()
        self.closed.emit()

    def _set_actions(self, actions: list[tuple[str, Callable[[], None]]]) -> None:
        wanted = [label for label, _ in actions]
        if wanted == [b.text() for b in self._buttons]:
            for button, (_, callback) in zip(self._buttons, actions):
                button.clicked.disconnect()
                button.clicked.connect(callback)
            return
        for button in self._buttons:
            self._buttons_layout.removeWidget(button)
            button.deleteLater()
        self._buttons = []
        for label, callback in actions:
            button = QPushButton(label, self)
            button.setAccessibleName(label.replace("&", ""))
            button.clicked.connect(callback)
            self._buttons_layout.addWidget(button)
            self._buttons.append(button)
