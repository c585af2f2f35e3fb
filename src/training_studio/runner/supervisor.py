"""Runs one trainer as a subprocess and reports what it does: the supervisor of a single job.

The trainer gets its own process group (start_new_session=True) and PYTHONUNBUFFERED=1. Its stdout
and stderr are read concurrently on the asyncio loop in chunks, appended verbatim to the job's log
file and fed to the progress readers. Progress is batched: points and log bytes are flushed every
`flush_interval` seconds (in a worker thread, so disk and database writes never block the loop), which
lets a trainer print 100,000 lines a second without slowing the server and without ever losing the
latest value. Events (checkpoint announcements) are handed over as they arrive.

Cancel sends SIGTERM to the group, then SIGKILL after the grace period. Whatever happens, `wait()`
returns only once the whole process group is gone (children included), so a job's slot frees only
then. The outcome is completed (exit 0), failed (non-zero exit or a signal, with the last meaningful
error line), or cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from training_studio.runner.process_groups import JOB_ENV_MARKER, group_alive, signal_group
from training_studio.runner.progress import (
    ErrorTracker,
    LogLine,
    ProgressFormat,
    ProgressPoint,
    StreamReader,
    TrainerEvent,
    names_error,
)

logger = logging.getLogger(__name__)

ProgressSink = Callable[[list[ProgressPoint]], Awaitable[None] | None]
EventSink = Callable[[TrainerEvent], Awaitable[None] | None]

READ_CHUNK_BYTES = 256 * 1024
# Log bytes are written at least this often, even between flush ticks, to bound memory.
MAX_BUFFERED_LOG_BYTES = 4 * 1024 * 1024
# After the group is gone, how long to wait for pipes to close (a setsid'd grandchild may hold them).
PIPE_DRAIN_TIMEOUT_S = 2.0
GROUP_POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class TrainerOutcome:
    status: Literal["completed", "failed", "cancelled"]
    exit_code: int | None
    error: str | None = None


def describe_signal(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class TrainerProcess:
    """One trainer subprocess: start it, then `wait()` for its outcome; `cancel()` at any time."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        job_id: str = "",
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        progress_format: ProgressFormat = "jsonl",
        loss_key: str | None = None,
        on_progress: ProgressSink | None = None,
        on_event: EventSink | None = None,
        cancel_grace: float = 10.0,
        flush_interval: float = 0.25,
        log_header: str = "",
    ) -> None:
        if not argv:
            raise ValueError("a trainer command needs at least a program")
        self.argv = [str(item) for item in argv]
        self.log_path = Path(log_path)
        self.job_id = job_id
        self.cwd = cwd
        self.extra_env = dict(env or {})
        self.progress_format: ProgressFormat = progress_format
        self.loss_key = loss_key
        self.on_progress = on_progress
        self.on_event = on_event
        self.cancel_grace = max(0.0, float(cancel_grace))
        self.flush_interval = flush_interval
        self.log_header = log_header
        self.pid: int | None = None
        self.pgid: int | None = None
        self.latest: ProgressPoint | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._errors = ErrorTracker()
        self._stdout_errors = ErrorTracker()
        self._pending_points: list[ProgressPoint] = []
        self._pending_log = bytearray()
        self._cancel_requested = False
        self._kill_task: asyncio.Task[None] | None = None
        self._sigkill_sent = False
        self._log_file = None
        # Flushes swap buffers then write in a thread: serialise them so log bytes stay in order.
        self._flush_lock = asyncio.Lock()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    async def start(self) -> None:
        """Start the trainer; raises OSError (with the reason) if it cannot be started at all."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        if self.log_header:
            try:
                self._log_file.write(self.log_header.encode("utf-8", "replace"))
                self._log_file.flush()
            except OSError:  # a full disk loses log text, never the job's supervision
                logger.exception("could not write the log header of job %s", self.job_id)
        env = {**os.environ, **self.extra_env, "PYTHONUNBUFFERED": "1"}
        if self.job_id:
            env[JOB_ENV_MARKER] = self.job_id
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=str(self.cwd) if self.cwd else None,
                env=env,
                start_new_session=True,
            )
        except OSError:
            self._close_log()
            raise
        self.pid = self._proc.pid
        # start_new_session makes the child a session and group leader: its pgid is its pid.
        self.pgid = self._proc.pid
        if self._cancel_requested:
            self._signal_cancel()

    async def wait(self) -> TrainerOutcome:
        """Read output until the trainer and its whole group are gone; return the outcome."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None, "start() first"
        readers = [
            asyncio.create_task(self._pump(proc.stdout, StreamReader(self.progress_format, self.loss_key),
                                           self._stdout_errors)),
            asyncio.create_task(self._pump(proc.stderr, StreamReader(self.progress_format, self.loss_key),
                                           self._errors)),
        ]
        flusher = asyncio.create_task(self._flush_periodically())
        try:
            returncode = await self._wait_exit(proc)
            await self._wait_group_gone(leader_exited=True)
            done, pending = await asyncio.wait(readers, timeout=PIPE_DRAIN_TIMEOUT_S)
            for task in pending:
                task.cancel()
            for task in readers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            if self._kill_task is not None:
                self._kill_task.cancel()
            await self._flush()
            await asyncio.to_thread(self._close_log)
        return self._outcome(returncode)

    @staticmethod
    async def _wait_exit(proc: asyncio.subprocess.Process) -> int:
        # Not proc.wait(): on Python 3.11 it also waits for the pipes to close, which a leftover
        # child holding them would delay forever. returncode is set as soon as the child is reaped.
        while proc.returncode is None:
            await asyncio.sleep(GROUP_POLL_INTERVAL_S)
        return proc.returncode

    def cancel(self) -> None:
        """SIGTERM the group now and SIGKILL it after the grace period; never blocks.

        Safe before start(): the trainer is then signalled as soon as it exists.
        """
        self._cancel_requested = True
        self._signal_cancel()

    def _signal_cancel(self) -> None:
        if self.pgid is None or self._kill_task is not None:
            return
        signal_group(self.pgid, signal.SIGTERM)
        self._kill_task = asyncio.get_running_loop().create_task(self._kill_after_grace())

    async def _kill_after_grace(self) -> None:
        deadline = time.monotonic() + self.cancel_grace
        assert self.pgid is not None
        while time.monotonic() < deadline:
            if not await asyncio.to_thread(group_alive, self.pgid):
                return
            await asyncio.sleep(GROUP_POLL_INTERVAL_S)
        logger.info("trainer %s ignored SIGTERM for %.1fs: SIGKILL", self.pgid, self.cancel_grace)
        self._sigkill_sent = True
        signal_group(self.pgid, signal.SIGKILL)

    async def _wait_group_gone(self, *, leader_exited: bool) -> None:
        """Wait until no live member of the group is left.

        When the trainer itself has exited but left children behind (they would hold the pipes and
        keep the job running forever), the leftovers are SIGKILLed: a finished trainer owns nothing.
        """
        assert self.pgid is not None
        if not await asyncio.to_thread(group_alive, self.pgid):
            return
        if leader_exited and not self._cancel_requested:
            self._sigkill_sent = True
        while await asyncio.to_thread(group_alive, self.pgid):
            if self._sigkill_sent:  # again and again: a member may have forked since the last one
                signal_group(self.pgid, signal.SIGKILL)
            await asyncio.sleep(GROUP_POLL_INTERVAL_S)

    def _outcome(self, returncode: int) -> TrainerOutcome:
        if self._cancel_requested:
            return TrainerOutcome("cancelled", returncode)
        if returncode == 0:
            return TrainerOutcome("completed", 0)
        line = self._errors.last_error_line() or self._stdout_errors.last_error_line()
        if returncode < 0:
            reason = f"the trainer was killed by {describe_signal(-returncode)}"
            return TrainerOutcome("failed", returncode, f"{reason}: {line}" if line and names_error(line)
                                  else reason)
        return TrainerOutcome("failed", returncode, line or f"the trainer exited with code {returncode}")

    async def _pump(self, stream: asyncio.StreamReader, reader: StreamReader, errors: ErrorTracker) -> None:
        while True:
            chunk = await stream.read(READ_CHUNK_BYTES)
            if not chunk:
                break
            self._pending_log += chunk
            await self._handle(reader.feed(chunk), errors)
            if len(self._pending_log) >= MAX_BUFFERED_LOG_BYTES:
                await self._flush()
        await self._handle(reader.close(), errors)

    async def _handle(self, items: list, errors: ErrorTracker) -> None:
        for item in items:
            if isinstance(item, ProgressPoint):
                self._pending_points.append(item)
                self.latest = item
            elif isinstance(item, LogLine):
                errors.add(item.text)
            elif isinstance(item, TrainerEvent):
                # Events are rare and ordered with the progress before them: flush first.
                await self._flush()
                if self.on_event is not None:
                    try:
                        result = self.on_event(item)
                        if asyncio.iscoroutine(result):
                            await result
                    except Exception:  # a sink bug must not kill the supervision of the process
                        logger.exception("event handler failed for job %s", self.job_id)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self._flush()

    async def _flush(self) -> None:
        async with self._flush_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        points, self._pending_points = self._pending_points, []
        log_bytes, self._pending_log = bytes(self._pending_log), bytearray()
        if log_bytes and self._log_file is not None:
            try:
                await asyncio.to_thread(self._write_log, log_bytes)
            except OSError:
                logger.exception("could not write the log of job %s", self.job_id)
        if points and self.on_progress is not None:
            try:
                result = self.on_progress(points)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                logger.exception("progress handler failed for job %s", self.job_id)

    def _close_log(self) -> None:
        # close() flushes what a failed write left buffered; on a full disk that fails again, and
        # the outcome of the job matters more than those bytes.
        if self._log_file is None:
            return
        try:
            self._log_file.close()
        except OSError:
            logger.exception("could not write the end of the log of job %s", self.job_id)
            with contextlib.suppress(OSError):
                self._log_file.close()

    def _write_log(self, data: bytes) -> None:
        assert self._log_file is not None
        self._log_file.write(data)
        self._log_file.flush()
