"""The History tab's widget: filters, the paged table, and the actions on the selected jobs.

It shows the store's rows and forwards intent; it never calls HTTP. The name search is debounced (the
server answers each query; typing "portrait" sends one request, not eight). Clicking a sortable column
header asks the server for that order (the table never sorts rows itself, so a ticking value cannot
reorder rows under the user). The date filter offers fixed ranges back from now and "Custom range…": two
date fields (From, To: local days, both included) in a row under the filters; a change of either is sent
after a short pause (typing a year changes the date once per digit), and From after To is refused with a
short message beside the fields, which keep their values. The filter is remembered in the settings.
Actions: Train again… (any job: the window opens the Train dialog filled from it), Delete… (finished
jobs, one confirmation listing them; a running job is refused by the server and reported per job), Save as
template… (one finished job: the window asks a name and saves its settings), Copy job ID. Refresh, Train
again… and Delete… sit in a toolbar with the Jobs tab's icons, and the Status column wears the Jobs table's
badges (`StatusBadgeDelegate`). In a narrow window the fixed columns give way (Ran on, Created and Status
first, their full text in a tooltip) so the names stay readable (`HistoryTableView`).
"""

from __future__ import annotations

from datetime import date, timedelta

from PySide6.QtCore import QDate, QEvent, QItemSelectionModel, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract.models import TERMINAL_STATUSES, TrainingJob
from training_studio.ui.history.model import SORT_FIELDS, HistoryColumn
from training_studio.ui.history.query import ALL_STATUSES, CUSTOM_RANGE, DATE_RANGES, HistoryQuery
from training_studio.ui.history.store import HistoryStore
from training_studio.ui.fitted_table import FittedTableView
from training_studio.ui.icons import decorate_toolbar
from training_studio.ui.jobs.delegates import StatusBadgeDelegate
from training_studio.ui.jobs.format import status_label

__all__ = ["HistoryPanel", "SEARCH_DEBOUNCE_MS", "RANGE_DEBOUNCE_MS"]

SEARCH_DEBOUNCE_MS = 300
RANGE_DEBOUNCE_MS = 400  # a date typed digit by digit is sent once
DATE_FORMAT = "yyyy-MM-dd"  # as the table's Created and Finished columns
ROW_HEIGHT = 28  # as the Jobs table's: room for the status badge
MAX_LISTED = 8  # jobs named in a confirmation before "and N more"


# Preferred widths of the fixed columns; Name stretches over the rest (see HistoryTableView).
PREFERRED_WIDTHS = {HistoryColumn.STATUS: 120, HistoryColumn.STEP: 120, HistoryColumn.LOSS: 80,
                    HistoryColumn.CREATED: 130, HistoryColumn.FINISHED: 130, HistoryColumn.DURATION: 80,
                    HistoryColumn.PLACEMENT: 120}
MIN_NAME_WIDTH = 120
MIN_COLUMN_WIDTH = 48
# Full text in their tooltips; a status badge too narrow for its label shows its icon.
SHRINKS_FIRST = (HistoryColumn.PLACEMENT, HistoryColumn.CREATED, HistoryColumn.STATUS)


class HistoryTableView(FittedTableView):
    """The history table: in a narrow window its fixed columns shrink (Ran on, Created and Status first) so that
    the Name column keeps MIN_NAME_WIDTH, instead of the name collapsing to an ellipsis while the dates keep
    their full width (`FittedTableView`; a width the user dragged is kept as theirs)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, preferred=PREFERRED_WIDTHS, min_name_width=MIN_NAME_WIDTH, minimum=MIN_COLUMN_WIDTH,
                         shrinks_first=SHRINKS_FIRST)


class HistoryPanel(QWidget):
    train_again_requested = Signal(object)  # TrainingJob
    save_template_requested = Signal(object)  # TrainingJob
    delete_requested = Signal(list)  # job ids, after the user confirmed
    query_saved = Signal(object)  # HistoryQuery: the window stores it in the settings

    def __init__(self, store: HistoryStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.model = store.model
        self.setObjectName("historyPanel")
        self.setAccessibleName("Job history")

        self.search_edit = QLineEdit(self)
        self.search_edit.setPlaceholderText("Search names")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.setAccessibleName("Search job names")
        # A push button with a menu: the style leaves room for its arrow (a tool button's drew over the text).
        self.status_button = QPushButton(self)
        self.status_button.setAccessibleName("Filter by status")
        self.status_menu = QMenu(self.status_button)
        self.status_actions: dict[str, QAction] = {}
        for status in ALL_STATUSES:
            action = self.status_menu.addAction(status_label(status))
            action.setCheckable(True)
            action.toggled.connect(self._on_status_toggled)
            self.status_actions[status] = action
        self.status_button.setMenu(self.status_menu)
        self.date_combo = QComboBox(self)
        self.date_combo.setAccessibleName("Filter by date")
        for key, label, _ in DATE_RANGES:
            self.date_combo.addItem(label, key)
        # The custom range's days, shown under the filters while "Custom range…" is chosen.
        self.from_edit = self._date_edit("Jobs created on or after this day (local time)", "From date")
        self.to_edit = self._date_edit("Jobs created on or before this day (local time)", "To date")
        self.range_message = QLabel(self)
        self.range_message.setObjectName("historyRangeMessage")
        self.range_message.setAccessibleName("Date range problem")
        self.range_message.setTextFormat(Qt.TextFormat.PlainText)
        self.range_message.setVisible(False)
        self.range_row = QWidget(self)
        self.range_row.setObjectName("historyRangeRow")
        range_layout = QHBoxLayout(self.range_row)
        range_layout.setContentsMargins(0, 0, 0, 0)
        range_layout.addStretch(1)
        range_layout.addWidget(self.range_message)
        range_layout.addSpacing(8)
        for text, edit in (("From", self.from_edit), ("To", self.to_edit)):
            label = QLabel(text, self.range_row)
            label.setBuddy(edit)
            range_layout.addWidget(label)
            range_layout.addWidget(edit)
        self.range_row.setVisible(False)
        self.refresh_action = QAction("&Refresh", self)
        self.refresh_action.setToolTip("Ask the server for this history again")
        self.refresh_action.triggered.connect(store.reload)

        self.table = HistoryTableView(self)
        self.table.setObjectName("historyTable")
        self.table.setAccessibleName("Job history table")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setTabKeyNavigation(False)
        self.table.setSortingEnabled(False)  # the server sorts (see the module docstring)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_context_menu)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(int(HistoryColumn.NAME), QHeaderView.ResizeMode.Stretch)
        header.setSortIndicatorShown(True)
        header.setSectionsClickable(True)
        header.sectionClicked.connect(self._on_header_clicked)
        # The status as the Jobs table shows it: a badge with the status's icon and colour (issue 15, item 9).
        self._status_delegate = StatusBadgeDelegate(self.table)
        self.table.setItemDelegateForColumn(int(HistoryColumn.STATUS), self._status_delegate)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)  # as the Jobs table's
        self.table.fit_columns()

        self.status_label = QLabel(self)
        self.status_label.setAccessibleName("History status")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setWordWrap(True)

        self.train_again_action = QAction("&Train again…", self)
        self.train_again_action.setToolTip("Open the Train dialog filled with this job's settings")
        self.train_again_action.triggered.connect(self._train_again)
        self.delete_action = QAction("&Delete…", self)
        self.delete_action.setShortcut(QKeySequence(Qt.Key.Key_Delete))
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.delete_action.setToolTip("Delete the selected finished jobs with their logs, metrics and samples "
                                      "(models they produced are kept)")
        self.delete_action.triggered.connect(self.confirm_delete_selected)
        self.save_template_action = QAction("Save as te&mplate…", self)
        self.save_template_action.setToolTip("Save this job's dataset, base model, steps and parameters as a "
                                             "named template on the server")
        self.save_template_action.triggered.connect(self._save_template)
        self.save_template_action.setVisible(False)  # shown when the window handles it
        self.copy_id_action = QAction("Copy job &ID", self)
        self.copy_id_action.triggered.connect(self._copy_id)
        self.addAction(self.delete_action)
        # A toolbar as on the Jobs tab: the same icon set, text beside the icons, following the theme.
        self.toolbar = QToolBar("History", self)
        self.toolbar.setAccessibleName("History toolbar")
        for action in (self.refresh_action, self.train_again_action, self.delete_action):
            self.toolbar.addAction(action)
        decorate_toolbar(self.toolbar, {self.refresh_action: "refresh-cw", self.train_again_action: "play",
                                        self.delete_action: "trash-2"})
        self.refresh_button = self.toolbar.widgetForAction(self.refresh_action)
        self.train_button = self.toolbar.widgetForAction(self.train_again_action)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.toolbar)
        top.addWidget(self.search_edit, 1)
        top.addWidget(self.status_button)
        top.addWidget(self.date_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 4)
        layout.addLayout(top)
        layout.addWidget(self.range_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status_label)

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DEBOUNCE_MS)
        self._search_timer.timeout.connect(self._apply_search)
        self.search_edit.textChanged.connect(lambda _text: self._search_timer.start())
        self.search_edit.returnPressed.connect(self._apply_search)
        self.date_combo.currentIndexChanged.connect(self._on_date_changed)
        self._range_timer = QTimer(self)
        self._range_timer.setSingleShot(True)
        self._range_timer.setInterval(RANGE_DEBOUNCE_MS)
        self._range_timer.timeout.connect(self._apply_range)
        for edit in (self.from_edit, self.to_edit):
            edit.dateChanged.connect(self._on_range_edited)
            edit.editingFinished.connect(self._apply_range)
        self.table.selectionModel().selectionChanged.connect(self._update_actions)
        self.table.doubleClicked.connect(lambda _index: self._train_again())
        store.loading_changed.connect(self._update_status)
        store.page_loaded.connect(self._on_loaded)
        store.load_failed.connect(self._on_failed)
        store.query_changed.connect(self.show_query)
        store.delete_failed.connect(self._on_delete_failed)
        store.waiting_for_server.connect(lambda: self.status_label.setText("Connecting…"))
        store.jobs_deleted.connect(lambda ids: self._update_status())  # a query set elsewhere (restored settings) shows too
        self._error: str | None = None
        self.show_query(store.query)
        self._update_actions()
        self._update_status()

    # state -------------------------------------------------------------------------------------------
    def show_query(self, query: HistoryQuery) -> None:
        """Put `query` in the controls without sending it."""
        widgets = (self.search_edit, self.date_combo, self.from_edit, self.to_edit, *self.status_actions.values())
        for widget in widgets:
            widget.blockSignals(True)
        self.search_edit.setText(query.text)
        for status, action in self.status_actions.items():
            action.setChecked(status in query.statuses)
        self.date_combo.setCurrentIndex(max(0, self.date_combo.findData(query.date_range)))
        if query.date_from is not None and query.date_to is not None:
            self.from_edit.setDate(QDate(query.date_from))
            self.to_edit.setDate(QDate(query.date_to))
        for widget in widgets:
            widget.blockSignals(False)
        self._show_range_row(query.date_range == CUSTOM_RANGE)
        self._show_order(query.order)
        self._update_status_button(query)

    def selected_jobs(self) -> list[TrainingJob]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [job for job in (self.model.job(row) for row in rows) if job is not None]

    def select_job(self, job_id: str) -> bool:
        row = self.model.row_of(job_id)
        if row is None:
            return False
        self.table.selectionModel().select(
            self.model.index(row, 0),
            QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(self.model.index(row, 0))
        return True

    # intent ------------------------------------------------------------------------------------------
    def set_train_again_available(self, available: bool) -> None:
        self.train_again_action.setVisible(available)  # its toolbar button goes with it

    def _send(self, query: HistoryQuery) -> None:
        self._error = None
        self._update_status_button(query)
        self._update_status()
        self.store.set_query(query)
        self.query_saved.emit(query)

    def _apply_search(self) -> None:
        self._search_timer.stop()
        text = self.search_edit.text().strip()
        if text != self.store.query.text:
            self._send(self.store.query.with_changes(text=text))

    def _on_status_toggled(self, _checked: bool) -> None:
        chosen = frozenset(status for status, action in self.status_actions.items() if action.isChecked())
        self._send(self.store.query.with_changes(statuses=chosen))

    def _on_date_changed(self, index: int) -> None:
        key = self.date_combo.itemData(index)
        if key != CUSTOM_RANGE:
            self._range_timer.stop()
            self._show_range_row(False)
            self._send(self.store.query.with_changes(date_range=key))
            return
        query = self.store.query
        if query.date_from is None or query.date_to is None:  # first time: the days of the range it replaces
            days = next((days for k, _, days in DATE_RANGES if k == query.date_range and days), 30)
            today = date.today()
            for edit, day in ((self.from_edit, today - timedelta(days=days)), (self.to_edit, today)):
                edit.blockSignals(True)
                edit.setDate(QDate(day))
                edit.blockSignals(False)
        self._show_range_row(True)
        self._apply_range()

    def _on_range_edited(self, _date: QDate) -> None:
        if self._check_range():
            self._range_timer.start()
        else:
            self._range_timer.stop()

    def _apply_range(self) -> None:
        """Send the custom range the fields show, unless From is after To (then only the message says so)."""
        self._range_timer.stop()
        if self.date_combo.currentData() != CUSTOM_RANGE or not self._check_range():
            return
        day_from, day_to = self.from_edit.date().toPython(), self.to_edit.date().toPython()
        query = self.store.query
        if (query.date_range, query.date_from, query.date_to) != (CUSTOM_RANGE, day_from, day_to):
            self._send(query.with_changes(date_range=CUSTOM_RANGE, date_from=day_from, date_to=day_to))

    def _check_range(self) -> bool:
        """Whether the fields make a range; shows or clears the message beside them."""
        error = HistoryQuery.range_error(self.from_edit.date().toPython(), self.to_edit.date().toPython())
        self.range_message.setText(error or "")
        self.range_message.setVisible(error is not None)
        self._style_range_message()
        return error is None

    def _style_range_message(self) -> None:
        # The Train dialog's reds: at least 4.5:1 on the light and on the dark window colour.
        dark = self.palette().color(QPalette.ColorRole.Window).lightness() < 128
        self.range_message.setStyleSheet(f"color: {'#fca5a5' if dark else '#b91c1c'};")

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "range_message"):
            self._style_range_message()  # a theme switch while the message shows

    def _show_range_row(self, shown: bool) -> None:
        self.range_row.setVisible(shown)
        if shown:
            self._check_range()

    def _date_edit(self, tooltip: str, accessible_name: str) -> QDateEdit:
        edit = QDateEdit(self)
        edit.setCalendarPopup(True)
        edit.setDisplayFormat(DATE_FORMAT)
        edit.setDate(QDate.currentDate())
        edit.setToolTip(tooltip)
        edit.setAccessibleName(accessible_name)
        return edit

    def _on_header_clicked(self, section: int) -> None:
        field = SORT_FIELDS.get(HistoryColumn(section))
        if field is None:  # a column the server cannot sort by: keep the current order on show
            self._show_order(self.store.query.order)
            return
        current = self.store.query.order
        if current.lstrip("-") == field:
            order = field if current.startswith("-") else f"-{field}"
        else:
            order = f"-{field}" if field in ("createdAt", "finishedAt", "currentLoss") else field
        self._show_order(order)
        self._send(self.store.query.with_changes(order=order))

    def _show_order(self, order: str) -> None:
        field = order.lstrip("-")
        column = next((column for column, name in SORT_FIELDS.items() if name == field), None)
        header = self.table.horizontalHeader()
        if column is None:
            header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
            return
        header.setSortIndicator(int(column), Qt.SortOrder.DescendingOrder if order.startswith("-")
                                else Qt.SortOrder.AscendingOrder)

    def set_save_template_available(self, available: bool) -> None:
        self.save_template_action.setVisible(available)

    def _save_template(self) -> None:
        jobs = [job for job in self.selected_jobs() if job.status in TERMINAL_STATUSES]
        if len(jobs) == 1:
            self.save_template_requested.emit(jobs[0])

    def _train_again(self) -> None:
        jobs = self.selected_jobs()
        if jobs:
            self.train_again_requested.emit(jobs[0])

    def confirm_delete_selected(self) -> None:
        jobs = self.selected_jobs()  # every one is tried: the server refuses an active one, reported per job
        if not any(job.status in TERMINAL_STATUSES for job in jobs):
            return
        names = "\n".join(f"• {job.name}" for job in jobs[:MAX_LISTED])
        if len(jobs) > MAX_LISTED:
            names += f"\n…and {len(jobs) - MAX_LISTED} more"
        noun = "job" if len(jobs) == 1 else f"{len(jobs)} jobs"
        unfinished = sum(job.status not in TERMINAL_STATUSES for job in jobs)
        refused = ("" if not unfinished else
                   f"\n\n{unfinished} of them {'has' if unfinished == 1 else 'have'} not finished: the server keeps "
                   f"{'it' if unfinished == 1 else 'them'} (cancel first), and says so.")
        box = QMessageBox(QMessageBox.Icon.Warning, f"Delete {noun}?",
                          f"Delete {noun} with their logs, metrics and samples?\n\n{names}\n\n"
                          f"Models they produced are kept.{refused}", QMessageBox.StandardButton.NoButton, self)
        delete = box.addButton(f"Delete {noun}", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Keep them" if len(jobs) > 1 else "Keep it", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)
        ids = [job.id for job in jobs]

        def answered() -> None:
            if box.clickedButton() is delete:
                self.delete_requested.emit(ids)
            box.deleteLater()

        box.finished.connect(lambda _result: answered())
        self.confirm_box = box  # tests answer it
        box.open()

    def _copy_id(self) -> None:
        jobs = self.selected_jobs()
        if jobs:
            QGuiApplication.clipboard().setText("\n".join(job.id for job in jobs))

    def _show_context_menu(self, pos: QPoint) -> None:
        if not self.table.indexAt(pos).isValid():
            return
        menu = QMenu(self)
        menu.addAction(self.train_again_action)
        if self.save_template_action.isVisible():
            menu.addAction(self.save_template_action)
        menu.addAction(self.delete_action)
        menu.addSeparator()
        menu.addAction(self.copy_id_action)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    # display -----------------------------------------------------------------------------------------
    def _update_actions(self, *args: object) -> None:
        jobs = self.selected_jobs()
        self.train_again_action.setEnabled(len(jobs) == 1)
        self.delete_action.setEnabled(any(job.status in TERMINAL_STATUSES for job in jobs))
        self.save_template_action.setEnabled(len(jobs) == 1 and jobs[0].status in TERMINAL_STATUSES)
        self.copy_id_action.setEnabled(bool(jobs))

    def _update_status_button(self, query: HistoryQuery) -> None:
        chosen = [status for status in ALL_STATUSES if status in query.statuses]
        if not chosen or len(chosen) == len(ALL_STATUSES):
            text = "All statuses"
        elif len(chosen) <= 2:
            text = ", ".join(status_label(status) for status in chosen)
        else:
            text = f"{len(chosen)} statuses"
        self.status_button.setText(text)

    def _on_loaded(self, *args: object) -> None:
        self._error = None
        self._update_status()

    def _on_failed(self, message: str) -> None:
        self._error = f"Could not load the history: {message}"
        self._update_status()

    def _on_delete_failed(self, message: str) -> None:
        self._error = message  # the store's "Could not delete …", naming each job and why
        self._update_status()

    def _update_status(self, *args: object) -> None:
        rows = self.model.rowCount()
        if self._error:
            text = self._error
        elif self.store.is_loading and rows == 0:
            text = "Loading…"
        elif rows == 0:
            text = "No jobs match these filters" if self.store.query.text or self.store.query.date_range != "any" \
                else "No jobs with these statuses yet"
        else:
            more = self.model.canFetchMore(self.model.index(-1, -1)) or self.store.is_loading
            text = f"{rows:,} {'job' if rows == 1 else 'jobs'} shown" + (" · scroll for more" if more else "")
        self.status_label.setText(text)
