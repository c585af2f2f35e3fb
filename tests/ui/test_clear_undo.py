"""Finished jobs stay reachable (issue 15, item 6), against a real server and real built-in trainers:
Clear finished offers Undo in its notice, Undo brings the rows back and forgets the clear, and the
Finished filter of an emptied list points to the History tab instead of saying "No active training jobs"."""

from __future__ import annotations

from training_studio.contract.models import JobStatus
from training_studio.ui.jobs.panel import FINISHED_EMPTY_TEXT, STATUS_FILTERS
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job

WAIT_MS = 60_000


def test_clear_finished_can_be_undone_and_the_finished_filter_points_to_history(harness, qtbot, server_factory):
    server = server_factory()
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    store = harness.store(server.url, server.token, refresh_interval=5.0, timeout=4.0)
    window = harness.window(store)
    store.start()
    jobs = [make_job(http, dataset, f"done {n}", 5)["id"] for n in range(2)]
    qtbot.waitUntil(lambda: all(store.model.job(j) is not None and store.model.job(j).status is JobStatus.COMPLETED
                                for j in jobs), timeout=WAIT_MS)
    panel = window.jobs_panel

    assert panel.clear_action.isEnabled()
    panel.clear_action.trigger()
    assert all(store.model.row_of(j) is None for j in jobs)
    notice = next(n for n in window.notices.notices if n.group.key == "cleared")
    assert "Cleared 2 finished jobs" in notice.text and "History tab" in notice.text
    assert notice.show_button.isVisible() and notice.show_button.text() == "&Undo"
    assert store.finished_cleared_through() is not None

    # The Finished filter of the emptied list says where the jobs are.
    panel.status_combo.setCurrentIndex([label for label, _ in STATUS_FILTERS].index("Finished"))
    assert panel.empty_label.text() == FINISHED_EMPTY_TEXT and panel.stack.currentWidget() is panel.empty_label

    with qtbot.waitSignal(notice.dismissed, timeout=5_000):
        notice.show_button.click()
    assert all(store.model.row_of(j) is not None for j in jobs)
    assert panel.stack.currentWidget() is panel.table  # the Finished filter shows them again
    assert not store.can_undo_clear()
    http.close()
