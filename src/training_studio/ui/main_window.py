"""The main window: tabs of panels, the connection banner, menus and the status bar.

`MainWindow` arranges; it does not fetch. It hosts panels as tabs (`add_panel(title, factory)`: the
"Jobs" panel now; "Datasets" and "Models" panels plug in the same way), and a panel whose factory raises
is replaced by a "Failed to load …" page with a Retry button while the other tabs keep working. A panel
added with `lazy=True` is built when its tab is first shown (or `panel(title)` asks for it), so that
start-up pays only for the tab on screen; `panel_built` then announces it. It turns
the store's connection signals into the non-modal banner ("last updated N s ago", Retry, Reconnect) and
the status-bar text, owns the menus (File, View with F5, Server, Help), and stops the store's timers and
tasks when it closes. The status bar names how changes arrive (the store's `stream_state`: live updates,
reconnecting, or polling), and live updates that stay interrupted while the server otherwise answers get
the banner too (`JobStore.stream_trouble()`), cleared by themselves when the stream is back.
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
    QTabBar,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from training_studio import __version__
from training_studio.ui.banner import Banner, BannerLevel
from training_studio.ui.jobs.store import FailureKind, JobStore, StreamState
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


class _PendingPanel(QWidget):
    """The empty page of a lazy tab until its panel is built (on first show)."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName(f"{title} (loading)")


class MainWindow(QMainWindow):
    closing = Signal()
    panel_built = Signal(str, QWidget)  # title, the panel (or its FailedPanel): a lazy tab was just built

    def __init__(self, store: JobStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.setWindowTitle("Training Studio")
        self.setMinimumSize(560, 360)
        self.resize(1000, 640)
        self._factories: dict[str, PanelFactory] = {}
        self._panels: dict[str, QWidget] = {}
        self._pending: dict[str, _PendingPanel] = {}  # lazy tabs not built yet
        self._swapping = False  # a tab is being replaced: its intermediate tab changes are not "shown"
        self._server_text = ""  # "Server: URL (version …)", before the state suffix
        self._banner_for_stream = False  # the banner shows stream_trouble(), not a failed refresh

        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.banner = Banner(central, closable=False)
        self.banner.setObjectName("connectionBanner")
        self.tabs = QTabWidget(central)
        self.tabs.setDocumentMode(True)
        self.tabs.setAccessibleName("Panels")
        self.tabs.currentChanged.connect(self._on_tab_shown)
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
        store.stream_state_changed.connect(self._on_stream_state)

        from training_studio.ui.jobs.panel import JobsPanel

        self.add_panel("Jobs", lambda: JobsPanel(store))

    # panels ------------------------------------------------------------------------------------
    @property
    def jobs_panel(self):  # -> JobsPanel | None (typed loosely: the panel may have failed to build)
        from training_studio.ui.jobs.panel import JobsPanel

        panel = self._panels.get("Jobs")
        return panel if isinstance(panel, JobsPanel) else None

    def panel(self, title: str) -> QWidget | None:
        """The panel of tab `title` (building a lazy one now), or None when there is no such tab."""
        if title in self._pending:
            self._build_pending(title)
        return self._panels.get(title)

    def built_panel(self, title: str) -> QWidget | None:
        """Like `panel()`, but None for a lazy tab not built yet: for code that must not build it."""
        return None if title in self._pending else self._panels.get(title)

    def show_panel(self, title: str) -> bool:
        """Switch to the tab `title` (building a lazy one); False when there is no such tab."""
        panel = self.panel(title)
        if panel is None:
            return False
        self.tabs.setCurrentWidget(panel)
        return True

    def current_title(self) -> str | None:
        current = self.tabs.currentWidget()
        return next((title for title, widget in self._panels.items() if widget is current), None)

    def add_panel(self, title: str, factory: PanelFactory, *, lazy: bool = False) -> QWidget | None:
        """Add a tab built by `factory`; if building fails the tab says so and offers Retry. Returns the
        panel, or None with `lazy=True`: then it is built when its tab is first shown."""
        self._factories[title] = factory
        if lazy and self.tabs.count() > 0:  # the first tab is on screen at once: no point waiting
            placeholder = _PendingPanel(title, self.tabs)
            self._pending[title] = placeholder
            self._panels[title] = placeholder
            self.tabs.addTab(placeholder, title)
            return None
        widget = self._build_panel(title)
        self.tabs.addTab(widget, title)
        return widget

    def retry_panel(self, title: str) -> QWidget:
        if title in self._pending:
            self._build_pending(title)
            return self._panels[title]
        old = self._panels[title]
        index = self.tabs.indexOf(old)
        widget = self._build_panel(title)
        self.tabs.removeTab(index)
        self.tabs.insertTab(index, widget, title)
        self.tabs.setCurrentIndex(index)
        old.deleteLater()
        return widget

    def _on_tab_shown(self, index: int) -> None:
        if self._swapping:
            return
        page = self.tabs.widget(index)
        title = next((title for title, pending in self._pending.items() if pending is page), None)
        if title is not None:
            self._build_pending(title)

    def _build_pending(self, title: str) -> None:
        placeholder = self._pending.pop(title)
        widget = self._build_panel(title)
        index = self.tabs.indexOf(placeholder)
        was_current = self.tabs.currentWidget() is placeholder
        tab_bar = self.tabs.tabBar()
        behaviour = tab_bar.selectionBehaviorOnRemove()
        self._swapping = True
        try:
            # The panel goes in front of its placeholder; removing the placeholder then selects the tab to
            # its left, i.e. the panel, so no other tab is shown (and built) on the way.
            tab_bar.setSelectionBehaviorOnRemove(QTabBar.SelectionBehavior.SelectLeftTab)
            self.tabs.insertTab(index, widget, title)
            self.tabs.removeTab(index + 1)
            if was_current:
                self.tabs.setCurrentIndex(index)
        finally:
            tab_bar.setSelectionBehaviorOnRemove(behaviour)
            self._swapping = False
        placeholder.deleteLater()
        self.panel_built.emit(title, widget)

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
        self._server_text = f"{where}: {url}{suffix}"
        self._render_server_label()
        self.server_label.setToolTip(f"Connected to {url}")

    def _render_server_label(self) -> None:
        """The connection in the status bar: where, and how changes arrive (" — live updates"...)."""
        if not self._server_text:
            return
        state = _stream_words(self.store)
        self.server_label.setText(f"{self._server_text} — {state}" if state else self._server_text)

    def _on_stream_state(self, state: str) -> None:
        failure = self.store.last_failure
        if failure is None or failure[0] not in (FailureKind.UNREACHABLE, FailureKind.AUTH, FailureKind.STOPPED):
            self._render_server_label()
        if self.banner.isVisible() and failure is not None:
            self.banner.update_text(self._banner_text())
        elif state == StreamState.LIVE.value and self._banner_for_stream:
            self.banner.hide()
            self._banner_for_stream = False

    def _on_jobs_changed(self) -> None:
        if self.store.last_failure is None and self.banner.isVisible() and self.store.stream_trouble() is None:
            self.banner.hide()
            self._banner_for_stream = False

    def _on_restored(self) -> None:
        self.banner.hide()
        self._banner_for_stream = False
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
        self._banner_for_stream = False
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
        stream = (" Live updates are reconnecting." if self.store.stream_state is StreamState.RECONNECTING
                  and kind not in (FailureKind.AUTH, FailureKind.STOPPED) else "")
        return f"{message} {freshness}{retry}{stream}"

    def _update_banner_age(self) -> None:
        if self.store.last_failure is not None:
            if self.banner.isVisible():
                self.banner.update_text(self._banner_text())
            return
        trouble = self.store.stream_trouble()
        if trouble is not None:
            if not (self.banner.isVisible() and self._banner_for_stream):
                self.banner.show_message(trouble, BannerLevel.WARNING, [("Retry &now", self.store.reconnect_stream)])
                self._banner_for_stream = True
            else:
                self.banner.update_text(trouble)
        elif self._banner_for_stream and self.banner.isVisible():
            self.banner.hide()
            self._banner_for_stream = False

    # lifecycle ---------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        self.store.shutdown()  # both timers stop with the window; jobs keep running on the server
        self.closing.emit()
        super().closeEvent(event)


def _stream_words(store: JobStore) -> str:
    """How changes arrive, in a few words for the status bar ("" before it is known)."""
    state = store.stream_state
    if state is StreamState.LIVE:
        return "live updates"
    if state is StreamState.RECONNECTING:
        return "reconnecting live updates…"
    if state is StreamState.POLLING:
        return f"refreshed every {store.refresh_interval:g} s"
    return ""


def _short(kind: str) -> str:
    return {"unreachable": "unreachable", "auth": "token rejected", "stopped": "stopped"}.get(kind, "error")
