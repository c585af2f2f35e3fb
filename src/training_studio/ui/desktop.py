"""Desktop integration of the main window: settings, server switching, notifications, About.

`install_desktop()` is the one call the GUI bootstrap makes once the window and its panels exist. The
returned `DesktopIntegration` owns the glue: it restores the window's geometry, splitters and columns
(and saves them when the window closes), applies the refresh interval, adds File › Settings… and
Server › Connect to server… and points Help › About at the About dialog, owns the `Notifier`, and the
controllers the dialogs use (`ConnectionTester`, `ConnectionSwitcher`). Dialogs open from plain slots
with `.open()`, never `exec()`. `startup_request()` decides whether the app should go back to the remote
server it used last time (only when nothing was asked for on the command line and its token is at hand).
The dialogs' modules are imported when a dialog first opens, not at start-up; a tab the window builds
later (on first show) gets its saved splitters and columns back when it is built.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

from training_studio.ui.connection import ConnectionRequest, ConnectionSwitcher, ConnectionTester
from training_studio.ui.first_size import first_window_geometry
from training_studio.ui.notifications import Notifier, app_icon
from training_studio.ui.secrets import TokenLocation, TokenStore
from training_studio.ui.settings import AppSettings

if TYPE_CHECKING:
    from training_studio.ui.dialogs.about_dialog import AboutDialog
    from training_studio.ui.dialogs.connect_dialog import ConnectDialog
    from training_studio.ui.dialogs.settings_dialog import SettingsDialog

__all__ = ["DesktopIntegration", "install_desktop", "startup_request"]

log = logging.getLogger(__name__)


def startup_request(settings: AppSettings, tokens: TokenStore, *, explicit_choice: bool) -> ConnectionRequest | None:
    """The remote server to reconnect to at start, or None for the local server."""
    if explicit_choice:
        return None
    url = settings.active_server
    if not url:
        return None
    token = tokens.get(url)
    if token is None:
        log.info("not reconnecting to %s: its token is not available (%s)", url,
                 tokens.storage_notice() or "not in the keyring")
        return None
    profile = settings.profile_for(url)
    return ConnectionRequest(url=url, token=token, ca_file=profile.ca_file if profile else "")


def _menu(window: Any, title: str) -> QMenu | None:
    for action in window.menuBar().actions():
        menu = action.menu()
        if isinstance(menu, QMenu) and menu.title().replace("&", "") == title:
            return menu
    return None


class DesktopIntegration(QObject):
    def __init__(self, window: Any, store: Any, client: Any, *, settings: AppSettings, tokens: TokenStore,
                 data_dir: Path | None, log_file: Path | None, tray_available: bool | None = None,
                 ca_file: str | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.store = store
        self.settings = settings
        self.tokens = tokens
        self.log_file = log_file
        self.notifier = Notifier(window, store, tray_available=tray_available,
                                 enabled=settings.notifications_enabled)
        self.tester = ConnectionTester(self)
        self.switcher = ConnectionSwitcher(client, store, data_dir, on_switched=self._on_switched, parent=self)
        if ca_file is not None:  # the bootstrap already gave the client this TLS setting
            self.switcher.ca_file = ca_file
            self.switcher.uses_system_tls = True
        self.switcher.failed.connect(lambda text: window.statusBar().showMessage(text, 15000))
        self.dialog: Any = None  # the one dialog of ours that is open, if any
        store.refresh_interval = settings.refresh_interval
        window.setWindowIcon(app_icon())
        self._install_actions()
        if not settings.restore_window(window):
            _size_first_window(window)
        panel_built = getattr(window, "panel_built", None)
        if panel_built is not None:
            panel_built.connect(lambda _title, panel: settings.restore_within(window, panel))
        window.closing.connect(self.save_state)

    # menus -------------------------------------------------------------------------------------
    def _install_actions(self) -> None:
        window = self.window
        self.settings_action = QAction("&Settings…", window)
        self.settings_action.setShortcut(QKeySequence.StandardKey.Preferences)
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.settings_action.triggered.connect(self.open_settings)
        self.connect_action = QAction("Co&nnect to server…", window)
        self.connect_action.setShortcut(QKeySequence(Qt.Modifier.CTRL | Qt.Modifier.SHIFT | Qt.Key.Key_O))
        self.connect_action.triggered.connect(self.open_connect)
        self.about_action = QAction("&About Training Studio", window)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.about_action.triggered.connect(self.open_about)

        file_menu = _menu(window, "File") or window.menuBar().addMenu("&File")
        first = file_menu.actions()[0] if file_menu.actions() else None
        file_menu.insertAction(first, self.connect_action)
        file_menu.insertAction(first, self.settings_action)
        if first is not None:
            file_menu.insertSeparator(first)
        server_menu = getattr(window, "server_menu", None)
        if isinstance(server_menu, QMenu):
            server_menu.addSeparator()
            server_menu.addAction(self.connect_action)

        help_menu = _menu(window, "Help") or window.menuBar().addMenu("&Help")
        # The window's own About is a plain message box: this dialog replaces it (same place, same text).
        for action in list(help_menu.actions()):
            if action.text().replace("&", "") == "About Training Studio":
                help_menu.removeAction(action)
        help_menu.addAction(self.about_action)
        for action in (self.settings_action, self.connect_action, self.about_action):
            window.addAction(action)  # shortcuts work while the menu bar is hidden too

    # dialogs (plain slots: each opens non-blocking with .open()) ---------------------------------
    def _replace_dialog(self, dialog: Any) -> None:
        if self.dialog is not None:
            self.dialog.close()
        self.dialog = dialog
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(lambda _result: self._dialog_closed(dialog))
        dialog.open()

    def _dialog_closed(self, dialog: Any) -> None:
        if self.dialog is dialog:
            self.dialog = None

    def open_connect(self) -> ConnectDialog:
        from training_studio.ui.dialogs.connect_dialog import ConnectDialog

        current = "" if self.store.is_local else self.store.client.base_url
        dialog = ConnectDialog(self.settings, self.tokens, self.tester, current_url=current, parent=self.window)
        dialog.connect_requested.connect(self.switcher.request_switch)
        dialog.local_requested.connect(self._use_local)
        self._replace_dialog(dialog)
        return dialog

    def open_settings(self) -> SettingsDialog:
        from training_studio.ui.dialogs.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self.tokens, log_file=self.log_file, parent=self.window)
        dialog.applied.connect(self.apply_settings)
        self._replace_dialog(dialog)
        return dialog

    def open_about(self) -> AboutDialog:
        from training_studio.ui.dialogs.about_dialog import AboutDialog, about_info_from_store

        dialog = AboutDialog(about_info_from_store(self.store), parent=self.window)
        self._replace_dialog(dialog)
        return dialog

    # reactions ---------------------------------------------------------------------------------
    def apply_settings(self) -> None:
        self.store.refresh_interval = self.settings.refresh_interval
        self.notifier.enabled = self.settings.notifications_enabled
        self.store.request_refresh()  # the next wait uses the new interval

    def _use_local(self) -> None:
        self.settings.set_active_server("")
        self.switcher.request_switch(None)

    def _on_switched(self, request: ConnectionRequest | None) -> None:
        server_menu = getattr(self.window, "server_menu", None)
        for name in ("restart_action", "stop_action"):
            action = getattr(server_menu, name, None)
            if isinstance(action, QAction):
                action.setEnabled(self.store.is_local)
        where = "the local server" if request is None else request.url
        message = f"Switched to {where}."
        if request is not None and request.token and self.tokens.location_of(request.url) is TokenLocation.MEMORY:
            message += " " + self.tokens.storage_notice()
        self.window.statusBar().showMessage(message, 20000)

    def save_state(self) -> None:
        try:
            self.settings.save_window(self.window)
        except Exception:  # saving the layout must never stop the app from quitting
            log.exception("could not save the window layout")

    def shutdown(self) -> None:
        self.tester.shutdown()
        self.switcher.shutdown()
        self.notifier.shutdown()
        if self.dialog is not None:
            self.dialog.close()

    async def wait_idle(self) -> None:
        await self.tester.wait_idle()
        await self.switcher.wait_idle()


def install_desktop(window: Any, store: Any, client: Any, *, settings: AppSettings, tokens: TokenStore,
                    data_dir: Path | None, log_file: Path | None, tray_available: bool | None = None,
                    ca_file: str | None = None) -> DesktopIntegration:
    return DesktopIntegration(window, store, client, settings=settings, tokens=tokens, data_dir=data_dir,
                              log_file=log_file, tray_available=tray_available, ca_file=ca_file)


def _size_first_window(window: Any) -> None:
    """No saved layout (a first start, or after Reset window layout): a share of the screen, centred."""
    screen = window.screen()
    if screen is None:
        return
    area = screen.availableGeometry()
    x, y, width, height = first_window_geometry((area.x(), area.y(), area.width(), area.height()))
    window.setGeometry(x, y, width, height)
