"""The metrics store: fetching the metric points of the jobs the details pane shows, incrementally.

`MetricsStore` owns every /metrics request of the loss chart. The chart says which jobs it shows
(`watch([...])`: one job, or several to compare); the store fetches each one's points once
(`since_step=-1`), then only the new ones (`since_step=<last step it has>`), never the whole series again.
A fetch of a job is due when the jobs table (`JobStore.jobs_changed`, live events or polling) shows its step
past the last one fetched, or when it ends (one final fetch), and at most every `POLL_INTERVAL_S` while it
runs as a fallback (a job the table does not list, a table that polls slowly; less often while the answers
bring nothing new). One request per job at a time; another due meanwhile runs right after. A first load of a
long series (the table says more than `OVERVIEW_ABOVE` steps) starts with an overview, every k-th point
(`stride`, about `OVERVIEW_POINTS`), shown at once; the whole series follows and replaces it (`series_reset`).

Answers are read through the app's `ApiClient` (its public request plumbing: URL, token, clock, typed errors)
and decoded and parsed in a worker thread (`metric_columns.parse_points`: numpy columns), so a job with
100,000 points does not stall the GUI. New rows go out as `points_appended(job_id, steps, times, values)`
(numpy arrays; `values` maps series name -> float64 array, NaN where a row has no value); `series_reset(job_id)`
means "forget what you have of this job, it comes again from the start" (a server switch, a job watched again
from the cache). The points of recently shown jobs stay cached (`CACHE_JOBS`) so switching back is instant.

Failures are states, never exceptions: `state(job_id)` says what the chart should show when it has no points
(`MetricsState`: loading, waiting for the first point, no metrics, unsupported by this server, error), and
`state_changed(job_id)` says it changed. A server without /metrics (an old or foreign one: 404 for the route)
is "unsupported" and not asked again; a transient failure keeps the points already shown and retries with
backoff.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import httpx
from PySide6.QtCore import QObject, QTimer, Signal

from training_studio.client import ApiClient, ApiError, CannotConnect, NotFound
from training_studio.client.errors import BadResponse, RequestTimedOut
from training_studio.contract.models import TERMINAL_STATUSES, JobStatus, TrainingJob
from training_studio.ui.jobs.details.metric_columns import MetricColumns, parse_points
from training_studio.ui.tasks import TaskSet

__all__ = ["MetricsStore", "MetricsState", "StateKind", "POLL_INTERVAL_S", "CACHE_JOBS"]

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 2.0       # fallback fetch period for a running job
RETRY_MAX_S = 30.0          # backoff cap after failures
CACHE_JOBS = 8              # jobs whose points are kept after they stop being shown
FETCH_TIMEOUT_S = 30.0      # a first answer can hold a million points
OVERVIEW_ABOVE = 20_000     # a first load of more points than this starts with an overview…
OVERVIEW_POINTS = 2_000     # …of about this many (every k-th point, the server's `stride`)


class StateKind(str, enum.Enum):
    LOADING = "loading"          # first fetch in flight
    WAITING = "waiting"          # the job runs (or will) and has reported no point yet
    READY = "ready"              # has points
    EMPTY = "empty"              # the job ended without a single point
    UNSUPPORTED = "unsupported"  # the server has no metrics endpoint
    GONE = "gone"                # the server does not know the job
    ERROR = "error"              # the last fetch failed (retrying)


@dataclass(frozen=True)
class MetricsState:
    kind: StateKind
    message: str = ""


@dataclass
class _Job:
    columns: MetricColumns = field(default_factory=MetricColumns)
    fetched: bool = False           # at least one answer received
    task: asyncio.Task[Any] | None = None
    again: bool = False             # a fetch became due while one was in flight
    final: bool = False             # ended, and fetched after it ended: nothing more will come
    overview: bool = False          # `columns` holds every k-th point only, the whole series is on its way
    stopped: bool = False           # unsupported or gone: never ask again
    failures: int = 0
    quiet_fetches: int = 0          # fetches in a row that brought nothing new (slows the fallback poll)
    retry_at: float = 0.0           # time.monotonic() before which no retry
    last_fetch_at: float = 0.0
    state: MetricsState = field(default_factory=lambda: MetricsState(StateKind.LOADING, "Loading metrics…"))


def _metrics_path(job_id: str) -> str:
    from urllib.parse import quote

    return f"/api/training/jobs/{quote(job_id, safe='')}/metrics"


def _decode(body: bytes, after_step: int | None) -> MetricColumns:
    """Worker thread: JSON bytes -> columns; BadResponse for something that is not a JSON list."""
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadResponse("The server's metrics answer is not JSON.") from error
    if not isinstance(items, list):
        raise BadResponse("The server's metrics answer is not a list of points.")
    return parse_points(items, after_step=after_step)


class MetricsStore(QObject):
    """Metric points of the shown jobs, fetched incrementally; see the module docstring."""

    points_appended = Signal(str, object, object, object)  # job id, steps int64, times float64 epoch, {series: float64}
    series_reset = Signal(str)                             # job id: drop its points, they come again
    state_changed = Signal(str)                            # job id: state(job_id) changed

    def __init__(self, job_store: Any, *, poll_interval: float = POLL_INTERVAL_S,
                 parent: QObject | None = None) -> None:
        """`job_store` is the app's `JobStore` (its `client`, `model` and `jobs_changed` are used)."""
        super().__init__(parent)
        self.job_store = job_store
        self.client: ApiClient = job_store.client
        self.poll_interval = poll_interval
        self._watched: list[str] = []
        self._jobs: OrderedDict[str, _Job] = OrderedDict()  # watched + cached, least recently shown first
        self._tasks = TaskSet("metrics", lambda error: log.error("metrics task failed: %s", error))
        self._shut_down = False
        self._server_url: str | None = None  # the URL of the last connection_changed
        self._timer = QTimer(self)
        self._timer.setInterval(int(poll_interval * 1000))
        self._timer.timeout.connect(self._on_timer)
        job_store.jobs_changed.connect(self._on_jobs_changed)
        connection_changed = getattr(job_store, "connection_changed", None)
        if connection_changed is not None:
            connection_changed.connect(self._on_connection_changed)

    # queries ------------------------------------------------------------------------------------------
    @property
    def watched(self) -> list[str]:
        return list(self._watched)

    def columns(self, job_id: str) -> MetricColumns | None:
        """Every point held for the job (the CSV export writes these); None while only an overview is."""
        entry = self._jobs.get(job_id)
        return entry.columns if entry is not None and not entry.overview else None

    def shown_columns(self, job_id: str) -> MetricColumns | None:
        """What the chart shows of the job: every point, or the overview while the rest loads."""
        entry = self._jobs.get(job_id)
        return entry.columns if entry is not None else None

    def state(self, job_id: str) -> MetricsState:
        entry = self._jobs.get(job_id)
        return entry.state if entry is not None else MetricsState(StateKind.LOADING, "Loading metrics…")

    def job(self, job_id: str) -> TrainingJob | None:
        model = getattr(self.job_store, "model", None)
        return model.job(job_id) if model is not None else None

    def job_name(self, job_id: str) -> str:
        job = self.job(job_id)
        return job.name if job is not None and job.name else job_id

    def is_fetching(self, job_id: str) -> bool:
        entry = self._jobs.get(job_id)
        return entry is not None and entry.task is not None and not entry.task.done()

    # intents ------------------------------------------------------------------------------------------
    def watch(self, job_ids: list[str]) -> None:
        """Follow these jobs (the ones shown). A job followed already keeps going; one held in the cache
        is re-sent at once (`series_reset` + `points_appended` with everything held), then brought up to
        date; a new one is fetched from the start."""
        ids = list(dict.fromkeys(job_id for job_id in job_ids if job_id))
        previous = set(self._watched)
        self._watched = ids
        for job_id in ids:
            entry = self._jobs.get(job_id)
            if entry is None:
                entry = self._jobs[job_id] = _Job()
                self.state_changed.emit(job_id)
            else:
                self._jobs.move_to_end(job_id)
                if job_id not in previous:
                    self._resend(job_id, entry)
            self._fetch_if_due(job_id, force=job_id not in previous)
        self._trim_cache()
        if ids and not self._shut_down:
            self._timer.start()
        else:
            self._timer.stop()

    def refresh(self, job_id: str) -> None:
        """Fetch now what is new for the job (e.g. a Retry button)."""
        entry = self._jobs.get(job_id)
        if entry is not None:
            entry.stopped = False
            entry.retry_at = 0.0
            self._fetch_if_due(job_id, force=True)

    def shutdown(self) -> None:
        self._shut_down = True
        self._timer.stop()
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()

    # scheduling ---------------------------------------------------------------------------------------
    def _on_jobs_changed(self) -> None:
        for job_id in self._watched:
            self._fetch_if_due(job_id)

    def _on_timer(self) -> None:
        for job_id in self._watched:
            self._fetch_if_due(job_id, by_timer=True)

    def _on_connection_changed(self, url: str = "", *_args: Any) -> None:
        """Another server (or the local one restarted elsewhere): what we hold may not be its data. The
        first connection is not a change: what was fetched before it came from that same server."""
        previous, self._server_url = self._server_url, url
        if previous is None or previous == url:
            return
        for job_id in list(self._jobs):
            entry = self._jobs[job_id]
            if entry.task is not None:
                entry.task.cancel()
        self._jobs.clear()
        for job_id in self._watched:
            self._jobs[job_id] = _Job()
            self.series_reset.emit(job_id)
            self.state_changed.emit(job_id)
            self._fetch_if_due(job_id, force=True)

    def _fetch_if_due(self, job_id: str, *, force: bool = False, by_timer: bool = False) -> None:
        if self._shut_down:
            return
        entry = self._jobs.get(job_id)
        if entry is None or entry.stopped or entry.final:
            return
        now = time.monotonic()
        if entry.task is not None and not entry.task.done():
            if force or self._advanced(job_id, entry):
                entry.again = True
            return
        if entry.failures and now < entry.retry_at:
            return
        due = force or not entry.fetched or entry.failures > 0 or self._advanced(job_id, entry)
        if not due and by_timer:
            job = self.job(job_id)
            # A job the table does not list, or one it shows running: ask anyway now and then.
            # Slower while nothing comes (a job the table does not list may be long finished): up to 16×.
            interval = self.poll_interval * min(16, 2 ** max(0, entry.quiet_fetches - 1))
            due = (job is None or job.status not in TERMINAL_STATUSES) and \
                now - entry.last_fetch_at >= interval * 0.9
        if due:
            entry.task = self._tasks.spawn(self._fetch(job_id, entry))

    def _advanced(self, job_id: str, entry: _Job) -> bool:
        job = self.job(job_id)
        if job is None:
            return False
        if job.status in TERMINAL_STATUSES:
            return True  # ended: one final fetch (then `final`)
        last = entry.columns.last_step
        return job.current_step is not None and (last is None or job.current_step > last)

    # the fetch ----------------------------------------------------------------------------------------
    async def _fetch(self, job_id: str, entry: _Job) -> None:
        ended_before = self._is_terminal(job_id)
        after = entry.columns.last_step
        entry.last_fetch_at = time.monotonic()
        try:
            if after is None:
                await self._overview(job_id, entry)
            body = await self._get(job_id, -1 if after is None else after)
            new = await asyncio.get_running_loop().run_in_executor(None, _decode, body, after)
        except NotFound as error:
            if error.code == "job_not_found":
                self._set_state(job_id, entry, MetricsState(StateKind.GONE, "The server does not know this job."))
            else:
                self._set_state(job_id, entry, MetricsState(
                    StateKind.UNSUPPORTED, "This server does not provide metrics (it is older than this app)."))
            entry.stopped = True
            return
        except (ApiError, RuntimeError) as error:
            if self._shut_down:
                return  # a request cut short at quit (httpcore may raise RuntimeError then, not CancelledError)
            if not isinstance(error, ApiError):
                raise
            entry.failures += 1
            entry.retry_at = time.monotonic() + min(RETRY_MAX_S, 2.0 ** entry.failures)
            log.info("metrics of job %s: %s", job_id, error.message)
            if not len(entry.columns):
                self._set_state(job_id, entry, MetricsState(StateKind.ERROR,
                                                            f"Could not load the metrics: {error.message}"))
            return
        finally:
            entry.task = None
        if self._jobs.get(job_id) is not entry:  # forgotten meanwhile (server switch, cache trim)
            return
        entry.failures = 0
        entry.fetched = True
        if new.skipped_points:
            log.warning("metrics of job %s: %d malformed point(s) skipped", job_id, new.skipped_points)
        if entry.overview:
            # The whole series replaces the overview shown meanwhile.
            entry.overview = False
            entry.columns = MetricColumns()
            if job_id in self._watched:
                self.series_reset.emit(job_id)
        entry.quiet_fetches = 0 if len(new) else entry.quiet_fetches + 1
        if len(new):
            entry.columns.extend(new)
            if job_id in self._watched:
                self._emit_points(job_id, new)
        if ended_before:
            entry.final = True
        self._set_state(job_id, entry, self._state_after_fetch(job_id, entry))
        if entry.again:
            entry.again = False
            self._fetch_if_due(job_id, force=True)
        elif not entry.final and self._is_terminal(job_id):
            self._fetch_if_due(job_id, force=True)  # it ended while we fetched: the final fetch

    async def _overview(self, job_id: str, entry: _Job) -> None:
        """Before the first load of a long series: every k-th point (the server's `stride`), about
        OVERVIEW_POINTS of them, shown at once while the whole series (which can take the server seconds
        to send) follows. Only when the table says the job has more than OVERVIEW_ABOVE steps."""
        job = self.job(job_id)
        steps = job.current_step if job is not None else None
        if not steps or steps <= OVERVIEW_ABOVE:
            return
        stride = -(-steps // OVERVIEW_POINTS)
        body = await self._get(job_id, -1, stride)
        overview = await asyncio.get_running_loop().run_in_executor(None, _decode, body, None)
        if self._jobs.get(job_id) is not entry or not len(overview) or len(entry.columns):
            return
        entry.columns = overview
        entry.overview = True
        if job_id in self._watched:
            self._emit_points(job_id, overview)
        self._set_state(job_id, entry, MetricsState(StateKind.READY))

    async def _get(self, job_id: str, since_step: int, stride: int = 1) -> bytes:
        url, headers = self.client.prepare_request(_metrics_path(job_id), accept="application/json")
        params = {"since_step": since_step} if stride == 1 else {"since_step": since_step, "stride": stride}
        try:
            response = await self.client.http.get(url, params=params, headers=headers,
                                                  timeout=max(FETCH_TIMEOUT_S, self.client.timeout.read or 0))
        except httpx.TimeoutException as error:
            raise RequestTimedOut(f"The server at {self.client.base_url} did not answer in time.") from error
        except httpx.HTTPError as error:
            raise CannotConnect(self.client.describe_connect_failure(error)) from error
        self.client.note_response(response)
        if response.status_code >= 400:
            raise self.client.error_for(response)
        return response.content

    # helpers ------------------------------------------------------------------------------------------
    def _is_terminal(self, job_id: str) -> bool:
        job = self.job(job_id)
        return job is not None and job.status in TERMINAL_STATUSES

    def _state_after_fetch(self, job_id: str, entry: _Job) -> MetricsState:
        if len(entry.columns):
            return MetricsState(StateKind.READY)
        job = self.job(job_id)
        if job is None:
            return MetricsState(StateKind.EMPTY, "No metrics for this job.")
        if job.status == JobStatus.FAILED:
            reason = f": {job.error}" if getattr(job, "error", None) else "."
            return MetricsState(StateKind.EMPTY, f"The job failed before reporting any metrics{reason}")
        if job.status == JobStatus.CANCELLED:
            return MetricsState(StateKind.EMPTY, "The job was cancelled before reporting any metrics.")
        if job.status in TERMINAL_STATUSES:
            return MetricsState(StateKind.EMPTY, "The job reported no metrics.")
        if job.status == JobStatus.RUNNING:
            return MetricsState(StateKind.WAITING, "Waiting for the first metrics…")
        return MetricsState(StateKind.WAITING, "No metrics yet: the job has not started.")

    def _set_state(self, job_id: str, entry: _Job, state: MetricsState) -> None:
        if entry.state != state:
            entry.state = state
            self.state_changed.emit(job_id)

    def _emit_points(self, job_id: str, columns: MetricColumns) -> None:
        values = {name: columns.column(name) for name in columns.names}
        self.points_appended.emit(job_id, columns.steps, columns.times, values)

    def _resend(self, job_id: str, entry: _Job) -> None:
        self.series_reset.emit(job_id)
        if len(entry.columns):
            self._emit_points(job_id, entry.columns)
        self.state_changed.emit(job_id)

    def _trim_cache(self) -> None:
        watched = set(self._watched)
        idle = [job_id for job_id in self._jobs if job_id not in watched]
        for job_id in idle[:max(0, len(idle) - CACHE_JOBS)]:
            entry = self._jobs.pop(job_id)
            if entry.task is not None:
                entry.task.cancel()

