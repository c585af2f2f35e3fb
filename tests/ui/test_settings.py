"""AppSettings: what the app remembers between runs, written to a real (temporary) QSettings file."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QTableView, QVBoxLayout, QWidget

from training_studio.ui.settings import (
    DEFAULT_REFRESH_INTERVAL_S,
    MAX_PROFILES,
    AppSettings,
    ServerProfile,
    normalise_server_url,
)


@pytest.fixture
def settings_path(tmp_path):
    return tmp_path / "settings.ini"


def make_settings(path) -> AppSettings:
    return AppSettings(QSettings(str(path), QSettings.Format.IniFormat))


class LayoutWindow(QMainWindow):
    """A window shaped like the app's panels: a splitter holding a table and a label."""

    def __init__(self, columns: int = 4) -> None:
        super().__init__()
        central = QWidget(self)
        layout = QVBoxLayout(central)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, central)
        self.table = QTableView(self.splitter)
        model = QStandardItemModel(3, columns, self.table)
        self.table.setModel(model)
        self.table.setSortingEnabled(True)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(QLabel("details", self.splitter))
        layout.addWidget(self.splitter)
        self.setCentralWidget(central)


def test_window_geometry_splitter_and_columns_come_back_in_a_new_window(qtbot, settings_path):
    first = LayoutWindow()
    qtbot.addWidget(first)
    first.resize(700, 450)  # inside the offscreen screen (800×600)
    first.show()
    first.splitter.setSizes([480, 190])
    header = first.table.horizontalHeader()
    header.resizeSection(1, 217)
    header.moveSection(3, 0)
    first.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)
    saved_sizes = first.splitter.sizes()
    make_settings(settings_path).save_window(first)

    second = LayoutWindow()
    qtbot.addWidget(second)
    second.resize(300, 300)
    assert make_settings(settings_path).restore_window(second) is True
    second.show()
    assert (second.width(), second.height()) == (700, 450)
    assert second.splitter.sizes() == saved_sizes
    restored = second.table.horizontalHeader()
    assert restored.sectionSize(1) == 217
    assert restored.visualIndex(3) == 0
    assert (restored.sortIndicatorSection(), restored.sortIndicatorOrder()) == (2, Qt.SortOrder.DescendingOrder)


def test_a_header_saved_with_another_column_count_keeps_its_defaults(qtbot, settings_path):
    first = LayoutWindow(columns=4)
    qtbot.addWidget(first)
    first.table.horizontalHeader().moveSection(3, 0)
    make_settings(settings_path).save_window(first)

    narrower = LayoutWindow(columns=3)
    qtbot.addWidget(narrower)
    make_settings(settings_path).restore_window(narrower)
    header = narrower.table.horizontalHeader()
    assert [header.logicalIndex(i) for i in range(3)] == [0, 1, 2]
    assert not any(header.isSectionHidden(i) for i in range(3))


def test_nothing_saved_restores_nothing_and_clearing_the_layout_forgets_it(qtbot, settings_path):
    window = LayoutWindow()
    qtbot.addWidget(window)
    settings = make_settings(settings_path)
    assert settings.restore_window(window) is False
    settings.save_window(window)
    assert make_settings(settings_path).restore_window(LayoutWindow()) is True
    settings.clear_window_layout()
    settings.save_window(window)  # the quit after a reset must not write it back
    settings.sync()
    fresh = LayoutWindow()
    qtbot.addWidget(fresh)
    assert make_settings(settings_path).restore_window(fresh) is False


def test_last_folders_per_purpose_fall_back_to_home_when_gone(tmp_path, settings_path):
    images = tmp_path / "images"
    images.mkdir()
    picture = images / "cat.png"
    picture.write_bytes(b"x")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    settings = make_settings(settings_path)
    settings.set_last_folder("import", picture)  # a file: its folder is remembered
    settings.set_last_folder("download", downloads)
    settings.sync()
    again = make_settings(settings_path)
    assert again.last_folder("import") == str(images)
    assert again.last_folder("download") == str(downloads)
    downloads.rmdir()
    from pathlib import Path

    assert again.last_folder("download") == str(Path.home())
    assert again.last_folder("never-used") == str(Path.home())


def test_refresh_interval_is_validated_both_ways(settings_path):
    settings = make_settings(settings_path)
    assert settings.refresh_interval == DEFAULT_REFRESH_INTERVAL_S
    settings.set_refresh_interval(12.5)
    settings.sync()
    assert make_settings(settings_path).refresh_interval == 12.5
    with pytest.raises(ValueError, match="between 1 and 300 seconds"):
        settings.set_refresh_interval(0.1)
    settings.qsettings.setValue("refresh/interval_s", "soon")  # a hand-edited file
    assert settings.refresh_interval == DEFAULT_REFRESH_INTERVAL_S
    settings.qsettings.setValue("refresh/interval_s", 100000)
    assert settings.refresh_interval == DEFAULT_REFRESH_INTERVAL_S


def test_notifications_switch_persists(settings_path):
    settings = make_settings(settings_path)
    assert settings.notifications_enabled is True
    settings.set_notifications_enabled(False)
    settings.sync()
    assert make_settings(settings_path).notifications_enabled is False


def test_server_profiles_most_recent_first_deduplicated_and_capped(settings_path):
    settings = make_settings(settings_path)
    settings.remember_server(ServerProfile("https://a.example:8765"))
    settings.remember_server(ServerProfile("https://b.example", name="GPU box", ca_file="/etc/ca.pem"))
    settings.remember_server(ServerProfile("https://a.example:8765", name="renamed"))
    settings.sync()
    profiles = make_settings(settings_path).server_profiles()
    assert [p.url for p in profiles] == ["https://a.example:8765", "https://b.example"]
    assert profiles[0].name == "renamed" and profiles[1].ca_file == "/etc/ca.pem"
    assert profiles[1].label == "GPU box — https://b.example"
    for n in range(MAX_PROFILES + 3):
        settings.remember_server(ServerProfile(f"http://host{n}:1"))
    assert len(settings.server_profiles()) == MAX_PROFILES
    assert settings.server_profiles()[0].url == f"http://host{MAX_PROFILES + 2}:1"
    settings.forget_server(f"http://host{MAX_PROFILES + 2}:1")
    assert all(p.url != f"http://host{MAX_PROFILES + 2}:1" for p in settings.server_profiles())


def test_unreadable_or_hand_edited_profiles_are_skipped_not_fatal(settings_path):
    settings = make_settings(settings_path)
    settings.qsettings.setValue("servers/profiles", "{not json")
    assert settings.server_profiles() == []
    settings.qsettings.setValue("servers/profiles",
                                '[{"url": "https://ok.example/"}, {"url": "ftp://no"}, 7, {"name": "no url"},'
                                ' {"url": "https://ok.example"}]')
    assert [p.url for p in settings.server_profiles()] == ["https://ok.example"]
    settings.qsettings.setValue("servers/active", "not a url")
    assert settings.active_server == ""
    settings.set_active_server("https://ok.example")
    assert settings.active_server == "https://ok.example"


@pytest.mark.parametrize("text, expected", [
    ("https://Host.example:8765/", "https://host.example:8765"),
    (" HTTP://10.0.0.5:80/api/ ", "http://10.0.0.5:80/api"),
    ("http://[::1]:9000", "http://[::1]:9000"),
])
def test_server_urls_are_normalised(text, expected):
    assert normalise_server_url(text) == expected


@pytest.mark.parametrize("text, message", [
    ("", "Enter the server's address"),
    ("host.example:8765", "has no scheme"),
    ("ftp://host", "use http:// or https://"),
    ("http://host:99999", "not a number between 0 and 65535"),
    ("http://:80", "has no host name"),
    ("http://host/?x=1", "cannot contain"),
    ("https://user:secret@host", "Token field"),
])
def test_bad_server_urls_are_refused_with_a_reason(text, message):
    with pytest.raises(ValueError, match=message):
        normalise_server_url(text)
