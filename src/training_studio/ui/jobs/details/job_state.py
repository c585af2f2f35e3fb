"""What the details views' polling loops share: whether a job still runs, as they ask it (from the jobs
store's rows when it holds the job, no request; else from the server's `/api/training/status`; a job the
server cannot tell about counts as finished, so a view stops polling rather than polling forever), and the
paced wait between two reads (`wait_for_wake`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from training_studio.client import ApiClient, ApiError
from training_studio.contract.models import TERMINAL_STATUSES

__all__ = ["job_is_active", "wait_for_wake"]


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


async def wait_for_wake(wake: asyncio.Event, delay: float, min_gap: float) -> bool:
    """Wait until `delay` passed (False) or `wake` was set (True), but never less than `min_gap` in all:
    progress events wake a view many times a second, and the server need not be asked that often."""
    started = time.monotonic()
    wake.clear()
    try:
        await asyncio.wait_for(wake.wait(), timeout=delay)
    except asyncio.TimeoutError:
        return False
    rest = min_gap - (time.monotonic() - started)
    if rest > 0:
        await asyncio.sleep(rest)
    return True
