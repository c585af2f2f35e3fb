"""The main window: tabs of panels, the connection banner, menus and the status bar.

`MainWindow` arranges; it does not fetch. It hosts panels as tabs (`add_panel(title, factory)`: the
"Jobs" panel now; "Datasets" and "Models" panels plug in the same way), and a panel whose factory raises
is replaced by a "Failed to load …" page with a Retry button while the other tabs keep working. A panel
added with `lazy=True` is built when its tab is first shown (or `panel(title)` asks for it), so that
start-up pays only for the tab on screen; `panel_built` then announces it. It owns the app's one
`ConnectionState` (ui.connection) and renders its snapshot as the status-bar text and the one non-modal
connection banner ("last updated N s ago", Retry, Reconnect, Start local server); the Server menu and the
tray render the same snapshot, so they never disagree. Passing notices (a job finished, a job was
created, a status-bar message) go to its `NoticeArea` in the status bar, where they cover and push nothing.
It owns the menus (File; View with F5, Ctrl+1…4 for the tabs and Ctrl+Tab / Ctrl+Shift+Tab to cycle
them from anywhere; Server; Help), gives the Jobs toolbar its icons, and stops the store's timers and tasks
when it closes.
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
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from training_studio import __version__
from training_studio.ui.banner import Banner, BannerLevel
from training_studio.ui.icons import decorate_toolbar
from training_studio.ui.connection import ConnectionSnapshot, ConnectionState, banner_for, status_bar_text
from training_studio.ui.jobs.store import JobStore
from training_studio.ui.notifications import NoticeArea
from training_studio.ui.server_menu import ServerMenu
from training_studio.ui.status_label import StatusTextLabel

__all__ = ["MainWindow", "FailedPanel"]

log = logging.getLogger(__name__)

PanelFactory = Callable[[], QWidget]
TAB_TITLES = ("Jobs", "Datasets", "Models", "History")  # Ctrl+1 … Ctrl+4


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

        self.server_label = StatusTextLabel(self)  # gives way to the notices in a narrow status bar
        self.server_label.setAccessibleName("Connected server")
        self.server_label.setText("Starting local server…" if store.is_local else "Connecting…")
        self.statusBar().addPermanentWidget(self.server_label)
        # Notices (job finished, job created…) live in the status bar: they never cover content.
        self.notices = NoticeArea(self.statusBar())
        self.server_label.give_way_to(self.notices)

        # The one truth about the connection: the status bar, the banner, the Server menu and the tray
        # all render its snapshot.
        self.connection = ConnectionState(store, self)
        self._build_menus()
        self.connection.changed.connect(self._render_connection)
        self._render_connection(self.connection.snapshot)

        from training_studio.ui.jobs.details.links import wire_jobs_panel
        from training_studio.ui.jobs.panel import JobsPanel

        # The details pane's links reach the Datasets and Models tabs; its toggle joins the View menu.
        self.add_panel("Jobs", lambda: self._link_history(wire_jobs_panel(self, JobsPanel(store))))

    # panels ------------------------------------------------------------------------------------
    def _link_history(self, panel: QWidget) -> QWidget:
        """The Jobs panel's Finished view points to the History tab (issue 15): its button shows that tab."""
        requested = getattr(panel, "history_requested", None)
        if requested is not None:
            requested.connect(lambda: self.show_panel("History"))
        return panel

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

    def cycle_tabs(self, step: int) -> None:
        """Show the next (step 1) or previous (-1) tab, wrapping around."""
        count = self.tabs.count()
        if count:
            self.tabs.setCurrentIndex((self.tabs.currentIndex() + step) % count)

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
        if title == "Jobs":
            _decorate_jobs_toolbar(widget)
        return widget

    # menus -------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        view_menu = self.view_menu = self.menuBar().addMenu("&View")
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

        # Tabs from anywhere in the window: Ctrl+1…4, and Ctrl+Tab / Ctrl+Shift+Tab to cycle.
        view_menu.addSeparator()
        self.tab_actions: list[QAction] = []
        for number, title in enumerate(TAB_TITLES, start=1):
            action = QAction(f"&{number} {title}", self)
            action.setShortcut(QKeySequence(f"Ctrl+{number}"))
            action.triggered.connect(lambda _checked=False, title=title: self.show_panel(title))
            view_menu.addAction(action)
            self.addAction(action)
            self.tab_actions.append(action)
        self.next_tab_action = QAction("&Next tab", self)
        self.next_tab_action.setShortcuts([QKeySequence("Ctrl+Tab"), QKeySequence("Ctrl+PgDown")])
        self.next_tab_action.triggered.connect(lambda: self.cycle_tabs(1))
        self.previous_tab_action = QAction("&Previous tab", self)
        self.previous_tab_action.setShortcuts([QKeySequence("Ctrl+Shift+Tab"), QKeySequence("Ctrl+Shift+Backtab"),
                                               QKeySequence("Ctrl+PgUp")])
        self.previous_tab_action.triggered.connect(lambda: self.cycle_tabs(-1))
        for action in (self.next_tab_action, self.previous_tab_action):
            view_menu.addAction(action)
            self.addAction(action)
        self.view_menu = view_menu

        self.server_menu = ServerMenu(self.store, self, connection=self.connection)
        self.menuBar().addMenu(self.server_menu)

        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About Training Studio", self)
        about.triggered.connect(self._show_about)
        help_menu.addAction(about)

    def _show_about(self) -> None:
        QMessageBox.about(self, "About Training Studio",
                          f"Training Studio {__version__}\n\nWatch AI training jobs live and build training "
                          f"datasets.\nConnected to: {self.server_label.text()}")

    # connection feedback: everything rendered from the one ConnectionState -----------------------------
    def _render_connection(self, snapshot: ConnectionSnapshot) -> None:
        self.server_label.setText(status_bar_text(snapshot))
        self.server_label.setToolTip(f"Connected to {snapshot.url}" if snapshot.url else "")
        spec = banner_for(snapshot)
        if spec is None:
            self.banner.hide()
            return
        actions = {"start": self.connection.start_local, "reconnect": self.store.reconnect,
                   "retry": self.store.request_refresh, "retry_stream": self.store.reconnect_stream}
        # One banner: a new state's message replaces the one before (same buttons: only the text changes).
        self.banner.show_message(spec.text, BannerLevel(spec.level),
                                 [(label, actions[key]) for label, key in spec.actions])

    # lifecycle ---------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        self.store.shutdown()  # both timers stop with the window; jobs keep running on the server
        self.closing.emit()
        super().closeEvent(event)


# The Jobs panel's toolbar actions and their icons (the panel builds them; the window gives them icons).
_JOBS_TOOLBAR_ICONS = {"refresh_action": "refresh-cw", "cancel_action": "circle-stop", "clear_action": "list-x",
                       "details_action": "panel-bottom", "export_action": "file-down"}


def _decorate_jobs_toolbar(panel: QWidget) -> None:
    toolbar = getattr(panel, "toolbar", None)
    if not isinstance(toolbar, QToolBar):
        return
    names = {getattr(panel, attribute): name for attribute, name in _JOBS_TOOLBAR_ICONS.items()
             if isinstance(getattr(panel, attribute, None), QAction)}
    decorate_toolbar(toolbar, names)
