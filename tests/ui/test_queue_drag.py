"""Dragging waiting jobs to reorder the queue from the Jobs tab (issue 16), against a real server with one slot
and real gated trainers. The drag's data comes from the proxy's mimeData() for the dragged row, as a real drag
takes it, and reaches the table through real QDragEnterEvent / QDragMoveEvent / QDropEvent (the view's own drop
path: drop position, canDropMimeData, dropMimeData); QDrag.exec() is not used, it nests an event loop. The new
order is checked on the server (queuePosition), in the table once the events arrive, and in the order the jobs
start."""

from __future__ import annotations

import json

from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from training_studio.contract.models import JobStatus
from training_studio.ui.jobs.model import JobColumn, JobRole
from training_studio.ui.jobs.panel import JobsPanel
from training_studio.ui.jobs.queue_proxy import JOB_IDS_MIME_TYPE
from training_studio.ui.settings import AppSettings
from tests.support.jobs import wait_status
from tests.ui.gated_queue import GatedQueue

WAIT_MS = 90_000  # trainers start as subprocesses on a loaded 2-core machine


def _table_order(panel) -> list[str]:
    """Job ids as the table shows them, top to bottom."""
    return [panel.proxy.index(row, 0).data(JobRole.JOB_ID) for row in range(panel.proxy.rowCount())]


def _proxy_index(panel, job_id: str, column: int = 0):
    return panel.proxy.mapFromSource(panel.model.index(panel.model.row_of(job_id), column))


def _drag_onto(panel, dragged: str, target: str, *, upper: bool = True) -> QDropEvent:
    """Drag the row of `dragged` to a point near the top (or bottom) edge of `target`'s row, and drop it there."""
    mime = panel.proxy.mimeData([_proxy_index(panel, dragged, column) for column in range(len(JobColumn))])
    assert mime is not None
    rect = panel.table.visualRect(_proxy_index(panel, target, int(JobColumn.STEP)))
    point = QPoint(rect.center().x(), rect.top() + 1 if upper else rect.bottom() - 1)
    viewport = panel.table.viewport()
    actions = Qt.DropAction.MoveAction
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(point, actions, mime, buttons, modifiers)
    QApplication.sendEvent(viewport, enter)
    move = QDragMoveEvent(point, actions, mime, buttons, modifiers)
    QApplication.sendEvent(viewport, move)
    drop = QDropEvent(QPointF(point), actions, mime, buttons, modifiers)
    QApplication.sendEvent(viewport, drop)
    drop.mime_keepalive = mime  # the events read the mime data until handled
    return drop


def test_dragging_a_queued_job_reorders_the_servers_queue(harness, qtbot, server_factory, tmp_path):
    queue = GatedQueue(server_factory, tmp_path)
    server, http, record, create, release = queue.server, queue.http, queue.record, queue.create, queue.release
    running = create("running")
    assert wait_status(http, running, {"running"}, 60)["status"] == "running"
    a, b, c = create("a"), create("b"), create("c")
    store = harness.store(server.url, server.token, refresh_interval=5.0, timeout=4.0)
    panel = JobsPanel(store, settings=AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)))
    qtbot.addWidget(panel)
    panel.resize(1000, 600)
    panel.show()
    qtbot.waitExposed(panel)
    store.start()
    qtbot.waitUntil(lambda: all(store.model.job(j) is not None and store.model.job(j).status is JobStatus.QUEUED
                                for j in (a, b, c)), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: store.model.job(running).status is JobStatus.RUNNING, timeout=WAIT_MS)
    assert _table_order(panel) == [running, a, b, c]

    # Only waiting rows drag: the running row offers no drag and no drag data.
    running_index = _proxy_index(panel, running)
    assert not panel.proxy.flags(running_index) & Qt.ItemFlag.ItemIsDragEnabled
    assert panel.proxy.mimeData([running_index]) is None
    assert panel.proxy.flags(_proxy_index(panel, c)) & Qt.ItemFlag.ItemIsDragEnabled

    # Several waiting rows drag together, in the table's order; with a running row picked too, it is left out.
    several = panel.proxy.mimeData([_proxy_index(panel, job_id) for job_id in (c, running, a)])
    assert json.loads(bytes(several.data(JOB_IDS_MIME_TYPE).data())) == [a, c]

    # A drop on the running row (its top half: the line above it, no queue there) is refused.
    refused = _drag_onto(panel, c, running)
    assert not refused.isAccepted()

    # c dropped on the top edge of a: it runs first. Sent to the server, which every client follows.
    dropped = _drag_onto(panel, c, a)
    assert dropped.isAccepted() and dropped.dropAction() == Qt.DropAction.MoveAction
    qtbot.waitUntil(lambda: queue.order([a, b, c]) == [c, a, b], timeout=WAIT_MS)
    # The table follows the server's events: the waiting rows in queue order, the running row in place.
    qtbot.waitUntil(lambda: _table_order(panel) == [running, c, a, b], timeout=WAIT_MS)
    assert len(store.model.job_ids()) == 4  # nothing was removed by the move drag

    # b dropped on the bottom edge of c (the line between c and a): before a.
    assert _drag_onto(panel, b, c, upper=False).isAccepted()
    qtbot.waitUntil(lambda: queue.order([a, b, c]) == [c, b, a], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: _table_order(panel) == [running, c, b, a], timeout=WAIT_MS)

    # The jobs start in the new order as slots free.
    for finishing, starting in ((running, c), (c, b), (b, a)):
        release(finishing)
        assert wait_status(http, starting, {"running"}, 60)["status"] == "running"

    def started() -> list[str]:  # each trainer records itself once it runs (a moment after "running")
        return [json.loads(line)["job"] for line in record.read_text().splitlines() if line.endswith("}")]

    qtbot.waitUntil(lambda: len(started()) == 4, timeout=WAIT_MS)
    assert started() == [running, c, b, a]

    # A finished row does not drag either, and nothing lands on it.
    qtbot.waitUntil(lambda: store.model.job(running).status is JobStatus.COMPLETED, timeout=WAIT_MS)
    finished_index = _proxy_index(panel, running)
    assert not panel.proxy.flags(finished_index) & Qt.ItemFlag.ItemIsDragEnabled
    assert panel.proxy.mimeData([finished_index]) is None
    release(a)
    assert wait_status(http, a, {"completed"}, 60)["status"] == "completed"
    http.close()
