"""The jobs panel: the widget that shows the store's jobs and forwards the user's intent.

It owns the view side of the monitor only: the toolbar (Refresh, Cancel job, Clear finished), the filter
box (text over names, and a status choice), the table (through `JobFilterProxyModel`, with the
progress-bar, status-badge and text-cell delegates), the empty/starting state, a notice bar for cancel failures and
server messages, and the counts/"updated N s ago" line. It never calls HTTP: Cancel asks the user for
confirmation here (a plain slot, never inside a coroutine) and then calls `JobStore.request_cancel()`.
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QSizePolicy,
    QStackedWidget,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract.models import ACTIVE_STATUSES, TERMINAL_STATUSES, JobStatus, TrainingJob
from training_studio.ui.banner import Banner, BannerLevel
from training_studio.ui.jobs.delegates import ProgressBarDelegate, StatusBadgeDelegate, TextCellDelegate
from training_studio.ui.jobs.model import JobColumn, JobFilterProxyModel, JobRole
from training_studio.ui.jobs.store import JobStore

__all__ = ["JobsPanel", "STATUS_FILTERS"]

# (label, statuses or None for all): what the status filter offers.
STATUS_FILTERS: list[tuple[str, set[JobStatus] | None]] = [
    ("All statuses", None),
    ("Active", set(ACTIVE_STATUSES)),
    ("Finished", set(TERMINAL_STATUSES)),
    ("Running", {JobStatus.RUNNING}),
    ("Pending or queued", {JobStatus.PENDING, JobStatus.QUEUED}),
    ("Completed", {JobStatus.COMPLETED}),
    ("Failed", {JobStatus.FAILED}),
    ("Cancelled", {JobStatus.CANCELLED}),
]

EMPTY_TEXT = "No active training jobs"
EMPTY_HINT = "Jobs you start on this server appear here and update live."
NO_MATCH_TEXT = "No jobs match the filter"
ROW_HEIGHT = 28


# Preferred widths of the fixed columns; Name stretches over the rest.
PREFERRED_WIDTHS = {JobColumn.STATUS: 130, JobColumn.PROGRESS: 150, JobColumn.STEP: 110, JobColumn.LOSS: 80,
                    JobColumn.ELAPSED: 90}
MIN_NAME_WIDTH = 120
MIN_COLUMN_WIDTH = 48


class JobsTableView(QTableView):
    """A table whose fixed columns shrink (and elide) with a narrow window instead of scrolling sideways."""

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self.fit_columns()

    def fit_columns(self) -> None:
        available = self.viewport().width() - MIN_NAME_WIDTH
        wanted = sum(PREFERRED_WIDTHS.values())
        scale = 1.0 if available >= wanted else max(0.0, available / wanted)
        header = self.horizontalHeader()
        for column, width in PREFERRED_WIDTHS.items():
            header.resizeSection(int(column), max(MIN_COLUMN_WIDTH, int(width * scale)))


class JobsPanel(QWidget):
    """The "Jobs" tab; see the module docstring."""

    cancel_requested = Signal(str)  # job id, after the user confirmed

    def __init__(self, store: JobStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.model = store.model
        self.setObjectName("jobsPanel")
        self.setAccessibleName("Training jobs")
        self.setMinimumSize(420, 240)
        self._connected_once = False

        # actions ---------------------------------------------------------------------------------
        self.refresh_action = QAction("&Refresh", self)
        self.refresh_action.setToolTip("Refresh the job list now (F5)")
        self.refresh_action.triggered.connect(store.request_refresh)
        self.cancel_action = QAction("&Cancel job…", self)
        self.cancel_action.setShortcut(QKeySequence(Qt.Key.Key_Delete))
        self.cancel_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.cancel_action.setToolTip("Cancel the selected training job (Delete)")
        self.cancel_action.triggered.connect(self.confirm_cancel_selected)
        self.clear_action = QAction("Clear finishe&d", self)
        self.clear_action.setToolTip("Remove completed, failed and cancelled jobs from the list; "
                                     "they stay cleared when the app starts again")
        self.clear_action.triggered.connect(store.clear_finished)
        self.copy_id_action = QAction("Copy job &ID", self)
        self.copy_id_action.triggered.connect(self._copy_selected_id)
        self.addAction(self.cancel_action)

        # widgets ---------------------------------------------------------------------------------
        self.toolbar = QToolBar("Jobs", self)
        self.toolbar.setAccessibleName("Jobs toolbar")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.toolbar.addAction(self.refresh_action)
        self.toolbar.addAction(self.cancel_action)
        self.toolbar.addAction(self.clear_action)

        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter by name")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setAccessibleName("Filter jobs by name")
        self.filter_edit.setMinimumWidth(120)
        self.status_combo = QComboBox(self)
        self.status_combo.setAccessibleName("Filter jobs by status")
        for label, _ in STATUS_FILTERS:
            self.status_combo.addItem(label)
        filter_label = QLabel("Fi&lter:", self)
        filter_label.setBuddy(self.filter_edit)

        self.proxy = JobFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.table = JobsTableView(self)
        self.table.setObjectName("jobsTable")
        self.table.setAccessibleName("Training jobs table")
        self.table.setAccessibleDescription("One row per job: name, status, progress, step, loss and elapsed time.")
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_context_menu)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        vertical = self.table.verticalHeader()
        vertical.setVisible(False)
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # no ResizeToContents on big tables
        vertical.setDefaultSectionSize(ROW_HEIGHT)
        header = self.table.horizontalHeader()
        header.setTextElideMode(Qt.TextElideMode.ElideRight)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(int(JobColumn.NAME), QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(MIN_COLUMN_WIDTH)
        self.table.fit_columns()
        self._status_delegate = StatusBadgeDelegate(self.table)
        self._progress_delegate = ProgressBarDelegate(self.table)
        self.table.setItemDelegateForColumn(int(JobColumn.STATUS), self._status_delegate)
        self.table.setItemDelegateForColumn(int(JobColumn.PROGRESS), self._progress_delegate)
        self._text_delegate = TextCellDelegate(self.table)  # the other columns: plain text, painted cheaper
        self.table.setItemDelegate(self._text_delegate)

        self.empty_label = QLabel(self)
        self.empty_label.setObjectName("jobsEmptyState")
        self.empty_label.setAccessibleName("Jobs list status")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setTextFormat(Qt.TextFormat.PlainText)
        self.empty_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self.empty_label.setText("Starting local server…" if store.is_local else "Connecting…")
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty_label)

        self.notice = Banner(self)
        self.counts_label = QLabel(self)
        self.counts_label.setAccessibleName("Job counts")
        self.updated_label = QLabel(self)
        self.updated_label.setAccessibleName("Last update")

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.toolbar)
        top.addStretch(1)
        top.addWidget(filter_label)
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.status_combo)
        bottom = QHBoxLayout()
        bottom.setContentsMargins(4, 0, 4, 0)
        bottom.addWidget(self.counts_label)
        bottom.addStretch(1)
        bottom.addWidget(self.updated_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 4)
        layout.addLayout(top)
        layout.addWidget(self.notice)
        layout.addWidget(self.stack, 1)
        layout.addLayout(bottom)
        self.setTabOrder(self.filter_edit, self.status_combo)
        self.setTabOrder(self.status_combo, self.table)

        # wiring ----------------------------------------------------------------------------------
        self.filter_edit.textChanged.connect(self._on_filter_text)
        self.status_combo.currentIndexChanged.connect(self._on_status_filter)
        self.table.selectionModel().selectionChanged.connect(self._update_actions)
        for signal in (self.model.rowsInserted, self.model.rowsRemoved, self.model.modelReset,
                       self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset):
            signal.connect(self._update_state)
        self.model.dataChanged.connect(self._on_model_data_changed)
        store.jobs_changed.connect(self._on_jobs_changed)
        store.cancel_started.connect(self._update_actions)
        store.cancel_failed.connect(self._on_cancel_failed)
        store.cancel_succeeded.connect(self._update_actions)
        store.ticked.connect(self._update_freshness)
        store.stream_state_changed.connect(lambda state: self._update_freshness())
        store.connecting.connect(self._on_connecting)
        store.refresh_failed.connect(self._on_refresh_failed)
        store.server_message.connect(lambda text: self.notice.show_message(text, BannerLevel.INFO))
        self._update_state()
        self._update_actions()

    # user intent -----------------------------------------------------------------------------------
    def selected_job(self) -> TrainingJob | None:
        indexes = self.table.selectionModel().selectedRows()
        if not indexes:
            current = self.table.currentIndex()
            if not current.isValid() or not self.table.selectionModel().isSelected(current):
                return None
            indexes = [current]
        job = indexes[0].data(JobRole.JOB)
        return job if isinstance(job, TrainingJob) else None

    def select_job(self, job_id: str) -> bool:
        row = self.model.row_of(job_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        return True

    def can_cancel(self, job: TrainingJob | None) -> bool:
        if job is None or job.status not in ACTIVE_STATUSES:
            return False
        row = self.model.row_of(job.id)
        cancelling = bool(self.model.index(row, 0).data(JobRole.IS_CANCELLING)) if row is not None else False
        return not cancelling and not self.store.is_cancel_in_flight(job.id)

    def confirm_cancel_selected(self) -> None:
        """Plain slot (never a coroutine): ask, then hand the cancel to the store."""
        job = self.selected_job()
        if not self.can_cancel(job):
            return
        assert job is not None
        answer = QMessageBox.question(
            self, "Cancel training job",
            f"Cancel the training job “{job.name}”?\n\nIts progress so far will be lost.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.cancel_requested.emit(job.id)
        self.store.request_cancel(job.id)
        self._update_actions()

    # reactions -------------------------------------------------------------------------------------
    def _on_filter_text(self, text: str) -> None:
        self.proxy.set_text(text)
        self._update_state()

    def _on_status_filter(self, index: int) -> None:
        statuses = STATUS_FILTERS[index][1] if 0 <= index < len(STATUS_FILTERS) else None
        self.proxy.set_statuses(set(statuses) if statuses is not None else None)
        self._update_state()

    def _on_jobs_changed(self) -> None:
        self._connected_once = True
        self._update_state()
        self._update_actions()
        self._update_freshness()

    def _on_model_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, roles: list[int]) -> None:
        # The 1 s tick only touches ELAPSED: skip the bookkeeping for it.
        if top_left.column() == bottom_right.column() == int(JobColumn.ELAPSED):
            return
        # Only a status or "Cancelling…" change affects the counts and the actions, and both always
        # include the Status column; progress/step/loss updates skip this.
        if top_left.column() <= int(JobColumn.STATUS) <= bottom_right.column():
            self._update_state()  # a job finished: the counts and Clear finished change
            self._update_actions()

    def _on_cancel_failed(self, job_id: str, message: str) -> None:
        self.notice.show_message(message, BannerLevel.ERROR)
        self._update_actions()

    def _on_connecting(self, text: str) -> None:
        if self.model.rowCount() == 0:
            self.empty_label.setText(text)
            self.stack.setCurrentWidget(self.empty_label)

    def _on_refresh_failed(self, kind: str, message: str) -> None:
        if self.model.rowCount() == 0 and not self._connected_once:
            self.empty_label.setText("Not connected to a server.\n" + message)

    def _show_context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if index.isValid():
            self.table.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        menu = QMenu(self)
        menu.addAction(self.cancel_action)
        menu.addAction(self.copy_id_action)
        menu.addSeparator()
        menu.addAction(self.refresh_action)
        menu.addAction(self.clear_action)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def _copy_selected_id(self) -> None:
        job = self.selected_job()
        if job is not None:
            QGuiApplication.clipboard().setText(job.id)

    def _update_state(self, *args: object) -> None:
        total = self.model.rowCount()
        if total == 0:
            if self._connected_once:
                self.empty_label.setText(f"{EMPTY_TEXT}\n\n{EMPTY_HINT}")
            self.stack.setCurrentWidget(self.empty_label)
        elif self.proxy.rowCount() == 0:
            self.empty_label.setText(NO_MATCH_TEXT)
            self.stack.setCurrentWidget(self.empty_label)
        else:
            self.stack.setCurrentWidget(self.table)
        active, finished = self.model.active_count(), self.model.finished_count()
        self.counts_label.setText(f"{active} active · {finished} finished")
        self.clear_action.setEnabled(finished > 0)

    def _update_actions(self, *args: object) -> None:
        job = self.selected_job()
        self.cancel_action.setEnabled(self.can_cancel(job))
        self.copy_id_action.setEnabled(job is not None)

    def _update_freshness(self) -> None:
        if self.store.stream_state.value == "live":  # changes arrive as they happen: nothing is "N s old"
            self.updated_label.setText("Live")
            self.updated_label.setToolTip("Changes on the server show here as they happen.")
            return
        self.updated_label.setToolTip("")
        seconds = self.store.seconds_since_success()
        if seconds is None:
            self.updated_label.setText("Not updated yet")
        elif seconds < 2:
            self.updated_label.setText("Updated just now")
        else:
            self.updated_label.setText(f"Updated {int(seconds)} s ago")
