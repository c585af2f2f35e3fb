"""The main window: tabs of panels, the connection banner, menus and the status bar.

`MainWindow` arranges; it does not fetch. It hosts panels as tabs (`add_panel(title, factory)`: the
"Jobs" panel now; "Datasets" and "Models" panels plug in the same way), and a panel whose factory raises
is replaced by a "Failed to load …" page with a Retry button while the other tabs keep working. It turns
the store's connection signals into the non-modal banner ("last updated N s ago", Retry, Reconnect) and
the status-bar text, owns the menus (File, View with F5, Server, Help), and stops the store's timers and
tasks when it closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from training_studio import __version__
from training_studio.ui.banner import Banner, BannerLevel
from training_studio.ui.jobs.store import FailureKind, JobStore
from training_studio.ui.server_menu import ServerMenu

__all__ = ["MainWindow", "FailedPanel"]

log = logging.getLogger(__name__)

PanelFactory = Callable[[], QWidget]


class FailedPanel(QWidget):
    """Stands in for a panel that could not be built: says so and offers Retry."""

    retry_requested = Signal()

    def __init__(self, title: str, error: BaseException, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName(f"{title} failed to load")
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        self.message = QLabel(f"Failed to load {title}.\n{type(error).__name__}: {error}", self)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.retry_button = QPushButton("&Retry", self)
        self.retry_button.setAccessibleName(f"Retry loading {title}")
        self.retry_button.clicked.connect(self.retry_requested)
        layout.addWidget(self.message)
        layout.addWidget(self.retry_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(1)


class MainWindow(QMainWindow):
    closing = Signal()

    def __init__(self, store: JobStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.setWindowTitle("Training Studio")
        self.setMinimumSize(560, 360)
        self.resize(1000, 640)
        self._factories: dict[str, PanelFactory] = {}
        self._panels: dict[str, QWidget] = {}

        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.banner = Banner(central, closable=False)
        self.banner.setObjectName("connectionBanner")
        self.tabs = QTabWidget(central)
        self.tabs.setDocumentMode(True)
        self.tabs.setAccessibleName("Panels")
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.server_label = QLabel(self)
        self.server_label.setAccessibleName("Connected server")
        self.server_label.setText("Starting local server…" if store.is_local else "Connecting…")
        self.statusBar().addPermanentWidget(self.server_label)

        self._build_menus()
        store.connecting.connect(self._on_connecting)
        store.connection_changed.connect(self._on_connection_changed)
        store.refresh_failed.connect(self._on_refresh_failed)
        store.connection_restored.connect(self._on_restored)
        store.jobs_changed.connect(self._on_jobs_changed)
        store.ticked.connect(self._update_banner_age)

        from training_studio.ui.jobs.panel import JobsPanel

        self.add_panel("Jobs", lambda: JobsPanel(store))

    # panels ------------------------------------------------------------------------------------
    @property
    def jobs_panel(self):  # -> JobsPanel | None (typed loosely: the panel may have failed to build)
        from training_studio.ui.jobs.panel import JobsPanel

        panel = self._panels.get("Jobs")
        return panel if isinstance(panel, JobsPanel) else None

    def panel(self, title: str) -> QWidget | None:
        return self._panels.get(title)

    def add_panel(self, title: str, factory: PanelFactory) -> QWidget:
        """Add a tab built by `factory`; if building fails the tab says so and offers Retry."""
        self._factories[title] = factory
        widget = self._build_panel(title)
        self.tabs.addTab(widget, title)
        return widget

    def retry_panel(self, title: str) -> QWidget:
        old = self._panels[title]
        index = self.tabs.indexOf(old)
        widget = self._build_panel(title)
        self.tabs.removeTab(index)
        self.tabs.insertTab(index, widget, title)
        self.tabs.setCurrentIndex(index)
        old.deleteLater()
        return widget

    def _build_panel(self, title: str) -> QWidget:
        try:
            widget = self._factories[title]()
        except Exception as error:  # a broken panel must not take the window down
            log.exception("building the %s panel failed", title)
            failed = FailedPanel(title, error, self.tabs)
            failed.retry_requested.connect(lambda: self.retry_panel(title))
            widget = failed
        self._panels[title] = widget
        return widget

    # menus -------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        view_menu = self.menuBar().addMenu("&View")
        self.refresh_action = QAction("&Refresh", self)
        shortcuts = [QKeySequence(Qt.Key.Key_F5)]
        # The platform's Refresh key is F5 on most desktops; a duplicate would make F5 "ambiguous".
        shortcuts += [key for key in QKeySequence.keyBindings(QKeySequence.StandardKey.Refresh)
                      if key not in shortcuts]
        self.refresh_action.setShortcuts(shortcuts)
        self.refresh_action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        self.refresh_action.triggered.connect(self.store.request_refresh)
        view_menu.addAction(self.refresh_action)
        self.addAction(self.refresh_action)

        self.server_menu = ServerMenu(self.store, self)
        self.menuBar().addMenu(self.server_menu)

        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About Training Studio", self)
        about.triggered.connect(self._show_about)
        help_menu.addAction(about)

    def _show_about(self) -> None:
        QMessageBox.about(self, "About Training Studio",
                          f"Training Studio {__version__}\n\nWatch AI training jobs live and build training "
                          f"datasets.\nConnected to: {self.server_label.text()}")

    # connection feedback -----------------------------------------------------------------------
    def _on_connecting(self, text: str) -> None:
        self.server_label.setText(text)

    def _on_connection_changed(self, url: str, version: str) -> None:
        where = "Local server" if self.store.is_local else "Server"
        suffix = f" (version {version})" if version else ""
        self.server_label.setText(f"{where}: {url}{suffix}")
        self.server_label.setToolTip(f"Connected to {url}")

    def _on_jobs_changed(self) -> None:
        if self.store.last_failure is None and self.banner.isVisible():
            self.banner.hide()

    def _on_restored(self) -> None:
        self.banner.hide()
        self._on_connection_changed(self.store.client.base_url, self.store.server_version)

    def _on_refresh_failed(self, kind: str, message: str) -> None:
        actions: list[tuple[str, Callable[[], None]]]
        if kind == FailureKind.AUTH.value:
            actions = [("Reconn&ect", self.store.reconnect)]
        elif kind == FailureKind.STOPPED.value:
            actions = [("S&tart local server", self.store.restart_local_server)]
        else:
            actions = [("Retry &now", self.store.request_refresh)]
        level = BannerLevel.WARNING if kind == FailureKind.UNREACHABLE.value else BannerLevel.ERROR
        self.banner.show_message(self._banner_text(), level, actions)
        if kind in (FailureKind.UNREACHABLE.value, FailureKind.AUTH.value, FailureKind.STOPPED.value):
            self.server_label.setText(f"{self.server_label.text().split(' — ')[0]} — {_short(kind)}")

    def _banner_text(self) -> str:
        failure = self.store.last_failure
        if failure is None:
            return ""
        kind, message = failure
        if kind is FailureKind.AUTH:
            hint = (" Reconnect re-reads the local server's token." if self.store.is_local
                    else " Check the token (--token or TRAINING_STUDIO_TOKEN), then Reconnect.")
            message = f"{message}{hint}"
        age = self.store.seconds_since_success()
        if age is None:
            freshness = "No data loaded yet."
        else:
            freshness = f"Showing the last good data, updated {int(age)} s ago."
        retry = "" if kind in (FailureKind.AUTH, FailureKind.STOPPED) else " Retrying automatically."
        return f"{message} {freshness}{retry}"

    def _update_banner_age(self) -> None:
        if self.banner.isVisible() and self.store.last_failure is not None:
            self.banner.update_text(self._banner_text())

    # lifecycle ---------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        self.store.shutdown()  # both timers stop with the window; jobs keep running on the server
        self.closing.emit()
        super().closeEvent(event)


def _short(kind: str) -> str:
    return {"unreachable": "unreachable", "auth": "token rejected", "stopped": "stopped"}.get(kind, "error")
