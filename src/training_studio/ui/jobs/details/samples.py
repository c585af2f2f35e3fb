"""The Samples strip of the job details pane: the images a trainer writes as it trains, newest arriving live.

`SamplesStrip` shows its `SamplesStore`'s model as one horizontal row of thumbnails (an icon-mode
`QListView`, uniform cells painted by `SampleTileDelegate` from `SampleRole` data: thumbnail, then the
step), with a step slider under it: moving the slider selects and scrolls to the sample nearest that step.
While the slider sits at the newest step it stays there as new samples arrive (the strip follows the run);
moved back, it stays where the user put it. Click or Enter opens the sample in a non-modal
`SampleViewer` window (one per strip, reused; Left/Right step through the samples, Escape closes). Empty,
loading and error states are said in words. No HTTP here: the store fetches.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent, QPainter, QPalette, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QScrollArea,
    QSlider,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from training_studio.ui.jobs.details.samples_store import (
    THUMBNAIL_SIZE,
    SampleRole,
    SamplesState,
    SamplesStore,
)
from training_studio.ui.jobs.details.state_labels import error_line, show_error, show_state, state_page

__all__ = ["SampleTileDelegate", "SampleViewer", "SamplesStrip"]

_ModelIndex = QModelIndex | QPersistentModelIndex
TILE_PADDING = 6
MAX_ENLARGE = 8  # the viewer enlarges a small sample at most this many times


class SampleTileDelegate(QStyledItemDelegate):
    """One cell: the thumbnail centred in a fixed square, the step under it."""

    def sizeHint(self, option: QStyleOptionViewItem, index: _ModelIndex) -> QSize:
        line = option.fontMetrics.height()
        return QSize(THUMBNAIL_SIZE + 2 * TILE_PADDING, THUMBNAIL_SIZE + 2 * TILE_PADDING + line + 2)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _ModelIndex) -> None:
        painter.save()
        try:
            palette = option.palette
            rect = option.rect
            selected = bool(option.state & QStyle.StateFlag.State_Selected)
            if selected:
                painter.fillRect(rect, palette.color(QPalette.ColorRole.Highlight))
            elif option.state & QStyle.StateFlag.State_MouseOver:
                painter.fillRect(rect, palette.color(QPalette.ColorRole.AlternateBase))
            square = QRect(rect.x() + (rect.width() - THUMBNAIL_SIZE) // 2, rect.y() + TILE_PADDING,
                           THUMBNAIL_SIZE, THUMBNAIL_SIZE)
            pixmap = index.data(SampleRole.THUMBNAIL)
            if isinstance(pixmap, QPixmap) and not pixmap.isNull():
                size = pixmap.deviceIndependentSize().toSize()
                if size.width() > square.width() or size.height() > square.height():
                    size = size.scaled(square.size(), Qt.AspectRatioMode.KeepAspectRatio)
                target = QRect(0, 0, size.width(), size.height())
                target.moveCenter(square.center())
                painter.drawPixmap(target, pixmap)
            else:
                painter.fillRect(square, palette.color(QPalette.ColorRole.AlternateBase))
                painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
                text = "Not an image" if index.data(SampleRole.THUMBNAIL_FAILED) else "Loading…"
                painter.drawText(square, Qt.AlignmentFlag.AlignCenter, text)
            line = option.fontMetrics.height()
            text_rect = QRect(rect.x() + TILE_PADDING, square.bottom() + 2, rect.width() - 2 * TILE_PADDING, line)
            painter.setPen(palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
            label = option.fontMetrics.elidedText(str(index.data(Qt.ItemDataRole.DisplayRole) or ""),
                                                  Qt.TextElideMode.ElideMiddle, text_rect.width())
            painter.drawText(text_rect, Qt.AlignmentFlag.AlignCenter, label)
            if option.state & QStyle.StateFlag.State_HasFocus:
                painter.setPen(palette.color(QPalette.ColorRole.Highlight).darker(130))
                painter.drawRect(rect.adjusted(0, 0, -1, -1))
        finally:
            painter.restore()


class SampleViewer(QWidget):
    """A sample at full size in its own window (non-modal); the strip feeds it images."""

    step_requested = Signal(int)  # +1 / -1: the user asked for the next / previous sample

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("sampleViewer")
        self.setAccessibleName("Sample image")
        self.resize(720, 760)
        self._image: QImage | None = None
        layout = QVBoxLayout(self)
        self.caption = QLabel(self)
        self.caption.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.caption)
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture = QLabel(self.scroll)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(64, 64)
        self.scroll.setWidget(self.picture)
        layout.addWidget(self.scroll, 1)
        hint = QLabel("Left/Right: previous/next sample · Esc: close", self)
        hint.setEnabled(False)
        layout.addWidget(hint)

    def show_loading(self, title: str, caption: str) -> None:
        self.setWindowTitle(title)
        self.caption.setText(caption)
        if self._image is None:
            self.picture.setText("Loading…")

    def show_image(self, image: QImage) -> None:
        self._image = image
        self._fit()

    def show_error(self, text: str) -> None:
        self._image = None
        self.picture.setPixmap(QPixmap())
        self.picture.setText(text)

    def _fit(self) -> None:
        if self._image is None:
            return
        area = self.scroll.viewport().size()
        pixmap = QPixmap.fromImage(self._image)
        if pixmap.width() > area.width() or pixmap.height() > area.height():
            pixmap = pixmap.scaled(area, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        elif pixmap.width() * 2 <= area.width() and pixmap.height() * 2 <= area.height():
            # Small samples (a toy model's 64 px grid) are enlarged by whole factors, pixels kept crisp.
            factor = min(MAX_ENLARGE, area.width() // pixmap.width(), area.height() // pixmap.height())
            pixmap = pixmap.scaled(pixmap.size() * factor, Qt.AspectRatioMode.KeepAspectRatio,
                                   Qt.TransformationMode.FastTransformation)
        self.picture.setPixmap(pixmap)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close()
        elif event.key() == Qt.Key.Key_Right:
            self.step_requested.emit(1)
        elif event.key() == Qt.Key.Key_Left:
            self.step_requested.emit(-1)
        else:
            super().keyPressEvent(event)


class SamplesStrip(QWidget):
    """See the module docstring. `jobs` is the app's JobStore."""

    sample_opened = Signal(str, str)  # job id, sample name: the viewer shows it

    def __init__(self, jobs: Any, parent: QWidget | None = None, *, store: SamplesStore | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.store = store if store is not None else SamplesStore(jobs.client, jobs=jobs, parent=self)
        self.model = self.store.model
        self.setObjectName("samplesStrip")
        self.setAccessibleName("Samples")
        self.job_id: str | None = None
        self.viewer: SampleViewer | None = None
        self._viewer_name: str | None = None
        self._follow_newest = True

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.error_label = error_line(self, "samplesError")
        layout.addWidget(self.error_label)

        self.stack = QStackedWidget(self)
        self.list = QListView(self.stack)
        self.list.setObjectName("samplesList")
        self.list.setAccessibleName("Sample images")
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(False)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setUniformItemSizes(True)
        self.list.setSpacing(4)
        self.list.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setMouseTracking(True)
        self.list.setItemDelegate(SampleTileDelegate(self.list))
        self.list.setModel(self.model)
        line = self.fontMetrics().height()
        self.list.setMinimumHeight(THUMBNAIL_SIZE + 2 * TILE_PADDING + line + 2 + 8
                                   + self.list.horizontalScrollBar().sizeHint().height())
        self.state_label = state_page(self.stack, "samplesState")
        self.stack.addWidget(self.list)
        self.stack.addWidget(self.state_label)
        layout.addWidget(self.stack, 1)

        self.slider_row = QWidget(self)
        row = QHBoxLayout(self.slider_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.slider = QSlider(Qt.Orientation.Horizontal, self.slider_row)
        self.slider.setObjectName("samplesStepSlider")
        self.slider.setAccessibleName("Step")
        self.slider.setEnabled(False)
        self.step_label = QLabel(self.slider_row)
        self.step_label.setObjectName("samplesStep")
        self.step_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("step 0000000"))
        row.addWidget(QLabel("Step", self.slider_row))
        row.addWidget(self.slider, 1)
        row.addWidget(self.step_label)
        layout.addWidget(self.slider_row)

        self.slider.valueChanged.connect(self._on_slider)
        self.list.clicked.connect(self.open_sample)
        self.list.activated.connect(self.open_sample)
        self.list.selectionModel().currentChanged.connect(self._on_current)
        self.store.state_changed.connect(self._on_state)
        self.store.error.connect(self._on_error)
        self.store.samples_added.connect(self._on_samples_added)
        self.store.image_loaded.connect(self._on_image_loaded)
        self.store.image_failed.connect(self._on_image_failed)
        self.model.modelReset.connect(self._update_slider)
        self._on_state(self.store.state.value, "Select a job to see its samples.")

    # public API ---------------------------------------------------------------------------------------
    def show_job(self, job_id: str | None) -> None:
        if job_id == self.job_id:
            return
        self.job_id = job_id
        self._follow_newest = True
        self.store.show_job(job_id)
        self._update_slider()
        if self.viewer is not None:
            self.viewer.close()

    def shutdown(self) -> None:
        self.store.shutdown()
        if self.viewer is not None:
            self.viewer.close()

    def select_step(self, step: int) -> int | None:
        """Select and scroll to the sample nearest `step`; its row, or None without samples."""
        row = self.model.nearest_row(step)
        if row is None:
            return None
        index = self.model.index(row, 0)
        self.list.setCurrentIndex(index)
        self.list.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        return row

    def open_sample(self, index: QModelIndex) -> None:
        name = index.data(SampleRole.NAME)
        if not name or self.job_id is None:
            return
        if self.viewer is None:
            self.viewer = SampleViewer(self)
            self.viewer.step_requested.connect(self._viewer_step)
        self._viewer_name = name
        step = index.data(SampleRole.STEP)
        title = f"Sample at step {step}" if step is not None else f"Sample {name}"
        self.viewer.show_loading(title, name)
        self.viewer.show()
        self.viewer.raise_()
        self.viewer.activateWindow()
        self.store.request_image(name)
        self.sample_opened.emit(self.job_id, name)

    # store signals --------------------------------------------------------------------------------------
    def _on_state(self, state: str, text: str) -> None:
        show_state(self.stack, self.list, self.state_label, state == SamplesState.SHOWING.value, text)
        self.slider_row.setVisible(state == SamplesState.SHOWING.value)
        self._update_slider()

    def _on_error(self, text: str) -> None:
        show_error(self.error_label, text)

    def _on_samples_added(self) -> None:
        self._update_slider()
        if self._follow_newest and self.slider.isEnabled():
            self.slider.setValue(self.slider.maximum())
            self.select_step(self.slider.maximum())

    def _on_image_loaded(self, job_id: str, name: str, image: QImage) -> None:
        if self.viewer is not None and job_id == self.job_id and name == self._viewer_name:
            self.viewer.show_image(image)

    def _on_image_failed(self, job_id: str, name: str, text: str) -> None:
        if self.viewer is not None and job_id == self.job_id and name == self._viewer_name:
            self.viewer.show_error(text)

    # slider -----------------------------------------------------------------------------------------------
    def _update_slider(self) -> None:
        steps = [s for s in self.model.steps() if s is not None]
        self.slider.blockSignals(True)
        try:
            if steps:
                self.slider.setRange(min(steps), max(steps))
                self.slider.setEnabled(len(steps) > 1)
                self.step_label.setText(f"step {self.slider.value()}")
            else:
                self.slider.setRange(0, 0)
                self.slider.setEnabled(False)
                self.step_label.setText("")
        finally:
            self.slider.blockSignals(False)

    def _on_slider(self, value: int) -> None:
        self._follow_newest = value >= self.slider.maximum()
        row = self.select_step(value)
        step = self.model.sample_at(row).step if row is not None else None  # type: ignore[union-attr]
        self.step_label.setText(f"step {step if step is not None else value}")

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        step = current.data(SampleRole.STEP) if current.isValid() else None
        if step is None or not self.slider.isEnabled():
            return
        self.slider.blockSignals(True)
        self.slider.setValue(step)
        self.slider.blockSignals(False)
        self._follow_newest = step >= self.slider.maximum()
        self.step_label.setText(f"step {step}")

    def _viewer_step(self, delta: int) -> None:
        row = self.model.row_of(self._viewer_name) if self._viewer_name else None
        if row is None:
            return
        target = row + delta
        if 0 <= target < self.model.rowCount():
            index = self.model.index(target, 0)
            self.list.setCurrentIndex(index)
            self.open_sample(index)

    # visibility ---------------------------------------------------------------------------------------------
    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.store.set_active(True)

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self.store.set_active(False)
