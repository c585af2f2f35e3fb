"""The "Connect to server…" dialog and its controllers, against real servers over real sockets (and a real
TLS handshake in front of one)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from training_studio.ui.connection import (
    ConnectionRequest,
    ConnectionSwitcher,
    is_loopback_url,
    needs_plain_http_warning,
    tls_context,
)
from training_studio.ui.dialogs.connect_dialog import ConnectDialog
from training_studio.ui.secrets import TokenStore
from training_studio.ui.settings import AppSettings, ServerProfile
from tests.ui.jobs_helpers import make_dataset, make_job
from tests.ui.keyring_backends import MemoryKeyring
from tests.ui.tls_proxy import TlsProxy, make_ca_and_server_cert


@pytest.fixture
def settings(tmp_path):
    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def keyring_backend():
    return MemoryKeyring()


@pytest.fixture
def tokens(keyring_backend):
    return TokenStore(keyring_backend)


@pytest.fixture
def make_dialog(qtbot, settings, tokens):
    def make(**kwargs) -> ConnectDialog:
        dialog = ConnectDialog(settings, tokens, **kwargs)
        qtbot.addWidget(dialog)
        dialog.show()
        return dialog
    return make


def run_test_connection(qtbot, dialog: ConnectDialog) -> str:
    with qtbot.waitSignal(dialog.tester.finished, timeout=15_000):
        dialog.test_button.click()
    return dialog.result_label.text()


def test_test_connection_reports_success_a_wrong_token_and_no_server(make_dialog, qtbot, loop, server):
    dialog = make_dialog()
    dialog.url_combo.setEditText(server.url + "/")
    dialog.token_edit.setText(server.token)
    assert not dialog.warning_label.isVisibleTo(dialog)  # loopback: no warning
    result = run_test_connection(qtbot, dialog)
    assert result.startswith("✓ Connected to Training Studio server (version ")
    assert "the token was accepted" in result and dialog.test_button.isEnabled()

    dialog.token_edit.setText("wrong-token")
    assert "the token was rejected" in run_test_connection(qtbot, dialog)
    dialog.token_edit.clear()
    assert "a token is needed" in run_test_connection(qtbot, dialog)

    port = urlsplit(server.url).port
    server.stop()
    dialog.token_edit.setText(server.token)
    result = run_test_connection(qtbot, dialog)
    assert result.startswith("✕ Cannot connect to the server at http://127.0.0.1:") and str(port) in result


def test_bad_addresses_are_refused_in_the_dialog_without_any_request(make_dialog, qtbot, loop):
    dialog = make_dialog()
    started: list[bool] = []
    dialog.tester.started.connect(lambda: started.append(True))
    for text, reason in (("", "Enter the server's address"), ("gpu.example:8765", "no scheme"),
                         ("ftp://gpu.example", "use http:// or https://")):
        dialog.url_combo.setEditText(text)
        dialog.test_button.click()
        assert dialog.result_label.text().startswith("✕ ") and reason in dialog.result_label.text()
    dialog.url_combo.setEditText("https://gpu.example")
    dialog.ca_file_radio.setChecked(True)
    dialog.connect_button.click()
    assert "Choose the CA file" in dialog.result_label.text()
    assert started == [] and dialog.isVisible()


def test_plain_http_to_another_host_warns_and_asks_before_sending_the_token(make_dialog, qtbot, loop):
    dialog = make_dialog()
    dialog.tester.timeout = 1.0
    started: list[bool] = []
    dialog.tester.started.connect(lambda: started.append(True))
    dialog.url_combo.setEditText("http://192.0.2.10:8765")  # TEST-NET: a remote host nobody answers on
    assert not dialog.warning_label.isVisibleTo(dialog)  # no token yet, nothing to leak
    dialog.token_edit.setText("s3cret")
    assert dialog.warning_label.isVisibleTo(dialog)
    assert "unencrypted" in dialog.warning_label.text()
    assert not dialog.tls_group.isEnabled()

    dialog.test_button.click()
    question = dialog.pending_question
    assert isinstance(question, QMessageBox) and question.isVisible() and started == []
    assert "over plain http" in question.text()
    question.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: dialog.pending_question is None)
    assert started == []  # cancelled: nothing was sent

    dialog.test_button.click()
    question = dialog.pending_question
    send = next(b for b in question.buttons() if b.text().replace("&", "") == "Send anyway")
    with qtbot.waitSignal(dialog.tester.finished, timeout=10_000):
        send.click()
    assert started == [True] and "✕" in dialog.result_label.text()
    dialog.test_button.click()  # asked once per URL
    assert dialog.pending_question is None and started == [True, True]
    dialog.tester.shutdown()

    for url, warns in (("https://192.0.2.10", False), ("http://localhost:8765", False),
                       ("http://[::1]:1", False), ("http://10.1.2.3", True)):
        assert needs_plain_http_warning(url, "t") is warns, url
        assert not needs_plain_http_warning(url, "")
    assert is_loopback_url("http://127.0.0.5:1") and not is_loopback_url("http://gpu.example")


def test_connect_remembers_the_server_and_keeps_the_token_out_of_the_settings_file(
        make_dialog, qtbot, settings, keyring_backend, tmp_path):
    dialog = make_dialog()
    requests: list[ConnectionRequest] = []
    dialog.connect_requested.connect(requests.append)
    dialog.url_combo.setEditText("https://GPU.example:8765/")
    dialog.token_edit.setText("tok-9f8e7d")
    assert dialog.storage_label.text().startswith("The token is kept in the system keyring")
    dialog.connect_button.click()
    assert requests == [ConnectionRequest("https://gpu.example:8765", "tok-9f8e7d", "")]
    assert not dialog.isVisible()
    assert [p.url for p in settings.server_profiles()] == ["https://gpu.example:8765"]
    assert settings.active_server == "https://gpu.example:8765"
    settings.sync()
    assert "tok-9f8e7d" not in (tmp_path / "settings.ini").read_text()
    assert "tok-9f8e7d" in keyring_backend.passwords.values()


def test_recent_servers_fill_in_their_token_and_certificate_choice(qtbot, settings, tokens, tmp_path):
    ca = tmp_path / "team-ca.pem"
    settings.remember_server(ServerProfile("https://b.example", ca_file=str(ca)))
    settings.remember_server(ServerProfile("https://a.example", name="Lab"))
    tokens.set("https://a.example", "token-a")
    tokens.set("https://b.example", "token-b")
    dialog = ConnectDialog(settings, tokens, current_url="https://b.example")
    qtbot.addWidget(dialog)
    items = [dialog.url_combo.itemText(i) for i in range(dialog.url_combo.count())]
    assert items == ["Lab — https://a.example", "https://b.example"]
    assert dialog.url_text() == "https://b.example"
    assert dialog.token_edit.text() == "token-b"
    assert dialog.ca_file_radio.isChecked() and dialog.ca_file_edit.text() == str(ca)
    dialog.url_combo.setCurrentIndex(0)
    assert dialog.url_text() == "https://a.example"
    assert dialog.token_edit.text() == "token-a" and dialog.system_certs_radio.isChecked()


def test_without_a_secure_keyring_the_dialog_says_tokens_last_until_quit(qtbot, settings):
    from keyring.backends import fail

    dialog = ConnectDialog(settings, TokenStore(fail.Keyring()))
    qtbot.addWidget(dialog)
    assert "memory only" in dialog.storage_label.text()
    assert "forgotten when Training Studio quits" in dialog.storage_label.text()


def test_https_uses_the_system_certificates_or_only_the_chosen_ca_file(make_dialog, qtbot, loop, server,
                                                                      tmp_path):
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    proxy = TlsProxy(urlsplit(server.url).port, cert, key).start()
    try:
        dialog = make_dialog()
        dialog.url_combo.setEditText(proxy.url)
        dialog.token_edit.setText(server.token)
        assert dialog.tls_group.isEnabled()
        result = run_test_connection(qtbot, dialog)  # the system does not know our test CA
        assert result.startswith("✕ The server's certificate could not be verified")
        assert "choose the CA file" in result

        dialog.ca_file_edit.setText(str(ca))
        assert dialog.ca_file_radio.isChecked()
        result = run_test_connection(qtbot, dialog)
        assert result.startswith("✓ Connected to Training Studio server"), result

        not_pem = tmp_path / "notes.txt"
        not_pem.write_text("this is not a certificate")
        dialog.ca_file_edit.setText(str(not_pem))
        dialog.test_button.click()
        assert "holds no usable PEM certificate" in dialog.result_label.text()
        dialog.ca_file_edit.setText(str(tmp_path / "missing.pem"))
        dialog.test_button.click()
        assert "does not exist" in dialog.result_label.text()
    finally:
        proxy.stop()
    with pytest.raises(ValueError, match="does not exist"):
        tls_context(str(tmp_path / "missing.pem"))


def test_the_switcher_moves_the_app_to_another_server_and_back_to_the_local_one(harness, qtbot, server_factory,
                                                                                tmp_path):
    first = server_factory("first", extra_args=["--cancel-grace", "1"])
    second = server_factory("second", extra_args=["--cancel-grace", "1"])
    jobs: dict[str, str] = {}
    for name, srv in (("first", first), ("second", second)):
        with srv.client() as http:
            jobs[name] = make_job(http, make_dataset(http), f"job on {name}", 1_000_000)["id"]

    store = harness.store(first.url, first.token)
    window = harness.window(store)
    store.start()
    qtbot.waitUntil(lambda: store.model.row_of(jobs["first"]) is not None, timeout=15_000)
    local_dir = tmp_path / "local"
    switcher = ConnectionSwitcher(store.client, store, local_dir, local_args=("--cancel-grace", "1"))
    switched: list[str] = []
    switcher.switched.connect(switched.append)

    harness.run(switcher.switch_to(ConnectionRequest(second.url, second.token)))
    qtbot.waitUntil(lambda: store.model.row_of(jobs["second"]) is not None, timeout=15_000)
    assert store.model.row_of(jobs["first"]) is None  # the old server's rows are gone
    assert switched == [second.url] and store.client.base_url == second.url and not store.is_local
    qtbot.waitUntil(lambda: window.server_label.text().startswith(f"Server: {second.url}"), timeout=5000)

    harness.run(switcher.switch_to(None), timeout_ms=40_000)
    local_manager = store.local
    harness.managers.append(local_manager)  # stopped at teardown like the harness's own
    qtbot.waitUntil(lambda: store.connected and window.server_label.text().startswith("Local server: "),
                    timeout=30_000)
    assert store.is_local and store.model.rowCount() == 0 and switched[-1] == ""
    assert (local_dir / "server.json").exists()

    # Server › Stop local server, then connect elsewhere: the "stopped" state does not follow along.
    store.stop_local_server()
    qtbot.waitUntil(lambda: store.last_failure is not None and store.last_failure[0].value == "stopped",
                    timeout=20_000)
    harness.run(switcher.switch_to(ConnectionRequest(second.url, second.token)))
    qtbot.waitUntil(lambda: store.model.row_of(jobs["second"]) is not None, timeout=15_000)
    assert store.last_failure is None and store.connected

    bad = ConnectionRequest("https://127.0.0.1:1", "t", ca_file=str(tmp_path / "missing.pem"))
    failures: list[str] = []
    switcher.failed.connect(failures.append)
    harness.run(switcher.switch_to(bad))
    assert failures and "does not exist" in failures[0]
    assert store.client.base_url == second.url and store.model.row_of(jobs["second"]) is not None  # unchanged


def test_file_connect_to_server_switches_the_running_window(harness, qtbot, server_factory, settings, tokens,
                                                           keyring_backend):
    from training_studio.ui.desktop import install_desktop

    first = server_factory("first", extra_args=["--cancel-grace", "1"])
    second = server_factory("second", extra_args=["--cancel-grace", "1"])
    with second.client() as http:
        wanted = make_job(http, make_dataset(http), "on the second server", 1_000_000)["id"]
    store = harness.store(first.url, first.token)
    window = harness.window(store)
    desktop = install_desktop(window, store, store.client, settings=settings, tokens=tokens, data_dir=None,
                              log_file=None, tray_available=False)
    store.start()
    qtbot.waitUntil(lambda: store.connected, timeout=15_000)

    desktop.connect_action.trigger()
    dialog = desktop.dialog
    assert isinstance(dialog, ConnectDialog) and dialog.isVisible()
    dialog.url_combo.setEditText(second.url)
    dialog.token_edit.setText(second.token)
    dialog.connect_button.click()
    qtbot.waitUntil(lambda: store.model.row_of(wanted) is not None, timeout=20_000)
    assert store.client.base_url == second.url and desktop.dialog is None
    assert settings.active_server == second.url
    assert keyring_backend.passwords[("training-studio", second.url)] == second.token
    qtbot.waitUntil(lambda: window.server_label.text().startswith(f"Server: {second.url}"), timeout=5000)


def test_a_memory_only_token_is_announced_after_connecting(harness, qtbot, server, settings):
    from keyring.backends import fail

    from training_studio.ui.desktop import install_desktop

    store = harness.store("http://127.0.0.1:9", timeout=1.0)
    window = harness.window(store)
    desktop = install_desktop(window, store, store.client, settings=settings, tokens=TokenStore(fail.Keyring()),
                              data_dir=None, log_file=None, tray_available=False)
    dialog = desktop.open_connect()
    dialog.url_combo.setEditText(server.url)
    dialog.token_edit.setText(server.token)
    dialog.connect_button.click()
    qtbot.waitUntil(lambda: store.connected and store.client.base_url == server.url, timeout=15_000)
    # Status-bar messages are passing notices of the window (issue 15).
    qtbot.waitUntil(lambda: any("memory only" in n.text for n in window.notices.notices), timeout=5000)
    assert next(n for n in window.notices.notices if "memory only" in n.text).text.startswith(
        f"Switched to {server.url}.")
