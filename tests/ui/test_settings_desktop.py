"""The desktop integration on the real main window: menus, dialogs opened non-modally, the refresh
interval applied, and the window's layout saved at close and restored by the next window."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from training_studio.ui.desktop import install_desktop, startup_request
from training_studio.ui.first_size import first_window_geometry
from training_studio.ui.secrets import TokenStore
from training_studio.ui.settings import AppSettings, ServerProfile
from tests.ui.keyring_backends import MemoryKeyring


@pytest.fixture
def settings_path(tmp_path):
    return tmp_path / "settings.ini"


def make_settings(path) -> AppSettings:
    return AppSettings(QSettings(str(path), QSettings.Format.IniFormat))


def action_texts(menu) -> list[str]:
    return [a.text().replace("&", "") for a in menu.actions() if not a.isSeparator()]


def test_menus_dialogs_and_refresh_interval_on_the_real_window(harness, qtbot, server, settings_path, tmp_path):
    settings = make_settings(settings_path)
    settings.set_refresh_interval(7.0)
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    desktop = install_desktop(window, store, store.client, settings=settings, tokens=TokenStore(MemoryKeyring()),
                              data_dir=None, log_file=tmp_path / "training-studio.log", tray_available=False)
    assert store.refresh_interval == 7.0
    store.start()
    qtbot.waitUntil(lambda: store.connected, timeout=15_000)

    menus = {a.text().replace("&", ""): a.menu() for a in window.menuBar().actions()}
    assert action_texts(menus["File"])[:2] == ["Connect to server…", "Settings…"]
    assert "Connect to server…" in action_texts(menus["Server"])
    assert action_texts(menus["Help"]).count("About Training Studio") == 1

    about = desktop.open_about()
    assert about.isVisible()  # opened with .open(): no nested event loop, the store keeps refreshing
    assert about.value("Server") == server.url and about.value("Server version") == store.server_version

    dialog = desktop.open_settings()  # opening another dialog closes the first
    qtbot.waitUntil(lambda: not about.isVisible())
    assert dialog.isVisible()
    dialog.refresh_spin.setValue(3.0)
    dialog.notify_check.setChecked(False)
    dialog.apply_and_close()
    assert store.refresh_interval == 3.0 and desktop.notifier.enabled is False
    assert make_settings(settings_path).refresh_interval == 3.0


def test_the_window_layout_comes_back_in_the_next_window(harness, qtbot, settings_path):
    store = harness.store("http://127.0.0.1:9")
    window = harness.window(store)
    install_desktop(window, store, store.client, settings=make_settings(settings_path),
                    tokens=TokenStore(MemoryKeyring()), data_dir=None, log_file=None, tray_available=False)
    # Nothing saved yet: the first window's share of its screen (ui.first_size), centred on it.
    area = window.screen().availableGeometry()
    x, y, width, height = first_window_geometry((area.x(), area.y(), area.width(), area.height()))
    assert window.geometry().getRect() == (x, y, width, height)
    window.resize(640, 420)
    header = window.jobs_panel.table.horizontalHeader()
    header.moveSection(header.count() - 1, 0)
    order = [header.logicalIndex(i) for i in range(header.count())]
    window.close()  # saves

    store2 = harness.store("http://127.0.0.1:9")
    window2 = harness.window(store2)
    window2.resize(1000, 640)
    install_desktop(window2, store2, store2.client, settings=make_settings(settings_path),
                    tokens=TokenStore(MemoryKeyring()), data_dir=None, log_file=None, tray_available=False)
    assert (window2.width(), window2.height()) == (640, 420)
    header2 = window2.jobs_panel.table.horizontalHeader()
    assert [header2.logicalIndex(i) for i in range(header2.count())] == order


def test_startup_goes_back_to_the_last_remote_server_only_with_its_token(settings_path):
    settings = make_settings(settings_path)
    tokens = TokenStore(MemoryKeyring())
    assert startup_request(settings, tokens, explicit_choice=False) is None
    settings.remember_server(ServerProfile("https://gpu.example", ca_file="/etc/team-ca.pem"))
    settings.set_active_server("https://gpu.example")
    assert startup_request(settings, tokens, explicit_choice=False) is None  # no token: local server
    tokens.set("https://gpu.example", "tok")
    request = startup_request(settings, tokens, explicit_choice=False)
    assert request is not None and (request.url, request.token, request.ca_file) == (
        "https://gpu.example", "tok", "/etc/team-ca.pem")
    assert startup_request(settings, tokens, explicit_choice=True) is None  # --server/--data-dir win


def test_a_tab_built_on_first_show_gets_its_saved_columns_back(harness, qtbot, settings_path):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QHeaderView

    from training_studio.ui.datasets.wiring import install_library_panels

    def columns_of(panel) -> QHeaderView:
        headers = [h for h in panel.findChildren(QHeaderView) if h.orientation() == Qt.Orientation.Horizontal]
        assert headers
        return headers[0]

    store = harness.store("http://127.0.0.1:9")
    window = harness.window(store)
    library = install_library_panels(window, store.client, store)  # built at once, as before
    install_desktop(window, store, store.client, settings=make_settings(settings_path),
                    tokens=TokenStore(MemoryKeyring()), data_dir=None, log_file=None, tray_available=False)
    header = columns_of(library.models_panel)
    header.moveSection(header.count() - 1, 0)
    order = [header.logicalIndex(i) for i in range(header.count())]
    assert order != sorted(order)
    window.close()  # saves
    harness.run(library.wait_idle())

    store2 = harness.store("http://127.0.0.1:9")
    window2 = harness.window(store2)
    library2 = install_library_panels(window2, store2.client, store2, lazy=True)
    install_desktop(window2, store2, store2.client, settings=make_settings(settings_path),
                    tokens=TokenStore(MemoryKeyring()), data_dir=None, log_file=None, tray_available=False)
    assert window2.built_panel("Models") is None
    window2.tabs.setCurrentIndex(2)
    header2 = columns_of(window2.built_panel("Models"))
    assert [header2.logicalIndex(i) for i in range(header2.count())] == order
    window2.close()
    harness.run(library2.wait_idle())
