"""The Settings dialog edits AppSettings, and forgetting a server also removes its token from the keyring."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QDialogButtonBox

from training_studio.ui.dialogs.settings_dialog import SettingsDialog
from training_studio.ui.secrets import TokenStore
from training_studio.ui.settings import AppSettings, ServerProfile
from tests.ui.keyring_backends import MemoryKeyring


@pytest.fixture
def settings(tmp_path):
    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


def test_ok_writes_interval_notifications_and_forgets_servers_with_their_tokens(qtbot, settings, tmp_path):
    backend = MemoryKeyring()
    tokens = TokenStore(backend)
    for url in ("https://a.example", "https://b.example"):
        settings.remember_server(ServerProfile(url))
        tokens.set(url, f"token for {url}")
    settings.set_active_server("https://b.example")
    dialog = SettingsDialog(settings, tokens, log_file=tmp_path / "logs" / "training-studio.log")
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.refresh_spin.value() == 5.0 and dialog.notify_check.isChecked()
    assert str(tmp_path / "logs" / "training-studio.log") in dialog.files_label.text()
    assert "system keyring" in dialog.tokens_label.text()
    applied: list[bool] = []
    dialog.applied.connect(lambda: applied.append(True))

    dialog.refresh_spin.setValue(2.5)
    dialog.notify_check.setChecked(False)
    assert not dialog.forget_button.isEnabled()
    dialog.servers_list.setCurrentRow(0)  # b.example: the most recent
    dialog.forget_button.click()
    assert settings.refresh_interval == 5.0  # nothing is written before OK
    dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()

    assert applied == [True] and not dialog.isVisible()
    assert settings.refresh_interval == 2.5 and settings.notifications_enabled is False
    assert [p.url for p in settings.server_profiles()] == ["https://a.example"]
    assert settings.active_server == ""
    assert list(backend.passwords) == [("training-studio", "https://a.example")]


def test_cancel_changes_nothing_and_layout_reset_happens_only_on_ok(qtbot, settings):
    settings.qsettings.setValue("window/geometry", b"\x01\x02")
    dialog = SettingsDialog(settings, TokenStore(MemoryKeyring()))
    qtbot.addWidget(dialog)
    dialog.refresh_spin.setValue(60)
    dialog.reset_layout_button.click()
    assert not dialog.reset_layout_button.isEnabled()
    dialog.reject()
    assert settings.refresh_interval == 5.0 and settings.qsettings.contains("window/geometry")

    dialog = SettingsDialog(settings, TokenStore(MemoryKeyring()))
    qtbot.addWidget(dialog)
    dialog.reset_layout_button.click()
    dialog.apply_and_close()
    assert not settings.qsettings.contains("window/geometry")


def test_the_spin_box_cannot_go_outside_the_allowed_interval(qtbot, settings):
    dialog = SettingsDialog(settings, TokenStore(MemoryKeyring()))
    qtbot.addWidget(dialog)
    dialog.refresh_spin.setValue(0)
    assert dialog.refresh_spin.value() == 1.0
    dialog.refresh_spin.setValue(10_000)
    assert dialog.refresh_spin.value() == 300.0


def test_an_empty_server_list_says_how_a_server_gets_there(qtbot, settings):
    settings.remember_server(ServerProfile("https://a.example"))
    dialog = SettingsDialog(settings, TokenStore(MemoryKeyring()))
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.servers_list.isVisible() and not dialog.no_servers_label.isVisible()
    dialog.servers_list.setCurrentRow(0)
    dialog.forget_button.click()
    # The last one forgotten: the text instead of a blank box and a Forget button with nothing to forget.
    assert dialog.no_servers_label.isVisible()
    assert "Connect to server" in dialog.no_servers_label.text()
    assert not dialog.servers_list.isVisible() and not dialog.forget_button.isVisible()


def test_a_new_user_s_settings_explain_the_empty_server_list(qtbot, settings):
    dialog = SettingsDialog(settings, TokenStore(MemoryKeyring()))
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.no_servers_label.isVisible() and not dialog.servers_list.isVisible()
