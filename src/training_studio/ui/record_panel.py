"""The common frame of the Datasets and Models tabs: a polled list of server records in a sortable table.

`RecordListPanel` owns what both tabs do the same way over a `PollingStore` whose `model` is a keyed list
model (`row_of`, `RecordRole`): the Delete and Refresh actions and the toolbar holding them, the notice
bar, the table (sorted through a proxy on `RecordRole.SORT`, one row selected at a time, fixed row
height) stacked with the label that says why it is empty (loading, failed, none yet), auto-refresh while
the panel is shown, selecting a record by id, asking before a delete (a non-blocking `ConfirmBox` with
"Delete …" / "Keep it", the safe answer the default) and handing it to the store, the refresh-failed warning with "Retry now" (hidden again
by the next good refresh), and the context menu on a row. Each tab adds its own actions, side widget and
reactions; it names its columns in a `TableLayout` and its texts in `ListTexts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from PySide6.QtCore import QItemSelectionModel, QPoint, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QAction, QHideEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QMenu,
    QStackedWidget,
    QToolBar,
    QWidget,
)

from training_studio.ui.banner import Banner, BannerLevel
from training_studio.ui.confirm import ConfirmBox, ask_to_confirm
from training_studio.ui.datasets.keyed_model import RecordRole
from training_studio.ui.fitted_table import FittedTableView

__all__ = ["ListTexts", "ROW_HEIGHT", "RecordListPanel", "TableLayout"]

ROW_HEIGHT = 26
CREATED_COLUMN_WIDTH = 140
MIN_NAME_WIDTH = 120  # the name column keeps this much in a narrow window; the others give way
MIN_COLUMN_WIDTH = 48

RecordT = TypeVar("RecordT")


@dataclass(frozen=True)
class TableLayout:
    """Which columns stretch, fit their contents, or hold the creation time (the default sort, newest first),
    and which give way first in a narrow window (their whole text in a tooltip, or a badge's icon)."""

    stretch: int
    fit_contents: Sequence[int]
    created: int
    shrinks_first: Sequence[int] = ()


@dataclass(frozen=True)
class ListTexts:
    """The records' plural noun (for "Could not refresh the …"), and what the empty table says: before the
    first list, when that failed, and when the server has none."""

    noun: str
    loading: str
    failed: str
    none_yet: str


class RecordListPanel(QWidget):
    """Base of the record tabs; see the module docstring. Subclasses call the `_build_*` helpers."""

    delete_requested = Signal(str)  # record id, after the user confirmed

    def __init__(self, store: Any, *, texts: ListTexts, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._first_list_shown = False
        self.store = store
        self.model = store.model
        self._texts = texts
        self.pending_question: ConfirmBox | None = None  # the open delete confirmation, if any

    # building blocks ---------------------------------------------------------------------------------------------
    def _build_delete_and_refresh_actions(self) -> None:
        self.delete_action = QAction("&Delete…", self)
        self.delete_action.setShortcut(QKeySequence(Qt.Key.Key_Delete))
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.refresh_action = QAction("&Refresh", self)
        self.refresh_action.triggered.connect(self.store.request_refresh)

    def _build_toolbar(self, actions: Iterable[QAction]) -> QToolBar:
        """The given actions, then Refresh after a separator; Delete also answers its key in the whole panel."""
        toolbar = QToolBar(self)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action in actions:
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.refresh_action)
        self.addAction(self.delete_action)
        return toolbar

    def _build_notice(self, object_name: str) -> None:
        self.notice = Banner(self)
        self.notice.setObjectName(object_name)
        self.notice.hide()

    def _build_table(self, object_name: str, accessible_name: str, layout: TableLayout) -> None:
        """The proxy, the table and the stack that swaps it for `empty_label` when there is nothing to show."""
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(RecordRole.SORT)
        self.proxy.setDynamicSortFilter(True)
        # In a narrow window the other columns give way (FittedTableView) so the name stays readable.
        self.table = FittedTableView(self, preferred={layout.created: CREATED_COLUMN_WIDTH},
                                     min_name_width=MIN_NAME_WIDTH, minimum=MIN_COLUMN_WIDTH,
                                     shrinks_first=layout.shrinks_first, fit_contents=layout.fit_contents)
        self.table.setObjectName(object_name)
        self.table.setAccessibleName(accessible_name)
        self.table.setModel(self.proxy)
        self.table.setTabKeyNavigation(False)  # one Tab stop: arrows move within, Tab leaves
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(layout.created, Qt.SortOrder.DescendingOrder)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(layout.stretch, QHeaderView.ResizeMode.Stretch)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_context_menu)

        self.empty_label = QLabel(self)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.table_stack = QStackedWidget(self)
        self.table_stack.addWidget(self.table)
        self.table_stack.addWidget(self.empty_label)

    def _connect_refresh_reports(self) -> None:
        self.store.refresh_failed.connect(self._on_refresh_failed)
        self.store.refresh_succeeded.connect(self._on_refresh_succeeded)

    # visibility drives auto-refresh ---------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.store.set_auto_refresh(True)

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.store.set_auto_refresh(False)

    # selection -----------------------------------------------------------------------------------------------------
    def _selected_record(self, record_type: type[RecordT]) -> RecordT | None:
        rows = self.table.selectionModel().selectedRows()
        record = rows[0].data(RecordRole.RECORD) if rows else None
        return record if isinstance(record, record_type) else None

    def _select_record(self, record_id: str) -> bool:
        row = self.model.row_of(record_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(index)
        return True

    def _confirm_delete(self, record_id: str, title: str, question: str) -> ConfirmBox | None:
        """Ask `question` without blocking, with verbs on the buttons ("Delete dataset" / "Keep it", the
        safe one the default); when confirmed, announce the delete and hand it to the store."""
        if self.store.is_deleting(record_id):
            return None
        if self.pending_question is not None:
            self.pending_question.close()
        text, _, informative = question.partition("\n\n")
        box = ask_to_confirm(self, title, text, informative, confirm=f"&{title}", keep="&Keep it",
                             on_confirm=lambda: self._delete_confirmed(record_id))
        self.pending_question = box
        box.finished.connect(lambda _result: self._forget_question(box))
        return box

    def _forget_question(self, box: ConfirmBox) -> None:
        if self.pending_question is box:
            self.pending_question = None

    def _delete_confirmed(self, record_id: str) -> None:
        if self.store.is_deleting(record_id):
            return
        self.delete_requested.emit(record_id)
        self.store.request_delete(record_id)
        self._update_actions()

    def _update_actions(self, *args: object) -> None:
        raise NotImplementedError

    # reactions ------------------------------------------------------------------------------------------------------
    def _menu_actions(self) -> Sequence[QAction]:
        raise NotImplementedError

    def _show_context_menu(self, pos: QPoint) -> None:
        if not self.table.indexAt(pos).isValid():
            return
        menu = QMenu(self)
        for action in self._menu_actions():
            menu.addAction(action)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def _on_refresh_failed(self, message: str) -> None:
        self.notice.show_message(f"Could not refresh the {self._texts.noun}: {message} "
                                 f"Showing the last good list.",
                                 BannerLevel.WARNING, [("Retry now", self.store.request_refresh)])
        self._update_state()

    def _on_refresh_succeeded(self) -> None:
        if self.notice.isVisible() and self.notice.level is BannerLevel.WARNING:
            self.notice.hide()
        # The store announces its rows before it counts the list as loaded: an empty first list must say
        # "none yet" now, not "loading" until the next refresh.
        self._update_state()
        if not self._first_list_shown and self.proxy.rowCount() > 0:
            # The first list that arrives opens on its newest record, so the details pane is not empty;
            # later refreshes leave the user's selection (or lack of one) alone.
            self._first_list_shown = True
            if not self.table.selectionModel().hasSelection():
                self.table.selectRow(0)

    def _update_state(self) -> None:
        if self.model.rowCount() > 0:
            self.table_stack.setCurrentWidget(self.table)
            return
        texts = self._texts
        if not self.store.loaded_once:
            text = texts.loading if self.store.last_error is None else texts.failed
        else:
            text = texts.none_yet
        self.empty_label.setText(text)
        self.table_stack.setCurrentWidget(self.empty_label)
