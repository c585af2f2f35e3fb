"""The job details pane: tabs Overview, Chart, Logs, Samples and Checkpoints for the job(s) selected in the
jobs table.

`JobDetailsPane` arranges the five views and tells them which jobs to show (`show_jobs`): the Overview, Logs,
Samples and Checkpoints follow the table's current job; the Chart (`chart.LossChart`) shows every compared
job, the current one first, each in its colour (the same colour the table paints as a swatch in the job's
row; `colours.py`). It builds each view defensively: a view
that cannot be built (its module missing or broken) becomes a "Not available" page and the other tabs keep
working. The views fetch their own data through their own stores and only while visible; the pane never
calls HTTP. It owns the `RecordNames` store through which the Overview names the job's dataset and models.
`shutdown()` stops them all (at quit, or when the jobs panel goes away).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QTabWidget, QToolButton, QVBoxLayout, QWidget

from training_studio.ui.jobs.details.overview import JobOverview
from training_studio.ui.jobs.details.record_names import RecordNames

__all__ = ["JobDetailsPane", "ComparedJob", "NOT_AVAILABLE_TEXT", "TAB_TITLES"]

log = logging.getLogger(__name__)

NOT_AVAILABLE_TEXT = "Not available"
TAB_TITLES = ("Overview", "Chart", "Logs", "Samples", "Checkpoints")


@dataclass(frozen=True)
class ComparedJob:
    """A job the chart shows: its id, name and curve colour ("#rrggbb")."""

    job_id: str
    name: str
    colour: str


class _Unavailable(QWidget):
    """Stands in for a view that could not be built."""

    def __init__(self, what: str, reason: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName(f"{what}: {NOT_AVAILABLE_TEXT}")
        layout = QVBoxLayout(self)
        self.label = QLabel(f"{NOT_AVAILABLE_TEXT}\n\n{reason}" if reason else NOT_AVAILABLE_TEXT, self)
        self.label.setObjectName("notAvailable")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label)


def _build_view(what: str, module: str, name: str, *args: Any, parent: QWidget) -> QWidget:
    """`module.name(*args, parent)`, or a "Not available" page saying why it could not be built."""
    try:
        import importlib

        cls = getattr(importlib.import_module(module), name)
        return cls(*args, parent)
    except Exception as error:  # a broken view must not take the pane (or the jobs tab) down
        log.warning("the %s view is not available: %s", what, error, exc_info=True)
        return _Unavailable(what, f"{type(error).__name__}: {error}", parent)


class JobDetailsPane(QWidget):
    """The details pane; see the module docstring."""

    dataset_activated = Signal(str)  # from the Overview's dataset link
    model_activated = Signal(str)    # from the Overview's model link
    close_requested = Signal()       # the pane's own close button

    def __init__(self, store: Any, parent: QWidget | None = None) -> None:
        """`store`: the app's `JobStore` (the views read its model and client through their own stores)."""
        super().__init__(parent)
        self.setObjectName("jobDetailsPane")
        self.setAccessibleName("Job details")
        self.store = store
        self.current_id: str | None = None
        self.compared: tuple[ComparedJob, ...] = ()
        self._shut_down = False

        self.overview = JobOverview(store.model, server_text=lambda: server_description(store), parent=self,
                                    find_job=getattr(store, "known_job", None))
        # The Overview shows the job's dataset and models by name: this store asks the server for them.
        self.names = RecordNames(store.client, jobs=store, parent=self)
        self.overview.set_names(self.names)
        self.overview.dataset_activated.connect(self.dataset_activated)
        self.overview.model_activated.connect(self.model_activated)
        self.chart = _build_view("Chart", "training_studio.ui.jobs.details.chart", "LossChart", store, parent=self)
        self.logs = _build_view("Logs", "training_studio.ui.jobs.details.logs", "LogView", store, parent=self)
        self.samples = _build_view("Samples", "training_studio.ui.jobs.details.samples", "SamplesStrip", store,
                                   parent=self)
        self.checkpoints = _build_view("Checkpoints", "training_studio.ui.jobs.details.checkpoints",
                                       "CheckpointsView", store, parent=self)

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("jobDetailsTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.setAccessibleName("Job details tabs")
        for title, view in zip(TAB_TITLES, (self.overview, self.chart, self.logs, self.samples, self.checkpoints)):
            self.tabs.addTab(view, title)
        self.close_button = QToolButton(self)
        self.close_button.setObjectName("closeDetails")
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Hide the job details")
        self.close_button.setAccessibleName("Hide the job details")
        self.close_button.clicked.connect(self.close_requested)
        self.tabs.setCornerWidget(self.close_button, Qt.Corner.TopRightCorner)
        self.compare_label = QLabel(self)  # "Comparing 3 jobs" above the tabs, hidden otherwise
        self.compare_label.setObjectName("compareNote")
        self.compare_label.setContentsMargins(8, 2, 8, 0)
        self.compare_label.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.compare_label)
        layout.addWidget(self.tabs, 1)

    # public API -------------------------------------------------------------------------------
    def show_jobs(self, current_id: str | None, compared: Sequence[ComparedJob], *, more: int = 0) -> None:
        """Show `current_id` in the Overview, Logs, Samples and Checkpoints and `compared` in the Chart (the
        current job alone, or several jobs to compare); `more`: selected jobs left out of the comparison."""
        compared = tuple(compared)
        if current_id != self.current_id:
            self.current_id = current_id
            self.overview.set_job(current_id)
            for view in (self.logs, self.samples, self.checkpoints):
                show_job = getattr(view, "show_job", None)
                if show_job is not None:
                    show_job(current_id)
        if compared != self.compared:
            self.compared = compared
            self._show_in_chart(compared)
        if len(compared) > 1:
            text = f"Comparing {len(compared)} jobs in the chart"
            if more:
                text += f" ({more} more selected: at most {len(compared)} compare at once)"
            self.compare_label.setText(text)
            self.compare_label.show()
        else:
            self.compare_label.hide()

    def suspend(self) -> None:
        """The pane is being hidden: the chart stops fetching (the other views stop by themselves when
        hidden); the next `show_jobs` brings it back."""
        if self.compared:
            self.compared = ()
            self._show_in_chart(())

    def _show_in_chart(self, compared: Sequence[ComparedJob]) -> None:
        show = getattr(self.chart, "show_jobs", None)
        if show is None:
            return
        try:
            if len(compared) > 1:
                show([job.job_id for job in compared], {job.job_id: QColor(job.colour) for job in compared})
            else:
                show([job.job_id for job in compared])  # one job: the chart's own first colour
        except Exception:  # the chart's trouble stays in the chart tab
            log.exception("the chart could not show the compared jobs")

    def tab_titles(self) -> list[str]:
        return [self.tabs.tabText(index) for index in range(self.tabs.count())]

    def is_available(self, title: str) -> bool:
        """Whether the tab `title` holds its real view (not the "Not available" page)."""
        index = TAB_TITLES.index(title)
        return not isinstance(self.tabs.widget(index), _Unavailable)

    def shutdown(self) -> None:
        """Stop the views' timers and tasks (once)."""
        if self._shut_down:
            return
        self._shut_down = True
        for view in (self.names, self.chart, self.logs, self.samples, self.checkpoints):
            stop = getattr(view, "shutdown", None)
            if stop is not None:
                try:
                    stop()
                except Exception:
                    log.exception("stopping a details view failed")


def server_description(store: Any) -> str:
    """Which server the jobs come from, for the Overview: the local server with its data folder, or the URL."""
    url = getattr(getattr(store, "client", None), "base_url", "") or ""
    local = getattr(store, "local", None)
    if local is not None:
        folder = getattr(local, "data_dir", None)
        where = f"Local server (data folder {folder})" if folder is not None else "Local server"
        return f"{where} at {url}" if url else where
    return url or "not connected"
