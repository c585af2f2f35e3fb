"""The Checkpoints tab of the job details pane: the step checkpoints a trainer writes, newest arriving live,
and saving one to disk.

`CheckpointsView` shows its `CheckpointsStore`'s table (Step, File, Size, Written; newest step first) under
a line that sums it up ("4 checkpoints, the latest at step 400"), with *Save as…* for the selected one (the
button, the table's context menu, Enter or a double-click). *Save as…* asks where with a non-modal
`QFileDialog` opened with `open()` (never the static function, never inside a coroutine) and hands the
download to the store's `CheckpointSaver`; a progress bar with Cancel shows while it runs and a line under
the table says where it was saved, or why not. Empty, loading, unavailable and error states are said in
words (state_labels). No HTTP here: the store lists and downloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from training_studio.ui.datasets.format import format_bytes
from training_studio.ui.jobs.details.checkpoints_store import (
    CheckpointColumn,
    CheckpointRole,
    CheckpointsState,
    CheckpointsStore,
    suggested_filename,
)
from training_studio.ui.jobs.details.state_labels import error_line, show_error, show_state, state_page
from training_studio.ui.settings import remember_folder, remembered_folder

__all__ = ["CheckpointTable", "CheckpointsView", "DownloadRow", "copy_to_clipboard", "save_dialog"]

FOLDER_PURPOSE = "checkpoints"  # the same remembered folder as the Models tab's "Save checkpoint as…"


def save_dialog(parent: QWidget, title: str, suggested: Path) -> QFileDialog:
    """A save-file dialog to open with `open()` (non-modal for the event loop: no nested loop runs)."""
    dialog = QFileDialog(parent, title, str(suggested.parent))
    dialog.setObjectName("checkpointSaveDialog")
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setFileMode(QFileDialog.FileMode.AnyFile)
    dialog.setNameFilter("All files (*)")
    dialog.selectFile(suggested.name)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    return dialog


class DownloadRow(QWidget):
    """A progress bar with a Cancel button, shown while a checkpoint is being saved, and a line under it
    that says where the last one was saved or why it was not (plain text: server messages are never rich)."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.progress_row = QWidget(self)
        row = QHBoxLayout(self.progress_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.progress = QProgressBar(self.progress_row)
        self.progress.setObjectName("checkpointDownloadProgress")
        self.progress.setAccessibleName("Checkpoint download")
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel download", self.progress_row)
        self.cancel_button.clicked.connect(self.cancel_requested)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        self.progress_row.hide()
        self.message = error_line(self, "checkpointDownloadMessage")
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.failed = False
        layout.addWidget(self.progress_row)
        layout.addWidget(self.message)

    def on_started(self, name: str, target: str) -> None:
        self._say("", failed=False)
        self.progress.setRange(0, 0)
        self.progress.setFormat(f"Saving {name.rsplit('/', 1)[-1]} to {target}…")
        self.progress_row.show()

    def on_progress(self, name: str, done: int, total: int | None) -> None:
        file = name.rsplit("/", 1)[-1]
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))
            self.progress.setFormat(f"Saving {file}: {format_bytes(done)} of {format_bytes(total)}")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(f"Saving {file}: {format_bytes(done)}")

    def on_saved(self, name: str, target: str) -> None:
        self.progress_row.hide()
        self._say(f"Saved {name.rsplit('/', 1)[-1]} to {target}.", failed=False)

    def on_failed(self, _name: str, message: str) -> None:
        self.progress_row.hide()
        self._say(message, failed=True)

    def _say(self, text: str, *, failed: bool) -> None:
        self.failed = failed
        font = self.message.font()
        font.setBold(failed)  # a failure stands out; a success is a plain line
        self.message.setFont(font)
        self.message.setText(text)
        self.message.setVisible(bool(text))


class CheckpointTable(QTableView):
    """A table of checkpoints (a `CheckpointTableModel`): one selected row at a time, fixed row heights, the
    File column stretching; Enter or a double-click on a row asks to save it (`save_requested`), and a
    right-click selects the row and shows `menu_actions` (Save as…, Copy name)."""

    save_requested = Signal()

    def __init__(self, model: Any, parent: QWidget | None = None, *, compact: bool = False) -> None:
        """`compact`: for a narrow place (the Models tab's side panel): no Written column (in the tooltip)."""
        super().__init__(parent)
        self.menu_actions: list[QAction] = []
        self.setModel(model)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setTabKeyNavigation(False)  # one Tab stop: arrows move within, Tab leaves (issue 15)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setShowGrid(False)
        # Room between a right-aligned number and the next column's left-aligned text (only padding: the
        # style still draws the cells and the header natively).
        self.setStyleSheet("QTableView::item { padding: 0 6px; } QHeaderView::section { padding: 0 6px; }")
        self.verticalHeader().hide()
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(CheckpointColumn.FILE, QHeaderView.ResizeMode.Stretch)
        metrics = self.fontMetrics()
        padding = 24  # the cells' and sections' padding, with a little air
        header.resizeSection(CheckpointColumn.STEP, metrics.horizontalAdvance("10,000,000") + padding)
        header.resizeSection(CheckpointColumn.SIZE, metrics.horizontalAdvance("999.9 MB") + padding)
        header.resizeSection(CheckpointColumn.WRITTEN, metrics.horizontalAdvance("2026-12-31 23:59:59") + padding)
        header.setSectionHidden(CheckpointColumn.WRITTEN, compact)
        if compact:
            self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._show_context_menu)
        self.doubleClicked.connect(lambda index: self.save_requested.emit() if index.isValid() else None)

    def selected_name(self) -> str | None:
        rows = self.selectionModel().selectedRows()
        return rows[0].data(CheckpointRole.NAME) if rows else None

    def select_name(self, name: str) -> bool:
        row = self.model().row_of(name)
        if row is None:
            return False
        self.selectRow(row)
        self.setCurrentIndex(self.model().index(row, 0))
        return True

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Enter saves (not `activated`: that also fires on a single click where the platform activates on
        # single click, and not on Enter on macOS).
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and \
                not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            if self.selected_name() is not None:
                self.save_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def _show_context_menu(self, pos: QPoint) -> None:
        index = self.indexAt(pos)
        if not index.isValid() or not self.menu_actions:
            return
        self.selectRow(index.row())
        menu = QMenu(self)
        for action in self.menu_actions:
            menu.addAction(action)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.viewport().mapToGlobal(pos))


def copy_to_clipboard(text: str | None) -> None:
    if text:
        QGuiApplication.clipboard().setText(text)


class CheckpointsView(QWidget):
    """See the module docstring. `jobs` is the app's JobStore."""

    def __init__(self, jobs: Any, parent: QWidget | None = None, *, store: CheckpointsStore | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.store = store if store is not None else CheckpointsStore(jobs.client, jobs=jobs, parent=self)
        self.model = self.store.model
        self.setObjectName("checkpointsView")
        self.setAccessibleName("Checkpoints")
        self.job_id: str | None = None
        self.dialog: QFileDialog | None = None  # the open "Save as…" dialog, if any

        self.save_action = QAction("&Save as…", self)
        self.save_action.setToolTip("Save the selected checkpoint to a file on this computer")
        self.save_action.triggered.connect(self.choose_target)
        self.save_action.setEnabled(False)
        self.copy_action = QAction("&Copy name", self)
        self.copy_action.triggered.connect(self._copy_name)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        self.error_label = error_line(self, "checkpointsError")
        layout.addWidget(self.error_label)

        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel(self)
        self.summary.setObjectName("checkpointsSummary")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.save_button = QPushButton("Save as…", self)
        self.save_button.setObjectName("saveCheckpoint")
        self.save_button.setToolTip(self.save_action.toolTip())
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save_action.trigger)
        header.addWidget(self.summary, 1)
        # Aligned, so it keeps its own width when the summary is hidden (no checkpoints yet).
        header.addWidget(self.save_button, 0, Qt.AlignmentFlag.AlignRight)
        layout.addLayout(header)

        self.stack = QStackedWidget(self)
        self.table = CheckpointTable(self.model, self.stack)
        self.table.setObjectName("checkpointsTable")
        self.table.setAccessibleName("Checkpoints of the job")
        self.table.menu_actions = [self.save_action, self.copy_action]
        self.table.save_requested.connect(self.save_action.trigger)
        self.state_label = state_page(self.stack, "checkpointsState")
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.state_label)
        layout.addWidget(self.stack, 1)

        self.download = DownloadRow(self)
        self.download.cancel_requested.connect(self.store.saver.cancel)
        layout.addWidget(self.download)

        self.table.selectionModel().selectionChanged.connect(self._update_actions)
        self.model.rowsInserted.connect(self._update_summary)
        self.model.rowsRemoved.connect(self._update_summary)
        self.model.modelReset.connect(self._update_summary)
        self.store.state_changed.connect(self._on_state)
        self.store.error.connect(self._on_error)
        saver = self.store.saver
        saver.started.connect(self.download.on_started)
        saver.progress.connect(self.download.on_progress)
        saver.saved.connect(self.download.on_saved)
        saver.failed.connect(self.download.on_failed)
        for signal in (saver.started, saver.saved, saver.failed):
            signal.connect(self._update_actions)
        self._on_state(self.store.state.value, "Select a job to see its checkpoints.")

    # public API ---------------------------------------------------------------------------------------
    def show_job(self, job_id: str | None) -> None:
        if job_id == self.job_id:
            return
        self.job_id = job_id
        self.store.show_job(job_id)
        self._update_summary()
        self._update_actions()

    def shutdown(self) -> None:
        if self.dialog is not None:
            self.dialog.reject()
        self.store.shutdown()

    def selected_name(self) -> str | None:
        return self.table.selected_name()

    def select_name(self, name: str) -> bool:
        return self.table.select_name(name)

    def choose_target(self) -> None:
        """Plain slot: open a save dialog (with `open()`: no nested event loop) for the selected checkpoint;
        its `fileSelected` starts the download."""
        name = self.selected_name()
        if name is None or self.job_id is None or self.store.saver.is_busy():
            return
        if self.dialog is not None:
            self.dialog.raise_()
            self.dialog.activateWindow()
            return
        folder = Path(remembered_folder(FOLDER_PURPOSE, str(Path.home())))
        suggested = folder / suggested_filename(self.store.job_name(), name)
        dialog = save_dialog(self, f"Save the checkpoint {name.rsplit('/', 1)[-1]}", suggested)
        job_id = self.job_id
        dialog.fileSelected.connect(lambda path: self._target_chosen(job_id, name, path))
        dialog.finished.connect(self._dialog_closed)
        self.dialog = dialog
        dialog.open()

    # reactions ---------------------------------------------------------------------------------------------
    def _target_chosen(self, job_id: str, name: str, path: str) -> None:
        if not path:
            return
        remember_folder(FOLDER_PURPOSE, Path(path).parent)
        self.store.save(name, path, job_id=job_id)  # that job's, even if another is shown by now

    def _dialog_closed(self, *_args: object) -> None:
        self.dialog = None

    def _copy_name(self) -> None:
        copy_to_clipboard(self.selected_name())

    def _on_state(self, state: str, text: str) -> None:
        show_state(self.stack, self.table, self.state_label, state == CheckpointsState.SHOWING.value, text)
        self._update_summary()

    def _on_error(self, text: str) -> None:
        show_error(self.error_label, text)

    def _update_summary(self, *_args: object) -> None:
        count = self.model.rowCount()
        if count == 0:
            self.summary.setText("")
            self.summary.setVisible(False)
        else:
            latest = self.model.latest_step()
            text = f"{count} checkpoint{'s' if count != 1 else ''}"
            if latest is not None:
                text += f", the latest at step {latest:,}"
            self.summary.setText(text)
            self.summary.setVisible(True)
        self._update_actions()

    def _update_actions(self, *_args: object) -> None:
        enabled = self.selected_name() is not None and not self.store.saver.is_busy()
        self.save_action.setEnabled(enabled)
        self.save_button.setEnabled(enabled)
        self.copy_action.setEnabled(self.selected_name() is not None)
        # The button stays visible (disabled) with nothing to save, so the user sees what the tab offers.
        self.save_button.setVisible(self.store.state != CheckpointsState.NO_JOB)

    # visibility ---------------------------------------------------------------------------------------------
    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.store.set_active(True)

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self.store.set_active(False)
