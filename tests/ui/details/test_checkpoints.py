"""The Checkpoints tab of the job details pane against a real server and the real built-in trainer run with
`checkpoint_every`: checkpoints appear while the run goes on (newest first), the list ends equal to the
server's, *Save as…* (button, Enter, context menu; a QFileDialog opened with open()) writes the server's
exact bytes and leaves no `.part` file, a failed save says why and leaves nothing, and the empty states (no
checkpoints yet, a run that wrote none, a job the server does not know, a server without the listing: a
labelled stand-in on a real socket) are said in words."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu

from training_studio.ui.downloads import PART_SUFFIX
from training_studio.ui.jobs.details.checkpoints import CheckpointsView
from training_studio.ui.jobs.details.checkpoints_store import CheckpointColumn, CheckpointRole, CheckpointsState
from tests.support.faulty_server import FaultyServer, Reply, job_json
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job, wait_status

WAIT_MS = 60_000


def _view(harness, qtbot, url: str, token: str) -> CheckpointsView:
    store = harness.store(url, token)
    view = CheckpointsView(store)
    view.store.interval = 0.3
    view.store.min_gap = 0.2
    qtbot.addWidget(view)
    view.resize(900, 320)
    view.show()
    return view


def _steps(view: CheckpointsView) -> list[int]:
    return [view.model.index(row, 0).data(CheckpointRole.STEP) for row in range(view.model.rowCount())]


def _save_through_dialog(view: CheckpointsView, qtbot, target: Path) -> None:
    """The dialog is open (non-modal for the event loop): choose `target` in it as a user would."""
    qtbot.waitUntil(lambda: view.dialog is not None and view.dialog.isVisible(), timeout=WAIT_MS)
    dialog = view.dialog
    dialog.selectFile(str(target))
    dialog.accept()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.timeout(300)
def test_checkpoints_appear_while_a_builtin_run_goes_on_and_save_the_servers_bytes(
        harness, qtbot, qtmodeltester, server, tmp_path):
    http = sync_client(server.url, server.token)
    job = make_job(http, make_dataset(http, images=4), "with checkpoints", 100_000, checkpoint_every=100)
    view = _view(harness, qtbot, server.url, server.token)
    qtmodeltester.check(view.model)  # stays attached: every insert below is checked too
    view.show_job(job["id"])
    folder = tmp_path / "saved"
    folder.mkdir()
    try:
        qtbot.waitUntil(lambda: view.model.rowCount() >= 2, timeout=WAIT_MS)
        seen = view.model.rowCount()
        qtbot.waitUntil(lambda: view.model.rowCount() > seen, timeout=WAIT_MS)
        status = http.get("/api/training/status", params={"job_id": job["id"]}).json()["status"]
        assert status == "running", "new checkpoints arrived while the job ran"
        assert view.stack.currentWidget() is view.table
        steps = _steps(view)
        assert steps == sorted(steps, reverse=True) and steps[-1] == 100  # newest first
        assert view.summary.text().startswith(f"{len(steps)} checkpoints, the latest at step ")
        first = view.model.index(0, 0)
        assert first.data() == f"{steps[0]:,}"
        assert view.model.index(0, CheckpointColumn.FILE).data() == f"step-{steps[0]:06d}.npz"
        assert view.model.index(0, CheckpointColumn.SIZE).data().endswith(("B", "KB", "MB"))

        # Save as… (the button) while the run goes on: the server's exact bytes, no .part left.
        assert not view.save_button.isEnabled()  # nothing selected yet
        oldest = view.model.index(view.model.rowCount() - 1, 0).data(CheckpointRole.NAME)
        assert view.select_name(oldest)
        assert view.save_button.isEnabled()
        target = folder / "oldest.npz"
        with qtbot.waitSignal(view.store.saver.saved, timeout=WAIT_MS) as saved:
            view.save_button.click()
            assert view.dialog is not None and view.dialog.acceptMode().name == "AcceptSave"
            assert view.dialog.selectedFiles()[0].endswith(f"with_checkpoints-{oldest.rsplit('/', 1)[-1]}")
            _save_through_dialog(view, qtbot, target)
        assert saved.args == [oldest, str(target)]
        served = http.get(f"/api/training/jobs/{job['id']}/checkpoints/{oldest}")
        assert served.status_code == 200
        assert _sha(target.read_bytes()) == _sha(served.content)
        assert sorted(folder.iterdir()) == [target]  # no .part left behind
        assert view.download.message.text() == f"Saved {oldest.rsplit('/', 1)[-1]} to {target}."
        assert not view.download.failed and not view.download.progress_row.isVisible()

        # Enter on the table opens the same dialog for the current row; cancelling it saves nothing.
        view.table.setFocus()
        view.select_name(view.model.index(0, 0).data(CheckpointRole.NAME))
        QTest.keyClick(view.table, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: view.dialog is not None and view.dialog.isVisible(), timeout=WAIT_MS)
        view.dialog.reject()
        qtbot.waitUntil(lambda: view.dialog is None, timeout=WAIT_MS)
        assert sorted(folder.iterdir()) == [target] and not view.store.saver.is_busy()
    finally:
        http.post(f"/api/training/jobs/{job['id']}/cancel")
    wait_status(http, job["id"], {"cancelled", "completed", "failed"})
    listing = http.get(f"/api/training/jobs/{job['id']}/checkpoints").json()
    assert len(listing) >= 3
    qtbot.waitUntil(lambda: view.model.names() == [c["name"] for c in reversed(listing)], timeout=WAIT_MS)
    assert [view.model.index(r, 0).data(CheckpointRole.SIZE) for r in range(view.model.rowCount())] == \
        [c["size"] for c in reversed(listing)]

    # The context menu's Save as… on the newest checkpoint, after the run.
    newest = listing[-1]["name"]
    row = view.model.row_of(newest)
    rect = view.table.visualRect(view.model.index(row, CheckpointColumn.FILE))
    view.table.customContextMenuRequested.emit(rect.center())
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu), timeout=WAIT_MS)
    menu = QApplication.activePopupWidget()
    texts = [action.text() for action in menu.actions()]
    assert texts == ["&Save as…", "&Copy name"]
    assert view.selected_name() == newest
    target = folder / "newest.npz"
    with qtbot.waitSignal(view.store.saver.saved, timeout=WAIT_MS):
        menu.actions()[0].trigger()
        menu.close()
        _save_through_dialog(view, qtbot, target)
    served = http.get(f"/api/training/jobs/{job['id']}/checkpoints/{newest}").content
    assert _sha(target.read_bytes()) == _sha(served)
    assert not any(path.name.endswith(PART_SUFFIX) for path in folder.iterdir())
    http.close()


@pytest.mark.timeout(300)
def test_a_failed_save_says_why_and_leaves_nothing(harness, qtbot, server, tmp_path):
    http = sync_client(server.url, server.token)
    job = make_job(http, make_dataset(http, images=4), "short", 300, checkpoint_every=100, resolution=8)
    final = wait_status(http, job["id"], {"cancelled", "completed", "failed"}, timeout=120)
    assert final["status"] == "completed", final
    view = _view(harness, qtbot, server.url, server.token)
    view.show_job(job["id"])
    qtbot.waitUntil(lambda: view.model.rowCount() == 3, timeout=WAIT_MS)
    name = view.model.index(0, 0).data(CheckpointRole.NAME)
    assert view.select_name(name)

    # A folder that does not exist: nothing written, the reason said.
    target = tmp_path / "missing-folder" / "model.npz"
    with qtbot.waitSignal(view.store.saver.failed, timeout=WAIT_MS) as failed:
        assert view.store.save(name, target)
    assert "could not write" in failed.args[1] and str(target) in failed.args[1]
    assert not target.exists() and not target.with_name(target.name + PART_SUFFIX).exists()
    assert view.download.failed and view.download.message.text() == failed.args[1]
    assert view.download.message.isVisibleTo(view) and view.save_button.isEnabled()

    # A checkpoint the server no longer has (its job deleted meanwhile): the server's reason, nothing left.
    folder = tmp_path / "downloads"
    folder.mkdir()
    assert http.delete(f"/api/training/jobs/{job['id']}").status_code in (200, 204)
    with qtbot.waitSignal(view.store.saver.failed, timeout=WAIT_MS) as failed:
        assert view.store.save(name, folder / "gone.npz")
    assert failed.args[1].startswith(f"The checkpoint {name.rsplit('/', 1)[-1]} was not saved: ")
    assert list(folder.iterdir()) == []
    http.close()


@pytest.mark.timeout(300)
def test_empty_states_say_why_there_are_no_checkpoints(harness, qtbot, server):
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http, images=2)
    view = _view(harness, qtbot, server.url, server.token)
    assert view.state_label.text() == "Select a job to see its checkpoints."
    assert view.stack.currentWidget() is view.state_label and not view.save_button.isVisible()

    running = make_job(http, dataset, "no checkpoints yet", 100_000, checkpoint_every=0)
    wait_status(http, running["id"], {"running"})
    view.show_job(running["id"])
    try:
        qtbot.waitUntil(lambda: view.store.state == CheckpointsState.EMPTY, timeout=WAIT_MS)
        assert view.stack.currentWidget() is view.state_label
        assert view.state_label.text().startswith("No checkpoints yet.")
        assert not view.save_button.isEnabled()
        # Beside no summary, the button keeps its own width instead of spanning the tab.
        assert view.save_button.width() <= view.save_button.sizeHint().width() < view.width() // 2
    finally:
        http.post(f"/api/training/jobs/{running['id']}/cancel")
    wait_status(http, running["id"], {"cancelled", "completed", "failed"})
    qtbot.waitUntil(lambda: view.state_label.text().startswith("This run wrote no step checkpoints."),
                    timeout=WAIT_MS)

    view.show_job("no-such-job")
    qtbot.waitUntil(lambda: view.store.state == CheckpointsState.UNAVAILABLE, timeout=WAIT_MS)
    assert view.state_label.text() == "The server no longer knows this job."
    http.close()

    # A server that predates the checkpoints listing (labelled stand-in on a real socket): a plain 404.
    old = FaultyServer()
    old.routes[("GET", "/api/training/status")] = Reply(200, job_json("j1", status="running"))
    old.start()
    try:
        view = _view(harness, qtbot, old.url, "token")
        view.show_job("j1")
        qtbot.waitUntil(lambda: view.store.state == CheckpointsState.UNAVAILABLE, timeout=WAIT_MS)
        assert view.state_label.text() == "This server does not list checkpoints (it predates them)."
        assert not view.error_label.isVisible()
    finally:
        old.stop()
