"""Notifications: a job that completes or fails while the app watches is announced, naming the job and
the failure reason; in the window where there is no system tray (this machine, offscreen), and through
the tray's message otherwise. Real server, real trainer subprocesses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QSystemTrayIcon

from training_studio.contract.models import JobStatus, TrainingJob
from training_studio.ui.notifications import JobFinishWatcher, Notifier, app_icon, job_notice
from tests.ui.jobs_helpers import make_dataset, wait_status

GATED = Path(__file__).parent / "trainers" / "gated.py"
GATED_PRESET = "gated"


def _presets(control_dir: Path) -> str:
    command = json.dumps([sys.executable, str(GATED), str(control_dir), "{params.gate}", "{params.outcome}"])
    params = "".join(f'[[preset.params]]\nname = "{name}"\ntype = "str"\ndefault = "{default}"\n'
                     f'description = "{name}"\n' for name, default in (("gate", "go"), ("outcome", "complete")))
    return (f'[[preset]]\nid = "{GATED_PRESET}"\nname = "Gated test trainer"\ncommand = {command}\n'
            f'progress = "jsonl"\nloss_key = "loss"\n{params}')


@pytest.fixture
def gated_server(server_factory, tmp_path):
    control = tmp_path / "control"
    control.mkdir()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "presets.toml").write_text(_presets(control))
    srv = server_factory("data", extra_args=["--cancel-grace", "1", "--concurrency", "3"])
    with srv.client() as http:
        yield srv, http, control


def _start_gated(http, dataset_id: str, name: str, gate: str, outcome: str) -> str:
    response = http.post("/api/training/jobs", json={"name": name, "dataset_id": dataset_id,
                                                     "base_model": GATED_PRESET, "total_steps": 2,
                                                     "params": {"gate": gate, "outcome": outcome}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _status_in_model(store, job_id: str) -> JobStatus | None:
    row = store.model.row_of(job_id)
    job = store.model.job_at(row) if row is not None else None
    return job.status if job is not None else None


def test_without_a_tray_finished_jobs_appear_in_the_window_even_when_minimised(harness, qtbot, gated_server):
    srv, http, control = gated_server
    dataset = make_dataset(http)
    already_done = _start_gated(http, dataset, "finished before the app", "early", "complete")
    (control / "early").touch()
    assert wait_status(http, already_done, {"completed"})["status"] == "completed"

    store = harness.store(srv.url, srv.token)
    window = harness.window(store)
    notifier = Notifier(window, store, tray_available=False)
    assert notifier.tray is None and notifier.toasts is window.notices
    notifier.toasts.seconds = 600  # information stays for this test: it looks at it after both finished
    shown: list = []
    notifier.shown.connect(shown.append)
    store.start()
    qtbot.waitUntil(lambda: store.connected, timeout=15_000)

    good = _start_gated(http, dataset, "portrait LoRA", "good", "complete")
    bad = _start_gated(http, dataset, "landscape LoRA", "bad", "fail")
    qtbot.waitUntil(lambda: _status_in_model(store, good) == JobStatus.RUNNING
                    and _status_in_model(store, bad) == JobStatus.RUNNING, timeout=20_000)
    window.showMinimized()
    assert window.isMinimized()
    (control / "good").touch()
    (control / "bad").touch()
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=20_000)

    by_job = {notice.job_id: notice for notice in shown}
    assert set(by_job) == {good, bad}  # the job finished before the app started is not news
    assert by_job[good].title == "Training completed" and "“portrait LoRA” completed" in by_job[good].message
    assert by_job[bad].title == "Training failed" and by_job[bad].failed
    assert "“landscape LoRA” failed: RuntimeError: CUDA out of memory" in by_job[bad].message

    # In the status bar: the completion and the failure, each one notice; the failure stays until dismissed.
    area = notifier.toasts
    notices = {notice.group.key: notice for notice in area.notices}
    assert set(notices) == {"jobs completed", "jobs failed"}
    failed = notices["jobs failed"]
    assert "CUDA out of memory" in failed.text and failed.isVisibleTo(window)

    # "Show job" brings the window back and selects that job in the Jobs tab.
    failed.show_button.click()
    qtbot.waitUntil(lambda: not window.isMinimized(), timeout=5000)
    panel = window.jobs_panel
    assert window.tabs.currentWidget() is panel
    assert panel.selected_job() is not None and panel.selected_job().id == bad

    with qtbot.waitSignal(failed.dismissed, timeout=5000):
        failed.close_button.click()
    assert all(not notice.group.failed for notice in area.notices)
    store.request_refresh()  # more refreshes of finished jobs announce nothing again
    qtbot.waitUntil(lambda: not store.is_refreshing, timeout=5000)
    assert len(shown) == 2


def test_show_job_clears_a_filter_that_hides_the_job(harness, qtbot):
    store = harness.store("http://127.0.0.1:9")  # never started: rows are put in the model directly
    window = harness.window(store)
    notifier = Notifier(window, store, tray_available=False)
    store.model.update_job(TrainingJob(id="j1", name="alpha", status=JobStatus.FAILED, created_at="2026-01-01T00:00:00Z"))
    window.jobs_panel.filter_edit.setText("no such name")
    assert notifier.show_job("j1") is True
    assert window.jobs_panel.filter_edit.text() == ""
    assert window.jobs_panel.selected_job().id == "j1"


def test_the_watcher_reports_only_transitions_from_active_to_completed_or_failed(harness, qtbot):
    store = harness.store("http://127.0.0.1:9")
    watcher = JobFinishWatcher(store)
    model = store.model

    def job(job_id: str, status: JobStatus, error: str | None = None) -> TrainingJob:
        return TrainingJob(id=job_id, name=f"job {job_id}", status=status, created_at="2026-01-01T00:00:00Z",
                           total_steps=500, error=error)

    model.update_job(job("a", JobStatus.RUNNING))
    model.update_job(job("b", JobStatus.QUEUED))
    model.update_job(job("c", JobStatus.RUNNING))
    model.update_job(job("old", JobStatus.COMPLETED))
    assert watcher.scan() == []
    model.update_job(job("a", JobStatus.COMPLETED))
    model.update_job(job("b", JobStatus.FAILED, "disk\nfull"))
    model.update_job(job("c", JobStatus.CANCELLED))  # the user's own doing: not announced
    notices = watcher.scan()
    assert [(n.job_id, n.title) for n in notices] == [("a", "Training completed"), ("b", "Training failed")]
    assert notices[0].message == "“job a” completed after 500 steps."
    assert notices[1].message == "“job b” failed: disk full"
    assert watcher.scan() == []  # each transition once


def test_tray_messages_are_built_from_the_job():
    long_reason = "x" * 1000
    failed = job_notice(TrainingJob(id="f", name="big run", status=JobStatus.FAILED, created_at="t",
                                    error=long_reason))
    assert failed is not None and failed.failed and len(failed.message) < 400 and failed.message.endswith("…")
    silent = job_notice(TrainingJob(id="n", name="mystery", status=JobStatus.FAILED, created_at="t"))
    assert silent is not None and "no reason was given by the server" in silent.message
    for status in (JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.UNKNOWN):
        assert job_notice(TrainingJob(id="x", name="n", status=status, created_at="t")) is None


def test_the_tray_path_shows_the_message_and_its_click_shows_the_job(harness, qtbot):
    # This machine has no tray, so the tray's own signals are emitted as the tray would emit them.
    store = harness.store("http://127.0.0.1:9")
    window = harness.window(store)
    notifier = Notifier(window, store, tray_available=True)
    assert notifier.tray is not None and notifier.toasts is None
    assert not notifier.tray.icon().isNull() and notifier.tray.toolTip().startswith("Training Studio\n")
    shown: list = []
    notifier.shown.connect(shown.append)
    model = store.model
    model.update_job(TrainingJob(id="t1", name="night run", status=JobStatus.RUNNING, created_at="t"))
    notifier.watcher.scan()
    model.update_job(TrainingJob(id="t1", name="night run", status=JobStatus.FAILED, created_at="t",
                                 error="the trainer was killed by SIGKILL"))
    window.showMinimized()
    assert window.isMinimized()
    notifier.watcher.scan()
    assert [n.message for n in shown] == ["“night run” failed: the trainer was killed by SIGKILL"]
    assert notifier.last_notice is shown[0]
    notifier.tray.messageClicked.emit()
    qtbot.waitUntil(lambda: not window.isMinimized(), timeout=5000)
    assert window.jobs_panel.selected_job().id == "t1"
    window.showMinimized()
    notifier.tray.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    qtbot.waitUntil(lambda: not window.isMinimized(), timeout=5000)
    notifier.shutdown()
    assert notifier.tray is None


def test_notices_can_be_switched_off(harness):
    store = harness.store("http://127.0.0.1:9")
    window = harness.window(store)
    notifier = Notifier(window, store, tray_available=False, enabled=False)
    shown: list = []
    notifier.shown.connect(shown.append)
    store.model.update_job(TrainingJob(id="q", name="quiet", status=JobStatus.RUNNING, created_at="t"))
    notifier.watcher.scan()
    store.model.update_job(TrainingJob(id="q", name="quiet", status=JobStatus.COMPLETED, created_at="t"))
    assert len(notifier.watcher.scan()) == 1  # still watched...
    assert shown == [] and notifier.toasts.notices == []  # ...but not shown
    notifier.enabled = True
    store.model.update_job(TrainingJob(id="r", name="loud", status=JobStatus.RUNNING, created_at="t"))
    notifier.watcher.scan()
    store.model.update_job(TrainingJob(id="r", name="loud", status=JobStatus.COMPLETED, created_at="t"))
    notifier.watcher.scan()
    assert [n.job_id for n in shown] == ["r"] and len(notifier.toasts.notices) == 1


def test_the_app_icon_ships_in_several_sizes():
    icon = app_icon()
    assert not icon.isNull()
    assert {size.width() for size in icon.availableSizes()} >= {16, 32, 256}
