"""The job runner: the embedded server's queue of training jobs, implementing its JobExecutor protocol.

Owns a job's life after the row exists: pending -> queued -> running -> completed | failed | cancelled.
At most `concurrency` trainers run at once (default 1: one GPU trains one job at a time); the others
wait as `queued`, in creation order. Each running job is one `TrainerProcess` (see supervisor.py);
its progress goes to Storage in batches (with the job's ETA, runner/eta.py), its checkpoint
announcements register a TrainedModel, and its outcome ends the job. A slot frees only once every
process of the job is gone.

Trainers outlive the server: each runs under its own wrapper process (trainer_wrapper.py), writing to
files, so a server that is killed or restarted costs a run nothing. On start the runner applies the
restart rule (`recover_interrupted_jobs` in server/executor.py) and re-attaches to every job left
`running` whose wrapper was recorded: it reads on from the saved output offsets, and records the real
end of those that ended meanwhile (completed with their model, failed with their reason, cancelled);
only a job whose trainer is really gone without an exit status is failed, saying so. Then it queues
pending and queued jobs again; they start `WAITING_JOBS_START_DELAY_S` later (the server's clients first). `shutdown()` detaches from running trainers and never stops them: only
cancel ends a run. With `run_new_jobs=False` (serve --no-runner) it only follows the jobs that were
already running and never starts one.

Also owns turning a job into the trainer's argv: the built-in trainer is started as `<this program>
train builtin ...`, a preset as its command template, always as an argv list, never through a shell;
and the trainer's reading rules, kept in the job's control folder (spec.json) so a restarted server
reads a re-attached trainer the same way even if presets.toml changed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from training_studio.contract import (
    TERMINAL_STATUSES,
    JobStatus,
    ModelStatus,
    TrainingJob,
    format_timestamp,
    parse_timestamp,
    utc_now,
)
from training_studio.launcher import self_command
from training_studio.runner.eta import EtaTracker
from training_studio.runner.presets import (
    Preset,
    PresetError,
    ensure_presets_file,
    find_outputs,
    find_preset,
    output_file_allowed,
)
from training_studio.runner.process_groups import group_belongs_to_job, kill_group_and_wait
from training_studio.runner.progress import ProgressPoint, TrainerEvent
from training_studio.runner.registry import (
    BUILTIN_BASE_MODEL,
    BUILTIN_BASE_MODEL_ID,
    BUILTIN_CHECKPOINTS_GLOB,
    ParamsError,
    validate_params,
)
from training_studio.runner.supervisor import (
    DEFAULT_FLUSH_INTERVAL_S,
    OutputOffsets,
    TrainerOutcome,
    TrainerProcess,
    WrapperRecord,
    wrapper_alive,
    wrapper_record_from_file,
)
from training_studio.runner.trainer_wrapper import CONTROL_DIR_NAME, JobFiles, read_json
from training_studio.server.errors import is_disk_full
from training_studio.server.executor import recover_interrupted_jobs

if TYPE_CHECKING:
    from training_studio.server.storage import Storage

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
DEFAULT_CANCEL_GRACE_S = 10.0
# How long a stopping server waits for its jobs' last output to be recorded before it lets go.
DETACH_TIMEOUT_S = 4.0
# How often, at most, a job's end is written again while the disk is full.
SETTLE_RETRY_MAX_S = 2.0
DISK_FULL_JOB_ERROR = "the server's disk is full: the job could not be run to its end"
# The jobs a starting server finds waiting start this long after it took them over: a window started with the
# server paints its first rows meanwhile, and a trainer's own start (a Python process) would take the CPU
# that needs (issue 19: about 40 ms of a 2-core cold start). A job submitted meanwhile starts at once, the
# waiting ones in their queue order with it.
WAITING_JOBS_START_DELAY_S = 1.0


class JobSetupError(Exception):
    """The job cannot be started (unknown trainer, bad params...); the message is the job's error."""


@dataclass
class TrainerPlan:
    """Everything needed to start one job's trainer."""

    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    progress_format: str = "jsonl"
    loss_key: str | None = None
    checkpoint_glob: str | None = None
    progress_bar: str | None = None
    # The intermediate checkpoints' pattern (presets.output_pattern): what the final model is told apart from.
    checkpoints_glob: str | None = None
    series: tuple[str, ...] = ()  # tqdm postfix keys that are series besides the loss (issue 14)

    def reading_rules(self) -> dict[str, Any]:
        """What a re-attached server needs to read this trainer's output as the starting one did."""
        return {"progress_format": self.progress_format, "loss_key": self.loss_key,
                "checkpoint_glob": self.checkpoint_glob, "progress_bar": self.progress_bar,
                "checkpoints_glob": self.checkpoints_glob, "series": list(self.series)}

    @classmethod
    def from_reading_rules(cls, spec: dict[str, Any], cwd: Path) -> "TrainerPlan":
        def text(key: str) -> str | None:
            value = spec.get(key)
            return value if isinstance(value, str) and value else None

        progress_format = spec.get("progress_format")
        return cls(argv=[str(item) for item in spec.get("argv") or []], cwd=cwd,
                   progress_format=progress_format if progress_format in ("jsonl", "tqdm") else "jsonl",
                   loss_key=text("loss_key"), checkpoint_glob=text("checkpoint_glob"),
                   progress_bar=text("progress_bar"), checkpoints_glob=text("checkpoints_glob"),
                   series=_series_rule(spec.get("series")))


@dataclass
class _ActiveJob:
    job_id: str
    task: asyncio.Task[None] | None = None
    process: TrainerProcess | None = None
    cancel_requested: bool = False
    model_id: str | None = None
    checkpoint_path: Path | None = None
    output_dir: Path | None = None
    # This run's ETA (issue 14): a fresh one for each start and each re-attach, so it is estimated afresh.
    eta: EtaTracker = field(default_factory=EtaTracker)
    eta_total: int | None = None  # the total the trainer last stated, else the job's


TERMINAL_VALUES = frozenset(status.value for status in TERMINAL_STATUSES)


class JobRunner:
    """Runs the embedded server's jobs as subprocesses; the server's JobExecutor."""

    def __init__(self, storage: Storage, data_dir: Path | str, *, concurrency: int = 1,
                 cancel_grace: float = DEFAULT_CANCEL_GRACE_S, flush_interval: float = DEFAULT_FLUSH_INTERVAL_S,
                 run_new_jobs: bool = True, gpus: list[str] | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.storage = storage
        self.data_dir = Path(data_dir)
        self.concurrency = concurrency
        self.cancel_grace = cancel_grace
        self.flush_interval = flush_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._waiting: list[str] = []
        self._active: dict[str, _ActiveJob] = {}
        self._submitted_early: list[str] = []
        self._waiting_start: asyncio.TimerHandle | None = None
        self._shutting_down = False
        self.run_new_jobs = run_new_jobs
        # `serve --gpus`: the GPUs handed to jobs, and which running job holds which (issue 16).
        self.gpus = list(gpus) if gpus else []
        self._gpu_of: dict[str, str] = {}
        self._host = socket.gethostname()
        self._wake: asyncio.TimerHandle | None = None  # the next not-before moment of a waiting job

    # JobExecutor protocol ------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self.run_new_jobs:
            await asyncio.to_thread(ensure_presets_file, self.data_dir)
        for job_id in await asyncio.to_thread(recover_interrupted_jobs, self.storage):
            self._reattach(job_id)
        if not self.run_new_jobs:
            return
        waiting = await asyncio.to_thread(self.storage.job_ids_with_status, [JobStatus.PENDING, JobStatus.QUEUED])
        # Taken over in one transaction, off the loop: one commit per job cost about 0.3 s at 1,000 waiting
        # jobs, all of it before the server's first answer.
        # A job accepted meanwhile (a submit() during the await) is queued already: enqueue_jobs leaves it be,
        # and it is not taken twice below.
        accepted = await asyncio.to_thread(self.storage.enqueue_jobs, waiting)
        if not self._shutting_down:
            taken = set(self._waiting)
            self._waiting.extend(job_id for job_id in accepted if job_id not in taken and job_id not in self._active)
            self._waiting_start = self._loop.call_later(WAITING_JOBS_START_DELAY_S, self._fill_slots)
        early, self._submitted_early = self._submitted_early, []
        for job_id in early:
            self._accept(job_id)

    def submit(self, job_id: str) -> None:
        """Queue a freshly created job; returns at once, from any thread."""
        if not self.run_new_jobs:
            return
        if self._loop is None:
            self._submitted_early.append(job_id)
            return
        # Accepted on the next loop turn, never inside submit(): the creating request answers with
        # the job as created (`pending`), as the contract says.
        if threading.get_ident() == self._loop_thread:
            self._loop.call_soon(self._accept, job_id)
        else:
            self._loop.call_soon_threadsafe(self._accept, job_id)

    async def cancel(self, job_id: str) -> None:
        """Cancel a pending, queued or running job without waiting for its trainer to die."""
        if job_id in self._waiting:
            self._waiting.remove(job_id)
            await asyncio.to_thread(self.storage.set_job_status, job_id, JobStatus.CANCELLED)
            self._fill_slots()  # jobs chained after this one may now start (or never will)
            return
        active = self._active.get(job_id)
        if active is not None:
            active.cancel_requested = True
            if active.process is not None:
                active.process.cancel()
            return
        # Not ours (not accepted yet, or left over): settle it from the stored state.
        job = await asyncio.to_thread(self.storage.get_job, job_id)
        if job is None:
            return
        if job.status is JobStatus.RUNNING:
            # A running job nobody follows: its wrapper is not ours to end here without watching it.
            if await asyncio.to_thread(self._wrapper_of_unfollowed_job_alive, job_id):
                return
            process = await asyncio.to_thread(self.storage.job_process, job_id)
            if process and process[1] and await asyncio.to_thread(group_belongs_to_job, process[1], job_id):
                await asyncio.to_thread(kill_group_and_wait, process[1], self.cancel_grace + 5)
        if job.status in (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING):
            await asyncio.to_thread(self.storage.set_job_status, job_id, JobStatus.CANCELLED)

    async def shutdown(self) -> None:
        """Detach from every running trainer: they keep running, and the next server re-attaches to them
        (only cancel ends a run). What was read so far is recorded; queued jobs wait for the next start."""
        self._shutting_down = True
        self._waiting.clear()
        if self._waiting_start is not None:
            self._waiting_start.cancel()
        tasks = []
        for active in list(self._active.values()):
            if active.process is not None:
                active.process.detach()
            if active.task is not None:
                tasks.append(active.task)
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=DETACH_TIMEOUT_S)
            for task in pending:
                task.cancel()

    # queue ----------------------------------------------------------------------------------------
    def _accept(self, job_id: str) -> None:
        if self._shutting_down or job_id in self._waiting or job_id in self._active:
            return
        job = self.storage.get_job(job_id)
        if job is None or job.status not in (JobStatus.PENDING, JobStatus.QUEUED):
            return
        if self.storage.enqueue_job(job_id) is None:
            return
        self._waiting.append(job_id)
        self._fill_slots()

    def queue_changed(self) -> None:
        """The queue's order or a waiting job's schedule changed (PATCH …/queue): look again. From any thread."""
        if self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._loop.call_soon(self._fill_slots)
        else:
            self._loop.call_soon_threadsafe(self._fill_slots)

    def _fill_slots(self) -> None:
        """Start waiting jobs in the stored queue order while slots are free (issue 16): a held job, one
        waiting for another job to end, or one not due yet is passed over, never blocking those behind it."""
        if self._shutting_down or not self._waiting or len(self._active) >= self.concurrency:
            return
        rows = self.storage.queue_rows(self._waiting)
        still_waiting = {row["id"] for row in rows}
        self._waiting = [job_id for job_id in self._waiting if job_id in still_waiting]
        now = utc_now()
        wake_at: datetime | None = None
        for row in rows:
            if len(self._active) >= self.concurrency:
                break
            job_id = row["id"]
            if row["held"]:
                continue
            due = parse_timestamp(row["not_before"])
            if due is not None and due > now:
                wake_at = due if wake_at is None or due < wake_at else wake_at
                continue
            if row["after_job_id"]:
                after_status = row["after_status"]  # None: that job is gone, nothing to wait for
                if after_status is not None and after_status not in TERMINAL_VALUES:
                    continue
                if row["after_condition"] == "completed" and after_status not in (None, "completed"):
                    self._waiting.remove(job_id)
                    self.storage.set_job_status(job_id, JobStatus.CANCELLED, error=(
                        f"not started: it was to run only if {row['after_name']!r} completed, and that job "
                        f"{after_status}"))
                    continue
            self._waiting.remove(job_id)
            active = _ActiveJob(job_id)
            self._active[job_id] = active
            active.task = asyncio.get_running_loop().create_task(self._run(active), name=f"job-{job_id}")
        self._schedule_wake(wake_at)

    def _schedule_wake(self, wake_at: datetime | None) -> None:
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        if wake_at is not None:
            delay = max(0.0, (wake_at - utc_now()).total_seconds()) + 0.01
            self._wake = asyncio.get_running_loop().call_later(min(delay, 3600.0), self._fill_slots)

    # GPUs and placement (issue 16) ----------------------------------------------------------------
    def gpu_jobs(self) -> dict[str, list[str]]:
        """GPU → the running jobs given it (for /api/system)."""
        held: dict[str, list[str]] = {}
        for job_id, gpu in self._gpu_of.items():
            held.setdefault(gpu, []).append(job_id)
        return held

    def _place(self, job_id: str, env: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
        """The trainer's environment and the job's placement: with `--gpus`, the least busy GPU (first in
        the list on a tie) through CUDA_VISIBLE_DEVICES, so concurrent jobs never share one while one is free."""
        placement: dict[str, Any] = {"executor": "local", "host": self._host, "gpus": []}
        if not self.gpus:
            return env, placement
        load = {gpu: 0 for gpu in self.gpus}
        for gpu in self._gpu_of.values():
            if gpu in load:
                load[gpu] += 1
        gpu = min(self.gpus, key=lambda candidate: load[candidate])
        self._gpu_of[job_id] = gpu
        placement["gpus"] = [gpu]
        return {**env, "CUDA_VISIBLE_DEVICES": gpu}, placement

    async def _run(self, active: _ActiveJob, *, attached: bool = False) -> None:
        try:
            if attached:
                await self._run_attached(active)
            else:
                await self._run_job(active)
        except Exception as exc:  # a runner bug must fail the job, not leave it running forever
            logger.exception("job %s: the runner failed", active.job_id)
            if active.process is not None:  # nobody would follow its trainer any more
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(active.process.terminate_unfollowed)
            error = DISK_FULL_JOB_ERROR if is_disk_full(exc) else f"internal error in the job runner: {exc}"
            with contextlib.suppress(Exception):
                await self._settle(self.storage.set_job_status, active.job_id, JobStatus.FAILED, error=error,
                                   model_id=active.model_id)
        finally:
            self._active.pop(active.job_id, None)
            self._gpu_of.pop(active.job_id, None)
            if not self._shutting_down:
                self._fill_slots()

    async def _prepare_run(self, active: _ActiveJob, output_dir: Path, *,
                           folder_error: str) -> tuple[TrainingJob, TrainerPlan] | None:
        """The start every executor shares (the Ray executor too): the job, still queued and not cancelled,
        its trainer plan and its output folder (created). None when it is not to run: gone, taken, or
        ended here (cancelled, or failed with why it cannot start; `folder_error` starts the message of a
        folder that could not be created)."""
        job_id = active.job_id
        job = await asyncio.to_thread(self.storage.get_job, job_id)
        if job is None or job.status is not JobStatus.QUEUED:
            return None
        if active.cancel_requested:
            await asyncio.to_thread(self.storage.set_job_status, job_id, JobStatus.CANCELLED)
            return None
        active.output_dir = output_dir
        if job.dataset_id and job.kind != "caption":
            # The dataset's folders as the database has them (a stop between a caption edit's commit and its
            # layout swap leaves them stale until rebuilt: server/layouts.py, "stamp").
            from training_studio.server import dataset_ops

            try:
                await dataset_ops.bring_layouts_in_line(self.storage, job.dataset_id)
            except OSError as exc:
                await asyncio.to_thread(self.storage.set_job_status, job_id, JobStatus.FAILED,
                                        error=f"could not rebuild the dataset's folders: {exc.strerror or exc}")
                return None
        try:
            plan = await asyncio.to_thread(self.plan_for, job, output_dir)
            await asyncio.to_thread(output_dir.mkdir, parents=True, exist_ok=True)
        except JobSetupError as exc:
            await asyncio.to_thread(self.storage.set_job_status, job_id, JobStatus.FAILED, error=str(exc))
            return None
        except OSError as exc:
            await asyncio.to_thread(self.storage.set_job_status, job_id, JobStatus.FAILED,
                                    error=f"{folder_error}: {exc.strerror or exc}")
            return None
        return job, plan

    async def _run_job(self, active: _ActiveJob) -> None:
        job_id = active.job_id
        output_dir = self.storage.job_output_dir(job_id)
        prepared = await self._prepare_run(active, output_dir, folder_error="could not create the job's output folder")
        if prepared is None:
            return
        job, plan = prepared
        if active.cancel_requested:
            await asyncio.to_thread(self.storage.set_job_status, job_id, JobStatus.CANCELLED)
            return
        if self._shutting_down:  # still queued: the next start queues it again
            return
        running = await asyncio.to_thread(self.storage.set_job_status, job_id, JobStatus.RUNNING,
                                          started_at=format_timestamp(utc_now()))
        if running is None:  # cancelled (terminal) meanwhile
            return

        files = JobFiles.for_output_dir(output_dir)
        env, placement = self._place(job_id, plan.env)
        await asyncio.to_thread(self.storage.set_job_placement, job_id, placement)
        process = TrainerProcess(
            plan.argv, log_path=self.storage.job_log_path(job_id), job_id=job_id, cwd=plan.cwd, env=env,
            control_dir=files.control_dir, progress_format=plan.progress_format,  # type: ignore[arg-type]
            loss_key=plan.loss_key, progress_bar=plan.progress_bar, total_steps=job.total_steps,
            series=plan.series, cancel_grace=self.cancel_grace, flush_interval=self.flush_interval,
            spec_extra=plan.reading_rules(), **self._sinks(active, job),
            log_header=f"[training-studio] {format_timestamp(utc_now())} starting: {shlex.join(plan.argv)}\n",
        )
        active.process = process
        if active.cancel_requested:
            process.cancel()
        try:
            await process.start()
        except OSError as exc:
            reason = f"could not start the trainer's wrapper {sys.executable!r}: {exc.strerror or exc}"
            await asyncio.to_thread(self._append_log, job_id, f"[training-studio] {reason}\n")
            status = JobStatus.CANCELLED if active.cancel_requested else JobStatus.FAILED
            await asyncio.to_thread(self.storage.set_job_status, job_id, status,
                                    error=None if status is JobStatus.CANCELLED else reason)
            return
        assert process.record is not None
        await asyncio.to_thread(self.storage.set_job_wrapper, job_id, process.record.pid, process.record.start_time,
                                process.offsets.log)
        outcome = await process.wait()
        if outcome is None:  # detached: the server is stopping, the trainer runs on
            return
        await self._finish(active, job, plan, outcome)

    def _sinks(self, active: _ActiveJob, job: TrainingJob) -> dict[str, Any]:
        job_id = job.id
        return {
            "on_progress": lambda points: self._record_progress(job_id, points, active, job),
            "on_event": lambda event: self._handle_event(active, job, event),
            "on_offsets": lambda offsets: self._save_offsets(job_id, offsets),
            "on_phase": lambda text: self._record_phase(job_id, text),
            # The trainer's pid (its own group's id too) in the job row, as before there were wrappers:
            # tools and tests read it there.
            "on_trainer_started": lambda pid: asyncio.to_thread(self.storage.set_job_process, job_id, pid, pid),
        }

    # re-attaching to trainers a previous server started ------------------------------------------
    def _reattach(self, job_id: str) -> None:
        if job_id in self._active:
            return
        active = _ActiveJob(job_id)
        self._active[job_id] = active  # it holds a slot, whatever the concurrency is now
        job = self.storage.get_job(job_id)
        if job is not None and job.placement is not None and job.placement.gpus:
            self._gpu_of[job_id] = job.placement.gpus[0]  # it keeps its GPU across our restart
        active.task = asyncio.get_running_loop().create_task(self._run(active, attached=True), name=f"job-{job_id}")

    async def _run_attached(self, active: _ActiveJob) -> None:
        job_id = active.job_id
        job = await asyncio.to_thread(self.storage.get_job, job_id)
        if job is None or job.status is not JobStatus.RUNNING:
            return
        output_dir = self.storage.job_output_dir(job_id)
        files = JobFiles.for_output_dir(output_dir)
        active.output_dir = output_dir
        spec = await asyncio.to_thread(read_json, files.spec) or {}
        plan = TrainerPlan.from_reading_rules(spec, output_dir)
        stored = await asyncio.to_thread(self.storage.job_wrapper, job_id)
        if stored is not None:
            record: WrapperRecord | None = WrapperRecord(stored[0], stored[1]) if stored[0] else None
            offsets = OutputOffsets(stored[2], stored[3], stored[4])
        else:
            # The previous server died between starting the wrapper and recording it: the wrapper's own
            # record tells who it is, and no output was appended to the log yet (only its header).
            record = await asyncio.to_thread(wrapper_record_from_file, files)
            log_size = await asyncio.to_thread(_file_size, self.storage.job_log_path(job_id))
            offsets = OutputOffsets(0, 0, log_size)
            if record is not None:
                await asyncio.to_thread(self.storage.set_job_wrapper, job_id, record.pid, record.start_time,
                                        log_size)
        # What the previous server had learnt from events is in the database: the model and its file.
        active.model_id = job.model_id
        if job.model_id:
            model = await asyncio.to_thread(self.storage.get_model, job.model_id)
            if model is not None and model.path:
                active.checkpoint_path = Path(model.path)
        process = TrainerProcess.attach(
            record, offsets, log_path=self.storage.job_log_path(job_id), control_dir=files.control_dir,
            job_id=job_id, progress_format=plan.progress_format,  # type: ignore[arg-type]
            loss_key=plan.loss_key, progress_bar=plan.progress_bar, total_steps=job.total_steps,
            flush_interval=self.flush_interval, series=plan.series, **self._sinks(active, job),
        )
        active.process = process
        logger.info("job %s: re-attached to its trainer (wrapper %s, output read up to %s/%s bytes)",
                    job_id, process.pid, offsets.stdout, offsets.stderr)
        if active.cancel_requested:
            process.cancel()
        outcome = await process.wait()
        if outcome is None:
            return
        await self._finish(active, job, plan, outcome)

    def _wrapper_of_unfollowed_job_alive(self, job_id: str) -> bool:
        files = JobFiles.for_output_dir(self.storage.job_output_dir(job_id))
        stored = self.storage.job_wrapper(job_id)
        record = WrapperRecord(stored[0], stored[1]) if stored and stored[0] else wrapper_record_from_file(files)
        return wrapper_alive(record, files)

    async def _finish(self, active: _ActiveJob, job: TrainingJob, plan: TrainerPlan, outcome: TrainerOutcome) -> None:
        job_id = active.job_id
        summary = f"exit code {outcome.exit_code}" if outcome.exit_code is not None else "no exit code"
        because = f": {outcome.error}" if outcome.status == "failed" and outcome.error else ""
        await asyncio.to_thread(self._append_log, job_id,
                                f"[training-studio] {format_timestamp(utc_now())} the trainer ended "
                                f"({summary}): {outcome.status}{because}\n")
        if outcome.status == "completed" and job.kind == "caption":
            # issue 17: the captioner's .txt files become the dataset's captions (one commit)
            error = await self._read_back_captions(job, active)
            if error is None:
                await self._settle(self.storage.set_job_status, job_id, JobStatus.COMPLETED)
            else:
                await self._settle(self.storage.set_job_status, job_id, JobStatus.FAILED, error=error)
            return
        if outcome.status == "completed":
            model_id = await self._settle(self._settle_model_on_success, active, job, plan)
            await self._settle(self.storage.set_job_status, job_id, JobStatus.COMPLETED, model_id=model_id)
            return
        if outcome.status == "cancelled":
            status, error = JobStatus.CANCELLED, None
        else:
            status, error = JobStatus.FAILED, outcome.error or "the trainer failed"
        if active.model_id is not None:
            model_error = error or "the job was cancelled before its checkpoint was written"
            await self._settle(self.storage.update_model, active.model_id, status=ModelStatus.FAILED.value,
                               error=model_error)
        await self._settle(self.storage.set_job_status, job_id, status, error=error, model_id=active.model_id)

    async def _settle(self, write: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run a storage write that records how a job ended, again and again while the disk is full.

        A job whose end cannot be written would otherwise show `running` until the next restart; once
        space is freed it settles by itself. Other errors, and a full disk during shutdown (the next
        start's restart rule settles the job), are raised.
        """
        delay, warned = 0.1, False
        while True:
            try:
                return await asyncio.to_thread(write, *args, **kwargs)
            except Exception as exc:
                if not is_disk_full(exc) or self._shutting_down:
                    raise
                if not warned:
                    logger.warning("the disk is full: retrying until the end of a job can be recorded (%s)", exc)
                    warned = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, SETTLE_RETRY_MAX_S)

    async def _read_back_captions(self, job: TrainingJob, active: _ActiveJob) -> str | None:
        """A completed caption job: store the captions its command wrote; the error text, or None."""
        from training_studio.server import dataset_ops

        if job.dataset_id is None or active.output_dir is None:
            return "the caption job has no dataset"
        folder = active.output_dir / dataset_ops.CAPTION_INPUT_DIR
        try:
            changed = await dataset_ops.apply_caption_folder(self.storage, job.dataset_id, folder)
        except LookupError:
            return "the dataset was deleted before its captions could be stored"
        except (RuntimeError, OSError) as exc:
            return f"the captions could not be stored: {exc}"
        await asyncio.to_thread(self._append_log, job.id, f"[training-studio] {changed} caption(s) stored\n")
        return None

    # trainer plans -------------------------------------------------------------------------------
    def plan_for(self, job: TrainingJob, output_dir: Path) -> TrainerPlan:
        """The argv and reading rules of a job's trainer; JobSetupError says why it cannot run."""
        if not job.dataset_id:
            raise JobSetupError("the job has no dataset")
        if job.kind == "caption":
            return self._caption_plan(job, output_dir)
        base_model = job.base_model or BUILTIN_BASE_MODEL_ID
        total_steps = int(job.total_steps or 0)
        if total_steps < 1:
            raise JobSetupError("the job has no total_steps")
        if base_model == BUILTIN_BASE_MODEL_ID:
            try:
                params = validate_params(BUILTIN_BASE_MODEL.params_schema, dict(job.params or {}))
            except ParamsError as exc:
                raise JobSetupError(f"invalid params: {exc}") from None
            dataset_dir = self.trainer_dataset_dir(job, "imagefolder")
            argv = [*self_command("train"), "builtin",
                    "--dataset-dir", str(dataset_dir), "--output-dir", str(output_dir),
                    "--total-steps", str(total_steps),
                    "--resolution", str(params["resolution"]), "--latent-dim", str(params["latent_dim"]),
                    "--learning-rate", repr(float(params["learning_rate"])),
                    "--batch-size", str(params["batch_size"]), "--seed", str(params["seed"]),
                    "--sample-every", str(params["sample_every"]),
                    "--checkpoint-every", str(params["checkpoint_every"])]
            return TrainerPlan(argv=argv, cwd=output_dir, progress_format="jsonl",
                               checkpoints_glob=BUILTIN_CHECKPOINTS_GLOB)
        preset = find_preset(self.data_dir, base_model)
        if preset is None:
            raise JobSetupError(f"the base model {base_model!r} is no longer defined in presets.toml")
        return self._preset_plan(preset, job, output_dir, total_steps)

    def _caption_plan(self, job: TrainingJob, output_dir: Path) -> TrainerPlan:
        """A caption job (issue 17): its preset's command over a folder of the dataset's images inside the
        job's output folder ({dataset_dir}); total_steps is the number of images."""
        from training_studio.server import dataset_ops

        preset = find_preset(self.data_dir, job.base_model or "")
        if preset is None or preset.kind != "caption":
            raise JobSetupError(f"the caption preset {job.base_model!r} is no longer defined in presets.toml")
        assert job.dataset_id is not None
        try:
            folder, count = dataset_ops.prepare_caption_folder(self.storage, job.dataset_id, output_dir)
            run = preset.prepare(job_id=job.id, dataset_dir=folder, output_dir=output_dir,
                                 total_steps=max(1, count), params={})
        except PresetError as exc:
            raise JobSetupError(f"preset {preset.id}: {exc}") from None
        except OSError as exc:
            raise JobSetupError(f"could not prepare the images for the captioner: {exc.strerror or exc}") from None
        return TrainerPlan(argv=run.argv, cwd=preset.cwd or output_dir, env=dict(preset.env),
                           progress_format=preset.progress_format, loss_key=preset.loss_key,
                           progress_bar=run.progress_bar)

    def trainer_dataset_dir(self, job: TrainingJob, layout: str) -> Path:
        """The dataset folder (in `layout`) the trainer is given; the Ray executor (issue 18) copies it
        into the cluster's shared folder instead."""
        assert job.dataset_id is not None
        return self.storage.dataset_layout_dir(job.dataset_id, layout)  # type: ignore[arg-type]

    def _preset_plan(self, preset: Preset, job: TrainingJob, output_dir: Path, total_steps: int) -> TrainerPlan:
        try:
            params = validate_params(list(preset.params_schema), dict(job.params or {}))
        except ParamsError as exc:
            raise JobSetupError(f"invalid params for {preset.id}: {exc}") from None
        assert job.dataset_id is not None
        dataset_dir = self.trainer_dataset_dir(job, preset.dataset_layout)
        try:
            # prepare() also renders the preset's config file (ai-toolkit) into the job's folder and fills
            # the placeholders of the training bar's label ({job_id}, ...).
            run = preset.prepare(job_id=job.id, dataset_dir=dataset_dir, output_dir=output_dir,
                                 total_steps=total_steps, params=params)
        except PresetError as exc:
            raise JobSetupError(f"preset {preset.id}: {exc}") from None
        except OSError as exc:
            raise JobSetupError(f"preset {preset.id}: could not write its config file: {exc.strerror or exc}") from None
        return TrainerPlan(argv=run.argv, cwd=preset.cwd or output_dir, env=dict(preset.env),
                           progress_format=preset.progress_format, loss_key=preset.loss_key,
                           checkpoint_glob=preset.checkpoint_glob, progress_bar=run.progress_bar,
                           checkpoints_glob=preset.checkpoints_glob, series=tuple(preset.series))

    # progress, events, models ---------------------------------------------------------------------
    async def _record_progress(self, job_id: str, points: list[ProgressPoint], active: _ActiveJob | None = None,
                               job: TrainingJob | None = None) -> None:
        moment = utc_now()
        now = format_timestamp(moment)
        rows = [(job_id, point.step, point.total_steps, point.loss, now, point.scalars) for point in points]
        etas: dict[str, str | None] = {}
        if active is not None and points:
            # The ETA rides on the progress update written anyway (no write of its own), and only when it
            # moved enough to matter (runner/eta.py).
            active.eta_total = next((p.total_steps for p in reversed(points) if p.total_steps), None) \
                or active.eta_total or (job.total_steps if job is not None else None)
            catch_up = bool(active.process is not None and active.process.reading_backlog)
            changed, eta = active.eta.update(time.monotonic(), moment.timestamp(), max(p.step for p in points),
                                             active.eta_total, catch_up=catch_up)
            if changed:
                etas[job_id] = None if eta is None else format_timestamp(
                    datetime.fromtimestamp(eta, timezone.utc))
        # A failure (a full disk) is logged by the supervisor, which then keeps the output offsets where
        # they were: the supervision goes on, and the next batch may succeed.
        await asyncio.to_thread(self.storage.record_progress, rows, etas)

    async def _save_offsets(self, job_id: str, offsets: OutputOffsets) -> None:
        await asyncio.to_thread(self.storage.save_output_offsets, job_id, offsets.stdout, offsets.stderr,
                                offsets.log)

    async def _record_phase(self, job_id: str, text: str | None) -> None:
        set_detail = getattr(self.storage, "set_job_detail", None)
        if set_detail is not None:
            await asyncio.to_thread(set_detail, job_id, text)

    async def _handle_event(self, active: _ActiveJob, job: TrainingJob, event: TrainerEvent) -> None:
        if event.name != "checkpoint":
            return
        state = event.data.get("state")
        if state == "writing" and active.model_id is None:
            model = await asyncio.to_thread(self.storage.create_model, job.name, job.base_model or "",
                                            job.id, ModelStatus.PROCESSING.value)
            active.model_id = model.id
            await asyncio.to_thread(self.storage.set_job_status, job.id, JobStatus.RUNNING, model_id=model.id)
        elif state == "written":
            path = self._output_file(active, event.data.get("checkpoint"))
            if path is None:
                logger.warning("job %s: ignoring a checkpoint outside its output folder: %r",
                               job.id, event.data.get("checkpoint"))
                return
            active.checkpoint_path = path
            if active.model_id is None:
                model = await asyncio.to_thread(self.storage.create_model, job.name, job.base_model or "",
                                                job.id, ModelStatus.PROCESSING.value)
                active.model_id = model.id
                await asyncio.to_thread(self.storage.set_job_status, job.id, JobStatus.RUNNING, model_id=model.id)
            # Kept with the model (still processing): a server that re-attaches later knows the file.
            await asyncio.to_thread(self.storage.update_model, active.model_id, path=str(path))

    @staticmethod
    def _output_file(active: _ActiveJob, value: Any) -> Path | None:
        """A trainer-reported file, only if it lies inside the job's output folder (links resolved)."""
        if not isinstance(value, str) or not value or active.output_dir is None:
            return None
        path = Path(value)
        return inside_output_dir(active.output_dir, path if path.is_absolute() else active.output_dir / path)

    def _settle_model_on_success(self, active: _ActiveJob, job: TrainingJob, plan: TrainerPlan) -> str | None:
        """Mark the model ready (or failed); for a trainer that announced no checkpoint, register the
        final one its preset declares (final_checkpoint)."""
        checkpoint = active.checkpoint_path
        if checkpoint is None and active.output_dir is not None:
            checkpoint = final_checkpoint(active.output_dir, plan.checkpoint_glob, plan.checkpoints_glob, job.id)
        if checkpoint is None and active.model_id is None:
            return None
        if active.model_id is None:
            active.model_id = self.storage.create_model(job.name, job.base_model or "", job.id,
                                                        ModelStatus.PROCESSING.value).id
        try:
            size = checkpoint.stat().st_size if checkpoint is not None else None
        except OSError:
            size = None
        if checkpoint is None or size is None:
            self.storage.update_model(active.model_id, status=ModelStatus.FAILED.value,
                                      error="the trainer finished without writing its checkpoint")
        else:
            self.storage.update_model(active.model_id, status=ModelStatus.READY.value, size_bytes=size,
                                      path=str(checkpoint))
        return active.model_id

    def _append_log(self, job_id: str, text: str) -> None:
        path = self.storage.job_log_path(job_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as handle:
                handle.write(text.encode("utf-8", "replace"))
        except OSError:
            logger.exception("job %s: could not write its log", job_id)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def inside_output_dir(output_dir: Path, path: Path) -> Path | None:
    """`path` with its links resolved, if that lies strictly inside `output_dir` (also resolved)."""
    try:
        root = output_dir.resolve()
        real = path.resolve()
    except (OSError, RuntimeError):  # a link loop
        return None
    if real != root and root in real.parents:
        return real
    return None


def final_checkpoint(output_dir: Path, checkpoint_glob: str | None, checkpoints_glob: str | None,
                     job_id: str) -> Path | None:
    """The file a preset trainer that announces nothing leaves as its trained model, or None.

    The newest `checkpoint_glob` match that is not one of the intermediate checkpoints (`checkpoints_glob`,
    e.g. kohya's `lora.safetensors`, not `lora-step00000040.safetensors`, which a `*.safetensors` glob also
    matches); without one, the intermediate checkpoint of the highest step (a trainer whose last save is
    a step checkpoint, or a preset that declares only `checkpoints_glob`). Only a file that is, once its
    links are resolved, inside the job's folder (and not in our control folder) counts: a symlink out of
    it must not get another file served as the model. Blocking.
    """
    root = output_dir.resolve()

    def real_file(path: Path) -> Path | None:
        real = inside_output_dir(output_dir, path)
        if real is None:
            logger.warning("job %s: ignoring %s: it resolves outside the job's folder", job_id, path)
            return None
        if CONTROL_DIR_NAME in real.relative_to(root).parts or not real.is_file():
            return None
        return real

    finals: list[tuple[float, Path]] = []
    if checkpoint_glob:
        for match in output_dir.glob(checkpoint_glob):
            name = match.relative_to(output_dir).as_posix()
            if checkpoints_glob and output_file_allowed(checkpoints_glob, job_id, name):
                continue  # an intermediate one: the fallback below
            real = real_file(match)
            if real is not None:
                with contextlib.suppress(OSError):
                    finals.append((real.stat().st_mtime, real))
    if finals:
        return max(finals, key=lambda item: item[0])[1]
    if checkpoints_glob:
        for output in reversed(find_outputs(output_dir, checkpoints_glob, job_id)):  # highest step first
            real = real_file(output_dir / output.name)
            if real is not None:
                return real
    return None


def _series_rule(value: Any) -> tuple[str, ...]:
    """The `series` reading rule as kept in spec.json (a list of postfix key patterns)."""
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def job_runner_factory(storage: Storage, config: Any) -> JobRunner:
    """The server's ExecutorFactory: a JobRunner configured from the serve options."""
    return JobRunner(storage, config.data_dir, concurrency=int(getattr(config, "concurrency", 1)),
                     cancel_grace=float(getattr(config, "cancel_grace_s", DEFAULT_CANCEL_GRACE_S)),
                     gpus=getattr(config, "gpus", None))
