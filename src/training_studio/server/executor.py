"""The seam between the HTTP layer and whatever runs jobs.

Routes never start processes themselves: they store a job row and hand its id to a `JobExecutor`.
This module owns that protocol, the factory signature the app uses to build one, the contract's
restart rule for jobs left `running` by a previous server (`recover_interrupted_jobs`), and
`PendingOnlyExecutor`, the executor used when no runner is plugged in: jobs stay `pending` and
cancelling one just records it as `cancelled`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from training_studio.contract import JobStatus, ModelStatus
from training_studio.server.config import ServerConfig
from training_studio.server.storage import Storage

log = logging.getLogger(__name__)

INTERRUPTED_JOB_ERROR = "the server stopped while the job was running"


@runtime_checkable
class JobExecutor(Protocol):
    async def start(self) -> None:
        """Apply the restart rule to jobs left over by a previous server, then accept work."""

    def submit(self, job_id: str) -> None:
        """Take a freshly created `pending` job; must return at once."""

    async def cancel(self, job_id: str) -> None:
        """Cancel a pending, queued or running job; must not wait for a process to die."""

    async def shutdown(self) -> None:
        """Stop running work (the server is exiting)."""


ExecutorFactory = Callable[[Storage, ServerConfig], JobExecutor]


def recover_interrupted_jobs(storage: Storage) -> list[str]:
    """The contract's restart rule for `running` rows: kill the trainer's group if it is still ours and
    alive, fail its unfinished model, then fail the job. Returns the ids of the jobs failed."""
    from training_studio.runner.process_groups import group_belongs_to_job, kill_group_and_wait

    failed: list[str] = []
    for job in storage.jobs_with_status([JobStatus.RUNNING]):
        process = storage.job_process(job.id)
        group = (process[1] or process[0]) if process else None
        if group and group_belongs_to_job(group, job.id):
            log.info("job %s: killing the trainer left by the previous server (group %s)", job.id, group)
            if not kill_group_and_wait(group, timeout=10.0):
                log.warning("job %s: its trainer group %s would not die", job.id, group)
        if job.model_id:
            model = storage.get_model(job.model_id)
            if model is not None and model.status is ModelStatus.PROCESSING:
                storage.update_model(job.model_id, status=ModelStatus.FAILED.value, error=INTERRUPTED_JOB_ERROR)
        if storage.set_job_status(job.id, JobStatus.FAILED, error=INTERRUPTED_JOB_ERROR) is not None:
            failed.append(job.id)
    return failed


class PendingOnlyExecutor:
    """No runner: jobs are stored and stay `pending`; cancel records `cancelled` immediately."""

    def __init__(self, storage: Storage, config: ServerConfig | None = None) -> None:
        self.storage = storage
        self.config = config

    async def start(self) -> None:
        recover_interrupted_jobs(self.storage)
        # Nothing will take them from the queue, so a `queued` job is back to waiting for a runner.
        for job in self.storage.jobs_with_status([JobStatus.QUEUED]):
            self.storage.set_job_status(job.id, JobStatus.PENDING)

    def submit(self, job_id: str) -> None:
        return None

    async def cancel(self, job_id: str) -> None:
        self.storage.set_job_status(job_id, JobStatus.CANCELLED)

    async def shutdown(self) -> None:
        return None


def pending_only_executor(storage: Storage, config: ServerConfig) -> JobExecutor:
    return PendingOnlyExecutor(storage, config)
