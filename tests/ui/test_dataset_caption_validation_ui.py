"""Issue 17's GUI gaps against a real server process: "Caption with…" runs the server's caption preset (a
real stand-in captioner subprocess, tests/support/standin_captioner.py) and the grid shows the captions it
wrote; a failing captioner shows the job's reason; a server without caption presets says how to add one;
"Use for validation" / "Use for training" on grid picks reach the server and its materialised validation
folder, with the grid's badges and the counts following."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QItemSelectionModel, Qt

from training_studio.ui.datasets.files_model import FileRole
from training_studio.ui.datasets.panel import DatasetsPanel
from training_studio.ui.datasets.workbench import NO_CAPTIONERS_TEXT
from tests.ui.datasets_fixtures import api_client, dataset_store, http  # noqa: F401  (fixtures)

CAPTIONER = Path(__file__).resolve().parents[1] / "support" / "standin_captioner.py"
COLOURS = [(10, 20, 30), (40, 50, 60), (70, 80, 90), (100, 110, 120)]
BROKEN_REASON = "no model weights here"


def presets_toml() -> str:
    broken = f"import sys; print({BROKEN_REASON!r}, file=sys.stderr); sys.exit(3)"
    return ("[[preset]]\n"
            'id = "standin-captioner"\n'
            'name = "Stand-in captioner"\n'
            'description = "Size and colour of each picture"\n'
            'kind = "caption"\n'
            f'command = [{json.dumps(sys.executable)}, {json.dumps(str(CAPTIONER))}, "{{dataset_dir}}"]\n'
            "\n[[preset]]\n"
            'id = "broken-captioner"\n'
            'name = "Broken captioner"\n'
            'kind = "caption"\n'
            f'command = [{json.dumps(sys.executable)}, "-c", {json.dumps(broken)}, "{{dataset_dir}}"]\n')


@pytest.fixture
def server(server_factory, tmp_path, request):
    """The real server; with the two caption presets unless the test asks for none (indirect param False)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if getattr(request, "param", True):
        (data_dir / "presets.toml").write_text(presets_toml(), encoding="utf-8")
    return server_factory("data", extra_args=["--cancel-grace", "1"])


@pytest.fixture
def panel(dataset_store, qtbot, harness):
    widget = DatasetsPanel(dataset_store)
    qtbot.addWidget(widget)
    widget.resize(1300, 850)
    yield widget
    widget.workbench_store.shutdown()
    harness.run(widget.workbench_store.wait_idle())  # no task outlives the test


def png(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def coloured_dataset(http, name: str, count: int = 3) -> tuple[str, list[str]]:
    """A committed dataset of `count` plain-coloured 40×30 PNGs; (id, sha256 in upload order)."""
    dataset_id = http.post("/api/datasets", json={"name": name, "type": "image"}).json()["id"]
    shas = []
    for index, colour in enumerate(COLOURS[:count]):
        body = png(colour)
        sha = hashlib.sha256(body).hexdigest()
        shas.append(sha)
        http.put(f"/api/datasets/{dataset_id}/files/{sha}", params={"filename": f"p{index}.png"}, content=body,
                 headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    http.post(f"/api/datasets/{dataset_id}/commit").raise_for_status()
    return dataset_id, shas


def open_dataset(panel: DatasetsPanel, dataset_store, qtbot, dataset_id: str, files: int) -> None:
    panel.show()
    qtbot.waitUntil(lambda: dataset_store.model.record(dataset_id) is not None, timeout=30_000)
    assert panel.select_dataset(dataset_id)
    model = dataset_store.files_model
    qtbot.waitUntil(lambda: model.dataset_id == dataset_id and model.rowCount() == files, timeout=30_000)
    qtbot.waitUntil(lambda: panel.workbench.dataset is not None and panel.workbench.dataset.id == dataset_id,
                    timeout=10_000)


def captions_over_http(http, dataset_id: str) -> dict[str, str]:
    return {f["sha256"]: f["caption"] or "" for f in http.get(f"/api/datasets/{dataset_id}/files").json()}


def grid_captions(dataset_store) -> dict[str, str]:
    model = dataset_store.files_model
    return {model.index(row, 0).data(FileRole.SHA256): model.index(row, 0).data(FileRole.CAPTION)
            for row in range(model.rowCount())}


def menu_action(panel: DatasetsPanel, qtbot, text: str):
    """Open the "Caption with…" menu's content (what aboutToShow does) and wait for an entry."""
    menu = panel.workbench.caption_menu
    menu.aboutToShow.emit()

    def find():
        return next((a for a in menu.actions() if a.text() == text), None)

    qtbot.waitUntil(lambda: find() is not None, timeout=15_000)
    return find()


def test_caption_with_a_preset_asks_then_writes_captions_that_the_grid_shows(panel, dataset_store, http,
                                                                              qtbot, qtmodeltester):
    dataset_id, shas = coloured_dataset(http, "colours")
    http.put(f"/api/datasets/{dataset_id}/files/{shas[0]}/caption", json={"caption": "hand written"}
             ).raise_for_status()
    open_dataset(panel, dataset_store, qtbot, dataset_id, 3)
    qtbot.waitUntil(lambda: grid_captions(dataset_store)[shas[0]] == "hand written", timeout=15_000)
    qtmodeltester.check(dataset_store.files_model)  # stays attached while the new captions arrive
    workbench = panel.workbench
    assert panel.caption_action.isEnabled() and panel.caption_action in panel._menu_actions()
    shown_while_running: list[bool] = []
    panel.workbench_store.caption_started.connect(
        lambda *_: shown_while_running.append(workbench.caption_progress.isVisibleTo(workbench)))

    action = menu_action(panel, qtbot, "Stand-in captioner")
    assert action.toolTip() == "Size and colour of each picture"
    action.trigger()
    box = workbench.caption_confirm  # a file has a caption: asked first, naming what happens to it
    assert box is not None and box.isVisible()
    assert "1 of 3 files" in box.text()
    assert "replaces the caption of every file it writes one for" in box.informativeText()
    assert not panel.workbench_store.is_captioning(dataset_id)  # nothing started before the answer
    box.confirm_button.click()

    qtbot.waitUntil(lambda: workbench.caption_state.text().startswith("Captioned:"), timeout=120_000)
    assert shown_while_running == [True]  # the progress bar was shown in place while the job ran
    expected = {sha: f"a 40x30 picture, colour {','.join(map(str, colour))}" for sha, colour in zip(shas, COLOURS)}
    assert captions_over_http(http, dataset_id) == expected
    qtbot.waitUntil(lambda: grid_captions(dataset_store) == expected, timeout=30_000)
    assert not workbench.caption_progress.isVisible()
    # the caption job is an ordinary job of the server (what the Jobs tab lists)
    jobs = [j for j in http.get("/api/training/jobs", params={"status": "all"}).json() if j.get("kind") == "caption"]
    assert [(j["datasetId"], j["status"]) for j in jobs] == [(dataset_id, "completed")]
    assert panel.caption_action.isEnabled()  # ready for another run


def test_a_failing_captioner_shows_the_jobs_reason(panel, dataset_store, http, qtbot):
    dataset_id, shas = coloured_dataset(http, "no captions yet", count=2)
    open_dataset(panel, dataset_store, qtbot, dataset_id, 2)
    workbench = panel.workbench
    menu_action(panel, qtbot, "Broken captioner").trigger()
    assert workbench.caption_confirm is None  # no caption to lose: started at once
    qtbot.waitUntil(lambda: "failed" in workbench.caption_state.text(), timeout=120_000)
    [job] = [j for j in http.get("/api/training/jobs", params={"status": "all"}).json() if j.get("kind") == "caption"]
    assert job["status"] == "failed" and job["error"]
    text = workbench.caption_state.text()
    assert f"The caption job “{job['name']}” failed:" in text
    escaped = job["error"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert escaped in text
    assert captions_over_http(http, dataset_id) == {sha: "" for sha in shas}
    assert panel.caption_action.isEnabled()


@pytest.mark.parametrize("server", [False], indirect=True)
def test_without_caption_presets_the_action_says_how_to_add_one(panel, dataset_store, http, qtbot):
    dataset_id, _shas = coloured_dataset(http, "plain", count=1)
    open_dataset(panel, dataset_store, qtbot, dataset_id, 1)
    workbench = panel.workbench
    how = menu_action(panel, qtbot, "How to add one…")
    entries = [a.text() for a in workbench.caption_menu.actions()]
    assert entries == ["No caption presets on this server", "How to add one…"]
    workbench.caption_state.clear()
    how.trigger()
    text = workbench.caption_state.text()
    assert NO_CAPTIONERS_TEXT in text
    assert "presets.toml" in text and 'kind = "caption"' in text and "{dataset_dir}" in text
    assert http.get("/api/training/jobs", params={"status": "all"}).json() == []


def select_rows(viewer, rows: list[int]) -> None:
    selection = viewer.grid.selectionModel()
    selection.clearSelection()
    for row in rows:
        selection.select(viewer.proxy.index(row, 0), QItemSelectionModel.SelectionFlag.Select)


def held_over_http(http, dataset_id: str) -> set[str]:
    return {f["sha256"] for f in http.get(f"/api/datasets/{dataset_id}/files").json() if f["validation"]}


def grid_held(dataset_store) -> set[str]:
    model = dataset_store.files_model
    return {model.index(row, 0).data(FileRole.SHA256) for row in range(model.rowCount())
            if model.index(row, 0).data(FileRole.VALIDATION)}


def test_picked_files_go_to_validation_on_the_server_and_in_its_layout(panel, dataset_store, http, qtbot, server,
                                                                       qtmodeltester):
    dataset_id, shas = coloured_dataset(http, "split", count=4)
    open_dataset(panel, dataset_store, qtbot, dataset_id, 4)
    viewer, workbench = panel.viewer, panel.workbench
    assert viewer.use_for_validation_action in viewer.grid.actions()  # the grid's context menu
    assert viewer.use_for_training_action in viewer.grid.actions()
    order = [dataset_store.files_model.index(row, 0).data(FileRole.SHA256) for row in range(4)]
    qtmodeltester.check(dataset_store.files_model)  # stays attached while the split changes arrive

    select_rows(viewer, [1, 2])
    assert viewer.use_for_validation_action.isEnabled()
    viewer.use_for_validation_action.trigger()
    picked = {order[1], order[2]}
    qtbot.waitUntil(lambda: workbench.validation_state.text() == "Applied: 2 picked files held out for validation.",
                    timeout=30_000)
    assert held_over_http(http, dataset_id) == picked
    root = server.data_dir / "datasets" / dataset_id
    assert {p.stem for p in (root / "validation" / "kohya" / "1_split").glob("*.png")} == picked
    assert {p.stem for p in (root / "validation" / "imagefolder").glob("*.png")} == picked
    [training] = list((root / "kohya").iterdir())
    assert {p.stem for p in training.glob("*.png")} == set(shas) - picked
    # the grid's badges, the title and the side panel follow the reloaded files
    qtbot.waitUntil(lambda: grid_held(dataset_store) == picked, timeout=30_000)
    qtbot.waitUntil(lambda: workbench.held_out_label.text() == "Now 2 of 4 files held out.", timeout=30_000)
    assert viewer.title.text().endswith("· 2 of 4 held out for validation")
    row = order.index(order[1])
    assert "validation" in dataset_store.files_model.index(row, 0).data(Qt.ItemDataRole.AccessibleTextRole)

    # one of them back to training (the selection also holds a training file: it stays as it is)
    select_rows(viewer, [0, 2])
    viewer.use_for_training_action.trigger()
    qtbot.waitUntil(lambda: workbench.validation_state.text() == "Applied: 1 picked file held out for validation.",
                    timeout=30_000)
    assert held_over_http(http, dataset_id) == {order[1]}
    assert {p.stem for p in (root / "validation" / "kohya" / "1_split").glob("*.png")} == {order[1]}
    qtbot.waitUntil(lambda: grid_held(dataset_store) == {order[1]}, timeout=30_000)

    # the percentage keeps working beside the picks
    workbench.validation_spin.setValue(50)
    workbench.validation_apply.click()
    qtbot.waitUntil(lambda: workbench.validation_state.text() == "Applied: 50 % held out for validation.",
                    timeout=30_000)
    assert len(held_over_http(http, dataset_id)) == 2
    qtbot.waitUntil(lambda: workbench.held_out_label.text() == "Now 2 of 4 files held out.", timeout=30_000)
    qtbot.waitUntil(lambda: grid_held(dataset_store) == held_over_http(http, dataset_id), timeout=30_000)
