"""The jobs store: the one object that talks to the server for the jobs monitor, like the seed's
useTrainingStore.

`JobStore` owns the connection (the embedded local server through `LocalServerManager`, or a remote
server given by URL and token), the refresh and tick timers, every asyncio task it starts, and the
`JobListModel` it feeds. Widgets never call HTTP: they call `request_refresh()`, `request_cancel()`,
`reconnect()`… and listen to the signals, each named for the event it reports. Refreshes never overlap:
the refresh timer is single-shot and re-armed only when the previous refresh has finished, after the
normal interval on success or a backoff capped at that interval on failure. A job that leaves the active
list is fetched once through /status so its final state shows; cancels run one per job at a time.
Each refresh parses only the jobs whose JSON changed since the last one; the others keep their objects.

Finished jobs stay visible, dimmed, until the user clears them. So that a job that finished while the
window was closed is visible too, the first successful refresh after `start()` (the app's launch, or a
switch to another server) also fetches, once, the jobs that finished in the last 24 hours (at most 50,
the newest: `HISTORY_WINDOW_S`, `HISTORY_LIMIT`) and adds them as finished rows; that fetch repeats every
`FINISHED_CHECK_EVERY` refreshes, so a job that started and finished between two refreshes shows too
(finished already when first seen, it is not announced as news). "Clear finished" records,
per server, the moment it cleared through (in `AppSettings` when the store has them), and that
fetch skips the jobs that finished by then, so cleared jobs do not come back at the next launch (the Finished
filter still shows them: `finished_jobs()`, a controller of its own, ui.jobs.finished). A server
is keyed by its URL, except the embedded local server, which gets a new port at every start: it is keyed
by its data folder.

Live updates: once connected, the store follows the server's event stream (`client.events.EventStream`, one
task; it decodes and validates events on a thread of its own and hands them over in lists) and applies the
`job` events to the model coalesced per frame: events are gathered for `FRAME_MS` and applied as one batch
(`JobListModel.apply_updates`), never a reset, never a state older than the one held (per-job `revision`).
A backlog (a catch-up, a busy moment) is applied in slices of what fits in `FRAME_BUDGET_S`, one after the
other as the loop allows, so no frame waits long. While events come in storms, `ui.gc_pacing.GcPacing` keeps
the garbage collector (its full collections take 100+ ms at 10,000 jobs) from running in the middle of them.
`dataset` and `model` events are passed on (`dataset_event`, `model_event`) to the Datasets and Models stores.
While the stream is live the refresh timer only runs a cheap delta resync (`?since=` the last revision seen:
normally an empty answer); while it reconnects (jittered backoff, `Last-Event-ID`) the timer polls, with
deltas when the server supports `since` (its answers carry the revision header), and against a server without
an event stream (404) it polls as before, the whole active list. `stream_state` (off, connecting, live,
reconnecting, polling) says which, for the views; a stream down longer than `stream_grace` while the server
otherwise answers is `stream_trouble()`, for the banner. A `reset` from the server, or a `since` it no longer knows (409 `revision_unknown`), means one full
fetch. A job that starts and finishes between two refreshes still shows with its final state: through its
events, or through the next delta.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Coroutine
from itertools import compress, count, repeat
from operator import attrgetter, eq, itemgetter, ne, not_
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from training_studio.ui.tasks import TaskSet
from training_studio.client.events import (
    DatasetEvent,
    EventStream,
    HelloEvent,
    JobDeleted,
    JobEvent,
    ModelEvent,
    ResetEvent,
    StreamItem,
    StreamLost,
    StreamOpened,
    StreamUnsupported,
)
from training_studio.client import (
    ApiClient,
    ApiError,
    AuthFailed,
    CannotConnect,
    Conflict,
    LocalServerError,
    LocalServerManager,
    NotFound,
    ServerError,
)
from training_studio.contract.models import TERMINAL_STATUSES, JobStatus, TrainingJob, parse_timestamp
from training_studio.ui.gc_pacing import GcPacing
from training_studio.ui.jobs.model import JobListModel
from training_studio.ui.settings import AppSettings, shared_settings

if TYPE_CHECKING:
    from training_studio.ui.jobs.finished import FinishedJobs

__all__ = ["JobStore", "FailureKind", "StreamState", "FRAME_MS", "REFRESH_INTERVAL_S", "TICK_INTERVAL_S",
           "HISTORY_WINDOW_S", "HISTORY_LIMIT"]

log = logging.getLogger(__name__)

REFRESH_INTERVAL_S = 5.0
TICK_INTERVAL_S = 1.0
FIRST_RETRY_S = 0.5
FINAL_STATE_BATCH = 8  # concurrent /status requests for jobs that just left the active list
HISTORY_WINDOW_S = 24 * 3600.0  # finished jobs shown at connect: those that finished this recently...
HISTORY_LIMIT = 50  # ...at most this many (the newest)
# Refreshes between two repeats of that fetch while polling: a job that started and finished between two
# refreshes was never in an active list, and only this fetch shows it (server-sent events make it moot).
FINISHED_CHECK_EVERY = 6
# The order the history request names them in (the set's own order varies between runs).
_HISTORY_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
MAX_LOGGED_NAMES = 10  # job names listed in the log line about recently finished jobs
_NOT_HELD: tuple[None, None] = (None, None)  # an id the last refresh did not list
STOPPED_MESSAGE = "The local server is stopped. Start it again with Server > Restart local server."
# Jobs run on while the server is down (runner supervision): the notes say they were picked up again.
RESTARTED_NOTE = "The local server was restarted; jobs that were running keep running and were re-attached."
STARTED_NOTE = "The local server is running again; jobs that ran on without it were re-attached."
FRAME_MS = 16  # live job events are applied to the model at most once per frame (60 Hz)
FIRST_STREAM_DELAY_S = 0.05  # the first rows paint before the event stream's first connection (see _follow_stream)
FRAME_BUDGET_S = 0.008  # at most this long applying live events at a time; a backlog is applied in slices
MIN_SLICE_JOBS = 64  # ...but at least this many jobs per slice, so a backlog always drains
STREAM_GRACE_INTERVALS = 2.0  # refresh intervals a stream may stay down, the server answering, before the banner
# `jobs_changed` after live events: at most this often (leading and trailing edge). Its listeners look at the
# whole list (finished-job notifications scan every row): per frame, at 10,000 rows, that would be most of
# the GUI thread. The model itself still changes every frame.
EVENTS_CHANGED_MS = 250


class StreamState(str, enum.Enum):
    """How the store learns of changes: the views show it wherever they show the connection."""

    OFF = "off"                    # not connected yet (or shut down)
    CONNECTING = "connecting"      # opening the event stream for the first time
    LIVE = "live"                  # the event stream is up: changes arrive as they happen
    RECONNECTING = "reconnecting"  # the stream dropped; polling until it is back
    POLLING = "polling"            # the server has no event stream: polling only


class FailureKind(str, enum.Enum):
    UNREACHABLE = "unreachable"
    AUTH = "auth"
    BAD_RESPONSE = "bad_response"
    SERVER_ERROR = "server_error"
    STOPPED = "stopped"  # the user stopped the local server from the Server menu


def _reuse_unchanged(raws: list[Any], last: dict[Any, tuple[Any, TrainingJob]],
                     parse: Callable[[Any, int], TrainingJob]
                     ) -> tuple[list[TrainingJob], dict[Any, tuple[Any, TrainingJob]]]:
    """The jobs of an active list, reusing last refresh's object wherever an item is unchanged, and the
    (id -> (fingerprint, job)) map to pass next time.

    Parsing only the items that changed saves most of the validation at 10,000 jobs, stops 10,000 new
    long-lived objects piling up per refresh (long full GCs), and lets the model's diff compare by
    identity. An item is unchanged when its server `revision` is the one held (every stored change bumps
    it): the map then keeps the revision as the fingerprint, not the decoded item (10,000 dicts fewer for
    the collector to walk). Without revisions (an older server), the fingerprint is the decoded item, and an
    item is unchanged when it equals the one held. The hot path runs in C
    (map/compress, no Python-level loop over items); the store runs it on the decoding thread. `parse` raises
    BadResponse for an invalid item; so an item that is not an object, or has no (hashable) id, is left
    to it: every item is parsed and the first bad one reported, as a whole-list parse would.
    """
    try:
        ids = list(map(itemgetter("id"), raws))
        held = list(map(last.get, ids, repeat(_NOT_HELD)))
    except (TypeError, KeyError):
        jobs = list(map(parse, raws, count()))
        return jobs, dict(zip(map(attrgetter("id"), jobs), zip(raws, jobs)))
    jobs = list(map(itemgetter(1), held))
    try:
        revisions: list[Any] | None = list(map(itemgetter("revision"), raws))
    except KeyError:
        revisions = None
    fingerprints: list[Any] = raws
    if revisions is not None and None not in revisions:
        fingerprints = revisions
        changed = compress(count(), map(ne, map(itemgetter(0), held), revisions))
    else:
        changed = compress(count(), map(not_, map(eq, map(itemgetter(0), held), raws)))
    for position in changed:
        jobs[position] = parse(raws[position], position)
    return jobs, dict(zip(ids, zip(fingerprints, jobs)))


def _finished_moment(job: TrainingJob) -> float | None:
    """When a finished job ended (epoch seconds, server clock): finishedAt, else createdAt as the
    best lower-bound the server gives; None when neither can be read."""
    for text in (job.finished_at, job.created_at):
        moment = parse_timestamp(text)
        if moment is not None:
            return moment.timestamp()
    return None


def _created_moment(job: TrainingJob) -> float | None:
    moment = parse_timestamp(job.created_at)
    return None if moment is None else moment.timestamp()


def _failure_kind(error: BaseException) -> FailureKind:
    if isinstance(error, AuthFailed):
        return FailureKind.AUTH
    if isinstance(error, (CannotConnect, LocalServerError)):
        return FailureKind.UNREACHABLE
    if isinstance(error, ServerError):
        return FailureKind.SERVER_ERROR
    return FailureKind.BAD_RESPONSE


class JobStore(QObject):
    """Active jobs of one server, kept fresh; see the module docstring."""

    connecting = Signal(str)                 # human text, e.g. "Starting local server…"
    connection_changed = Signal(str, str)    # url, server version
    jobs_changed = Signal()                  # a snapshot, a delta or live events were applied (events: paced)
    refresh_failed = Signal(str, str)        # FailureKind value, human message
    connection_restored = Signal()           # first success after failures
    server_message = Signal(str)             # something the user should know
    connection_note = Signal(str)            # a remark about the connection (server restarted, replaced): the
                                             # connection banner shows it (ui.connection.ConnectionState)
    refreshing_changed = Signal(bool)
    cancel_started = Signal(str)             # job id
    cancel_succeeded = Signal(str)
    cancel_failed = Signal(str, str)         # job id, human message
    queue_update_failed = Signal(str, str)   # job id, human message (move, hold, release refused)
    ticked = Signal()                        # every second, for "last updated N s ago" texts
    stream_state_changed = Signal(str)       # StreamState value
    job_deleted = Signal(str)  # a finished job was deleted on the server (its row is gone)
    dataset_event = Signal(object)           # client.events.DatasetEvent, for the Datasets store
    model_event = Signal(object)             # client.events.ModelEvent, for the Models store
    library_resync = Signal()                # the server reset the stream: those stores should refetch

    def __init__(self, client: ApiClient, *, local: LocalServerManager | None = None,
                 model: JobListModel | None = None, refresh_interval: float = REFRESH_INTERVAL_S,
                 tick_interval: float = TICK_INTERVAL_S, settings: AppSettings | None = None,
                 history_window: float = HISTORY_WINDOW_S, history_limit: int = HISTORY_LIMIT,
                 live_updates: bool = True, stream_grace: float | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.local = local
        self.model = model if model is not None else JobListModel(self)
        # Where "Clear finished" is remembered across launches: the app's settings unless given. With
        # none (a store under test), it is remembered for this store's life only.
        self.settings = settings if settings is not None else shared_settings()
        self.history_window = history_window  # seconds
        self.history_limit = history_limit
        self.refresh_interval = refresh_interval
        self.last_success_at: float | None = None  # time.monotonic() of the last good refresh
        self.last_failure: tuple[FailureKind, str] | None = None
        self.server_version: str = ""
        self.connected = False
        self._failures = 0
        self._tasks = TaskSet("store", lambda error: self.server_message.emit(f"Unexpected error: {error}"))
        self._refresh_task: asyncio.Task[Any] | None = None
        self._cancels_in_flight: set[str] = set()
        self._cancelling: set[str] = set()
        self._awaiting_final: set[str] = set()
        # The last active list: id -> (its revision, or its decoded JSON without revisions; the job parsed
        # from it), to reuse unchanged jobs (_reuse_unchanged).
        self._last_snapshot: dict[Any, tuple[Any, TrainingJob]] = {}
        self._stopped_by_user = False
        self._shut_down = False
        # Recently finished jobs are fetched once per start() (launch, server switch): a flag, so the
        # routine refresh pays one attribute read for it.
        self._history_pending = False
        self._history_loaded_for: str | None = None  # the server_key they were fetched from
        self._until_finished_check: float = FINISHED_CHECK_EVERY  # refreshes; inf: this server has no history
        self._cleared_through: dict[str, float] = {}  # server_key -> moment, also without settings
        # The last Clear finished, for its Undo: the rows it removed and the cleared-through moment before it.
        self._last_clear: tuple[list[TrainingJob], float | None] | None = None
        self._finished: FinishedJobs | None = None  # the Jobs tab's Finished view, made on first use

        # Live updates (see the module docstring).
        self.live_updates = live_updates  # False: never open the event stream (polling only)
        self.stream_grace = stream_grace if stream_grace is not None else STREAM_GRACE_INTERVALS * refresh_interval
        self.stream_state = StreamState.OFF
        self.stream_error: str | None = None  # why the stream is down, one sentence
        self._stream: EventStream | None = None
        self._stream_opened_once = False
        self._stream_task: asyncio.Task[Any] | None = None
        self._stream_down_since: float | None = None  # time.monotonic() when it dropped
        self._events_unsupported = False  # this server answered 404 (or alike) to the event stream
        # The server's revision up to which every job change is in the model (or in _pending_jobs); None:
        # unknown, the next sync is a full fetch.
        self._revision: int | None = None
        self._revision_at_sync: int | None = None  # _revision after the last delta sync
        self._since_supported = False  # the last list answer carried the revision header
        self._resync_after = False  # sync again as soon as the refresh in flight ends
        self._pending_jobs: dict[str, TrainingJob] = {}
        self._apply_cost = 20e-6  # seconds per job applied to the model, smoothed (see _flush_events)
        self._gc_pacing = GcPacing()
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FRAME_MS)
        self._flush_timer.timeout.connect(self._flush_events)
        self._changed_timer = QTimer(self)  # paces jobs_changed after live events (EVENTS_CHANGED_MS)
        self._changed_timer.setSingleShot(True)
        self._changed_timer.setInterval(EVENTS_CHANGED_MS)
        self._changed_timer.timeout.connect(self._on_changed_timer)
        self._changed_pending = False

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.timeout.connect(self.request_refresh)
        self._tick_timer = QTimer(self)
        self._tick_timer.setInterval(int(tick_interval * 1000))
        self._tick_timer.timeout.connect(self._on_tick)

    # public API for views ------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return self.local is not None

    @property
    def is_refreshing(self) -> bool:
        return self._refresh_task is not None and not self._refresh_task.done()

    def is_cancel_in_flight(self, job_id: str) -> bool:
        return job_id in self._cancels_in_flight

    def seconds_since_success(self) -> float | None:
        return None if self.last_success_at is None else time.monotonic() - self.last_success_at

    @property
    def server_key(self) -> str:
        """Which server the rows come from, stable across launches: the embedded server's data folder
        (its URL changes with every start), else the server's URL."""
        if self.local is not None:
            return f"local:{self.local.data_dir.absolute()}"
        return self.client.base_url

    def finished_cleared_through(self) -> float | None:
        """The moment (server clock, epoch seconds) up to which this server's finished jobs were cleared."""
        key = self.server_key
        remembered = self.settings.finished_cleared_through(key) if self.settings is not None else None
        moments = [m for m in (remembered, self._cleared_through.get(key)) if m is not None]
        return max(moments) if moments else None

    def start(self) -> None:
        """Connect (starting the local server if needed) and begin refreshing; returns at once."""
        self._shut_down = False
        self._history_pending = True
        self._revision = None
        self._revision_at_sync = None
        self._since_supported = False
        self._events_unsupported = False
        self._stream_down_since = None
        self.stream_error = None
        self._set_stream_state(StreamState.OFF)
        self._tick_timer.start()
        if self.local is not None:
            self.connecting.emit("Starting local server…")
        else:
            self.connecting.emit(f"Connecting to {self.client.base_url}…")
        self.request_refresh()

    def request_refresh(self) -> None:
        """Refresh now unless a refresh is in flight (F5, Retry, the timer)."""
        if self._shut_down or self.is_refreshing:
            return
        self._refresh_timer.stop()
        self._refresh_task = self._tasks.spawn(self._refresh_cycle())

    def request_cancel(self, job_id: str) -> None:
        """Cancel a job (the view has already asked the user); ignored while that cancel is in flight."""
        if self._shut_down or job_id in self._cancels_in_flight:
            return
        # Mark it in flight now, not when the task first runs, so the action greys out at once.
        self._begin_cancel(job_id)
        self._tasks.spawn(self._send_cancel(job_id))

    def request_queue_update(self, job_id: str, **changes: Any) -> None:
        """Move a waiting job in the server's queue or change how it waits (issue 16: `move` top/up/down/
        bottom, `before_job_id`, `held`, `after_job_id`, `after_condition`, `not_before`). The new order
        comes back through the job events like any change; a refusal is `queue_update_failed`."""
        if self._shut_down:
            return
        self._tasks.spawn(self._send_queue_update(job_id, changes))

    async def _send_queue_update(self, job_id: str, changes: dict[str, Any]) -> None:
        try:
            job = await self.client.update_queue(job_id, **changes)
        except ApiError as error:
            self.queue_update_failed.emit(job_id, f"“{self._job_name(job_id)}” was not changed: {error.message}")
            return
        self._queue_job(job)  # at once, not only when its event arrives

    def request_queue_reorder(self, job_ids: list[str], before_job_id: str | None) -> None:
        """Put waiting jobs, in this order, just before the waiting job `before_job_id` (None: at the end of
        the queue), as a drag and drop in the Jobs table asks. One request per job, sent one after the other
        (A before X, then B before X gives A, B, X); the rows move when the jobs' events bring the new order.
        A refusal is `queue_update_failed`, and the jobs after it are not moved."""
        if self._shut_down or not job_ids:
            return
        self._tasks.spawn(self._send_queue_reorder(list(job_ids), before_job_id))

    async def _send_queue_reorder(self, job_ids: list[str], before_job_id: str | None) -> None:
        for job_id in job_ids:
            try:
                if before_job_id is None:
                    job = await self.client.update_queue(job_id, move="bottom")
                else:
                    job = await self.client.update_queue(job_id, before_job_id=before_job_id)
            except ApiError as error:
                self.queue_update_failed.emit(job_id, f"“{self._job_name(job_id)}” was not moved: {error.message}")
                return
            self._queue_job(job)

    def clear_finished(self) -> int:
        """Remove the finished rows, and remember for this server (across launches, given settings)
        the moment they finished by, so the next launch's fetch of recent jobs leaves them out. The
        last clear can be undone (`undo_clear_finished`) until the next one."""
        through = self._finished_rows_end()
        model = self.model
        cleared = [job for job in (model.job(job_id) for job_id in model.job_ids())
                   if job is not None and job.status in TERMINAL_STATUSES]
        before = self.finished_cleared_through()
        removed = model.clear_finished()
        if removed:
            self._last_clear = (cleared, before)
            self._remember_cleared(through)
            self.jobs_changed.emit()
        return removed

    def can_undo_clear(self) -> bool:
        return bool(self._last_clear and self._last_clear[0])

    def undo_clear_finished(self) -> int:
        """Bring back the rows of the last Clear finished (as they were) and forget that clear."""
        if not self._last_clear:
            return 0
        jobs, before = self._last_clear
        self._last_clear = None
        back = [job for job in jobs if self.model.row_of(job.id) is None]
        if back:
            self.model.apply_updates(back)
        key = self.server_key
        if before is None:
            self._cleared_through.pop(key, None)
        else:
            self._cleared_through[key] = before
        if self.settings is not None:
            try:
                self.settings.set_finished_cleared_through(key, before if before is not None else 0.0)
            except ValueError as error:
                log.warning("could not forget the clear of finished jobs: %s", error)
        self.jobs_changed.emit()
        return len(back)

    def finished_jobs(self) -> FinishedJobs:
        """The Finished view's controller (ui.jobs.finished): the server's finished jobs, cleared or not.
        Made on first use, so a session that never looks at them pays nothing."""
        if self._finished is None:
            from training_studio.ui.jobs.finished import FinishedJobs  # on use: not part of start-up

            self._finished = FinishedJobs(self)
        return self._finished

    def known_job(self, job_id: str) -> TrainingJob | None:
        """The job as this store knows it: its list's row, else the Finished view's (a cleared job shown
        there, ui.jobs.finished); None if neither holds it."""
        job = self.model.job(job_id)
        if job is None and self._finished is not None:
            job = self._finished.model.job(job_id)
        return job

    def reconnect(self) -> None:
        """Re-read the connection (server.json for the local server) and refresh; used after a 401."""
        if self._shut_down:
            return
        self._stopped_by_user = False
        self._tasks.spawn(self._reconnect())

    def restart_local_server(self) -> None:
        if self.local is None or self._shut_down:
            return
        self._stopped_by_user = False
        self._tasks.spawn(self._restart_local("Restarting local server…", RESTARTED_NOTE))

    def start_local_server(self) -> None:
        """Start the local server the user stopped (it is started the way a restart starts it)."""
        if self.local is None or self._shut_down:
            return
        self._stopped_by_user = False
        self._tasks.spawn(self._restart_local("Starting local server…", STARTED_NOTE))

    def stop_local_server(self) -> None:
        if self.local is None or self._shut_down:
            return
        self._stopped_by_user = True
        self._tasks.spawn(self._stop_local())

    def shutdown(self) -> None:
        """Stop both timers and cancel every task; the app closes the client afterwards."""
        self._shut_down = True
        self._refresh_timer.stop()
        self._tick_timer.stop()
        self._flush_timer.stop()
        self._changed_timer.stop()
        self._pending_jobs.clear()
        self._gc_pacing.release()
        self._stop_stream()
        self._tasks.cancel_all()
        if self._finished is not None:
            self._finished.shutdown()

    async def wait_idle(self) -> None:
        """Wait until every task this store started has ended (after shutdown())."""
        await self._tasks.wait_idle()
        if self._finished is not None:
            await self._finished.wait_idle()

    # the store's operations (coroutines) --------------------------------------------------------
    def _reuse_step(self) -> Callable[[list[Any]], tuple[list[TrainingJob], dict[Any, tuple[Any, TrainingJob]]]]:
        """`_reuse_unchanged` against the last active list, for the client to run on its decoding thread:
        at 10,000 jobs decoding, comparing and validating the answer cost tens of milliseconds, none of
        them on the GUI thread, which receives the jobs ready for the model. (The map it reads is replaced,
        never changed in place, and refreshes never overlap.)"""
        last, parse = self._last_snapshot, self.client.parse_job
        return lambda raws: _reuse_unchanged(raws, last, parse)

    async def fetch_active_jobs(self) -> list[TrainingJob]:
        """GET the active list, apply it to the model and fetch the final state of jobs that left it."""
        answer = await self.client.active_jobs(decode_in_thread=True, prepare=self._reuse_step())
        jobs, self._last_snapshot = answer.prepared
        self._since_supported = answer.revision is not None
        self._revision = answer.revision
        self._note_clock()
        gone = self.model.apply_active_snapshot(jobs)
        # A handful of cancels at most, against up to 10,000 jobs: look the cancelling ones up.
        for job_id in list(self._cancelling):
            entry = self._last_snapshot.get(job_id)
            if entry is not None and entry[1].status in TERMINAL_STATUSES:
                self._set_cancelling(job_id, False)
        self._awaiting_final.update(gone)
        await self._fetch_final_states()
        self.jobs_changed.emit()
        return jobs

    async def fetch_changed_jobs(self, since: int) -> list[TrainingJob]:
        """GET only the jobs changed after revision `since` (any status: those that finished come with
        their final state) and apply them; Conflict `revision_unknown` when the server does not know it."""
        # A delta's items are validated on the decoding thread too (those equal to the last list's reuse its
        # jobs); usually it is small and decoded in place (DECODE_IN_THREAD_MIN_BYTES).
        answer = await self.client.active_jobs(since, decode_in_thread=True, prepare=self._reuse_step())
        jobs, snapshot = answer.prepared
        if answer.revision is None:  # the server no longer has revisions: this is the whole active list
            self._since_supported = False
            self._revision = None
            self._last_snapshot = snapshot
            self._note_clock()
            self._awaiting_final.update(self.model.apply_active_snapshot(jobs))
            await self._fetch_final_states()
            self.jobs_changed.emit()
            return jobs
        self._note_clock()
        self.model.apply_updates(jobs)
        self._after_applied(jobs)
        if self._revision is not None:  # (None: a reset came meanwhile; the next sync is a full one)
            self._revision = max(self._revision, answer.revision)
        if self._awaiting_final:
            await self._fetch_final_states()
        self.jobs_changed.emit()
        return jobs

    async def sync_jobs(self) -> None:
        """Bring the model up to date: a delta since the last revision when the server supports it (the
        cheap resync of live updates, or polling with deltas), else the whole active list."""
        if self._since_supported and self._revision is not None:
            if self.stream_state is StreamState.LIVE and self._revision_at_sync is not None \
                    and self._revision != self._revision_at_sync:
                # The stream delivered changes since the last sync, so it is working: a delta now would only
                # re-fetch what is still on its way (megabytes in an update storm, parsed on this thread).
                # Only check that the server still answers.
                self._revision_at_sync = self._revision
                await self.client.health()
                return
            try:
                await self.fetch_changed_jobs(self._revision)
                self._revision_at_sync = self._revision
                return
            except Conflict as error:
                if error.code != "revision_unknown":
                    raise
                log.info("the server no longer knows revision %s: fetching every active job", self._revision)
                self._revision = None
        await self.fetch_active_jobs()

    async def load_recent_finished(self) -> list[TrainingJob]:
        """Fetch the jobs that finished recently (see the module docstring) and add those the model
        does not hold as finished rows, in createdAt order; returns the jobs added. Rows already held
        (active ones included) are left as they are."""
        key = self.server_key
        jobs = await self.client.list_jobs(_HISTORY_STATUSES, limit=self.history_limit)
        self._history_loaded_for = key
        self._note_clock()
        since = self.model.server_now() - self.history_window
        cleared = self.finished_cleared_through()  # read after the await: a clear meanwhile counts
        if cleared is not None:
            since = max(since, cleared)
        recent: list[tuple[float, TrainingJob]] = []
        for job in jobs:
            moment = _finished_moment(job)
            # A server that ignores the status filter must not slip active jobs in as history.
            if job.status in TERMINAL_STATUSES and moment is not None and moment > since \
                    and self.model.row_of(job.id) is None:
                recent.append((moment, job))
        # The model places each row by createdAt; adding them in that order keeps ties in order too.
        keyed = [(moment if (created := _created_moment(job)) is None else created, job) for moment, job in recent]
        added = [job for _key, job in sorted(keyed, key=itemgetter(0))]
        for job in added:
            self.model.update_job(job)
        if added:
            names = ", ".join(f"“{job.name}”" for job in added[-MAX_LOGGED_NAMES:])
            more = len(added) - MAX_LOGGED_NAMES
            log.info("showing %d recently finished job(s) of %s: %s%s", len(added), self.client.base_url,
                     names, f" and {more} more" if more > 0 else "")
            self.jobs_changed.emit()
        return added

    async def _load_history_once(self) -> None:
        """load_recent_finished() for the refresh cycle: its failure never fails the refresh. A lost
        connection tries again on the next refresh; a server without history is not asked again."""
        try:
            await self.load_recent_finished()
        except (CannotConnect, AuthFailed, LocalServerError) as error:
            log.info("recently finished jobs not fetched yet: %s", error.message)
            return
        except ApiError as error:
            log.info("no recently finished jobs from %s: %s", self.client.base_url, error.message)
            self._history_loaded_for = self.server_key
            self._history_pending = False
            self._until_finished_check = float("inf")
            return
        except Exception:  # a bug here must not fail every refresh from now on
            log.exception("fetching recently finished jobs failed")
        self._history_pending = False
        self._until_finished_check = FINISHED_CHECK_EVERY

    def _finished_rows_end(self) -> float:
        """The latest moment a finished row of the model ended (the server's clock); the server's
        current time if none says. Server timestamps, not the local clock: a skewed local clock must
        neither hide jobs that finished after the clear nor bring cleared ones back."""
        model = self.model
        ends = [_finished_moment(job) for job in map(model.job_at, range(model.rowCount()))
                if job is not None and job.status in TERMINAL_STATUSES]
        known = [moment for moment in ends if moment is not None]
        return max(known) if known else model.server_now()

    def _remember_cleared(self, through: float) -> None:
        key = self.server_key
        earlier = self.finished_cleared_through()
        if earlier is not None and earlier >= through:
            return
        self._cleared_through[key] = through
        if self.settings is not None:
            try:
                self.settings.set_finished_cleared_through(key, through)
            except ValueError as error:
                log.warning("could not remember the clear of finished jobs: %s", error)

    async def _fetch_final_states(self) -> None:
        """/status for each job that left the active list, a few at a time. A job whose fetch fails is
        tried again on the next refresh; only a lost connection or token fails the refresh itself."""
        pending = list(self._awaiting_final)
        for start in range(0, len(pending), FINAL_STATE_BATCH):
            batch = pending[start:start + FINAL_STATE_BATCH]
            results = await asyncio.gather(*(self.poll_job_status(job_id) for job_id in batch),
                                           return_exceptions=True)
            for job_id, result in zip(batch, results):
                if isinstance(result, (CannotConnect, AuthFailed)):
                    raise result
                if isinstance(result, ApiError):
                    log.info("final state of %s not fetched yet: %s", job_id, result.message)
                elif isinstance(result, BaseException):
                    raise result

    async def poll_job_status(self, job_id: str) -> TrainingJob | None:
        """Fetch one job's state into the model; None (and the row removed) when the server forgot it."""
        try:
            job = await self.client.job_status(job_id)
        except NotFound:
            self._awaiting_final.discard(job_id)
            self._set_cancelling(job_id, False)
            self.model.remove_job(job_id)
            return None
        self._note_clock()
        self.model.update_job(job)
        if job.status not in (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING):
            self._awaiting_final.discard(job_id)
            self._set_cancelling(job_id, False)
        return job

    async def cancel_job(self, job_id: str) -> bool:
        """Cancel one job; the row reads "Cancelling…" until the server reports it cancelled."""
        if job_id in self._cancels_in_flight:
            return False
        self._begin_cancel(job_id)
        return await self._send_cancel(job_id)

    def _begin_cancel(self, job_id: str) -> None:
        self._cancels_in_flight.add(job_id)
        self._set_cancelling(job_id, True)
        self.cancel_started.emit(job_id)

    async def _send_cancel(self, job_id: str) -> bool:
        failure: str | None = None
        finished_already = False
        try:
            await self.client.cancel_job(job_id)
        except asyncio.CancelledError:
            self._cancels_in_flight.discard(job_id)
            raise
        except ApiError as error:
            failure = error.message
            finished_already = isinstance(error, Conflict)
        except Exception as error:  # a bug must not leave the row stuck in "Cancelling…"
            log.exception("cancel of %s failed", job_id)
            failure = f"unexpected error ({type(error).__name__})."
        # Out of flight before anyone hears about it, so views re-enable the action on the signal.
        self._cancels_in_flight.discard(job_id)
        if failure is not None:
            self._set_cancelling(job_id, False)
            self.cancel_failed.emit(job_id, f"Could not cancel “{self._job_name(job_id)}”: {failure}")
            if finished_already:  # 409 job_finished: show the state it finished in
                await self._quietly(self.poll_job_status(job_id))
            return False
        self.cancel_succeeded.emit(job_id)
        await self._quietly(self.poll_job_status(job_id))
        self.jobs_changed.emit()
        return True

    # internals -----------------------------------------------------------------------------------
    async def _refresh_cycle(self) -> None:
        self.refreshing_changed.emit(True)
        try:
            if self._stopped_by_user:
                self._on_failure(FailureKind.STOPPED, STOPPED_MESSAGE)
                return
            await self._refresh_once()
        except asyncio.CancelledError:
            raise
        except ApiError as error:
            self._on_failure(_failure_kind(error), error.message)
        except Exception as error:
            log.exception("refresh failed")
            self._on_failure(FailureKind.BAD_RESPONSE, f"Unexpected error while refreshing ({type(error).__name__}).")
        else:
            self._on_success()
            self._ensure_stream()
            # Within the cycle, after the success is recorded: the store's requests stay one at a time.
            self._until_finished_check -= 1
            if self._history_pending or self._until_finished_check <= 0:
                await self._load_history_once()
        finally:
            self.refreshing_changed.emit(False)
            if not self._shut_down:
                again, self._resync_after = self._resync_after, False
                self._refresh_timer.start(0 if again else int(self._next_delay() * 1000))

    async def _refresh_once(self) -> None:
        if not self.connected:
            await self._connect()
        try:
            await self.sync_jobs()
        except CannotConnect:
            if self.local is None:
                raise
            await self._recover_local()
            await self.sync_jobs()
        except AuthFailed:
            # The local server may have been restarted with a new token: re-read server.json once.
            if self.local is None or not await self._token_changed():
                raise
            await self.sync_jobs()
        if self.local is not None and self.local.upgrade_pending:
            if await self.local.upgrade_if_idle():
                self._use_local_info()
                await self.sync_jobs()

    async def _connect(self) -> None:
        if self.local is not None:
            await self.local.connect()
            self._use_local_info()
        else:
            health = await self.client.health()
            self.server_version = health.version
            self.connected = True
            self.connection_changed.emit(self.client.base_url, self.server_version)
        log.info("connected to %s (server %s)", self.client.base_url, self.server_version or "version unknown")
        if self._history_loaded_for is not None and self._history_loaded_for != self.server_key:
            self._history_pending = True  # another server now answers: its own recent jobs

    def _use_local_info(self) -> None:
        assert self.local is not None
        info = self.local.info
        if info is None:
            raise LocalServerError("The local server is not running.")
        changed = (info.url, info.token) != (self.client.base_url, self.client.token)
        self.client.set_connection(info.url, info.token)
        self.server_version = info.version
        self.connected = True
        if changed:
            self._events_unsupported = False  # another server process: ask it for its stream too
            if self._stream is not None:
                self._stream.reconnect_now()
            self.connection_changed.emit(info.url, info.version)

    async def _recover_local(self) -> None:
        assert self.local is not None
        await self.local.recover()
        self._use_local_info()

    async def _token_changed(self) -> bool:
        assert self.local is not None
        before = self.client.token
        await self.local.connect()
        self._use_local_info()
        return self.client.token != before

    async def _reconnect(self) -> None:
        self.connected = False
        self._events_unsupported = False  # the server may have been upgraded meanwhile
        self._restart_stream_grace()
        if self._stream is not None:
            self._stream.reconnect_now()
        self.connecting.emit("Reconnecting…")
        if self.is_refreshing:
            self._refresh_task.cancel()  # type: ignore[union-attr]
            await asyncio.gather(self._refresh_task, return_exceptions=True)  # type: ignore[arg-type]
        self._failures = 0
        self.request_refresh()

    async def _restart_local(self, activity: str, note: str) -> None:
        assert self.local is not None
        self.connecting.emit(activity)
        try:
            await self.local.restart()
            self._use_local_info()
        except ApiError as error:
            self._on_failure(FailureKind.UNREACHABLE, error.message)
            return
        self.connection_note.emit(note)
        await self._reconnect()

    async def _stop_local(self) -> None:
        assert self.local is not None
        try:
            await self.local.stop()
        except ApiError as error:
            self.server_message.emit(error.message)
            return
        self.connected = False
        self._stop_stream()  # nothing to reconnect to until the user starts it again
        self._on_failure(FailureKind.STOPPED, STOPPED_MESSAGE)

    def _on_success(self) -> None:
        was_failing = self.last_failure is not None
        self._failures = 0
        self.last_failure = None
        self.last_success_at = time.monotonic()
        if was_failing:
            log.info("connection restored (%s)", self.client.base_url)
            self._restart_stream_grace()
            if self._stream is not None:
                self._stream.reconnect_now()  # the server answers again: no need to wait out the backoff
            self.connection_restored.emit()

    def _on_failure(self, kind: FailureKind, message: str) -> None:
        if self.last_failure is None and kind in (FailureKind.UNREACHABLE, FailureKind.AUTH, FailureKind.STOPPED):
            if self.last_success_at is None:
                log.info("not connected (%s): %s", kind.value, message)
            else:
                log.info("connection lost (%s, %s): %s", self.client.base_url, kind.value, message)
        log.info("refresh failed (%s): %s", kind.value, message)
        self._failures += 1
        self.last_failure = (kind, message)
        if kind in (FailureKind.UNREACHABLE, FailureKind.AUTH, FailureKind.STOPPED):
            self.connected = False
        self.refresh_failed.emit(kind.value, message)

    def _next_delay(self) -> float:
        if self._failures == 0:
            return self.refresh_interval
        return min(self.refresh_interval, FIRST_RETRY_S * 2 ** (self._failures - 1))

    def _note_clock(self) -> None:
        if self.client.clock_offset is not None:
            self.model.set_clock_offset(self.client.clock_offset)

    def _set_cancelling(self, job_id: str, cancelling: bool) -> None:
        if cancelling:
            self._cancelling.add(job_id)
        else:
            self._cancelling.discard(job_id)
        if self.model.row_of(job_id) is not None:
            self.model.set_cancelling(job_id, cancelling)

    def _job_name(self, job_id: str) -> str:
        row = self.model.row_of(job_id)
        job = self.model.job_at(row) if row is not None else None
        return job.name if job is not None else job_id

    def _on_tick(self) -> None:
        self.model.tick()
        self._gc_pacing.tick()
        self.ticked.emit()

    # live updates -----------------------------------------------------------------------------------
    def stream_trouble(self) -> str | None:
        """The banner's sentence when live updates have been down for longer than `stream_grace` while
        the server otherwise answers (a failing refresh has its own banner); None otherwise."""
        if self.stream_state is not StreamState.RECONNECTING or self._stream_down_since is None:
            return None
        if time.monotonic() - self._stream_down_since < self.stream_grace:
            return None
        why = self.stream_error or "The event stream closed."
        return (f"Live updates are interrupted: {why} Reconnecting automatically; meanwhile the list is "
                f"refreshed every {self.refresh_interval:g} s.")

    def _restart_stream_grace(self) -> None:
        """The server answers again (or is connected to anew): live updates get their grace from now before
        the banner calls them interrupted; while the server did not answer, its own banner said so."""
        if self._stream_down_since is not None:
            self._stream_down_since = time.monotonic()

    def reconnect_stream(self) -> None:
        """Try the event stream again now (the banner's Retry), and refresh meanwhile."""
        if self._shut_down:
            return
        if self._stream is not None:
            self._stream.reconnect_now()
        else:
            self._events_unsupported = False
            self._ensure_stream()
        self.request_refresh()

    def _set_stream_state(self, state: StreamState) -> None:
        if state is not self.stream_state:
            self.stream_state = state
            self.stream_state_changed.emit(state.value)

    def _stop_stream(self) -> None:
        if self._stream_task is not None:
            self._stream_task.cancel()
        self._stream = None
        self._stream_task = None
        self._stream_down_since = None
        self.stream_error = None
        self._set_stream_state(StreamState.OFF)

    def _ensure_stream(self) -> None:
        """Follow the server's event stream from the revision just fetched, unless already doing so."""
        if self._shut_down or not self.live_updates or self._events_unsupported or self._stream_task is not None:
            return
        stream = self._stream = EventStream(self.client, last_event_id=self._revision)
        self._set_stream_state(StreamState.CONNECTING)
        first = not self._stream_opened_once
        self._stream_opened_once = True
        self._stream_task = self._tasks.spawn(self._follow_stream(stream, first=first))

    async def _follow_stream(self, stream: EventStream, first: bool = False) -> None:
        try:
            if first:
                # The first rows were just applied: let them paint before opening the stream, whose first
                # connection loads the async network stack (tens of ms) on this thread. Nothing is missed:
                # the stream starts from the revision those rows were fetched at.
                await asyncio.sleep(FIRST_STREAM_DELAY_S)
                if self._stream is not stream:
                    return
            # Lists of items: everything the stream's decoder thread finished since the last list (in a
            # storm, dozens of jobs already validated off this thread), queued for the next frame at once.
            async for batch in stream.run_batches():
                if self._stream is not stream:
                    return  # shut down or replaced meanwhile
                pending = self._pending_jobs
                changes = False
                for item in batch:
                    if item.__class__ is JobEvent:
                        job = item.job  # type: ignore[union-attr]
                        held = pending.get(job.id)
                        if held is None or held.revision is None or job.revision is None \
                                or job.revision >= held.revision:
                            pending[job.id] = job
                        changes = True
                    else:
                        self._on_stream_item(item)
                        changes = changes or isinstance(item, (DatasetEvent, ModelEvent, JobDeleted))
                if pending and not self._flush_timer.isActive():
                    self._flush_timer.start(FRAME_MS)
                # The stream's cursor (an event's id, not its entity's revision: the server may hold a
                # trailing event back and send later ones with a lower id) is how far changes are known.
                cursor = stream.last_event_id
                if changes and self._revision is not None and cursor is not None and cursor > self._revision:
                    self._revision = cursor
        finally:
            if self._stream is stream:
                self._stream = None
                self._stream_task = None

    def _on_stream_item(self, item: StreamItem) -> None:
        if isinstance(item, JobEvent):
            self._queue_job(item.job)
        elif isinstance(item, JobDeleted):
            self._pending_jobs.pop(item.job_id, None)
            self.model.remove_job(item.job_id)
            self.job_deleted.emit(item.job_id)
        elif isinstance(item, DatasetEvent):
            self.dataset_event.emit(item)
        elif isinstance(item, ModelEvent):
            self.model_event.emit(item)
        elif isinstance(item, StreamOpened):
            log.info("live updates from %s%s", self.client.base_url,
                     "" if item.resumed_from is None else f" (resuming after revision {item.resumed_from})")
            self.stream_error = None
            self._stream_down_since = None
            self._set_stream_state(StreamState.LIVE)
            if self.last_failure is not None:
                self._resync_soon()  # the server is back: clear the failure now, not at the next interval
        elif isinstance(item, HelloEvent):
            # A stream started afresh replays nothing: close the gap since the last fetch.
            self._resync_soon()
        elif isinstance(item, ResetEvent):
            log.info("live updates from %s reset (%s): fetching everything again", self.client.base_url,
                     item.reason)
            self._revision = None
            self.library_resync.emit()
            self._resync_soon()
        elif isinstance(item, StreamLost):
            first_drop = self.stream_state is StreamState.LIVE
            if first_drop:
                log.info("live updates from %s interrupted: %s", self.client.base_url, item.error.message)
            self.stream_error = item.error.message
            if self._stream_down_since is None:
                self._stream_down_since = time.monotonic()
            self._set_stream_state(StreamState.RECONNECTING)
            # Check the server at once when it may be gone (a remote one: the local server's recovery, which
            # may start a new server, stays on the refresh schedule), or when the token may have changed.
            if isinstance(item.error, AuthFailed) or (first_drop and self.local is None):
                self._resync_soon()
        elif isinstance(item, StreamUnsupported):
            log.info("%s has no event stream (%s): polling every %g s", self.client.base_url,
                     item.error.message, self.refresh_interval)
            self._events_unsupported = True
            self.stream_error = None
            self._stream_down_since = None
            self._set_stream_state(StreamState.POLLING)

    def _resync_soon(self) -> None:
        """A sync now, or right after the one in flight (whose answer may predate what we just learnt)."""
        if self.is_refreshing:
            self._resync_after = True
        else:
            self.request_refresh()

    def _queue_job(self, job: TrainingJob) -> None:
        pending = self._pending_jobs
        held = pending.get(job.id)
        if held is None or held.revision is None or job.revision is None or job.revision >= held.revision:
            pending[job.id] = job
        if not self._flush_timer.isActive():
            self._flush_timer.start(FRAME_MS)

    def _flush_events(self) -> None:
        """Apply the job events of the last frame as one batch, or as much of it as fits in
        `FRAME_BUDGET_S` (a backlog, e.g. after a catch-up: the rest follows as soon as the loop has
        handled what else is waiting, so no frame is held up for long)."""
        pending = self._pending_jobs
        if not pending or self._shut_down:
            return
        fits = max(MIN_SLICE_JOBS, int(FRAME_BUDGET_S / self._apply_cost))
        if len(pending) <= fits:
            jobs = list(pending.values())
            pending.clear()
        else:
            entries = list(pending.items())
            jobs = [job for _id, job in entries[:fits]]
            self._pending_jobs = dict(entries[fits:])
            self._flush_timer.start(0)
        started = time.perf_counter()
        self.model.apply_updates(jobs)
        self._after_applied(jobs)
        # Seconds per job, smoothed: how many fit in the next frame's budget on this machine, as loaded now.
        self._apply_cost = max(1e-6, 0.7 * self._apply_cost + 0.3 * (time.perf_counter() - started) / len(jobs))
        self._gc_pacing.applied(len(jobs))
        if self._changed_timer.isActive():
            self._changed_pending = True
        else:
            self.jobs_changed.emit()
            self._changed_timer.start()

    def _on_changed_timer(self) -> None:
        if self._changed_pending and not self._shut_down:
            self._changed_pending = False
            self.jobs_changed.emit()
            self._changed_timer.start()

    def _after_applied(self, jobs: list[TrainingJob]) -> None:
        """Bookkeeping after jobs' fresh states reached the model outside a full snapshot."""
        if not self._awaiting_final and not self._cancelling:
            return  # the usual case, in a storm too: nothing waits for a job to finish
        for job in jobs:
            if job.status in TERMINAL_STATUSES:
                self._awaiting_final.discard(job.id)
                if job.id in self._cancelling:
                    self._set_cancelling(job.id, False)

    async def _quietly(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except ApiError as error:
            log.info("follow-up request failed: %s", error.message)

