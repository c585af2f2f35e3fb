"""The Models panel against a real server: the list of trained models, the samples image, Save checkpoint
as… (streamed to disk, nothing half-written on failure), Show in folder, delete; and the whole path from a
dataset made over HTTP through the Train dialog to a trained model shown with its samples."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PySide6.QtCore import QUrl, Qt
from PySide6.QtGui import QDesktopServices, QImage
from PySide6.QtWidgets import QFileDialog

from training_studio.contract.models import ModelStatus, TrainedModel
from training_studio.ui.banner import BannerLevel
from training_studio.ui.datasets.panel import DatasetsPanel
from training_studio.ui.models.list_model import ModelColumn, TrainedModelListModel
from training_studio.ui.models.panel import ModelsPanel
from training_studio.ui.models.store import PART_SUFFIX
from tests.ui.datasets_fixtures import (  # noqa: F401  (fixtures)
    api_client,
    dataset_store,
    http,
    make_dataset,
    model_store,
    model_store_on_request,
    trained_model,
    wait_status,
)


@pytest.fixture
def panel(model_store, qtbot):
    widget = ModelsPanel(model_store)
    qtbot.addWidget(widget)
    widget.resize(1000, 600)
    return widget


def shown(panel: ModelsPanel, model_id: str, qtbot) -> None:
    panel.show()
    qtbot.waitUntil(lambda: panel.model.row_of(model_id) is not None, timeout=15_000)
    assert panel.select_model(model_id)


def test_whole_path_dataset_to_train_dialog_to_model_with_samples(dataset_store, model_store, http, qtbot,
                                                                 qtmodeltester):
    dataset_id = make_dataset(http, "sunsets", images=6)
    datasets = DatasetsPanel(dataset_store)
    models = ModelsPanel(model_store)
    for widget in (datasets, models):
        qtbot.addWidget(widget)
        widget.resize(1000, 640)
    qtmodeltester.check(model_store.model)
    datasets.show()
    qtbot.waitUntil(lambda: dataset_store.model.row_of(dataset_id) is not None, timeout=10_000)
    datasets.select_dataset(dataset_id)

    datasets.train_action.trigger()
    dialog = datasets.train_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.current_base_model() is not None, timeout=10_000)
    dialog.name_edit.setText("sunset model")
    dialog.steps_spin.setValue(8)
    dialog.params_form.fields["resolution"].editor.setValue(8)
    dialog.params_form.fields["batch_size"].editor.setValue(4)
    with qtbot.waitSignal(datasets.job_created, timeout=10_000) as created:
        dialog.create_button.click()
    job_id = created.args[0]
    assert "sunset model" in datasets.notice.text
    final = wait_status(http, job_id, {"completed", "failed", "cancelled"}, timeout=60)
    assert final["status"] == "completed", final

    models.show()
    qtbot.waitUntil(lambda: model_store.model.rowCount() == 1, timeout=15_000)
    record = model_store.model.record_at(0)
    assert record.training_job_id == job_id and record.name == "sunset model"
    row = [model_store.model.index(0, c).data() for c in range(model_store.model.columnCount())]
    assert row[ModelColumn.NAME] == "sunset model"
    assert row[ModelColumn.BASE_MODEL] == "builtin-linear-vae"
    assert row[ModelColumn.STATUS] == "Ready"
    assert row[ModelColumn.SIZE].endswith("KB") or row[ModelColumn.SIZE].endswith("MB")

    models.select_model(record.id)
    qtbot.waitUntil(lambda: models.samples_view.image is not None, timeout=10_000)
    expected = QImage.fromData(http.get(f"/api/models/{record.id}/samples").content)
    assert models.samples_view.image.size() == expected.size()
    assert models.samples_view.image.convertToFormat(QImage.Format.Format_RGB32) == \
        expected.convertToFormat(QImage.Format.Format_RGB32)
    assert not models.samples_view.pixmap().isNull()
    assert "sunset model" in models.details_label.text()
    # The job that made it, by its name (issue 15), never by its id.
    qtbot.waitUntil(lambda: "Training job: “sunset model”" in models.details_label.text(), timeout=10_000)
    assert job_id not in models.details_label.text()


def test_save_checkpoint_streams_the_servers_file_to_disk(panel, model_store, http, qtbot, tmp_path, monkeypatch):
    model = trained_model(http, "saver")
    shown(panel, model["id"], qtbot)
    target = tmp_path / "out" / "saver.npz"
    target.parent.mkdir()
    asked: list[str] = []

    def get_save_file_name(parent, caption, directory, filter_text, *args, **kwargs):
        asked.append(directory)
        return str(target), filter_text

    monkeypatch.setattr(QFileDialog, "getSaveFileName", get_save_file_name)
    with qtbot.waitSignal(model_store.checkpoint_saved, timeout=15_000) as saved:
        panel.save_action.trigger()
    assert saved.args == [model["id"], str(target)]
    assert asked and asked[0].endswith("saver.npz")  # the suggestion keeps the checkpoint's extension
    server_bytes = http.get(f"/api/models/{model['id']}/checkpoint").content
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(server_bytes).hexdigest()
    assert list(target.parent.iterdir()) == [target]  # no .part left behind
    assert "Checkpoint saved to" in panel.notice.text
    assert not panel.download_row.isVisible()


def test_save_checkpoint_into_an_unwritable_place_fails_cleanly(panel, model_store, http, qtbot, tmp_path,
                                                                 monkeypatch):
    model = trained_model(http, "nowhere")
    shown(panel, model["id"], qtbot)
    target = tmp_path / "missing-folder" / "model.npz"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(target), ""))
    with qtbot.waitSignal(model_store.checkpoint_failed, timeout=15_000) as failed:
        panel.save_action.trigger()
    assert "could not write" in failed.args[1] and str(target) in failed.args[1]
    assert not target.exists() and not target.with_name(target.name + PART_SUFFIX).exists()
    assert panel.notice.level is BannerLevel.ERROR and "could not write" in panel.notice.text


def test_checkpoint_of_a_model_deleted_meanwhile_reports_the_server_and_leaves_nothing(
        panel, model_store, http, qtbot, tmp_path):
    model = trained_model(http, "vanished")
    shown(panel, model["id"], qtbot)
    assert http.delete(f"/api/models/{model['id']}").status_code == 200
    folder = tmp_path / "downloads"
    folder.mkdir()
    with qtbot.waitSignal(model_store.checkpoint_failed, timeout=15_000) as failed:
        model_store.save_checkpoint(model["id"], folder / "gone.npz")
    assert "Not found" in failed.args[1]
    assert list(folder.iterdir()) == []


def test_save_checkpoint_cancelled_in_the_dialog_does_nothing(panel, model_store, http, qtbot, monkeypatch):
    model = trained_model(http, "undecided")
    shown(panel, model["id"], qtbot)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: ("", ""))
    panel.save_action.trigger()
    assert not model_store.is_downloading(model["id"])


def test_show_in_folder_opens_the_models_directory_of_a_local_server(panel, http, qtbot, monkeypatch):
    model = trained_model(http, "located")
    shown(panel, model["id"], qtbot)
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    assert panel.folder_action.isEnabled()
    panel.folder_action.trigger()
    assert [url.toLocalFile() for url in opened] == [str(Path(model["path"]).parent)]


def test_show_in_folder_is_off_for_a_model_without_a_local_path(qtmodeltester):
    model = TrainedModelListModel()
    qtmodeltester.check(model)
    model.apply_snapshot([TrainedModel(id="r", name="remote", base_model="x", status=ModelStatus.READY,
                                       created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z",
                                       size_bytes=1_500_000)])
    from training_studio.ui.models.panel import _local_folder

    assert _local_folder(model.record("r")) is None
    assert model.index(0, ModelColumn.SIZE).data() == "1.5 MB"
    assert model.index(0, ModelColumn.STATUS).data() == "Ready"


def test_a_narrow_models_table_keeps_the_name_readable_and_the_rest_in_tooltips(panel, http, qtbot, qtmodeltester):
    model_id = trained_model(http, name="a model with a long name, trained on watercolour cats")["id"]
    qtmodeltester.check(panel.model)
    shown(panel, model_id, qtbot)
    header = panel.table.horizontalHeader()
    # The bug: at 700 px the name was "pixel…" while Base model, Status, Size and Created kept their width.
    panel.resize(700, 600)
    qtbot.waitUntil(lambda: header.sectionSize(ModelColumn.CREATED) < 140, timeout=5_000)
    assert header.sectionSize(ModelColumn.NAME) >= 120
    row = panel.model.row_of(model_id)
    record = panel.model.record(model_id)
    assert panel.model.index(row, ModelColumn.CREATED).data(Qt.ItemDataRole.ToolTipRole) == \
        panel.model.index(row, ModelColumn.CREATED).data()
    assert panel.model.index(row, ModelColumn.BASE_MODEL).data(Qt.ItemDataRole.ToolTipRole) == record.base_model
    assert panel.model.index(row, ModelColumn.STATUS).data(Qt.ItemDataRole.ToolTipRole) == "Ready"


def test_delete_model_answered_no_keeps_and_yes_deletes(panel, model_store, http, qtbot, monkeypatch):
    model = trained_model(http, "doomed")
    shown(panel, model["id"], qtbot)
    panel.delete_action.trigger()
    box = panel.pending_question
    assert "“doomed”" in box.text() and box.defaultButton() is box.keep_button
    assert box.confirm_button.text() == "&Delete model" and box.keep_button.text() == "&Keep it"
    box.keep_button.click()
    assert [m["id"] for m in http.get("/api/models").json()] == [model["id"]]

    panel.delete_action.trigger()
    with qtbot.waitSignal(model_store.delete_succeeded, timeout=10_000):
        panel.pending_question.confirm_button.click()
    assert http.get("/api/models").json() == []
    assert model_store.model.rowCount() == 0
    assert not Path(model["path"]).exists()
    assert "Deleted the model “doomed”" in panel.notice.text
    assert panel.empty_label.isVisible()


def test_models_list_refresh_failure_is_shown(panel, model_store, server, http, qtbot):
    model = trained_model(http, "kept")
    shown(panel, model["id"], qtbot)
    server.stop()
    with qtbot.waitSignal(model_store.refresh_failed, timeout=15_000):
        model_store.request_refresh()
    assert panel.notice.level is BannerLevel.WARNING and "Could not refresh the models" in panel.notice.text
    assert model_store.model.rowCount() == 1


def test_a_cancelled_checkpoint_download_leaves_nothing_and_says_so(panel, model_store, http, qtbot, tmp_path):
    model = trained_model(http, "interrupted")
    shown(panel, model["id"], qtbot)
    folder = tmp_path / "downloads"
    folder.mkdir()
    with qtbot.waitSignal(model_store.checkpoint_failed, timeout=10_000) as failed:
        model_store.save_checkpoint(model["id"], folder / "x.npz")
        assert model_store.is_downloading(model["id"])
        model_store.cancel_checkpoint(model["id"])
    assert "cancelled" in failed.args[1] and "nothing was saved" in failed.args[1]
    assert list(folder.iterdir()) == []
    assert not model_store.is_downloading(model["id"])
    assert panel.save_action.isEnabled()  # the user can try again


def test_a_big_checkpoint_streams_in_chunks_with_progress_and_the_gui_stays_responsive(
        panel, model_store, http, qtbot, tmp_path, monkeypatch, stall_probe):
    dataset_id = make_dataset(http, "big", images=4)
    from tests.ui.jobs_helpers import make_job

    job = make_job(http, dataset_id, "big model", 2, resolution=64, latent_dim=256, batch_size=4)
    assert wait_status(http, job["id"], {"completed", "failed"}, timeout=60)["status"] == "completed"
    model = next(m for m in http.get("/api/models").json() if m["training_job_id"] == job["id"])
    assert model["size_bytes"] > 10_000_000  # big enough for many 1 MiB chunks
    shown(panel, model["id"], qtbot)
    target = tmp_path / "big.npz"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(target), ""))
    progress: list[tuple[int, int | None]] = []
    model_store.checkpoint_progress.connect(lambda _id, done, total: progress.append((done, total)))
    row_shown: list[bool] = []  # connected after the panel's slot: sees the row the panel just showed
    model_store.checkpoint_progress.connect(lambda *args: row_shown.append(panel.download_row.isVisible()))
    stall_probe.longest_gap = 0.0
    stall_probe.start()
    with qtbot.waitSignal(model_store.checkpoint_saved, timeout=30_000):
        panel.save_action.trigger()
    assert len(progress) >= 10
    assert row_shown and all(row_shown) and not panel.download_row.isVisible()
    assert "big.npz" in panel.notice.text
    assert all(total == model["size_bytes"] for _, total in progress)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert progress[-1][0] == model["size_bytes"] == target.stat().st_size
    digest = hashlib.sha256()
    with http.stream("GET", f"/api/models/{model['id']}/checkpoint") as response:
        for chunk in response.iter_bytes():
            digest.update(chunk)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest.hexdigest()
    assert stall_probe.longest_gap < 1.0


def test_an_empty_first_list_says_none_yet_without_waiting_for_the_next_refresh(model_store_on_request, qtbot):
    """As for datasets: a server with no models says so as soon as its first answer is in."""
    store = model_store_on_request  # no second refresh during the test
    widget = ModelsPanel(store)
    qtbot.addWidget(widget)
    assert widget.empty_label.text() == "Loading models…"
    with qtbot.waitSignal(store.refresh_succeeded, timeout=10_000):
        widget.show()
    assert widget.table_stack.currentWidget() is widget.empty_label
    assert widget.empty_label.text().startswith("No trained models yet.")
