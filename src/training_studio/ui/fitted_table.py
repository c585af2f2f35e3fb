"""A table view whose fixed columns make room for its stretching name column in a narrow window.

`FittedTableView` owns the widths of a table's fixed columns: on every resize it shares the room the name
column leaves (its minimum kept) among them with `ui.column_fit.fit_widths`, so the names stay readable and
the table does not scroll sideways. The widths it fits from are the columns' preferred widths, and a width
someone else set since its last fit (the user dragging a column's edge, or a header state restored from the
settings) becomes that column's preferred width: a window made narrow and wide again gives the user their
columns back. So the settings save the preferred widths (`header_state`), not what a narrow window left. The Jobs and History tables derive from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import QByteArray, QSignalBlocker
from PySide6.QtWidgets import QTableView, QWidget

from training_studio.ui.column_fit import fit_widths

__all__ = ["FittedTableView"]


class FittedTableView(QTableView):
    """See the module docstring. `preferred` maps column numbers to widths (px); the column not in it is the
    stretching one, given at least `min_name_width`."""

    def __init__(self, parent: QWidget | None = None, *, preferred: Mapping[int, int], min_name_width: int,
                 minimum: int, shrinks_first: Sequence[int] = ()) -> None:
        super().__init__(parent)
        self._preferred = {int(column): width for column, width in preferred.items()}
        self._min_name_width = min_name_width
        self._minimum = minimum
        self._shrinks_first = tuple(int(column) for column in shrinks_first)
        self._fitted: dict[int, int] = {}  # the widths the last fit gave
        self.horizontalHeader().setMinimumSectionSize(minimum)

    def preferred_widths(self) -> dict[int, int]:
        """The widths the fit starts from (a subclass may raise some, e.g. for its font)."""
        return dict(self._preferred)

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
        for column, width in widths.items():
            header.resizeSection(column, width)
        self._fitted = {column: header.sectionSize(column) for column in widths}

    def _adopt_user_widths(self) -> None:
        header = self.horizontalHeader()
        for column, fitted in self._fitted.items():
            current = header.sectionSize(column)
            if current != fitted and current > 0 and not header.isSectionHidden(column):
                self._preferred[column] = current  # dragged or restored since: the user's width from now on
                self._fitted[column] = current
