"""Queue control from the Jobs tab (issue 16) against a real server with one slot and real gated trainers:
Move to top / up / down and Hold change the server's queue (checked over HTTP), the new order and the
"Held" badge come back through the live events, and a held job is passed over when the slot frees; a hold
set elsewhere (another client) shows checked and is released from the window, after which the job runs in
its turn."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel

from training_studio.contract.models import JobStatus
from training_studio.ui.jobs.model import JobRole
from tests.support.jobs import wait_status
from tests.ui.gated_queue import GatedQueue

WAIT_MS = 60_000


def _select(panel, job_id: str) -> None:
    row = panel.proxy.mapFromSource(panel.model.index(panel.model.row_of(job_id), 0)).row()
    panel.table.selectionModel().setCurrentIndex(
        panel.proxy.index(row, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect
        | QItemSelectionModel.SelectionFlag.Rows)


def test_the_jobs_tab_moves_and_holds_queued_jobs(harness, qtbot, server_factory, tmp_path):
    queue = GatedQueue(server_factory, tmp_path)
    server, http, create = queue.server, queue.http, queue.create
    running = create("running")
    a, b, c = create("a"), create("b"), create("c")
    store = harness.store(server.url, server.token, refresh_interval=5.0, timeout=4.0)
    window = harness.window(store)
    store.start()
    panel = window.jobs_panel
    qtbot.waitUntil(lambda: all(store.model.row_of(j) is not None for j in (a, b, c)), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: all(store.model.job(j).status is JobStatus.QUEUED for j in (a, b, c)), timeout=WAIT_MS)

    _select(panel, c)
    assert panel.move_top_action.isEnabled()
    panel.move_top_action.trigger()
    qtbot.waitUntil(lambda: queue.order([a, b, c]) == [c, a, b], timeout=WAIT_MS)
    _select(panel, a)
    panel.move_down_action.trigger()
    qtbot.waitUntil(lambda: queue.order([a, b, c]) == [c, b, a], timeout=WAIT_MS)

    _select(panel, c)
    panel.hold_action.trigger()  # checkable: now held
    qtbot.waitUntil(lambda: store.model.job(c).held, timeout=WAIT_MS)
    row = store.model.row_of(c)
    assert store.model.index(row, 1).data(JobRole.DISPLAY_STATUS) == "Held"

    # The slot frees: c is held, so b (next in the user's order) starts.
    _select(panel, running)
    assert not panel.move_top_action.isEnabled()  # a running job is not in the queue
    queue.release(running)
    assert wait_status(http, b, {"running"}, 60)["status"] == "running"
    assert http.get("/api/training/status", params={"job_id": c}).json()["status"] == "queued"
    for job_id in (b, a, c):
        http.post(f"/api/training/jobs/{job_id}/cancel")
    http.close()


def test_move_up_and_releasing_a_hold_from_the_jobs_tab(harness, qtbot, server_factory, tmp_path):
    queue = GatedQueue(server_factory, tmp_path)
    server, http, create = queue.server, queue.http, queue.create
    running = create("running")
    a, b, c = create("a"), create("b"), create("c")
    store = harness.store(server.url, server.token, refresh_interval=5.0, timeout=4.0)
    window = harness.window(store)
    store.start()
    panel = window.jobs_panel
    qtbot.waitUntil(lambda: all(store.model.row_of(j) is not None for j in (a, b, c)), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: all(store.model.job(j).status is JobStatus.QUEUED for j in (a, b, c)), timeout=WAIT_MS)
    assert queue.order([a, b, c]) == [a, b, c]

    _select(panel, c)
    assert panel.move_up_action.isEnabled()
    panel.move_up_action.trigger()
    qtbot.waitUntil(lambda: queue.order([a, b, c]) == [a, c, b], timeout=WAIT_MS)
    _select(panel, c)
    panel.move_up_action.trigger()  # to the head of the queue
    qtbot.waitUntil(lambda: queue.order([a, b, c]) == [c, a, b], timeout=WAIT_MS)
    # The window shows the server's order: the waiting rows in queue order.
    qtbot.waitUntil(lambda: [store.model.job(j).queue_position for j in (c, a, b)]
                    == sorted(store.model.job(j).queue_position for j in (a, b, c)), timeout=WAIT_MS)

    # Another client holds c; the window shows it held, with Hold checked when it is selected.
    held = http.patch(f"/api/training/jobs/{c}/queue", json={"held": True})
    assert held.status_code == 200 and held.json()["held"] is True
    qtbot.waitUntil(lambda: store.model.job(c).held, timeout=WAIT_MS)
    assert store.model.index(store.model.row_of(c), 1).data(JobRole.DISPLAY_STATUS) == "Held"
    _select(panel, c)
    assert panel.hold_action.isEnabled() and panel.hold_action.isChecked()

    panel.hold_action.trigger()  # unchecks it: released
    qtbot.waitUntil(lambda: not store.model.job(c).held, timeout=WAIT_MS)
    released = http.get("/api/training/status", params={"job_id": c}).json()
    assert released["held"] is False and released["status"] == "queued"
    assert store.model.index(store.model.row_of(c), 1).data(JobRole.DISPLAY_STATUS) == "Queued"
    assert not panel.hold_action.isChecked()

    # Released and first in the queue: c runs next when the slot frees.
    queue.release(running)
    assert wait_status(http, c, {"running"}, 60)["status"] == "running"
    assert all(http.get("/api/training/status", params={"job_id": j}).json()["status"] == "queued" for j in (a, b))
    for job_id in (c, a, b):
        http.post(f"/api/training/jobs/{job_id}/cancel")
    http.close()
