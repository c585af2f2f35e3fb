"""The jobs panel with its details pane: batch cancel behind one confirmation, the ETA column, CSV export of the
visible table, opening the pane (Enter, double-click, toggle) and remembering it. Real server subprocesses, real
built-in trainer jobs, real HTTP."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from training_studio.contract.models import JobStatus
from training_studio.ui.jobs.model import JobColumn, JobRole
from training_studio.ui.jobs.panel import JobsPanel
from training_studio.ui.settings import AppSettings
from tests.support.jobs import job_status, wait_job
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job, wait_status

LONG = 1_000_000  # steps: runs for the whole test


def settings_in(path: Path) -> AppSettings:
    return AppSettings(QSettings(str(path), QSettings.Format.IniFormat))


@pytest.fixture
def make_panel(qtbot, tmp_path):
    """A shown JobsPanel on a store (remembering in a temp settings file); its views are stopped at the end."""
    panels: list[JobsPanel] = []

    def make(store, *, settings: AppSettings | None = None, size=(1000, 700)) -> JobsPanel:
        panel = JobsPanel(store, settings=settings if settings is not None else settings_in(tmp_path / "s.ini"))
        qtbot.addWidget(panel)
        panel.resize(*size)
        panel.show()
        qtbot.waitExposed(panel)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.shutdown()


def status_of(store, job_id: str) -> JobStatus | None:
    job = store.model.job(job_id)
    return None if job is None else JobStatus(job.status)


def test_cancel_asks_once_for_five_running_jobs_and_keep_running_cancels_none_of_them(
        harness, qtbot, server_factory, make_panel):
    server = server_factory(extra_args=["--cancel-grace", "1", "--concurrency", "5"])
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    names = [f"portraits {letter}" for letter in "ABCDE"]
    ids = [make_job(http, dataset, name, LONG)["id"] for name in names]
    store = harness.store(server.url, server.token)
    panel = make_panel(store)
    store.start()
    # Five trainers starting on a loaded 2-core machine: a generous wait, on the server's word too.
    qtbot.waitUntil(lambda: all(status_of(store, job_id) == JobStatus.RUNNING for job_id in ids), timeout=90_000)

    panel.table.selectAll()
    assert {job.id for job in panel.selected_jobs()} == set(ids)
    assert panel.cancel_action.isEnabled() and panel.cancel_action.text() == "&Cancel 5 jobs…"
    panel.cancel_action.trigger()
    panel.cancel_action.trigger()  # a second trigger while it is open does not ask again
    box = panel.cancel_confirmation
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert len(panel.findChildren(QMessageBox)) == 1
    for name in names:
        assert name in box.text()
    keep = panel.confirmation_button("Keep running")
    assert keep is not None and panel.confirmation_button("Cancel 5 jobs") is not None
    assert box.defaultButton() is keep and box.escapeButton() is keep  # Enter or Escape keep the jobs

    keep.click()  # answered "no"

    assert panel.cancel_confirmation is None
    assert not any(store.is_cancel_in_flight(job_id) for job_id in ids)
    # Nothing was sent: every job takes further steps on the server after the answer, still running.
    for job_id in ids:
        step = job_status(http, job_id)["currentStep"] or 0
        later = wait_job(http, job_id, lambda state, step=step: (state["currentStep"] or 0) > step, timeout=90)
        assert later["status"] == "running"
    assert all(status_of(store, job_id) == JobStatus.RUNNING for job_id in ids)

    panel.cancel_action.trigger()
    # one question open (the answered one is hidden, awaiting its deleteLater)
    assert panel.cancel_confirmation is not None
    assert [box for box in panel.findChildren(QMessageBox) if box.isVisible()] == [panel.cancel_confirmation]
    panel.confirmation_button("Cancel 5 jobs").click()  # answered "yes"

    assert all(store.is_cancel_in_flight(job_id) or status_of(store, job_id) == JobStatus.CANCELLED
               for job_id in ids)
    # Checked on the server, waiting with the GUI's loop running (the cancels go out from it).
    qtbot.waitUntil(lambda: all(job_status(http, job_id)["status"] == "cancelled" for job_id in ids),
                    timeout=60_000)
    qtbot.waitUntil(lambda: all(status_of(store, job_id) == JobStatus.CANCELLED for job_id in ids), timeout=30_000)
    assert not panel.cancel_action.isEnabled()
    http.close()


def test_one_selected_job_is_asked_about_by_name(harness, qtbot, server_factory, make_panel):
    server = server_factory(extra_args=["--cancel-grace", "1"])
    http = sync_client(server.url, server.token)
    job = make_job(http, make_dataset(http), "keep me", LONG)
    store = harness.store(server.url, server.token)
    panel = make_panel(store)
    store.start()
    qtbot.waitUntil(lambda: status_of(store, job["id"]) == JobStatus.RUNNING, timeout=20_000)
    assert panel.select_job(job["id"])
    panel.table.setFocus()
    qtbot.keyClick(panel.table, Qt.Key.Key_Delete)  # the Delete key is a cancel shortcut
    box = panel.cancel_confirmation
    assert box is not None and "“keep me”" in box.text()
    panel.confirmation_button("Cancel job").click()
    qtbot.waitUntil(lambda: job_status(http, job["id"])["status"] == "cancelled", timeout=30_000)
    http.close()


def test_eta_column_shows_estimating_then_the_servers_estimate(harness, qtbot, server_factory, make_panel):
    server = server_factory()
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    store = harness.store(server.url, server.token)
    panel = make_panel(store)
    store.start()  # connected before the job exists, so the table sees it from its first state on
    qtbot.waitUntil(lambda: store.connected and store.stream_state.value == "live", timeout=20_000)
    job = make_job(http, dataset, "eta run", LONG)
    seen: list[str] = []

    def eta_text() -> str | None:
        row = store.model.row_of(job["id"])
        if row is None:
            return None
        text = panel.proxy.index(row, int(JobColumn.ETA)).data()
        if not seen or seen[-1] != text:
            seen.append(text)
        return text

    store.model.dataChanged.connect(lambda *args: eta_text())
    store.model.rowsInserted.connect(lambda *args: eta_text())
    qtbot.waitUntil(lambda: (eta_text() or "").startswith("in "), timeout=60_000)
    # Running without an estimate first ("estimating…"), then a countdown; never negative.
    assert "estimating…" in seen, seen
    assert seen.index("estimating…") < next(i for i, text in enumerate(seen) if text.startswith("in "))
    assert not any("-" in text or "−" in text for text in seen)
    eta_at = store.model.index(store.model.row_of(job["id"]), 0).data(JobRole.ETA_AT)
    assert isinstance(eta_at, float) and eta_at > store.model.server_now() - 5
    http.post(f"/api/training/jobs/{job['id']}/cancel")
    http.close()


def test_the_exported_csv_is_the_visible_table(harness, qtbot, server_factory, make_panel, tmp_path):
    server = server_factory()
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    finished = [make_job(http, dataset, name, 20) for name in ("alpha one", "beta", "alpha two")]
    for job in finished:
        assert wait_status(http, job["id"], {"completed"}, timeout=60)["status"] == "completed"
    store = harness.store(server.url, server.token)
    panel = make_panel(store)
    store.start()
    qtbot.waitUntil(lambda: all(status_of(store, job["id"]) == JobStatus.COMPLETED for job in finished),
                    timeout=20_000)
    panel.filter_edit.setText("alpha")
    panel.table.setColumnHidden(int(JobColumn.LOSS), True)  # a hidden column is not exported either
    target = tmp_path / "out" / "jobs.csv"
    target.parent.mkdir()
    target.write_text("an older export, longer than the new one " * 100)

    assert panel.export_csv(target)

    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert rows[0] == ["Name", "Status", "Progress", "Step", "Elapsed", "ETA", "Runs on"]
    assert [row[0] for row in rows[1:]] == ["alpha one", "alpha two"]  # filtered, in the table's order
    assert all(row[1:4] == ["Completed", "100%", "20 / 20"] and row[5] == "—" for row in rows[1:])
    shown = [[panel.proxy.index(r, c).data() for c in range(len(JobColumn)) if c != int(JobColumn.LOSS)]
             for r in range(panel.proxy.rowCount())]
    assert rows[1:] == shown
    assert sorted(p.name for p in target.parent.iterdir()) == ["jobs.csv"]  # no temp file left behind
    assert "Saved the jobs table" in panel.notice.text

    bad = tmp_path / "no such folder" / "jobs.csv"
    assert not panel.export_csv(bad)
    assert panel.notice.isVisible() and "Could not save the jobs table" in panel.notice.text
    assert str(bad) in panel.notice.text and not bad.exists()
    http.close()


def test_enter_and_double_click_open_the_details_of_the_row(harness, qtbot, server_factory, make_panel):
    server = server_factory()
    http = sync_client(server.url, server.token)
    job = make_job(http, make_dataset(http), "details please", 20)
    store = harness.store(server.url, server.token)
    panel = make_panel(store)
    store.start()
    qtbot.waitUntil(lambda: store.model.row_of(job["id"]) is not None, timeout=20_000)
    assert not panel.details_visible() and panel.details is None  # not built until first opened

    assert panel.select_job(job["id"])
    panel.table.setFocus()
    qtbot.keyClick(panel.table, Qt.Key.Key_Return)
    assert panel.details_visible() and panel.details_action.isChecked()
    qtbot.waitUntil(lambda: panel.details.overview.value_text("name") == "details please", timeout=5_000)

    panel.details.close_button.click()
    assert not panel.details_visible() and not panel.details_action.isChecked()
    rect = panel.table.visualRect(panel.proxy.index(0, int(JobColumn.NAME)))
    # A real double-click: press and release, then the second press arrives as the double-click.
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert panel.details_visible()
    panel.details_action.trigger()  # the toolbar / View menu toggle
    assert not panel.details_visible()
    http.close()


def test_the_pane_and_its_height_are_remembered_across_a_restart_of_the_panel(harness, qtbot, make_panel, tmp_path):
    settings = settings_in(tmp_path / "remember.ini")
    store = harness.store("http://127.0.0.1:9", None)  # never started: layout only
    panel = make_panel(store, settings=settings, size=(900, 700))
    panel.set_details_visible(True)
    assert settings.details_pane_visible is True
    total = sum(panel.splitter.sizes())
    panel.splitter.moveSplitter(250, 1)  # as a drag of the handle does
    moved = panel.splitter.sizes()
    assert moved[0] == pytest.approx(250, abs=3) and sum(moved) == total
    qtbot.waitUntil(lambda: settings.details_pane_sizes == moved, timeout=5_000)
    panel.shutdown()
    panel.close()

    again = make_panel(store, settings=AppSettings(QSettings(str(tmp_path / "remember.ini"),
                                                             QSettings.Format.IniFormat)), size=(900, 700))
    assert again.details_visible() and again.details_action.isChecked()
    assert again.splitter.sizes() == pytest.approx(moved, abs=3)

    again.set_details_visible(False)
    third = make_panel(store, settings=settings_in(tmp_path / "remember.ini"), size=(900, 700))
    assert not third.details_visible() and third.details is None
    third.set_details_visible(True)  # opens at the remembered height
    assert third.splitter.sizes() == pytest.approx(moved, abs=3)


def test_unreadable_remembered_sizes_read_as_unknown(tmp_path):
    settings = settings_in(tmp_path / "odd.ini")
    for raw in ("[1, 2, 3]", "not json", "[-5, 10]", "[true, 4]", '{"a": 1}'):
        settings.qsettings.setValue("jobs/details_sizes", raw)
        assert settings.details_pane_sizes is None
    settings.qsettings.setValue("jobs/details_visible", "maybe")
    assert settings.details_pane_visible is False
