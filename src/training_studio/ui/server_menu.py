"""The Server menu: what the app is connected to, and the local server's controls.

It renders the app's one `ConnectionState` (ui.connection): the status, URL and version, and how changes
arrive (live updates, reconnecting, or polling), as read-only entries; so it always says what the status
bar, the banner and the tray say. It offers Reconnect, Copy URL, and for the embedded local server
Restart… and Stop…, which ask first, without blocking (a `ConfirmBox` opened with `open()`), saying what
happens to running jobs: they keep running under their trainer wrappers, and the server re-attaches them
when it is back. It only forwards intent to the connection state and the `JobStore`.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QMenu, QWidget

from training_studio.ui.confirm import ConfirmBox, ask_to_confirm
from training_studio.ui.connection import ConnectionPhase, ConnectionSnapshot, ConnectionState, menu_status_text
from training_studio.ui.jobs.store import JobStore

__all__ = ["ServerMenu", "updates_text"]

RESTART_QUESTION = (
    "Restart the local server?",
    "Jobs that are running keep running and are re-attached when the server is back, in a few seconds. "
    "Queued jobs stay queued.")
STOP_QUESTION = (
    "Stop the local server?",
    "Jobs that are running keep running and are re-attached when the server starts again (Server › Restart "
    "local server, or the next time the app starts). Queued jobs wait until then. Until then the lists "
    "cannot change.")


class ServerMenu(QMenu):
    def __init__(self, store: JobStore, parent: QWidget | None = None, *,
                 connection: ConnectionState | None = None) -> None:
        super().__init__("&Server", parent)
        self.store = store
        self.connection = connection if connection is not None else ConnectionState(store, self)
        self.pending_question: ConfirmBox | None = None
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
        self.restart_action = QAction("&Restart local server…", self)
        self.restart_action.triggered.connect(self.confirm_restart)
        self.stop_action = QAction("S&top local server…", self)
        self.stop_action.triggered.connect(self.confirm_stop)
        for action in (self.reconnect_action, self.copy_url_action, self.restart_action, self.stop_action):
            self.addAction(action)
        if not store.is_local:
            for action in (self.restart_action, self.stop_action):
                action.setEnabled(False)
                action.setToolTip("Only the app's own local server can be restarted or stopped")
        self.connection.changed.connect(self.render)
        self.render(self.connection.snapshot)

    @property
    def url(self) -> str:
        return self.connection.snapshot.url

    @property
    def status_text(self) -> str:
        return menu_status_text(self.connection.snapshot)

    def render(self, snapshot: ConnectionSnapshot) -> None:
        where = "Local server" if snapshot.is_local else "Server"
        self.status_action.setText(f"{where}: {menu_status_text(snapshot)}")
        self.url_action.setText(f"URL: {snapshot.url or '—'}")
        self.version_action.setText(f"Version: {snapshot.version or '—'}")
        self.updates_action.setText(f"Updates: {updates_text(self.store)}")
        self.copy_url_action.setEnabled(bool(snapshot.url))

    def confirm_restart(self) -> ConfirmBox | None:
        """Plain slot: ask (saying what happens to running jobs), then restart. A stopped server has
        nothing to interrupt: it starts without a question."""
        if self.connection.snapshot.phase is ConnectionPhase.STOPPED:
            self.connection.start_local()
            return None
        return self._ask("Restart local server", RESTART_QUESTION, "&Restart server", "&Keep it running",
                         self.connection.restart_local)

    def confirm_stop(self) -> ConfirmBox:
        """Plain slot: ask (saying what happens to running jobs), then stop."""
        return self._ask("Stop local server", STOP_QUESTION, "&Stop server", "&Keep it running",
                         self.connection.stop_local)

    def _ask(self, title: str, question: tuple[str, str], confirm: str, keep: str, then) -> ConfirmBox:
        if self.pending_question is not None:
            self.pending_question.close()
        box = ask_to_confirm(self.parentWidget(), title, question[0], question[1], confirm=confirm, keep=keep,
                             on_confirm=then)
        self.pending_question = box
        box.finished.connect(lambda _result: self._forget(box))
        return box

    def _forget(self, box: ConfirmBox) -> None:
        if self.pending_question is box:
            self.pending_question = None


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
