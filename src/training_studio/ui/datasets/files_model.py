"""The list model behind the dataset viewer's thumbnail grid: the files of one dataset.

`DatasetFilesModel` owns the rows (one `DatasetFile` per row, in the server's order) of the dataset being
viewed and the thumbnails shown for them. Thumbnails are fetched lazily: the first time a view asks for a
row's thumbnail the model emits `thumbnail_needed(sha256)` once, and the store answers with
`set_thumbnail()`, which announces exactly that row's thumbnail role. Only the most recently painted
`DECODED_THUMBNAILS` pixmaps are kept (issue 19: decoded, 10,000 of them were 470 MB); one dropped is asked
for again when its row is painted again (the store keeps the compressed bytes). A caption saved on the
server is applied with `set_caption()` (that row's caption and tooltip only), a bulk edit's captions with
`set_captions()` (one dataChanged over the rows it touched); `captions_of()` is the copy a bulk edit's undo
falls back on. A one-line caption is editable in place (F2 in the grid): `setData` changes nothing itself
but asks for the save with `caption_edit_requested`; the saved caption comes back through `set_caption()`.
Custom data goes through `FileRole`; `FileRole.VALIDATION` says a file is held out for validation (the
grid's delegate paints a badge from it, issue 17). `FileFilterProxy` narrows the grid to files whose name
or caption contains a text, or to the uncaptioned ones, or to given files (the upscaled images, a bucket's).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QPixmap

from training_studio.contract.models import DatasetFile
from training_studio.ui.datasets.format import format_bytes
from training_studio.ui.shared_fields import share_fields_set

__all__ = ["FileRole", "DatasetFilesModel", "FileFilterProxy"]

_ModelIndex = QModelIndex | QPersistentModelIndex
# Decoded thumbnails kept: several screens of the grid (a 1920×1080 window shows about 80 tiles), about
# 8 MB at 128×96 (31 MB on a 2× display).
DECODED_THUMBNAILS = 160


class FileRole(IntEnum):
    FILE = Qt.ItemDataRole.UserRole + 1       # the DatasetFile
    SHA256 = Qt.ItemDataRole.UserRole + 2
    FILENAME = Qt.ItemDataRole.UserRole + 3
    CAPTION = Qt.ItemDataRole.UserRole + 4    # str, "" when none
    THUMBNAIL = Qt.ItemDataRole.UserRole + 5  # QPixmap or None while loading
    THUMBNAIL_FAILED = Qt.ItemDataRole.UserRole + 6  # bool: the server could not make one
    VALIDATION = Qt.ItemDataRole.UserRole + 7  # bool: held out for validation, not trained on


class DatasetFilesModel(QAbstractListModel):
    thumbnail_needed = Signal(str)  # sha256, emitted once per row and dataset
    caption_edit_requested = Signal(str, str)  # sha256, new caption typed in place (not yet saved)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.dataset_id: str | None = None
        self._files: list[DatasetFile] = []
        self._row_by_sha: dict[str, int] = {}
        self._thumbnails: OrderedDict[str, QPixmap] = OrderedDict()  # least recently painted first
        self.decoded_limit = DECODED_THUMBNAILS
        self._failed: set[str] = set()
        self._requested: set[str] = set()

    # Qt interface ----------------------------------------------------------------------------------------
    def rowCount(self, parent: _ModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._files)

    def flags(self, index: _ModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren
        if index.row() < len(self._files) and "\n" not in (self._files[index.row()].caption or ""):
            flags |= Qt.ItemFlag.ItemIsEditable  # one line fits the in-place editor; several: the side editor
        return flags

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.column() != 0 or not 0 <= index.row() < len(self._files):
            return None
        file = self._files[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, FileRole.FILENAME):
            return file.filename
        if role in (FileRole.CAPTION, Qt.ItemDataRole.EditRole):
            return file.caption or ""
        if role == FileRole.SHA256:
            return file.sha256
        if role == FileRole.FILE:
            return file
        if role in (FileRole.THUMBNAIL, Qt.ItemDataRole.DecorationRole):
            pixmap = self._thumbnails.get(file.sha256)
            if pixmap is not None:
                self._thumbnails.move_to_end(file.sha256)
            elif file.sha256 not in self._requested and file.sha256 not in self._failed:
                self._requested.add(file.sha256)
                self.thumbnail_needed.emit(file.sha256)
            return pixmap
        if role == FileRole.THUMBNAIL_FAILED:
            return file.sha256 in self._failed
        if role == FileRole.VALIDATION:
            return bool(file.validation)
        if role == Qt.ItemDataRole.ToolTipRole:
            size = f"{file.width}×{file.height} px, " if file.width and file.height else ""
            caption = f"\n{file.caption}" if file.caption else "\n(no caption)"
            held = "\nHeld out for validation (not trained on)" if file.validation else ""
            return f"{file.filename}\n{size}{format_bytes(file.size)}{held}{caption}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            text = f"{file.filename}, caption: {file.caption}" if file.caption else f"{file.filename}, no caption"
            return f"{text}, validation" if file.validation else text
        return None

    def setData(self, index: _ModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        """An in-place edit: ask for the save; the row changes only once the server stored it."""
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not 0 <= index.row() < len(self._files):
            return False
        file = self._files[index.row()]
        if str(value) != (file.caption or ""):
            self.caption_edit_requested.emit(file.sha256, str(value))
        return False

    # access ----------------------------------------------------------------------------------------------------
    def row_of(self, sha256: str) -> int | None:
        return self._row_by_sha.get(sha256)

    def captions_of(self, shas: list[str] | None = None) -> dict[str, str]:
        """sha256 -> caption ("" when none) of these files (all when None); unknown files are left out."""
        if shas is None:
            return {f.sha256: f.caption or "" for f in self._files}
        rows = (self._row_by_sha.get(sha) for sha in shas)
        return {self._files[row].sha256: self._files[row].caption or "" for row in rows if row is not None}

    def validation_shas(self) -> list[str]:
        """The files held out for validation, in dataset order."""
        return [f.sha256 for f in self._files if f.validation]

    def counts(self) -> tuple[int, int, int]:
        """(files, held out for validation, with a caption) of the dataset shown."""
        return (len(self._files), sum(1 for f in self._files if f.validation),
                sum(1 for f in self._files if (f.caption or "").strip()))

    def decoded_thumbnails(self) -> int:
        """How many decoded thumbnails the model holds (at most `decoded_limit`)."""
        return len(self._thumbnails)

    def thumbnail_requested(self, sha256: str) -> bool:
        """Whether a view has asked for this file's thumbnail yet (rows never painted are never fetched)."""
        return sha256 in self._requested or sha256 in self._thumbnails

    # updates ---------------------------------------------------------------------------------------------------
    def set_files(self, dataset_id: str | None, files: list[DatasetFile]) -> None:
        """Show another dataset's files (a reset: it is a different list), or refresh the same one as a
        diff of captions only when the set of files did not change."""
        same_list = dataset_id == self.dataset_id and [f.sha256 for f in files] == [f.sha256 for f in self._files]
        if same_list:
            for row, file in enumerate(files):
                if file != self._files[row]:
                    self._files[row] = share_fields_set(file)
                    index = self.index(row, 0)
                    self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole, FileRole.CAPTION,
                                                         FileRole.FILE, FileRole.VALIDATION,
                                                         Qt.ItemDataRole.ToolTipRole,
                                                         Qt.ItemDataRole.AccessibleTextRole])
            return
        self.beginResetModel()
        if dataset_id != self.dataset_id:
            self._thumbnails.clear()
            self._failed.clear()
            self._requested.clear()
        self.dataset_id = dataset_id
        self._files = [share_fields_set(file) for file in files]  # issue 19: 730 bytes a file less
        self._row_by_sha = {f.sha256: row for row, f in enumerate(self._files)}
        self.endResetModel()

    def set_thumbnail(self, sha256: str, pixmap: QPixmap | None) -> None:
        """The store's answer to `thumbnail_needed`; None marks the thumbnail as unavailable."""
        if pixmap is None:
            self._failed.add(sha256)
            self._thumbnails.pop(sha256, None)
        else:
            self._thumbnails[sha256] = pixmap
            self._thumbnails.move_to_end(sha256)
            self._failed.discard(sha256)
            while len(self._thumbnails) > max(1, self.decoded_limit):
                dropped, _pixmap = self._thumbnails.popitem(last=False)
                self._requested.discard(dropped)  # painted again, it is asked for again
        row = self._row_by_sha.get(sha256)
        if row is not None:
            index = self.index(row, 0)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole, FileRole.THUMBNAIL,
                                                 FileRole.THUMBNAIL_FAILED])

    def set_caption(self, sha256: str, caption: str) -> None:
        row = self._row_by_sha.get(sha256)
        if row is None:
            return
        file = self._files[row]
        if (file.caption or "") == caption:
            return
        self._files[row] = file.model_copy(update={"caption": caption})
        index = self.index(row, 0)
        self.dataChanged.emit(index, index, [FileRole.CAPTION, FileRole.FILE, Qt.ItemDataRole.ToolTipRole,
                                             Qt.ItemDataRole.AccessibleTextRole])

    def set_captions(self, captions: dict[str, str]) -> None:
        """Many captions at once (a bulk edit or its undo): one dataChanged from the first to the last row
        that changed, not one signal per file."""
        rows: list[int] = []
        for sha256, caption in captions.items():
            row = self._row_by_sha.get(sha256)
            if row is None or (self._files[row].caption or "") == caption:
                continue
            self._files[row] = self._files[row].model_copy(update={"caption": caption})
            rows.append(row)
        if rows:
            self.dataChanged.emit(self.index(min(rows), 0), self.index(max(rows), 0),
                                  [FileRole.CAPTION, FileRole.FILE, Qt.ItemDataRole.ToolTipRole,
                                   Qt.ItemDataRole.AccessibleTextRole])


class FileFilterProxy(QSortFilterProxyModel):
    """The grid's filter: name or caption contains `text` (ignoring case), and/or no caption at all, and/or
    only the given files (`set_only`: the upscaled images or a bucket's, from the resolution buckets). It
    re-filters as captions change (dynamic filter), e.g. a captioned file leaves "uncaptioned only"."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._uncaptioned_only = False
        self._only: frozenset[str] | None = None
        self.setDynamicSortFilter(True)

    @property
    def only(self) -> frozenset[str] | None:
        """The sha256 of the files shown (None: every file that passes the other filters)."""
        return self._only

    def set_only(self, shas: Iterable[str] | None) -> None:
        self._refilter(lambda: setattr(self, "_only", None if shas is None else frozenset(shas)))

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_text", text.strip().casefold()))

    def set_uncaptioned_only(self, on: bool) -> None:
        self._refilter(lambda: setattr(self, "_uncaptioned_only", on))

    def _refilter(self, change: Any) -> None:
        # Qt >= 6.9 wants begin/endFilterChange around the change; older Qt has invalidateRowsFilter.
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateRowsFilter()

    @property
    def filtering(self) -> bool:
        return bool(self._text) or self._uncaptioned_only or self._only is not None

    def filterAcceptsRow(self, source_row: int, source_parent: _ModelIndex) -> bool:
        index = self.sourceModel().index(source_row, 0, source_parent)
        if self._only is not None and index.data(FileRole.SHA256) not in self._only:
            return False
        caption = str(index.data(FileRole.CAPTION) or "")
        if self._uncaptioned_only and caption.strip():
            return False
        if self._text:
            name = str(index.data(FileRole.FILENAME) or "")
            return self._text in caption.casefold() or self._text in name.casefold()
        return True
