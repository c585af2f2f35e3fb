"""The loss chart of the job details pane: live curves of one job, or several to compare, with pyqtgraph.

`LossChart` owns the chart widget and its controls: a series chooser (loss and every scalar series the shown
jobs reported), the smoothing slider (TensorBoard's debiased EMA, 0–0.99, default 0.6; raw values stay faint
behind the smoothed curve), log scale, x by step or by wall time, reset view (pyqtgraph's own zoom and pan
otherwise), a hover readout (step, raw, smoothed, wall time of the nearest point of each job) and exports
(PNG, SVG, CSV). `show_jobs(ids, colours)` is its one input: each job gets one colour and one legend entry.
Its points come from its `MetricsStore` (incremental /metrics fetches); widgets here never call HTTP.

Drawing stays cheap at a million points: points are appended into preallocated numpy buffers
(`chart_data.SeriesData`, with a min/max pyramid), and redraws are coalesced to one per frame (`FRAME_MS`
single-shot timer) however many points arrive. A redraw hands pyqtgraph only what the visible range needs
at about two values per pixel (the pyramid's min/max envelope: what pyqtgraph's "peak" downsampling shows);
clip-to-view, auto "peak" downsampling and `skipFiniteCheck` stay on as well. pyqtgraph is imported when
the first chart is built, not when this module is imported, so app start-up does not pay for it.

When there is nothing to draw, a centred sentence says why (no job selected, loading, no metrics yet, the job
failed before its first point, a server without metrics, an error): never an empty frame or a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QEvent, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QSlider,
    QStackedLayout,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from training_studio.ui.jobs.details.chart_data import X_STEP, X_TIME, SeriesData
from training_studio.ui.jobs.details.colours import compare_colour
from training_studio.ui.jobs.details.metric_columns import LOSS
from training_studio.ui.jobs.details.metrics_csv import MetricsExportError, write_metrics_csv
from training_studio.ui.jobs.details.metrics_store import MetricsStore, StateKind
from training_studio.ui.jobs.details.smoothing import DEFAULT_WEIGHT

if TYPE_CHECKING:
    import pyqtgraph

__all__ = ["LossChart", "FRAME_MS", "SMOOTHING_STEPS"]

log = logging.getLogger(__name__)

FRAME_MS = 16                 # redraws are coalesced to at most one per frame
SMOOTHING_STEPS = 99          # slider positions 0..99 -> weight 0.00..0.99
SMOOTHING_DEBOUNCE_MS = 60    # a dragged slider recomputes the smoothing at most this often
RAW_ALPHA = 90                # the raw series, faint behind the smoothed one (its share of the colour, /255)
NO_JOB_TEXT = "Select a job to see its loss curve."


def _pg() -> "pyqtgraph":
    import pyqtgraph

    return pyqtgraph


def _is_dark(widget: QWidget) -> bool:
    hints = QGuiApplication.styleHints()
    scheme = hints.colorScheme() if hasattr(hints, "colorScheme") else Qt.ColorScheme.Unknown
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    return widget.palette().color(QPalette.ColorRole.Base).lightness() < 128


def _mix(colour: QColor, background: QColor, amount: float) -> QColor:
    """`colour` at `amount` (0..1) over `background`, as an opaque colour."""
    return QColor(round(colour.red() * amount + background.red() * (1 - amount)),
                  round(colour.green() * amount + background.green() * (1 - amount)),
                  round(colour.blue() * amount + background.blue() * (1 - amount)))


def _format_value(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else "—"


def _format_time(epoch: float) -> str:
    if not math.isfinite(epoch):
        return "—"
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


class _JobCurves:
    """One shown job: its data for the chosen series and its two plot items."""

    def __init__(self, job_id: str, weight: float) -> None:
        self.job_id = job_id
        self.data = SeriesData(weight)
        self.raw_item: Any = None
        self.smoothed_item: Any = None
        self.colour = QColor()


class LossChart(QWidget):
    """Live metric curves of the shown jobs; see the module docstring."""

    export_finished = Signal(str)   # path written
    export_failed = Signal(str)     # a sentence for the user

    def __init__(self, job_store: Any, parent: QWidget | None = None, *,
                 store: MetricsStore | None = None) -> None:
        super().__init__(parent)
        pg = _pg()
        self.setObjectName("lossChart")
        self.store = store if store is not None else MetricsStore(job_store, parent=self)
        self._jobs: dict[str, _JobCurves] = {}
        self._order: list[str] = []
        self._colours: dict[str, QColor] = {}
        self._series = LOSS
        self._series_seen: list[str] = [LOSS]
        self._weight = DEFAULT_WEIGHT
        self._axis = X_STEP
        self._log_y = False
        # Following: the view shows every point and grows with them (with headroom, so the axes stay put
        # for a while instead of moving with every point); a zoom or pan by the user ends it, Reset view
        # brings it back. pyqtgraph's own auto-range stays off: it would move the axes on every point.
        self._background = QColor("#ffffff")
        self._follow = True
        self._view_set: tuple[tuple[float, float], tuple[float, float]] | None = None
        self._dialogs: list[QFileDialog] = []

        # controls -------------------------------------------------------------------------------------
        self.series_box = QComboBox(self)
        self.series_box.setObjectName("chartSeries")
        self.series_box.setToolTip("Which series to plot: the loss, or another value the trainer reports")
        self.series_box.setAccessibleName("Series")
        self.series_box.addItem(LOSS)
        self.series_box.currentTextChanged.connect(self._on_series_chosen)
        self.smoothing_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.smoothing_slider.setObjectName("chartSmoothing")
        self.smoothing_slider.setRange(0, SMOOTHING_STEPS)
        self.smoothing_slider.setValue(round(DEFAULT_WEIGHT * 100))
        self.smoothing_slider.setAccessibleName("Smoothing")
        self.smoothing_slider.setToolTip("Smoothing (exponential moving average, as TensorBoard)")
        self.smoothing_slider.setMaximumWidth(160)
        self.smoothing_slider.valueChanged.connect(self._on_smoothing_moved)
        self.smoothing_label = QLabel(f"{DEFAULT_WEIGHT:.2f}", self)
        self.smoothing_label.setMinimumWidth(self.smoothing_label.fontMetrics().horizontalAdvance("0.00") + 4)
        self.log_check = QCheckBox("Log scale", self)
        self.log_check.setObjectName("chartLogScale")
        self.log_check.toggled.connect(self.set_log_scale)
        self.axis_box = QComboBox(self)
        self.axis_box.setObjectName("chartXAxis")
        self.axis_box.setAccessibleName("X axis")
        self.axis_box.addItem("By step", X_STEP)
        self.axis_box.addItem("By wall time", X_TIME)
        self.axis_box.currentIndexChanged.connect(lambda _i: self.set_x_axis(self.axis_box.currentData()))
        self.reset_button = QToolButton(self)
        self.reset_button.setText("Reset view")
        self.reset_button.setToolTip("Show every point again (after zooming or panning)")
        self.reset_button.clicked.connect(self.reset_view)
        self.export_button = QToolButton(self)
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        export_menu = QMenu(self.export_button)
        for action in self.export_actions():
            export_menu.addAction(action)
        self.export_button.setMenu(export_menu)

        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(self.series_box)
        controls.addSpacing(8)
        smoothing_caption = QLabel("Smoothing", self)
        smoothing_caption.setBuddy(self.smoothing_slider)
        controls.addWidget(smoothing_caption)
        controls.addWidget(self.smoothing_slider)
        controls.addWidget(self.smoothing_label)
        controls.addSpacing(8)
        controls.addWidget(self.log_check)
        controls.addWidget(self.axis_box)
        controls.addStretch(1)
        controls.addWidget(self.reset_button)
        controls.addWidget(self.export_button)

        # the plot and the empty state ---------------------------------------------------------------
        self.plot_widget = pg.PlotWidget(parent=self)
        self.plot_widget.setObjectName("chartPlot")
        self.plot_item = self.plot_widget.getPlotItem()
        self.plot_item.setClipToView(True)
        self.plot_item.setDownsampling(auto=True, mode="peak")
        self.plot_item.showGrid(x=False, y=False)
        self.plot_item.setMenuEnabled(False)  # its log/transform menu would bypass ours
        self.plot_item.hideButtons()
        # "loss (x0.001)" over log-scale ticks reads as a different value than the readout's: plain numbers.
        self.plot_item.getAxis("left").enableAutoSIPrefix(False)
        self.legend = self.plot_item.addLegend(offset=(-10, 10))
        self.cursor_line = pg.InfiniteLine(angle=90, movable=False)
        self.cursor_line.setVisible(False)
        self.plot_item.addItem(self.cursor_line, ignoreBounds=True)
        self.view_box = self.plot_item.getViewBox()
        self.view_box.disableAutoRange()
        self.view_box.sigXRangeChanged.connect(self._on_range_changed)
        self.view_box.sigRangeChangedManually.connect(self._on_user_range)
        self.plot_widget.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.plot_widget.viewport().installEventFilter(self)
        self.empty_label = QLabel(NO_JOB_TEXT, self)
        self.empty_label.setObjectName("chartEmpty")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.stack = QStackedLayout()
        self.stack.addWidget(self.plot_widget)
        self.stack.addWidget(self.empty_label)
        self.stack.setCurrentWidget(self.empty_label)
        self.readout = QLabel(" ", self)
        self.readout.setObjectName("chartReadout")
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.readout.setWordWrap(True)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addLayout(self.stack, 1)
        layout.addWidget(self.readout)

        # timers -------------------------------------------------------------------------------------------
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(FRAME_MS)
        self._redraw_timer.timeout.connect(self.redraw)
        self._smoothing_timer = QTimer(self)
        self._smoothing_timer.setSingleShot(True)
        self._smoothing_timer.setInterval(SMOOTHING_DEBOUNCE_MS)
        self._smoothing_timer.timeout.connect(self._apply_smoothing)
        self.redraws = 0  # how many redraws ran (tests and benchmarks look at it)

        self.store.points_appended.connect(self._on_points)
        self.store.series_reset.connect(self._on_reset)
        self.store.state_changed.connect(lambda _job_id: self._schedule())
        job_store.jobs_changed.connect(self._refresh_names)
        self._apply_theme()
        self._update_controls()

    # the pane's API ---------------------------------------------------------------------------------
    def show_jobs(self, job_ids: list[str], colours: dict[str, QColor] | None = None) -> None:
        """Show these jobs' curves (one job, or several to compare), each in its colour (default: the
        compare palette by position), one legend entry per job."""
        ids = list(dict.fromkeys(job_id for job_id in job_ids if job_id))
        dark = _is_dark(self)
        if ids != self._order:
            self._follow, self._view_set = True, None
        for job_id in [j for j in self._order if j not in ids]:
            self._remove_curves(self._jobs.pop(job_id))
        self._order = ids
        for index, job_id in enumerate(ids):
            colour = QColor((colours or {}).get(job_id) or compare_colour(index, dark=dark))
            curves = self._jobs.get(job_id)
            if curves is None:
                curves = self._jobs[job_id] = _JobCurves(job_id, self._weight)
                self._add_curves(curves)
                self._fill_from_store(curves)
            curves.colour = colour
            self._style_curves(curves)
        self.store.watch(ids)
        self._refresh_series_names()
        self._update_controls()
        self._schedule()

    @property
    def job_ids(self) -> list[str]:
        return list(self._order)

    def shutdown(self) -> None:
        self._redraw_timer.stop()
        self._smoothing_timer.stop()
        self.store.shutdown()

    # controls --------------------------------------------------------------------------------------
    def set_series(self, name: str) -> None:
        if name not in self._series_seen:
            self._series_seen.append(name)
            self.series_box.addItem(name)
        self.series_box.setCurrentText(name)

    @property
    def series(self) -> str:
        return self._series

    def set_smoothing(self, weight: float) -> None:
        self.smoothing_slider.setValue(round(min(max(weight, 0.0), SMOOTHING_STEPS / 100) * 100))
        self._apply_smoothing()

    @property
    def smoothing(self) -> float:
        return self._weight

    def set_log_scale(self, on: bool) -> None:
        if self.log_check.isChecked() != on:
            self.log_check.setChecked(on)
            return
        self._log_y = on
        self.plot_item.setLogMode(x=False, y=on)
        self.reset_view()

    def set_x_axis(self, axis: str) -> None:
        axis = X_TIME if axis == X_TIME else X_STEP
        if axis == self._axis:
            return
        self._axis = axis
        index = self.axis_box.findData(axis)
        if index >= 0 and self.axis_box.currentIndex() != index:
            with QSignalBlocker(self.axis_box):
                self.axis_box.setCurrentIndex(index)
        pg = _pg()
        bottom = pg.DateAxisItem(orientation="bottom") if axis == X_TIME else pg.AxisItem(orientation="bottom")
        self.plot_item.setAxisItems({"bottom": bottom})
        self.plot_item.setLabel("bottom", "wall time" if axis == X_TIME else "step")
        self._apply_theme()
        self.reset_view()

    @property
    def x_axis(self) -> str:
        return self._axis

    def reset_view(self) -> None:
        """Back to following: every point in view, growing with them."""
        self._follow = True
        self._view_set = None
        self._schedule()

    @property
    def following(self) -> bool:
        return self._follow

    # exports ----------------------------------------------------------------------------------------
    def export_actions(self) -> list[QAction]:
        """Actions for a menu: each asks for a file name (non-blocking dialog) and exports."""
        actions = []
        for text, kind in (("Export chart as PNG…", "png"), ("Export chart as SVG…", "svg"),
                           ("Export metrics as CSV…", "csv")):
            action = QAction(text, self)
            action.triggered.connect(lambda _checked=False, k=kind: self.request_export(k))
            actions.append(action)
        return actions

    def request_export(self, kind: str | None = None) -> QFileDialog:
        """Open a save dialog (non-blocking: `open()`, answered by a slot); kind None offers all three."""
        filters = {"png": "PNG image (*.png)", "svg": "SVG image (*.svg)", "csv": "CSV table (*.csv)"}
        chosen = [filters[kind]] if kind in filters else list(filters.values())
        dialog = QFileDialog(self, "Export")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilters(chosen)
        dialog.setDefaultSuffix(kind or "png")
        name = self.store.job_name(self._order[0]) if self._order else "metrics"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "metrics"
        dialog.selectFile(f"{safe}.{kind or 'png'}")

        def chosen_file(path: str) -> None:
            suffix = Path(path).suffix.lower().lstrip(".")
            if suffix not in filters:
                selected = dialog.selectedNameFilter()
                suffix = next((k for k, f in filters.items() if f == selected), "png")
            {"png": self.export_png, "svg": self.export_svg, "csv": self.export_csv}[suffix](path)

        dialog.fileSelected.connect(chosen_file)
        dialog.finished.connect(lambda _result: self._dialogs.remove(dialog) if dialog in self._dialogs else None)
        self._dialogs.append(dialog)
        dialog.open()
        return dialog

    def export_png(self, path: str | os.PathLike[str]) -> bool:
        def write(temp: str) -> None:
            exporter = _pg().exporters.ImageExporter(self.plot_item)
            exporter.export(temp)
        return self._export_atomically(path, ".png", write, "chart")

    def export_svg(self, path: str | os.PathLike[str]) -> bool:
        # Qt's own SVG generator over the plot's scene: pyqtgraph 0.14's SVGExporter fails on the SVG that
        # Qt 6.11 writes ("not enough values to unpack" while re-parsing its coordinates).
        def write(temp: str) -> None:
            from PySide6.QtCore import QRect, QRectF, QSize
            from PySide6.QtGui import QPainter
            from PySide6.QtSvg import QSvgGenerator

            view = self.plot_widget
            size = view.viewport().size()
            generator = QSvgGenerator()
            generator.setFileName(temp)
            generator.setSize(QSize(size.width(), size.height()))
            generator.setViewBox(QRect(0, 0, size.width(), size.height()))
            # The axes replay cached QPictures, which scale by the device's DPI: match the screen's.
            generator.setResolution(view.logicalDpiX())
            generator.setTitle(f"{self._series} — Training Studio")
            painter = QPainter()
            if not painter.begin(generator):
                raise OSError(5, "cannot write the SVG file")
            try:
                view.scene().render(painter, QRectF(0, 0, size.width(), size.height()),
                                    view.mapToScene(view.viewport().rect()).boundingRect())
            finally:
                painter.end()
        return self._export_atomically(path, ".svg", write, "chart")

    def export_csv(self, path: str | os.PathLike[str]) -> bool:
        """The metrics of the first shown job (the selection's current job) as CSV."""
        if self._order and self.store.columns(self._order[0]) is None and self.store.shown_columns(self._order[0]):
            self.export_failed.emit("The metrics are still loading; export them in a moment.")
            return False
        columns = self.store.columns(self._order[0]) if self._order else None
        if columns is None or not len(columns):
            self.export_failed.emit("There are no metrics to export yet.")
            return False
        try:
            write_metrics_csv(path, columns)
        except MetricsExportError as error:
            self.export_failed.emit(str(error))
            return False
        self.export_finished.emit(str(path))
        return True

    def _export_atomically(self, path: str | os.PathLike[str], suffix: str, write: Any, what: str) -> bool:
        import pyqtgraph.exporters  # noqa: F401  (registers the exporters)

        self.redraw()  # what is on screen now, not a frame ago
        target = Path(path)
        temp = None
        try:
            if target.is_dir():
                raise IsADirectoryError(21, "it is a folder")
            fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
            os.close(fd)
            write(temp)
            if not os.path.getsize(temp):
                raise OSError(5, "nothing was written")
            os.replace(temp, target)
            temp = None
        except (OSError, RuntimeError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            self.export_failed.emit(f"Could not save the {what} to {target}: {reason}.")
            return False
        finally:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
        self.export_finished.emit(str(target))
        return True

    # incoming points ----------------------------------------------------------------------------------
    def _on_points(self, job_id: str, steps: np.ndarray, times: np.ndarray, values: dict[str, np.ndarray]) -> None:
        new_names = [name for name in values if name not in self._series_seen]
        if new_names:
            self._series_seen.extend(new_names)
            with QSignalBlocker(self.series_box):
                self.series_box.addItems(new_names)
        curves = self._jobs.get(job_id)
        if curves is None:
            return
        column = values.get(self._series)
        if column is not None:
            curves.data.append(steps.astype(np.float64, copy=False), times, column)
        self._schedule()

    def _on_reset(self, job_id: str) -> None:
        curves = self._jobs.get(job_id)
        if curves is not None:
            curves.data = SeriesData(self._weight)
            self._schedule()

    def _fill_from_store(self, curves: _JobCurves) -> None:
        """Load what the store already holds of this job for the chosen series (a job watched before)."""
        columns = self.store.shown_columns(curves.job_id)
        curves.data = SeriesData(self._weight)
        if columns is not None and len(columns) and self._series in columns.names:
            curves.data.append(columns.steps.astype(np.float64), columns.times, columns.column(self._series))

    def _refresh_series_names(self) -> None:
        for job_id in self._order:
            columns = self.store.shown_columns(job_id)
            if columns is not None:
                for name in columns.names:
                    if name not in self._series_seen:
                        self._series_seen.append(name)
                        with QSignalBlocker(self.series_box):
                            self.series_box.addItem(name)

    def _on_series_chosen(self, name: str) -> None:
        if not name or name == self._series:
            return
        self._series = name
        for curves in self._jobs.values():
            self._fill_from_store(curves)
        self.plot_item.setLabel("left", name)
        self.reset_view()

    def _on_smoothing_moved(self, value: int) -> None:
        self.smoothing_label.setText(f"{value / 100:.2f}")
        self._smoothing_timer.start()

    def _apply_smoothing(self) -> None:
        self._smoothing_timer.stop()
        weight = self.smoothing_slider.value() / 100
        if weight == self._weight:
            return
        self._weight = weight
        for curves in self._jobs.values():
            curves.data.set_weight(weight)
        self._schedule()

    # drawing ---------------------------------------------------------------------------------------------
    def _schedule(self) -> None:
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def _on_range_changed(self, *_args: Any) -> None:
        # While following, every redraw covers all the points already: only a zoom or pan needs the
        # visible part drawn again, at a finer level.
        if not self._follow:
            self._schedule()

    def _on_user_range(self, *_args: Any) -> None:
        self._follow = False
        self._schedule()

    def redraw(self) -> None:
        """Hand pyqtgraph what the visible range needs, for every shown job; then the empty state."""
        self._redraw_timer.stop()
        self.redraws += 1
        x_min = x_max = None
        if not self._follow:
            x_min, x_max = self.view_box.viewRange()[0]
        bounds: list[tuple[float, float, float, float]] = []
        # One min/max bucket per 1-2 pixels: the envelope's detail is all a screen can show, and stroking
        # its zigzag is the bulk of a paint.
        target = max(100, int(self.plot_widget.width()) // 2)
        skip = not self._log_y  # linear values are finite by construction; log10 of <= 0 is not
        for job_id in self._order:
            curves = self._jobs[job_id]
            (raw_x, raw_y), (smooth_x, smooth_y) = curves.data.view(self._axis, x_min, x_max, target)
            if self._log_y:
                raw_y = np.where(raw_y > 0, raw_y, np.nan)
                smooth_y = np.where(smooth_y > 0, smooth_y, np.nan)
            curves.raw_item.setData(raw_x, raw_y, skipFiniteCheck=skip, connect="finite" if not skip else "all")
            curves.smoothed_item.setData(smooth_x, smooth_y, skipFiniteCheck=skip,
                                         connect="finite" if not skip else "all")
            if self._follow and raw_x.size:
                # Following draws everything, so the envelope's extremes are the data's (a few thousand values).
                ys = raw_y[np.isfinite(raw_y)] if not skip else raw_y
                if ys.size:
                    bounds.append((float(raw_x[0]), float(raw_x[-1]), float(ys.min()), float(ys.max())))
        if self._follow and bounds:
            self._follow_range(min(b[0] for b in bounds), max(b[1] for b in bounds),
                               min(b[2] for b in bounds), max(b[3] for b in bounds))
        self._update_empty_state()

    def _follow_range(self, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> None:
        """Set the view to hold [x_lo, x_hi] × [y_lo, y_hi], changing it only when the data left it (or
        fills far less of it): then with headroom ahead on x, so the axes stay still for a while."""
        if self._log_y:
            y_lo, y_hi = math.log10(y_lo), math.log10(y_hi)
        y_pad = (y_hi - y_lo) * 0.05 or abs(y_hi) * 0.05 or 1.0
        x_span = (x_hi - x_lo) or 1.0
        current = self._view_set
        if current is not None:
            (cx_lo, cx_hi), (cy_lo, cy_hi) = current
            x_ok = cx_lo == x_lo and x_hi <= cx_hi and (cx_hi - cx_lo) <= x_span * 1.25 + 1
            y_ok = cy_lo <= y_lo and y_hi <= cy_hi and (cy_hi - cy_lo) <= (y_hi - y_lo + 2 * y_pad) * 2
            if x_ok and y_ok:
                return
        x_range = (x_lo, x_hi + x_span * 0.1 + (1 if self._axis == X_STEP else 0))
        y_range = (y_lo - y_pad, y_hi + y_pad)
        self._view_set = (x_range, y_range)
        self.view_box.setRange(xRange=x_range, yRange=y_range, padding=0)

    def _refresh_names(self) -> None:
        """Legend entries follow the jobs' names (known once the jobs table has the job)."""
        for job_id in self._order:
            curves = self._jobs[job_id]
            name = self.store.job_name(job_id)
            if curves.smoothed_item is not None and curves.smoothed_item.name() != name:
                curves.smoothed_item.opts["name"] = name
                label = self.legend.getLabel(curves.smoothed_item)
                if label is not None:
                    label.setText(name)

    def _update_empty_state(self) -> None:
        message = self.empty_message()
        if message:
            self.empty_label.setText(message)
            self.stack.setCurrentWidget(self.empty_label)
        else:
            self.stack.setCurrentWidget(self.plot_widget)

    def empty_message(self) -> str:
        """The sentence shown instead of the chart, or "" when there is something to draw."""
        if not self._order:
            return NO_JOB_TEXT
        if any(len(self._jobs[job_id].data) for job_id in self._order):
            return ""
        states = [self.store.state(job_id) for job_id in self._order]
        if len(self._order) == 1:
            state = states[0]
            if state.kind == StateKind.READY:
                return f"This job has reported no “{self._series}” values yet."
            return state.message or "No metrics yet."
        kinds = {state.kind for state in states}
        if kinds == {StateKind.UNSUPPORTED}:
            return states[0].message
        if StateKind.LOADING in kinds:
            return "Loading metrics…"
        if kinds <= {StateKind.READY}:
            return f"None of these jobs has reported “{self._series}” values yet."
        return "None of these jobs has reported metrics yet."

    # curves ----------------------------------------------------------------------------------------------
    def _add_curves(self, curves: _JobCurves) -> None:
        pg = _pg()
        curves.raw_item = pg.PlotDataItem(skipFiniteCheck=True)
        curves.smoothed_item = pg.PlotDataItem(skipFiniteCheck=True, name=self.store.job_name(curves.job_id))
        curves.raw_item.setZValue(1)
        curves.smoothed_item.setZValue(2)
        self.plot_item.addItem(curves.raw_item)
        self.plot_item.addItem(curves.smoothed_item)

    def _remove_curves(self, curves: _JobCurves) -> None:
        for item in (curves.raw_item, curves.smoothed_item):
            if item is not None:
                self.plot_item.removeItem(item)

    def _style_curves(self, curves: _JobCurves) -> None:
        pg = _pg()
        # Faint: the colour mixed into the background, opaque (alpha-blending the dense zigzag of a min/max
        # envelope costs more to paint); in compare mode, a faint curve behind another job's shows through
        # less, which is fine: the smoothed curves are what is compared.
        faint = _mix(curves.colour, self._background, RAW_ALPHA / 255)
        curves.raw_item.setPen(pg.mkPen(faint, width=1))
        curves.smoothed_item.setPen(pg.mkPen(curves.colour, width=2))

    def _apply_theme(self) -> None:
        pg = _pg()
        palette = self.palette()
        dark = _is_dark(self)
        background = QColor("#1e1e1e") if dark else QColor("#ffffff")
        self._background = background
        foreground = palette.color(QPalette.ColorRole.Text) if not dark else QColor("#d4d4d4")
        if not dark and foreground.lightness() > 128:
            foreground = QColor("#202020")
        self.plot_widget.setBackground(background)
        for name in ("left", "bottom"):
            axis = self.plot_item.getAxis(name)
            axis.setPen(pg.mkPen(foreground))
            axis.setTextPen(pg.mkPen(foreground))
        self.legend.setLabelTextColor(foreground)
        self.legend.setBrush(pg.mkBrush(QColor(background.red(), background.green(), background.blue(), 200)))
        self.cursor_line.setPen(pg.mkPen(QColor(foreground.red(), foreground.green(), foreground.blue(), 90)))
        self.plot_item.setLabel("left", self._series)
        self.plot_item.setLabel("bottom", "wall time" if self._axis == X_TIME else "step")
        for curves in self._jobs.values():
            self._style_curves(curves)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._apply_theme()
        super().changeEvent(event)

    def eventFilter(self, watched: Any, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Leave:
            self.cursor_line.setVisible(False)
            self.readout.setText(" ")
        return super().eventFilter(watched, event)

    def _update_controls(self) -> None:
        has_jobs = bool(self._order)
        for widget in (self.series_box, self.smoothing_slider, self.log_check, self.axis_box, self.reset_button,
                       self.export_button):
            widget.setEnabled(has_jobs)

    # hover -----------------------------------------------------------------------------------------------
    def _on_mouse_moved(self, scene_pos: Any) -> None:
        if not self.view_box.sceneBoundingRect().contains(scene_pos):
            self.cursor_line.setVisible(False)
            return
        x_value = self.view_box.mapSceneToView(scene_pos).x()
        self.readout.setText(self.readout_text(x_value) or " ")
        self.cursor_line.setPos(x_value)
        self.cursor_line.setVisible(True)

    def readout_text(self, x_value: float) -> str:
        """Rich text: for every shown job, its point nearest to `x_value` (step, raw, smoothed, wall time)."""
        parts = []
        for job_id in self._order:
            curves = self._jobs[job_id]
            index = curves.data.nearest(self._axis, x_value)
            if index is None:
                continue
            data = curves.data
            swatch = f"<span style='color:{curves.colour.name()}'>■</span>"
            name = self.store.job_name(job_id) if len(self._order) > 1 else ""
            parts.append(
                f"{swatch} {name + ': ' if name else ''}step {int(data.steps.view[index])} · "
                f"raw {_format_value(float(data.raw.view[index]))} · "
                f"smoothed {_format_value(float(data.smoothed.view[index]))} · "
                f"{_format_time(float(data.times.view[index]))}")
        return " &nbsp; ".join(parts)
