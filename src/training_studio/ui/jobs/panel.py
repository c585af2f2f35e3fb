"""The jobs panel: the widget that shows the store's jobs and forwards the user's intent.

It owns the view side of the monitor only: the toolbar (Refresh, Cancel, Clear finished, Details, Export),
the filter box (text over names, and a status choice), the table (through `QueueOrderProxyModel`: the filters,
and waiting rows in queue order, dragged to reorder the queue; with the progress-bar, status-badge and text-cell
delegates; several rows can be selected; the header's context menu shows or hides columns), the empty/starting
state, a notice bar for cancel failures and server messages, the counts/"updated N s ago" line, and the
job details pane (`details.pane.JobDetailsPane`) below the table in a splitter.

A finished-status filter (Finished, Completed, Failed, Cancelled) shows the server's finished jobs, cleared from
the list or not (issue 15): the table's proxy then reads the rows of `JobStore.finished_jobs()` (a controller
with a model of its own, `ui.jobs.finished`) instead of the list's, and a line under the table says how many
it holds, with a button to the History tab (`history_requested`) for the rest. Any other filter shows the
list again, its rows untouched.

The details pane shows the table's current job; with several jobs selected its chart compares them (at most
`MAX_COMPARED`), each in a colour that the table shows as a swatch in the job's Name cell. It opens with
the Details toggle (also in the main window's View menu), Enter or a double-click on a row; whether it is
open and the splitter's sizes are remembered in the app's settings (`AppSettings.details_pane_*`). It is
built when first opened, so a start-up with it closed pays nothing for it.

It never calls HTTP: Cancel asks the user once for every selected active job, in a window-modal message box
opened with `open()` (never a nested event loop), and the answer's slot calls `JobStore.request_cancel()`
for each. "Export table as CSV…" writes the rows and columns the table shows, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract.models import ACTIVE_STATUSES, TERMINAL_STATUSES, JobStatus, TrainingJob
from training_studio.ui.notifications import post_notice
from training_studio.atomicfile import write_atomically
from training_studio.ui.banner import Banner, BannerLevel
from training_studio.ui.fitted_table import FittedTableView
from training_studio.ui.jobs import format as fmt
from training_studio.ui.jobs.delegates import (
    ProgressBarDelegate,
    StatusBadgeDelegate,
    TextCellDelegate,
    palette_is_dark,
)
from training_studio.ui.jobs.details.colours import assign_colours, compare_colour
from training_studio.ui.jobs.model import JobColumn, JobListModel, JobRole
from training_studio.ui.jobs.queue_proxy import QueueOrderProxyModel
from training_studio.ui.jobs.store import JobStore
from training_studio.ui.settings import AppSettings, remember_folder, remembered_folder

if TYPE_CHECKING:
    from training_studio.ui.jobs.finished import FinishedJobs

__all__ = ["JobsPanel", "STATUS_FILTERS", "MAX_COMPARED", "MAX_LISTED_IN_CONFIRMATION"]


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
FINISHED_EMPTY_TEXT = "No finished jobs on this server yet."
FINISHED_LOADING_TEXT = "Loading the server's finished jobs…"
HISTORY_BUTTON_TEXT = "All jobs in History (Ctrl+4)"
ROW_HEIGHT = 28
MAX_COMPARED = 8  # jobs the chart compares at once (one palette's worth of distinguishable colours)
MAX_LISTED_IN_CONFIRMATION = 10  # job names the cancel confirmation lists; the rest are counted
DEFAULT_DETAILS_SHARE = 0.6  # of the panel's height the details pane takes when first opened


# Preferred widths of the fixed columns; Name stretches over the rest.
PREFERRED_WIDTHS = {JobColumn.STATUS: 130, JobColumn.PROGRESS: 150, JobColumn.STEP: 110, JobColumn.LOSS: 80,
                    JobColumn.ELAPSED: 90, JobColumn.ETA: 100, JobColumn.RUNS_ON: 130}
MIN_NAME_WIDTH = 120
STEP_WIDTH_SAMPLE = "000,000 / 000,000"  # the Step column is at least this wide (see fit_columns)
CELL_PADDING = 8  # px each side of the text: the style's item margin (3-4 px) and some to spare
MIN_COLUMN_WIDTH = 48
SHRINKS_FIRST = (JobColumn.RUNS_ON, JobColumn.STATUS)  # narrow window: they elide, a status to its icon
RUNS_ON_GAP = 10  # px before the "Runs on" text (see TextCellDelegate's `leading`)


class JobsTableView(FittedTableView):
    """A table whose fixed columns shrink (and elide) with a narrow window instead of scrolling sideways
    (`FittedTableView`: Runs on and Status give way first), and whose drop indicator (dragging waiting jobs to
    reorder the queue) is a 2 px line in the highlight colour across the row, easier to see than the style's
    1 px one."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, preferred=PREFERRED_WIDTHS, min_name_width=MIN_NAME_WIDTH, minimum=MIN_COLUMN_WIDTH,
                         shrinks_first=SHRINKS_FIRST)
        self._drag_pos: QPoint | None = None  # where a drag hovers, while it does

    def dragMoveEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().dragMoveEvent(event)
        self._drag_pos = event.position().toPoint() if event.isAccepted() else None
        self.viewport().update()

    def dragLeaveEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self._drag_pos = None
        super().dragLeaveEvent(event)
        self.viewport().update()

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self._drag_pos = None
        super().dropEvent(event)
        self.viewport().update()

    def drop_line_y(self) -> int | None:
        """The y (viewport) of the drop indicator line while a drag hovers over a place that takes it."""
        if self._drag_pos is None or self.state() != QAbstractItemView.State.DraggingState:
            return None
        position = self.dropIndicatorPosition()
        index = self.indexAt(self._drag_pos)
        if not index.isValid() or position not in (QAbstractItemView.DropIndicatorPosition.AboveItem,
                                                   QAbstractItemView.DropIndicatorPosition.BelowItem):
            return None
        rect = self.visualRect(index)
        return rect.top() if position == QAbstractItemView.DropIndicatorPosition.AboveItem else rect.bottom() + 1

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().paintEvent(event)
        y = self.drop_line_y()
        if y is None:
            return
        painter = QPainter(self.viewport())
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            colour = self.palette().color(QPalette.ColorRole.Highlight)
            painter.setPen(QPen(colour, 2))
            painter.drawLine(6, y, self.viewport().width() - 2, y)
            painter.setBrush(colour)
            painter.drawEllipse(QPoint(4, y), 3, 3)
        finally:
            painter.end()

    def preferred_widths(self) -> dict[int, int]:
        preferred = super().preferred_widths()
        # Room for a six-figure run ("200,000 / 200,000") in this font, whatever its size.
        step = int(JobColumn.STEP)
        sample = self.fontMetrics().horizontalAdvance(STEP_WIDTH_SAMPLE) + 2 * CELL_PADDING
        preferred[step] = max(preferred[step], sample)
        return preferred


class JobsPanel(QWidget):
    """The "Jobs" tab; see the module docstring."""

    cancel_requested = Signal(str)  # job id, after the user confirmed (once per job)
    dataset_requested = Signal(str)  # dataset id: the user asked to see it (the Overview's link)
    model_requested = Signal(str)    # trained model id: the user asked to see it
    details_visibility_changed = Signal(bool)
    train_again_requested = Signal(object)  # TrainingJob: open the Train dialog filled from it (issue 16)
    save_template_requested = Signal(object)  # TrainingJob: save its settings as a named template
    history_requested = Signal()  # the user asked for the History tab (the Finished view's button)

    def __init__(self, store: JobStore, parent: QWidget | None = None, *,
                 settings: AppSettings | None = None) -> None:
        """`settings`: where the details pane's state is remembered; the store's (the app's) by default."""
        super().__init__(parent)
        self.store = store
        self.model = store.model
        self.settings = settings if settings is not None else store.settings
        self.setObjectName("jobsPanel")
        self.setAccessibleName("Training jobs")
        self.setMinimumSize(420, 240)
        self._connected_once = False
        self.finished: FinishedJobs | None = None  # the Finished view's controller, once a finished filter was picked
        self._scroll_on_load = False  # the Finished view was just entered: show its newest rows once they land
        self.details = None  # JobDetailsPane, built when first opened
        self.cancel_confirmation: QMessageBox | None = None  # the open cancel question, if any
        self._compare_slots: dict[str, int] = {}  # job id -> palette slot, kept while compared
        self._details_timer = QTimer(self)  # coalesces a burst of selection changes into one update
        self._details_timer.setSingleShot(True)
        self._details_timer.setInterval(0)
        self._details_timer.timeout.connect(self._update_details)
        self._sizes_timer = QTimer(self)  # saves the splitter's sizes once a drag pauses
        self._sizes_timer.setSingleShot(True)
        self._sizes_timer.setInterval(300)
        self._sizes_timer.timeout.connect(self.save_layout)

        # actions ---------------------------------------------------------------------------------
        self.refresh_action = QAction("&Refresh", self)
        self.refresh_action.setToolTip("Refresh the job list now (F5)")
        self.refresh_action.triggered.connect(store.request_refresh)
        self.cancel_action = QAction("&Cancel job…", self)
        self.cancel_action.setShortcut(QKeySequence(Qt.Key.Key_Delete))
        self.cancel_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.cancel_action.setToolTip("Cancel the selected training jobs (Delete)")
        self.cancel_action.triggered.connect(self.confirm_cancel_selected)
        self.clear_action = QAction("Clear finishe&d", self)
        self.clear_action.setToolTip("Remove completed, failed and cancelled jobs from the list; "
                                     "they stay cleared when the app starts again")
        self.clear_action.triggered.connect(self.clear_finished)
        self.copy_id_action = QAction("Copy job &ID", self)
        self.copy_id_action.triggered.connect(self._copy_selected_id)
        self.addAction(self.cancel_action)
        self.details_action = QAction("Job &details", self)
        self.details_action.setObjectName("toggleJobDetails")
        self.details_action.setCheckable(True)
        self.details_action.setToolTip("Show or hide the details of the selected job: overview, loss chart, "
                                       "logs and samples (Enter or double-click on a job opens them)")
        self.details_action.toggled.connect(self.set_details_visible)
        self.open_details_action = QAction("Open details", self)
        self.open_details_action.setShortcuts([QKeySequence(Qt.Key.Key_Return), QKeySequence(Qt.Key.Key_Enter)])
        self.open_details_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.open_details_action.triggered.connect(self.open_details)
        # Queue control and "again" (issue 16): the store sends them; the new order arrives as job events.
        self.move_top_action = QAction("Move to &top of queue", self)
        self.move_top_action.triggered.connect(lambda: self._move_selected("top"))
        self.move_up_action = QAction("Move &up in queue", self)
        self.move_up_action.setShortcut(QKeySequence("Ctrl+Up"))
        self.move_up_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.move_up_action.triggered.connect(lambda: self._move_selected("up"))
        self.move_down_action = QAction("Move do&wn in queue", self)
        self.move_down_action.setShortcut(QKeySequence("Ctrl+Down"))
        self.move_down_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.move_down_action.triggered.connect(lambda: self._move_selected("down"))
        self.hold_action = QAction("&Hold in queue", self)
        self.hold_action.setCheckable(True)
        self.hold_action.setToolTip("A held job stays queued and is passed over until you release it")
        self.hold_action.triggered.connect(self._hold_selected)
        for action in (self.move_up_action, self.move_down_action):
            self.addAction(action)
        self.train_again_action = QAction("&Train again…", self)
        self.train_again_action.setToolTip("Open the Train dialog filled with this job's settings")
        self.train_again_action.triggered.connect(lambda: self._emit_for_selected(self.train_again_requested))
        self.save_template_action = QAction("Save as te&mplate…", self)
        self.save_template_action.triggered.connect(lambda: self._emit_for_selected(self.save_template_requested))
        self.export_action = QAction("E&xport table as CSV…", self)
        self.export_action.setToolTip("Save the rows and columns the table shows as a CSV file")
        self.export_action.triggered.connect(self.choose_export_target)

        # widgets ---------------------------------------------------------------------------------
        self.toolbar = QToolBar("Jobs", self)
        self.toolbar.setAccessibleName("Jobs toolbar")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.toolbar.addAction(self.refresh_action)
        self.toolbar.addAction(self.cancel_action)
        self.toolbar.addAction(self.clear_action)
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.details_action)
        self.toolbar.addAction(self.export_action)

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

        self.proxy = QueueOrderProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.reorder_requested.connect(store.request_queue_reorder)
        self.table = JobsTableView(self)
        self.table.setObjectName("jobsTable")
        self.table.setAccessibleName("Training jobs table")
        self.table.setAccessibleDescription("One row per job: name, status, progress, step, loss, elapsed time, "
                                              "estimated finish and where it runs. Waiting jobs are in "
                                              "queue order.")
        self.table.setModel(self.proxy)
        self.table.setTabKeyNavigation(False)  # one Tab stop: arrows move within, Tab leaves (issue 15)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.addAction(self.open_details_action)  # Enter/Return on the table (WidgetShortcut)
        self.table.doubleClicked.connect(lambda index: self.open_details())
        self.table.setSortingEnabled(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_context_menu)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        # Drag waiting rows to reorder the queue (the proxy decides what drags and where it may land). DragDrop
        # rather than InternalMove: the latter ignores drops without a QDrag source, which tests send.
        self.table.setDragEnabled(True)
        self.table.setAcceptDrops(True)
        self.table.viewport().setAcceptDrops(True)
        self.table.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.table.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.table.setDragDropOverwriteMode(False)
        self.table.setDropIndicatorShown(True)
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
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(
            lambda pos: self.columns_menu().popup(header.mapToGlobal(pos)))
        self.table.fit_columns()
        self._status_delegate = StatusBadgeDelegate(self.table)
        self._progress_delegate = ProgressBarDelegate(self.table)
        self.table.setItemDelegateForColumn(int(JobColumn.STATUS), self._status_delegate)
        self.table.setItemDelegateForColumn(int(JobColumn.PROGRESS), self._progress_delegate)
        self._text_delegate = TextCellDelegate(self.table)  # the other columns: plain text, painted cheaper
        self.table.setItemDelegate(self._text_delegate)
        # "Runs on" (left-aligned) follows ETA (right-aligned): a gap keeps "estimating…" and a host apart.
        self._runs_on_delegate = TextCellDelegate(self.table, leading=RUNS_ON_GAP)
        self.table.setItemDelegateForColumn(int(JobColumn.RUNS_ON), self._runs_on_delegate)

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
        # The details pane goes below the table: the chart and logs want width, and so does the table; at
        # 700 px wide, side by side would squeeze both.
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.setObjectName("jobsSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.stack)
        self.splitter.splitterMoved.connect(lambda *args: self._sizes_timer.start())

        self.notice = Banner(self)
        self.counts_label = QLabel(self)
        self.counts_label.setAccessibleName("Job counts")
        self.updated_label = QLabel(self)
        self.updated_label.setAccessibleName("Last update")
        self.finished_note = QLabel(self)  # the Finished view's line: what it holds, the rest is in History
        self.finished_note.setObjectName("finishedNote")
        self.finished_note.setAccessibleName("Finished jobs shown")
        self.finished_note.setTextFormat(Qt.TextFormat.PlainText)
        self.finished_note.hide()
        self.history_button = QPushButton(HISTORY_BUTTON_TEXT, self)
        self.history_button.setObjectName("finishedHistoryButton")
        self.history_button.setToolTip("The History tab lists every job of the server, a page at a time")
        self.history_button.clicked.connect(self.history_requested)
        self.history_button.hide()

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
        bottom.addWidget(self.finished_note)
        bottom.addWidget(self.history_button)
        bottom.addStretch(1)
        bottom.addWidget(self.updated_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 4)
        layout.addLayout(top)
        layout.addWidget(self.notice)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(bottom)
        self.setTabOrder(self.filter_edit, self.status_combo)
        self.setTabOrder(self.status_combo, self.table)

        # wiring ----------------------------------------------------------------------------------
        self.filter_edit.textChanged.connect(self._on_filter_text)
        self.status_combo.currentIndexChanged.connect(self._on_status_filter)
        self.table.selectionModel().selectionChanged.connect(self._update_actions)
        self.table.selectionModel().selectionChanged.connect(self._schedule_details)
        self.table.selectionModel().currentRowChanged.connect(self._schedule_details)
        for signal in (self.model.rowsInserted, self.model.rowsRemoved, self.model.modelReset,
                       self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset):
            signal.connect(self._update_state)
        self.model.name_or_status_changed.connect(self._on_name_or_status_changed)
        store.jobs_changed.connect(self._on_jobs_changed)
        store.cancel_started.connect(self._update_actions)
        store.cancel_failed.connect(self._on_cancel_failed)
        store.queue_update_failed.connect(self._on_cancel_failed)  # same place: a refused action on a job
        store.cancel_succeeded.connect(self._update_actions)
        store.ticked.connect(self._update_freshness)
        store.stream_state_changed.connect(lambda state: self._update_freshness())
        store.connecting.connect(self._on_connecting)
        store.refresh_failed.connect(self._on_refresh_failed)
        store.server_message.connect(lambda text: self.notice.show_message(text, BannerLevel.INFO))
        self._update_state()
        self._update_actions()
        if self._remembered_visible():
            self.details_action.setChecked(True)  # builds and shows the pane

    # user intent -----------------------------------------------------------------------------------
    def selected_job(self) -> TrainingJob | None:
        """The table's current job if it is selected, else the first selected one; None without a selection."""
        selection = self.table.selectionModel()
        current = self.table.currentIndex()
        if current.isValid() and selection.isRowSelected(current.row(), current.parent()):
            job = current.siblingAtColumn(0).data(JobRole.JOB)
            return job if isinstance(job, TrainingJob) else None
        jobs = self.selected_jobs()
        return jobs[0] if jobs else None

    def selected_jobs(self) -> list[TrainingJob]:
        """Every selected job, in the table's order."""
        rows = sorted(index.row() for index in self.table.selectionModel().selectedRows())
        jobs = [self.proxy.index(row, 0).data(JobRole.JOB) for row in rows]
        return [job for job in jobs if isinstance(job, TrainingJob)]

    def shown_model(self) -> JobListModel:
        """The rows the table shows: the list's, or the Finished view's (the server's finished jobs)."""
        source = self.proxy.sourceModel()
        return source if isinstance(source, JobListModel) else self.model

    def finished_view(self) -> bool:
        """Whether the table shows the server's finished jobs (a finished-status filter is picked)."""
        return self.finished is not None and self.proxy.sourceModel() is self.finished.model

    def select_job(self, job_id: str) -> bool:
        source = self.shown_model()
        row = source.row_of(job_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(source.index(row, 0))
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

    def cancellable_selected_jobs(self) -> list[TrainingJob]:
        return [job for job in self.selected_jobs() if self.can_cancel(job)]

    def confirm_cancel_selected(self) -> None:
        """Plain slot (never a coroutine): ask once for every selected active job, in a window-modal box
        opened with open(); `_on_cancel_answer` hands the cancels to the store."""
        jobs = self.cancellable_selected_jobs()
        if not jobs or self.cancel_confirmation is not None:
            return
        count = len(jobs)
        box = QMessageBox(self)
        box.setObjectName("cancelConfirmation")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Cancel training job" if count == 1 else "Cancel training jobs")
        if count == 1:
            box.setText(f"Cancel the training job “{jobs[0].name}”?")
        else:
            listed = "\n".join(f"• {job.name}" for job in jobs[:MAX_LISTED_IN_CONFIRMATION])
            more = count - MAX_LISTED_IN_CONFIRMATION
            if more > 0:
                listed += f"\n… and {more} more"
            box.setText(f"Cancel these {count} training jobs?\n\n{listed}")
        box.setInformativeText("Their progress so far will be lost." if count > 1
                               else "Its progress so far will be lost.")
        cancel_button = box.addButton("Cancel job" if count == 1 else f"Cancel {count} jobs",
                                      QMessageBox.ButtonRole.DestructiveRole)
        keep_button = box.addButton("Keep running", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep_button)  # Enter must not cancel anything
        box.setEscapeButton(keep_button)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        job_ids = [job.id for job in jobs]
        box.finished.connect(lambda _result: self._on_cancel_answer(box, cancel_button, job_ids))
        self.cancel_confirmation = box
        box.open()

    def confirmation_button(self, text: str) -> QPushButton | None:
        """The open cancel confirmation's button labelled `text` ("Keep running", "Cancel 3 jobs")."""
        box = self.cancel_confirmation
        if box is None:
            return None
        return next((button for button in box.buttons()
                     if isinstance(button, QPushButton) and button.text() == text), None)

    def _on_cancel_answer(self, box: QMessageBox, cancel_button: QPushButton, job_ids: list[str]) -> None:
        if self.cancel_confirmation is box:
            self.cancel_confirmation = None
        confirmed = box.clickedButton() is cancel_button
        box.deleteLater()
        if not confirmed:
            return
        for job_id in job_ids:
            job = self.model.job(job_id)
            if not self.can_cancel(job):  # it finished (or is being cancelled) while the question was open
                continue
            self.cancel_requested.emit(job_id)
            self.store.request_cancel(job_id)
        self._update_actions()

    # details pane --------------------------------------------------------------------------------
    def details_visible(self) -> bool:
        return self.details is not None and not self.details.isHidden()

    def set_details_visible(self, visible: bool) -> None:
        """Show or hide the details pane (building it the first time), and remember it."""
        visible = bool(visible)
        if self.details_action.isChecked() != visible:
            self.details_action.setChecked(visible)  # comes back here through toggled
            return
        if visible == self.details_visible():
            return
        if visible:
            if self.details is None:
                self._build_details()
            assert self.details is not None
            self.details.show()
            self._apply_sizes()
            self._update_details()
        else:
            self.save_layout()  # the sizes it had while open
            assert self.details is not None
            self.details.suspend()
            self.details.hide()
            self._update_details()  # the swatches go with the chart
        self._remember_visible(visible)
        self.details_visibility_changed.emit(visible)

    def open_details(self) -> None:
        """Enter or double-click on a row: show the pane for the current job."""
        if self.table.currentIndex().isValid():
            self.set_details_visible(True)

    def _build_details(self) -> None:
        from training_studio.ui.jobs.details.pane import JobDetailsPane

        pane = JobDetailsPane(self.store, self.splitter)
        pane.dataset_activated.connect(self.dataset_requested)
        pane.model_activated.connect(self.model_requested)
        pane.close_requested.connect(lambda: self.set_details_visible(False))
        self.splitter.addWidget(pane)
        self.splitter.setCollapsible(0, False)
        self.splitter.setCollapsible(1, False)
        self.details = pane

    def _schedule_details(self, *args: object) -> None:
        if self.details_visible():
            self._details_timer.start()
        elif self._compare_slots:  # a comparison's swatches must not outlive its selection
            self._details_timer.start()

    def _update_details(self) -> None:
        """Tell the pane which jobs to show, and the model which rows wear a compare swatch."""
        selected = self.selected_jobs()
        current = self.selected_job()
        if len(selected) > 1:  # the current job first: the chart's primary (its CSV export) is the one in view
            others = [job for job in selected if current is None or job.id != current.id]
            compared = ([current] if current is not None else []) + others
            compared = compared[:MAX_COMPARED]
        else:
            compared = [current] if current is not None else []
        if not self.details_visible():
            compared = []
        self._compare_slots = assign_colours([job.id for job in compared], self._compare_slots)
        dark = palette_is_dark(self.table.palette())
        colours = {job_id: compare_colour(slot, dark=dark) for job_id, slot in self._compare_slots.items()}
        # Swatches only when comparing: one job's curve needs no key.
        self.shown_model().set_compare_colours(colours if len(compared) > 1 else {})
        if self.details is None or not self.details_visible():
            return
        from training_studio.ui.jobs.details.pane import ComparedJob

        self.details.show_jobs(current.id if current is not None else None,
                               [ComparedJob(job.id, job.name, colours[job.id]) for job in compared],
                               more=max(0, len(selected) - MAX_COMPARED))

    # remembered layout ---------------------------------------------------------------------------
    def _remembered_visible(self) -> bool:
        return self.settings is not None and self.settings.details_pane_visible

    def _remember_visible(self, visible: bool) -> None:
        if self.settings is not None:
            self.settings.set_details_pane_visible(visible)

    def save_layout(self) -> None:
        """Remember the splitter's sizes (while the pane is open: a closed pane has no size to keep)."""
        if self.settings is None or not self.details_visible():
            return
        sizes = self.splitter.sizes()
        if len(sizes) == 2 and min(sizes) > 0:
            self.settings.set_details_pane_sizes(sizes)

    def _apply_sizes(self) -> None:
        sizes = self.settings.details_pane_sizes if self.settings is not None else None
        if not sizes:
            total = max(self.splitter.height(), 400)
            pane = int(total * DEFAULT_DETAILS_SHARE)
            sizes = [total - pane, pane]
        self.splitter.setSizes(list(sizes))

    def shutdown(self) -> None:
        """Stop the details views (at quit); the layout is remembered first."""
        self.save_layout()
        if self.details is not None:
            self.details.shutdown()

    # export --------------------------------------------------------------------------------------
    def table_as_csv(self) -> str:
        """The table as shown: its visible columns in their on-screen order, its filtered rows in order."""
        header = self.table.horizontalHeader()
        columns = [header.logicalIndex(visual) for visual in range(header.count())]
        columns = [column for column in columns if not header.isSectionHidden(column)]
        titles = [str(self.proxy.headerData(column, Qt.Orientation.Horizontal) or "") for column in columns]
        rows = [[str(self.proxy.index(row, column).data(Qt.ItemDataRole.DisplayRole) or "")
                 for column in columns] for row in range(self.proxy.rowCount())]
        return fmt.table_csv(titles, rows)

    def export_csv(self, path: str | Path) -> bool:
        """Write `table_as_csv()` to `path` atomically; on failure say why in the notice bar. True if written."""
        target = Path(path)
        try:
            write_atomically(target, self.table_as_csv().encode("utf-8"))
        except OSError as error:
            reason = error.strerror or str(error)
            self.notice.show_message(f"Could not save the jobs table to {target}: {reason}.", BannerLevel.ERROR)
            return False
        remember_folder("export", target)
        self.notice.show_message(f"Saved the jobs table ({self.proxy.rowCount()} rows) to {target}.",
                                 BannerLevel.INFO)
        return True

    def choose_export_target(self) -> None:
        """Plain slot (a nested loop is fine here, never in a coroutine): ask where, then export."""
        suggested = Path(remembered_folder("export", str(Path.home()))) / "training-jobs.csv"
        path, _filter = QFileDialog.getSaveFileName(self, "Export the jobs table", str(suggested),
                                                    "CSV files (*.csv);;All files (*)")
        if path:
            self.export_csv(path)

    # reactions -------------------------------------------------------------------------------------
    def _on_filter_text(self, text: str) -> None:
        self.proxy.set_text(text)
        self._update_state()

    def _on_status_filter(self, index: int) -> None:
        statuses = STATUS_FILTERS[index][1] if 0 <= index < len(STATUS_FILTERS) else None
        self.proxy.set_statuses(set(statuses) if statuses is not None else None)
        self._set_finished_view(self._finished_filter())
        self._update_state()

    def _set_finished_view(self, on: bool) -> None:
        """Show the server's finished jobs (on) or the list (off) in the table; the other rows stay as they are."""
        finished = self.finished
        if on and finished is None:
            finished = self.finished = self.store.finished_jobs()
            finished.loading_changed.connect(self._update_state)
            finished.load_failed.connect(self._update_state)
            finished.loaded.connect(self._on_finished_loaded)
            for signal in (finished.model.rowsInserted, finished.model.rowsRemoved):
                signal.connect(self._update_state)
        source = finished.model if on and finished is not None else self.model
        if self.proxy.sourceModel() is not source:
            self.shown_model().set_compare_colours({})  # the swatches belong to the rows being left
            self.proxy.setSourceModel(source)  # the proxy's one reset: the user switched views
            self._update_actions()
        if finished is None:
            return
        if on and not finished.shown:
            self._scroll_on_load = True
            finished.show()
        elif not on and finished.shown:
            finished.hide()

    def _on_finished_loaded(self, *args: object) -> None:
        self._update_state()
        if self._scroll_on_load and self.finished_view():
            self._scroll_on_load = False
            if not self.table.selectionModel().hasSelection():
                self.table.scrollToBottom()  # the newest finished jobs (rows are in createdAt order)

    def _on_jobs_changed(self) -> None:
        self._connected_once = True
        self._update_state()
        self._update_actions()
        self._update_freshness()

    def _on_name_or_status_changed(self, status_changed: bool) -> None:
        # Once per batch (not per dataChanged): progress, step, loss and the 1 s tick never reach here. Only a
        # status or "Cancelling…" change (always in the Status column) affects the counts and the actions.
        if status_changed:
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
        selection = self.table.selectionModel()
        if index.isValid() and not selection.isRowSelected(index.row(), index.parent()):
            selection.setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        elif index.isValid():  # inside the selection: act on all of it
            selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)
        menu = QMenu(self)
        menu.addAction(self.cancel_action)
        menu.addAction(self.copy_id_action)
        menu.addAction(self.open_details_action)
        job = self.selected_job()
        if job is not None and job.status in (JobStatus.PENDING, JobStatus.QUEUED):
            menu.addSeparator()
            for action in (self.move_top_action, self.move_up_action, self.move_down_action, self.hold_action):
                menu.addAction(action)
        if job is not None:
            menu.addSeparator()
            menu.addAction(self.train_again_action)
            menu.addAction(self.save_template_action)
        menu.addSeparator()
        menu.addAction(self.refresh_action)
        menu.addAction(self.clear_action)
        menu.addAction(self.export_action)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def columns_menu(self) -> QMenu:
        """The header's menu: show or hide each column but Name (for this session)."""
        menu = QMenu(self)
        menu.setObjectName("jobsColumnsMenu")
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        for column in JobColumn:
            if column == JobColumn.NAME:
                continue
            title = str(self.model.headerData(int(column), Qt.Orientation.Horizontal) or "")
            action = menu.addAction(title)
            action.setCheckable(True)
            action.setChecked(not self.table.isColumnHidden(int(column)))
            action.toggled.connect(lambda shown, column=column: self.set_column_shown(column, shown))
        return menu

    def set_column_shown(self, column: JobColumn, shown: bool) -> None:
        self.table.setColumnHidden(int(column), not shown)
        self.table.fit_columns()

    def _move_selected(self, where: str) -> None:
        job = self.selected_job()
        if job is not None and job.status in (JobStatus.PENDING, JobStatus.QUEUED):
            self.store.request_queue_update(job.id, move=where)

    def _hold_selected(self, held: bool) -> None:
        job = self.selected_job()
        if job is not None and job.status in (JobStatus.PENDING, JobStatus.QUEUED):
            self.store.request_queue_update(job.id, held=held)

    def _emit_for_selected(self, signal: Signal) -> None:
        job = self.selected_job()
        if job is not None:
            signal.emit(job)

    def _copy_selected_id(self) -> None:
        job = self.selected_job()
        if job is not None:
            QGuiApplication.clipboard().setText(job.id)

    def clear_finished(self) -> int:
        """Clear the finished rows, with an Undo in the notice that says so (issue 15: cleared jobs stay
        reachable: the notice names the History tab, which lists every job of the server)."""
        removed = self.store.clear_finished()
        if removed:
            noun = "1 finished job" if removed == 1 else f"{removed:,} finished jobs"
            post_notice(self, f"Cleared {noun} (all of them stay in the History tab)", key="cleared",
                        action=("&Undo", self.store.undo_clear_finished))
        return removed

    def _finished_filter(self) -> bool:
        statuses = self.proxy.statuses()
        return bool(statuses) and all(status in TERMINAL_STATUSES for status in statuses)

    def _update_state(self, *args: object) -> None:
        total = self.model.rowCount()
        finished_view = self.finished_view()
        self.counts_label.setVisible(not finished_view)
        self.finished_note.setVisible(finished_view)
        self.history_button.setVisible(finished_view)
        if finished_view:
            self._update_finished_view()
        elif total == 0:
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

    def _update_finished_view(self) -> None:
        """The table or the empty state of the Finished view, and its line under the table."""
        finished = self.finished
        assert finished is not None
        if self.proxy.rowCount() > 0:
            self.stack.setCurrentWidget(self.table)
        else:
            if finished.is_loading and not finished.fetched_once and finished.model.rowCount() == 0:
                text = FINISHED_LOADING_TEXT
            elif finished.error and finished.model.rowCount() == 0:
                text = f"Could not load the server's finished jobs: {finished.error}"
            elif self.proxy.text() or finished.model.rowCount() > 0:
                text = NO_MATCH_TEXT
            else:
                text = FINISHED_EMPTY_TEXT
            self.empty_label.setText(text)
            self.stack.setCurrentWidget(self.empty_label)
        held = finished.model.rowCount()
        if finished.more:
            note = f"The latest {held:,} finished jobs of the server, cleared ones included"
        else:
            note = ("1 finished job" if held == 1 else f"{held:,} finished jobs") + \
                " of the server, cleared ones included"
        if finished.error and held:
            note += f" · not refreshed: {finished.error}"
        self.finished_note.setText(note)
        self.finished_note.setToolTip(note)

    def _update_actions(self, *args: object) -> None:
        job = self.selected_job()
        selected = self.table.selectionModel().selectedRows()
        if len(selected) > 1:
            count = len(self.cancellable_selected_jobs())
            self.cancel_action.setText(f"&Cancel {count} jobs…" if count > 1 else "&Cancel job…")
            self.cancel_action.setEnabled(count > 0)
        else:
            self.cancel_action.setText("&Cancel job…")
            self.cancel_action.setEnabled(self.can_cancel(job))
        self.copy_id_action.setEnabled(job is not None)
        waiting = job is not None and job.status in (JobStatus.PENDING, JobStatus.QUEUED)
        for action in (self.move_top_action, self.move_up_action, self.move_down_action, self.hold_action):
            action.setEnabled(waiting)
        self.hold_action.setChecked(bool(waiting and job is not None and job.held))
        self.train_again_action.setEnabled(job is not None)
        self.save_template_action.setEnabled(job is not None)

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
