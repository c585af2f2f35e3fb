"""StatusTextLabel: the status bar's connection text gives way to the notices beside it (eliding its middle,
keeping its start and its state), and takes its whole width back when they go; `text()` stays whole."""

from __future__ import annotations

from PySide6.QtWidgets import QMainWindow

from training_studio.ui.notifications import NoticeArea
from training_studio.ui.status_label import MIN_STATUS_TEXT_WIDTH, StatusTextLabel

TEXT = "Local server: http://127.0.0.1:43925 (version 0.1.0) — live updates"
LONG = "“pixel-art sprites · Built-in linear VAE (CPU, no downloads)” completed."
SHORT = "“pixel-art sprites” completed."


def _window(qtbot, width: int) -> tuple[QMainWindow, StatusTextLabel, NoticeArea]:
    window = QMainWindow()
    qtbot.addWidget(window)
    label = StatusTextLabel(window)
    label.setText(TEXT)
    window.statusBar().addPermanentWidget(label)
    notices = NoticeArea(window.statusBar(), seconds=60)
    label.give_way_to(notices)
    window.resize(width, 300)
    window.show()
    qtbot.waitExposed(window)
    return window, label, notices


def test_the_connection_text_gives_way_to_a_notice_and_comes_back_whole(qtbot):
    window, label, notices = _window(qtbot, 680)
    assert label.shown_text() == TEXT

    notice = notices.post(SHORT, key="jobs completed", noun="completed", job_id="job-1")
    # The notice gets the room it asks for (the status bar alone would have shrunk both by the same
    # amount); the connection text gives up only what it must, and keeps its start and its state.
    qtbot.waitUntil(lambda: notice.message_label.text() == notice.message_label.full_text()
                    and notice.message_label.width() >= notice.message_label.sizeHint().width(), timeout=5_000)
    shown = label.shown_text()
    assert shown != TEXT and shown.startswith("Local server") and shown.endswith("live updates")
    assert label.width() > MIN_STATUS_TEXT_WIDTH
    assert label.text() == TEXT

    notice.dismiss()
    qtbot.waitUntil(lambda: label.shown_text() == TEXT, timeout=5_000)


def test_in_a_narrow_window_it_stops_at_its_minimum_and_the_notices_elide(qtbot):
    window, label, notices = _window(qtbot, 640)
    notices.post("Training job “pixel-art sprites · Built-in linear VAE (CPU, no downloads)” created.",
                 key="status")
    second = notices.post(LONG, key="jobs completed", noun="completed", job_id="job-1")
    qtbot.waitUntil(lambda: label.width() == MIN_STATUS_TEXT_WIDTH, timeout=5_000)
    assert second.message_label.text() != second.message_label.full_text()  # elided, whole in its tooltip
    assert label.shown_text().endswith("live updates")
