"""The job details pane in the jobs tab: the Overview follows the selected running job live, comparing several
jobs colours their rows and the chart alike, failed jobs and old servers get sensible states, and the Overview's
links open the Datasets and Models tabs. Real server subprocesses and built-in trainer jobs over real HTTP; the
"old server" is a small server on a real socket that answers like a server from before issue 14 (labelled)."""

from __future__ import annotations


import pytest
from PySide6.QtCore import QItemSelectionModel, QSettings, Qt, QTimer
from PySide6.QtGui import QColor

from training_studio.contract.models import JobStatus
from training_studio.ui.jobs.details.pane import NOT_AVAILABLE_TEXT, TAB_TITLES, _build_view, _Unavailable
from training_studio.ui.jobs.model import JobRole
from training_studio.ui.jobs.panel import MAX_COMPARED, JobsPanel
from training_studio.ui.settings import AppSettings
from tests.support.faulty_server import FaultyServer, Reply, job_json
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job, wait_status
from tests.ui.test_history import GATED_PRESET, write_gated_preset

LONG = 1_000_000
JOBS = ("GET", "/api/training/jobs")


@pytest.fixture
def make_panel(qtbot, tmp_path):
    panels: list[JobsPanel] = []

    def make(store) -> JobsPanel:
        settings = AppSettings(QSettings(str(tmp_path / f"s{len(panels)}.ini"), QSettings.Format.IniFormat))
        panel = JobsPanel(store, settings=settings)
        qtbot.addWidget(panel)
        panel.resize(1100, 760)
        panel.show()
        qtbot.waitExposed(panel)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.shutdown()


def select(panel: JobsPanel, job_ids: list[str]) -> None:
    """Select these rows as ctrl-clicks would, the last one current."""
    selection = panel.table.selectionModel()
    selection.clearSelection()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for job_id in job_ids:
        index = panel.proxy.mapFromSource(panel.model.index(panel.model.row_of(job_id), 0))
        selection.setCurrentIndex(index, flags)


def test_the_overview_shows_the_selected_running_job_and_follows_it_live(
        harness, qtbot, server_factory, make_panel):
    server = server_factory()
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    job = make_job(http, dataset, "portrait LoRA", LONG, learning_rate=0.002)
    store = harness.store(server.url, server.token)
    panel = make_panel(store)
    store.start()
    qtbot.waitUntil(lambda: store.model.job(job["id"]) is not None
                    and store.model.job(job["id"]).status == JobStatus.RUNNING, timeout=20_000)
    assert panel.select_job(job["id"])
    panel.open_details()
    overview = panel.details.overview
    qtbot.waitUntil(lambda: overview.value_text("name") == "portrait LoRA", timeout=5_000)

    assert overview.value_text("status") == "Running"
    # The dataset and the base model by name (the pane's RecordNames asks the server), the ids in the tooltips;
    # the dataset is still the link that opens it.
    base_names = {base["id"]: base["name"] for base in http.get("/api/training/base-models").json()}
    qtbot.waitUntil(lambda: overview.value_text("dataset") == "shapes", timeout=10_000)
    assert f'href="dataset:{dataset}"' in overview.dataset_value.text() and dataset in overview.dataset_value.toolTip()
    qtbot.waitUntil(lambda: overview.value_text("base_model") == base_names["builtin-linear-vae"], timeout=10_000)
    assert "builtin-linear-vae" in overview.base_model_value.toolTip()
    assert "learning_rate = 0.002" in overview.value_text("params").splitlines()
    assert overview.value_text("id") == job["id"]
    assert overview.value_text("server") == server.url
    assert overview.value_text("model") == "not yet"
    assert not overview.is_row_visible("finished")
    # Live: the progress line moves with the job's events, through the model's signals (the overview has no
    # timer of its own).
    first = overview.value_text("progress")
    qtbot.waitUntil(lambda: overview.value_text("progress") != first, timeout=20_000)
    assert overview.findChildren(QTimer) == []
    # The ETA: "estimating…" or a local clock time with a countdown, never negative.
    eta = overview.value_text("eta")
    assert eta == "estimating…" or "(in " in eta or "(any moment now)" in eta
    qtbot.waitUntil(lambda: "(in " in overview.value_text("eta"), timeout=60_000)
    # The pane's text is selectable.
    assert overview.status_value.textInteractionFlags() & overview.status_value.textInteractionFlags().TextSelectableByMouse
    http.post(f"/api/training/jobs/{job['id']}/cancel")
    http.close()


def test_comparing_selected_jobs_colours_their_rows_and_their_curves_alike(
        harness, qtbot, server_factory, make_panel):
    server = server_factory(extra_args=["--cancel-grace", "1", "--concurrency", "3"])
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    ids = [make_job(http, dataset, f"run {n}", 200)["id"] for n in range(3)]
    store = harness.store(server.url, server.token)
    panel = make_panel(store)
    store.start()
    qtbot.waitUntil(lambda: all(store.model.row_of(job_id) is not None for job_id in ids), timeout=20_000)
    panel.set_details_visible(True)
    pane = panel.details

    select(panel, ids)
    qtbot.waitUntil(lambda: len(pane.compared) == 3, timeout=5_000)

    swatches = {job_id: store.model.index(store.model.row_of(job_id), 0).data(JobRole.COMPARE_COLOUR)
                for job_id in ids}
    assert all(isinstance(colour, QColor) for colour in swatches.values())
    assert len({colour.name() for colour in swatches.values()}) == 3  # one colour each
    assert {job.job_id: QColor(job.colour) for job in pane.compared} == swatches  # the chart's colours
    assert pane.compared[0].job_id == ids[-1] == pane.current_id  # the current job first, and in the overview
    assert pane.compare_label.isVisible() and "Comparing 3 jobs" in pane.compare_label.text()
    assert pane.is_available("Chart")
    assert pane.chart.job_ids == [job.job_id for job in pane.compared]  # the chart draws them all,
    for job_id in ids:  # each curve in the colour of its row's swatch
        assert pane.chart._jobs[job_id].colour == swatches[job_id]

    select(panel, ids[1:])  # run 0 leaves: the others keep their colours
    qtbot.waitUntil(lambda: len(pane.compared) == 2, timeout=5_000)
    assert store.model.index(store.model.row_of(ids[0]), 0).data(JobRole.COMPARE_COLOUR) is None
    for job_id in ids[1:]:
        assert store.model.index(store.model.row_of(job_id), 0).data(JobRole.COMPARE_COLOUR) == swatches[job_id]

    select(panel, [ids[0]])  # one job: its curve alone, no swatches in the table
    qtbot.waitUntil(lambda: len(pane.compared) == 1 and pane.current_id == ids[0], timeout=5_000)
    assert all(store.model.index(store.model.row_of(job_id), 0).data(JobRole.COMPARE_COLOUR) is None
               for job_id in ids)
    assert not pane.compare_label.isVisible()

    select(panel, ids)
    qtbot.waitUntil(lambda: len(pane.compared) == 3, timeout=5_000)
    panel.set_details_visible(False)  # the swatches go with the pane
    assert all(store.model.index(store.model.row_of(job_id), 0).data(JobRole.COMPARE_COLOUR) is None
               for job_id in ids)
    http.close()


def test_at_most_a_paletteful_of_jobs_compare_and_the_pane_says_so(harness, qtbot, make_panel):
    faulty = FaultyServer().start()  # labelled stand-in: many running jobs without running trainers
    try:
        faulty.routes[JOBS] = Reply(200, [job_json(f"j{n}", name=f"job {n}",
                                                   created_at=f"2026-01-01T00:00:{n:02d}.000Z")
                                          for n in range(MAX_COMPARED + 3)])
        store = harness.store(faulty.url, "t", refresh_interval=60)
        panel = make_panel(store)
        harness.run(store.fetch_active_jobs())
        panel.set_details_visible(True)
        panel.table.selectAll()
        qtbot.waitUntil(lambda: len(panel.details.compared) == MAX_COMPARED, timeout=5_000)
        assert "3 more selected" in panel.details.compare_label.text()
        assert panel.cancel_action.text() == f"&Cancel {MAX_COMPARED + 3} jobs…"
    finally:
        faulty.stop()


def test_a_failed_job_and_a_job_without_metrics_show_sensible_states(harness, qtbot, server_factory, make_panel,
                                                                      tmp_path):
    control = tmp_path / "control"
    control.mkdir()
    write_gated_preset(tmp_path / "data", control)
    server = server_factory("data", extra_args=["--cancel-grace", "1", "--concurrency", "1"])
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)

    def start(name: str, gate: str, outcome: str) -> str:
        response = http.post("/api/training/jobs", json={"name": name, "dataset_id": dataset,
                                                         "base_model": GATED_PRESET, "total_steps": 2,
                                                         "params": {"gate": gate, "outcome": outcome}})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    failed = start("out of memory", "boom", "fail")
    waiting = start("waits its turn", "later", "complete")  # queued behind it: no metrics, no log yet
    store = harness.store(server.url, server.token)
    panel = make_panel(store)
    store.start()
    qtbot.waitUntil(lambda: store.model.row_of(waiting) is not None, timeout=20_000)
    assert panel.select_job(waiting)
    panel.open_details()
    overview = panel.details.overview
    qtbot.waitUntil(lambda: overview.value_text("name") == "waits its turn", timeout=5_000)
    assert overview.value_text("status") in ("Queued", "Pending")
    assert overview.value_text("started") == "not yet" and not overview.is_row_visible("eta")
    for index in range(len(TAB_TITLES)):  # every tab shows something for a job with nothing yet
        panel.details.tabs.setCurrentIndex(index)
        assert not panel.details.grab().isNull()

    (control / "boom").touch()
    qtbot.waitUntil(lambda: store.model.job(failed) is not None
                    and store.model.job(failed).status == JobStatus.FAILED, timeout=30_000)
    assert panel.select_job(failed)
    qtbot.waitUntil(lambda: overview.value_text("name") == "out of memory", timeout=5_000)
    status = overview.value_text("status")
    assert status.startswith("Failed: ") and len(status) > len("Failed: ")
    assert overview.value_text("model") == "none (the job failed or was cancelled)"
    assert overview.is_row_visible("finished") and not overview.is_row_visible("eta")
    assert not overview.is_row_visible("phase")
    for index in range(len(TAB_TITLES)):
        panel.details.tabs.setCurrentIndex(index)
        assert not panel.details.grab().isNull()
    (control / "later").touch()
    http.close()


def test_an_old_server_without_the_new_fields_and_endpoints_shows_the_job(harness, qtbot, make_panel):
    # Labelled stand-in: a server from before issue 14 (no etaAt, no detail, no /metrics, /logs or /samples
    # routes: 404), on a real socket.
    faulty = FaultyServer().start()
    try:
        faulty.routes[JOBS] = Reply(200, [job_json("old1", name="from an old server")])
        faulty.routes[("GET", "/api/training/status")] = Reply(200, job_json("old1", name="from an old server"))
        store = harness.store(faulty.url, "t", refresh_interval=60)
        panel = make_panel(store)
        harness.run(store.fetch_active_jobs())
        assert panel.select_job("old1")
        panel.open_details()
        overview = panel.details.overview
        qtbot.waitUntil(lambda: overview.value_text("name") == "from an old server", timeout=5_000)
        assert overview.value_text("eta") == "estimating…"  # running, and no estimate from this server
        assert overview.value_text("base_model") == "—" and overview.value_text("dataset") == "none"
        for index in range(len(TAB_TITLES)):
            panel.details.tabs.setCurrentIndex(index)
            qtbot.wait(50)  # let the view ask the old server (and get its 404)
            assert not panel.details.grab().isNull()
    finally:
        faulty.stop()


def test_the_overview_links_open_the_dataset_and_the_model_in_their_tabs(harness, qtbot, server_factory):
    from training_studio.ui.datasets.wiring import install_library_panels

    server = server_factory()
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http, "faces")
    job = make_job(http, dataset, "quick", 20)
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    library = install_library_panels(window, store.client, store, lazy=True)
    store.start()
    panel = window.jobs_panel
    assert panel.details_action in window.view_menu.actions()  # the toggle is in the View menu
    # bool(): a callback returning None counts as passed for waitUntil (no AssertionError), and model_id is None
    # until the job completes.
    qtbot.waitUntil(lambda: store.model.job(job["id"]) is not None and bool(store.model.job(job["id"]).model_id),
                    timeout=30_000)
    assert panel.select_job(job["id"])
    panel.open_details()
    overview = panel.details.overview
    model_id = store.model.job(job["id"]).model_id
    qtbot.waitUntil(lambda: overview.value_text("model") == "quick", timeout=10_000)  # the model, by its name
    assert f'href="model:{model_id}"' in overview.model_value.text()
    qtbot.waitUntil(lambda: overview.value_text("dataset") == "faces", timeout=10_000)

    overview.dataset_value.linkActivated.emit(f"dataset:{dataset}")  # a click on the link

    assert window.current_title() == "Datasets"
    qtbot.waitUntil(lambda: library.datasets_panel.selected_dataset() is not None
                    and library.datasets_panel.selected_dataset().id == dataset, timeout=15_000)

    window.show_panel("Jobs")
    overview.model_value.linkActivated.emit(f"model:{model_id}")
    assert window.current_title() == "Models"
    qtbot.waitUntil(lambda: library.models_panel.selected_model() is not None
                    and library.models_panel.selected_model().id == model_id, timeout=15_000)
    library.shutdown()
    harness.run(library.wait_idle())
    http.close()


def test_a_view_that_cannot_be_built_becomes_a_not_available_page(qapp, qtbot):
    from PySide6.QtWidgets import QWidget

    parent = QWidget()
    qtbot.addWidget(parent)
    view = _build_view("Chart", "training_studio.ui.jobs.details.no_such_module", "LossChart", None, parent=parent)
    assert isinstance(view, _Unavailable)
    assert view.label.text().startswith(NOT_AVAILABLE_TEXT) and "no_such_module" in view.label.text()


def test_the_jobs_current_phase_shows_in_the_overview_and_the_status_tooltip(harness, qtbot, make_panel):
    # Labelled stand-in: a server that reports a job in a loading phase, on a real socket.
    faulty = FaultyServer().start()
    try:
        faulty.routes[JOBS] = Reply(200, [job_json("p1", name="loading run", detail="loading image sizes 16/16")])
        store = harness.store(faulty.url, "t", refresh_interval=60)
        panel = make_panel(store)
        harness.run(store.fetch_active_jobs())
        assert panel.select_job("p1")
        panel.open_details()
        overview = panel.details.overview
        qtbot.waitUntil(lambda: overview.value_text("name") == "loading run", timeout=5_000)
        assert overview.is_row_visible("phase") and overview.value_text("phase") == "loading image sizes 16/16"
        status_cell = panel.proxy.index(0, 1)
        assert "loading image sizes 16/16" in status_cell.data(Qt.ItemDataRole.ToolTipRole)

        faulty.routes[JOBS] = Reply(200, [job_json("p1", name="loading run", detail="caching latents 3/16")])
        harness.run(store.fetch_active_jobs())
        assert overview.value_text("phase") == "caching latents 3/16"  # through the model's dataChanged
    finally:
        faulty.stop()


def test_the_overview_says_when_the_jobs_dataset_or_model_was_deleted(harness, qtbot, server_factory, make_panel):
    server = server_factory()
    http = sync_client(server.url, server.token)
    kept, dropped = make_dataset(http, "kept faces"), make_dataset(http, "dropped faces")
    first, second = make_job(http, kept, "first", 20), make_job(http, dropped, "second", 20)
    finals = [wait_status(http, job["id"], {"completed"}) for job in (first, second)]
    first_model, second_model = (final["modelId"] for final in finals)
    assert first_model and second_model
    # Deleted before the app ever saw them: the server's answers (a 404, a listing without it) say so.
    http.delete(f"/api/datasets/{dropped}").raise_for_status()
    http.delete(f"/api/models/{second_model}").raise_for_status()
    store = harness.store(server.url, server.token)
    panel = make_panel(store)
    store.start()
    qtbot.waitUntil(lambda: store.model.row_of(second["id"]) is not None, timeout=20_000)
    assert panel.select_job(second["id"])
    panel.open_details()
    overview = panel.details.overview
    qtbot.waitUntil(lambda: overview.value_text("dataset") == f"deleted dataset {dropped}", timeout=10_000)
    # The server forgets a deleted model's id in the job that made it: the job says its model was deleted.
    assert overview.value_text("model") == "none (the model was deleted)"
    assert "href" not in overview.dataset_value.text() and "href" not in overview.model_value.text()

    # Deleted while shown: the live stream's events update the names in place.
    assert panel.select_job(first["id"])
    qtbot.waitUntil(lambda: overview.value_text("dataset") == "kept faces"
                    and overview.value_text("model") == "first", timeout=10_000)
    http.delete(f"/api/models/{first_model}").raise_for_status()
    http.delete(f"/api/datasets/{kept}").raise_for_status()
    qtbot.waitUntil(lambda: overview.value_text("dataset") == f"deleted dataset {kept}"
                    and overview.value_text("model") == "none (the model was deleted)", timeout=10_000)
    http.close()


def test_the_overview_shows_the_dataset_id_until_its_name_arrives_and_asks_once_per_dataset(
        harness, qtbot, make_panel):
    # Labelled stand-in on a real socket: two jobs on one dataset, whose record answers slowly; the finished one
    # names a model the server's listing no longer has.
    faulty = FaultyServer()
    faulty.routes[JOBS] = Reply(200, [
        job_json("j1", name="job j1", datasetId="d1", baseModel="sdxl"),
        job_json("j2", name="job j2", datasetId="d1", baseModel="sdxl", status="completed", progress=100.0,
                 modelId="m9", finishedAt="2026-01-01T00:10:00.000Z", created_at="2026-01-01T00:00:01.000Z")])
    faulty.routes[("GET", "/api/models")] = Reply(200, [])  # its model is gone (an older server kept the id)
    faulty.routes[("GET", "/api/datasets/d1")] = Reply(200, {
        "id": "d1", "name": "Portraits", "type": "image", "image_count": 3, "status": "active",
        "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z"}, delay=1.0)
    faulty.routes[("GET", "/api/training/base-models")] = Reply(200, [
        {"id": "sdxl", "name": "Stable Diffusion XL", "trainer": "kohya"}])
    faulty.start()
    try:
        store = harness.store(faulty.url, "t", refresh_interval=60)
        panel = make_panel(store)
        harness.run(store.fetch_active_jobs())
        assert panel.select_job("j1")
        panel.open_details()
        overview = panel.details.overview
        qtbot.waitUntil(lambda: overview.value_text("name") == "job j1", timeout=5_000)
        assert overview.value_text("dataset") == "d1"  # the id while the name is on its way, as a link
        assert 'href="dataset:d1"' in overview.dataset_value.text()
        qtbot.waitUntil(lambda: overview.value_text("dataset") == "Portraits", timeout=10_000)
        qtbot.waitUntil(lambda: overview.value_text("base_model") == "Stable Diffusion XL", timeout=10_000)

        assert panel.select_job("j2")
        qtbot.waitUntil(lambda: overview.value_text("name") == "job j2", timeout=5_000)
        assert overview.value_text("dataset") == "Portraits"  # known: shown at once
        qtbot.waitUntil(lambda: overview.value_text("model") == "deleted model m9", timeout=10_000)
        assert "href" not in overview.model_value.text()
        assert panel.select_job("j1")
        qtbot.waitUntil(lambda: overview.value_text("name") == "job j1", timeout=5_000)
        asked = [path for _method, path, *_rest in faulty.requests]
        assert asked.count("/api/datasets/d1") == 1 and asked.count("/api/training/base-models") == 1
    finally:
        faulty.stop()
