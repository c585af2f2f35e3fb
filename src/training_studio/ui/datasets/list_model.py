"""The table model of the Datasets panel: one row per dataset, columns Name, Type, Files, Status, Created.

Rows are keyed by dataset id and refreshed by snapshot diffs (see `keyed_model.KeyedTableModel`); the
status column carries a cached status icon, and a failed dataset explains itself in the tooltip.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from PySide6.QtGui import QGuiApplication, QPalette, QPixmap

from training_studio.contract.models import Dataset, DatasetType
from training_studio.ui import icons
from training_studio.ui.datasets.format import format_created, status_icon, status_text, status_tooltip
from training_studio.ui.datasets.keyed_model import KeyedTableModel

__all__ = ["DatasetColumn", "DatasetListModel"]


class DatasetColumn(IntEnum):
    NAME = 0
    TYPE = 1
    FILES = 2
    STATUS = 3
    CREATED = 4


_TYPE_TEXT = {DatasetType.IMAGE: "Images", DatasetType.AUDIO: "Audio", DatasetType.VIDEO: "Video",
              DatasetType.TEXT: "Text"}


class DatasetListModel(KeyedTableModel[Dataset]):
    columns = ("Name", "Type", "Files", "Status", "Created")

    def display(self, record: Dataset, column: int) -> str:
        if column == DatasetColumn.NAME:
            return record.name
        if column == DatasetColumn.TYPE:
            return _TYPE_TEXT.get(record.type, "Unknown")
        if column == DatasetColumn.FILES:
            return f"{record.image_count:,}"
        if column == DatasetColumn.STATUS:
            return status_text(record.status)
        if column == DatasetColumn.CREATED:
            return format_created(record.created_at)
        return ""

    def tooltip(self, record: Dataset, column: int) -> str | None:
        # The whole text of the columns that give way in a narrow window (a status badge then shows its icon).
        if column == DatasetColumn.STATUS:
            return status_tooltip(record.status, record.error)
        if column == DatasetColumn.NAME:
            return f"{record.name}\nid {record.id}"
        if column == DatasetColumn.CREATED:
            return self.display(record, column) or None
        return None

    def sort_value(self, record: Dataset, column: int) -> Any:
        if column == DatasetColumn.FILES:
            return record.image_count
        if column == DatasetColumn.CREATED:
            return record.created_at
        return super().sort_value(record, column)

    def decoration(self, record: Dataset, column: int) -> QPixmap | None:
        if column == DatasetColumn.STATUS:
            # In the theme's text colour (the word beside it says the status; colour is not the signal).
            colour = QGuiApplication.palette().color(QPalette.ColorRole.Text)
            return icons.pixmap(status_icon(record.status), 16, QGuiApplication.instance().devicePixelRatio(),
                                colour=colour)
        return None
