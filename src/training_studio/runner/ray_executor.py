"""The Ray executor (issue 18): the server's JobExecutor that runs each job's trainer as a Ray job.

Owns submitting a job's trainer command to a Ray cluster through Ray's Jobs API
(`JobSubmissionClient`) and following it there, while our server stays the source of truth. What it
shares with the local runner it inherits from `JobRunner`: the queue (held, chained and scheduled jobs
are submitted only when the queue releases them, in queue order; there is no concurrency limit of ours,
the cluster decides what runs), the trainer's argv and reading rules (`plan_for`), the progress, event
and model handling, and how a job's end is recorded (`_finish`).

A job's life here: its dataset is copied into the shared folder (`--shared-dir`, seen by every node at
the same path) and its outputs are written there, moved into the data dir when it ends. Without a shared
folder the dataset travels with the job instead: a copy staged in `<data dir>/ray-staging/<job id>/
package` is the job's Ray `working_dir` (Ray zips and uploads it at submission, and unpacks it on the
node; we allow up to WORKING_DIR_LIMIT_BYTES, Ray itself 512 MiB), and the trainer is given it through a
link its command makes first (`ray-staging/<job id>/working_dir` -> Ray's unpacked copy). The outputs
then have no way back from another machine, so this needs the Ray head on this machine (the address
resolves to one of ours): the job's driver is pinned to the head node (`node:__internal_head__`) and the
trainer writes straight into the job's folder in the data dir. A job for a head elsewhere is refused,
saying it needs --shared-dir, rather than losing its outputs.

Each job is submitted with the submission id
`training-studio-<job id>`, stored first in the job's `placement` JSON ({executor: "ray", address,
node, submission_id}), so a server killed right after submitting finds the Ray job again instead of
starting a second one. Ray's PENDING keeps the job `queued`, RUNNING makes it `running`, and
SUCCEEDED/FAILED/STOPPED end it completed/failed/cancelled. A cluster that cannot be reached at
submission keeps the job queued, retried with backoff, its `detail` saying "waiting for the Ray
cluster: <reason>"; one unreachable mid-job keeps it running with "cluster unreachable since …".

`_prepare_run` (shared with the local runner) takes the job and builds its plan; a caption job (issue 17)
works in its output folder (shared, or ours with a local head) and its captions are read back from there
once its outputs are home. The job's placement `node` is Ray's driver node id, `host` that node's address.

Progress and logs come from Ray's log tail through the same `StreamReader` and `ErrorTracker` as local
jobs. Ray's tail replays the whole log from its start each time it is opened, and can close while the
job still runs: we count the bytes already handled (kept in the job row's stdout offset, with the
job's log size, exactly as the local runner keeps its offsets) and skip them on every re-tail. A
restarted server re-attaches to its Ray jobs by their stored submission ids and reads on from there;
points at or below the job's recorded step are not recorded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
import os
import re
import shlex
import shutil
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training_studio.contract import JobStatus, TrainingJob, format_timestamp, utc_now
from training_studio.runner.job_runner import (
    DEFAULT_CANCEL_GRACE_S,
    JobRunner,
    JobSetupError,
    TrainerPlan,
    _ActiveJob,
)
from training_studio.runner.presets import ensure_presets_file
from training_studio.runner.process_groups import JOB_ENV_MARKER
from training_studio.runner.progress import (
    ErrorTracker,
    LogLine,
    PhaseUpdate,
    ProgressPoint,
    StreamReader,
    TrainerEvent,
    describe_failure,
)
from training_studio.runner.supervisor import MAX_CARRY_BYTES, TrainerOutcome

if TYPE_CHECKING:
    from training_studio.server.storage import Storage

logger = logging.getLogger(__name__)

SUBMISSION_PREFIX = "training-studio-"
# The cluster decides what runs: our own limit only bounds how many jobs one server follows.
MAX_FOLLOWED_JOBS = 10_000
STATUS_POLL_S = 0.5
RETRY_MIN_S = 1.0
RETRY_MAX_S = 10.0
FLUSH_INTERVAL_S = 0.25
# Ray's client sets no timeout on its HTTP requests: a head that is stopped (not gone) would hold a call
# forever. Calls run in a pool of their own, so stuck ones never starve the server's other threads.
RAY_CALL_TIMEOUT_S = 15.0
RAY_CALL_THREADS = 4
# While a tail is open, how often the job's status is checked too (a tail can hang on a stopped head).
PROBE_INTERVAL_S = 2.0
# After Ray says the job ended, how long its tail may take to close by itself.
TAIL_END_GRACE_S = 5.0
RAY_STATES = {"PENDING": JobStatus.QUEUED, "RUNNING": JobStatus.RUNNING, "SUCCEEDED": JobStatus.COMPLETED,
              "FAILED": JobStatus.FAILED, "STOPPED": JobStatus.CANCELLED}
TERMINAL_RAY_STATES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
# Without --shared-dir a job's dataset travels as its Ray working_dir: ours is the documented limit (Ray's is
# its gRPC message size, 512 MiB, and every job's package is kept in the head's object store for a while).
# TRAINING_STUDIO_RAY_WORKING_DIR_MIB sets another one (README: a fast network, or tests of the refusal).
WORKING_DIR_LIMIT_BYTES = 100 * 2**20
WORKING_DIR_LIMIT_ENV = "TRAINING_STUDIO_RAY_WORKING_DIR_MIB"
# A working_dir is uploaded by the submission itself: it gets longer than a plain Jobs API call.
RAY_UPLOAD_TIMEOUT_S = 300.0
# Ray's own resource on the head node only: a tiny amount of it pins the job's driver there.
HEAD_NODE_RESOURCE = "node:__internal_head__"
STAGING_DIR_NAME = "ray-staging"
LOST_JOB_ERROR = ("the Ray cluster no longer knows this job (its head restarted without GCS fault tolerance, "
                  "so its jobs were lost)")


class RayUnavailable(Exception):
    """The Ray cluster could not be reached; the message says why."""


class _JobLost(Exception):
    """The cluster answers but does not know the submission id."""


def submission_id_for(job_id: str) -> str:
    return f"{SUBMISSION_PREFIX}{job_id}"


class SubmissionOrder:
    """Ray submissions go out in the order the queue released their jobs. Jobs released together (a chain's
    end frees several) are prepared at once, each in its own task with its own worker-thread steps, so their
    submissions would otherwise race, and the later job could reach a cluster short of CPUs first. Each job
    takes a ticket as its task starts (tasks start in the order the queue created them), waits for every
    earlier ticket before it submits, and gives its ticket back once submitted, or once it ends without
    submitting (`done`, idempotent)."""

    def __init__(self) -> None:
        self._issued = 0
        self._next = 0  # every ticket below this one is done
        self._done: set[int] = set()
        self._waiting: dict[int, asyncio.Event] = {}

    def take(self) -> int:
        ticket = self._issued
        self._issued += 1
        return ticket

    async def wait_turn(self, ticket: int) -> None:
        if ticket > self._next:
            await self._waiting.setdefault(ticket, asyncio.Event()).wait()

    def done(self, ticket: int) -> None:
        if ticket < self._next or ticket in self._done:
            return
        self._done.add(ticket)
        while self._next in self._done:
            self._done.discard(self._next)
            self._next += 1
        for waiting in [t for t in self._waiting if t <= self._next]:
            self._waiting.pop(waiting).set()


class RayExecutor(JobRunner):
    """Runs the embedded server's jobs on a Ray cluster; the server's JobExecutor for `--executor ray`."""

    def __init__(self, storage: Storage, data_dir: Path | str, *, address: str, shared_dir: Path | str | None,
                 cancel_grace: float = DEFAULT_CANCEL_GRACE_S) -> None:
        super().__init__(storage, data_dir, concurrency=MAX_FOLLOWED_JOBS, cancel_grace=cancel_grace)
        self.address = address
        # None: no folder shared with the cluster (datasets travel as working_dir, the head must be local)
        self.shared_dir = Path(shared_dir) if shared_dir is not None else None
        self._head_here: bool | None = None
        self._client: Any = None
        self._ray_pool = ThreadPoolExecutor(max_workers=RAY_CALL_THREADS, thread_name_prefix="ray-jobs-api")
        self._submission_order = SubmissionOrder()
        self._unreachable_since: dict[str, str] = {}

    # the Jobs API ----------------------------------------------------------------------------------
    def _jobs_client(self) -> Any:
        """Ray's JobSubmissionClient (blocking: call it in a thread); RayUnavailable if unreachable."""
        if self._client is not None:
            return self._client
        from ray.job_submission import JobSubmissionClient

        try:
            self._client = JobSubmissionClient(self.address)
        except Exception as exc:
            raise RayUnavailable(_reason(exc)) from None
        return self._client

    def _call_ray(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One Jobs API call (blocking). RayUnavailable when the cluster does not answer, _JobLost when it
        does not know the job; other errors (a refused submission) are raised as they are."""
        client = self._jobs_client()
        try:
            return getattr(client, method)(*args, **kwargs)
        except Exception as exc:
            text = str(exc)
            if "does not exist" in text or "not found" in text.lower() and "job" in text.lower():
                raise _JobLost(text) from None
            if _is_connection_error(exc) or _SERVER_ERROR.search(text):
                # A 5xx is the cluster not ready (a head just started: "No available agent to submit job,
                # please try again later"), not a refusal of the job: wait and try again.
                self._client = None  # a fresh client next time (the head may have moved or restarted)
                raise RayUnavailable(_reason(exc)) from None
            raise

    async def _ray(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A Jobs API call from the event loop, in the Ray pool, bounded by RAY_CALL_TIMEOUT_S."""
        return await self._in_ray_pool(functools.partial(self._call_ray, method, *args, **kwargs))

    async def _ray_client(self) -> Any:
        return await self._in_ray_pool(self._jobs_client)

    async def _in_ray_pool(self, call: Any, timeout: float = RAY_CALL_TIMEOUT_S) -> Any:
        future = asyncio.get_running_loop().run_in_executor(self._ray_pool, call)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            self._client = None
            raise RayUnavailable(f"no answer from {self.address} in {timeout:.0f} s") from None

    # JobExecutor protocol ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Re-attach to the Ray jobs a previous server left running (by their submission ids), then take
        the waiting jobs as the local runner does. Queued jobs already submitted are found again by their
        submission id when they are taken."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        await asyncio.to_thread(ensure_presets_file, self.data_dir)
        for job in await asyncio.to_thread(self.storage.jobs_with_status, [JobStatus.RUNNING]):
            placement = await asyncio.to_thread(self._stored_placement, job.id)
            if placement.get("executor") == "ray" and placement.get("submission_id"):
                self._reattach(job.id)
            else:
                logger.warning("job %s runs under the local executor: this server (--executor ray) does not "
                               "follow it; a server with --executor local will", job.id)
        waiting = await asyncio.to_thread(self.storage.jobs_with_status, [JobStatus.PENDING, JobStatus.QUEUED])
        for waiting_job in waiting:
            self._accept(waiting_job.id)
        early, self._submitted_early = self._submitted_early, []
        for job_id in early:
            self._accept(job_id)

    async def cancel(self, job_id: str) -> None:
        active = self._active.get(job_id)
        if active is None:
            await super().cancel(job_id)
            return
        active.cancel_requested = True
        placement = await asyncio.to_thread(self._stored_placement, job_id)
        if placement.get("submission_id"):
            # The follower sees STOPPED and records the job as cancelled.
            try:
                await self._ray("stop_job", placement["submission_id"])
            except (RayUnavailable, _JobLost) as exc:
                logger.warning("job %s: could not ask Ray to stop it: %s", job_id, exc)
            except Exception:
                logger.exception("job %s: Ray's stop_job failed", job_id)

    async def shutdown(self) -> None:
        """Stop following: Ray jobs run on, and the next server re-attaches to them."""
        self._shutting_down = True
        self._waiting.clear()
        tasks = [active.task for active in self._active.values() if active.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        self._ray_pool.shutdown(wait=False, cancel_futures=True)

    # the shared folder, or the job's own working_dir ---------------------------------------------------
    def job_shared_dir(self, job_id: str) -> Path:
        assert self.shared_dir is not None
        return self.shared_dir / "jobs" / job_id

    def job_output_dir(self, job_id: str) -> Path:
        """Where the trainer writes: the shared folder, or (no shared folder: the head is on this machine)
        the job's own folder in the data dir."""
        if self.shared_dir is None:
            return self.storage.job_output_dir(job_id)
        return self.job_shared_dir(job_id) / "output"

    def job_staging_dir(self, job_id: str) -> Path:
        """Without a shared folder: the working_dir package staged for Ray, and the link to Ray's copy."""
        return self.data_dir / STAGING_DIR_NAME / job_id

    def plan_for(self, job: TrainingJob, output_dir: Path) -> TrainerPlan:
        if self.shared_dir is None and not self._head_on_this_machine():
            raise JobSetupError(
                f"the Ray head at {self.address} is not on this machine and the server has no --shared-dir: "
                "the job's outputs could not come back. Start the server with --shared-dir, a folder every "
                "node of the cluster sees at the same path")
        return super().plan_for(job, output_dir)

    def trainer_dataset_dir(self, job: TrainingJob, layout: str) -> Path:
        """The job's own copy of its dataset (a dataset edited later does not change a job already
        submitted): in the shared folder, so every node reads the same files; or, without one, in the
        job's working_dir package (up to WORKING_DIR_LIMIT_BYTES), read where Ray unpacked it. Blocking."""
        source = super().trainer_dataset_dir(job, layout)
        if self.shared_dir is None:
            size, limit = _tree_size(source), working_dir_limit()
            if size > limit:
                raise JobSetupError(
                    f"the dataset is {_mib(size)} MiB: without --shared-dir a dataset travels with its job as "
                    f"Ray's working_dir, up to {_mib(limit)} MiB. Start the server with --shared-dir, a folder "
                    "every node of the cluster sees, for bigger datasets")
            staging = self.job_staging_dir(job.id)
            target, where = staging / "package" / "dataset" / layout, "the job's working_dir package"
            seen_at = staging / "working_dir" / "dataset" / layout
        else:
            target, where = self.job_shared_dir(job.id) / "dataset" / layout, f"the shared folder {self.shared_dir}"
            seen_at = target
        if target.is_dir():
            return seen_at
        partial = target.with_name(f".{layout}.partial")
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(partial)
        try:
            partial.parent.mkdir(parents=True, exist_ok=True)
            # The package Ray zips may hold links to our files; the shared folder gets real copies.
            shutil.copytree(source, partial, **({"copy_function": _link_or_copy} if self.shared_dir is None else {}))
            partial.rename(target)
        except OSError as exc:
            raise JobSetupError(f"could not copy the dataset into {where}: {exc.strerror or exc}") from None
        return seen_at

    def _head_on_this_machine(self) -> bool:
        """Whether the Ray address names this machine (loopback, or one of its interfaces). Blocking (a
        name lookup); a name that resolves is answered once."""
        if self._head_here is not None:
            return self._head_here
        host = urllib.parse.urlsplit(self.address).hostname or ""
        try:
            found = {str(info[4][0]).split("%")[0] for info in socket.getaddrinfo(host, None)}
        except OSError:
            return False
        import psutil

        ours = {item.address.split("%")[0] for items in psutil.net_if_addrs().values() for item in items}
        self._head_here = any(_is_loopback(address) or address in ours for address in found)
        return self._head_here

    # running a job -------------------------------------------------------------------------------------
    async def _run_job(self, active: _ActiveJob) -> None:
        ticket = self._submission_order.take()  # before any await: in the order the queue released the jobs
        try:
            await self._prepare_and_submit(active, ticket)
        finally:
            self._submission_order.done(ticket)  # also when it ended (or was cancelled) before submitting

    async def _prepare_and_submit(self, active: _ActiveJob, ticket: int) -> None:
        job_id = active.job_id
        output_dir = self.job_output_dir(job_id)
        folder_error = ("could not create the job's folder in the shared folder" if self.shared_dir is not None
                        else "could not create the job's output folder")
        prepared = await self._prepare_run(active, output_dir, folder_error=folder_error)
        if prepared is None:
            await asyncio.to_thread(self._remove_staging, job_id)
            return
        job, plan = prepared
        if self.shared_dir is not None:
            # The job's folder in the data dir shows the shared one while the job runs (live samples and
            # checkpoints through the usual routes); the outputs move home when the job ends.
            await asyncio.to_thread(self._link_job_dir, job_id, output_dir)
        submission_id = submission_id_for(job_id)
        # Stored before submitting: a server killed in between finds the Ray job by this id.
        placement = {"executor": "ray", "address": self.address, "node": None, "gpus": [],
                     "submission_id": submission_id, "output_dir": str(output_dir),
                     "rules": plan.reading_rules()}
        await asyncio.to_thread(self.storage.set_job_placement, job_id, placement)
        entrypoint = shlex.join(plan.argv)
        env = {**plan.env, "PYTHONUNBUFFERED": "1", JOB_ENV_MARKER: job_id}
        num_gpus = _num_gpus(job.params)
        await asyncio.to_thread(self._append_log, job_id,
                                f"[training-studio] {format_timestamp(utc_now())} submitting to the Ray cluster "
                                f"{self.address} as {submission_id}: {entrypoint}\n")
        await self._submission_order.wait_turn(ticket)
        delay = RETRY_MIN_S
        while True:
            if active.cancel_requested:
                await asyncio.to_thread(self._remove_staging, job_id)
                await asyncio.to_thread(self.storage.set_job_status, job_id, JobStatus.CANCELLED)
                return
            try:
                await self._in_ray_pool(functools.partial(self._submit, submission_id, entrypoint, env, num_gpus,
                                                          plan), RAY_UPLOAD_TIMEOUT_S)
                if active.cancel_requested:  # cancelled while the submission was on its way
                    with contextlib.suppress(Exception):
                        await self._ray("stop_job", submission_id)
                break
            except RayUnavailable as exc:
                await self._record_phase(job_id, f"waiting for the Ray cluster: {exc}")
            except Exception as exc:  # refused by Ray: the job cannot run there
                reason = f"the Ray cluster refused the job: {_reason(exc)}"
                await asyncio.to_thread(self._append_log, job_id, f"[training-studio] {reason}\n")
                await asyncio.to_thread(self._remove_staging, job_id)
                await asyncio.to_thread(self.storage.set_job_status, job_id, JobStatus.FAILED, error=reason)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
        self._submission_order.done(ticket)  # submitted: the next released job may go
        await self._record_phase(job_id, None)
        # Ray holds the working_dir package now (uploaded at submission): our staged copy is not needed.
        await asyncio.to_thread(shutil.rmtree, self.job_staging_dir(job_id) / "package", True)
        await self._follow(active, job, plan, submission_id, attached=False)

    def _submit(self, submission_id: str, entrypoint: str, env: dict[str, str], num_gpus: float,
                plan: TrainerPlan) -> None:
        """Submit, or find the job already submitted under this id (by a server killed right after)."""
        try:
            self._call_ray("get_job_status", submission_id)
            return  # already there: follow it
        except _JobLost:
            pass
        kwargs: dict[str, Any] = {"entrypoint": entrypoint, "submission_id": submission_id,
                                  "runtime_env": {"env_vars": env},
                                  "metadata": {"training_studio_job": submission_id[len(SUBMISSION_PREFIX):]}}
        if num_gpus:
            kwargs["entrypoint_num_gpus"] = num_gpus
        # One CPU per trainer, so a cluster's CPUs (not our concurrency limit) decide how many run at once.
        kwargs["entrypoint_num_cpus"] = 1
        # The trainer runs in its output folder, as it does locally.
        command = f"cd {shlex.quote(str(plan.cwd))} && {entrypoint}"
        if self.shared_dir is None:
            # Our outputs folder is only on this machine: the driver runs on the head, which is here.
            kwargs["entrypoint_resources"] = {HEAD_NODE_RESOURCE: 0.001}
            staging = self.job_staging_dir(submission_id[len(SUBMISSION_PREFIX):])
            if (staging / "package").is_dir():
                # Ray starts the command in its unpacked working_dir: the link shows it where the
                # trainer's argv says the dataset is.
                kwargs["runtime_env"]["working_dir"] = str(staging / "package")
                link = shlex.quote(str(staging / "working_dir"))
                command = f'ln -sfn "$PWD" {link} && {command}'
        kwargs["entrypoint"] = command
        self._call_ray("submit_job", **kwargs)

    async def _run_attached(self, active: _ActiveJob) -> None:
        job_id = active.job_id
        job = await asyncio.to_thread(self.storage.get_job, job_id)
        if job is None or job.status is not JobStatus.RUNNING:
            return
        placement = await asyncio.to_thread(self._stored_placement, job_id)
        output_dir = Path(placement.get("output_dir") or self.job_output_dir(job_id))
        active.output_dir = output_dir
        plan = TrainerPlan.from_reading_rules(placement.get("rules") or {}, output_dir)
        active.model_id = job.model_id
        if job.model_id:
            model = await asyncio.to_thread(self.storage.get_model, job.model_id)
            if model is not None and model.path:
                active.checkpoint_path = Path(model.path)
        await self._follow(active, job, plan, str(placement["submission_id"]), attached=True)

    async def _follow(self, active: _ActiveJob, job: TrainingJob, plan: TrainerPlan, submission_id: str, *,
                      attached: bool) -> None:
        """Follow a submitted Ray job to its end: status, log tail, progress; then record how it ended."""
        job_id = job.id
        follower = _LogFollower(self, active, job, plan, attached=attached)
        await asyncio.to_thread(follower.open)
        try:
            info = await self._wait_until_started(active, job, submission_id)
            if info is None:
                return
            while _state(info) not in TERMINAL_RAY_STATES:
                await self._tail_once(active, job_id, submission_id, follower)
                info = await self._status(active, job_id, submission_id)
                if info is None:
                    return
                if _state(info) not in TERMINAL_RAY_STATES:
                    await asyncio.sleep(STATUS_POLL_S)  # the tail closed early: open it again
            # The tail may have closed before the last lines: read the rest of the whole log once.
            with contextlib.suppress(RayUnavailable, _JobLost):
                text = await self._ray("get_job_logs", submission_id)
                follower.seen = 0
                await follower.feed_text(text)
            await follower.close()
        finally:
            follower.close_log()
        await self._end(active, job, plan, follower.outcome(_state(info), getattr(info, "message", None),
                                                            getattr(info, "driver_exit_code", None)))

    async def _tail_once(self, active: _ActiveJob, job_id: str, submission_id: str, follower: "_LogFollower") -> None:
        """One tail of the job's log, with its status checked meanwhile: a head that stops answering shows in
        the job's detail, and a tail still open after Ray said the job ended is closed here."""
        tail = asyncio.get_running_loop().create_task(follower.tail(submission_id), name=f"tail-{job_id}")
        ended_at: float | None = None
        try:
            while True:
                done, _ = await asyncio.wait({tail}, timeout=PROBE_INTERVAL_S)
                if done:
                    tail.result()
                    return
                if ended_at is not None:
                    if time.monotonic() - ended_at > TAIL_END_GRACE_S:
                        return  # the finally cancels it; what it had not recorded is read again
                    continue
                try:
                    info = await self._ray("get_job_info", submission_id)
                except (RayUnavailable, _JobLost) as exc:
                    await self._note_unreachable(job_id, str(exc))
                    continue
                await self._note_reachable(job_id)
                if _state(info) in TERMINAL_RAY_STATES:
                    ended_at = time.monotonic()
        finally:
            if not tail.done():
                tail.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tail

    async def _wait_until_started(self, active: _ActiveJob, job: TrainingJob, submission_id: str) -> Any:
        """Poll while Ray says PENDING (the job stays queued); mark it running when Ray does. Ray's job
        info then, or None once the job was recorded as ended here (lost)."""
        said: str | None = None
        while True:
            info = await self._status(active, job.id, submission_id)
            if info is None:
                return None
            if _state(info) == "PENDING" and active.cancel_requested:
                # Ray's stop of a job still pending (its supervisor not placed yet) leaves it PENDING until
                # Ray's own start timeout; the stop was requested, so it never starts: cancelled here.
                await self._end(active, job, TrainerPlan(argv=[], cwd=Path(".")), TrainerOutcome("cancelled", None))
                return None
            if _state(info) == "PENDING":
                # Ray's own words on why it waits (its runtime environment, resources...), as the detail.
                message = " ".join(str(getattr(info, "message", "") or "").split())
                if message and message != said:
                    said = message
                    await self._record_phase(job.id, f"pending on the Ray cluster: {message}")
            else:
                if said is not None:
                    await self._record_phase(job.id, None)
                current = await asyncio.to_thread(self.storage.get_job, job.id)
                if current is not None and current.status is JobStatus.QUEUED and _state(info) != "STOPPED":
                    await asyncio.to_thread(self.storage.set_job_status, job.id, JobStatus.RUNNING,
                                            started_at=format_timestamp(utc_now()))
                await self._note_node(job.id, info)
                return info
            await asyncio.sleep(STATUS_POLL_S)

    async def _status(self, active: _ActiveJob, job_id: str, submission_id: str) -> Any:
        """Ray's job info, waiting (detail "cluster unreachable since …") while the cluster does not
        answer; None once the job was recorded here as failed because the cluster lost it."""
        delay = RETRY_MIN_S
        while True:
            try:
                info = await self._ray("get_job_info", submission_id)
                await self._note_reachable(job_id)
                return info
            except RayUnavailable as exc:
                await self._note_unreachable(job_id, str(exc))
            except _JobLost:
                self._unreachable_since.pop(job_id, None)
                await asyncio.to_thread(self._append_log, job_id, f"[training-studio] {LOST_JOB_ERROR}\n")
                job = await asyncio.to_thread(self.storage.get_job, job_id)
                if job is not None:
                    await self._end(active, job, TrainerPlan(argv=[], cwd=Path(".")),
                                    TrainerOutcome("failed", None, LOST_JOB_ERROR))
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _note_unreachable(self, job_id: str, reason: str) -> None:
        if job_id not in self._unreachable_since:
            self._unreachable_since[job_id] = format_timestamp(utc_now())
            logger.warning("job %s: the Ray cluster is unreachable: %s", job_id, reason)
            await self._record_phase(job_id, f"cluster unreachable since {self._unreachable_since[job_id]}: "
                                             f"{reason}")

    async def _note_reachable(self, job_id: str) -> None:
        if self._unreachable_since.pop(job_id, None) is not None:
            logger.info("job %s: the Ray cluster answers again", job_id)
            await self._record_phase(job_id, None)

    async def _note_node(self, job_id: str, info: Any) -> None:
        """Which node runs the entrypoint (Ray's driver node id, as /api/system's cluster lists it) and that
        node's address (from its agent's, which Ray's job details give), in the job's placement."""
        node = getattr(info, "driver_node_id", None)
        host = urllib.parse.urlsplit(str(getattr(info, "driver_agent_http_address", None) or "")).hostname
        placement = await asyncio.to_thread(self._stored_placement, job_id)
        if node and (placement.get("node") != node or (host and placement.get("host") != host)):
            placement["node"] = node
            if host:
                placement["host"] = host
            await asyncio.to_thread(self.storage.set_job_placement, job_id, placement)

    async def _end(self, active: _ActiveJob, job: TrainingJob, plan: TrainerPlan, outcome: TrainerOutcome) -> None:
        """Bring the job's outputs home from the shared folder, then record its end as the local runner does
        (a caption job's captions are read from its outputs there)."""
        await asyncio.to_thread(self._bring_outputs_home, active)
        await asyncio.to_thread(self._remove_staging, active.job_id)
        await self._finish(active, job, plan, outcome)

    def _remove_staging(self, job_id: str) -> None:
        shutil.rmtree(self.job_staging_dir(job_id), ignore_errors=True)

    def _link_job_dir(self, job_id: str, output_dir: Path) -> None:
        local = self.storage.job_output_dir(job_id)
        if local.is_symlink() or local.exists():
            return
        local.parent.mkdir(parents=True, exist_ok=True)
        local.symlink_to(output_dir, target_is_directory=True)

    def _bring_outputs_home(self, active: _ActiveJob) -> None:
        """Move the job's outputs from the shared folder into its folder in the data dir, where the model
        and output routes serve them and job deletion removes them; the dataset copy is dropped. Blocking;
        on failure the outputs stay in the shared folder (said in the server log)."""
        shared, local = active.output_dir, self.storage.job_output_dir(active.job_id)
        if self.shared_dir is None or shared is None or not shared.is_dir() or shared == local:
            return
        try:
            if local.is_symlink():
                local.unlink()
            if local.exists():
                return
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(shared), str(local))
        except OSError:
            logger.exception("job %s: its outputs stay in the shared folder %s", active.job_id, shared)
            return
        active.output_dir = local
        if active.checkpoint_path is not None:
            with contextlib.suppress(ValueError):
                active.checkpoint_path = local / active.checkpoint_path.relative_to(shared)
                if active.model_id is not None:
                    self.storage.update_model(active.model_id, path=str(active.checkpoint_path))
        shutil.rmtree(self.job_shared_dir(active.job_id), ignore_errors=True)

    # stored state ------------------------------------------------------------------------------------
    def _stored_placement(self, job_id: str) -> dict[str, Any]:
        """The job's placement JSON as stored, with our own keys (submission_id, output_dir, rules) that
        the contract's Placement does not carry."""
        rows = self.storage._query("SELECT placement FROM jobs WHERE id = ?", (job_id,))
        if not rows or not rows[0]["placement"]:
            return {}
        try:
            value = json.loads(rows[0]["placement"])
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def _stored_offsets(self, job_id: str) -> tuple[int, int | None]:
        rows = self.storage._query("SELECT stdout_offset, log_offset FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            return 0, None
        return int(rows[0]["stdout_offset"] or 0), rows[0]["log_offset"]


class _LogFollower:
    """One Ray job's log, read through the local parsers. Ray's tail replays the log from its start each
    time it is opened: bytes up to what was already taken are skipped. Only whole lines are parsed, so
    the recorded offset (`committed`, saved with the job's log size after the log bytes and the progress
    they carry are written) always falls between lines, where a restarted server can read on."""

    def __init__(self, executor: RayExecutor, active: _ActiveJob, job: TrainingJob, plan: TrainerPlan, *,
                 attached: bool) -> None:
        self.executor = executor
        self.active = active
        self.job = job
        self.plan = plan
        self.reader = self._new_reader()
        self.errors = ErrorTracker()
        self.attached = attached
        self.committed = 0  # bytes of Ray's log (UTF-8) parsed and recorded
        self.parsed = 0  # bytes parsed (>= committed; the difference waits for the next flush)
        self.carry = b""  # bytes after `parsed`: a line not complete yet
        self.seen = 0  # bytes of the current tail seen so far (replayed ones included)
        self.floor_step = -1  # points at or below this step were recorded by a previous server
        self.log_path = executor.storage.job_log_path(job.id)
        self._log: Any = None
        self._points: list[ProgressPoint] = []
        self._phase: PhaseUpdate | None = None
        self._events: list[TrainerEvent] = []
        self._log_bytes = bytearray()
        self._last_flush = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._timed_flushes: set[asyncio.Task[None]] = set()
        self._flushing = asyncio.Lock()

    def _new_reader(self) -> StreamReader:
        plan = self.plan
        return StreamReader(plan.progress_format, plan.loss_key,  # type: ignore[arg-type]
                            progress_bar=plan.progress_bar, total_steps=self.job.total_steps,
                            series=plan.series, name=self.job.id)

    def open(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        size = os.fstat(self._log.fileno()).st_size
        if self.attached:
            committed, log_size = self.executor._stored_offsets(self.job.id)
            self.committed = self.parsed = committed
            if log_size is not None and size > log_size:
                self._log.truncate(log_size)  # written but not recorded as handled: read again
            # A server killed between recording points and their offset reads them again: not twice.
            self.floor_step = int(self.job.current_step or 0) if committed else -1
            self._log.write(f"[training-studio] {datetime.now(timezone.utc).isoformat(timespec='seconds')} "
                            f"a new server follows this Ray job from here on\n".encode())
            self._log.flush()

    def close_log(self) -> None:
        """Stop recording (the job ended, or this server stops following it: the next reads on from the
        saved offset)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    async def tail(self, submission_id: str) -> str | None:
        """Read Ray's log tail until it closes; the error that closed it, if any. Cancelled (a tail that
        hangs), what was parsed but not recorded is dropped, to be read again."""
        self.seen = 0
        try:
            client = await self.executor._ray_client()
            async for chunk in client.tail_job_logs(submission_id):
                await self.feed_text(chunk)
        except asyncio.CancelledError:
            self.rewind()
            raise
        except RayUnavailable as exc:
            await self.flush()
            return str(exc)
        except Exception as exc:
            await self.flush()
            return _reason(exc)
        await self.flush()
        return None

    def rewind(self) -> None:
        """Forget what was parsed since the last flush: the next tail reads it again."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.parsed, self.carry = self.committed, b""
        self._points, self._events, self._phase, self._log_bytes = [], [], None, bytearray()
        self.reader = self._new_reader()

    async def feed_text(self, text: str) -> None:
        """A piece of the log as Ray gives it (from its start on each tail): skip what was taken."""
        data = text.encode("utf-8")
        start = self.seen
        self.seen += len(data)
        taken = self.parsed + len(self.carry)
        if self.seen <= taken:
            return
        if start < taken:
            data = data[taken - start:]
        buffer = self.carry + data
        cut = max(buffer.rfind(b"\n"), buffer.rfind(b"\r")) + 1
        if cut == 0 and len(buffer) > MAX_CARRY_BYTES:
            cut = len(buffer)
        lines, self.carry = buffer[:cut], buffer[cut:]
        if lines:
            self.parsed += len(lines)
            self._handle(self.reader.feed(lines))
            self._log_bytes += lines
        if self._events or time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            await self.flush()
        elif self._timer is None:
            # Ray sends nothing more until the trainer prints again: what is here must not wait for that.
            delay = max(0.0, self._last_flush + FLUSH_INTERVAL_S - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._flush_soon)

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._timed_flushes.add(task)
        task.add_done_callback(self._timed_flushes.discard)

    def _handle(self, items: list[Any]) -> None:
        for item in items:
            if isinstance(item, ProgressPoint):
                if item.step > self.floor_step:
                    self._points.append(item)
            elif isinstance(item, LogLine):
                self.errors.add(item.text)
            elif isinstance(item, PhaseUpdate):
                self._phase = item
            elif isinstance(item, TrainerEvent):
                self._events.append(item)

    async def close(self) -> None:
        """The job ended and its whole log was fed: the last line without a newline too."""
        rest, self.carry = self.carry, b""
        self.parsed += len(rest)
        self._log_bytes += rest
        self._handle([*self.reader.feed(rest), *self.reader.close()])
        await self.flush()

    async def flush(self) -> None:
        """Log bytes, then progress and events, then the offset saying they are recorded; one at a time, so
        an offset is never saved before the points it covers."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._log is None:
            return  # closed: what was not recorded is read again by whoever follows the job next
        self._last_flush = time.monotonic()
        executor, job_id = self.executor, self.job.id
        parsed = self.parsed
        data, self._log_bytes = bytes(self._log_bytes), bytearray()
        log_size: int | None = None
        if self._log is not None:
            def write() -> int:
                self._log.write(data)
                self._log.flush()
                return os.fstat(self._log.fileno()).st_size
            try:
                log_size = await asyncio.to_thread(write)
            except OSError:
                logger.exception("could not write the log of job %s", job_id)
        points, self._points = self._points, []
        if points:
            await executor._record_progress(job_id, points, self.active, self.job)
            # A rewound tail may parse these lines again: their points are not recorded twice.
            self.floor_step = max(self.floor_step, max(point.step for point in points))
        events, self._events = self._events, []
        for event in events:
            await executor._handle_event(self.active, self.job, event)
        if self._phase is not None:
            phase, self._phase = self._phase, None
            await executor._record_phase(job_id, phase.text)
        if parsed != self.committed:
            self.committed = parsed
            await asyncio.to_thread(executor.storage.save_output_offsets, job_id, parsed, 0, log_size)

    def outcome(self, state: str, message: str | None, exit_code: int | None) -> TrainerOutcome:
        if state == "SUCCEEDED":
            return TrainerOutcome("completed", 0)
        if state == "STOPPED":
            return TrainerOutcome("cancelled", exit_code)
        code = exit_code if exit_code is not None else _exit_code(message)
        cause = describe_failure(code if code is not None else 1, [self.errors])
        # Ray's message ends with the last lines of the log ("…, last available logs (truncated to …):"):
        # the root cause below says what matters in them.
        ray_message = " ".join((message or "the Ray job failed").split(", last available logs")[0].split())
        return TrainerOutcome("failed", code, f"{ray_message[:200].rstrip('.')}: {cause}")


_SERVER_ERROR = re.compile(r"status code 5\d\d\b")


def working_dir_limit() -> int:
    """Bytes a dataset may have to travel as a job's working_dir (WORKING_DIR_LIMIT_ENV in MiB, else 100)."""
    try:
        mib = float(os.environ.get(WORKING_DIR_LIMIT_ENV, ""))
    except ValueError:
        return WORKING_DIR_LIMIT_BYTES
    return int(mib * 2**20) if 0 < mib <= 512 else WORKING_DIR_LIMIT_BYTES


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f}".removesuffix(".0")


def _tree_size(folder: Path) -> int:
    """Bytes of the files under `folder` (what a copy of it holds: links count as their targets)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


def _link_or_copy(source: str, target: str) -> str:
    """copytree's copy: a hard link where the file system allows (no second copy of the images), else a copy."""
    try:
        os.link(os.path.realpath(source), target)
    except OSError:
        shutil.copy2(source, target)
    return target


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _state(info: Any) -> str:
    status = getattr(info, "status", None)
    return str(getattr(status, "value", status))


def _exit_code(message: str | None) -> int | None:
    match = re.search(r"exit code (-?\d+)", message or "")
    return int(match.group(1)) if match else None


def _num_gpus(params: dict[str, Any] | None) -> float:
    value = (params or {}).get("num_gpus")
    try:
        number = float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0
    return number if number > 0 else 0.0


def _is_connection_error(exc: BaseException) -> bool:
    import requests

    if isinstance(exc, (ConnectionError, TimeoutError, OSError, requests.exceptions.ConnectionError,
                        requests.exceptions.Timeout)):
        return True
    text = str(exc)
    return any(marker in text for marker in ("Failed to connect", "Connection refused", "timed out",
                                             "Max retries exceeded", "Cannot connect"))


def _reason(exc: BaseException) -> str:
    """One short line for a job's detail or error (requests' connection errors are long and nested)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for marker, short in (("Connection refused", "connection refused"), ("Read timed out", "read timed out"),
                          ("Name or service not known", "unknown host"), ("No route to host", "no route to host"),
                          ("Connection reset", "connection reset")):
        if marker in text and "HTTPConnectionPool" in text:
            return short
    return text[:300]


def ray_executor_factory(storage: Storage, config: Any) -> RayExecutor:
    """The server's ExecutorFactory for `--executor ray`."""
    return RayExecutor(storage, config.data_dir, address=config.ray_address, shared_dir=config.shared_dir,
                       cancel_grace=float(getattr(config, "cancel_grace_s", DEFAULT_CANCEL_GRACE_S)))
