"""The Datasets panel: the datasets of the server, the files of the selected one, and what to do with it.

`DatasetsPanel` is a view: a toolbar (New dataset…, Train…, Delete…, Refresh), a notice bar for errors and
results (never a modal box for routine trouble), the dataset table over `DatasetListModel` (sortable
through a proxy, selection kept across refreshes), and the `DatasetViewer` of the selected dataset below,
with the `DatasetWorkbench` settings side panel beside it (issue 17: automatic captions, buckets, repeats,
validation, export; its `WorkbenchStore` owns those client calls). The workbench's "Caption with…" action
is on the toolbar and the table's context menu too; when a caption job completes the files are reloaded so
the grid shows the new captions. The grid's "Use for validation" / "Use for training" picks are turned
into the dataset's new set of held-out files here and sent through the workbench, and the workbench's
requests to see the upscaled images or a bucket's go to the grid (`DatasetViewer.show_only_files`).
It turns auto-refresh on while it is visible. Delete asks for confirmation naming the dataset, from a
plain slot (never inside a coroutine); Train… opens the `TrainDialog` with `open()`; New dataset… opens
the import flow built by `import_factory` (a widget or dialog with a `dataset_created(str)` signal). When
the server accepts a job, `job_created(job_id)` is emitted for the app to show that job in the monitor.
`open_train_again(job)` opens the same dialog filled from a finished job (ui.datasets.train_again calls it
from other tabs); the dialog gets the app's `template_store` for its Template combo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QSplitter, QToolButton, QVBoxLayout, QWidget

from training_studio.contract.models import Dataset, DatasetStatus, TrainingJob
from training_studio.ui.banner import BannerLevel
from training_studio.ui.datasets.files_model import FileRole
from training_studio.ui.datasets.list_model import DatasetColumn
from training_studio.ui.datasets.store import DatasetStore
from training_studio.ui.datasets.template_store import TemplateStore
from training_studio.ui.datasets.train_dialog import TrainDialog
from training_studio.ui.datasets.viewer import DatasetViewer
from training_studio.ui.datasets.workbench import DatasetWorkbench
from training_studio.ui.datasets.workbench_store import WorkbenchStore
from training_studio.ui.icons import decorate_toolbar
from training_studio.ui.notifications import post_notice
from training_studio.ui.record_panel import ROW_HEIGHT, ListTexts, RecordListPanel, TableLayout
from training_studio.ui.side_panel_splitter import SidePanelSplitter

__all__ = ["DatasetsPanel", "ImportFactory"]

log = logging.getLogger(__name__)

ImportFactory = Callable[[QWidget], QWidget]  # parent -> widget/dialog with a dataset_created(str) signal

# The width the file grid and caption pane need to be of use (two columns of thumbnails beside the caption
# editor); below it plus the settings' minimum, the settings fold away.
FILES_MIN_COMFORT_WIDTH = 540
DATASET_TEXTS = ListTexts(
    noun="datasets", loading="Loading datasets…", failed="The datasets could not be loaded.",
    none_yet="No datasets yet.\nUse “New dataset…” to make one from images on this computer.")
DATASET_TABLE = TableLayout(stretch=DatasetColumn.NAME,
                            fit_contents=(DatasetColumn.TYPE, DatasetColumn.FILES, DatasetColumn.STATUS),
                            created=DatasetColumn.CREATED,
                            shrinks_first=(DatasetColumn.CREATED, DatasetColumn.STATUS))


class DatasetsPanel(RecordListPanel):
    """The "Datasets" tab; see the module docstring."""

    job_created = Signal(str)       # job id, once the server accepted a job from the Train dialog
    show_requested = Signal()       # the user asked to see a dataset here (a notice's "Show dataset")

    store: DatasetStore

    def __init__(self, store: DatasetStore, *, import_factory: ImportFactory | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(store, texts=DATASET_TEXTS, parent=parent)
        self.import_factory = import_factory
        self.train_dialog: TrainDialog | None = None
        # The names of existing jobs (set by ui.datasets.wiring from the jobs store), for unique default names.
        self.taken_job_names: Callable[[], Iterable[str]] | None = None
        # The server's job templates (set by ui.datasets.wiring): the Train dialog's Template combo.
        self.template_store: TemplateStore | None = None
        self.import_widget: QWidget | None = None
        self._select_when_listed: str | None = None
        self.setObjectName("datasetsPanel")
        self.setAccessibleName("Datasets")

        # actions ------------------------------------------------------------------------------------------
        self.new_action = QAction("&New dataset…", self)
        self.new_action.setToolTip("Create a dataset from files on this computer")
        self.new_action.triggered.connect(self.open_new_dataset)
        self.train_action = QAction("&Train…", self)
        self.train_action.setToolTip("Start a training job on the selected dataset")
        self.train_action.triggered.connect(self.open_train_dialog)
        self._build_delete_and_refresh_actions()
        self.delete_action.setToolTip("Delete the selected dataset (Delete)")
        self.delete_action.triggered.connect(self.confirm_delete_selected)
        self.refresh_action.setToolTip("Refresh the dataset list now")
        toolbar = self._build_toolbar((self.new_action, self.train_action, self.delete_action))
        decorate_toolbar(toolbar, {self.new_action: "folder-plus", self.train_action: "play",
                                   self.delete_action: "trash-2", self.refresh_action: "refresh-cw"})
        self._build_notice("datasetsNotice")

        # table ----------------------------------------------------------------------------------------------
        self._build_table("datasetTable", "Datasets", DATASET_TABLE)
        self.table.doubleClicked.connect(lambda index: self.open_train_dialog())

        self.viewer = DatasetViewer(store, self)
        # Issue 17: the settings side panel (buckets, repeats, validation, export) beside the file grid.
        self.workbench_store = WorkbenchStore(store.client, self)
        self.workbench = DatasetWorkbench(self.workbench_store, self)
        self.workbench_store.update_succeeded.connect(lambda *_: store.request_refresh())
        self.workbench_store.unexpected_error.connect(
            lambda text: self.notice.show_message(text, BannerLevel.ERROR))
        store.files_loaded.connect(self._on_files_loaded)
        self.caption_action = self.workbench.caption_action
        toolbar.insertAction(self.delete_action, self.caption_action)
        decorate_toolbar(toolbar, {self.caption_action: "zap"})
        caption_button = toolbar.widgetForAction(self.caption_action)
        if isinstance(caption_button, QToolButton):
            caption_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.workbench.caption_counts = self._caption_counts
        self.workbench_store.caption_finished.connect(self._on_caption_finished)
        self.workbench_store.update_succeeded.connect(self._on_split_changed)
        self.viewer.validation_pick_requested.connect(self._on_validation_pick)
        self.workbench.show_files_requested.connect(self._on_show_files_requested)
        for signal in (self.workbench_store.update_started, self.workbench_store.update_succeeded,
                       self.workbench_store.update_failed):
            signal.connect(self._on_validation_busy_changed)
        # In a narrow window the settings fold away rather than squeeze the file grid to a sliver; the
        # toolbar's toggle brings them back (or hides them in a wide one).
        files_and_settings = SidePanelSplitter(self.viewer, self.workbench, main_width=FILES_MIN_COMFORT_WIDTH,
                                               toggle_text="Dataset &settings", parent=self)
        files_and_settings.setObjectName("datasetFilesAndSettings")
        self.files_and_settings = files_and_settings
        self.settings_panel_action = files_and_settings.toggle_action
        self.settings_panel_action.setObjectName("toggleDatasetSettings")
        self.settings_panel_action.setToolTip("Show or hide the dataset's settings beside its files: automatic "
                                              "captions, resolution buckets, training set, validation, export")
        toolbar.addSeparator()
        toolbar.addAction(self.settings_panel_action)
        decorate_toolbar(toolbar, {self.settings_panel_action: "panel-right"})
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.table_stack)
        splitter.addWidget(files_and_settings)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([240, 460])
        self.table_stack.setMinimumHeight(ROW_HEIGHT * 4)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(toolbar)
        layout.addWidget(self.notice)
        layout.addWidget(splitter, 1)

        # wiring ------------------------------------------------------------------------------------------------
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        store.datasets_changed.connect(self._on_datasets_changed)
        self._connect_refresh_reports()
        store.delete_started.connect(self._update_actions)
        store.delete_succeeded.connect(self._on_delete_succeeded)
        store.delete_failed.connect(self._on_delete_failed)
        store.unexpected_error.connect(lambda text: self.notice.show_message(text, BannerLevel.ERROR))
        self.model.dataChanged.connect(self._update_actions)
        self._update_state()
        self._update_actions()

    # user intent -------------------------------------------------------------------------------------------------
    def selected_dataset(self) -> Dataset | None:
        return self._selected_record(Dataset)

    def select_dataset(self, dataset_id: str) -> bool:
        return self._select_record(dataset_id)

    def show_dataset(self, dataset_id: str) -> None:
        """Bring this tab forward (`show_requested`) with the dataset selected, now or once it is listed."""
        if not self.select_dataset(dataset_id):
            self._select_once_listed(dataset_id)
        self.show_requested.emit()

    def confirm_delete_selected(self) -> None:
        """Plain slot (never a coroutine): ask, naming the dataset, then hand the delete to the store."""
        dataset = self.selected_dataset()
        if dataset is None:
            return
        files = f"{dataset.image_count:,} file" + ("" if dataset.image_count == 1 else "s")
        self._confirm_delete(
            dataset.id, "Delete dataset",
            f"Delete the dataset “{dataset.name}” ({files})?\n\nIts files are removed from the server unless "
            f"another dataset uses them. Trained models are kept.")

    def open_train_dialog(self) -> TrainDialog | None:
        dataset = self.selected_dataset()
        if dataset is None or dataset.status is not DatasetStatus.ACTIVE:
            return None
        return self._open_dialog(dataset)

    def open_train_again(self, job: TrainingJob) -> TrainDialog:
        """The Train dialog filled from a finished job (issue 16: Train again); its dataset is chosen in the
        dialog, which says so when the job's one is gone."""
        dataset = self.store.dataset(job.dataset_id)
        if dataset is not None and dataset.status is not DatasetStatus.ACTIVE:
            dataset = None
        return self._open_dialog(dataset, again=job)

    def _open_dialog(self, dataset: Dataset | None, *, again: TrainingJob | None = None) -> TrainDialog:
        if self.train_dialog is not None:
            self.train_dialog.close()
        dialog = TrainDialog(self.store, dataset, self, taken_names=self.taken_job_names,
                             templates=self.template_store, again=again)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.job_created.connect(self._on_job_created)
        dialog.destroyed.connect(lambda *_: self._forget_train_dialog(dialog))
        self.train_dialog = dialog
        dialog.open()
        return dialog

    def open_new_dataset(self) -> QWidget | None:
        """Show the import flow in its own window. It is built once and only hidden when closed, so an
        upload in progress survives closing the window; the app shuts it down at quit."""
        if self.import_factory is None:
            return None
        widget = self.import_widget
        if widget is None:
            try:
                widget = self.import_factory(self)
            except Exception as error:  # a broken import flow must not break browsing
                log.exception("building the new-dataset window failed")
                self.notice.show_message(f"Could not open the new-dataset window: {error}", BannerLevel.ERROR)
                return None
            signal = getattr(widget, "dataset_created", None)
            if signal is not None:
                signal.connect(self._select_once_listed)  # a new dataset: selected once listed
            show = getattr(widget, "show_dataset_requested", None)
            if show is not None:
                show.connect(self.show_dataset)
            if not isinstance(widget, QDialog):
                widget.setWindowFlag(Qt.WindowType.Window, True)
                widget.setWindowTitle("New dataset")
                widget.resize(820, 620)
            self.import_widget = widget
        if isinstance(widget, QDialog):
            widget.open()
        else:
            widget.show()
        widget.raise_()
        widget.activateWindow()
        return widget

    # reactions ------------------------------------------------------------------------------------------------------
    def _forget_train_dialog(self, dialog: QObject) -> None:
        if self.train_dialog is dialog:
            self.train_dialog = None

    def _on_job_created(self, job_id: str) -> None:
        dialog = self.train_dialog
        name = dialog.created_job.name if dialog is not None and dialog.created_job is not None else job_id
        # A passing notice in the status bar (it goes by itself), not a banner that would stay on this tab.
        text = f"Training job “{name}” created; it is selected in the Jobs tab."
        if not post_notice(self, text):
            self.notice.show_message(text, BannerLevel.INFO)
        self.job_created.emit(job_id)

    def _select_once_listed(self, dataset_id: str) -> None:
        """Select the dataset when the next refresh lists it (it is new, or not listed yet)."""
        self._select_when_listed = dataset_id
        self.store.request_refresh()

    def _on_selection_changed(self, *args: object) -> None:
        dataset = self.selected_dataset()
        new_id = dataset.id if dataset is not None else None
        if new_id != self.store.files_model.dataset_id:
            self.viewer.show_dataset(new_id)
        self.workbench.show_dataset(dataset)
        self._update_actions()

    def _on_files_loaded(self, dataset_id: str) -> None:
        model = self.store.files_model
        if model.dataset_id == dataset_id:
            files = [model.index(row, 0).data(FileRole.FILE) for row in range(model.rowCount())]
            self.workbench.show_held_out(dataset_id, sum(1 for f in files if f.validation), len(files))

    def _caption_counts(self) -> tuple[int, int]:
        """(files, with a caption) of the dataset whose files are shown."""
        total, _held, captioned = self.store.files_model.counts()
        return total, captioned

    def _on_caption_finished(self, dataset_id: str, job: object) -> None:
        # The server stored the captions before it marked the job completed: reload the grid's files.
        if self.store.files_model.dataset_id == dataset_id:
            self.store.open_dataset(dataset_id)
        self.store.request_refresh()

    def _on_split_changed(self, dataset_id: str, what: str, dataset: object) -> None:
        # Reload the files for their new validation flags (badges, counts) at once: the list refresh only
        # reloads them when `updated_at` moved, which a change within the same second does not show.
        if what == "validation" and self.store.files_model.dataset_id == dataset_id:
            self.store.open_dataset(dataset_id)

    def _on_show_files_requested(self, dataset_id: str, shas: list[str], description: str) -> None:
        if self.viewer.model.dataset_id == dataset_id:
            self.viewer.show_only_files(shas, description)

    def _on_validation_pick(self, shas: list[str], held_out: bool) -> None:
        model = self.store.files_model
        dataset = self.workbench.dataset
        if dataset is None or model.dataset_id != dataset.id:
            return
        picked = set(shas)
        current = set(model.validation_shas())
        wanted = current | picked if held_out else current - picked
        ordered = [sha for sha in model.captions_of() if sha in wanted]  # dataset order
        self.workbench.use_files_for_validation(ordered)

    def _on_validation_busy_changed(self, *args: object) -> None:
        dataset = self.workbench.dataset
        busy = dataset is not None and self.workbench_store.is_updating(dataset.id, "validation")
        self.viewer.set_validation_busy(busy)

    def _on_datasets_changed(self) -> None:
        if self._select_when_listed is not None and self.select_dataset(self._select_when_listed):
            self._select_when_listed = None
        self._update_state()
        self._update_actions()
        selected = self.selected_dataset()
        if selected is None and self.store.files_model.dataset_id is not None:
            self.viewer.show_dataset(None)
        self.workbench.show_dataset(selected)

    def _on_delete_succeeded(self, dataset_id: str, name: str) -> None:
        text = f"Deleted the dataset “{name}”."
        if not post_notice(self, text):  # a passing notice of the window; the banner only without one
            self.notice.show_message(text, BannerLevel.INFO)
        self._update_actions()

    def _on_delete_failed(self, dataset_id: str, message: str) -> None:
        self.notice.show_message(message, BannerLevel.ERROR)
        self._update_actions()

    def _menu_actions(self) -> tuple[QAction, ...]:
        return (self.train_action, self.caption_action, self.delete_action)

    def _update_actions(self, *args: object) -> None:
        dataset = self.selected_dataset()
        self.new_action.setEnabled(self.import_factory is not None)
        if self.import_factory is None:
            self.new_action.setToolTip("Creating datasets is not available in this build.")
        active = dataset is not None and dataset.status is DatasetStatus.ACTIVE
        self.train_action.setEnabled(active)
        if dataset is not None and not active:
            self.train_action.setToolTip(f"“{dataset.name}” is {dataset.status.value}; "
                                         f"only an active dataset can be trained on.")
        else:
            self.train_action.setToolTip("Start a training job on the selected dataset")
        self.delete_action.setEnabled(dataset is not None and not self.store.is_deleting(dataset.id))
