"""Finished jobs stay reachable (issue 15, item 6), against a real server and real built-in trainers:
Clear finished offers Undo in its notice, Undo brings the rows back and forgets the clear, and the
Finished filter shows the server's finished jobs, cleared from the list or not (fetched from the history
query by the store's Finished-view controller), follows jobs that finish while it is shown, and leaves the
list of active jobs as it was."""

from __future__ import annotations

from PySide6.QtCore import Qt

from training_studio.contract.models import JobStatus
from training_studio.ui.history.wiring import install_history_panel
from training_studio.ui.jobs.model import JobRole
from training_studio.ui.jobs.panel import FINISHED_EMPTY_TEXT, HISTORY_BUTTON_TEXT, STATUS_FILTERS
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job

WAIT_MS = 60_000
LONG = 1_000_000  # steps: runs for the whole test


def filter_index(label: str) -> int:
    return [text for text, _ in STATUS_FILTERS].index(label)


def shown_ids(panel) -> list[str]:
    return [panel.proxy.index(row, 0).data(JobRole.JOB_ID) for row in range(panel.proxy.rowCount())]


def completed(store, job_ids) -> bool:
    return all(store.model.job(j) is not None and store.model.job(j).status is JobStatus.COMPLETED for j in job_ids)


def test_clear_finished_can_be_undone(harness, qtbot, server_factory):
    server = server_factory()
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    store = harness.store(server.url, server.token, refresh_interval=5.0, timeout=4.0)
    window = harness.window(store)
    store.start()
    jobs = [make_job(http, dataset, f"done {n}", 5)["id"] for n in range(2)]
    qtbot.waitUntil(lambda: completed(store, jobs), timeout=WAIT_MS)
    panel = window.jobs_panel

    assert panel.clear_action.isEnabled()
    panel.clear_action.trigger()
    assert all(store.model.row_of(j) is None for j in jobs)
    notice = next(n for n in window.notices.notices if n.group.key == "cleared")
    assert "Cleared 2 finished jobs" in notice.text and "History tab" in notice.text
    assert notice.show_button.isVisible() and notice.show_button.text() == "&Undo"
    assert store.finished_cleared_through() is not None

    with qtbot.waitSignal(notice.dismissed, timeout=5_000):
        notice.show_button.click()
    assert all(store.model.row_of(j) is not None for j in jobs)
    assert set(shown_ids(panel)) == set(jobs)
    assert not store.can_undo_clear()
    http.close()


def test_the_finished_filter_shows_the_servers_finished_jobs_cleared_or_not(harness, qtbot, server_factory,
                                                                             qtmodeltester):
    server = server_factory(extra_args=["--cancel-grace", "1", "--concurrency", "2"])
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    store = harness.store(server.url, server.token, refresh_interval=5.0, timeout=4.0)
    window = harness.window(store)
    install_history_panel(window, store.client, store)
    store.start()
    panel = window.jobs_panel
    finished = store.finished_jobs()
    qtmodeltester.check(finished.model)  # stays attached while rows come and change
    cleared = [make_job(http, dataset, f"done {n}", 5)["id"] for n in range(2)]
    qtbot.waitUntil(lambda: completed(store, cleared), timeout=WAIT_MS)
    active = make_job(http, dataset, "still running", LONG)["id"]
    qtbot.waitUntil(lambda: store.model.job(active) is not None
                    and store.model.job(active).status is JobStatus.RUNNING, timeout=WAIT_MS)
    panel.clear_action.trigger()
    assert all(store.model.row_of(j) is None for j in cleared)
    listed = store.model.job_ids()
    assert listed == [active]
    panel.table.selectRow(0)
    assert panel.selected_job().id == active

    # Finished: the cleared jobs, fetched from the server's history query.
    resets: list[str] = []
    store.model.modelReset.connect(lambda: resets.append("list"))
    with qtbot.waitSignal(finished.loaded, timeout=10_000):
        panel.status_combo.setCurrentIndex(filter_index("Finished"))
    assert panel.finished_view() and panel.proxy.sourceModel() is finished.model
    qtbot.waitUntil(lambda: set(shown_ids(panel)) == set(cleared), timeout=5_000)
    assert panel.stack.currentWidget() is panel.table
    assert all(panel.proxy.index(row, 0).data(JobRole.IS_FINISHED) for row in range(panel.proxy.rowCount()))
    assert panel.finished_note.isVisible() and "2 finished jobs of the server" in panel.finished_note.text()
    assert panel.history_button.isVisible() and panel.history_button.text() == HISTORY_BUTTON_TEXT
    assert store.model.job_ids() == listed  # the list itself was not touched

    # A job that finishes while the view is shown appears in it (the list's own rows say so first).
    later = make_job(http, dataset, "finishes later", 5)["id"]
    qtbot.waitUntil(lambda: later in shown_ids(panel), timeout=WAIT_MS)
    row = finished.model.row_of(later)
    assert finished.model.index(row, 0).data(JobRole.STATUS) == JobStatus.COMPLETED
    assert store.model.row_of(later) is not None  # ...and it is in the list too (not cleared)

    # The Completed filter is a finished view too; the text filter narrows it.
    panel.status_combo.setCurrentIndex(filter_index("Completed"))
    assert panel.finished_view() and set(shown_ids(panel)) == {*cleared, later}
    panel.filter_edit.setText("done 1")
    assert shown_ids(panel) == [cleared[1]]
    panel.filter_edit.clear()

    # A cleared job picked there shows in the details pane's Overview, as any job does.
    assert panel.select_job(cleared[0])
    panel.open_details()
    overview = panel.details.overview
    qtbot.waitUntil(lambda: overview.value_text("name") == "done 0", timeout=5_000)
    assert overview.value_text("status") == "Completed" and overview.value_text("id") == cleared[0]

    # The button goes to the History tab.
    panel.history_button.click()
    assert window.current_title() == "History"
    window.show_panel("Jobs")

    # Back to All: the list as it was, with the running job and the one that finished since; no reset.
    panel.status_combo.setCurrentIndex(filter_index("All statuses"))
    assert not panel.finished_view() and panel.proxy.sourceModel() is store.model
    assert set(shown_ids(panel)) == {active, later}
    assert not panel.finished_note.isVisible() and panel.counts_label.isVisible()
    panel.status_combo.setCurrentIndex(filter_index("Active"))
    assert shown_ids(panel) == [active]
    assert resets == []
    assert not finished.shown

    # Back to Finished: fetched again, still every finished job; a server with none says so.
    with qtbot.waitSignal(finished.loaded, timeout=10_000):
        panel.status_combo.setCurrentIndex(filter_index("Finished"))
    assert set(shown_ids(panel)) == {*cleared, later}
    http.post(f"/api/training/jobs/{active}/cancel").raise_for_status()
    qtbot.waitUntil(lambda: active in shown_ids(panel), timeout=WAIT_MS)  # cancelled: finished now
    http.close()


def test_the_finished_filter_of_a_server_without_finished_jobs_says_so(harness, qtbot, server_factory):
    server = server_factory()
    store = harness.store(server.url, server.token, refresh_interval=5.0, timeout=4.0)
    window = harness.window(store)
    store.start()
    panel = window.jobs_panel
    qtbot.waitUntil(lambda: store.connected, timeout=10_000)
    with qtbot.waitSignal(store.finished_jobs().loaded, timeout=10_000):
        panel.status_combo.setCurrentIndex(filter_index("Finished"))
    assert panel.stack.currentWidget() is panel.empty_label
    assert panel.empty_label.text() == FINISHED_EMPTY_TEXT
    assert panel.empty_label.alignment() & Qt.AlignmentFlag.AlignCenter
