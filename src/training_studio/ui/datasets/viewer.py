"""The dataset viewer: the files of one dataset as a thumbnail grid, and the caption editor.

`DatasetViewer` shows the store's `files_model` in an icon-mode list (uniform cells painted by
`FileTileDelegate` from `FileRole` data: thumbnail, file name, first line of the caption) and, for the
selected file, its details and an editor for its caption with Save/Revert. It holds no data of its own and
never calls HTTP: Save asks `DatasetStore.save_caption()`, and the saved caption comes back through the
model. Loading, empty and error states are said in words.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract.models import DatasetFile
from training_studio.ui.banner import Banner, BannerLevel
from training_studio.ui.datasets.files_model import FileRole
from training_studio.ui.datasets.format import format_bytes
from training_studio.ui.datasets.store import THUMBNAIL_SIZE, DatasetStore

__all__ = ["DatasetViewer", "FileTileDelegate"]

_ModelIndex = QModelIndex | QPersistentModelIndex
TILE_PADDING = 6
TEXT_LINES = 2


class FileTileDelegate(QStyledItemDelegate):
    """Paints one grid cell: the thumbnail centred in a fixed square, then name and caption, elided."""

    def sizeHint(self, option: QStyleOptionViewItem, index: _ModelIndex) -> QSize:
        line = option.fontMetrics.height()
        return QSize(THUMBNAIL_SIZE + 2 * TILE_PADDING, THUMBNAIL_SIZE + 2 * TILE_PADDING + TEXT_LINES * line + 4)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _ModelIndex) -> None:
        painter.save()
        try:
            palette = option.palette
            selected = bool(option.state & QStyle.StateFlag.State_Selected)
            rect = option.rect
            if selected:
                painter.fillRect(rect, palette.color(QPalette.ColorRole.Highlight))
            elif option.state & QStyle.StateFlag.State_MouseOver:
                painter.fillRect(rect, palette.color(QPalette.ColorRole.AlternateBase))
            square = QRect(rect.x() + (rect.width() - THUMBNAIL_SIZE) // 2, rect.y() + TILE_PADDING,
                           THUMBNAIL_SIZE, THUMBNAIL_SIZE)
            pixmap = index.data(FileRole.THUMBNAIL)
            text_colour = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
            if pixmap is not None and not pixmap.isNull():
                size = pixmap.deviceIndependentSize().toSize()
                if size.width() > square.width() or size.height() > square.height():
                    size = size.scaled(square.size(), Qt.AspectRatioMode.KeepAspectRatio)  # never up-scaled
                target = QRect(0, 0, size.width(), size.height())
                target.moveCenter(square.center())
                painter.drawPixmap(target, pixmap)
            else:
                painter.fillRect(square, palette.color(QPalette.ColorRole.AlternateBase))
                placeholder = "No preview" if index.data(FileRole.THUMBNAIL_FAILED) else "Loading…"
                painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
                painter.drawText(square, Qt.AlignmentFlag.AlignCenter, placeholder)
            metrics = option.fontMetrics
            line = metrics.height()
            text_rect = QRect(rect.x() + TILE_PADDING, square.bottom() + 4, rect.width() - 2 * TILE_PADDING, line)
            painter.setPen(text_colour)
            name = metrics.elidedText(str(index.data(FileRole.FILENAME) or ""), Qt.TextElideMode.ElideMiddle,
                                      text_rect.width())
            painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, name)
            caption = str(index.data(FileRole.CAPTION) or "").splitlines()
            font = QFont(option.font)
            font.setItalic(True)
            painter.setFont(font)
            caption_rect = text_rect.translated(0, line)
            if caption and caption[0].strip():
                text = painter.fontMetrics().elidedText(caption[0], Qt.TextElideMode.ElideRight, caption_rect.width())
            else:
                text = "no caption"
                colour = QColor(text_colour)
                colour.setAlphaF(0.6)
                text_colour = colour
            painter.setPen(text_colour)
            painter.drawText(caption_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, text)
            if option.state & QStyle.StateFlag.State_HasFocus:
                painter.setPen(palette.color(QPalette.ColorRole.Highlight).darker(130))
                painter.drawRect(rect.adjusted(0, 0, -1, -1))
        finally:
            painter.restore()


class DatasetViewer(QWidget):
    """See the module docstring."""

    def __init__(self, store: DatasetStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.model = store.files_model
        self.setObjectName("datasetViewer")
        self.setAccessibleName("Dataset files")
        self._editing_sha: str | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("Select a dataset to see its files.", self)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        layout.addWidget(self.title)
        self.banner = Banner(self)
        self.banner.hide()
        layout.addWidget(self.banner)

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.stack = QStackedWidget(splitter)
        self.grid = QListView(self.stack)
        self.grid.setObjectName("fileGrid")
        self.grid.setAccessibleName("Files of the dataset")
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setSpacing(4)
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.grid.setMouseTracking(True)
        self.grid.setItemDelegate(FileTileDelegate(self.grid))
        self.grid.setModel(self.model)
        self.state_label = QLabel(self.stack)
        self.state_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.state_label.setWordWrap(True)
        self.stack.addWidget(self.grid)
        self.stack.addWidget(self.state_label)

        editor = QWidget(splitter)
        editor.setMinimumWidth(220)
        editor_layout = QVBoxLayout(editor)
        editor_layout.setContentsMargins(6, 0, 0, 0)
        self.file_label = QLabel("No file selected.", editor)
        self.file_label.setTextFormat(Qt.TextFormat.PlainText)
        self.file_label.setWordWrap(True)
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        caption_label = QLabel("&Caption:", editor)
        self.caption_edit = QPlainTextEdit(editor)
        self.caption_edit.setObjectName("captionEdit")
        self.caption_edit.setAccessibleName("Caption")
        self.caption_edit.setPlaceholderText("Describe the image (used as its training caption)")
        self.caption_edit.setTabChangesFocus(True)
        caption_label.setBuddy(self.caption_edit)
        buttons = QHBoxLayout()
        self.save_button = QPushButton("&Save caption", editor)
        self.revert_button = QPushButton("Re&vert", editor)
        buttons.addStretch(1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)
        self.caption_status = QLabel(editor)
        self.caption_status.setWordWrap(True)
        self.caption_status.setTextFormat(Qt.TextFormat.PlainText)
        editor_layout.addWidget(self.file_label)
        editor_layout.addWidget(caption_label)
        editor_layout.addWidget(self.caption_edit, 1)
        editor_layout.addLayout(buttons)
        editor_layout.addWidget(self.caption_status)
        splitter.addWidget(self.stack)
        splitter.addWidget(editor)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        layout.addWidget(splitter, 1)

        self.grid.selectionModel().currentChanged.connect(self._on_current_changed)
        self.caption_edit.textChanged.connect(self._update_editor_buttons)
        self.save_button.clicked.connect(self.save_caption)
        self.revert_button.clicked.connect(self.revert_caption)
        self.model.modelReset.connect(self._on_files_reset)
        self.model.dataChanged.connect(self._on_files_data_changed)
        store.files_loading.connect(self._on_loading)
        store.files_loaded.connect(self._on_loaded)
        store.files_failed.connect(self._on_failed)
        store.caption_saved.connect(self._on_caption_saved)
        store.caption_failed.connect(self._on_caption_failed)
        self._show_state("Select a dataset to see its files.")
        self._load_file(None)

    # intents -------------------------------------------------------------------------------------------------
    def show_dataset(self, dataset_id: str | None) -> None:
        dataset = self.store.dataset(dataset_id) if dataset_id else None
        if dataset_id is None:
            self.title.setText("Select a dataset to see its files.")
        else:
            name = dataset.name if dataset is not None else dataset_id
            self.title.setText(f"Files of “{name}”")
        self.banner.hide()
        self.store.open_dataset(dataset_id)
        if dataset_id is None:
            self._show_state("Select a dataset to see its files.")

    def selected_file(self) -> DatasetFile | None:
        file = self.grid.currentIndex().data(FileRole.FILE)
        return file if isinstance(file, DatasetFile) else None

    def save_caption(self) -> None:
        file = self.selected_file()
        dataset_id = self.model.dataset_id
        if file is None or dataset_id is None:
            return
        self._editing_sha = file.sha256
        self.caption_status.setText("Saving…")
        self.save_button.setEnabled(False)
        self.store.save_caption(dataset_id, file.sha256, self.caption_edit.toPlainText())

    def revert_caption(self) -> None:
        file = self.selected_file()
        self.caption_edit.setPlainText(file.caption or "" if file else "")
        self.caption_status.clear()

    # reactions ---------------------------------------------------------------------------------------------------
    def _show_state(self, text: str) -> None:
        self.state_label.setText(text)
        self.stack.setCurrentWidget(self.state_label)

    def _on_loading(self, dataset_id: str) -> None:
        if self.model.rowCount() == 0:
            self._show_state("Loading files…")

    def _on_loaded(self, dataset_id: str) -> None:
        if self.model.rowCount() == 0:
            self._show_state("This dataset has no files yet.")
        else:
            self.stack.setCurrentWidget(self.grid)
            if not self.grid.currentIndex().isValid():
                self.grid.setCurrentIndex(self.model.index(0, 0))

    def _on_failed(self, dataset_id: str, message: str) -> None:
        self.banner.show_message(message, BannerLevel.ERROR)
        if self.model.rowCount() == 0:
            self._show_state("The files could not be loaded.")

    def _on_files_reset(self) -> None:
        self._load_file(None)

    def _on_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        file = current.data(FileRole.FILE)
        self._load_file(file if isinstance(file, DatasetFile) else None)

    def _on_files_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, roles: list[int]) -> None:
        current = self.grid.currentIndex()
        if not current.isValid() or not top_left.row() <= current.row() <= bottom_right.row():
            return
        if roles and FileRole.CAPTION not in roles:
            return
        file = current.data(FileRole.FILE)
        if isinstance(file, DatasetFile) and not self._has_unsaved_edit(file):
            self._load_file(file)

    def _load_file(self, file: DatasetFile | None) -> None:
        enabled = file is not None
        self.caption_edit.setEnabled(enabled)
        self.caption_edit.blockSignals(True)
        self.caption_edit.setPlainText(file.caption or "" if file else "")
        self.caption_edit.blockSignals(False)
        if file is None:
            self.file_label.setText("No file selected.")
        else:
            size = f"{file.width}×{file.height} px · " if file.width and file.height else ""
            self.file_label.setText(f"{file.filename}\n{size}{format_bytes(file.size)}\nSHA-256 {file.sha256[:16]}…")
        self.caption_status.clear()
        self._update_editor_buttons()

    def _has_unsaved_edit(self, file: DatasetFile) -> bool:
        return self.caption_edit.toPlainText() != (file.caption or "") and self._editing_sha != file.sha256

    def _update_editor_buttons(self) -> None:
        file = self.selected_file()
        changed = file is not None and self.caption_edit.toPlainText() != (file.caption or "")
        self.save_button.setEnabled(changed)
        self.revert_button.setEnabled(changed)

    def _on_caption_saved(self, dataset_id: str, sha256: str) -> None:
        if sha256 == self._editing_sha:
            self._editing_sha = None
            file = self.selected_file()
            if file is not None and file.sha256 == sha256:
                self.caption_status.setText("Caption saved.")
        self._update_editor_buttons()

    def _on_caption_failed(self, dataset_id: str, sha256: str, message: str) -> None:
        if sha256 == self._editing_sha:
            self._editing_sha = None
        self.caption_status.setText(message)
        self.banner.show_message(message, BannerLevel.ERROR)
        self._update_editor_buttons()
