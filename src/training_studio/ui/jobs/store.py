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
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Coroutine
from itertools import compress, count, repeat
from operator import attrgetter, eq, itemgetter, not_
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

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
from training_studio.contract.models import TERMINAL_STATUSES, JobStatus, TrainingJob
from training_studio.ui.jobs.model import JobListModel

__all__ = ["JobStore", "FailureKind", "REFRESH_INTERVAL_S", "TICK_INTERVAL_S"]

log = logging.getLogger(__name__)

REFRESH_INTERVAL_S = 5.0
TICK_INTERVAL_S = 1.0
FIRST_RETRY_S = 0.5
FINAL_STATE_BATCH = 8  # concurrent /status requests for jobs that just left the active list
_NOT_HELD: tuple[None, None] = (None, None)  # an id the last refresh did not list
STOPPED_MESSAGE = "The local server is stopped. Start it again with Server > Restart local server."


class FailureKind(str, enum.Enum):
    UNREACHABLE = "unreachable"
    AUTH = "auth"
    BAD_RESPONSE = "bad_response"
    SERVER_ERROR = "server_error"
    STOPPED = "stopped"  # the user stopped the local server from the Server menu


def _reuse_unchanged(raws: list[Any], last: dict[Any, tuple[Any, TrainingJob]],
                     parse: Callable[[Any, int], TrainingJob]
                     ) -> tuple[list[TrainingJob], dict[Any, tuple[Any, TrainingJob]]]:
    """The jobs of an active list, reusing last refresh's object wherever an item's JSON is unchanged,
    and the (id -> (JSON, job)) map to pass next time.

    Parsing only the items that changed saves most of the validation at 10,000 jobs, stops 10,000 new
    long-lived objects piling up per refresh (long full GCs), and lets the model's diff compare by
    identity. The hot path runs in C (map/compress, no Python-level loop over items). `parse` raises
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
    for position in compress(count(), map(not_, map(eq, map(itemgetter(0), held), raws))):
        jobs[position] = parse(raws[position], position)
    return jobs, dict(zip(ids, zip(raws, jobs)))


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
    jobs_changed = Signal()                  # a snapshot or a job's final state was applied
    refresh_failed = Signal(str, str)        # FailureKind value, human message
    connection_restored = Signal()           # first success after failures
    server_message = Signal(str)             # something the user should know (server restarted, replaced)
    refreshing_changed = Signal(bool)
    cancel_started = Signal(str)             # job id
    cancel_succeeded = Signal(str)
    cancel_failed = Signal(str, str)         # job id, human message
    ticked = Signal()                        # every second, for "last updated N s ago" texts

    def __init__(self, client: ApiClient, *, local: LocalServerManager | None = None,
                 model: JobListModel | None = None, refresh_interval: float = REFRESH_INTERVAL_S,
                 tick_interval: float = TICK_INTERVAL_S, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.local = local
        self.model = model if model is not None else JobListModel(self)
        self.refresh_interval = refresh_interval
        self.last_success_at: float | None = None  # time.monotonic() of the last good refresh
        self.last_failure: tuple[FailureKind, str] | None = None
        self.server_version: str = ""
        self.connected = False
        self._failures = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresh_task: asyncio.Task[Any] | None = None
        self._cancels_in_flight: set[str] = set()
        self._cancelling: set[str] = set()
        self._awaiting_final: set[str] = set()
        # The last active list: id -> (its decoded JSON, the job parsed from it), to reuse unchanged jobs.
        self._last_snapshot: dict[Any, tuple[Any, TrainingJob]] = {}
        self._stopped_by_user = False
        self._shut_down = False

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

    def start(self) -> None:
        """Connect (starting the local server if needed) and begin refreshing; returns at once."""
        self._shut_down = False
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
        self._refresh_task = self._spawn(self._refresh_cycle())

    def request_cancel(self, job_id: str) -> None:
        """Cancel a job (the view has already asked the user); ignored while that cancel is in flight."""
        if self._shut_down or job_id in self._cancels_in_flight:
            return
        # Mark it in flight now, not when the task first runs, so the action greys out at once.
        self._begin_cancel(job_id)
        self._spawn(self._send_cancel(job_id))

    def clear_finished(self) -> int:
        removed = self.model.clear_finished()
        if removed:
            self.jobs_changed.emit()
        return removed

    def reconnect(self) -> None:
        """Re-read the connection (server.json for the local server) and refresh; used after a 401."""
        if self._shut_down:
            return
        self._stopped_by_user = False
        self._spawn(self._reconnect())

    def restart_local_server(self) -> None:
        if self.local is None or self._shut_down:
            return
        self._stopped_by_user = False
        self._spawn(self._restart_local())

    def stop_local_server(self) -> None:
        if self.local is None or self._shut_down:
            return
        self._stopped_by_user = True
        self._spawn(self._stop_local())

    def shutdown(self) -> None:
        """Stop both timers and cancel every task; the app closes the client afterwards."""
        self._shut_down = True
        self._refresh_timer.stop()
        self._tick_timer.stop()
        for task in list(self._tasks):
            task.cancel()

    async def wait_idle(self) -> None:
        """Wait until every task this store started has ended (after shutdown())."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # the store's operations (coroutines) --------------------------------------------------------
    async def fetch_active_jobs(self) -> list[TrainingJob]:
        """GET the active list, apply it to the model and fetch the final state of jobs that left it."""
        raws = await self.client.list_active_jobs_raw()
        jobs, self._last_snapshot = _reuse_unchanged(raws, self._last_snapshot, self.client.parse_job)
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
        finally:
            self.refreshing_changed.emit(False)
            if not self._shut_down:
                self._refresh_timer.start(int(self._next_delay() * 1000))

    async def _refresh_once(self) -> None:
        if not self.connected:
            await self._connect()
        try:
            await self.fetch_active_jobs()
        except CannotConnect:
            if self.local is None:
                raise
            await self._recover_local()
            await self.fetch_active_jobs()
        except AuthFailed:
            # The local server may have been restarted with a new token: re-read server.json once.
            if self.local is None or not await self._token_changed():
                raise
            await self.fetch_active_jobs()
        if self.local is not None and self.local.upgrade_pending:
            if await self.local.upgrade_if_idle():
                self._use_local_info()
                await self.fetch_active_jobs()

    async def _connect(self) -> None:
        if self.local is not None:
            await self.local.connect()
            self._use_local_info()
        else:
            health = await self.client.health()
            self.server_version = health.version
            self.connected = True
            self.connection_changed.emit(self.client.base_url, self.server_version)

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
        self.connecting.emit("Reconnecting…")
        if self.is_refreshing:
            self._refresh_task.cancel()  # type: ignore[union-attr]
            await asyncio.gather(self._refresh_task, return_exceptions=True)  # type: ignore[arg-type]
        self._failures = 0
        self.request_refresh()

    async def _restart_local(self) -> None:
        assert self.local is not None
        self.connecting.emit("Restarting local server…")
        try:
            await self.local.restart()
            self._use_local_info()
        except ApiError as error:
            self._on_failure(FailureKind.UNREACHABLE, error.message)
            return
        self.server_message.emit("The local server was restarted.")
        await self._reconnect()

    async def _stop_local(self) -> None:
        assert self.local is not None
        try:
            await self.local.stop()
        except ApiError as error:
            self.server_message.emit(error.message)
            return
        self.connected = False
        self._on_failure(FailureKind.STOPPED, STOPPED_MESSAGE)

    def _on_success(self) -> None:
        was_failing = self.last_failure is not None
        self._failures = 0
        self.last_failure = None
        self.last_success_at = time.monotonic()
        if was_failing:
            log.info("connection restored (%s)", self.client.base_url)
            self.connection_restored.emit()

    def _on_failure(self, kind: FailureKind, message: str) -> None:
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
        self.ticked.emit()

    async def _quietly(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except ApiError as error:
            log.info("follow-up request failed: %s", error.message)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.error("store task failed", exc_info=error)
            self.server_message.emit(f"Unexpected error: {error}")
