"""The table model of the Models panel: one row per trained model, columns Name, Base model, Status,
Size, Created.

Rows are keyed by model id and refreshed by snapshot diffs (see `ui.datasets.keyed_model`); a failed
model explains itself in the status tooltip.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from PySide6.QtGui import QGuiApplication, QPalette, QPixmap

from training_studio.contract.models import TrainedModel
from training_studio.ui import icons
from training_studio.ui.datasets.format import format_bytes, format_created, status_icon, status_text, status_tooltip
from training_studio.ui.datasets.keyed_model import KeyedTableModel

__all__ = ["ModelColumn", "TrainedModelListModel"]


class ModelColumn(IntEnum):
    NAME = 0
    BASE_MODEL = 1
    STATUS = 2
    SIZE = 3
    CREATED = 4


class TrainedModelListModel(KeyedTableModel[TrainedModel]):
    columns = ("Name", "Base model", "Status", "Size", "Created")

    def display(self, record: TrainedModel, column: int) -> str:
        if column == ModelColumn.NAME:
            return record.name
        if column == ModelColumn.BASE_MODEL:
            return record.base_model
        if column == ModelColumn.STATUS:
            return status_text(record.status)
        if column == ModelColumn.SIZE:
            return format_bytes(record.size_bytes)
        if column == ModelColumn.CREATED:
            return format_created(record.created_at)
        return ""

    def tooltip(self, record: TrainedModel, column: int) -> str | None:
        # The whole text of the columns that give way in a narrow window (a status badge then shows its icon).
        if column == ModelColumn.STATUS:
            return status_tooltip(record.status, record.error)
        if column == ModelColumn.NAME:
            return f"{record.name}\nid {record.id}" + (f"\n{record.path}" if record.path else "")
        if column in (ModelColumn.BASE_MODEL, ModelColumn.CREATED):
            return self.display(record, column) or None
        return None

    def sort_value(self, record: TrainedModel, column: int) -> Any:
        if column == ModelColumn.SIZE:
            return record.size_bytes if record.size_bytes is not None else -1
        if column == ModelColumn.CREATED:
            return record.created_at
        return super().sort_value(record, column)

    def decoration(self, record: TrainedModel, column: int) -> QPixmap | None:
        if column == ModelColumn.STATUS:
            # In the theme's text colour (the word beside it says the status; colour is not the signal).
            colour = QGuiApplication.palette().color(QPalette.ColorRole.Text)
            return icons.pixmap(status_icon(record.status), 16, QGuiApplication.instance().devicePixelRatio(),
                                colour=colour)
        return None
