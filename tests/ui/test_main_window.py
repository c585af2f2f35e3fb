"""The main window end to end: real server processes, real jobs on the built-in trainer, real sockets."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from training_studio.client import read_server_info
from training_studio.contract.models import JobStatus
from training_studio.ui.jobs.model import JobColumn, JobRole
from training_studio.ui.main_window import FailedPanel
from tests.support.faulty_server import Reply, job_json
from tests.support.jobs import job_status, wait_job
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job, wait_status

JOBS = ("GET", "/api/training/jobs")


def cell(model, job_id: str, column: JobColumn, role=Qt.ItemDataRole.DisplayRole):
    row = model.row_of(job_id)
    return None if row is None else model.index(row, int(column)).data(role)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_window_shows_at_once_then_live_jobs_from_its_own_local_server(harness, qtbot, tmp_path, qtmodeltester,
                                                                         stall_probe):
    data_dir = tmp_path / "data"
    store = harness.store(data_dir=data_dir, extra_server_args=("--cancel-grace", "1", "--concurrency", "2"))
    window = harness.window(store)
    qtmodeltester.check(store.model)
    store.start()
    panel = window.jobs_panel
    # The window is up before the server is: it says so instead of waiting.
    assert window.server_label.text() == "Starting local server…"
    assert panel.empty_label.text() == "Starting local server…" and panel.empty_label.isVisible()

    qtbot.waitUntil(lambda: window.server_label.text().startswith("Local server: http://127.0.0.1:"),
                    timeout=30_000)
    qtbot.waitUntil(lambda: panel.empty_label.text().startswith("No active training jobs"), timeout=10_000)
    info = read_server_info(data_dir)
    assert info is not None and info.url in window.server_label.text()

    http = sync_client(info.url, info.token)
    dataset = make_dataset(http)
    long_job = make_job(http, dataset, "long run", 1_000_000)
    stall_probe.reset()  # the test's own blocking HTTP calls above are not the app's
    qtbot.waitUntil(lambda: cell(store.model, long_job["id"], JobColumn.STATUS, JobRole.STATUS)
                    == JobStatus.RUNNING, timeout=15_000)
    assert panel.table.isVisible()
    first_progress = cell(store.model, long_job["id"], JobColumn.PROGRESS, JobRole.PROGRESS)
    qtbot.waitUntil(lambda: cell(store.model, long_job["id"], JobColumn.PROGRESS, JobRole.PROGRESS)
                    > first_progress, timeout=15_000)
    elapsed_before = cell(store.model, long_job["id"], JobColumn.ELAPSED, JobRole.ELAPSED_SECONDS)
    qtbot.waitUntil(lambda: cell(store.model, long_job["id"], JobColumn.ELAPSED, JobRole.ELAPSED_SECONDS)
                    >= elapsed_before + 1.0, timeout=10_000)

    short_job = make_job(http, dataset, "short run", 40)
    gap_so_far = stall_probe.longest_gap
    stall_probe.reset()
    qtbot.waitUntil(lambda: cell(store.model, short_job["id"], JobColumn.STATUS, JobRole.STATUS)
                    == JobStatus.COMPLETED, timeout=30_000)
    assert cell(store.model, short_job["id"], JobColumn.STATUS, JobRole.DISPLAY_STATUS) == "Completed"
    assert cell(store.model, short_job["id"], JobColumn.NAME, JobRole.IS_FINISHED) is True
    assert "1 finished" in panel.counts_label.text()
    panel.clear_action.trigger()
    assert store.model.row_of(short_job["id"]) is None and store.model.row_of(long_job["id"]) is not None
    assert max(gap_so_far, stall_probe.longest_gap) < 1.0

    window.close()
    assert not store._refresh_timer.isActive() and not store._tick_timer.isActive()
    # Jobs keep running on the local server after the window closes.
    assert wait_status(http, long_job["id"], {"running"}, timeout=1)["status"] == "running"
    http.close()


def test_cancel_asks_first_and_answering_no_changes_nothing(harness, qtbot, server_factory, monkeypatch):
    server = server_factory(extra_args=["--cancel-grace", "1", "--concurrency", "2"])
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    job = make_job(http, dataset, "keep me", 1_000_000)
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    panel = window.jobs_panel
    store.start()
    qtbot.waitUntil(lambda: cell(store.model, job["id"], JobColumn.STATUS, JobRole.STATUS) == JobStatus.RUNNING,
                    timeout=15_000)
    assert panel.select_job(job["id"])
    assert panel.cancel_action.isEnabled()
    panel.table.setFocus()
    qtbot.keyClick(panel.table, Qt.Key.Key_Delete)  # the Delete key is a cancel shortcut
    # The question is a non-blocking message box (open(), never a nested loop); "Keep running" is the answer.
    assert panel.cancel_confirmation is not None and "keep me" in panel.cancel_confirmation.text()
    panel.confirmation_button("Keep running").click()
    # "No": nothing was sent (a cancel is marked in flight before its request goes) and the job runs on:
    # the server reports steps taken after the answer, still running.
    assert not store.is_cancel_in_flight(job["id"])
    assert cell(store.model, job["id"], JobColumn.STATUS, JobRole.DISPLAY_STATUS) == "Running"
    step_at_no = job_status(http, job["id"])["currentStep"] or 0
    later = wait_job(http, job["id"], lambda state: (state["currentStep"] or 0) > step_at_no)
    assert later["status"] == "running"
    assert cell(store.model, job["id"], JobColumn.STATUS, JobRole.DISPLAY_STATUS) == "Running"

    panel.cancel_action.trigger()
    panel.confirmation_button("Cancel job").click()
    # Shown as cancelling at once, and the action is off while the request is in flight.
    assert cell(store.model, job["id"], JobColumn.STATUS, JobRole.DISPLAY_STATUS) == "Cancelling…"
    assert not panel.cancel_action.isEnabled()
    qtbot.waitUntil(lambda: cell(store.model, job["id"], JobColumn.STATUS, JobRole.STATUS)
                    == JobStatus.CANCELLED, timeout=20_000)
    assert cell(store.model, job["id"], JobColumn.STATUS, JobRole.DISPLAY_STATUS) == "Cancelled"
    assert not panel.cancel_action.isEnabled()
    http.close()


def test_server_killed_shows_banner_keeps_data_and_recovers(harness, qtbot, server_factory, stall_probe):
    port = free_port()
    server = server_factory(extra_args=["--port", str(port)])
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    job = make_job(http, dataset, "survivor", 1_000_000)
    http.close()
    store = harness.store(server.url, server.token, refresh_interval=0.5)
    window = harness.window(store)
    stall_probe.reset()  # the set-up above blocked the test's thread on purpose
    store.start()
    qtbot.waitUntil(lambda: store.model.row_of(job["id"]) is not None, timeout=15_000)

    server.kill()
    qtbot.waitUntil(window.banner.isVisible, timeout=10_000)
    assert "Cannot connect" in window.banner.text and "updated" in window.banner.text
    assert window.banner.button("Retry now") is not None
    assert store.model.row_of(job["id"]) is not None  # the last good data stays
    assert "unreachable" in window.server_label.text()
    def banner_age() -> int:
        found = re.search(r"updated (\d+) s ago", window.banner.text)
        return int(found.group(1)) if found else -1

    first_age = banner_age()
    qtbot.waitUntil(lambda: banner_age() >= first_age + 2, timeout=10_000)  # the age counts up

    assert stall_probe.longest_gap < 1.0  # responsive all through the outage

    server.start()  # same data dir, port and token (this blocks the test's own thread while it starts)
    stall_probe.reset()
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=15_000)
    assert store.model.row_of(job["id"]) is not None
    assert stall_probe.longest_gap < 1.0


def test_local_server_that_dies_is_started_again(harness, qtbot, tmp_path):
    data_dir = tmp_path / "data"
    store = harness.store(data_dir=data_dir, refresh_interval=0.3)
    window = harness.window(store)
    store.start()
    qtbot.waitUntil(lambda: window.server_label.text().startswith("Local server: http"), timeout=30_000)
    first = read_server_info(data_dir)
    os.kill(first.pid, signal.SIGKILL)
    # The remark goes to the one connection banner (issue 15), not to a second banner in the Jobs tab.
    qtbot.waitUntil(lambda: window.banner.isVisible() and "started again" in window.banner.text, timeout=30_000)
    second = read_server_info(data_dir)
    assert second.pid != first.pid
    qtbot.waitUntil(lambda: second.url in window.server_label.text(), timeout=10_000)


@pytest.mark.parametrize("reply, words", [
    (Reply(500, {"error": {"code": "internal", "message": "disk on fire"}}), "HTTP 500: disk on fire"),
    (Reply(200, b'[{"id": "a", '), "not JSON"),
    (Reply(200, [{"id": "a"}]), "does not match the contract"),
])
def test_misbehaving_server_shows_a_banner_not_a_traceback(harness, qtbot, faulty, reply, words):
    faulty.routes[JOBS] = Reply(200, [job_json("a", name="alpha")])
    store = harness.store(faulty.url, "t")
    window = harness.window(store)
    store.start()
    qtbot.waitUntil(lambda: store.model.rowCount() == 1, timeout=5000)
    faulty.routes[JOBS] = reply
    qtbot.waitUntil(window.banner.isVisible, timeout=5000)
    assert words in window.banner.text
    assert window.banner.button("Retry now") is not None
    assert store.model.rowCount() == 1
    faulty.routes[JOBS] = Reply(200, [job_json("a", name="alpha")])
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=5000)


def test_unknown_status_gets_a_neutral_label(harness, qtbot, faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("a", name="odd", status="defrosting")])
    store = harness.store(faulty.url, "t")
    window = harness.window(store)
    store.start()
    qtbot.waitUntil(lambda: store.model.rowCount() == 1, timeout=5000)
    assert cell(store.model, "a", JobColumn.STATUS, JobRole.STATUS) == JobStatus.UNKNOWN
    assert cell(store.model, "a", JobColumn.STATUS, JobRole.DISPLAY_STATUS) == "Unknown"
    window.jobs_panel.select_job("a")
    assert not window.jobs_panel.cancel_action.isEnabled()
    assert not window.banner.isVisible()


def test_wrong_token_offers_reconnect(harness, qtbot, server):
    store = harness.store(server.url, "not-the-token")
    window = harness.window(store)
    store.start()
    qtbot.waitUntil(window.banner.isVisible, timeout=10_000)
    assert "token" in window.banner.text
    assert window.banner.button("Reconnect") is not None
    assert "token rejected" in window.server_label.text()
    store.client.set_connection(server.url, server.token)  # e.g. the user fixed TRAINING_STUDIO_TOKEN
    window.banner.button("Reconnect").click()
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=10_000)


def test_f5_refreshes_now(harness, qtbot, faulty):
    faulty.routes[JOBS] = Reply(200, [])
    store = harness.store(faulty.url, "t", refresh_interval=60)
    window = harness.window(store)
    store.start()
    qtbot.waitUntil(lambda: window.jobs_panel.empty_label.text().startswith("No active training jobs"),
                    timeout=5000)
    qtbot.waitUntil(lambda: not store.is_refreshing, timeout=5000)  # the first one also fetches recent jobs
    count = sum(1 for r in faulty.requests if r[1] == JOBS[1])
    faulty.routes[JOBS] = Reply(200, [job_json("new", name="fresh")])
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: store.model.rowCount() == 1, timeout=5000)
    assert sum(1 for r in faulty.requests if r[1] == JOBS[1]) == count + 1


def test_filter_narrows_and_empty_state_says_so(harness, qtbot, faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("a", name="cats v1"), job_json("b", name="dogs v1",
                                                                              status="queued")])
    store = harness.store(faulty.url, "t")
    window = harness.window(store)
    store.start()
    panel = window.jobs_panel
    qtbot.waitUntil(lambda: store.model.rowCount() == 2, timeout=5000)
    qtbot.keyClicks(panel.filter_edit, "dog")
    assert panel.proxy.rowCount() == 1
    panel.status_combo.setCurrentText("Running")
    assert panel.proxy.rowCount() == 0 and panel.empty_label.text() == "No jobs match the filter"
    panel.filter_edit.clear()
    panel.status_combo.setCurrentText("All statuses")
    assert panel.proxy.rowCount() == 2 and panel.table.isVisible()


def test_a_panel_that_fails_to_build_offers_retry(harness, qtbot, faulty):
    faulty.routes[JOBS] = Reply(200, [])
    store = harness.store(faulty.url, "t")
    window = harness.window(store)
    attempts = []

    def factory():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("datasets backend missing")
        return QLabel("datasets here")

    failed = window.add_panel("Datasets", factory)
    assert isinstance(failed, FailedPanel)
    assert "Failed to load Datasets" in failed.message.text() and "datasets backend missing" in failed.message.text()
    assert window.jobs_panel is not None  # the rest still works
    failed.retry_button.click()
    panel = window.panel("Datasets")
    assert isinstance(panel, QLabel) and window.tabs.indexOf(panel) == 1


def test_screenshot_flag_writes_a_png_and_exits_0(tmp_path, server):
    target = tmp_path / "shot.png"
    env = {**os.environ, "TRAINING_STUDIO_TOKEN": server.token, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-m", "training_studio", "--server", server.url, "--data-dir",
                             str(tmp_path / "gui"), "--screenshot", str(target), "--quit-after", "1.5"],
                            env=env, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    with Image.open(target) as image:
        assert image.format == "PNG" and image.width >= 560 and image.height >= 360
    assert b"Traceback" not in result.stderr


def test_a_failed_cancel_is_shown_and_the_action_comes_back(harness, qtbot, faulty, monkeypatch):
    faulty.routes[JOBS] = Reply(200, [job_json("j1", name="stubborn")])
    faulty.routes[("POST", "/api/training/jobs/j1/cancel")] = Reply(200, {"success": False}, delay=0.3)
    store = harness.store(faulty.url, "t")
    window = harness.window(store)
    panel = window.jobs_panel
    store.start()
    qtbot.waitUntil(lambda: store.model.rowCount() == 1, timeout=5000)
    panel.select_job("j1")
    panel.cancel_action.trigger()
    panel.confirmation_button("Cancel job").click()
    assert not panel.cancel_action.isEnabled()
    qtbot.waitUntil(panel.notice.isVisible, timeout=5000)
    assert "stubborn" in panel.notice.text and "refused to cancel" in panel.notice.text
    assert panel.cancel_action.isEnabled()
    assert cell(store.model, "j1", JobColumn.STATUS, JobRole.DISPLAY_STATUS) == "Running"


def test_text_columns_use_the_text_cell_delegate_and_the_badge_and_bar_keep_theirs(harness, qtbot, faulty):
    from training_studio.ui.jobs.delegates import ProgressBarDelegate, StatusBadgeDelegate, TextCellDelegate

    faulty.routes[JOBS] = Reply(200, [job_json("a", name="alpha")])
    store = harness.store(faulty.url, "t")
    window = harness.window(store)
    store.start()
    qtbot.waitUntil(lambda: store.model.rowCount() == 1, timeout=5000)
    table = window.jobs_panel.table
    delegate_of = {column: type(table.itemDelegateForIndex(table.model().index(0, int(column))))
                   for column in JobColumn}
    assert delegate_of.pop(JobColumn.STATUS) is StatusBadgeDelegate
    assert delegate_of.pop(JobColumn.PROGRESS) is ProgressBarDelegate
    assert set(delegate_of.values()) == {TextCellDelegate}


def test_the_cancel_action_follows_the_selected_jobs_status_through_progress_updates(harness, qtbot, faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("j1", progress=10.0), job_json("j2", progress=5.0)])
    store = harness.store(faulty.url, "t", refresh_interval=60)
    window = harness.window(store)
    panel = window.jobs_panel
    harness.run(store.fetch_active_jobs())
    assert panel.select_job("j1")
    assert panel.cancel_action.isEnabled() and panel.copy_id_action.isEnabled()

    # Progress-only updates (no Status column in the change) leave the actions as they were.
    faulty.routes[JOBS] = Reply(200, [job_json("j1", progress=30.0, currentStep=30), job_json("j2", progress=9.0)])
    harness.run(store.fetch_active_jobs())
    assert cell(store.model, "j1", JobColumn.PROGRESS, JobRole.PROGRESS) == pytest.approx(30.0)
    assert panel.cancel_action.isEnabled() and panel.selected_job().id == "j1"

    # A status change of the selected job reaches the actions through the model's dataChanged alone.
    store.model.update_job(store.model.job_at(store.model.row_of("j1")).model_copy(
        update={"status": JobStatus.COMPLETED, "progress": 100.0}))
    assert not panel.cancel_action.isEnabled() and panel.copy_id_action.isEnabled()
    # ... and so does "Cancelling…" on another, now selected, job.
    assert panel.select_job("j2") and panel.cancel_action.isEnabled()
    store.model.set_cancelling("j2", True)
    assert not panel.cancel_action.isEnabled()
    store.model.set_cancelling("j2", False)
    assert panel.cancel_action.isEnabled()
