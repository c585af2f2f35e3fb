"""The About dialog: the app's version and licence, and the version of the server it is connected to."""

from __future__ import annotations

import httpx

from training_studio import __version__
from training_studio.ui.dialogs.about_dialog import AboutDialog, AboutInfo, about_info_from_store


def test_about_names_the_version_the_licence_and_the_connected_servers_version(harness, qtbot, server):
    store = harness.store(server.url, server.token)
    store.start()
    qtbot.waitUntil(lambda: store.connected and store.last_success_at is not None, timeout=15_000)
    server_version = httpx.get(server.url + "/api/health", timeout=5).json()["version"]

    dialog = AboutDialog(about_info_from_store(store))
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.value("Version") == __version__
    assert dialog.value("Licence").startswith("MIT License")
    assert dialog.value("Server") == server.url
    assert dialog.value("Server version") == server_version
    assert dialog.value("Status") == "Connected"


def test_about_while_not_connected_says_why(harness, qtbot):
    store = harness.store("http://127.0.0.1:9", "t", timeout=1.0)  # nothing listens on the discard port
    store.start()
    qtbot.waitUntil(lambda: store.last_failure is not None, timeout=10_000)
    info = about_info_from_store(store)
    assert info.server_url == "" and info.server_version == ""
    dialog = AboutDialog(info)
    qtbot.addWidget(dialog)
    assert dialog.value("Server") == "not connected" and dialog.value("Server version") == "unknown"
    assert dialog.value("Status").startswith("Not connected: Cannot connect to the server at http://127.0.0.1:9")


def test_a_local_server_is_named_as_such(qtbot):
    dialog = AboutDialog(AboutInfo("http://127.0.0.1:5000", "0.1.0", is_local=True, status="Connected"))
    qtbot.addWidget(dialog)
    labels = [w.text() for w in dialog.findChildren(type(dialog.values["Server"]))]
    assert "Local server:" in labels and dialog.value("Server") == "http://127.0.0.1:5000"
