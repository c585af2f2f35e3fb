"""The Settings dialog: refresh interval, notifications, saved servers, and where logs and tokens go.

`SettingsDialog` edits `AppSettings` and, for "Forget" on a saved server, removes that server's token
from `TokenStore` too. It writes only when OK is pressed, then emits `applied` so the app can apply the
new refresh interval and notification choice at once. Window layout (geometry, splitters, columns) is
saved by the app itself; "Reset window layout" clears it here for the next start.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from training_studio.ui.secrets import TokenStore
from training_studio.ui.settings import MAX_REFRESH_INTERVAL_S, MIN_REFRESH_INTERVAL_S, AppSettings

__all__ = ["SettingsDialog"]

NO_SERVERS_TEXT = ("No saved servers yet. A team's server you connect to with Server › Connect to server… is "
                   "kept here with its token; the local server needs none.")


class SettingsDialog(QDialog):
    applied = Signal()

    def __init__(self, settings: AppSettings, tokens: TokenStore, *, log_file: Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.settings = settings
        self.tokens = tokens
        self._forgotten: list[str] = []
        self.reset_layout_requested = False

        layout = QVBoxLayout(self)
        general = QGroupBox("General", self)
        form = QFormLayout(general)
        self.refresh_spin = QDoubleSpinBox(general)
        self.refresh_spin.setRange(MIN_REFRESH_INTERVAL_S, MAX_REFRESH_INTERVAL_S)
        self.refresh_spin.setDecimals(1)
        self.refresh_spin.setSingleStep(1.0)
        self.refresh_spin.setSuffix(" s")
        self.refresh_spin.setValue(settings.refresh_interval)
        self.refresh_spin.setAccessibleName("Refresh interval in seconds")
        self.refresh_spin.setToolTip("How often the job list is fetched from the server")
        form.addRow("&Refresh jobs every:", self.refresh_spin)
        self.notify_check = QCheckBox("Notify me when a job &completes or fails", general)
        self.notify_check.setChecked(settings.notifications_enabled)
        form.addRow("", self.notify_check)
        self.reset_layout_button = QPushButton("Reset window &layout", general)
        self.reset_layout_button.setToolTip("Forget the window's size, splitters and columns (from the next start)")
        self.reset_layout_button.clicked.connect(self._mark_layout_reset)
        form.addRow("", self.reset_layout_button)
        layout.addWidget(general)

        servers = QGroupBox("Saved servers", self)
        servers_layout = QVBoxLayout(servers)
        self.servers_list = QListWidget(servers)
        self.servers_list.setAccessibleName("Saved servers")
        for profile in settings.server_profiles():
            item = QListWidgetItem(profile.label + ("  (own CA file)" if profile.ca_file else ""))
            item.setData(Qt.ItemDataRole.UserRole, profile.url)
            self.servers_list.addItem(item)
        self.forget_button = QPushButton("&Forget server and its token", servers)
        self.forget_button.clicked.connect(self.forget_selected)
        self.servers_list.currentRowChanged.connect(lambda row: self.forget_button.setEnabled(row >= 0))
        self.forget_button.setEnabled(False)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.forget_button)
        # An empty list says how a server gets there, instead of a blank box.
        self.no_servers_label = QLabel(NO_SERVERS_TEXT, servers)
        self.no_servers_label.setWordWrap(True)
        self.no_servers_label.setEnabled(False)  # the platform's dimmed text, as for a placeholder
        servers_layout.addWidget(self.no_servers_label)
        servers_layout.addWidget(self.servers_list)
        servers_layout.addLayout(row)
        notice = tokens.storage_notice()
        self.tokens_label = QLabel(f"⚠ {notice}" if notice else
                                   f"Tokens are kept in the system keyring ({tokens.backend_name}).", servers)
        self.tokens_label.setWordWrap(True)
        servers_layout.addWidget(self.tokens_label)
        layout.addWidget(servers)
        self._show_whether_empty()

        files = QLabel(self)
        files.setTextFormat(Qt.TextFormat.PlainText)
        files.setWordWrap(True)
        files.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        files.setText(f"Log file: {log_file if log_file is not None else 'none (it could not be opened)'}\n"
                      f"Settings file: {settings.file_name}")
        self.files_label = files
        layout.addWidget(files)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                   self)
        buttons.accepted.connect(self.apply_and_close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.setMinimumWidth(480)

    def forget_selected(self) -> None:
        item = self.servers_list.currentItem()
        if item is None:
            return
        self._forgotten.append(str(item.data(Qt.ItemDataRole.UserRole)))
        self.servers_list.takeItem(self.servers_list.row(item))
        self._show_whether_empty()

    def _show_whether_empty(self) -> None:
        empty = self.servers_list.count() == 0
        self.no_servers_label.setVisible(empty)
        self.servers_list.setVisible(not empty)
        self.forget_button.setVisible(not empty)

    def _mark_layout_reset(self) -> None:
        self.reset_layout_requested = True
        self.reset_layout_button.setText("Window layout will be reset at the next start")
        self.reset_layout_button.setEnabled(False)

    def apply_and_close(self) -> None:
        self.settings.set_refresh_interval(float(self.refresh_spin.value()))
        self.settings.set_notifications_enabled(self.notify_check.isChecked())
        for url in self._forgotten:
            self.settings.forget_server(url)
            self.tokens.delete(url)
            if self.settings.active_server == url:
                self.settings.set_active_server("")
        if self.reset_layout_requested:
            self.settings.clear_window_layout()
        self.settings.sync()
        self.applied.emit()
        self.accept()
