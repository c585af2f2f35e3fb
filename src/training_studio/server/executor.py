"""The seam between the HTTP layer and whatever runs jobs.

Routes never start processes themselves: they store a job row and hand its id to a `JobExecutor`.
This module owns that protocol, the factory signature the app uses to build one, the contract's
restart rule for jobs left `running` by a previous server (`recover_interrupted_jobs`), and
`PendingOnlyExecutor`, the executor used when no runner is plugged in (`serve --no-runner`): new jobs
stay `pending` and cancelling one just records it as `cancelled`.

The restart rule: trainers outlive the server (runner/trainer_wrapper.py), so a `running` job whose
trainer wrapper was recorded is re-attached by the executor (followed to its real end: completed,
failed with its reason, cancelled). Only a job with no recorded wrapper (started by an older version,
or the server died between marking it running and starting it) is settled here: its leftover trainer
group is killed if it is still the job's, its unfinished model fails, and the job fails with
INTERRUPTED_JOB_ERROR. Even `--no-runner` follows the trainers that were already running (it never
starts one), so that a maintenance start loses no run either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from training_studio.contract import JobStatus, ModelStatus
from training_studio.server.config import ServerConfig
from training_studio.server.storage import Storage

log = logging.getLogger(__name__)

INTERRUPTED_JOB_ERROR = "the server stopped while the job was running, and its trainer is gone"


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

    def queue_changed(self) -> None:
        """The queue's order or a waiting job's schedule changed (issue 16): look again; returns at once."""


ExecutorFactory = Callable[[Storage, ServerConfig], JobExecutor]


def recover_interrupted_jobs(storage: Storage) -> list[str]:
    """The contract's restart rule for `running` rows. Returns the ids of the jobs to re-attach (their
    trainer wrapper was recorded: alive, or ended with or without an exit status, the runner finds out).
    The others are settled here: the trainer's group is killed if it is still the job's and alive, its
    unfinished model fails, and the job fails."""
    from training_studio.runner.process_groups import group_belongs_to_job, kill_group_and_wait
    from training_studio.runner.supervisor import wrapper_record_from_file
    from training_studio.runner.trainer_wrapper import JobFiles

    reattach: list[str] = []
    for job in storage.jobs_with_status([JobStatus.RUNNING]):
        if job.placement is not None and job.placement.executor == "ray":
            continue  # runs on a Ray cluster (issue 18): only a server with --executor ray follows it
        files = JobFiles.for_output_dir(storage.job_output_dir(job.id))
        if storage.job_wrapper(job.id) is not None or wrapper_record_from_file(files) is not None:
            reattach.append(job.id)
            continue
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
        storage.set_job_status(job.id, JobStatus.FAILED, error=INTERRUPTED_JOB_ERROR)
    return reattach


class PendingOnlyExecutor:
    """No runner: new jobs are stored and stay `pending`; cancel records `cancelled` immediately.

    Trainers left running by a previous server are still followed to their end (and can be cancelled,
    which then waits for their processes as usual) by a job runner that never starts a job; without the
    runner package they are left alone, still `running`, for the next server with a runner."""

    def __init__(self, storage: Storage, config: ServerConfig | None = None) -> None:
        self.storage = storage
        self.config = config
        self._follower: JobExecutor | None = None

    async def start(self) -> None:
        try:
            from training_studio.runner.job_runner import JobRunner
        except ImportError:  # pragma: no cover - the runner ships with the server
            JobRunner = None  # noqa: N806
        if JobRunner is not None:
            grace = float(getattr(self.config, "cancel_grace_s", 10.0))
            self._follower = JobRunner(self.storage, self.storage.data_dir, cancel_grace=grace, run_new_jobs=False)
            await self._follower.start()
        # Nothing will take them from the queue, so a `queued` job is back to waiting for a runner.
        for job in self.storage.jobs_with_status([JobStatus.QUEUED]):
            self.storage.set_job_status(job.id, JobStatus.PENDING)

    def submit(self, job_id: str) -> None:
        return None

    def queue_changed(self) -> None:
        return None  # nothing runs jobs here: the stored order waits for a server with a runner

    async def cancel(self, job_id: str) -> None:
        job = self.storage.get_job(job_id)
        if self._follower is not None and job is not None and job.status is JobStatus.RUNNING:
            await self._follower.cancel(job_id)
            return
        self.storage.set_job_status(job_id, JobStatus.CANCELLED)

    async def shutdown(self) -> None:
        if self._follower is not None:
            await self._follower.shutdown()


def pending_only_executor(storage: Storage, config: ServerConfig) -> JobExecutor:
    return PendingOnlyExecutor(storage, config)
