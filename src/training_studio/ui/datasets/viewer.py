"""The dataset viewer: the files of one dataset as a thumbnail grid, and the caption editor.

`DatasetViewer` shows the store's `files_model` in an icon-mode list (uniform cells painted by
`FileTileDelegate` from `FileRole` data: thumbnail, file name, first line of the caption) and, for the
selected file, its details and an editor for its caption with Save (also Ctrl+S)/Revert. It holds no data of its own and
never calls HTTP: Save asks `DatasetStore.save_caption()`, and the saved caption comes back through the
model. Loading, empty and error states are said in words.

Bulk caption edits (issue 17): the grid selects many files (Ctrl/Shift-click, Ctrl+A); a toolbar over it
and the grid's context menu offer Add prefix…, Add suffix…, Find and replace…, Set caption…, Clear
captions… (each opens a `BulkCaptionDialog` on the selection) and Undo/Redo (Ctrl+Z / Ctrl+Shift+Z) of
every caption edit, the editor's saves included; `CaptionOps` owns those requests and the undo stack.
A filter box finds files by caption or name, "Uncaptioned only" shows what is missing (the grid shows the
files model through `FileFilterProxy`; bulk actions act on the selected files that are shown).
`show_only_files` narrows the grid to given files (the side panel's upscaled images or one bucket's, issue
17 item 4) under a bar that says which, with "Show all files" to go back (also when another dataset opens).
F2 edits a one-line caption in place (the model asks `CaptionOps` to save it, undoable too).

Validation picks (issue 17): the grid's context menu has "Use for validation" / "Use for training" for the
selected files; the viewer only says so (`validation_pick_requested(shas, held_out)`), the Datasets panel
sends the new split through the workbench. Held-out files carry a "Validation" badge (painted by the
delegate from `FileRole.VALIDATION`) and the title says how many files are held out.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QAction, QColor, QFont, QKeySequence, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QLineEdit,
    QToolBar,
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
from training_studio.ui.datasets.caption_dialog import BulkCaptionDialog
from training_studio.ui.datasets.caption_ops import CaptionOps
from training_studio.ui.datasets.files_model import FileFilterProxy, FileRole
from training_studio.ui.datasets.format import format_bytes
from training_studio.ui.jobs.format import dimmed_text_colour
from training_studio.ui.datasets.store import THUMBNAIL_SIZE, DatasetStore
from training_studio.ui.theme import palette_is_dark

__all__ = ["DatasetViewer", "FileTileDelegate", "VALIDATION_BADGE"]

_ModelIndex = QModelIndex | QPersistentModelIndex
TILE_PADDING = 6
TEXT_LINES = 2
VALIDATION_BADGE = "Validation"


def badge_colours(palette: QPalette) -> tuple[QColor, QColor]:
    """(background, text) of the validation badge: a violet no tile colour uses (not the selection's
    highlight), with text above 4.5:1 on it in both schemes."""
    if palette_is_dark(palette):
        return QColor("#c4b5fd"), QColor("#1e1b4b")
    return QColor("#6d28d9"), QColor("#ffffff")


class FileTileDelegate(QStyledItemDelegate):
    """Paints one grid cell: the thumbnail centred in a fixed square, then name and caption, elided."""

    def sizeHint(self, option: QStyleOptionViewItem, index: _ModelIndex) -> QSize:
        line = option.fontMetrics.height()
        return QSize(THUMBNAIL_SIZE + 2 * TILE_PADDING, THUMBNAIL_SIZE + 2 * TILE_PADDING + TEXT_LINES * line + 4)

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: _ModelIndex) -> None:
        # The in-place caption editor (F2) covers the caption line under the thumbnail, not the picture.
        rect = option.rect
        line = option.fontMetrics.height()
        top = rect.y() + TILE_PADDING + THUMBNAIL_SIZE + 4 + line
        editor.setGeometry(QRect(rect.x() + 2, top - 2, rect.width() - 4, max(line + 6, editor.sizeHint().height())))

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
                # Dimmer than a caption, but still WCAG AA on the tile (selected or not, light or dark).
                background = palette.color(QPalette.ColorRole.Highlight if selected else QPalette.ColorRole.Base)
                text_colour = QColor(dimmed_text_colour(text_colour.name(), background.name()))
            painter.setPen(text_colour)
            painter.drawText(caption_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, text)
            if index.data(FileRole.VALIDATION):
                self._paint_badge(painter, option, square)
            if option.state & QStyle.StateFlag.State_HasFocus:
                painter.setPen(palette.color(QPalette.ColorRole.Highlight).darker(130))
                painter.drawRect(rect.adjusted(0, 0, -1, -1))
        finally:
            painter.restore()

    @staticmethod
    def _paint_badge(painter: QPainter, option: QStyleOptionViewItem, square: QRect) -> None:
        """A small "Validation" label over the thumbnail's top-left corner."""
        font = QFont(option.font)
        font.setItalic(False)
        font.setBold(True)
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        metrics = painter.fontMetrics()
        badge = QRect(square.x() + 2, square.y() + 2, metrics.horizontalAdvance(VALIDATION_BADGE) + 8,
                      metrics.height() + 2)
        background, text = badge_colours(option.palette)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(background)
        painter.drawRoundedRect(badge, 3, 3)
        painter.setPen(text)
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, VALIDATION_BADGE)


class DatasetViewer(QWidget):
    """See the module docstring."""

    validation_pick_requested = Signal(list, bool)  # sha256 of the selected files, held out (True) or trained on

    def __init__(self, store: DatasetStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.model = store.files_model
        self.proxy = FileFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.setObjectName("datasetViewer")
        self.setAccessibleName("Dataset files")
        self._editing_sha: str | None = None
        self._shown_caption = ""  # the saved caption the editor was loaded with (not what is typed)
        self.caption_ops = CaptionOps(store, self)
        self.bulk_dialog: BulkCaptionDialog | None = None
        self._validation_busy = False

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

        self.caption_toolbar = self._build_caption_actions()
        layout.addWidget(self.caption_toolbar)
        self.focus_bar = QWidget(self)
        self.focus_bar.setObjectName("fileFocusBar")
        focus_layout = QHBoxLayout(self.focus_bar)
        focus_layout.setContentsMargins(0, 0, 0, 0)
        self.focus_label = QLabel(self.focus_bar)
        self.focus_label.setObjectName("fileFocusLabel")
        self.focus_label.setTextFormat(Qt.TextFormat.PlainText)
        self.focus_label.setWordWrap(True)
        self.show_all_button = QPushButton("Show &all files", self.focus_bar)
        self.show_all_button.setObjectName("showAllFiles")
        self.show_all_button.setToolTip("Show every file of the dataset again")
        self.show_all_button.clicked.connect(self.show_all_files)
        focus_layout.addWidget(self.focus_label, 1)
        focus_layout.addWidget(self.show_all_button)
        self.focus_bar.hide()
        layout.addWidget(self.focus_bar)

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.stack = QStackedWidget(splitter)
        self.grid = QListView(self.stack)
        self.grid.setTabKeyNavigation(False)  # one Tab stop: arrows move within, Tab leaves
        self.grid.setObjectName("fileGrid")
        self.grid.setAccessibleName("Files of the dataset")
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setSpacing(4)
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.grid.setMouseTracking(True)
        self.grid.setItemDelegate(FileTileDelegate(self.grid))
        self.grid.setModel(self.proxy)
        self.grid.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)  # F2
        self.grid.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.use_for_validation_action = QAction("Use for &validation", self)
        self.use_for_validation_action.setToolTip("Hold the selected files out of training, for validation")
        self.use_for_validation_action.triggered.connect(lambda: self.request_validation_pick(True))
        self.use_for_training_action = QAction("Use for &training", self)
        self.use_for_training_action.setToolTip("Train on the selected files (no longer held out for validation)")
        self.use_for_training_action.triggered.connect(lambda: self.request_validation_pick(False))
        self.grid.addActions(self._bulk_actions + [self._separator(), self.undo_action, self.redo_action,
                                                   self._separator(), self.use_for_validation_action,
                                                   self.use_for_training_action])
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
        self.grid.selectionModel().selectionChanged.connect(self._update_bulk_actions)
        self.model.modelReset.connect(self._update_bulk_actions)
        self.model.rowsInserted.connect(self._update_bulk_actions)
        self.model.rowsRemoved.connect(self._update_bulk_actions)
        self._bulk_error: str | None = None
        self.caption_ops.failed.connect(self._on_bulk_failed)
        self.model.caption_edit_requested.connect(self._save_in_place)
        self.caption_ops.applied.connect(self._dismiss_bulk_error)
        self.caption_ops.undo_stack.indexChanged.connect(self._dismiss_bulk_error)
        self.caption_ops.busy_changed.connect(self._update_bulk_actions)
        self.caption_edit.textChanged.connect(self._update_editor_buttons)
        self.save_button.clicked.connect(self.save_caption)
        self.revert_button.clicked.connect(self.revert_caption)
        # Ctrl+S saves the caption being edited (while the editor has focus, as in any text editor).
        self.save_caption_action = QAction("Save caption", self)
        self.save_caption_action.setShortcut(QKeySequence.StandardKey.Save)
        self.save_caption_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.save_caption_action.triggered.connect(self._save_if_changed)
        self.caption_edit.addAction(self.save_caption_action)
        self.save_button.setToolTip("Save the caption (Ctrl+S)")
        self.model.modelReset.connect(self._on_files_reset)
        self.model.dataChanged.connect(self._on_files_data_changed)
        self.model.modelReset.connect(self._update_title)
        self.model.dataChanged.connect(self._on_files_changed_for_title)
        store.files_loading.connect(self._on_loading)
        store.files_loaded.connect(self._on_loaded)
        store.files_failed.connect(self._on_failed)
        store.caption_saved.connect(self._on_caption_saved)
        store.caption_failed.connect(self._on_caption_failed)
        self._show_state("Select a dataset to see its files.")
        self._load_file(None)
        self._update_bulk_actions()

    def _build_caption_actions(self) -> QToolBar:
        toolbar = QToolBar("Captions", self)
        toolbar.setObjectName("captionToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.bulk_actions: dict[str, QAction] = {}
        for mode, text, tip in (
                ("prefix", "Add &prefix…", "Put text (e.g. a trigger word) before the selected captions"),
                ("suffix", "Add su&ffix…", "Put text after the captions of the selected files"),
                ("replace", "Find and &replace…", "Replace text or a regular expression in the selected captions"),
                ("set", "Set capt&ion…", "Give the selected files the same caption"),
                ("clear", "C&lear captions…", "Remove the captions of the selected files")):
            action = QAction(text, self)
            action.setToolTip(tip)
            action.triggered.connect(lambda checked=False, m=mode: self.open_bulk_dialog(m))
            self.bulk_actions[mode] = action
            toolbar.addAction(action)
        self._bulk_actions = list(self.bulk_actions.values())
        toolbar.addSeparator()
        stack = self.caption_ops.undo_stack
        self.undo_action = QAction("&Undo", self)
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = QAction("Re&do", self)
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence.StandardKey.Redo])
        for action in (self.undo_action, self.redo_action):
            # Inside the viewer only; the caption editor keeps its own Ctrl+Z for the text being typed.
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(action)
            toolbar.addAction(action)
        self.undo_action.triggered.connect(self.caption_ops.undo)
        self.redo_action.triggered.connect(self.caption_ops.redo)
        stack.indexChanged.connect(self._update_bulk_actions)
        stack.cleanChanged.connect(self._update_bulk_actions)
        toolbar.addSeparator()
        self._add_filter(toolbar)  # last: on a narrow window it is what overflows, not Undo/Redo
        return toolbar

    def _add_filter(self, toolbar: QToolBar) -> None:
        self.filter_edit = QLineEdit(toolbar)
        self.filter_edit.setObjectName("fileFilter")
        self.filter_edit.setPlaceholderText("Filter by caption or name")
        self.filter_edit.setAccessibleName("Filter files by caption or name")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setMaximumWidth(220)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.uncaptioned_check = QCheckBox("Uncaptioned &only", toolbar)
        self.uncaptioned_check.setToolTip("Show only the files that have no caption yet")
        self.uncaptioned_check.toggled.connect(self.proxy.set_uncaptioned_only)
        toolbar.addWidget(self.filter_edit)
        toolbar.addWidget(self.uncaptioned_check)

    def _separator(self) -> QAction:
        separator = QAction(self)
        separator.setSeparator(True)
        return separator

    # bulk captions -----------------------------------------------------------------------------------------
    def selected_shas(self) -> list[str]:
        rows = sorted(self.proxy.mapToSource(index).row() for index in self.grid.selectionModel().selectedIndexes())
        return [self.model.index(row, 0).data(FileRole.SHA256) for row in rows]  # in dataset order

    def bulk_selection(self) -> list[str] | str:
        """What a bulk request carries: "all" when every file is selected, else the selected sha256."""
        shas = self.selected_shas()
        return "all" if shas and len(shas) == self.model.rowCount() else shas

    def open_bulk_dialog(self, mode: str) -> BulkCaptionDialog | None:
        """Plain slot: opens the operation's dialog non-modally on the current selection."""
        shas = self.selected_shas()
        if not shas or self.model.dataset_id is None:
            return None
        if self.bulk_dialog is not None:
            self.bulk_dialog.close()
        dialog = BulkCaptionDialog(self.caption_ops, mode, self.bulk_selection(), len(shas), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(lambda *_: self._forget_bulk_dialog(dialog))
        self.bulk_dialog = dialog
        dialog.open()
        return dialog

    def _forget_bulk_dialog(self, dialog: object) -> None:
        if self.bulk_dialog is dialog:
            self.bulk_dialog = None

    def _on_bulk_failed(self, token: int, message: str) -> None:
        self.banner.show_message(message, BannerLevel.ERROR)
        self._bulk_error = message

    def _dismiss_bulk_error(self, *args: object) -> None:
        # A caption edit that went through makes an earlier refusal old news.
        if self._bulk_error is not None and self.banner.text == self._bulk_error:
            self.banner.hide()
        self._bulk_error = None

    def request_validation_pick(self, held_out: bool) -> list[str]:
        """Ask (through `validation_pick_requested`) to hold the selected files out, or to train on them;
        only the files whose role changes are named. Returns them."""
        held = set(self.model.validation_shas())
        shas = [sha for sha in self.selected_shas() if (sha in held) != held_out]
        if shas and self.model.dataset_id is not None:
            self.validation_pick_requested.emit(shas, held_out)
        return shas

    def set_validation_busy(self, busy: bool) -> None:
        """The panel says whether a split change is in flight (the pick actions wait for it)."""
        self._validation_busy = busy
        self._update_bulk_actions()

    def _on_files_changed_for_title(self, top_left: QModelIndex, bottom_right: QModelIndex,
                                    roles: list[int]) -> None:
        if not roles or FileRole.VALIDATION in roles:  # thumbnails arriving change no count
            self._update_title()

    def _update_title(self, *args: object) -> None:
        dataset_id = self.model.dataset_id
        if dataset_id is None:
            return
        dataset = self.store.dataset(dataset_id)
        name = dataset.name if dataset is not None else dataset_id
        total, held, _captioned = self.model.counts()
        if total and held:
            self.title.setText(f"Files of “{name}” · {held:,} of {total:,} held out for validation")
        else:
            self.title.setText(f"Files of “{name}”")

    def _update_bulk_actions(self, *args: object) -> None:
        count = len(self.grid.selectionModel().selectedIndexes()) if self.grid.selectionModel() else 0
        for action in self._bulk_actions:
            action.setEnabled(count > 0 and not self.caption_ops.busy)
        pickable = count > 0 and not self._validation_busy
        self.use_for_validation_action.setEnabled(pickable)
        self.use_for_training_action.setEnabled(pickable)
        stack = self.caption_ops.undo_stack
        idle = not self.caption_ops.busy
        self.undo_action.setEnabled(idle and stack.canUndo())
        self.redo_action.setEnabled(idle and stack.canRedo())
        self.undo_action.setToolTip(f"Undo {stack.undoText()} (Ctrl+Z)" if stack.canUndo() else "Nothing to undo")
        self.redo_action.setToolTip(f"Redo {stack.redoText()} (Ctrl+Shift+Z)" if stack.canRedo() else "Nothing to redo")

    # files shown ---------------------------------------------------------------------------------------------
    def show_only_files(self, shas: list[str], description: str) -> None:
        """Narrow the grid to these files (with the filter box's and "Uncaptioned only"'s filters), under a bar
        saying "Showing <description>." with "Show all files"."""
        self.proxy.set_only(shas)
        self.focus_label.setText(f"Showing {description}.")
        self.focus_bar.show()

    def show_all_files(self) -> None:
        self.proxy.set_only(None)
        self.focus_bar.hide()

    def shown_shas(self) -> list[str]:
        """The sha256 of the files the grid shows, in grid order."""
        return [self.proxy.index(row, 0).data(FileRole.SHA256) for row in range(self.proxy.rowCount())]

    # intents -------------------------------------------------------------------------------------------------
    def show_dataset(self, dataset_id: str | None) -> None:
        if self.proxy.only is not None and dataset_id != self.model.dataset_id:
            self.show_all_files()
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
        self.caption_ops.edit_caption(dataset_id, file.sha256, self.caption_edit.toPlainText())  # undoable

    def _save_in_place(self, sha256: str, caption: str) -> None:
        if self.model.dataset_id is not None:
            self.caption_ops.edit_caption(self.model.dataset_id, sha256, caption)

    def _save_if_changed(self) -> None:
        if self.save_button.isEnabled():
            self.save_caption()

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
            if not self.grid.currentIndex().isValid() and self.proxy.rowCount() > 0:
                self.grid.setCurrentIndex(self.proxy.index(0, 0))

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
        current = self.proxy.mapToSource(self.grid.currentIndex())
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
        self._shown_caption = file.caption or "" if file else ""
        if file is None:
            self.file_label.setText("No file selected.")
        else:
            size = f"{file.width}×{file.height} px · " if file.width and file.height else ""
            self.file_label.setText(f"{file.filename}\n{size}{format_bytes(file.size)}\nSHA-256 {file.sha256[:16]}…")
        self.caption_status.clear()
        self._update_editor_buttons()

    def _has_unsaved_edit(self, file: DatasetFile) -> bool:
        # Typed text differs from the caption the editor was loaded with (an undo changing the caption under
        # an unchanged editor is no edit of the user's).
        return self.caption_edit.toPlainText() != self._shown_caption and self._editing_sha != file.sha256

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
                self._shown_caption = file.caption or ""
                self.caption_status.setText("Caption saved.")
        self._update_editor_buttons()

    def _on_caption_failed(self, dataset_id: str, sha256: str, message: str) -> None:
        if sha256 == self._editing_sha:
            self._editing_sha = None
        self.caption_status.setText(message)
        self.banner.show_message(message, BannerLevel.ERROR)
        self._update_editor_buttons()
