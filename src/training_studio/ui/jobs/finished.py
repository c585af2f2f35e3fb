"""The Jobs tab's Finished view (issue 15, item 6): the server's finished jobs, cleared from the list or not.

`FinishedJobs` is a controller next to the `JobStore` (the store makes it on first use,
`JobStore.finished_jobs()`): it owns its requests, its task set and its rows, a `JobListModel` of its own
(so the Jobs table's delegates, filters and columns work on it unchanged), and the panel only shows that
model under a finished-status filter and calls `show()` / `hide()`. The store's own list and its
rows are never touched: the active rows stay as they are whatever this view does.

`show()` puts the Jobs list's finished rows in at once, then fetches the newest `limit` finished jobs from
the server's history query (`GET /api/training/jobs?status=completed,failed,cancelled&order=-finishedAt`,
the endpoint the History tab pages through; docs/api.md), cleared ones included, and merges them in with
`apply_updates` (inserts and per-cell `dataChanged`, never a reset; a job's older state never replaces a
newer one, by its `revision`). `more` says whether the server holds older finished jobs than those
fetched: the panel then says "the latest N" and points to the History tab, which pages through all of
them. While shown, every batch of changes of the store's list (`jobs_changed`) is looked at through the
list's status journal (`JobListModel.status_changes_since`, so only the rows whose status changed): a
job that finishes live appears here at once. A job deleted on the server goes; another server (a server
switch) empties the rows before its own are fetched. Every `show()` fetches again, so jobs that finished
while the view was hidden are there too.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Signal

from training_studio.client import ApiError
from training_studio.contract.models import TERMINAL_STATUSES, JobStatus, TrainingJob
from training_studio.ui.jobs.model import JobListModel
from training_studio.ui.tasks import TaskSet

__all__ = ["FinishedJobs", "FINISHED_LIMIT"]

log = logging.getLogger(__name__)

FINISHED_LIMIT = 300  # finished jobs fetched for the view: pages of the History tab hold the rest
# The order the request names them in (a set's own order varies between runs).
_FINISHED_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class FinishedJobs(QObject):
    """See the module docstring."""

    loading_changed = Signal(bool)
    loaded = Signal(int, bool)  # rows now held, whether the server holds older finished jobs
    load_failed = Signal(str)   # one sentence; the rows already held stay

    def __init__(self, store: Any, *, limit: int = FINISHED_LIMIT, parent: QObject | None = None) -> None:
        """`store`: the app's `JobStore` (its client, its list of jobs and its signals)."""
        super().__init__(parent if parent is not None else store)
        self.store = store
        self.model = JobListModel(self)
        self.limit = limit
        self.more = False  # the server holds older finished jobs than those fetched
        self.error: str | None = None
        self.shown = False
        self.fetched_once = False
        self._loading = False
        self._generation = 0  # a fetch answering after a newer one started (or after hide/switch) is dropped
        self._journal_cursor = 0  # how far the store list's status journal was looked at
        self._server_key: str | None = None
        self._tasks = TaskSet("finished jobs", lambda error: self._fail(f"Unexpected error: {error}"))
        store.jobs_changed.connect(self._follow_list)
        store.job_deleted.connect(self.model.remove_job)
        store.connection_changed.connect(self._on_connection)
        store.connection_restored.connect(self._on_connection)

    @property
    def is_loading(self) -> bool:
        return self._loading

    # intents -------------------------------------------------------------------------------------------
    def show(self) -> None:
        """The view is on screen: the list's finished rows at once, then the server's newest finished jobs."""
        self.shown = True
        self._forget_other_server()
        listed = self.store.model
        self.model.set_clock_offset(listed.clock_offset())
        self._journal_cursor, _ = listed.status_changes_since(0)  # from now on, only what changes
        self._merge([job for job in map(listed.job, listed.job_ids())
                     if job is not None and job.status in TERMINAL_STATUSES])
        self.reload()

    def hide(self) -> None:
        """The view is off screen: stop following the list (its rows stay; `show()` brings them up to date)."""
        self.shown = False
        self._generation += 1
        self._set_loading(False)

    def reload(self) -> None:
        """Fetch the newest finished jobs again (an answer to an earlier fetch is dropped)."""
        self._generation += 1
        self.error = None
        self._set_loading(True)
        self._tasks.spawn(self._fetch(self._generation))

    def shutdown(self) -> None:
        self.shown = False
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()

    # work ----------------------------------------------------------------------------------------------
    async def _fetch(self, generation: int) -> None:
        client = self.store.client
        try:
            page = await client.job_history(_FINISHED_STATUSES, limit=self.limit, order="-finishedAt")
        except ApiError as error:
            if generation == self._generation:
                self._set_loading(False)
                self._fail(error.message)
            return
        if generation != self._generation:
            return
        self._forget_other_server()
        # A server that ignores the status filter must not slip active jobs in as finished.
        jobs = [job for job in page.jobs if job.status in TERMINAL_STATUSES]
        self.more = page.next_cursor is not None or (not page.sorted_by_server and len(page.jobs) >= self.limit)
        self.fetched_once = True
        self.error = None
        self._merge(jobs)
        self._set_loading(False)
        self.loaded.emit(self.model.rowCount(), self.more)

    def _merge(self, jobs: list[TrainingJob]) -> None:
        if jobs:
            self.model.apply_updates(jobs)

    def _follow_list(self) -> None:
        """A batch of changes reached the store's list: jobs that finished in it come here too."""
        if not self.shown:
            return
        listed = self.store.model
        self._journal_cursor, changed = listed.status_changes_since(self._journal_cursor)
        ids = listed.job_ids() if changed is None else dict.fromkeys(changed)
        finished = [job for job in map(listed.job, ids) if job is not None and job.status in TERMINAL_STATUSES]
        self._merge(finished)

    def _on_connection(self, *args: object) -> None:
        if self.shown:
            self._forget_other_server()
            self.reload()

    def _forget_other_server(self) -> None:
        key = self.store.server_key
        if self._server_key is not None and key != self._server_key:
            self.model.clear_finished()  # every row here is finished: all go
            self.more = False
            self.fetched_once = False
        self._server_key = key

    def _fail(self, message: str) -> None:
        log.info("finished jobs not fetched: %s", message)
        self.error = message
        self.load_failed.emit(message)

    def _set_loading(self, loading: bool) -> None:
        if loading != self._loading:
            self._loading = loading
            self.loading_changed.emit(loading)
