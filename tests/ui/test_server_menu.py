"""The Server menu against the app's own local server: status, URL, version, restart and stop."""

from __future__ import annotations

from training_studio import __version__
from training_studio.client import read_server_info


def test_server_menu_shows_the_connection_and_restarts_and_stops_the_local_server(harness, qtbot, tmp_path):
    data_dir = tmp_path / "data"
    store = harness.store(data_dir=data_dir, refresh_interval=0.3)
    window = harness.window(store)
    menu = window.server_menu
    store.start()
    assert menu.status_action.text() == "Local server: Starting local server…"
    qtbot.waitUntil(lambda: menu.status_action.text() == "Local server: Connected", timeout=30_000)
    first = read_server_info(data_dir)
    assert menu.url_action.text() == f"URL: {first.url}"
    assert menu.version_action.text() == f"Version: {__version__}"
    assert menu.restart_action.isEnabled() and menu.stop_action.isEnabled()

    menu.restart_action.trigger()  # asks first, without blocking
    menu.pending_question.confirm_button.click()
    qtbot.waitUntil(lambda: (read_server_info(data_dir) or first).pid != first.pid, timeout=30_000)
    second = read_server_info(data_dir)
    qtbot.waitUntil(lambda: menu.url_action.text() == f"URL: {second.url}", timeout=10_000)
    qtbot.waitUntil(lambda: window.banner.isVisible() and "restarted" in window.banner.text, timeout=10_000)
    assert not store.local._pid_alive(first.pid)

    menu.stop_action.trigger()
    menu.pending_question.keep_button.click()  # kept running
    assert menu.pending_question is None and store.local._pid_alive(second.pid)
    menu.stop_action.trigger()
    menu.pending_question.confirm_button.click()
    qtbot.waitUntil(lambda: window.banner.isVisible() and "stopped" in window.banner.text, timeout=20_000)
    qtbot.waitUntil(lambda: not store.local._pid_alive(second.pid), timeout=20_000)
    assert menu.status_action.text() == "Local server: Stopped"
    start_button = window.banner.button("Start local server")
    assert start_button is not None
    start_button.click()
    qtbot.waitUntil(lambda: menu.status_action.text() == "Local server: Connected", timeout=30_000)
    assert "stopped" not in window.banner.text or not window.banner.isVisible()
    third = read_server_info(data_dir)
    assert third is not None and third.pid not in (first.pid, second.pid)


def test_remote_server_cannot_be_restarted_from_the_menu(harness, qtbot, server):
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    store.start()
    menu = window.server_menu
    qtbot.waitUntil(lambda: menu.status_action.text() == "Server: Connected", timeout=10_000)
    assert menu.url_action.text() == f"URL: {server.url}"
    assert not menu.restart_action.isEnabled() and not menu.stop_action.isEnabled()
    assert window.server_label.text().startswith(f"Server: {server.url}")
