"""The create-dataset panel: name, type, files (buttons or drag-and-drop), checks, upload, commit.

`DatasetImportPanel` is a view over a `DatasetImportController`: it shows the form (name, type), the
"Add files…" / "Add folder…" buttons, a grid of thumbnails for images (or a list with type icons for
audio, video and text), the list of files left out with their reasons, an overall progress bar with the
per-file states in the grid, and Upload / Cancel / Commit. It also accepts drops of files and folders
(`ui.drop`), and shows a banner offering to resume or delete an upload that did not finish. It forwards
what the user asks to the controller and never does file or network work itself; file dialogs and the
delete confirmation open from plain slots (never inside a coroutine). `dataset_created(id)` re-emits the
controller's signal after a commit, for the lead's wiring and the datasets browser.

Files can be taken out before the upload (Delete, or "Remove from this dataset" in the grid's context
menu). The window opens centred over the main window. After a commit it closes and the main window says
what was made (or, with no main window to tell, the window shows that summary itself); the progress bar
shows only while there is something to measure. `QuitDuringUploadGuard` (installed on the main window
with the entry points) asks before the app quits while an upload runs, saying it will resume next time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QAbstractItemModel, QEvent, QObject, QPoint, QSize, Qt, Signal, SignalInstance
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QMenu,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from training_studio.client import ApiClient
from training_studio.ui.banner import Banner, BannerLevel
from training_studio.ui.settings import remember_folder, remembered_folder
from training_studio.ui.datasets.import_controller import (
    DATASET_TYPES,
    DatasetImportController,
    ImportPhase,
    UnfinishedUploadWatcher,
    uploads_in_progress,
)
from training_studio.ui.datasets.import_delegate import GRID_TILE, ImportFileDelegate
from training_studio.ui.datasets.import_model import ImportRole, format_bytes
from training_studio.ui.datasets.import_scan import TYPE_EXTENSIONS
from training_studio.ui.datasets.uploader import UploadManifest
from training_studio.ui.drop import DropTarget, install_drop_target
from training_studio.ui.notifications import post_notice
from training_studio.ui.confirm import ask_to_confirm

__all__ = ["DatasetImportPanel", "FILE_FILTERS", "import_factory_for", "ImportEntryPoints",
           "install_import_entry_points", "QuitDuringUploadGuard"]

FILE_FILTERS = {
    "image": "Images (*.png *.jpg *.jpeg *.webp *.bmp *.gif)",
    **{kind: f"{kind.capitalize()} files ({' '.join('*' + ext for ext in sorted(exts))})"
       for kind, exts in TYPE_EXTENSIONS.items()},
}
_TYPE_LABELS = {"image": "Images", "audio": "Audio", "video": "Video", "text": "Text"}



def _titled_list(parent: QWidget, title: str, accessible_name: str,
                 model: QAbstractItemModel) -> tuple[QWidget, QLabel, QListView]:
    """A read-only list of uniform rows under a title label (its buddy), in a margin-less box."""
    box = QWidget(parent)
    box_layout = QVBoxLayout(box)
    box_layout.setContentsMargins(0, 0, 0, 0)
    label = QLabel(title, box)
    view = QListView(box)
    view.setAccessibleName(accessible_name)
    view.setModel(model)
    view.setUniformItemSizes(True)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    label.setBuddy(view)
    box_layout.addWidget(label)
    box_layout.addWidget(view, 1)
    return box, label, view


class DatasetImportPanel(QWidget):
    """See the module docstring. Build it with the app's ApiClient and data dir, or with a controller."""

    dataset_created = Signal(str)
    show_dataset_requested = Signal(str)  # dataset id: the notice's "Show dataset" after a commit

    def __init__(self, client: ApiClient | None = None, data_dir: Path | None = None, *,
                 controller: DatasetImportController | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if controller is None:
            if client is None or data_dir is None:
                raise ValueError("DatasetImportPanel needs a controller, or a client and a data dir")
            # No Qt parent: the controller outlives this widget until its cancelled tasks have unwound,
            # so a task finishing after the window is gone never touches a deleted object.
            controller = DatasetImportController(client, data_dir)
            self.destroyed.connect(controller.shutdown)
        self.controller = controller
        self.setAccessibleName("Create dataset")
        self._build()
        self._connect()
        self.drop_target: DropTarget = install_drop_target(
            self, self.add_dropped, "Drop files or folders here to add them to the new dataset")
        self._update_buttons()
        self._use_grid(True)

    # building ----------------------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.resume_banner = Banner(self, closable=True)
        self.resume_banner.setObjectName("resumeBanner")
        self.message_banner = Banner(self, closable=True)
        self.message_banner.setObjectName("importMessage")
        layout.addWidget(self.resume_banner)
        layout.addWidget(self.message_banner)

        form = QFormLayout()
        self.name_edit = QLineEdit(self)
        self.name_edit.setPlaceholderText("e.g. Cats, summer 2026")
        self.name_edit.setMaxLength(200)
        self.name_edit.setAccessibleName("Dataset name")
        self.type_combo = QComboBox(self)
        self.type_combo.setAccessibleName("Dataset type")
        for kind in DATASET_TYPES:
            self.type_combo.addItem(_TYPE_LABELS[kind], kind)
        form.addRow("&Name:", self.name_edit)
        form.addRow("&Type:", self.type_combo)
        layout.addLayout(form)

        adders = QHBoxLayout()
        self.add_files_button = QPushButton("Add &files…", self)
        self.add_folder_button = QPushButton("Add f&older…", self)
        self.clear_button = QPushButton("C&lear", self)
        self.clear_button.setToolTip("Remove every file from the list")
        hint = QLabel("or drop files and folders here", self)
        hint.setEnabled(False)
        adders.addWidget(self.add_files_button)
        adders.addWidget(self.add_folder_button)
        adders.addWidget(hint)
        adders.addStretch(1)
        adders.addWidget(self.clear_button)
        layout.addLayout(adders)

        splitter = QSplitter(Qt.Orientation.Vertical, self)
        files_box, self.files_label, self.file_view = _titled_list(
            splitter, "Files", "Files to upload", self.controller.files)
        # Lay out big inserts a slice at a time, so adding thousands of files never blocks painting.
        self.file_view.setLayoutMode(QListView.LayoutMode.Batched)
        self.file_view.setBatchSize(500)
        self.file_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.file_view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.remove_action = QAction("&Remove from this dataset", self.file_view)
        self.remove_action.setShortcuts([QKeySequence(QKeySequence.StandardKey.Delete),
                                         QKeySequence(Qt.Key.Key_Backspace)])
        self.remove_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.remove_action.setToolTip("Leave the selected files out of the new dataset (Delete)")
        self.file_view.addAction(self.remove_action)
        self.file_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.grid_delegate = ImportFileDelegate(self.file_view, grid=True)
        self.list_delegate = ImportFileDelegate(self.file_view, grid=False)

        rejected_box, self.rejected_label, self.rejected_view = _titled_list(
            splitter, "Left out", "Files left out, with the reason", self.controller.rejected)
        self.rejected_view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        splitter.addWidget(files_box)
        splitter.addWidget(rejected_box)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        self._files_splitter = splitter
        self._rejected_box = rejected_box
        self._left_out_sizes: list[int] | None = None  # the split while files were left out, for their return
        self.rejected_view.hide()  # nothing left out yet: just its title, and the grid gets the room
        self.rejected_label.setText("Left out (none)")
        layout.addWidget(splitter, 1)

        self.status_label = QLabel("Add files to start.", self)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setWordWrap(True)
        self.status_label.setAccessibleName("Import status")
        layout.addWidget(self.status_label)
        # Captions found beside the images, each conflict with the caption chosen, a kohya folder's repeats.
        self.captions_label = QLabel("", self)
        self.captions_label.setTextFormat(Qt.TextFormat.PlainText)
        self.captions_label.setWordWrap(True)
        self.captions_label.setAccessibleName("Captions found")
        self.captions_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.captions_label.hide()
        layout.addWidget(self.captions_label)
        bottom = QHBoxLayout()
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setAccessibleName("Upload progress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p%")
        self.cancel_button = QPushButton("&Cancel", self)
        self.upload_button = QPushButton("&Upload", self)
        self.commit_button = QPushButton("Co&mmit", self)
        self.commit_button.setToolTip("Make the dataset usable for training (after every file is uploaded)")
        self.upload_button.setDefault(True)
        bottom.addWidget(self.progress_bar, 1)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.upload_button)
        bottom.addWidget(self.commit_button)
        layout.addLayout(bottom)

    def _connect(self) -> None:
        c = self.controller
        self.name_edit.textChanged.connect(c.set_name)
        self.type_combo.currentIndexChanged.connect(self._on_type_chosen)
        self.add_files_button.clicked.connect(self.choose_files)
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.clear_button.clicked.connect(c.clear)
        self.upload_button.clicked.connect(self._on_upload_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.commit_button.clicked.connect(c.commit)
        self.remove_action.triggered.connect(self.remove_selected)
        self.file_view.customContextMenuRequested.connect(self._show_file_menu)
        self.file_view.selectionModel().selectionChanged.connect(self._update_buttons)
        c.phase_changed.connect(self._on_phase_changed)
        c.scanning_changed.connect(self._on_scanning_changed)
        c.scan_progress.connect(self._on_scan_progress)
        c.upload_progress.connect(self._on_upload_progress)
        c.status_message.connect(self.status_label.setText)
        c.error_occurred.connect(self._show_error)
        c.dataset_created.connect(self._on_created)
        c.resume_available.connect(self._offer_resume)
        c.form_changed.connect(self._on_form_changed)
        c.captions_changed.connect(self._on_captions_changed)
        c.files.rowsInserted.connect(self._update_counts)
        c.files.rowsRemoved.connect(self._update_counts)
        c.rejected.rowsInserted.connect(self._update_counts)
        c.rejected.rowsRemoved.connect(self._update_counts)

    def _on_captions_changed(self, summary: str, details: str) -> None:
        self.captions_label.setText(summary)
        self.captions_label.setToolTip(details)
        self.captions_label.setVisible(bool(summary))

    # intent ----------------------------------------------------------------------------------------------
    def choose_files(self) -> None:
        """Plain slot: the dialog runs its own loop, so it must never open inside a coroutine."""
        kind = self.controller.dataset_type
        paths, _filter = QFileDialog.getOpenFileNames(self, "Add files to the dataset", remembered_folder("import"),
                                                      f"{FILE_FILTERS[kind]};;All files (*)")
        if paths:
            remember_folder("import", paths[0])
            self.controller.add_paths(list(paths))

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder (with its subfolders) to the dataset",
                                                  remembered_folder("import"))
        if folder:
            remember_folder("import", folder)
            self.controller.add_paths([folder])

    def add_dropped(self, paths: list[str], refused_urls: list[str]) -> None:
        """Target of drops on this panel (and of the window-wide drop target the app installs)."""
        self.message_banner.hide()
        self.controller.add_paths(paths, refused_urls)

    def selected_paths(self) -> list[str]:
        return [index.data(ImportRole.PATH) for index in self.file_view.selectionModel().selectedIndexes()]

    def remove_selected(self) -> int:
        """Take the selected files out of the import (before the upload only); how many went."""
        return self.controller.remove_files(self.selected_paths())

    def _show_file_menu(self, position: QPoint) -> None:
        index = self.file_view.indexAt(position)
        if index.isValid() and not self.file_view.selectionModel().isSelected(index):
            self.file_view.setCurrentIndex(index)  # right-click on an unselected tile acts on that tile
        if not self.remove_action.isEnabled():
            return
        self.file_menu = QMenu(self.file_view)
        self.file_menu.addAction(self.remove_action)
        self.file_menu.popup(self.file_view.viewport().mapToGlobal(position))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not event.spontaneous() and self.isWindow():
            self._centre_over_main_window()

    def _centre_over_main_window(self) -> None:
        parent = self.parentWidget()
        host = parent.window() if parent is not None else None
        if host is None or host is self or not host.isVisible():
            return
        frame = self.frameGeometry()
        frame.moveCenter(host.frameGeometry().center())
        self.move(frame.topLeft())

    def confirm_discard(self, manifest: UploadManifest | None = None) -> None:
        manifest = manifest or self.controller.manifest
        if manifest is None:
            return
        def discard() -> None:
            self.resume_banner.hide()
            self.controller.discard(manifest)

        # Non-blocking, verbs on the buttons, the safe answer by default (issue 15).
        self.discard_box = ask_to_confirm(
            self, "Delete unfinished dataset",
            f"Delete the unfinished dataset “{manifest.dataset_name}” from the server?",
            "Files already uploaded to it are removed there; your local files are not touched.",
            confirm="Delete dataset", keep="Keep it", on_confirm=discard)

    def _on_upload_clicked(self) -> None:
        if self.controller.phase == ImportPhase.INTERRUPTED:
            self.resume_banner.hide()
            self.controller.resume()
        else:
            self.message_banner.hide()
            self.controller.start_upload()

    def _on_cancel_clicked(self) -> None:
        if self.controller.phase in (ImportPhase.INTERRUPTED, ImportPhase.REVIEW):
            self.confirm_discard()
        else:
            self.controller.cancel()

    def closeEvent(self, event: QCloseEvent) -> None:
        # Closing stops checks and transfers; the manifest stays, so the upload can be resumed later.
        if self.controller.phase == ImportPhase.UPLOADING or self.controller.is_scanning:
            self.controller.cancel()
        super().closeEvent(event)

    def _on_phase_changed(self, _phase: str) -> None:
        self._update_buttons()

    def _on_scanning_changed(self, _busy: bool) -> None:
        self._update_buttons()

    def _on_type_chosen(self, index: int) -> None:
        kind = self.type_combo.itemData(index)
        self.controller.set_dataset_type(kind)
        self._use_grid(kind == "image")

    # display ---------------------------------------------------------------------------------------------
    def _use_grid(self, grid: bool) -> None:
        view = self.file_view
        if grid:
            view.setViewMode(QListView.ViewMode.IconMode)
            view.setItemDelegate(self.grid_delegate)
            view.setGridSize(GRID_TILE + QSize(6, 6))
            view.setResizeMode(QListView.ResizeMode.Adjust)
            view.setMovement(QListView.Movement.Static)
            view.setWrapping(True)
        else:
            view.setViewMode(QListView.ViewMode.ListMode)
            view.setItemDelegate(self.list_delegate)
            view.setGridSize(QSize())
            view.setWrapping(False)
            view.setSpacing(0)
        view.setUniformItemSizes(True)
        self.files_label.setText("Images" if grid else "Files")

    def _on_form_changed(self, name: str, kind: str) -> None:
        if self.name_edit.text() != name:
            self.name_edit.setText(name)
        index = self.type_combo.findData(kind)
        if index >= 0 and index != self.type_combo.currentIndex():
            self.type_combo.blockSignals(True)
            self.type_combo.setCurrentIndex(index)
            self.type_combo.blockSignals(False)
        self._use_grid(kind == "image")

    def _update_buttons(self) -> None:
        c = self.controller
        phase = c.phase
        editing = phase == ImportPhase.EDITING
        for widget in (self.name_edit, self.type_combo, self.add_files_button, self.add_folder_button,
                       self.clear_button):
            widget.setEnabled(editing)
        self.upload_button.setEnabled(c.can_upload())
        self.upload_button.setToolTip(c.upload_blocker() or "Create the dataset and upload every accepted file")
        self.upload_button.setText("&Resume" if phase == ImportPhase.INTERRUPTED else "&Upload")
        if phase == ImportPhase.INTERRUPTED:
            self.upload_button.setEnabled(True)
            self.upload_button.setToolTip("Send what the server does not have yet")
        self.cancel_button.setEnabled(phase == ImportPhase.UPLOADING or c.is_scanning)
        self.cancel_button.setText("&Cancel")
        if phase in (ImportPhase.INTERRUPTED, ImportPhase.REVIEW) and c.manifest is not None:
            self.cancel_button.setEnabled(True)
            self.cancel_button.setText("&Delete dataset")
            self.cancel_button.setToolTip("Delete the unfinished dataset from the server")
        else:
            self.cancel_button.setToolTip("Stop checking or uploading")
        self.commit_button.setEnabled(c.can_commit())
        has_selection = self.file_view.selectionModel() is not None and \
            self.file_view.selectionModel().hasSelection()
        self.remove_action.setEnabled(editing and has_selection)
        # An empty form has nothing to measure: no bar standing at 0%.
        self.progress_bar.setVisible(not editing or c.is_scanning or c.files.rowCount() > 0)

    def _update_counts(self) -> None:
        c = self.controller
        count = c.files.rowCount()
        self.files_label.setText(f"{'Images' if c.dataset_type == 'image' else 'Files'} ({count:,}, "
                                 f"{format_bytes(c.files.total_bytes())})" if count else
                                 ("Images" if c.dataset_type == "image" else "Files"))
        left_out = c.rejected.rowCount()
        self.rejected_label.setText(f"Left out ({left_out:,})" if left_out else "Left out (none)")
        self._show_left_out_list(left_out > 0)
        self._update_buttons()

    def _show_left_out_list(self, shown: bool) -> None:
        """An empty "Left out" list is only its title; the list comes (at its last height) with a first file."""
        if shown == self.rejected_view.isVisibleTo(self):
            return
        splitter = self._files_splitter
        total = sum(splitter.sizes())
        if shown:
            self.rejected_view.show()
            sizes = self._left_out_sizes
            if total > 0:
                splitter.setSizes(sizes if sizes and sum(sizes) == total else [total * 4 // 5, total - total * 4 // 5])
        else:
            if total > 0:
                self._left_out_sizes = splitter.sizes()
            self.rejected_view.hide()
            title = self._rejected_box.sizeHint().height()
            if total > 0:
                splitter.setSizes([total - title, title])

    def _on_scan_progress(self, checked: int, found: int) -> None:
        if self.controller.phase == ImportPhase.EDITING:
            self.progress_bar.setFormat("Checked %v of %m")
            self.progress_bar.setRange(0, max(found, 1))
            self.progress_bar.setValue(min(checked, found))
            self._update_buttons()

    def _on_upload_progress(self, done: int, total: int) -> None:
        self.progress_bar.setFormat("%p%")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(int(1000 * done / total) if total else 0)
        if total:
            self.progress_bar.setToolTip(f"{format_bytes(done)} of {format_bytes(total)} sent")

    def _show_error(self, text: str) -> None:
        self.message_banner.show_message(text, BannerLevel.ERROR)

    def _on_created(self, dataset_id: str) -> None:
        self.message_banner.hide()
        summary = self.status_label.text()  # "Dataset “…” is ready with N files."
        self.dataset_created.emit(dataset_id)
        host = self.parentWidget()
        show = ("Show &dataset", lambda: self.show_dataset_requested.emit(dataset_id))
        if self.isWindow() and host is not None and post_notice(host, summary, action=show):
            self.close()  # done: the main window says what was made, and takes the user to it
        else:
            self.message_banner.show_message(summary, BannerLevel.INFO)

    def _offer_resume(self, manifest: UploadManifest | None) -> None:
        if manifest is None:
            self.resume_banner.hide()
            return
        stored_hint = f"{len(manifest.files):,} files, {format_bytes(manifest.total_bytes)}"
        self.resume_banner.show_message(
            f"The upload of dataset “{manifest.dataset_name}” ({stored_hint}) did not finish. Resume it (only what "
            "the server lacks is sent, after checking your files are unchanged) or delete it.",
            BannerLevel.WARNING,
            [("&Resume upload", lambda: self._resume(manifest)),
             ("&Delete it", lambda: self.confirm_discard(manifest))])

    def _resume(self, manifest: UploadManifest) -> None:
        self.resume_banner.hide()
        self.controller.resume(manifest)


def import_factory_for(client: ApiClient, data_dir: Path) -> Callable[[QWidget], DatasetImportPanel]:
    """A factory for the Datasets panel's "New dataset…": builds the import window and looks for unfinished
    uploads to offer resuming."""

    def build(parent: QWidget) -> DatasetImportPanel:
        panel = DatasetImportPanel(client, data_dir, parent=parent)
        panel.setWindowTitle("New dataset")
        panel.resize(900, 700)
        panel.controller.check_unfinished()
        return panel

    return build


class ImportEntryPoints(QObject):
    """The window-wide ways into the import window: dropping files anywhere on the main window, and the
    offer to resume an upload that did not finish, made once the app is connected."""

    def __init__(self, window: QWidget, client: ApiClient, data_dir: Path,
                 open_import: Callable[[], QWidget | None], connected: SignalInstance | None = None) -> None:
        super().__init__(window)
        self._open_import = open_import
        self.drop_target = install_drop_target(window, self.open_with)
        self.watcher = UnfinishedUploadWatcher(client, data_dir, self)
        self.watcher.found.connect(self._on_unfinished_found)
        self.quit_guard = QuitDuringUploadGuard(window, self)
        if connected is not None:
            connected.connect(self._on_connected)

    def open_with(self, paths: list[str], refused_urls: list[str]) -> QWidget | None:
        """Open (or raise) the import window and hand it the dropped paths."""
        widget = self._open_import()
        if isinstance(widget, DatasetImportPanel) and (paths or refused_urls):
            widget.add_dropped(paths, refused_urls)
        return widget

    def _on_connected(self, *_args: object) -> None:
        self.watcher.check()

    def _on_unfinished_found(self, _count: int) -> None:
        self.open_with([], [])  # the import window's banner offers Resume or Delete

    def shutdown(self) -> None:
        self.watcher.shutdown()


class QuitDuringUploadGuard(QObject):
    """Asks before the main window closes (Quit, Ctrl+Q, the window's close button) while an upload runs.
    Quitting stops the upload, keeps its manifest and resumes it at the next start; the safe answer,
    "Keep uploading", is the default (Enter, Escape). The question is opened with `open()`, never exec()."""

    def __init__(self, window: QWidget, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.window = window
        self.prompt: QMessageBox | None = None
        self._confirmed = False
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if watched is self.window and event.type() == QEvent.Type.Close and not self._confirmed:
            running = uploads_in_progress()
            if running:
                event.ignore()
                self._ask(running)
                return True
        return False

    def _ask(self, running: list[str]) -> None:
        if self.prompt is not None and self.prompt.isVisible():
            self.prompt.raise_()
            return
        if not self.window.isVisible():
            self.window.show()  # quit from the tray: the question needs its window on screen
        others = f" (and {len(running) - 1} more)" if len(running) > 1 else ""
        box = QMessageBox(QMessageBox.Icon.Question, "Quit during an upload?",
                          f"The upload of “{running[0]}”{others} is not finished.", parent=self.window)
        box.setInformativeText("If you quit now, it stops here and resumes the next time you open Training "
                               "Studio: files already sent are not sent again.")
        box.setTextFormat(Qt.TextFormat.PlainText)
        quit_button = box.addButton("&Quit and resume later", QMessageBox.ButtonRole.DestructiveRole)
        keep_button = box.addButton("&Keep uploading", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep_button)
        box.setEscapeButton(keep_button)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.buttonClicked.connect(lambda button: self._answered(button is quit_button))
        self.prompt = box
        box.open()

    def _answered(self, quit_now: bool) -> None:
        self.prompt = None
        if quit_now:
            self._confirmed = True
            self.window.close()


def install_import_entry_points(window: QWidget, client: ApiClient, data_dir: Path,
                                open_import: Callable[[], QWidget | None],
                                connected: SignalInstance | None = None) -> ImportEntryPoints:
    """Make the whole `window` a drop target for new datasets, and offer unfinished uploads once
    `connected` fires (e.g. the job store's `connection_changed`). `open_import()` opens or raises the
    import window (the Datasets panel's `open_new_dataset`)."""
    return ImportEntryPoints(window, client, data_dir, open_import, connected)
