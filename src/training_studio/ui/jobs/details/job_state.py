"""Whether a job still runs, as the details views ask it: from the jobs store's rows when it holds the job
(no request), else from the server (`/api/training/status`); a job the server cannot tell about counts as
finished, so a view stops polling rather than polling forever."""

from __future__ import annotations

from typing import Any

from training_studio.client import ApiClient, ApiError
from training_studio.contract.models import TERMINAL_STATUSES

__all__ = ["job_is_active"]


async def job_is_active(jobs: Any, client: ApiClient, job_id: str) -> bool:
    if jobs is not None:
        job = jobs.model.job(job_id)
        if job is not None:
            return job.status not in TERMINAL_STATUSES
    try:
        job = await client.job_status(job_id)
    except ApiError:
        return False
    return job.status not in TERMINAL_STATUSES
