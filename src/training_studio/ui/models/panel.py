"""The Models panel: the trained models of the server, the samples image of the selected one, and actions.

`ModelsPanel` is a view over `ModelStore`: a toolbar (Save checkpoint as…, Show in folder, Delete…,
Refresh), a notice bar for errors and results, the model table (sortable through a proxy, selection kept
across refreshes) and, beside it, the selected model's details, samples image (scaled to fit, kept
sharp) and the intermediate checkpoints its training run saved (a `CheckpointTable` as the job details'
Checkpoints tab has: Save as… by its button, Enter, a double-click or the context menu, asking where with a
QFileDialog opened with `open()`, progress and the outcome under it). Save checkpoint as… asks for a
file with QFileDialog from a plain slot and hands the download to the store (streamed to disk off the GUI
thread), showing its progress with a Cancel button; Show in folder opens the model's directory with QDesktopServices when the server is local (it gave a `path` that
exists here); Delete asks for confirmation naming the model. Auto-refresh is on while the panel is shown.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract.models import ModelStatus, TrainedModel
from training_studio.ui.banner import BannerLevel
from training_studio.ui.datasets.format import format_bytes, format_created, status_text
from training_studio.ui.icons import decorate_toolbar
from training_studio.ui.jobs.details.checkpoints import CheckpointTable, DownloadRow, copy_to_clipboard, save_dialog
from training_studio.ui.jobs.details.checkpoints_store import suggested_filename
from training_studio.ui.notifications import post_notice
from training_studio.ui.models.list_model import ModelColumn
from training_studio.ui.models.store import ModelStore
from training_studio.ui.record_panel import ListTexts, RecordListPanel, TableLayout
from training_studio.ui.settings import remember_folder, remembered_folder

__all__ = ["ModelsPanel", "ScaledImageLabel"]

MODEL_TEXTS = ListTexts(
    noun="models", loading="Loading models…", failed="The models could not be loaded.",
    none_yet="No trained models yet.\nA model appears here when a training job completes.")
MODEL_TABLE = TableLayout(stretch=ModelColumn.NAME,
                          fit_contents=(ModelColumn.BASE_MODEL, ModelColumn.STATUS, ModelColumn.SIZE),
                          created=ModelColumn.CREATED,
                          shrinks_first=(ModelColumn.CREATED, ModelColumn.BASE_MODEL, ModelColumn.STATUS))


class ScaledImageLabel(QLabel):
    """Shows one image scaled to fit (never up-scaled beyond 4× for tiny sample grids), keeping its ratio."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setWordWrap(True)

    @property
    def image(self) -> QImage | None:
        return self._image

    def set_image(self, image: QImage | None, text: str = "") -> None:
        self._image = image
        if image is None:
            self.setPixmap(QPixmap())
            self.setText(text)
        else:
            self.setText("")
            self._rescale()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._image is not None:
            self._rescale()

    def _rescale(self) -> None:
        assert self._image is not None
        ratio = self.devicePixelRatioF()
        box = self.contentsRect().size()
        limit = self._image.size() * 4
        box = box.boundedTo(limit / ratio) if ratio > 0 else box
        # Sample grids are small pixel images: scale without smoothing so the pixels stay crisp.
        scaled = self._image.scaled(box * ratio, Qt.AspectRatioMode.KeepAspectRatio,
                                    Qt.TransformationMode.FastTransformation)
        pixmap = QPixmap.fromImage(scaled)
        pixmap.setDevicePixelRatio(ratio)
        self.setPixmap(pixmap)


class ModelsPanel(RecordListPanel):
    """The "Models" tab; see the module docstring."""

    store: ModelStore

    def __init__(self, store: ModelStore, parent: QWidget | None = None) -> None:
        super().__init__(store, texts=MODEL_TEXTS, parent=parent)
        self.setObjectName("modelsPanel")
        self.setAccessibleName("Trained models")
        self._shown_samples_for: str | None = None

        self.save_action = QAction("&Save checkpoint as…", self)
        self.save_action.setToolTip("Download the selected model's checkpoint file")
        self.save_action.triggered.connect(self.choose_checkpoint_target)
        self.folder_action = QAction("Show in &folder", self)
        self.folder_action.setToolTip("Open the folder that holds the model on this computer")
        self.folder_action.triggered.connect(self.show_in_folder)
        self._build_delete_and_refresh_actions()
        self.delete_action.triggered.connect(self.confirm_delete_selected)
        toolbar = self._build_toolbar(self._menu_actions())
        decorate_toolbar(toolbar, {self.save_action: "download", self.folder_action: "folder-open",
                                   self.delete_action: "trash-2", self.refresh_action: "refresh-cw"})
        self._build_notice("modelsNotice")
        self.progress = QProgressBar(self)
        self.progress.setObjectName("checkpointProgress")
        self.progress.setAccessibleName("Checkpoint download")
        self.progress.setTextVisible(True)
        self.cancel_download_button = QPushButton("Cancel download", self)
        self.cancel_download_button.clicked.connect(self._cancel_download)
        self.download_row = QWidget(self)
        row = QHBoxLayout(self.download_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_download_button)
        self.download_row.hide()
        self._downloading_id: str | None = None

        self._build_table("modelTable", "Trained models", MODEL_TABLE)

        details = QWidget(self)
        details_layout = QVBoxLayout(details)
        details_layout.setContentsMargins(6, 0, 0, 0)
        self.details_label = QLabel(details)
        self.details_label.setTextFormat(Qt.TextFormat.PlainText)
        self.details_label.setWordWrap(True)
        self.details_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        samples_title = QLabel("Samples", details)
        font = samples_title.font()
        font.setBold(True)
        samples_title.setFont(font)
        self.samples_view = ScaledImageLabel(details)
        self.samples_view.setObjectName("samplesImage")
        self.samples_view.setAccessibleName("Sample images of the selected model")
        details_layout.addWidget(self.details_label)
        details_layout.addWidget(samples_title)
        details_layout.addWidget(self.samples_view, 2)
        details_layout.addWidget(self._build_intermediate(details), 1)

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.table_stack)
        splitter.addWidget(details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(toolbar)
        layout.addWidget(self.notice)
        layout.addWidget(self.download_row)
        layout.addWidget(splitter, 1)

        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        store.models_changed.connect(self._on_models_changed)
        self._connect_refresh_reports()
        store.delete_succeeded.connect(
            lambda _id, name: self._say(f"Deleted the model “{name}”.", BannerLevel.INFO))
        store.delete_failed.connect(lambda _id, message: self._say(message, BannerLevel.ERROR))
        store.samples_loaded.connect(self._on_samples_loaded)
        store.job_name_known.connect(self._on_job_name_known)
        store.samples_missing.connect(self._on_samples_missing)
        store.samples_failed.connect(self._on_samples_failed)
        store.checkpoint_started.connect(self._on_checkpoint_started)
        store.checkpoint_progress.connect(self._on_checkpoint_progress)
        store.checkpoint_saved.connect(self._on_checkpoint_saved)
        store.checkpoint_failed.connect(self._on_checkpoint_failed)
        store.unexpected_error.connect(lambda text: self._say(text, BannerLevel.ERROR))
        store.intermediate_listed.connect(self._on_intermediate_listed)
        saver = store.intermediate_saver
        saver.started.connect(self.intermediate_download.on_started)
        saver.progress.connect(self.intermediate_download.on_progress)
        saver.saved.connect(self.intermediate_download.on_saved)
        saver.failed.connect(self.intermediate_download.on_failed)
        for signal in (saver.started, saver.saved, saver.failed):
            signal.connect(self._update_intermediate_actions)
        self._update_state()
        self._show_details(None)

    # user intent ------------------------------------------------------------------------------------------------------
    def selected_model(self) -> TrainedModel | None:
        return self._selected_record(TrainedModel)

    def select_model(self, model_id: str) -> bool:
        return self._select_record(model_id)

    def choose_checkpoint_target(self) -> None:
        """Plain slot: ask where to save (a nested loop is fine here, never in a coroutine), then download."""
        model = self.selected_model()
        if model is None or model.status is not ModelStatus.READY or self.store.is_downloading(model.id):
            return
        suggested = Path(remembered_folder("checkpoints", str(Path.home()))) / _suggested_filename(model)
        path, _filter = QFileDialog.getSaveFileName(self, f"Save the checkpoint of “{model.name}”", str(suggested),
                                                    "All files (*)")
        if not path:
            return
        remember_folder("checkpoints", Path(path).parent)
        self.store.save_checkpoint(model.id, path)

    def choose_intermediate_target(self) -> None:
        """Plain slot: ask where to save the selected intermediate checkpoint with a dialog opened with
        `open()` (no nested event loop); its `fileSelected` starts the download."""
        model = self.selected_model()
        name = self.intermediate_table.selected_name()
        if model is None or name is None or self.store.intermediate_saver.is_busy():
            return
        if self.intermediate_dialog is not None:
            self.intermediate_dialog.raise_()
            return
        folder = Path(remembered_folder("checkpoints", str(Path.home())))
        dialog = save_dialog(self, f"Save the intermediate checkpoint {name.rsplit('/', 1)[-1]} of “{model.name}”",
                             folder / suggested_filename(model.name, name))
        model_id = model.id
        dialog.fileSelected.connect(lambda path: self._intermediate_target_chosen(model_id, name, path))
        dialog.finished.connect(self._intermediate_dialog_closed)
        self.intermediate_dialog = dialog
        dialog.open()

    def _intermediate_target_chosen(self, model_id: str, name: str, path: str) -> None:
        if path:
            remember_folder("checkpoints", Path(path).parent)
            self.store.save_intermediate(model_id, name, path)

    def _intermediate_dialog_closed(self, *_args: object) -> None:
        self.intermediate_dialog = None

    def show_in_folder(self) -> bool:
        model = self.selected_model()
        folder = _local_folder(model)
        if folder is None:
            return False
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self._say(f"Could not open the folder {folder}.", BannerLevel.ERROR)
            return False
        return True

    def confirm_delete_selected(self) -> None:
        model = self.selected_model()
        if model is None:
            return
        self._confirm_delete(
            model.id, "Delete model",
            f"Delete the trained model “{model.name}”?\n\nIts checkpoint and samples are removed from the server.")

    # reactions ---------------------------------------------------------------------------------------------------
    def _say(self, text: str, level: BannerLevel) -> None:
        # Information is a passing notice of the window (it goes by itself); problems stay in the banner.
        if level is not BannerLevel.INFO or not post_notice(self, text):
            self.notice.show_message(text, level)
        self._update_actions()

    def _on_selection_changed(self, *args: object) -> None:
        self._show_details(self.selected_model())

    def _on_models_changed(self) -> None:
        self._update_state()
        model = self.selected_model()
        self._show_details(model, only_if_changed=True)

    def _show_details(self, model: TrainedModel | None, *, only_if_changed: bool = False) -> None:
        self._update_actions()
        self._show_intermediate(model)
        if model is None:
            self.details_label.setText("Select a model to see its details and samples.")
            self.samples_view.set_image(None, "")
            self._shown_samples_for = None
            return
        lines = [model.name, f"Base model: {model.base_model}", f"Status: {status_text(model.status)}",
                 f"Size: {format_bytes(model.size_bytes)}", f"Created: {format_created(model.created_at)}"]
        if model.training_job_id:
            # The job by its name, as the Jobs tab shows it; the id only while the name is being asked for.
            name = self.store.job_name(model.training_job_id)
            if name is None:
                self.store.request_job_name(model.training_job_id)
            if name:
                lines.append(f"Training job: “{name}”")
            elif self.store.job_not_found(model.training_job_id):
                lines.append("Training job: no longer on the server")
            else:
                lines.append("Training job: …")
        if model.error:
            lines.append(f"Error: {model.error}")
        self.details_label.setText("\n".join(lines))
        key = f"{model.id}@{model.updated_at}"
        if only_if_changed and key == self._shown_samples_for:
            return
        self._shown_samples_for = key
        if model.status is ModelStatus.READY:
            self.samples_view.set_image(None, "Loading samples…")
            self.store.request_samples(model.id)
        else:
            text = "The trainer is still writing this model." if model.status is ModelStatus.PROCESSING \
                else "This model has no samples."
            self.samples_view.set_image(None, text)

    # intermediate checkpoints ---------------------------------------------------------------------------------
    def _build_intermediate(self, parent: QWidget) -> QWidget:
        section = QWidget(parent)
        section.setObjectName("intermediateCheckpoints")
        layout = QVBoxLayout(section)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.setSpacing(4)
        title_row = QHBoxLayout()
        title = QLabel("Intermediate checkpoints", section)
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        self.intermediate_save_action = QAction("&Save as…", self)
        self.intermediate_save_action.setToolTip("Save the selected intermediate checkpoint to a file on this "
                                                 "computer")
        self.intermediate_save_action.triggered.connect(self.choose_intermediate_target)
        self.intermediate_copy_action = QAction("&Copy name", self)
        self.intermediate_copy_action.triggered.connect(
            lambda: copy_to_clipboard(self.intermediate_table.selected_name()))
        self.intermediate_save_button = QPushButton("Save as…", section)
        self.intermediate_save_button.setObjectName("saveIntermediateCheckpoint")
        self.intermediate_save_button.setToolTip(self.intermediate_save_action.toolTip())
        self.intermediate_save_button.clicked.connect(self.intermediate_save_action.trigger)
        title_row.addWidget(title, 1)
        title_row.addWidget(self.intermediate_save_button)
        layout.addLayout(title_row)
        self.intermediate_stack = QStackedWidget(section)
        self.intermediate_table = CheckpointTable(self.store.intermediate_model, self.intermediate_stack, compact=True)
        self.intermediate_table.setObjectName("intermediateCheckpointsTable")
        self.intermediate_table.setAccessibleName("Intermediate checkpoints of the selected model")
        self.intermediate_table.menu_actions = [self.intermediate_save_action, self.intermediate_copy_action]
        self.intermediate_table.save_requested.connect(self.intermediate_save_action.trigger)
        self.intermediate_table.selectionModel().selectionChanged.connect(self._update_intermediate_actions)
        self.intermediate_state = QLabel(self.intermediate_stack)
        self.intermediate_state.setObjectName("intermediateCheckpointsState")
        self.intermediate_state.setWordWrap(True)
        self.intermediate_state.setTextFormat(Qt.TextFormat.PlainText)
        self.intermediate_state.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.intermediate_stack.addWidget(self.intermediate_table)
        self.intermediate_stack.addWidget(self.intermediate_state)
        layout.addWidget(self.intermediate_stack, 1)
        self.intermediate_download = DownloadRow(section)
        self.intermediate_download.cancel_requested.connect(self.store.intermediate_saver.cancel)
        layout.addWidget(self.intermediate_download)
        self.intermediate_dialog: QFileDialog | None = None
        self.intermediate_section = section
        return section

    def _show_intermediate(self, model: TrainedModel | None) -> None:
        self.intermediate_section.setVisible(model is not None)
        if model is None:
            self.store.request_intermediate(None)
        elif model.id != self.store.intermediate_for:
            self.intermediate_state.setText("Loading intermediate checkpoints…")
            self.intermediate_stack.setCurrentWidget(self.intermediate_state)
            self.store.request_intermediate(model.id)
        self._update_intermediate_actions()

    def _on_intermediate_listed(self, model_id: str, text: str) -> None:
        if not self._is_selected(model_id):
            return
        if text:
            self.intermediate_state.setText(text)
            self.intermediate_stack.setCurrentWidget(self.intermediate_state)
        else:
            self.intermediate_stack.setCurrentWidget(self.intermediate_table)
        self._update_intermediate_actions()

    def _update_intermediate_actions(self, *_args: object) -> None:
        enabled = self.intermediate_table.selected_name() is not None \
            and not self.store.intermediate_saver.is_busy()
        self.intermediate_save_action.setEnabled(enabled)
        self.intermediate_save_button.setEnabled(enabled)
        self.intermediate_copy_action.setEnabled(self.intermediate_table.selected_name() is not None)

    def _on_job_name_known(self, job_id: str, name: str) -> None:
        model = self.selected_model()
        if model is not None and model.training_job_id == job_id:
            self._show_details(model, only_if_changed=True)

    def _is_selected(self, model_id: str) -> bool:
        model = self.selected_model()
        return model is not None and model.id == model_id

    def _on_samples_loaded(self, model_id: str, image: QImage) -> None:
        if self._is_selected(model_id):
            self.samples_view.set_image(image)

    def _on_samples_missing(self, model_id: str, text: str) -> None:
        if self._is_selected(model_id):
            self.samples_view.set_image(None, text)

    def _on_samples_failed(self, model_id: str, message: str) -> None:
        if self._is_selected(model_id):
            self.samples_view.set_image(None, message)
            self._say(message, BannerLevel.ERROR)

    def _on_checkpoint_started(self, model_id: str, target: str) -> None:
        self._downloading_id = model_id
        self.progress.setRange(0, 0)
        self.progress.setFormat(f"Saving checkpoint to {target}…")
        self.download_row.show()
        self._update_actions()

    def _cancel_download(self) -> None:
        if self._downloading_id is not None:
            self.store.cancel_checkpoint(self._downloading_id)

    def _on_checkpoint_progress(self, model_id: str, done: int, total: int | None) -> None:
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))
            self.progress.setFormat(f"Saving checkpoint: {format_bytes(done)} of {format_bytes(total)}")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(f"Saving checkpoint: {format_bytes(done)}")

    def _on_checkpoint_saved(self, model_id: str, target: str) -> None:
        self.download_row.hide()
        self._say(f"Checkpoint saved to {target}.", BannerLevel.INFO)

    def _on_checkpoint_failed(self, model_id: str, message: str) -> None:
        self.download_row.hide()
        self._say(message, BannerLevel.ERROR)

    def _menu_actions(self) -> tuple[QAction, ...]:
        return (self.save_action, self.folder_action, self.delete_action)

    def _update_actions(self, *args: object) -> None:
        model = self.selected_model()
        ready = model is not None and model.status is ModelStatus.READY
        self.save_action.setEnabled(ready and not self.store.is_downloading(model.id))  # type: ignore[union-attr]
        self.folder_action.setEnabled(_local_folder(model) is not None)
        self.delete_action.setEnabled(model is not None and not self.store.is_deleting(model.id))


def _local_folder(model: TrainedModel | None) -> Path | None:
    """The folder holding the model on this computer; None for a remote server (no `path`) or a stale one."""
    if model is None or not model.path:
        return None
    path = Path(model.path)
    folder = path if path.is_dir() else path.parent
    return folder if folder.is_dir() else None


def _suggested_filename(model: TrainedModel) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model.name).strip("._") or "model"
    suffix = Path(model.path).suffix if model.path else ""
    return f"{stem}{suffix or '.ckpt'}"
