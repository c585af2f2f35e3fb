"""The Samples strip of the job details pane against a real server and the real built-in trainer: samples
appear while the run goes on, thumbnails and the enlarged view show the server's images, the step slider
selects the nearest sample, Enter or a click on a tile opens it enlarged, and empty states (no samples yet,
a trainer that writes none, a server without the samples listing: a labelled stand-in on a real socket) are
said in words."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtTest import QTest

from training_studio.ui.jobs.details.samples import SamplesStrip
from training_studio.ui.jobs.details.samples_store import SampleRole, SamplesState
from tests.support.faulty_server import FaultyServer, Reply, job_json
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job, wait_status

WAIT_MS = 60_000


def _strip(harness, qtbot, url: str, token: str) -> SamplesStrip:
    store = harness.store(url, token)
    strip = SamplesStrip(store)
    strip.store.interval = 0.3
    qtbot.addWidget(strip)
    strip.resize(900, 260)
    strip.show()
    return strip


def _names(strip: SamplesStrip) -> list[str]:
    return strip.model.names()


@pytest.mark.timeout(300)
def test_samples_appear_while_a_builtin_run_goes_on(harness, qtbot, qtmodeltester, server):
    http = sync_client(server.url, server.token)
    job = make_job(http, make_dataset(http, images=4), "with samples", 100_000, sample_every=100)
    strip = _strip(harness, qtbot, server.url, server.token)
    qtmodeltester.check(strip.model)  # stays attached: every insert below is checked too
    strip.show_job(job["id"])
    try:
        qtbot.waitUntil(lambda: strip.model.rowCount() >= 2, timeout=WAIT_MS)
        seen = max(3, strip.model.rowCount())  # at least four samples for the steps used below
        qtbot.waitUntil(lambda: strip.model.rowCount() > seen, timeout=WAIT_MS)
        status = http.get("/api/training/status", params={"job_id": job["id"]}).json()["status"]
        assert status == "running", "new samples arrived while the job ran"
        assert strip.stack.currentWidget() is strip.list
        steps = [strip.model.index(r, 0).data(SampleRole.STEP) for r in range(strip.model.rowCount())]
        assert steps == sorted(steps) and steps[0] == 100
        # The slider follows the newest sample while it sits at the end.
        qtbot.waitUntil(lambda: strip.slider.value() == strip.slider.maximum() == max(
            s for s in strip.model.steps() if s is not None), timeout=WAIT_MS)
    finally:
        http.post(f"/api/training/jobs/{job['id']}/cancel")
    wait_status(http, job["id"], {"cancelled", "completed", "failed"})
    listing = http.get(f"/api/training/jobs/{job['id']}/samples").json()
    qtbot.waitUntil(lambda: _names(strip) == [s["name"] for s in listing], timeout=WAIT_MS)

    # Thumbnails come from the server's images, decoded off the GUI thread.
    qtbot.waitUntil(lambda: strip.model.has_thumbnail(listing[0]["name"]), timeout=WAIT_MS)
    thumbnail = strip.model.index(0, 0).data(SampleRole.THUMBNAIL)
    assert isinstance(thumbnail, QPixmap) and not thumbnail.isNull()

    # The slider selects the sample nearest a step.
    strip.slider.setValue(249)
    assert strip.list.currentIndex().data(SampleRole.STEP) == 200
    strip.slider.setValue(251)
    assert strip.list.currentIndex().data(SampleRole.STEP) == 300
    assert strip.step_label.text() == "step 300"

    # Enter opens the sample, enlarged, in a window of its own (non-modal).
    strip.list.setFocus()
    QTest.keyClick(strip.list, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: strip.viewer is not None and strip.viewer.isVisible(), timeout=WAIT_MS)
    viewer = strip.viewer
    assert not viewer.isModal()
    qtbot.waitUntil(lambda: viewer.picture.pixmap() is not None and not viewer.picture.pixmap().isNull(),
                    timeout=WAIT_MS)
    full = http.get(f"/api/training/jobs/{job['id']}/samples/{listing[2]['name']}")
    image = QImage.fromData(full.content)
    assert viewer._image is not None and viewer._image.size() == image.size()
    assert "step 300" in viewer.windowTitle()
    QTest.keyClick(viewer, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: "step 400" in viewer.windowTitle(), timeout=WAIT_MS)

    # A mouse click on a tile opens that sample too.
    viewer.close()
    assert not viewer.isVisible()
    first = strip.model.index(0, 0)
    strip.list.scrollTo(first)
    tile = strip.list.visualRect(first)
    assert strip.list.viewport().rect().contains(tile.center())
    with qtbot.waitSignal(strip.sample_opened, timeout=WAIT_MS,
                          check_params_cb=lambda job_id, name: (job_id, name) == (job["id"], listing[0]["name"])):
        qtbot.mouseClick(strip.list.viewport(), Qt.MouseButton.LeftButton, pos=tile.center())
    assert strip.viewer is viewer and viewer.isVisible() and "step 100" in viewer.windowTitle()
    assert strip.list.currentIndex().row() == 0
    first_full = http.get(f"/api/training/jobs/{job['id']}/samples/{listing[0]['name']}")
    first_size = QImage.fromData(first_full.content).size()
    qtbot.waitUntil(lambda: viewer._image is not None and viewer._image.size() == first_size, timeout=WAIT_MS)


@pytest.mark.timeout(300)
def test_empty_states_say_why_there_are_no_samples(harness, qtbot, server):
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http, images=2)
    strip = _strip(harness, qtbot, server.url, server.token)
    assert strip.state_label.text() == "Select a job to see its samples."

    running = make_job(http, dataset, "no samples yet", 100_000, sample_every=0)
    wait_status(http, running["id"], {"running"})
    strip.show_job(running["id"])
    try:
        qtbot.waitUntil(lambda: strip.store.state == SamplesState.EMPTY, timeout=WAIT_MS)
        assert strip.stack.currentWidget() is strip.state_label
        assert strip.state_label.text() == "No samples yet."
    finally:
        http.post(f"/api/training/jobs/{running['id']}/cancel")
    wait_status(http, running["id"], {"cancelled", "completed", "failed"})
    qtbot.waitUntil(lambda: strip.state_label.text() == "No samples yet — this trainer writes none.",
                    timeout=WAIT_MS)
    assert not strip.slider.isEnabled()

    # A server that predates the samples listing (labelled stand-in on a real socket): a plain 404.
    old = FaultyServer()
    old.routes[("GET", "/api/training/status")] = Reply(200, job_json("j1", status="running"))
    old.start()
    try:
        strip = _strip(harness, qtbot, old.url, "token")
        strip.show_job("j1")
        qtbot.waitUntil(lambda: strip.store.state == SamplesState.UNAVAILABLE, timeout=WAIT_MS)
        assert strip.state_label.text() == "This server does not list samples."
        assert not strip.error_label.isVisible()
    finally:
        old.stop()
