"""The dataset settings side panel of the Datasets tab (issue 17 items 4-6): buckets, repeats, validation, export.

`DatasetWorkbench` is a view over `WorkbenchStore` (which owns every client call) for the dataset selected
in the Datasets tab:
- Resolution buckets: a resolution choice (512 / 768 / 1024 / custom), bucket step and batch size; the
  server's aspect-ratio buckets drawn by `BucketChart` (one labelled bar per bucket, "832×1216"), images
  below the resolution counted as upscaled in a warning colour, buckets holding fewer images than the
  batch size flagged in that colour with the legend saying what trainers do with them. Recomputed, debounced,
  whenever an input changes and whenever the dataset's revision changes. The "⚠ N upscaled" warning is a
  link and each bar is clickable: they ask (`show_files_requested`) for the grid to show just those images;
  the grid's "Show all files" goes back.
- Repeats (applied with a button: the server re-materialises the layout) and the validation split (percent
  of files held out), each with its own state line: applying / applied / the server's reason (a 409 while a
  trainer runs on the dataset says so).
- Export…: a non-blocking save dialog (`QFileDialog.open()`), then the zip in kohya or imagefolder layout is
  streamed by the store to `<target>.part` and renamed when complete; progress and failure are shown here.
  Export to folder…: a non-blocking folder dialog; the store unpacks the same zip into the chosen folder (new
  or empty, else refused with a message) through a staging folder renamed into place when whole.
- Automatic captions: "Caption with…" (a button here, the same action on the Datasets toolbar) opens a menu
  of the server's caption presets, re-read each time it opens; none configured: it says how to add one to
  presets.toml. Choosing one asks first when files already have captions (the captioner's caption replaces
  the caption of every file it writes one for; files it writes none for keep theirs), then starts the
  caption job; its progress, completion and the job's reason on failure are shown here (the job is listed
  in the Jobs tab too). The Datasets panel reloads the files when it completes.
- Validation picks from the grid (`use_files_for_validation`) go through the same validation state line as
  the percentage.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QMouseEvent, QPainter, QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract.models import Dataset, DatasetStatus
from training_studio.ui.confirm import ConfirmBox, ask_to_confirm
from training_studio.ui.datasets.workbench_store import WorkbenchStore
from training_studio.ui.theme import palette_is_dark

__all__ = ["BucketChart", "DatasetWorkbench", "NO_CAPTIONERS_TEXT", "RESOLUTIONS", "SMALL_BUCKET_LEGEND",
           "bucket_label"]

RESOLUTIONS = (512, 768, 1024)
CUSTOM = "Custom"
DEBOUNCE_MS = 250  # typing "1536" into the custom box is one request, not four
SMALL_BUCKET_LEGEND = "OneTrainer drops them, kohya trains them in short batches"
NO_CAPTIONERS_TEXT = (
    "No caption presets are set up on this server. Add one to presets.toml in the server's data folder, "
    "then choose Caption with… again:")
CAPTION_PRESET_EXAMPLE = (
    '[[preset]]\nid = "my-tagger"\nname = "My tagger"\nkind = "caption"\n'
    'command = ["tagger", "{dataset_dir}"]')
CAPTION_IDLE_TEXT = "Caption every file with one of the server's captioners (its caption presets)."
CAPTION_PRESET_HINT = ("The command gets a folder of the dataset's images ({dataset_dir}) and writes "
                       "<name>.txt beside each image it captions.")
EXPORT_LAYOUTS = (("kohya", "kohya: <repeats>_<name>/ + .txt"),
                  ("imagefolder", "imagefolder: metadata.jsonl"))


def bucket_label(width: int, height: int) -> str:
    return f"{width}×{height}"


def warning_colour(palette: QPalette) -> QColor:
    # Amber readable on both backgrounds: darker on light, lighter on dark.
    return QColor("#f0b429") if palette_is_dark(palette) else QColor("#b45309")


class BucketChart(QWidget):
    """Horizontal bars, one per bucket: its label, a bar as long as its share of the largest bucket, the count.
    Small buckets (fewer images than the batch size) are drawn in the warning colour. A click on a row says
    which (`bucket_clicked`)."""

    ROW = 20
    LABEL_WIDTH = 84
    COUNT_WIDTH = 44

    bucket_clicked = Signal(int)  # the row (index into `rows`)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("bucketChart")
        self.setAccessibleName("Images per aspect-ratio bucket")
        self.rows: list[tuple[str, int, bool]] = []  # (label, count, small)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Click a bucket to show its images in the grid")

    def row_at(self, y: float) -> int | None:
        row = int((y - 2) // self.ROW)
        return row if 0 <= row < len(self.rows) and y >= 2 else None

    def row_centre(self, row: int) -> tuple[int, int]:
        """A point inside `row`'s bar (for tests and accessibility tools)."""
        return self.LABEL_WIDTH + 4, 2 + row * self.ROW + self.ROW // 2

    def mousePressEvent(self, event: QMouseEvent) -> None:
        row = self.row_at(event.position().y()) if event.button() == Qt.MouseButton.LeftButton else None
        if row is None:
            super().mousePressEvent(event)
            return
        event.accept()
        self.bucket_clicked.emit(row)

    def set_buckets(self, rows: list[tuple[str, int, bool]]) -> None:
        self.rows = rows
        self.setAccessibleDescription("; ".join(f"{label}: {count}" + (" (small)" if small else "")
                                                for label, count, small in rows))
        self.updateGeometry()
        self.setFixedHeight(self.sizeHint().height())
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(260, max(1, len(self.rows)) * self.ROW + 4)

    def minimumSizeHint(self) -> QSize:
        return QSize(self.LABEL_WIDTH + self.COUNT_WIDTH + 40, self.sizeHint().height())

    def paintEvent(self, event: Any) -> None:
        painter = QPainter(self)
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        if not self.rows:
            painter.setPen(palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No buckets")
            return
        normal = palette.color(QPalette.ColorRole.Highlight)
        warn = warning_colour(palette)
        largest = max(count for _, count, _ in self.rows) or 1
        bar_space = max(10, self.width() - self.LABEL_WIDTH - self.COUNT_WIDTH - 8)
        for row, (label, count, small) in enumerate(self.rows):
            top = 2 + row * self.ROW
            painter.setPen(text)
            painter.drawText(QRectF(0, top, self.LABEL_WIDTH - 6, self.ROW),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, label)
            length = max(2.0, bar_space * count / largest)
            painter.fillRect(QRectF(self.LABEL_WIDTH, top + 3, length, self.ROW - 6), warn if small else normal)
            painter.setPen(warn if small else text)
            painter.drawText(QRectF(self.LABEL_WIDTH + length + 4, top, self.COUNT_WIDTH, self.ROW),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, str(count))
        painter.end()


class DatasetWorkbench(QWidget):
    """The settings side panel; see the module docstring."""

    show_files_requested = Signal(str, list, str)  # dataset id, sha256 of the files, what they are ("the 2 …")

    def __init__(self, store: WorkbenchStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.dataset: Dataset | None = None
        self.report: Any = None
        self.export_dialog: QFileDialog | None = None
        self._shown_revision: tuple[str, Any] | None = None
        self.setObjectName("datasetWorkbench")
        self.setAccessibleName("Dataset settings")
        # (files, with a caption) of the dataset shown; set by the Datasets panel from the loaded file list.
        self.caption_counts: Callable[[], tuple[int, int]] | None = None
        self.caption_confirm: ConfirmBox | None = None
        self._validation_change = ""  # what the pending validation change was, for its "Applied" line

        # automatic captions -------------------------------------------------------------------------------
        self.caption_menu = QMenu(self)
        self.caption_menu.setObjectName("captionMenu")
        self.caption_action = QAction("Caption &with…", self)
        self.caption_action.setToolTip("Caption every file with one of the server's captioners (caption presets)")
        self.caption_action.setMenu(self.caption_menu)
        # A push button with the same menu (a tool button here would drop the "…" and crowd the arrow).
        self.caption_button = QPushButton("Caption with…")
        self.caption_button.setObjectName("captionButton")
        self.caption_button.setToolTip(self.caption_action.toolTip())
        self.caption_button.setMenu(self.caption_menu)
        self.caption_action.changed.connect(
            lambda: self.caption_button.setEnabled(self.caption_action.isEnabled()))
        self.caption_progress = QProgressBar()
        self.caption_progress.setObjectName("captionProgress")
        self.caption_progress.setTextVisible(True)
        self.caption_progress.hide()
        self.caption_state = _status_label("captionState", selectable=True)
        caption_box = QGroupBox("Automatic captions")
        caption_layout = QVBoxLayout(caption_box)
        caption_layout.addWidget(self.caption_button, 0, Qt.AlignmentFlag.AlignLeft)
        caption_layout.addWidget(self.caption_progress)
        caption_layout.addWidget(self.caption_state)

        # buckets ---------------------------------------------------------------------------------------------
        self.resolution_combo = QComboBox()
        self.resolution_combo.setObjectName("resolutionCombo")
        for value in RESOLUTIONS:
            self.resolution_combo.addItem(str(value), value)
        self.resolution_combo.addItem(CUSTOM, None)
        self.resolution_combo.setCurrentIndex(RESOLUTIONS.index(1024))
        self.custom_resolution = QSpinBox()
        self.custom_resolution.setObjectName("customResolution")
        self.custom_resolution.setRange(64, 8192)
        self.custom_resolution.setSingleStep(64)
        self.custom_resolution.setValue(1024)
        self.custom_resolution.setSuffix(" px")
        self.custom_resolution.setEnabled(False)
        resolution_row = QHBoxLayout()
        resolution_row.addWidget(self.resolution_combo, 1)
        resolution_row.addWidget(self.custom_resolution, 1)
        self.step_spin = QSpinBox()
        self.step_spin.setObjectName("bucketStep")
        self.step_spin.setRange(8, 512)
        self.step_spin.setSingleStep(8)
        self.step_spin.setValue(64)
        self.step_spin.setSuffix(" px")
        self.batch_spin = QSpinBox()
        self.batch_spin.setObjectName("batchSize")
        self.batch_spin.setRange(1, 256)
        self.batch_spin.setValue(2)
        self.chart = BucketChart()
        self.bucket_summary = _status_label("bucketSummary")
        self.upscaled_label = _status_label("upscaledLabel")
        self.upscaled_label.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse
                                                   | Qt.TextInteractionFlag.LinksAccessibleByKeyboard)
        self.upscaled_label.linkActivated.connect(lambda _link: self.show_upscaled())
        self.small_label = _status_label("smallBucketLabel")
        bucket_box = QGroupBox("Resolution buckets")
        bucket_form = QFormLayout()
        bucket_form.addRow("Resolution", resolution_row)
        bucket_form.addRow("Bucket step", self.step_spin)
        bucket_form.addRow("Batch size", self.batch_spin)
        bucket_layout = QVBoxLayout(bucket_box)
        bucket_layout.addLayout(bucket_form)
        bucket_layout.addWidget(self.chart)
        bucket_layout.addWidget(self.bucket_summary)
        bucket_layout.addWidget(self.upscaled_label)
        bucket_layout.addWidget(self.small_label)

        # repeats and validation -------------------------------------------------------------------------------
        self.repeats_spin = QSpinBox()
        self.repeats_spin.setObjectName("repeatsSpin")
        self.repeats_spin.setRange(1, 10_000)
        self.repeats_spin.setToolTip("How often each image is shown per epoch (kohya's <repeats>_<name> folder)")
        self.repeats_apply = QPushButton("Apply")
        self.repeats_apply.setObjectName("repeatsApply")
        self.repeats_state = _status_label("repeatsState")
        repeats_row = QHBoxLayout()
        repeats_row.addWidget(self.repeats_spin, 1)
        repeats_row.addWidget(self.repeats_apply)
        self.validation_spin = QDoubleSpinBox()
        self.validation_spin.setObjectName("validationSpin")
        self.validation_spin.setRange(0, 90)
        self.validation_spin.setDecimals(0)
        self.validation_spin.setSuffix(" %")
        self.validation_spin.setToolTip("Share of the files held out for validation (0 = none); "
                                        "picked reproducibly by content hash")
        self.validation_apply = QPushButton("Apply")
        self.validation_apply.setObjectName("validationApply")
        self.validation_state = _status_label("validationState")
        self.held_out_label = _status_label("heldOutLabel", wrap=False)
        validation_row = QHBoxLayout()
        validation_row.addWidget(self.validation_spin, 1)
        validation_row.addWidget(self.validation_apply)
        training_box = QGroupBox("Training set")
        training_form = QFormLayout(training_box)
        training_form.addRow("Repeats", repeats_row)
        training_form.addRow("", self.repeats_state)
        training_form.addRow("Validation", validation_row)
        training_form.addRow("", self.validation_state)
        training_form.addRow("", self.held_out_label)

        # export -------------------------------------------------------------------------------------------------
        self.layout_combo = QComboBox()
        self.layout_combo.setObjectName("exportLayout")
        for key, text in EXPORT_LAYOUTS:
            self.layout_combo.addItem(text, key)
        self.export_button = QPushButton("Export…")
        self.export_button.setObjectName("exportButton")
        self.export_button.setToolTip("Save the dataset with its captions as a zip, for use outside the app")
        self.export_folder_button = QPushButton("Export to folder…")
        self.export_folder_button.setObjectName("exportFolderButton")
        self.export_folder_button.setToolTip("Save the dataset with its captions into a new or empty folder")
        self.export_state = _status_label("exportState", selectable=True)
        export_box = QGroupBox("Export")
        export_layout = QVBoxLayout(export_box)
        export_layout.addWidget(self.layout_combo)
        export_buttons = QHBoxLayout()
        export_buttons.addWidget(self.export_button)
        export_buttons.addWidget(self.export_folder_button)
        export_buttons.addStretch(1)
        export_layout.addLayout(export_buttons)
        export_layout.addWidget(self.export_state)

        self.placeholder = QLabel("Select a dataset to see its buckets, repeats and export.")
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # One scroll area around everything: a short window scrolls the panel instead of squashing its rows.
        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 4, 0)
        content_layout.addWidget(self.placeholder)
        content_layout.addWidget(caption_box)
        content_layout.addWidget(bucket_box)
        content_layout.addWidget(training_box)
        content_layout.addWidget(export_box)
        content_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 0, 0)
        layout.addWidget(scroll)
        self._sections = (caption_box, bucket_box, training_box, export_box)
        self.setMinimumWidth(300)

        # wiring ---------------------------------------------------------------------------------------------
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.refresh_buckets)
        self.resolution_combo.currentIndexChanged.connect(self._on_resolution_choice)
        for spin in (self.custom_resolution, self.step_spin, self.batch_spin):
            spin.valueChanged.connect(lambda *_: self._debounce.start())
        self.repeats_apply.clicked.connect(self.apply_repeats)
        self.validation_apply.clicked.connect(self.apply_validation)
        self.repeats_spin.valueChanged.connect(lambda *_: self._update_buttons())
        self.export_button.clicked.connect(self.open_export_dialog)
        self.export_folder_button.clicked.connect(self.open_export_folder_dialog)
        self.chart.bucket_clicked.connect(self.show_bucket)
        store.buckets_loading.connect(self._on_buckets_loading)
        store.buckets_loaded.connect(self._on_buckets_loaded)
        store.buckets_failed.connect(self._on_buckets_failed)
        store.update_started.connect(self._on_update_started)
        store.update_succeeded.connect(self._on_update_succeeded)
        store.update_failed.connect(self._on_update_failed)
        store.export_started.connect(self._on_export_started)
        store.export_progress.connect(self._on_export_progress)
        store.export_saved.connect(self._on_export_saved)
        store.export_failed.connect(self._on_export_failed)
        self.caption_menu.aboutToShow.connect(self._on_caption_menu_opening)
        store.captioners_loaded.connect(self._fill_caption_menu)
        store.captioners_failed.connect(self._on_captioners_failed)
        store.caption_started.connect(self._on_caption_started)
        store.caption_progress.connect(self._on_caption_progress)
        store.caption_finished.connect(self._on_caption_finished)
        store.caption_failed.connect(self._on_caption_failed)
        self._fill_caption_menu(None)
        self.show_dataset(None)

    # inputs ---------------------------------------------------------------------------------------------------
    @property
    def resolution(self) -> int:
        value = self.resolution_combo.currentData()
        return int(value) if value is not None else self.custom_resolution.value()

    def set_resolution(self, value: int) -> None:
        if value in RESOLUTIONS:
            self.resolution_combo.setCurrentIndex(RESOLUTIONS.index(value))
        else:
            self.resolution_combo.setCurrentIndex(len(RESOLUTIONS))
            self.custom_resolution.setValue(value)

    # the dataset shown ------------------------------------------------------------------------------------
    def show_dataset(self, dataset: Dataset | None) -> None:
        """Show this dataset (None: the placeholder). The same dataset with a new revision recomputes the
        buckets and refreshes repeats, keeping a repeats value the user is editing."""
        previous = self.dataset
        self.dataset = dataset
        usable = dataset is not None and dataset.status is DatasetStatus.ACTIVE
        self.placeholder.setVisible(dataset is None)
        for section in self._sections:
            section.setVisible(dataset is not None)
            section.setEnabled(usable)
        if dataset is None:
            self._shown_revision = None
            self.report = None
            self.chart.set_buckets([])
            self.caption_action.setEnabled(False)
            return
        same = previous is not None and previous.id == dataset.id
        if not same:
            self._show_caption_job(self.store.caption_job(dataset.id))
            self.repeats_state.clear()
            self.validation_state.clear()
            self.held_out_label.clear()
            self.export_state.clear()
            self.validation_spin.setValue(0)
            self.report = None
            self.chart.set_buckets([])
            self.bucket_summary.clear()
            self.upscaled_label.clear()
            self.small_label.clear()
        if dataset.repeats is not None and (not same or self.repeats_spin.value() == (previous.repeats or 0)):
            self.repeats_spin.setValue(dataset.repeats)
        revision = (dataset.id, dataset.revision if dataset.revision is not None else dataset.updated_at)
        if revision != self._shown_revision and usable:
            self._shown_revision = revision
            self.refresh_buckets()
        self._update_buttons()

    def show_held_out(self, dataset_id: str, held: int, total: int) -> None:
        """What the server holds out now (from the file list the Datasets tab loaded): the server does not
        store the percentage, only which files are held out."""
        if self._is_shown(dataset_id):
            self.held_out_label.setText(f"Now {held:,} of {total:,} file{'' if total == 1 else 's'} held out."
                                        if held else "Now no file is held out.")

    def refresh_buckets(self) -> None:
        self._debounce.stop()
        if self.dataset is None or self.dataset.status is not DatasetStatus.ACTIVE:
            return
        self.store.request_buckets(self.dataset.id, resolution=self.resolution, step=self.step_spin.value(),
                                   batch_size=self.batch_spin.value())

    # user intent ----------------------------------------------------------------------------------------------
    def apply_repeats(self) -> None:
        if self.dataset is not None:
            self.store.request_repeats(self.dataset.id, self.repeats_spin.value())

    def apply_validation(self) -> None:
        if self.dataset is not None:
            self.store.request_validation(self.dataset.id, float(self.validation_spin.value()))

    def use_files_for_validation(self, held_out: list[str]) -> None:
        """Hold out exactly these files (the grid's picks applied to the current split)."""
        if self.dataset is not None:
            self._validation_change = f"{len(held_out):,} picked file{'' if len(held_out) == 1 else 's'}"
            self.store.request_validation_files(self.dataset.id, held_out)

    def start_caption(self, preset_id: str, preset_name: str) -> ConfirmBox | None:
        """Plain slot: caption the shown dataset with this preset, asking first when captions exist (the box
        is returned; None when the job was started at once)."""
        dataset = self.dataset
        if dataset is None or self.store.is_captioning(dataset.id):
            return None
        total, captioned = self.caption_counts() if self.caption_counts is not None else (0, 0)
        dataset_id = dataset.id
        if not captioned:
            self._caption_now(dataset_id, preset_id, preset_name)
            return None
        some = f"{captioned:,} of {total:,} files" if captioned < total else f"All {total:,} files"
        box = ask_to_confirm(
            self, "Replace captions?",
            f"{some} of “{dataset.name}” already have a caption.",
            f"“{preset_name}” replaces the caption of every file it writes one for; files it writes no caption "
            f"for keep theirs, and files without a caption get one. Undo does not cover this: the old captions "
            f"are gone once the job completes.",
            confirm="Replace captions", keep="Keep them",
            on_confirm=lambda: self._caption_now(dataset_id, preset_id, preset_name))
        self.caption_confirm = box
        box.destroyed.connect(lambda *_: setattr(self, "caption_confirm", None))
        return box

    def _caption_now(self, dataset_id: str, preset_id: str, preset_name: str) -> None:
        if self._is_shown(dataset_id):
            self.caption_state.setText(f"Starting “{_escape(preset_name)}”…")
        self.store.request_caption(dataset_id, preset_id)
        self._update_buttons()

    def show_upscaled(self) -> None:
        """Ask for the grid to show only the images the current report says are upscaled."""
        report = self.report
        if self.dataset is None or report is None or not report.upscaled:
            return
        count = len(report.upscaled)
        what = f"the {count:,} image{'' if count == 1 else 's'} upscaled at {report.resolution} px"
        self.show_files_requested.emit(self.dataset.id, list(report.upscaled), what)

    def show_bucket(self, row: int) -> None:
        """Ask for the grid to show only the images of the report's bucket at `row` (as the chart draws it)."""
        report = self.report
        if self.dataset is None or report is None or not 0 <= row < len(report.buckets):
            return
        bucket = report.buckets[row]
        what = (f"the {bucket.count:,} image{'' if bucket.count == 1 else 's'} of bucket "
                f"{bucket_label(bucket.width, bucket.height)}")
        self.show_files_requested.emit(self.dataset.id, list(bucket.files), what)

    def open_export_dialog(self) -> QFileDialog | None:
        """A non-blocking save dialog; the chosen file goes to `start_export`."""
        dataset = self.dataset
        if dataset is None:
            return None
        layout = self.layout_combo.currentData()
        dialog = QFileDialog(self, f"Export “{dataset.name}”")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.setNameFilter("Zip archives (*.zip)")
        dialog.setDefaultSuffix("zip")
        dialog.selectFile(str(Path.home() / f"{_safe_name(dataset.name)}-{layout}.zip"))
        dataset_id = dataset.id
        return self._open_export_dialog(dialog, lambda path: self.start_export(dataset_id, Path(path), layout))

    def start_export(self, dataset_id: str, target: Path, layout: str) -> None:
        self.store.request_export(dataset_id, target, layout)
        self._update_buttons()

    def open_export_folder_dialog(self) -> QFileDialog | None:
        """A non-blocking folder dialog (a new folder can be made in it); the chosen folder goes to
        `start_folder_export`."""
        dataset = self.dataset
        if dataset is None:
            return None
        layout = self.layout_combo.currentData()
        dialog = QFileDialog(self, f"Export “{dataset.name}” to a new or empty folder")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.setDirectory(str(Path.home()))
        dataset_id = dataset.id
        return self._open_export_dialog(dialog,
                                        lambda path: self.start_folder_export(dataset_id, Path(path), layout))

    def _open_export_dialog(self, dialog: QFileDialog, on_chosen: Any) -> QFileDialog:
        """Open `dialog` without blocking (kept as `export_dialog` while open); the chosen path goes to
        `on_chosen`."""
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(on_chosen)
        dialog.destroyed.connect(lambda *_: setattr(self, "export_dialog", None))
        self.export_dialog = dialog
        dialog.open()
        return dialog

    def start_folder_export(self, dataset_id: str, target: Path, layout: str) -> None:
        self.store.request_export_folder(dataset_id, target, layout)
        self._update_buttons()

    # reactions ---------------------------------------------------------------------------------------------------
    def _is_shown(self, dataset_id: str) -> bool:
        return self.dataset is not None and self.dataset.id == dataset_id

    def _on_resolution_choice(self, *args: object) -> None:
        self.custom_resolution.setEnabled(self.resolution_combo.currentData() is None)
        self._debounce.start()

    def _on_buckets_loading(self, dataset_id: str) -> None:
        if self._is_shown(dataset_id) and self.report is None:
            self.bucket_summary.setText("Computing the buckets…")

    def _on_buckets_loaded(self, dataset_id: str, report: Any) -> None:
        if not self._is_shown(dataset_id):
            return
        self.report = report
        self.chart.set_buckets([(bucket_label(b.width, b.height), b.count, b.small) for b in report.buckets])
        sized = sum(b.count for b in report.buckets)
        buckets = len(report.buckets)
        summary = (f"{sized:,} image{'' if sized == 1 else 's'} in {buckets} bucket{'' if buckets == 1 else 's'} "
                   f"at {report.resolution} px (step {report.step}).")
        if report.unsized:
            summary += f" {len(report.unsized):,} file(s) without a known size are not bucketed."
        self.bucket_summary.setText(summary)
        warn = warning_colour(self.palette()).name()
        upscaled = len(report.upscaled)
        if upscaled:
            self.upscaled_label.setText(f"<a href='upscaled' style='color:{warn}'>⚠ {upscaled:,} upscaled</a> "
                                        f"(smaller than their bucket: they will look soft; click to see them)")
            self.upscaled_label.setToolTip("Show the upscaled images in the grid")
        else:
            self.upscaled_label.setText("No image is upscaled.")
            self.upscaled_label.setToolTip("")
        small = [b for b in report.buckets if b.small]
        if small:
            self.small_label.setText(
                f"<span style='color:{warn}'>■ {len(small)} bucket{'' if len(small) == 1 else 's'} with fewer "
                f"than {report.batch_size} images</span> (the batch size): {SMALL_BUCKET_LEGEND}.")
        else:
            self.small_label.setText(f"Every bucket fills a batch of {report.batch_size}.")

    def _on_buckets_failed(self, dataset_id: str, message: str) -> None:
        if self._is_shown(dataset_id):
            self.bucket_summary.setText(message)

    def _state_label(self, what: str) -> QLabel:
        return self.repeats_state if what == "repeats" else self.validation_state

    def _on_update_started(self, dataset_id: str, what: str) -> None:
        if self._is_shown(dataset_id):
            self._state_label(what).setText("Applying… (the server rebuilds the training folders)")
            self._update_buttons()

    def _on_update_succeeded(self, dataset_id: str, what: str, dataset: Dataset) -> None:
        if not self._is_shown(dataset_id):
            return
        if what == "repeats":
            self.repeats_state.setText(f"Applied: {dataset.repeats} repeats.")
            self.dataset = self.dataset.model_copy(update={"repeats": dataset.repeats}) if self.dataset else None
        elif self._validation_change:
            self.validation_state.setText(f"Applied: {self._validation_change} held out for validation.")
            self._validation_change = ""
        else:
            percent = int(self.validation_spin.value())
            self.validation_state.setText(f"Applied: {percent} % held out for validation." if percent
                                          else "Applied: no validation split.")
        self._update_buttons()

    def _on_update_failed(self, dataset_id: str, what: str, message: str) -> None:
        if what == "validation":
            self._validation_change = ""
        if self._is_shown(dataset_id):
            label = self._state_label(what)
            label.setText(f"<span style='color:{warning_colour(self.palette()).name()}'>{_escape(message)}</span>")
            self._update_buttons()

    def _on_export_started(self, dataset_id: str, target: str) -> None:
        if self._is_shown(dataset_id):
            self.export_state.setText(f"Exporting to {target}…")
            self._update_buttons()

    def _on_export_progress(self, dataset_id: str, done: int) -> None:
        if self._is_shown(dataset_id):
            self.export_state.setText(f"Exporting… {_megabytes(done)} written")

    def _on_export_saved(self, dataset_id: str, target: str, size: int) -> None:
        if self._is_shown(dataset_id):
            self.export_state.setText(f"Exported to {target} ({_megabytes(size)}).")
        self._update_buttons()

    def _on_export_failed(self, dataset_id: str, message: str) -> None:
        if self._is_shown(dataset_id):
            self.export_state.setText(
                f"<span style='color:{warning_colour(self.palette()).name()}'>{_escape(message)}</span>")
        self._update_buttons()

    def _update_buttons(self) -> None:
        dataset = self.dataset
        if dataset is None:
            return
        self.repeats_apply.setEnabled(not self.store.is_updating(dataset.id, "repeats")
                                      and self.repeats_spin.value() != dataset.repeats)
        self.validation_apply.setEnabled(not self.store.is_updating(dataset.id, "validation"))
        self.export_button.setEnabled(not self.store.is_exporting(dataset.id))
        self.export_folder_button.setEnabled(not self.store.is_exporting(dataset.id))
        self.caption_action.setEnabled(dataset.status is DatasetStatus.ACTIVE
                                       and not self.store.is_captioning(dataset.id))

    # automatic captions -------------------------------------------------------------------------------------
    def _on_caption_menu_opening(self) -> None:
        # Re-read each time: a preset added to presets.toml shows without restarting anything.
        if self.store.captioners is None:
            self._fill_caption_menu(None)
        self.store.request_captioners(reload=True)

    def _fill_caption_menu(self, captioners: list[Any] | None) -> None:
        """The menu's entries: one per caption preset, or a loading line, or how to add one."""
        menu = self.caption_menu
        menu.clear()
        if captioners is None:
            menu.addAction("Loading the caption presets…").setEnabled(False)
            return
        if not captioners:
            menu.addAction("No caption presets on this server").setEnabled(False)
            menu.addAction("How to add one…", self.show_how_to_add_captioner)
            if self.dataset is not None and not self.caption_progress.isVisible():
                self.show_how_to_add_captioner()
            return
        for captioner in captioners:
            action = menu.addAction(captioner.name or captioner.id)
            action.setToolTip(captioner.description or f"Caption preset “{captioner.id}”")
            action.setData(captioner.id)
            action.triggered.connect(lambda checked=False, c=captioner: self.start_caption(c.id, c.name or c.id))
        menu.setToolTipsVisible(True)

    def show_how_to_add_captioner(self) -> None:
        # pre-wrap, not <pre>: a long example line wraps instead of widening the side panel past its edge
        example = _escape(CAPTION_PRESET_EXAMPLE).replace("\n", "<br>")
        self.caption_state.setText(f"<p>{_escape(NO_CAPTIONERS_TEXT)}</p>"
                                   f"<p style='white-space:pre-wrap; font-family:monospace'>{example}</p>"
                                   f"<p>{_escape(CAPTION_PRESET_HINT)}</p>")

    def _on_captioners_failed(self, message: str) -> None:
        menu = self.caption_menu
        menu.clear()
        menu.addAction(message).setEnabled(False)
        menu.addAction("Try again", lambda: self.store.request_captioners(reload=True))

    def _show_caption_job(self, job: Any) -> None:
        """The progress line of this dataset's caption job (None: nothing running)."""
        if job is None:
            self.caption_progress.hide()
            self.caption_state.setText(CAPTION_IDLE_TEXT)
            return
        total = int(job.total_steps or 0)
        done = int(job.current_step or 0)
        self.caption_progress.setRange(0, max(total, 1) if job.status.value == "running" or total else 0)
        self.caption_progress.setValue(min(done, total))
        self.caption_progress.setFormat(f"%v of {total:,} files" if total else "")
        self.caption_progress.show()
        state = {"queued": "waiting in the queue", "pending": "waiting in the queue",
                 "running": "running"}.get(job.status.value, job.status.value)
        detail = f" ({_escape(job.detail)})" if job.detail else ""
        self.caption_state.setText(f"Captioning: “{_escape(job.name)}” is {state}{detail}. "
                                   f"It is listed in the Jobs tab.")

    def _on_caption_started(self, dataset_id: str, job: Any) -> None:
        if self._is_shown(dataset_id):
            self._show_caption_job(job)
            self._update_buttons()

    def _on_caption_progress(self, dataset_id: str, job: Any) -> None:
        if self._is_shown(dataset_id):
            self._show_caption_job(job)

    def _on_caption_finished(self, dataset_id: str, job: Any) -> None:
        if self._is_shown(dataset_id):
            self.caption_progress.hide()
            total = int(job.total_steps or 0)
            self.caption_state.setText(f"Captioned: “{_escape(job.name)}” completed over {total:,} "
                                       f"file{'' if total == 1 else 's'}; the grid shows the new captions.")
            self._update_buttons()

    def _on_caption_failed(self, dataset_id: str, message: str) -> None:
        if self._is_shown(dataset_id):
            self.caption_progress.hide()
            self.caption_state.setText(
                f"<span style='color:{warning_colour(self.palette()).name()}'>{_escape(message)}</span>")
            self._update_buttons()


def _status_label(object_name: str, *, wrap: bool = True, selectable: bool = False) -> QLabel:
    """One of the workbench's state lines: named for tests and styles, wrapped, optionally selectable (the
    lines that may carry an error message or a path a user wants to copy)."""
    label = QLabel()
    label.setObjectName(object_name)
    label.setWordWrap(wrap)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _megabytes(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _safe_name(name: str) -> str:
    kept = "".join(ch if ch.isalnum() or ch in "-_. " else "_" for ch in name).strip()
    return kept or "dataset"
