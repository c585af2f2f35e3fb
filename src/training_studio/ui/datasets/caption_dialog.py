"""The small non-modal dialog of one bulk caption operation (issue 17, item 2).

`BulkCaptionDialog` asks for what one operation needs (prefix/suffix/caption text, or find + replace with
"Regular expression" and "Ignore case"), says which files it applies to, shows the server's dry run as it
is typed ("2 of 3 captions change", with one example) and applies. It is opened with open() (window-modal
over the viewer, so the selection it names cannot drift under it; the event loop keeps running); all
requests go through `CaptionOps`. It closes when the server applied the edit; a refusal (a regular
expression that does not compile, a caption too long, a dataset in use) is shown in the dialog and nothing
changes.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract import CaptionBatchResult
from training_studio.ui.datasets.caption_ops import CaptionEdit, CaptionOps

__all__ = ["BulkCaptionDialog", "MODES"]

PREVIEW_DELAY_MS = 250  # typing pauses this long before a dry run is asked for

# mode -> (window title, label of the text field or None, Apply button text)
MODES = {
    "prefix": ("Add prefix", "&Prefix:", "&Add prefix"),
    "suffix": ("Add suffix", "&Suffix:", "&Add suffix"),
    "replace": ("Find and replace", None, "&Replace"),
    "set": ("Set caption", "&Caption:", "&Set caption"),
    "clear": ("Clear captions", None, "&Clear captions"),
}


class BulkCaptionDialog(QDialog):
    """See the module docstring."""

    def __init__(self, ops: CaptionOps, mode: str, files: list[str] | str, count: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ops = ops
        self.mode = mode
        self.files = files
        self.count = count
        self._preview_token = 0
        self._apply_token = 0
        title, text_label, apply_text = MODES[mode]
        self.setWindowTitle(title)
        self.setObjectName("bulkCaptionDialog")
        self.setMinimumWidth(420)

        layout = QVBoxLayout(self)
        scope = "all files of the dataset" if files == "all" else \
            f"{count:,} selected file" + ("" if count == 1 else "s")
        self.scope_label = QLabel(f"Applies to {scope}.", self)
        layout.addWidget(self.scope_label)
        form = QFormLayout()
        self.text_edit = QLineEdit(self)
        self.text_edit.setObjectName("bulkText")
        self.find_edit = QLineEdit(self)
        self.find_edit.setObjectName("bulkFind")
        self.replace_edit = QLineEdit(self)
        self.replace_edit.setObjectName("bulkReplace")
        self.regex_check = QCheckBox("Regular e&xpression (\\1 or \\g<name> in Replace inserts a group)", self)
        self.ignore_case_check = QCheckBox("&Ignore case", self)
        if text_label is not None:
            form.addRow(text_label, self.text_edit)
            if mode in ("prefix", "suffix"):
                self.text_edit.setPlaceholderText("e.g. a trigger word such as “sks ”; spaces count")
        if mode == "replace":
            form.addRow("&Find:", self.find_edit)
            form.addRow("Replace &with:", self.replace_edit)
            form.addRow("", self.regex_check)
            form.addRow("", self.ignore_case_check)
        for widget in (self.text_edit, self.find_edit, self.replace_edit, self.regex_check, self.ignore_case_check):
            if widget.parent() is self and form.indexOf(widget) < 0:
                widget.hide()
        layout.addLayout(form)
        self.preview_label = QLabel("", self)
        self.preview_label.setObjectName("bulkPreview")
        self.preview_label.setWordWrap(True)
        self.preview_label.setTextFormat(Qt.TextFormat.PlainText)
        self.preview_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.preview_label)
        self.error_label = QLabel("", self)
        self.error_label.setObjectName("bulkError")
        self.error_label.setWordWrap(True)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setStyleSheet("color: white; background: #b3261e; padding: 4px;")
        self.error_label.hide()
        layout.addWidget(self.error_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.apply_button = self.buttons.addButton(apply_text, QDialogButtonBox.ButtonRole.AcceptRole)
        self.apply_button.setDefault(True)
        self.buttons.rejected.connect(self.reject)
        self.apply_button.clicked.connect(self.apply)
        layout.addWidget(self.buttons)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self.request_preview)
        for edit in (self.text_edit, self.find_edit, self.replace_edit):
            edit.textChanged.connect(self._schedule_preview)
        for check in (self.regex_check, self.ignore_case_check):
            check.toggled.connect(self._schedule_preview)
        ops.preview_ready.connect(self._on_preview_ready)
        ops.preview_failed.connect(self._on_preview_failed)
        ops.applied.connect(self._on_applied)
        ops.failed.connect(self._on_failed)
        ops.busy_changed.connect(self._update_buttons)
        self._update_buttons()
        self.request_preview()

    # what the user asked for -----------------------------------------------------------------------------
    def edit(self) -> CaptionEdit:
        if self.mode == "replace":
            return CaptionEdit("regex_replace" if self.regex_check.isChecked() else "replace", self.files,
                               find=self.find_edit.text(), replace=self.replace_edit.text(),
                               ignore_case=self.ignore_case_check.isChecked())
        if self.mode == "clear":
            return CaptionEdit("clear", self.files)
        return CaptionEdit(self.mode, self.files, text=self.text_edit.text())

    def request_preview(self) -> None:
        self._timer.stop()
        self.preview_label.setText("Checking which captions change…")
        self._preview_token = self.ops.preview(self.edit())

    def apply(self) -> None:
        self.error_label.hide()
        self._apply_token = self.ops.apply(self.edit())
        self._update_buttons()

    # reactions --------------------------------------------------------------------------------------------
    def _schedule_preview(self, *args: object) -> None:
        self.error_label.hide()
        self._preview_token = 0  # an answer to the text before this edit is stale
        self.preview_label.setText("Checking which captions change…")
        self._timer.start()

    def _on_preview_ready(self, token: int, result: CaptionBatchResult) -> None:
        if token != self._preview_token:
            return
        noun = "caption" if result.selected == 1 else "captions"
        verb = "changes" if result.changed == 1 else "change"
        text = f"Preview: {result.changed:,} of {result.selected:,} {noun} {verb}."
        if result.changes:
            example = result.changes[0]
            text += f"\nFor example: “{_short(example.before)}” → “{_short(example.after)}”"
        self.preview_label.setText(text)
        self._update_buttons()

    def _on_preview_failed(self, token: int, message: str) -> None:
        if token == self._preview_token:
            self.preview_label.setText(f"No preview: {message}")

    def _on_applied(self, token: int, result: CaptionBatchResult) -> None:
        if token == self._apply_token:
            self._apply_token = 0
            self.accept()

    def _on_failed(self, token: int, message: str) -> None:
        if token == self._apply_token:
            self._apply_token = 0
            self.error_label.setText(message)
            self.error_label.show()
            self._update_buttons()

    def _update_buttons(self, *args: object) -> None:
        self.apply_button.setEnabled(not self.ops.busy and not self._apply_token)


def _short(text: str, limit: int = 60) -> str:
    line = text.replace("\n", " ⏎ ")
    return line if len(line) <= limit else line[: limit - 1] + "…"
