"""The Server menu: what the app is connected to, and the local server's controls.

It shows the connection's status, URL and version, and how changes arrive (live updates, reconnecting,
or polling: the store's `stream_state`), as read-only entries (kept current from the store's signals), and offers Reconnect, Copy URL, and for the embedded local server Restart and Stop. It only
forwards intent to `JobStore`; stopping asks for confirmation first because it interrupts running jobs.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QMenu, QMessageBox, QWidget

from training_studio.ui.jobs.store import JobStore

__all__ = ["ServerMenu"]


class ServerMenu(QMenu):
    def __init__(self, store: JobStore, parent: QWidget | None = None) -> None:
        super().__init__("&Server", parent)
        self.store = store
        self.status_text = "Starting local server…" if store.is_local else "Connecting…"
        self.url = ""
        self.version = ""
        self.status_action = self.addAction("")
        self.url_action = self.addAction("")
        self.version_action = self.addAction("")
        self.updates_action = self.addAction("")
        for info in (self.status_action, self.url_action, self.version_action, self.updates_action):
            info.setEnabled(False)  # read-only information
        self.addSeparator()
        self.reconnect_action = QAction("Re&connect", self)
        self.reconnect_action.setToolTip("Reconnect to the server (re-reads server.json for the local server)")
        self.reconnect_action.triggered.connect(store.reconnect)
        self.copy_url_action = QAction("Copy server &URL", self)
        self.copy_url_action.triggered.connect(lambda: QGuiApplication.clipboard().setText(self.url))
        self.restart_action = QAction("&Restart local server", self)
        self.restart_action.triggered.connect(store.restart_local_server)
        self.stop_action = QAction("S&top local server…", self)
        self.stop_action.triggered.connect(self.confirm_stop)
        for action in (self.reconnect_action, self.copy_url_action, self.restart_action, self.stop_action):
            self.addAction(action)
        if not store.is_local:
            for action in (self.restart_action, self.stop_action):
                action.setEnabled(False)
                action.setToolTip("Only the app's own local server can be restarted or stopped")

        store.connecting.connect(lambda text: self._set_status(text))
        store.connection_changed.connect(self._on_connection_changed)
        store.jobs_changed.connect(lambda: self._set_status("Connected"))
        store.refresh_failed.connect(lambda kind, message: self._set_status(_status_for(kind)))
        store.stream_state_changed.connect(lambda state: self._refresh_texts())
        self._refresh_texts()

    def _on_connection_changed(self, url: str, version: str) -> None:
        self.url, self.version = url, version
        self._refresh_texts()

    def _set_status(self, text: str) -> None:
        self.status_text = text
        self._refresh_texts()

    def _refresh_texts(self) -> None:
        where = "Local server" if self.store.is_local else "Server"
        self.status_action.setText(f"{where}: {self.status_text}")
        self.url_action.setText(f"URL: {self.url or '—'}")
        self.version_action.setText(f"Version: {self.version or '—'}")
        self.updates_action.setText(f"Updates: {updates_text(self.store)}")
        self.copy_url_action.setEnabled(bool(self.url))

    def confirm_stop(self) -> None:
        """Plain slot: stopping interrupts running jobs, so ask first."""
        answer = QMessageBox.question(
            self.parentWidget(), "Stop local server",
            "Stop the local server?\n\nRunning jobs are interrupted and marked failed; queued jobs start again "
            "when the server is started.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer == QMessageBox.StandardButton.Yes:
            self.store.stop_local_server()


def updates_text(store: JobStore) -> str:
    """How changes reach the app, for the menu and the About dialog."""
    state = store.stream_state.value
    if state == "live":
        return "Live"
    if state == "reconnecting":
        return f"Reconnecting… (refreshed every {store.refresh_interval:g} s meanwhile)"
    if state == "polling":
        return f"Refreshed every {store.refresh_interval:g} s (the server has no live updates)"
    if state == "connecting":
        return "Connecting…"
    return "—"


def _status_for(kind: str) -> str:
    return {
        "unreachable": "Unreachable",
        "auth": "Token rejected",
        "bad_response": "Bad response",
        "server_error": "Server error",
        "stopped": "Stopped",
    }.get(kind, "Error")
