"""The item models of the import panel: the files going into a new dataset, and the files left out.

`ImportFileModel` owns one row per accepted (checked, hashed, de-duplicated) file with its upload state
and progress; rows are appended in batches as the background scan reports them, and state changes emit
`dataChanged` for one row and only the roles that changed. Its decoration comes from a
`ThumbnailCache` that loads lazily: only rows a view actually paints are ever asked for. Rows are keyed
by SHA-256, since that is how the server names files. A row's tooltip shows the caption found beside
the file (from the controller's mapping, `use_captions`). `RejectedFileModel` owns the list of files that
will not be uploaded, each with its reason (local checks, duplicates, or the server's answer).
Views read both through the named roles of `ImportRole` and `RejectedRole`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from training_studio.ui.datasets.import_scan import AcceptedFile, RejectedFile, display_name
from training_studio.ui.datasets.import_thumbnails import ThumbnailCache

__all__ = ["FileState", "ImportRole", "RejectedRole", "ImportEntry", "ImportFileModel", "RejectedFileModel",
           "format_bytes"]

_ModelIndex = QModelIndex | QPersistentModelIndex
CAPTION_TOOLTIP_CHARS = 300


class FileState(str, enum.Enum):
    READY = "ready"            # checked locally, not sent yet
    QUEUED = "queued"          # part of a running upload, waiting for a slot
    UPLOADING = "uploading"
    STORED = "stored"          # the server has it
    REJECTED = "rejected"      # the server (or the resume check) refused it; reason says why
    INTERRUPTED = "interrupted"  # the upload stopped before this file arrived

    @property
    def label(self) -> str:
        return {"ready": "Ready", "queued": "Waiting", "uploading": "Uploading", "stored": "Uploaded",
                "rejected": "Rejected", "interrupted": "Not sent"}[self.value]


class ImportRole(IntEnum):
    PATH = Qt.ItemDataRole.UserRole + 1
    SHA256 = Qt.ItemDataRole.UserRole + 2
    SIZE = Qt.ItemDataRole.UserRole + 3
    KIND = Qt.ItemDataRole.UserRole + 4
    FORMAT = Qt.ItemDataRole.UserRole + 5
    STATE = Qt.ItemDataRole.UserRole + 6      # FileState
    REASON = Qt.ItemDataRole.UserRole + 7     # why it was rejected, or ""
    PROGRESS = Qt.ItemDataRole.UserRole + 8   # 0.0-1.0 of the file sent
    DIMENSIONS = Qt.ItemDataRole.UserRole + 9  # "W×H" or ""


class RejectedRole(IntEnum):
    PATH = Qt.ItemDataRole.UserRole + 1
    REASON = Qt.ItemDataRole.UserRole + 2
    BY_SERVER = Qt.ItemDataRole.UserRole + 3  # True when the server refused it after a clean local check


@dataclass
class ImportEntry:
    file: AcceptedFile
    state: FileState = FileState.READY
    reason: str = ""
    progress: float = 0.0


def format_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"


class ImportFileModel(QAbstractListModel):
    """The accepted files of the import, in the order they were added; see the module docstring."""

    def __init__(self, thumbnails: ThumbnailCache | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._entries: list[ImportEntry] = []
        self._row_by_sha: dict[str, int] = {}
        self._row_by_path: dict[str, int] = {}
        self._thumbnails = thumbnails
        self._captions: dict[str, str] = {}  # path -> caption found beside it (the controller's mapping)
        if thumbnails is not None:
            thumbnails.thumbnail_ready.connect(self._on_thumbnail_ready)

    # reading -----------------------------------------------------------------------------------------
    def rowCount(self, parent: _ModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry = self._entries[index.row()]
        file = entry.file
        if role == Qt.ItemDataRole.DisplayRole:
            return file.name
        if role == Qt.ItemDataRole.DecorationRole:
            if self._thumbnails is None:
                return None
            return self._thumbnails.pixmap_for(file.path, file.kind, file.format)
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [file.path.replace("\n", "\N{SYMBOL FOR NEWLINE}"),
                     f"{file.format}, {format_bytes(file.size)}" + (f", {file.width}×{file.height}"
                                                                    if file.width else ""),
                     entry.state.label + (f": {entry.reason}" if entry.reason else "")]
            caption = self._captions.get(file.path)
            if caption:
                shown = caption if len(caption) <= CAPTION_TOOLTIP_CHARS else caption[:CAPTION_TOOLTIP_CHARS] + "…"
                lines.append("Caption: " + shown.replace("\n", " "))
            return "\n".join(lines)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{file.name}, {entry.state.label}" + (f": {entry.reason}" if entry.reason else "")
        if role == ImportRole.PATH:
            return file.path
        if role == ImportRole.SHA256:
            return file.sha256
        if role == ImportRole.SIZE:
            return file.size
        if role == ImportRole.KIND:
            return file.kind
        if role == ImportRole.FORMAT:
            return file.format
        if role == ImportRole.STATE:
            return entry.state
        if role == ImportRole.REASON:
            return entry.reason
        if role == ImportRole.PROGRESS:
            return entry.progress
        if role == ImportRole.DIMENSIONS:
            return f"{file.width}×{file.height}" if file.width and file.height else ""
        return None

    def flags(self, index: _ModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def roleNames(self) -> dict[int, bytes]:
        names = dict(super().roleNames())
        names.update({int(role): role.name.lower().encode() for role in ImportRole})
        return names

    def use_captions(self, captions: dict[str, str]) -> None:
        """Show captions from this mapping (path -> caption) in the tooltips; the caller keeps it current
        and fills it before the files are added."""
        self._captions = captions

    # queries -------------------------------------------------------------------------------------------
    def entries(self) -> list[ImportEntry]:
        return list(self._entries)

    def entry(self, sha256: str) -> ImportEntry | None:
        row = self._row_by_sha.get(sha256)
        return None if row is None else self._entries[row]

    def has_path(self, path: str) -> bool:
        return path in self._row_by_path

    def first_path_of(self, sha256: str) -> str | None:
        entry = self.entry(sha256)
        return None if entry is None else entry.file.path

    def count_in(self, *states: FileState) -> int:
        return sum(1 for entry in self._entries if entry.state in states)

    def total_bytes(self) -> int:
        return sum(entry.file.size for entry in self._entries)

    # changing --------------------------------------------------------------------------------------------
    def add_files(self, files: list[AcceptedFile]) -> list[tuple[AcceptedFile, str]]:
        """Append new files; returns (file, path of the earlier copy) for each duplicate left out."""
        duplicates: list[tuple[AcceptedFile, str]] = []
        fresh: list[AcceptedFile] = []
        pending: dict[str, str] = {}
        for file in files:
            if file.path in self._row_by_path:
                continue  # the very same path added again: nothing to report
            earlier = self.first_path_of(file.sha256) or pending.get(file.sha256)
            if earlier is not None:
                duplicates.append((file, earlier))
                continue
            pending[file.sha256] = file.path
            fresh.append(file)
        if fresh:
            first = len(self._entries)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            for offset, file in enumerate(fresh):
                self._entries.append(ImportEntry(file))
                self._row_by_sha[file.sha256] = first + offset
                self._row_by_path[file.path] = first + offset
            self.endInsertRows()
        return duplicates

    def clear(self) -> None:
        if not self._entries:
            return
        self.beginRemoveRows(QModelIndex(), 0, len(self._entries) - 1)
        self._entries.clear()
        self._row_by_sha.clear()
        self._row_by_path.clear()
        self.endRemoveRows()

    def remove_paths(self, paths: list[str]) -> list[AcceptedFile]:
        """Take these files out (the user removed them); one removal signal per contiguous run of rows."""
        rows = sorted({self._row_by_path[path] for path in paths if path in self._row_by_path}, reverse=True)
        removed: list[AcceptedFile] = []
        while rows:
            last = first = rows.pop(0)
            while rows and rows[0] == first - 1:
                first = rows.pop(0)
            self.beginRemoveRows(QModelIndex(), first, last)
            removed.extend(entry.file for entry in self._entries[first:last + 1])
            del self._entries[first:last + 1]
            self.endRemoveRows()
        if removed:
            self._row_by_sha = {entry.file.sha256: row for row, entry in enumerate(self._entries)}
            self._row_by_path = {entry.file.path: row for row, entry in enumerate(self._entries)}
        return removed

    def set_state(self, sha256: str, state: FileState, reason: str = "", progress: float | None = None) -> None:
        row = self._row_by_sha.get(sha256)
        if row is None:
            return
        entry = self._entries[row]
        roles: list[int] = []
        if entry.state != state:
            entry.state = state
            roles += [ImportRole.STATE, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole]
        if entry.reason != reason:
            entry.reason = reason
            roles += [ImportRole.REASON, Qt.ItemDataRole.ToolTipRole]
        if progress is not None and progress != entry.progress:
            entry.progress = progress
            roles.append(ImportRole.PROGRESS)
        if roles:
            index = self.index(row)
            self.dataChanged.emit(index, index, sorted(set(int(r) for r in roles)))

    def set_all_states(self, state: FileState, *, only: tuple[FileState, ...]) -> None:
        """Move every row in one of `only` states to `state`, as one ranged signal per contiguous run."""
        run_start: int | None = None
        for row, entry in enumerate(self._entries + [None]):  # type: ignore[operator]
            if entry is not None and entry.state in only:
                entry.state = state
                entry.progress = 1.0 if state == FileState.STORED else 0.0
                if run_start is None:
                    run_start = row
            elif run_start is not None:
                self.dataChanged.emit(self.index(run_start), self.index(row - 1),
                                      [int(ImportRole.STATE), int(ImportRole.PROGRESS),
                                       int(Qt.ItemDataRole.ToolTipRole), int(Qt.ItemDataRole.AccessibleTextRole)])
                run_start = None

    def _on_thumbnail_ready(self, path: str) -> None:
        row = self._row_by_path.get(path)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [int(Qt.ItemDataRole.DecorationRole)])


class RejectedFileModel(QAbstractListModel):
    """Files that will not be uploaded, each with its reason, in the order they were found."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[tuple[str, str, bool]] = []
        self._row_by_path: dict[str, int] = {}

    def rowCount(self, parent: _ModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        path, reason, by_server = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return f"{display_name(path)} — {reason}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{path.replace(chr(10), chr(0x2424))}\n{reason}"
        if role == RejectedRole.PATH:
            return path
        if role == RejectedRole.REASON:
            return reason
        if role == RejectedRole.BY_SERVER:
            return by_server
        return None

    def flags(self, index: _ModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def roleNames(self) -> dict[int, bytes]:
        names = dict(super().roleNames())
        names.update({int(role): role.name.lower().encode() for role in RejectedRole})
        return names

    def reasons(self) -> dict[str, str]:
        return {path: reason for path, reason, _ in self._rows}

    def add(self, rejected: list[RejectedFile], *, by_server: bool = False) -> None:
        """Append rejections; a path already listed gets its reason updated instead (one row per path)."""
        fresh: list[tuple[str, str, bool]] = []
        fresh_paths: set[str] = set()
        for item in rejected:
            row = self._row_by_path.get(item.path)
            if row is not None:
                if self._rows[row][1] != item.reason:
                    self._rows[row] = (item.path, item.reason, by_server)
                    index = self.index(row)
                    self.dataChanged.emit(index, index)
                continue
            if item.path in fresh_paths:
                continue
            fresh_paths.add(item.path)
            fresh.append((item.path, item.reason, by_server))
        if fresh:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            for offset, row_data in enumerate(fresh):
                self._rows.append(row_data)
                self._row_by_path[row_data[0]] = first + offset
            self.endInsertRows()

    def clear(self) -> None:
        if not self._rows:
            return
        self.beginRemoveRows(QModelIndex(), 0, len(self._rows) - 1)
        self._rows.clear()
        self._row_by_path.clear()
        self.endRemoveRows()
