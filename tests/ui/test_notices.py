"""Notices that come and go (issue 15): information goes by itself, failures stay until dismissed,
several finished jobs coalesce into one notice, notices live in the status bar (they cover and push
nothing), and a status-bar message or a "Training job … created" notice does not linger.

Each wait is on a positive signal (the notice's `dismissed`), with a short notice time set for the test.
"""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from training_studio.contract.models import JobStatus, TrainingJob
from training_studio.ui.notifications import Notifier, NoticeGroup, coalesced_text, post_notice


def _window(harness):
    store = harness.store("http://127.0.0.1:9")  # never started: jobs are put in the model directly
    window = harness.window(store)
    window.resize(700, 500)
    return store, window


def _finish(store, notifier, job_id: str, name: str, status: JobStatus, error: str | None = None) -> None:
    store.model.update_job(TrainingJob(id=job_id, name=name, status=JobStatus.RUNNING, created_at="t"))
    notifier.watcher.scan()
    store.model.update_job(TrainingJob(id=job_id, name=name, status=status, created_at="t", error=error))
    notifier.watcher.scan()


def test_information_goes_by_itself_and_a_failure_stays_until_dismissed(harness, qtbot):
    store, window = _window(harness)
    area = window.notices
    area.seconds = 0.2  # the test's short setting (the app's is a few seconds)
    notifier = Notifier(window, store, tray_available=False)
    _finish(store, notifier, "f", "broken run", JobStatus.FAILED, "RuntimeError: out of memory")
    failure = area.notices[0]
    assert failure.group.failed and "out of memory" in failure.text
    _finish(store, notifier, "c", "good run", JobStatus.COMPLETED)
    done = next(notice for notice in area.notices if not notice.group.failed)
    assert done.isVisibleTo(window) and "“good run” completed" in done.text
    with qtbot.waitSignal(done.dismissed, timeout=10_000):
        pass
    # The information went; the failure, posted before it, is still there.
    assert area.notices == [failure] and failure.isVisibleTo(window)
    with qtbot.waitSignal(failure.dismissed, timeout=5000):
        failure.close_button.click()
    assert area.notices == []


def test_several_finished_jobs_coalesce_into_one_notice(harness, qtbot):
    store, window = _window(harness)
    area = window.notices
    area.seconds = 60
    notifier = Notifier(window, store, tray_available=False)
    for index in range(3):
        _finish(store, notifier, f"j{index}", f"run {index}", JobStatus.COMPLETED)
    for index in range(2):
        _finish(store, notifier, f"x{index}", f"bad {index}", JobStatus.FAILED, "boom")
    assert len(area.notices) == 2
    completed = next(n for n in area.notices if not n.group.failed)
    failed = next(n for n in area.notices if n.group.failed)
    assert completed.text == "3 jobs completed" and "3 jobs completed" in completed.message_label.full_text()
    assert failed.text == "2 jobs failed"
    assert completed.show_button.text().replace("&", "") == "Show jobs"
    assert "run 0" in completed.message_label.toolTip() and "run 2" in completed.message_label.toolTip()
    with qtbot.waitSignal(area.show_requested, timeout=5000) as shown:
        completed.show_button.click()
    assert shown.args == ["j2"]  # the newest of them
    assert coalesced_text(NoticeGroup("k", False, ["only one"], [], "completed")) == "only one"


def test_notices_cover_and_push_nothing(harness, qtbot):
    store, window = _window(harness)
    area = window.notices
    area.seconds = 60
    qtbot.waitExposed(window)
    tabs_before = window.tabs.geometry()
    bar = window.statusBar()
    bar_before = bar.geometry()
    notifier = Notifier(window, store, tray_available=False)
    for index in range(3):
        _finish(store, notifier, f"j{index}", f"a long name for run number {index} " * 3, JobStatus.COMPLETED)
    _finish(store, notifier, "x", "bad", JobStatus.FAILED, "a very long reason " * 30)
    qtbot.waitUntil(lambda: all(n.isVisible() for n in area.notices), timeout=5000)
    assert window.tabs.geometry() == tabs_before and bar.geometry() == bar_before
    for notice in area.notices:  # inside the status bar, below the content
        top_left = notice.mapTo(window, notice.rect().topLeft())
        assert top_left.y() >= bar.geometry().top()
        assert notice.geometry().height() <= bar.height()


def test_status_bar_messages_and_created_notices_do_not_linger(harness, qtbot):
    store, window = _window(harness)
    area = window.notices
    area.seconds = 0.2
    window.statusBar().showMessage("Switched to the local server.", 20_000)
    assert window.statusBar().currentMessage() == ""  # it became a notice instead of hiding the others
    notice = area.notices[-1]
    assert notice.text == "Switched to the local server."
    with qtbot.waitSignal(notice.dismissed, timeout=10_000):
        pass

    # A panel (the Datasets tab after Train…) posts "created" to the window's notices: it goes by itself.
    panel = QWidget()
    QVBoxLayout(panel).addWidget(QLabel("a tab"))
    window.add_panel("Elsewhere", lambda: panel)
    assert post_notice(panel, "Training job “x” created; it is selected in the Jobs tab.")
    created = area.notices[-1]
    window.show_panel("Elsewhere")
    with qtbot.waitSignal(created.dismissed, timeout=10_000):
        pass
    assert area.notices == []
    assert not post_notice(QWidget(), "no window with notices")
