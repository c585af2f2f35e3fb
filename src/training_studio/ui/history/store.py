"""The History tab's store: the one object that asks the server for history pages.

`HistoryStore` owns the current `HistoryQuery`, the `HistoryModel` rows and the cursor of the next page.
`set_query()` starts over (text changes are debounced by the panel); the model's fetchMore asks for the
next page; an answer to a query that has since changed is dropped (a generation number), so a slow first
page can never land after a newer one. Live job changes from the jobs store update rows already shown.
A page that fails becomes one `load_failed` message, and the rows already loaded stay; a batch delete's
refusals become one `delete_failed` message naming each job and the server's reason.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Signal

from training_studio.client import ApiClient, ApiError, CannotConnect
from training_studio.contract.models import TrainingJob
from training_studio.ui.history.model import HistoryModel
from training_studio.ui.history.query import HistoryQuery
from training_studio.ui.tasks import TaskSet

__all__ = ["HistoryStore", "PAGE_SIZE"]

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # a screenful several times over; smaller pages arrive sooner as the user scrolls
MAX_FAILURES_LISTED = 5  # jobs named in a delete's failure message before "…and N more"


class HistoryStore(QObject):
    loading_changed = Signal(bool)
    page_loaded = Signal(int, bool)  # rows now shown, whether more follow
    load_failed = Signal(str)
    waiting_for_server = Signal()  # asked before the app is connected: the window reloads on connection
    query_changed = Signal(object)  # HistoryQuery
    jobs_deleted = Signal(list)  # ids the server deleted
    # One message naming each job that could not be deleted and why: "Could not delete 1 job: “name”: reason",
    # or "Could not delete N jobs:" with a line per job; emitted after jobs_deleted.
    delete_failed = Signal(str)

    def __init__(self, client: ApiClient, *, job_model: Any = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.model = HistoryModel(self)
        self.model.fetch_more_requested = self.fetch_more
        self.query = HistoryQuery()
        self._cursor: str | None = None
        # A server without history queries (older than issue 16) pages only newest-first by `before`.
        self._before: str | None = None
        self._generation = 0
        self._loading = False
        self._tasks = TaskSet("history store", lambda error: self.load_failed.emit(f"Unexpected error: {error}"))
        if job_model is not None:  # live changes of the jobs on screen, from the jobs store's rows
            self._job_model = job_model
            # Once per batch of changes (not a slot per dataChanged range, nor the 1 s tick of running rows).
            job_model.jobs_updated.connect(self._on_live_jobs)
            job_model.rowsInserted.connect(lambda parent, first, last: self._on_live_rows(first, last))

    @property
    def is_loading(self) -> bool:
        return self._loading

    # intents -------------------------------------------------------------------------------------------
    def set_query(self, query: HistoryQuery) -> None:
        self.query = query
        self.query_changed.emit(query)
        self.reload()

    def reload(self) -> None:
        self._generation += 1
        self._cursor = None
        self._before = None
        self._set_loading(True)  # at once, not when the task first runs: "loading" is true from the request on
        self._tasks.spawn(self._load(self._generation, first=True))

    def fetch_more(self) -> None:
        if (self._cursor is None and self._before is None) or self._loading:
            return
        self._set_loading(True)
        self._tasks.spawn(self._load(self._generation, first=False))

    def delete_jobs(self, job_ids: list[str]) -> None:
        self._tasks.spawn(self._delete(list(job_ids)))

    async def _delete(self, job_ids: list[str]) -> None:
        """One request per job; every job is tried, and the failures are reported together, per job."""
        deleted: list[str] = []
        failures: list[str] = []
        for job_id in job_ids:
            row = self.model.row_of(job_id)
            job = self.model.job(row) if row is not None else None
            name = job.name if job is not None else job_id
            try:
                await self.client.delete_job(job_id)
            except ApiError as error:
                if getattr(error, "status_code", None) == 404:
                    deleted.append(job_id)  # gone already: what the user wanted
                    continue
                failures.append(f"“{name}”: {error.message}")
                continue
            deleted.append(job_id)
        self.forget(deleted)
        if deleted:
            self.jobs_deleted.emit(deleted)
        if failures:
            count = len(failures)
            if count == 1:
                self.delete_failed.emit(f"Could not delete 1 job: {failures[0]}")
                return
            listed = failures[:MAX_FAILURES_LISTED]
            more = count - len(listed)
            self.delete_failed.emit(f"Could not delete {count} jobs:\n" + "\n".join(listed)
                                    + (f"\n…and {more} more" if more else ""))

    def shutdown(self) -> None:
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()

    # work ----------------------------------------------------------------------------------------------
    async def _load(self, generation: int, *, first: bool) -> None:
        try:
            params = self.query.params()
            if not first and self._before is not None:
                params["before"] = self._before
            page = await self.client.job_history(limit=PAGE_SIZE, cursor=None if first else self._cursor, **params)
        except CannotConnect as error:
            if generation == self._generation:
                self._set_loading(False)
                if "Not connected" in error.message:
                    self.waiting_for_server.emit()
                else:
                    self.load_failed.emit(error.message)
            return
        except ApiError as error:
            if generation == self._generation:
                self._set_loading(False)
                if not first:  # let the view ask again when the user scrolls
                    self.model.append_page([], self._cursor is not None or self._before is not None)
                self.load_failed.emit(error.message)
            return
        if generation != self._generation:
            return  # the query changed while this page was on its way
        self._cursor = page.next_cursor
        self._before = None
        if not page.sorted_by_server and len(page.jobs) == PAGE_SIZE:
            self._before = page.jobs[-1].created_at
        more = self._cursor is not None or self._before is not None
        if first:
            self.model.reset_rows(page.jobs, more)
        else:
            self.model.append_page(page.jobs, more)
        self._set_loading(False)
        self.page_loaded.emit(self.model.rowCount(), more)

    def _set_loading(self, loading: bool) -> None:
        if loading != self._loading:
            self._loading = loading
            self.loading_changed.emit(loading)

    def _on_live_rows(self, first: int, last: int) -> None:
        from training_studio.ui.jobs.model import JobRole

        for row in range(first, last + 1):
            job = self._job_model.index(row, 0).data(JobRole.JOB)
            if isinstance(job, TrainingJob):
                self.model.update_job(job)

    def _on_live_jobs(self, job_ids: list[str]) -> None:
        find = self._job_model.job
        for job_id in job_ids:
            job = find(job_id)
            if job is not None:
                self.model.update_job(job)

    def forget(self, job_ids: list[str]) -> None:
        """Jobs deleted on the server: their rows go."""
        for job_id in job_ids:
            self.model.remove_job(job_id)
