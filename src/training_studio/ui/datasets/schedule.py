"""When a new job may start (issue 16), as plain logic for the Train dialog's "When to start" section.

`ScheduleChoice` is what the user picked: start now, hold in the queue until released, after another job
(whatever its end, or only if it succeeds), or not before a moment. `schedule_problems` says in sentences
why a choice cannot be sent (no job chosen, a moment that has passed, waiting for the success of a job that
already failed), `schedule_fields` turns a valid choice into the optional fields of `POST
/api/training/jobs`, with the moment as UTC RFC 3339 (`rfc3339_utc`), and `schedule_note` says what will
happen in words. `followable_order` and `job_choice_label` order and name the jobs one can wait for. No Qt
here: the section widget (schedule_section.py) reads and shows these.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from training_studio.contract.models import ACTIVE_STATUSES, JobStatus, TrainingJob

__all__ = ["StartMode", "ScheduleChoice", "schedule_problems", "schedule_fields", "schedule_note",
           "rfc3339_utc", "describe_wait", "followable_order", "job_choice_label", "summary_of"]


class StartMode(enum.Enum):
    NOW = "now"
    HELD = "held"
    AFTER = "after"
    NOT_BEFORE = "not_before"


@dataclass(frozen=True)
class ScheduleChoice:
    mode: StartMode = StartMode.NOW
    after_job: TrainingJob | None = None   # AFTER: the job to wait for, as last seen
    only_if_succeeds: bool = False         # AFTER: "completed" instead of "finished"
    not_before: datetime | None = None     # NOT_BEFORE: an aware moment


def rfc3339_utc(moment: datetime) -> str:
    """An aware moment as the server's RFC 3339 form in UTC, to the second: 2026-12-04T22:00:00Z."""
    if moment.tzinfo is None:
        raise ValueError("a moment without a time zone cannot be sent: its instant is unknown")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_wait(delta: timedelta) -> str:
    """A positive wait in words as people say it: "in 45 s", "in 3 min", "in 2 h 5 min", "in 3 days 4 h"."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"in {max(seconds, 1)} s"
    minutes = -(-seconds // 60)  # rounded up: 2 days 23 h 59 min 40 s is "in 3 days"
    if minutes < 60:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"in {hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"in {days} day{'' if days == 1 else 's'}" + (f" {hours} h" if hours else "")


def _ended_badly(job: TrainingJob) -> bool:
    return job.status in (JobStatus.FAILED, JobStatus.CANCELLED)


def schedule_problems(choice: ScheduleChoice, now: datetime) -> list[str]:
    """Why `choice` cannot be sent at `now` (an aware moment), as sentences; empty when it can."""
    if choice.mode is StartMode.AFTER:
        job = choice.after_job
        if job is None:
            return ["Choose the job to wait for."]
        if choice.only_if_succeeds and _ended_badly(job):
            return [f"“{job.name}” {job.status.value}: a job that waits for it to succeed would be cancelled at "
                    f"once. Choose another job, or clear “Only if it succeeds”."]
    if choice.mode is StartMode.NOT_BEFORE:
        if choice.not_before is None:
            return ["Choose the earliest start time."]
        if choice.not_before <= now:
            return ["The start time has passed; choose a later time (or “Start now”)."]
    return []


def schedule_fields(choice: ScheduleChoice) -> dict[str, Any]:
    """The optional scheduling fields of the create-job request for a valid `choice` (empty: start now)."""
    if choice.mode is StartMode.HELD:
        return {"held": True}
    if choice.mode is StartMode.AFTER and choice.after_job is not None:
        return {"after_job_id": choice.after_job.id,
                "after_condition": "completed" if choice.only_if_succeeds else "finished"}
    if choice.mode is StartMode.NOT_BEFORE and choice.not_before is not None:
        return {"not_before": rfc3339_utc(choice.not_before)}
    return {}


def schedule_note(choice: ScheduleChoice, now: datetime) -> str:
    """What will happen with a valid `choice`, in words (the problem sentence when it is not valid)."""
    problems = schedule_problems(choice, now)
    if problems:
        return problems[0]
    if choice.mode is StartMode.HELD:
        return "It stays queued until you release it (Jobs tab: clear “Hold in queue”)."
    if choice.mode is StartMode.AFTER and choice.after_job is not None:
        job = choice.after_job
        if job.status in ACTIVE_STATUSES:
            if choice.only_if_succeeds:
                return (f"It starts once “{job.name}” completes; if that job fails or is cancelled, this one is "
                        f"cancelled too.")
            return f"It starts once “{job.name}” has ended, however it ends."
        return f"“{job.name}” has already {job.status.value}: this job starts as soon as a slot is free."
    if choice.mode is StartMode.NOT_BEFORE and choice.not_before is not None:
        local = choice.not_before.astimezone()
        offset = local.strftime("%z")
        zone = f"UTC{offset[:3]}:{offset[3:]}" if offset else "local time"
        return f"It starts no earlier than that, {describe_wait(choice.not_before - now)} (times are {zone})."
    return "It starts as soon as a slot is free."


def summary_of(choice: ScheduleChoice) -> str:
    """A few words for the collapsed section's title: "start now", "held in queue", "after “x”"."""
    if choice.mode is StartMode.HELD:
        return "hold in queue"
    if choice.mode is StartMode.AFTER:
        if choice.after_job is None:
            return "after another job"
        name = choice.after_job.name if len(choice.after_job.name) <= 24 else choice.after_job.name[:23] + "…"
        return f"after “{name}”" + (" succeeds" if choice.only_if_succeeds else "")
    if choice.mode is StartMode.NOT_BEFORE and choice.not_before is not None:
        local = choice.not_before.astimezone()
        return f"not before {local:%a} {local.day} {local:%b %H:%M}"  # as the edit shows it: "Fri 4 Dec 23:00"
    return "start now"


_STATUS_RANK = {JobStatus.RUNNING: 0, JobStatus.QUEUED: 1, JobStatus.PENDING: 1}


def followable_order(jobs: Iterable[TrainingJob]) -> list[TrainingJob]:
    """Active jobs first (running, then waiting in queue order), then finished ones, newest first; each job
    once (the first copy wins)."""
    seen: set[str] = set()
    unique = []
    for job in jobs:
        if job.id not in seen:
            seen.add(job.id)
            unique.append(job)
    active = [job for job in unique if job.status in ACTIVE_STATUSES]
    finished = [job for job in unique if job.status not in ACTIVE_STATUSES]
    big = float("inf")
    active.sort(key=lambda j: (_STATUS_RANK.get(j.status, 2),
                               j.queue_position if j.queue_position is not None else big, j.created_at))
    finished.sort(key=lambda j: j.finished_at or j.created_at, reverse=True)
    return active + finished


def job_choice_label(job: TrainingJob) -> str:
    """How a job is listed to wait for: its name and its state ("portrait run — queued")."""
    state = job.status.value
    if job.status is JobStatus.RUNNING:
        state = f"running, {min(max(round(job.progress), 0), 100)}%"  # progress is 0-100
    elif job.held:
        state += ", held"
    return f"{job.name} — {state}"
