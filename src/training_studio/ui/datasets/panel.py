"""The Datasets panel: the datasets of the server, the files of the selected one, and what to do with it.

`DatasetsPanel` is a view: a toolbar (New dataset…, Train…, Delete…, Refresh), a notice bar for errors and
results (never a modal box for routine trouble), the dataset table over `DatasetListModel` (sortable
through a proxy, selection kept across refreshes), and the `DatasetViewer` of the selected dataset below.
It turns auto-refresh on while it is visible. Delete asks for confirmation naming the dataset, from a
plain slot (never inside a coroutine); Train… opens the `TrainDialog` with `open()`; New dataset… opens
the import flow built by `import_factory` (a widget or dialog with a `dataset_created(str)` signal). When
the server accepts a job, `job_created(job_id)` is emitted for the app to show that job in the monitor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QItemSelectionModel, QObject, QPoint, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QAction, QHideEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract.models import Dataset, DatasetStatus
from training_studio.ui.banner import Banner, BannerLevel
from training_studio.ui.datasets.keyed_model import RecordRole
from training_studio.ui.datasets.list_model import DatasetColumn
from training_studio.ui.datasets.store import DatasetStore
from training_studio.ui.datasets.train_dialog import TrainDialog
from training_studio.ui.datasets.viewer import DatasetViewer

__all__ = ["DatasetsPanel", "ImportFactory"]

log = logging.getLogger(__name__)

ImportFactory = Callable[[QWidget], QWidget]  # parent -> widget/dialog with a dataset_created(str) signal
ROW_HEIGHT = 26


class DatasetsPanel(QWidget):
    """The "Datasets" tab; see the module docstring."""

    job_created = Signal(str)       # job id, once the server accepted a job from the Train dialog
    delete_requested = Signal(str)  # dataset id, after the user confirmed

    def __init__(self, store: DatasetStore, *, import_factory: ImportFactory | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.model = store.model
        self.import_factory = import_factory
        self.train_dialog: TrainDialog | None = None
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
        self.delete_action = QAction("&Delete…", self)
        self.delete_action.setShortcut(QKeySequence(Qt.Key.Key_Delete))
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.delete_action.setToolTip("Delete the selected dataset (Delete)")
        self.delete_action.triggered.connect(self.confirm_delete_selected)
        self.refresh_action = QAction("&Refresh", self)
        self.refresh_action.setToolTip("Refresh the dataset list now")
        self.refresh_action.triggered.connect(store.request_refresh)

        toolbar = QToolBar(self)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action in (self.new_action, self.train_action, self.delete_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.refresh_action)
        self.addAction(self.delete_action)

        self.notice = Banner(self)
        self.notice.setObjectName("datasetsNotice")
        self.notice.hide()

        # table ----------------------------------------------------------------------------------------------
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(RecordRole.SORT)
        self.proxy.setDynamicSortFilter(True)
        self.table = QTableView(self)
        self.table.setObjectName("datasetTable")
        self.table.setAccessibleName("Datasets")
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(DatasetColumn.CREATED, Qt.SortOrder.DescendingOrder)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(DatasetColumn.NAME, QHeaderView.ResizeMode.Stretch)
        for column in (DatasetColumn.TYPE, DatasetColumn.FILES, DatasetColumn.STATUS):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.resizeSection(DatasetColumn.CREATED, 140)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_context_menu)
        self.table.doubleClicked.connect(lambda index: self.open_train_dialog())

        self.empty_label = QLabel(self)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.table_stack = QStackedWidget(self)
        self.table_stack.addWidget(self.table)
        self.table_stack.addWidget(self.empty_label)

        self.viewer = DatasetViewer(store, self)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.table_stack)
        splitter.addWidget(self.viewer)
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
        store.refresh_failed.connect(self._on_refresh_failed)
        store.refresh_succeeded.connect(self._on_refresh_succeeded)
        store.delete_started.connect(self._update_actions)
        store.delete_succeeded.connect(self._on_delete_succeeded)
        store.delete_failed.connect(self._on_delete_failed)
        store.unexpected_error.connect(lambda text: self.notice.show_message(text, BannerLevel.ERROR))
        self.model.dataChanged.connect(self._update_actions)
        self._update_state()
        self._update_actions()

    # visibility drives auto-refresh ---------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.store.set_auto_refresh(True)

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.store.set_auto_refresh(False)

    # user intent -------------------------------------------------------------------------------------------------
    def selected_dataset(self) -> Dataset | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        dataset = rows[0].data(RecordRole.RECORD)
        return dataset if isinstance(dataset, Dataset) else None

    def select_dataset(self, dataset_id: str) -> bool:
        row = self.model.row_of(dataset_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(index)
        return True

    def confirm_delete_selected(self) -> None:
        """Plain slot (never a coroutine): ask, naming the dataset, then hand the delete to the store."""
        dataset = self.selected_dataset()
        if dataset is None or self.store.is_deleting(dataset.id):
            return
        files = f"{dataset.image_count:,} file" + ("" if dataset.image_count == 1 else "s")
        answer = QMessageBox.question(
            self, "Delete dataset",
            f"Delete the dataset “{dataset.name}” ({files})?\n\nIts files are removed from the server unless "
            f"another dataset uses them. Trained models are kept.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.delete_requested.emit(dataset.id)
        self.store.request_delete(dataset.id)
        self._update_actions()

    def open_train_dialog(self) -> TrainDialog | None:
        dataset = self.selected_dataset()
        if dataset is None or dataset.status is not DatasetStatus.ACTIVE:
            return None
        if self.train_dialog is not None:
            self.train_dialog.close()
        dialog = TrainDialog(self.store, dataset, self)
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
                signal.connect(self._on_dataset_created)
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
        self.notice.show_message(f"Training job “{name}” created; it is selected in the Jobs tab.",
                                 BannerLevel.INFO)
        self.job_created.emit(job_id)

    def _on_dataset_created(self, dataset_id: str) -> None:
        self._select_when_listed = dataset_id
        self.store.request_refresh()

    def _on_selection_changed(self, *args: object) -> None:
        dataset = self.selected_dataset()
        new_id = dataset.id if dataset is not None else None
        if new_id != self.store.files_model.dataset_id:
            self.viewer.show_dataset(new_id)
        self._update_actions()

    def _on_datasets_changed(self) -> None:
        if self._select_when_listed is not None and self.select_dataset(self._select_when_listed):
            self._select_when_listed = None
        self._update_state()
        self._update_actions()
        selected = self.selected_dataset()
        if selected is None and self.store.files_model.dataset_id is not None:
            self.viewer.show_dataset(None)

    def _on_refresh_failed(self, message: str) -> None:
        self.notice.show_message(f"Could not refresh the datasets: {message} Showing the last good list.",
                                 BannerLevel.WARNING, [("Retry now", self.store.request_refresh)])
        self._update_state()

    def _on_refresh_succeeded(self) -> None:
        if self.notice.isVisible() and self.notice.level is BannerLevel.WARNING:
            self.notice.hide()

    def _on_delete_succeeded(self, dataset_id: str, name: str) -> None:
        self.notice.show_message(f"Deleted the dataset “{name}”.", BannerLevel.INFO)
        self._update_actions()

    def _on_delete_failed(self, dataset_id: str, message: str) -> None:
        self.notice.show_message(message, BannerLevel.ERROR)
        self._update_actions()

    def _show_context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        menu = QMenu(self)
        menu.addAction(self.train_action)
        menu.addAction(self.delete_action)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def _update_state(self) -> None:
        if self.model.rowCount() > 0:
            self.table_stack.setCurrentWidget(self.table)
            return
        if not self.store.loaded_once:
            text = "Loading datasets…" if self.store.last_error is None else "The datasets could not be loaded."
        else:
            text = "No datasets yet.\nUse “New dataset…” to make one from images on this computer."
        self.empty_label.setText(text)
        self.table_stack.setCurrentWidget(self.empty_label)

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
