"""The Overview tab of the job details pane: what one job is, where it stands, and where it came from.

`JobOverview` shows the job the pane is on: name, status with its reason (a failed job's error) and its
current phase (`detail`, e.g. "loading image sizes 16/16"), progress, loss, base model, dataset (a link:
`dataset_activated` asks for it in the Datasets tab), parameters, created/started/finished, elapsed, ETA
("estimating…" while the server has none for a running job, else a local clock time and "in 12 min"), where
it runs ("Runs on", "Ran on" once finished: host or Ray node and GPUs, the whole placement in its tooltip), the
model it produced (a link: `model_activated`), which server, and the job id. All text is selectable.

The job holds ids; the base model, dataset and trained model are shown by name once `set_names()` gave it a
`record_names.RecordNames` (the store that asks the server), the id in the tooltip. Until a name is known (or
without that store) the id shows; a dataset or model the server no longer has shows as "deleted dataset <id>"
("deleted model <id>"), without a link; a completed job whose model was deleted (the server then forgets
the model's id in the job) says so.

It reads the job from the jobs store's `JobListModel` and follows it live through the model's signals
(dataChanged for that job's row, rows inserted or removed, reset), never a timer of its own: the model's
1 s tick already announces the Elapsed and ETA cells of running jobs. Labels are only set when their text
changed, so a tick costs a few string comparisons. It never calls HTTP.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract.models import TERMINAL_STATUSES, JobStatus, TrainingJob, parse_timestamp
from training_studio.ui.jobs import format as fmt
from training_studio.ui.jobs.details.record_names import BASE_MODEL, DATASET, MODEL, RecordNames
from training_studio.ui.jobs.model import JobListModel, JobRole

__all__ = ["JobOverview", "NO_JOB_TEXT", "format_moment", "format_params"]

NO_JOB_TEXT = "Select a job to see its details."
GONE_TEXT = "This job is no longer in the list."
RUNS_ON_CAPTION = "Runs on:"
RAN_ON_CAPTION = "Ran on:"  # the same row once the job finished
NOT_PLACED_TEXT = "not yet (the server places it when it starts)"
_DATASET_SCHEME = "dataset:"
_MODEL_SCHEME = "model:"
MODEL_DELETED_TEXT = "none (the model was deleted)"  # a completed training job whose model is gone
MAX_PARAM_TEXT = 200  # characters of one parameter's value shown; the rest is elided


def format_moment(text: str | None) -> str:
    """A wire timestamp as local date and time ("2026-12-04 17:20:03"); "—" when missing or unreadable."""
    moment = parse_timestamp(text)
    if moment is None:
        return fmt.NO_VALUE
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _param_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError):
            text = str(value)
    return text if len(text) <= MAX_PARAM_TEXT else text[:MAX_PARAM_TEXT - 1] + "…"


def format_params(params: dict[str, Any] | None) -> str:
    """The job's parameters, one "name = value" a line, sorted by name; "none" when there are none."""
    if not params:
        return "none"
    return "\n".join(f"{name} = {_param_value(params[name])}" for name in sorted(params, key=str))


def _no_model_text(job: TrainingJob) -> str:
    """The Trained model row of a job without a model."""
    if job.status is JobStatus.COMPLETED:
        # The server forgets a deleted model's id in the job that made it; other kinds of job make none.
        return MODEL_DELETED_TEXT if job.kind == "train" else "none"
    return "none (the job failed or was cancelled)" if job.status in TERMINAL_STATUSES else "not yet"


class _Value(QLabel):
    """A value in the overview's form: selectable, wrapping, never wider than the pane."""

    def __init__(self, parent: QWidget, name: str, *, rich: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(80)
        if rich:
            self.setTextFormat(Qt.TextFormat.RichText)
            self.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
            self.setOpenExternalLinks(False)
        else:
            self.setTextFormat(Qt.TextFormat.PlainText)
            self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                         | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.setCursor(Qt.CursorShape.IBeamCursor)
        self.plain = ""  # the value as plain text (links without markup), for tests and accessibility

    def show_text(self, text: str, plain: str | None = None) -> None:
        if text != self.text():
            self.setText(text)
        self.plain = text if plain is None else plain
        self.setAccessibleName(self.plain)


class JobOverview(QWidget):
    """The Overview tab; see the module docstring."""

    dataset_activated = Signal(str)  # dataset id: show it in the Datasets tab
    model_activated = Signal(str)    # model id: show it in the Models tab

    def __init__(self, model: JobListModel, *, server_text: Any = None, parent: QWidget | None = None,
                 find_job: Callable[[str], TrainingJob | None] | None = None) -> None:
        """`server_text`: a callable giving the "which server" line (the pane passes the store's);
        `find_job`: where a job not in `model` is looked up (the pane passes the store's `known_job`, which
        also knows the Finished view's cleared jobs)."""
        super().__init__(parent)
        self.setObjectName("jobOverview")
        self.setAccessibleName("Job overview")
        self.model = model
        self._server_text = server_text
        self._find_job = find_job
        self.job_id: str | None = None
        self.job: TrainingJob | None = None
        self.names: RecordNames | None = None

        self.empty_label = QLabel(NO_JOB_TEXT, self)
        self.empty_label.setObjectName("overviewEmpty")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)

        content = QWidget(self)
        form = QFormLayout(content)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        form.setContentsMargins(10, 8, 10, 8)
        form.setVerticalSpacing(5)
        self.name_value = _Value(content, "overviewName")
        bold = QFont(self.name_value.font())
        bold.setBold(True)
        bold.setPointSizeF(bold.pointSizeF() * 1.15)
        self.name_value.setFont(bold)
        self.status_value = _Value(content, "overviewStatus")
        self.phase_value = _Value(content, "overviewPhase")
        self.progress_value = _Value(content, "overviewProgress")
        self.loss_value = _Value(content, "overviewLoss")
        self.eta_value = _Value(content, "overviewEta")
        self.placement_value = _Value(content, "overviewPlacement")
        self.base_model_value = _Value(content, "overviewBaseModel")
        self.dataset_value = _Value(content, "overviewDataset", rich=True)
        self.params_value = _Value(content, "overviewParams")
        self.created_value = _Value(content, "overviewCreated")
        self.started_value = _Value(content, "overviewStarted")
        self.finished_value = _Value(content, "overviewFinished")
        self.elapsed_value = _Value(content, "overviewElapsed")
        self.model_value = _Value(content, "overviewModel", rich=True)
        self.server_value = _Value(content, "overviewServer")
        self.id_value = _Value(content, "overviewJobId")
        self.dataset_value.linkActivated.connect(self._on_link)
        self.model_value.linkActivated.connect(self._on_link)
        self._rows: dict[str, tuple[QLabel, _Value]] = {}
        for key, label, value in (
            ("name", "Name:", self.name_value), ("status", "Status:", self.status_value),
            ("phase", "Phase:", self.phase_value), ("progress", "Progress:", self.progress_value),
            ("loss", "Loss:", self.loss_value), ("eta", "ETA:", self.eta_value),
            ("placement", RUNS_ON_CAPTION, self.placement_value),
            ("base_model", "Base model:", self.base_model_value), ("dataset", "Dataset:", self.dataset_value),
            ("params", "Parameters:", self.params_value), ("created", "Created:", self.created_value),
            ("started", "Started:", self.started_value), ("finished", "Finished:", self.finished_value),
            ("elapsed", "Elapsed:", self.elapsed_value), ("model", "Trained model:", self.model_value),
            ("server", "Server:", self.server_value), ("id", "Job ID:", self.id_value),
        ):
            caption = QLabel(label, content)
            caption.setBuddy(value)
            form.addRow(caption, value)
            self._rows[key] = (caption, value)
        self.scroll = QScrollArea(self)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(content)

        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(self.scroll)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        model.dataChanged.connect(self._on_data_changed)
        model.rowsInserted.connect(self._on_rows_changed)
        model.rowsRemoved.connect(self._on_rows_changed)
        model.modelReset.connect(self._on_rows_changed)
        self.set_job(None)

    # public API -------------------------------------------------------------------------------
    def set_names(self, names: RecordNames | None) -> None:
        """Name the job's dataset, base model and trained model through `names` (None: show their ids)."""
        if self.names is not None:
            self.names.changed.disconnect(self._on_name_changed)
            self.names.reset.disconnect(self.refresh)
        self.names = names
        if names is not None:
            names.changed.connect(self._on_name_changed)
            names.reset.connect(self.refresh)
        self.refresh()

    def set_job(self, job_id: str | None) -> None:
        """Show the job `job_id` of the model (None: the "select a job" state)."""
        self.job_id = job_id
        self.refresh()

    def refresh(self) -> None:
        """Read the job from the model again and show it."""
        job = self._find(self.job_id) if self.job_id is not None else None
        self.job = job
        if job is None:
            self.empty_label.setText(NO_JOB_TEXT if self.job_id is None else GONE_TEXT)
            self.stack.setCurrentWidget(self.empty_label)
            return
        self._render(job)
        self.stack.setCurrentWidget(self.scroll)

    def _find(self, job_id: str) -> TrainingJob | None:
        job = self.model.job(job_id)
        if job is None and self._find_job is not None:
            job = self._find_job(job_id)
        return job

    def value_text(self, key: str) -> str:
        """The plain text shown for a field ("status", "eta", "dataset"...), for tests and tools."""
        return self._rows[key][1].plain

    def caption_text(self, key: str) -> str:
        return self._rows[key][0].text()

    def is_row_visible(self, key: str) -> bool:
        return not self._rows[key][1].isHidden()

    # reactions ---------------------------------------------------------------------------------
    def _on_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, roles: list[int]) -> None:
        if self.job_id is None:
            return
        row = self.model.row_of(self.job_id)
        if row is not None and top_left.row() <= row <= bottom_right.row():
            self.refresh()

    def _on_rows_changed(self, *args: object) -> None:
        if self.job_id is not None and (self.job is None) != (self._find(self.job_id) is None):
            self.refresh()  # our job came or went

    def _on_name_changed(self, kind: str, record_id: str) -> None:
        job = self.job
        if job is not None and record_id == {DATASET: job.dataset_id, MODEL: job.model_id,
                                             BASE_MODEL: job.base_model}.get(kind):
            self.refresh()

    def _on_link(self, link: str) -> None:
        if link.startswith(_DATASET_SCHEME):
            self.dataset_activated.emit(link[len(_DATASET_SCHEME):])
        elif link.startswith(_MODEL_SCHEME):
            self.model_activated.emit(link[len(_MODEL_SCHEME):])

    # rendering ---------------------------------------------------------------------------------
    def _set_row(self, key: str, text: str | None) -> None:
        """Show a row with `text`, or hide it when there is nothing to say (None)."""
        caption, value = self._rows[key]
        visible = text is not None
        if visible:
            value.show_text(text)
        if caption.isHidden() == visible:
            caption.setVisible(visible)
            value.setVisible(visible)

    def _set_link_row(self, key: str, scheme: str, record_id: str | None, none_text: str, kind: str = "",
                      what: str = "") -> None:
        """A link to the record `record_id`, shown by its name once known; `none_text` without a record."""
        caption, value = self._rows[key]
        known = self.names.lookup(kind, record_id) if self.names is not None and record_id else None
        if record_id and known is not None and known.deleted:
            text = f"deleted {what} {record_id}"
            value.show_text(html.escape(text), text)
            value.setToolTip(f"The server no longer has this {what}.")
        elif record_id:
            shown = known.name if known is not None and known.name else record_id
            link = f'<a href="{html.escape(scheme + record_id, quote=True)}">{html.escape(shown)}</a>'
            value.show_text(link, shown)
            tip = (f"{what.capitalize()} {record_id}. Click to show it in its tab." if shown != record_id
                   else "Click to show it in its tab.")
            if value.toolTip() != tip:
                value.setToolTip(tip)
        else:
            value.show_text(html.escape(none_text), none_text)
            value.setToolTip("")

    def _render_base_model(self, base_model: str | None) -> None:
        known = self.names.lookup(BASE_MODEL, base_model) if self.names is not None and base_model else None
        name = known.name if known is not None and known.name else None
        self._set_row("base_model", name or base_model or fmt.NO_VALUE)
        tip = f"Base model {base_model}" if name and name != base_model else ""
        value = self._rows["base_model"][1]
        if value.toolTip() != tip:
            value.setToolTip(tip)

    def _render_placement(self, job: TrainingJob, finished: bool) -> None:
        caption, value = self._rows["placement"]
        where = fmt.placement_text(job.placement)
        if not where and job.status not in (JobStatus.PENDING, JobStatus.QUEUED):
            self._set_row("placement", None)  # it never ran, or the server does not say where (an older one)
            return
        wanted = RAN_ON_CAPTION if finished else RUNS_ON_CAPTION
        if caption.text() != wanted:
            caption.setText(wanted)
        self._set_row("placement", where or NOT_PLACED_TEXT)
        details = fmt.placement_details(job.placement)
        if value.toolTip() != details:
            value.setToolTip(details)

    def _render(self, job: TrainingJob) -> None:
        now = self.model.server_now()
        offset = self.model.clock_offset()
        status = fmt.status_label(job.status)
        finished = job.status in TERMINAL_STATUSES
        row = self.model.row_of(job.id)
        if row is not None and self.model.index(row, 0).data(JobRole.IS_CANCELLING):
            status = fmt.CANCELLING_LABEL
        if job.error:
            status = f"{status}: {job.error}"
        self._set_row("name", job.name)
        self._set_row("status", status)
        self._set_row("phase", job.detail if job.detail and not finished else None)
        progress = fmt.format_progress(job.progress)
        step = fmt.format_step(job.current_step, job.total_steps)
        self._set_row("progress", f"{progress} · step {step}" if step != fmt.NO_VALUE else progress)
        self._set_row("loss", fmt.format_loss(job.current_loss))
        eta_at = parse_timestamp(job.eta_at)
        # The clock time is local: the server's moment minus the clock offset, against the local now.
        eta_local = None if eta_at is None else eta_at.timestamp() - offset
        self._set_row("eta", fmt.eta_overview_text(job.status, eta_local, now - offset)
                      if job.status is JobStatus.RUNNING else None)
        self._render_placement(job, finished)
        self._render_base_model(job.base_model)
        self._set_link_row("dataset", _DATASET_SCHEME, job.dataset_id, "none", DATASET, "dataset")
        self._set_row("params", format_params(job.params))
        self._set_row("created", format_moment(job.created_at))
        self._set_row("started", format_moment(job.started_at) if job.started_at else "not yet")
        self._set_row("finished", format_moment(job.finished_at) if finished else None)
        started = parse_timestamp(job.started_at)
        if started is None:
            elapsed = None
        else:
            ended = parse_timestamp(job.finished_at)
            end = ended.timestamp() if ended is not None else (None if finished else now)
            elapsed = None if end is None else max(0.0, end - started.timestamp())
        self._set_row("elapsed", fmt.format_elapsed(elapsed) if elapsed is not None else None)
        if job.model_id:
            self._set_link_row("model", _MODEL_SCHEME, job.model_id, "", MODEL, "model")
        else:
            self._set_link_row("model", _MODEL_SCHEME, None, _no_model_text(job))
        self._set_row("server", self._server_text() if callable(self._server_text) else None)
        self._set_row("id", job.id)

