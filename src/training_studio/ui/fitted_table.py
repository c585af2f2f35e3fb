"""A table view whose fixed columns make room for its stretching name column in a narrow window.

`FittedTableView` owns the widths of a table's fixed columns: on every resize it shares the room the name
column leaves (its minimum kept) among them with `ui.column_fit.fit_widths`, so the names stay readable and
the table does not scroll sideways. The widths it fits from are the columns' preferred widths, and a width
someone else set since its last fit (the user dragging a column's edge, or a header state restored from the
settings) becomes that column's preferred width: a window made narrow and wide again gives the user their
columns back. So the settings save the preferred widths (`header_state`), not what a narrow window left.
The Jobs and History tables derive from it; the Datasets and Models tables (`ui.record_panel`) use it with
content-fitted columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import QAbstractItemModel, QByteArray, QSignalBlocker, QTimer
from PySide6.QtWidgets import QTableView, QWidget

from training_studio.ui.column_fit import fit_widths

__all__ = ["FittedTableView"]


class FittedTableView(QTableView):
    """See the module docstring. `preferred` maps column numbers to widths (px); the column in neither it nor
    `fit_contents` is the stretching one, given at least `min_name_width`. A column of `fit_contents` prefers
    the width of its contents and title (a short list of records, like ResizeToContents, which never
    shrinks), measured again when rows come or change."""

    def __init__(self, parent: QWidget | None = None, *, preferred: Mapping[int, int], min_name_width: int,
                 minimum: int, shrinks_first: Sequence[int] = (), fit_contents: Sequence[int] = ()) -> None:
        super().__init__(parent)
        self._preferred = {int(column): width for column, width in preferred.items()}
        self._fit_contents = tuple(int(column) for column in fit_contents)
        self._min_name_width = min_name_width
        self._minimum = minimum
        self._shrinks_first = tuple(int(column) for column in shrinks_first)
        self._fitted: dict[int, int] = {}  # the widths the last fit gave
        self._user_widths: dict[int, int] = {}  # widths the user gave content-fitted columns
        self.horizontalHeader().setMinimumSectionSize(minimum)
        self._refit = QTimer(self)  # contents changed: one fit after the batch, not one per row
        self._refit.setSingleShot(True)
        self._refit.setInterval(0)
        self._refit.timeout.connect(self.fit_columns)
        self._fitting = False
        # A content-fitted column keeps a width the user drags it to; a restored one follows its contents
        # again (restoreState emits no signal), as its contents may have changed since.
        self.horizontalHeader().sectionResized.connect(self._on_section_resized)

    def setModel(self, model: QAbstractItemModel | None) -> None:  # noqa: N802 (Qt name)
        super().setModel(model)
        if model is not None and self._fit_contents:
            for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset, model.dataChanged,
                           model.layoutChanged):
                signal.connect(self._refit.start)

    def preferred_widths(self) -> dict[int, int]:
        """The widths the fit starts from (a subclass may raise some, e.g. for its font)."""
        widths = dict(self._preferred)
        for column in self._fit_contents:
            widths[column] = self._user_widths.get(column) or self._contents_width(column)
        return widths

    def _on_section_resized(self, column: int, _old: int, new: int) -> None:
        if not self._fitting and column in self._fit_contents and new > 0:
            self._user_widths[column] = new

    def _contents_width(self, column: int) -> int:
        header = self.horizontalHeader()
        if header.isSectionHidden(column):
            return 0
        # The rows in view (as ResizeToContents measures them) and the title with its sort arrow.
        return max(self.sizeHintForColumn(column), header.sectionSizeHint(column), self._minimum)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self.fit_columns()

    def header_state(self) -> QByteArray:
        """The header's state to save, with every fitted column at its preferred width: a narrow window at
        quit must not leave its squeezed widths as the user's choice at the next start (restored widths
        count as the user's)."""
        header = self.horizontalHeader()
        self._adopt_user_widths()
        shown = {column: header.sectionSize(column) for column in self._fitted}
        with QSignalBlocker(header):  # no fit, no repaint in between: nothing on screen changes
            for column, width in self.preferred_widths().items():
                if column in shown:
                    header.resizeSection(column, width)
            state = header.saveState()
            for column, width in shown.items():
                header.resizeSection(column, width)
        return state

    def fit_columns(self) -> None:
        header = self.horizontalHeader()
        self._adopt_user_widths()
        widths = fit_widths(self.viewport().width() - self._min_name_width, self.preferred_widths(),
                            shrinks_first=self._shrinks_first, minimum=self._minimum,
                            shown=lambda column: not header.isSectionHidden(column))
        self._fitting = True
        try:
            for column, width in widths.items():
                header.resizeSection(column, width)
        finally:
            self._fitting = False
        self._fitted = {column: header.sectionSize(column) for column in widths}

    def _adopt_user_widths(self) -> None:
        header = self.horizontalHeader()
        for column, fitted in self._fitted.items():
            if column in self._fit_contents:
                continue  # see _on_section_resized
            current = header.sectionSize(column)
            if current != fitted and current > 0 and not header.isSectionHidden(column):
                self._preferred[column] = current  # dragged or restored since: the user's width from now on
                self._fitted[column] = current
