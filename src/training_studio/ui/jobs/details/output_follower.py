"""Following the selected job's outputs: what the Samples and Checkpoints stores share.

`OutputFollower` is the base of a store that lists one kind of file a job's trainer writes as it trains. It
owns which job is shown, the paced listing loop (while the job is active and the view is shown: every
`interval` seconds, sooner when the jobs store reports the job's status or step changing, never more often
than `min_gap`; a failed listing backs off up to `MAX_BACKOFF_S`; a finished job is listed once more and then
no longer polled), and the states it says (`state_changed`: no job, loading, empty, showing, unavailable)
and listing errors (`error`, "" once the listing works again; the rows shown stay). A subclass says which
endpoint it lists (`_list`), what its words are (the class attributes below), holds a `model` with
`apply_listing(files)` and announces rows added (`_rows_added`).
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any, ClassVar

from PySide6.QtCore import QObject, Signal

from training_studio.client import ApiClient, ApiError, NotFound
from training_studio.contract.models import JobOutputFile
from training_studio.ui.jobs.details.job_state import job_is_active, wait_for_wake
from training_studio.ui.tasks import TaskSet

__all__ = ["MAX_BACKOFF_S", "OutputFollower"]

MAX_BACKOFF_S = 10.0


class OutputFollower(QObject):
    """One job's listing of one kind of output; see the module docstring."""

    state_changed = Signal(str, str)  # State value, human text
    error = Signal(str)               # human text; "" once the listing works again

    # What a subclass says. `State` is its states enum (NO_JOB, LOADING, EMPTY, SHOWING, UNAVAILABLE).
    State: ClassVar[Any]
    NO_JOB_TEXT: ClassVar[str]        # no job selected
    LOADING_TEXT: ClassVar[str]       # the first listing is on its way
    EMPTY_RUNNING_TEXT: ClassVar[str]   # nothing listed yet, the job still runs
    EMPTY_FINISHED_TEXT: ClassVar[str]  # nothing listed and the job has ended
    UNLISTED_TEXT: ClassVar[str]      # a plain 404: this server has no such listing
    LIST_ERROR_TEXT: ClassVar[str]    # "Could not list the …", before ": <server message>"

    def __init__(self, client: ApiClient, *, jobs: Any, interval: float, min_gap: float, task_name: str,
                 unexpected_text: str, parent: QObject | None = None) -> None:
        """`unexpected_text`: what `error` says of a bug in a task, before ": <error> (details in the app
        log)."""
        super().__init__(parent)
        self.client = client
        self.jobs = jobs
        self.interval = interval
        self.min_gap = min_gap
        self.model: Any = None  # the subclass's
        self.job_id: str | None = None
        self.state = self.State.NO_JOB
        self._generation = 0
        self._active = False
        self._shut_down = False
        self._wake = asyncio.Event()
        self._last_progress: tuple[Any, ...] | None = None
        self._tasks = TaskSet(task_name, lambda error: self.error.emit(
            f"{unexpected_text}: {error} (details in the app log)."))
        self._poll_task: asyncio.Task[Any] | None = None
        if jobs is not None:
            jobs.jobs_changed.connect(self._on_jobs_changed)

    # intents -------------------------------------------------------------------------------------------
    def show_job(self, job_id: str | None) -> None:
        if job_id == self.job_id or self._shut_down:
            return
        self._generation += 1
        self.job_id = job_id
        self._last_progress = None
        self.model.clear()
        if self._poll_task is not None:
            self._poll_task.cancel()
            self._poll_task = None
        if job_id is None:
            self._set_state(self.State.NO_JOB, self.NO_JOB_TEXT)
            return
        self._set_state(self.State.LOADING, self.LOADING_TEXT)
        self._poll_task = self._tasks.spawn(self._poll(self._generation, job_id))

    def set_active(self, active: bool) -> None:
        self._active = active
        if active:
            self._wake.set()

    def refresh_now(self) -> None:
        self._wake.set()

    def shutdown(self) -> None:
        self._shut_down = True
        self._generation += 1
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()

    # what a subclass says ----------------------------------------------------------------------------------
    async def _list(self, job_id: str) -> list[JobOutputFile]:
        raise NotImplementedError

    def _rows_added(self, added: Any) -> None:
        """`added` is what the model's `apply_listing` returned, when truthy."""
        raise NotImplementedError

    # the listing --------------------------------------------------------------------------------------
    async def _poll(self, generation: int, job_id: str) -> None:
        delay = self.interval
        while generation == self._generation:
            if self._active:
                try:
                    active_before = await self._job_active(job_id)
                    files = await self._list(job_id)
                    if generation != self._generation:
                        return
                    added = self.model.apply_listing(files)
                    self.error.emit("")
                    delay = self.interval
                    if files:
                        self._set_state(self.State.SHOWING, "")
                    elif active_before:
                        self._set_state(self.State.EMPTY, self.EMPTY_RUNNING_TEXT)
                    else:
                        self._set_state(self.State.EMPTY, self.EMPTY_FINISHED_TEXT)
                    if added:
                        self._rows_added(added)
                    if not active_before:
                        return  # listed after the job ended: nothing new will come
                except asyncio.CancelledError:
                    raise
                except NotFound as error:
                    if generation == self._generation:
                        self._set_state(self.State.UNAVAILABLE,
                                        "The server no longer knows this job." if error.code == "job_not_found"
                                        else self.UNLISTED_TEXT)
                    return
                except ApiError as error:
                    if generation != self._generation:
                        return
                    self.error.emit(f"{self.LIST_ERROR_TEXT}: {error.message}")
                    delay = min(MAX_BACKOFF_S, delay * 2)
            # Woken by progress (maybe many times a second): list again, but not more often than min_gap.
            await wait_for_wake(self._wake, delay, self.min_gap)

    # helpers ---------------------------------------------------------------------------------------------
    def _set_state(self, state: enum.Enum, text: str) -> None:
        if state == self.state and state == self.State.SHOWING:
            return
        self.state = state
        self.state_changed.emit(state.value, text)

    async def _job_active(self, job_id: str) -> bool:
        return await job_is_active(self.jobs, self.client, job_id)

    def _on_jobs_changed(self) -> None:
        if self.job_id is None or self.jobs is None:
            return
        job = self.jobs.model.job(self.job_id)
        if job is None:
            return
        progress = (job.status, job.current_step)
        if progress != self._last_progress:
            self._last_progress = progress
            self._wake.set()
