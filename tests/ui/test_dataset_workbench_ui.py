"""The dataset settings side panel (issue 17 items 4-6) in the Datasets tab against a real server process:
the bucket chart shows the server's buckets for images of known sizes and flags a small bucket, repeats and
the validation split reach the server, export writes a zip of the dataset's files and captions, and a 409
(a trainer running on the dataset) is shown with its message. Export to a folder holds what the zip holds,
and refuses a folder that is not empty. The upscaled warning and the chart's bars show
exactly their images in the grid."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt

from training_studio.ui.datasets.panel import DatasetsPanel
from training_studio.ui.datasets.workbench import SMALL_BUCKET_LEGEND
from training_studio.ui.datasets.workbench_store import PART_SUFFIX
from tests.ui.datasets_fixtures import (  # noqa: F401  (fixtures)
    api_client,
    dataset_store,
    http,
    make_dataset,
    make_job,
    wait_status,
)


def sized_png(width: int, height: int, shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 255 - shade, shade // 2)).save(buffer, "PNG")
    return buffer.getvalue()


# The hand-computed example of tests/server/test_dataset_workbench.py (arithmetic in
# test_dataset_buckets_unit.py): at 512 px, step 64, the six sizes fall into 384×640 (1 image),
# 512×512 (3: 1000², 300², 512²) and 640×384 (2: 1536×1024, 640×384); 300² and 400×600 are upscaled.
SIZES = {"a": (1000, 1000), "b": (300, 300), "c": (1536, 1024), "d": (512, 512), "e": (400, 600), "f": (640, 384)}
CAPTIONS = {"a": "a square", "b": "a small square", "c": "a wide one", "d": "", "e": "a tall one", "f": "wide"}


def sized_dataset(http, name: str = "sizes") -> tuple[str, dict[str, str]]:
    """A committed dataset of the six sized images with captions; (id, letter -> sha256)."""
    dataset_id = http.post("/api/datasets", json={"name": name, "type": "image"}).json()["id"]
    shas: dict[str, str] = {}
    for shade, (letter, (width, height)) in enumerate(SIZES.items()):
        body = sized_png(width, height, shade * 40)
        sha = hashlib.sha256(body).hexdigest()
        shas[letter] = sha
        http.put(f"/api/datasets/{dataset_id}/files/{sha}", params={"filename": f"{letter}.png"}, content=body,
                 headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    http.post(f"/api/datasets/{dataset_id}/commit").raise_for_status()
    for letter, caption in CAPTIONS.items():
        if caption:
            http.put(f"/api/datasets/{dataset_id}/files/{shas[letter]}/caption",
                     json={"caption": caption}).raise_for_status()
    return dataset_id, shas


@pytest.fixture
def panel(dataset_store, qtbot, harness):
    widget = DatasetsPanel(dataset_store)
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    yield widget
    widget.workbench_store.shutdown()
    harness.run(widget.workbench_store.wait_idle())  # no task outlives the test


def open_dataset(panel: DatasetsPanel, dataset_store, qtbot, dataset_id: str) -> None:
    panel.show()
    qtbot.waitUntil(lambda: dataset_store.model.record(dataset_id) is not None, timeout=30_000)
    assert panel.select_dataset(dataset_id)
    qtbot.waitUntil(lambda: panel.workbench.dataset is not None and panel.workbench.dataset.id == dataset_id,
                    timeout=10_000)


def test_bucket_chart_shows_the_servers_buckets_and_flags_the_small_one(panel, dataset_store, http, qtbot):
    dataset_id, _shas = sized_dataset(http)
    open_dataset(panel, dataset_store, qtbot, dataset_id)
    workbench = panel.workbench
    workbench.set_resolution(512)
    workbench.step_spin.setValue(64)
    workbench.batch_spin.setValue(2)
    expected = [("384×640", 1, True), ("512×512", 3, False), ("640×384", 2, False)]
    qtbot.waitUntil(lambda: workbench.chart.rows == expected, timeout=15_000)
    assert "2 upscaled" in workbench.upscaled_label.text()
    assert "1 bucket with fewer than 2 images" in workbench.small_label.text()
    assert SMALL_BUCKET_LEGEND in workbench.small_label.text()
    assert workbench.bucket_summary.text().startswith("6 images in 3 buckets at 512 px")

    # A batch size of 1: every bucket fills a batch, nothing is flagged (recomputed by the debounce).
    workbench.batch_spin.setValue(1)
    qtbot.waitUntil(lambda: workbench.chart.rows == [(label, count, False) for label, count, _ in expected],
                    timeout=15_000)
    assert "Every bucket fills a batch of 1" in workbench.small_label.text()

    # A custom resolution is sent as typed; the chart follows the server's new answer (all six images).
    workbench.set_resolution(1000)
    assert workbench.custom_resolution.isEnabled()
    qtbot.waitUntil(lambda: workbench.report is not None and workbench.report.resolution == 1000, timeout=15_000)
    assert sum(count for _, count, _ in workbench.chart.rows) == 6


def click_link_at_start(qtbot, label) -> None:
    """A real mouse click on the link that starts the label's (one-line) text."""
    label.adjustSize()
    metrics = label.fontMetrics()
    rect = label.contentsRect()
    y = rect.top() + (rect.height() - metrics.height()) // 2 + metrics.height() // 2  # AlignVCenter
    qtbot.mouseClick(label, Qt.MouseButton.LeftButton, pos=QPoint(rect.left() + 4 + metrics.horizontalAdvance("⚠"), y))


def test_the_upscaled_images_and_a_buckets_images_can_be_shown_in_the_grid(panel, dataset_store, http, qtbot):
    dataset_id, shas = sized_dataset(http, "which ones")
    open_dataset(panel, dataset_store, qtbot, dataset_id)
    viewer, workbench = panel.viewer, panel.workbench
    qtbot.waitUntil(lambda: viewer.model.dataset_id == dataset_id and viewer.model.rowCount() == 6, timeout=15_000)
    workbench.set_resolution(512)
    workbench.batch_spin.setValue(2)
    qtbot.waitUntil(lambda: workbench.report is not None and workbench.report.resolution == 512
                    and [row[0] for row in workbench.chart.rows] == ["384×640", "512×512", "640×384"],
                    timeout=15_000)
    every = [shas[letter] for letter in "abcdef"]  # dataset (upload) order
    assert viewer.shown_shas() == every and not viewer.focus_bar.isVisible()

    # "⚠ 2 upscaled" is a link: clicking it shows exactly 300×300 (b) and 400×600 (e), and says so
    label = workbench.upscaled_label
    label.setWordWrap(False)  # one line, so the link's place is known
    with qtbot.waitSignal(workbench.show_files_requested, timeout=5_000):
        click_link_at_start(qtbot, label)
    assert viewer.shown_shas() == [shas["b"], shas["e"]]
    assert viewer.focus_bar.isVisible()
    assert viewer.focus_label.text() == "Showing the 2 images upscaled at 512 px."

    # the filter box narrows within them; "Show all files" brings every file back
    viewer.filter_edit.setText("tall")
    assert viewer.shown_shas() == [shas["e"]]
    viewer.filter_edit.clear()
    qtbot.mouseClick(viewer.show_all_button, Qt.MouseButton.LeftButton)
    assert viewer.shown_shas() == every and not viewer.focus_bar.isVisible()

    # a click on a bar shows that bucket's images: 384×640 holds 400×600 (e); 640×384 holds c and f
    chart = workbench.chart
    qtbot.mouseClick(chart, Qt.MouseButton.LeftButton, pos=QPoint(*chart.row_centre(0)))
    assert viewer.shown_shas() == [shas["e"]]
    assert viewer.focus_label.text() == "Showing the 1 image of bucket 384×640."
    qtbot.mouseClick(chart, Qt.MouseButton.LeftButton, pos=QPoint(*chart.row_centre(2)))
    assert viewer.shown_shas() == [shas["c"], shas["f"]]
    assert viewer.focus_label.text() == "Showing the 2 images of bucket 640×384."

    # another dataset opens with every file shown
    other_id, _ = sized_dataset(http, "other")
    open_dataset(panel, dataset_store, qtbot, other_id)
    qtbot.waitUntil(lambda: viewer.model.dataset_id == other_id and viewer.model.rowCount() == 6, timeout=15_000)
    assert len(viewer.shown_shas()) == 6 and not viewer.focus_bar.isVisible()


def test_repeats_and_validation_split_reach_the_server(panel, dataset_store, http, qtbot):
    dataset_id, _shas = sized_dataset(http, "split")
    open_dataset(panel, dataset_store, qtbot, dataset_id)
    workbench = panel.workbench
    assert workbench.repeats_spin.value() == 10  # the server's default
    assert not workbench.repeats_apply.isEnabled()  # nothing to apply yet
    workbench.repeats_spin.setValue(3)
    assert workbench.repeats_apply.isEnabled()
    qtbot.mouseClick(workbench.repeats_apply, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: workbench.repeats_state.text() == "Applied: 3 repeats.", timeout=15_000)
    assert http.get(f"/api/datasets/{dataset_id}").json()["repeats"] == 3
    # the list refreshes after the change and the spin box keeps the applied value
    qtbot.waitUntil(lambda: dataset_store.model.record(dataset_id).repeats == 3, timeout=15_000)
    assert workbench.repeats_spin.value() == 3 and not workbench.repeats_apply.isEnabled()

    workbench.validation_spin.setValue(50)
    workbench.validation_apply.click()
    qtbot.waitUntil(lambda: workbench.validation_state.text().startswith("Applied: 50 %"), timeout=15_000)
    held = [f for f in http.get(f"/api/datasets/{dataset_id}/files").json() if f["validation"]]
    assert len(held) == 3  # round(6 × 50 %)
    # the file list reloads after the change and the panel says what is held out now
    qtbot.waitUntil(lambda: workbench.held_out_label.text() == "Now 3 of 6 files held out.", timeout=15_000)

    workbench.validation_spin.setValue(0)
    workbench.validation_apply.click()
    qtbot.waitUntil(lambda: workbench.validation_state.text() == "Applied: no validation split.", timeout=15_000)
    assert not any(f["validation"] for f in http.get(f"/api/datasets/{dataset_id}/files").json())
    qtbot.waitUntil(lambda: workbench.held_out_label.text() == "Now no file is held out.", timeout=15_000)


def test_export_writes_a_zip_of_the_files_and_captions(panel, dataset_store, http, qtbot, tmp_path):
    dataset_id, shas = sized_dataset(http, "export me")
    http.patch(f"/api/datasets/{dataset_id}", json={"repeats": 4}).raise_for_status()
    open_dataset(panel, dataset_store, qtbot, dataset_id)
    workbench = panel.workbench
    workbench.layout_combo.setCurrentIndex(workbench.layout_combo.findData("kohya"))
    dialog = workbench.open_export_dialog()
    assert dialog is not None and dialog.isVisible()  # shown with .open(), control came back at once
    target = tmp_path / "out.zip"
    dialog.fileSelected.emit(str(target))  # what choosing a file in the dialog does
    dialog.close()
    qtbot.waitUntil(lambda: workbench.export_state.text().startswith("Exported to"), timeout=30_000)
    assert not (tmp_path / ("out.zip" + PART_SUFFIX)).exists()
    with zipfile.ZipFile(target) as archive:
        names = sorted(archive.namelist())
        images = {name.rsplit("/", 1)[-1][:-4]: hashlib.sha256(archive.read(name)).hexdigest()
                  for name in names if name.endswith(".png")}
        captions = {name.rsplit("/", 1)[-1][:-4]: archive.read(name).decode()
                    for name in names if name.endswith(".txt")}
    assert all(name.startswith("4_export_me/") for name in names), names  # the name made folder-safe
    assert images == shas  # stems come from the display names a.png … f.png
    assert {stem: text for stem, text in captions.items() if text} == {k: v for k, v in CAPTIONS.items() if v}

    # imagefolder layout: files + metadata.jsonl at the root
    workbench.layout_combo.setCurrentIndex(workbench.layout_combo.findData("imagefolder"))
    target2 = tmp_path / "flat.zip"
    workbench.start_export(dataset_id, target2, "imagefolder")
    qtbot.waitUntil(lambda: workbench.export_state.text().startswith(f"Exported to {target2}"), timeout=30_000)
    with zipfile.ZipFile(target2) as archive:
        assert "metadata.jsonl" in archive.namelist()
        assert sorted(n for n in archive.namelist() if n.endswith(".png")) == sorted(f"{k}.png" for k in SIZES)


def folder_contents(root) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("layout", ["kohya", "imagefolder"])
def test_export_to_a_folder_holds_what_the_zip_holds(panel, dataset_store, http, qtbot, tmp_path, layout):
    dataset_id, shas = sized_dataset(http, "to folder")
    http.patch(f"/api/datasets/{dataset_id}",
               json={"repeats": 4, "validation": {"files": [shas["b"]]}}).raise_for_status()
    open_dataset(panel, dataset_store, qtbot, dataset_id)
    workbench = panel.workbench
    workbench.layout_combo.setCurrentIndex(workbench.layout_combo.findData(layout))
    zip_target = tmp_path / "out.zip"
    workbench.start_export(dataset_id, zip_target, layout)
    qtbot.waitUntil(lambda: workbench.export_state.text().startswith(f"Exported to {zip_target}"), timeout=30_000)
    with zipfile.ZipFile(zip_target) as archive:
        expected = {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}

    exports = tmp_path / "exports"
    exports.mkdir()
    dialog = workbench.open_export_folder_dialog()
    assert dialog is not None and dialog.isVisible()  # shown with .open(), control came back at once
    target = exports / "my dataset"  # a new folder
    dialog.fileSelected.emit(str(target))  # what choosing a folder in the dialog does
    dialog.close()
    qtbot.waitUntil(lambda: workbench.export_state.text().startswith(f"Exported to {target}"), timeout=30_000)
    assert folder_contents(target) == expected  # files, captions and layout, byte for byte
    if layout == "kohya":
        assert {name.split("/")[0] for name in expected} == {"4_to_folder", "validation"}
    else:
        assert "metadata.jsonl" in expected and "validation/metadata.jsonl" in expected
    assert sorted(p.name for p in exports.iterdir()) == ["my dataset"]  # no staging folder left
    assert workbench.export_folder_button.isEnabled()

    # an empty folder is filled; a folder that holds something is refused and left as it was
    empty = exports / "empty"
    empty.mkdir()
    workbench.start_folder_export(dataset_id, empty, layout)
    qtbot.waitUntil(lambda: workbench.export_state.text().startswith(f"Exported to {empty}"), timeout=30_000)
    assert folder_contents(empty) == expected
    busy = exports / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    workbench.start_folder_export(dataset_id, busy, layout)
    qtbot.waitUntil(lambda: "was not exported" in workbench.export_state.text(), timeout=30_000)
    assert f"the folder {busy} is not empty" in workbench.export_state.text()
    assert folder_contents(busy) == {"notes.txt": b"mine"}
    assert sorted(p.name for p in exports.iterdir()) == ["busy", "empty", "my dataset"]
    assert workbench.export_folder_button.isEnabled()
    missing = exports / "no such folder" / "inside"
    workbench.start_folder_export(dataset_id, missing, layout)
    qtbot.waitUntil(lambda: "could not write" in workbench.export_state.text(), timeout=30_000)
    assert sorted(p.name for p in exports.iterdir()) == ["busy", "empty", "my dataset"]


def test_export_to_an_unwritable_place_says_so_and_leaves_nothing(panel, dataset_store, http, qtbot, tmp_path):
    dataset_id = make_dataset(http, "tiny", images=2)
    open_dataset(panel, dataset_store, qtbot, dataset_id)
    target = tmp_path / "missing-folder" / "out.zip"
    panel.workbench.start_export(dataset_id, target, "kohya")
    qtbot.waitUntil(lambda: "was not exported" in panel.workbench.export_state.text(), timeout=30_000)
    assert "could not write" in panel.workbench.export_state.text()
    assert not target.parent.exists()
    assert panel.workbench.export_button.isEnabled()


def test_a_409_while_a_trainer_runs_shows_its_message(panel, dataset_store, http, qtbot):
    dataset_id = make_dataset(http, "busy data", images=2)
    job = make_job(http, dataset_id, "long run", 1_000_000, resolution=8, batch_size=2)
    try:
        running = wait_status(http, job["id"], {"running", "failed", "completed", "cancelled"}, timeout=60)
        assert running["status"] == "running", running
        open_dataset(panel, dataset_store, qtbot, dataset_id)
        workbench = panel.workbench
        workbench.repeats_spin.setValue(2)
        workbench.repeats_apply.click()
        qtbot.waitUntil(lambda: "Not applied" in workbench.repeats_state.text(), timeout=15_000)
        text = workbench.repeats_state.text()
        assert "Wait until the training job on this dataset ends" in text
        assert "is being trained on by 'long run'" in text  # the server's own sentence, naming the job
        assert "Nothing was changed." in text
        assert http.get(f"/api/datasets/{dataset_id}").json()["repeats"] == 10  # unchanged
        assert workbench.repeats_apply.isEnabled()  # the user can try again later
    finally:
        http.post(f"/api/training/jobs/{job['id']}/cancel")
        wait_status(http, job["id"], {"cancelled", "failed", "completed"}, timeout=60)
