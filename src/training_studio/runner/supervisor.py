"""The server's side of one trainer: start its wrapper, follow its output files, report its outcome.

A trainer no longer hangs off the server by pipes. `TrainerProcess.start()` starts the job's wrapper
(`training-studio train-wrapper`, see trainer_wrapper.py) in its own session; the wrapper starts the
trainer with stdout and stderr going to files in the job's control folder and records the exit status
in `exit.json`. So a server that dies (kill -9, a crash, a restart for an upgrade) costs the trainer
nothing: the next server re-attaches with `TrainerProcess.attach()`.

Following the output: both files are read from saved byte offsets, only up to their last complete line
(a line is never half-parsed and then parsed again), fed to the progress readers (progress.py) and
appended to the job's log (`logs/<job>.log`, what GET /logs serves). Progress points and log bytes are
batched every `flush_interval` seconds; each flush writes the log bytes first, then the points, then
hands `on_offsets` the new read offsets together with the log's size. A restarted server truncates the
log back to that size and reads on from those offsets: the log has every byte exactly once, and the
points are keyed by step (storage writes them with INSERT OR REPLACE), so a batch read twice after a
crash is harmless. Events (checkpoint announcements) are handed over as they arrive, after a flush.

A live wrapper is recognised by pid plus process start time (/proc/<pid>/stat), never by pid alone;
off Linux by pid plus the lock file it holds. Cancel sends SIGTERM to the wrapper, which terminates the
trainer's whole tree and SIGKILLs it after the grace; `wait()` returns only once the wrapper is gone,
that is once every process of the job is. `detach()` stops following without touching the trainer (a
server shutting down). The outcome is completed (exit 0), failed (non-zero exit, a signal, or no exit
status at all, with the last meaningful error line), or cancelled.

Trainers get the server's environment minus every `TRAINING_STUDIO_*` variable (the API token, the data
dir...: the server's own settings), plus the preset's `env`, PYTHONUNBUFFERED=1 and the job marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from training_studio.launcher import self_command
from training_studio.runner.process_groups import (
    JOB_ENV_MARKER,
    kill_group_and_wait,
    live_group_members,
    process_start_time,
    same_process_alive,
    signal_pid,
)
from training_studio.runner.progress import (
    ErrorTracker,
    LogLine,
    PhaseContext,
    PhaseUpdate,
    ProgressFormat,
    ProgressPoint,
    StreamReader,
    TrainerEvent,
    describe_failure,
)
from training_studio.runner.trainer_wrapper import (
    CGROUP_PREFIX,
    JobCgroup,
    JobFiles,
    open_private_append,
    read_json,
    wrapper_lock_held,
    write_json_atomically,
)

logger = logging.getLogger(__name__)

ProgressSink = Callable[[list[ProgressPoint]], Awaitable[None] | None]
EventSink = Callable[[TrainerEvent], Awaitable[None] | None]
OffsetsSink = Callable[["OutputOffsets"], Awaitable[None] | None]
PhaseSink = Callable[[str | None], Awaitable[None] | None]
TrainerSink = Callable[[int], Awaitable[None] | None]

READ_CHUNK_BYTES = 1024 * 1024
# Log bytes are written at least this often, even between flush ticks, to bound memory.
MAX_BUFFERED_LOG_BYTES = 4 * 1024 * 1024
# A "line" longer than this without a separator is taken as it is (bounded memory).
MAX_CARRY_BYTES = 256 * 1024
# How much of each output file, before the saved offset, a re-attached server re-reads to know the
# trainer's last error line again (it goes nowhere else).
ERROR_CONTEXT_BYTES = 64 * 1024
TAIL_INTERVAL_S = 0.05
# Progress is recorded at most this often per job (the first line after a quiet spell at once): the same
# pace as the event stream's per-job limit (server/events.py), so a watching client sees every step
# that a trainer prints less than ten times a second within a frame or two.
DEFAULT_FLUSH_INTERVAL_S = 0.1
# While the trainer has printed within ACTIVE_WINDOW_S, its files are read this often instead.
TAIL_ACTIVE_INTERVAL_S = 0.01
ACTIVE_WINDOW_S = 2.0
SERVER_ONLY_ENV_PREFIX = "TRAINING_STUDIO_"
DISK_FULL_MARKERS = ("No space left on device", "[Errno 28]", "Disk quota exceeded", "[Errno 122]")
TRAINER_GONE_ERROR = ("the trainer's process ended without recording an exit status "
                      "(killed from outside the app, or the machine restarted)")


@dataclass(frozen=True)
class TrainerOutcome:
    status: Literal["completed", "failed", "cancelled"]
    exit_code: int | None
    error: str | None = None


@dataclass(frozen=True)
class OutputOffsets:
    """How far a job's output has been read and recorded: bytes of stdout.log and stderr.log, and the
    size of the job's log once those bytes were appended to it (None: not known yet)."""

    stdout: int = 0
    stderr: int = 0
    log: int | None = None


@dataclass(frozen=True)
class WrapperRecord:
    """Who a job's wrapper is: pid plus process start time (None off Linux)."""

    pid: int
    start_time: int | None


def trainer_environment(extra: Mapping[str, str] | None = None, job_id: str = "",
                        base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a trainer (and its wrapper) gets: the server's, without its own settings."""
    source = os.environ if base is None else base
    env = {key: value for key, value in source.items() if not key.startswith(SERVER_ONLY_ENV_PREFIX)}
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    if job_id:
        env[JOB_ENV_MARKER] = job_id
    return env


def wrapper_record_from_file(files: JobFiles) -> WrapperRecord | None:
    info = read_json(files.wrapper_info)
    if not info or not isinstance(info.get("pid"), int):
        return None
    start = info.get("start_time")
    return WrapperRecord(info["pid"], start if isinstance(start, int) else None)


def wrapper_alive(record: WrapperRecord | None, files: JobFiles) -> bool:
    """Whether the job's wrapper still runs, by pid + start time (Linux) or pid + its lock (elsewhere)."""
    if record is None:
        return False
    if sys.platform.startswith("linux"):
        return same_process_alive(record.pid, record.start_time)
    return same_process_alive(record.pid, None) and wrapper_lock_held(files)


def kill_orphaned_trainer(files: JobFiles) -> None:
    """The wrapper is gone without a status (it was SIGKILLed): kill the trainer's group it left, if
    that group is still the trainer we started (pid + start time)."""
    info = read_json(files.wrapper_info) or {}
    cgroup = info.get("cgroup")
    if isinstance(cgroup, str) and Path(cgroup).name.startswith(CGROUP_PREFIX):
        group = JobCgroup(Path(cgroup))  # it holds every process the trainer started, if it exists
        group.kill()
        group.remove()
    pid, start = info.get("trainer_pid"), info.get("trainer_start_time")
    if not isinstance(pid, int) or pid <= 1:
        return
    if sys.platform.startswith("linux") and not same_process_alive(pid, start if isinstance(start, int) else None):
        if not live_group_members(pid):
            return
    kill_group_and_wait(pid, timeout=10.0)


class _Stream:
    """One output file being followed: its reader, error tracker and offsets."""

    def __init__(self, path: Path, offset: int, reader: StreamReader) -> None:
        self.path = path
        self.reader = reader
        self.errors = ErrorTracker()
        self.consumed = offset  # bytes read from the file
        self.carry = b""  # read, but not a complete line yet
        # Bytes fully handled (parsed, and queued for the log): where a restarted server reads on.
        self.committed = offset

    def read_more(self) -> bytes:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.consumed)
                return handle.read(READ_CHUNK_BYTES)
        except FileNotFoundError:
            return b""

    def take_lines(self, chunk: bytes) -> bytes:
        """Add `chunk`; return the bytes up to the last line separator (the rest waits)."""
        self.consumed += len(chunk)
        data = self.carry + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        if cut == 0 and len(data) > MAX_CARRY_BYTES:
            cut = len(data)
        self.carry = data[cut:]
        return data[:cut]


class TrainerProcess:
    """One job's trainer: `start()` (or `attach()`), then `wait()` for its outcome; `cancel()` any time."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        job_id: str = "",
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        control_dir: Path | None = None,
        progress_format: ProgressFormat = "jsonl",
        loss_key: str | None = None,
        on_progress: ProgressSink | None = None,
        on_event: EventSink | None = None,
        on_offsets: OffsetsSink | None = None,
        on_phase: PhaseSink | None = None,
        on_trainer_started: TrainerSink | None = None,
        progress_bar: str | None = None,
        total_steps: int | None = None,
        series: Sequence[str] = (),
        cancel_grace: float = 10.0,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL_S,
        log_header: str = "",
        spec_extra: dict[str, Any] | None = None,
    ) -> None:
        self.argv = [str(item) for item in argv]
        self.log_path = Path(log_path)
        self.job_id = job_id
        self.cwd = cwd
        self.extra_env = dict(env or {})
        self.files = JobFiles(Path(control_dir)) if control_dir else JobFiles.for_output_dir(
            Path(cwd) if cwd else self.log_path.parent)
        self.progress_format: ProgressFormat = progress_format
        self.loss_key = loss_key
        self.on_progress = on_progress
        self.on_event = on_event
        self.on_offsets = on_offsets
        self.on_phase = on_phase
        self.on_trainer_started = on_trainer_started
        self.trainer_pid: int | None = None
        self.progress_bar = progress_bar
        self.total_steps = total_steps
        self.series = tuple(series)
        self.cancel_grace = max(0.0, float(cancel_grace))
        self.flush_interval = flush_interval
        self._last_output_at = -float("inf")
        self.log_header = log_header
        self.spec_extra = dict(spec_extra or {})
        self.record: WrapperRecord | None = None
        self.offsets = OutputOffsets()
        self.latest: ProgressPoint | None = None
        # True while the points being handed to on_progress were read in a catch-up (a read filled the
        # whole buffer since the last flush: a re-attached server reading what the trainer printed while
        # no server ran): their arrival times say nothing about the trainer's pace (the ETA skips them).
        self.reading_backlog = False
        self._backlog_since_flush = False
        self._popen: subprocess.Popen[bytes] | None = None
        self._attached = False
        self._cancel_requested = False
        self._cancel_sent = False
        self._wrapper_ready = False
        self._detach = asyncio.Event()
        self._pending_points: list[ProgressPoint] = []
        self._pending_phase: list[PhaseUpdate] = []  # only the latest one matters
        self._pending_log = bytearray()
        self._log_file: Any = None
        self._log_size: int | None = None
        self._streams: list[_Stream] = []

    # life ------------------------------------------------------------------------------------------
    @classmethod
    def attach(cls, record: WrapperRecord | None, offsets: OutputOffsets, *, log_path: Path, control_dir: Path,
               job_id: str = "", progress_format: ProgressFormat = "jsonl", loss_key: str | None = None,
               on_progress: ProgressSink | None = None, on_event: EventSink | None = None,
               on_offsets: OffsetsSink | None = None, on_phase: PhaseSink | None = None,
               on_trainer_started: TrainerSink | None = None, progress_bar: str | None = None, total_steps: int | None = None,
               flush_interval: float = DEFAULT_FLUSH_INTERVAL_S, series: Sequence[str] = ()) -> "TrainerProcess":
        """Follow a trainer started by an earlier server, from where that server had recorded its output."""
        process = cls(["(re-attached)"], log_path=log_path, job_id=job_id, control_dir=control_dir,
                      progress_format=progress_format, loss_key=loss_key, on_progress=on_progress,
                      on_event=on_event, on_offsets=on_offsets, on_phase=on_phase,
                      on_trainer_started=on_trainer_started, progress_bar=progress_bar,
                      total_steps=total_steps, flush_interval=flush_interval, series=series)
        process.record = record or wrapper_record_from_file(process.files)
        process.offsets = offsets
        process._attached = True
        process.log_header = (f"[training-studio] {datetime.now(timezone.utc).isoformat(timespec='seconds')} "
                              "a new server follows this trainer from here on\n")
        return process

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    @property
    def pid(self) -> int | None:
        """The wrapper's pid (the trainer is its child)."""
        return self.record.pid if self.record else None

    async def start(self) -> None:
        """Start the wrapper (which starts the trainer); OSError if the wrapper itself cannot start.

        A trainer that cannot be started is reported by the wrapper, as a failed outcome with the reason.
        """
        if not self.argv or not self.argv[0]:
            raise ValueError("a trainer command needs at least a program")
        await asyncio.to_thread(self._start_blocking)

    def _start_blocking(self) -> None:
        files = self.files
        files.control_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in (files.stdout, files.stderr, files.exit_status, files.wrapper_info):
            stale.unlink(missing_ok=True)  # a fresh run of this job
        write_json_atomically(files.spec, {
            "job_id": self.job_id, "argv": self.argv, "cwd": str(self.cwd) if self.cwd else None,
            "cancel_grace": self.cancel_grace, **self.spec_extra,
        })
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            if self.log_header:
                try:
                    log.write(self.log_header.encode("utf-8", "replace"))
                    log.flush()
                except OSError:  # a full disk loses log text, never the job's supervision
                    logger.exception("could not write the log header of job %s", self.job_id)
            log_size = os.fstat(log.fileno()).st_size
        env = trainer_environment(self.extra_env, self.job_id)
        with open_private_append(files.wrapper_log) as wrapper_log:
            # Own session, no pipes, no inherited descriptors (the server's lock and socket must not
            # outlive the server in the wrapper).
            self._popen = subprocess.Popen(
                [*self_command("train-wrapper"), "--control-dir", str(files.control_dir)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=wrapper_log, env=env,
                cwd=str(files.control_dir), start_new_session=True, close_fds=True,
            )
        self.record = WrapperRecord(self._popen.pid, process_start_time(self._popen.pid))
        self.offsets = OutputOffsets(0, 0, log_size)

    def cancel(self) -> None:
        """Ask the wrapper to end the trainer's whole tree (SIGTERM, SIGKILL after the grace); never
        blocks. Safe before start(): the wrapper is signalled as soon as it is ready for it."""
        self._cancel_requested = True

    def terminate_unfollowed(self) -> None:
        """SIGTERM the wrapper now (it ends the whole tree), without following it: for a runner that
        can no longer supervise this trainer. Blocking but quick."""
        self._cancel_requested = True
        if self.record is None:
            return
        if self._popen is not None:
            with contextlib.suppress(OSError):
                self._popen.send_signal(signal.SIGTERM)
        elif wrapper_alive(self.record, self.files):
            signal_pid(self.record.pid, signal.SIGTERM)

    def detach(self) -> None:
        """Stop following the trainer (the server is stopping): it keeps running; `wait()` returns None."""
        self._detach.set()

    # following ------------------------------------------------------------------------------------
    def _alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return wrapper_alive(self.record, self.files)

    async def _note_wrapper_info(self) -> None:
        """Until the trainer runs: is the wrapper ready for signals, and what is the trainer's pid."""
        if self.trainer_pid is not None or self.record is None:
            return
        info = await asyncio.to_thread(read_json, self.files.wrapper_info)
        if not info or info.get("pid") != self.record.pid:
            return
        self._wrapper_ready = True
        if isinstance(info.get("trainer_pid"), int):
            self.trainer_pid = info["trainer_pid"]
            await self._call(self.on_trainer_started, self.trainer_pid, "trainer handler")

    def _signal_cancel_if_due(self, alive: bool) -> None:
        # Until the wrapper has set up its handlers, SIGTERM would kill it and orphan the trainer.
        if not self._cancel_requested or self._cancel_sent or not alive or not self._wrapper_ready:
            return
        assert self.record is not None
        self._cancel_sent = True
        if self._popen is not None:
            with contextlib.suppress(OSError):
                self._popen.send_signal(signal.SIGTERM)
        elif self._alive():
            signal_pid(self.record.pid, signal.SIGTERM)

    async def wait(self) -> TrainerOutcome | None:
        """Follow the output until the wrapper (so every process of the job) is gone; the outcome.

        None if `detach()` was called first: the trainer runs on, and what was read is recorded.
        """
        await asyncio.to_thread(self._open_log)
        context = PhaseContext()  # shared: a trainer may log on one stream and draw its bars on the other
        self._streams = [
            _Stream(self.files.stdout, self.offsets.stdout, self._reader(context)),
            _Stream(self.files.stderr, self.offsets.stderr, self._reader(context)),
        ]
        if self._attached:
            await asyncio.to_thread(self._recall_errors)
            # Written with the next flush, so it counts in the recorded log size like the trainer's text.
            self._pending_log += self.log_header.encode("utf-8", "replace")
        last_flush = -float("inf")
        try:
            while True:
                if self._detach.is_set():
                    await self._flush()
                    return None
                alive = await asyncio.to_thread(self._alive)
                await self._note_wrapper_info()
                self._signal_cancel_if_due(alive)
                await self._read_available()
                if not alive:
                    break
                now = time.monotonic()
                # Leading edge: the first output after a quiet spell is recorded at once (that is what
                # a watching user waits for); after that at most every flush_interval.
                pending = bool(self._pending_points or self._pending_log or self._pending_phase)
                if pending and now - last_flush >= self.flush_interval:
                    await self._flush()
                    last_flush = now
                # Look often while the trainer is printing, rarely while it is quiet.
                active = now - self._last_output_at < ACTIVE_WINDOW_S
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._detach.wait(), TAIL_ACTIVE_INTERVAL_S if active else TAIL_INTERVAL_S)
            status = await asyncio.to_thread(read_json, self.files.exit_status)
            if status is None:
                # The wrapper died without its status (SIGKILLed): what it supervised must not run on.
                await asyncio.to_thread(kill_orphaned_trainer, self.files)
            await self._read_available()
            for stream in self._streams:
                await self._handle(stream, stream.reader.feed(stream.carry) + stream.reader.close(), stream.carry,
                                   final=True)
            await self._flush()
        finally:
            await asyncio.to_thread(self._close_log)
        return self._outcome(status)

    def _reader(self, context: PhaseContext | None = None) -> StreamReader:
        return StreamReader(self.progress_format, self.loss_key, progress_bar=self.progress_bar,
                            total_steps=self.total_steps, context=context, series=self.series, name=self.job_id)

    def _open_log(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        size = os.fstat(self._log_file.fileno()).st_size
        target = self.offsets.log
        if target is not None and size > target:
            # A server stopped between writing log bytes and recording that it had: those bytes are
            # read again from the output files, so drop them here.
            self._log_file.truncate(target)
            size = target
        self._log_size = size

    def _recall_errors(self) -> None:
        for stream in self._streams:
            start = max(0, stream.consumed - ERROR_CONTEXT_BYTES)
            try:
                with open(stream.path, "rb") as handle:
                    handle.seek(start)
                    data = handle.read(stream.consumed - start)
            except OSError:
                continue
            if start > 0:
                data = data[data.find(b"\n") + 1:]
            reader = self._reader()
            for item in [*reader.feed(data), *reader.close()]:
                if isinstance(item, LogLine):
                    stream.errors.add(item.text)

    async def _read_available(self) -> None:
        full_read = False
        for stream in self._streams:
            full_read = await self._read_stream(stream) or full_read
        if full_read:  # the rest of a catch-up, read after a flush inside it, is a catch-up too
            self._backlog_since_flush = True

    async def _read_stream(self, stream: _Stream) -> bool:
        """Read and handle what `stream` has; whether some read filled the whole buffer (a catch-up)."""
        full_read = False
        while True:
            chunk = await asyncio.to_thread(stream.read_more)
            if not chunk:
                break
            self._last_output_at = time.monotonic()
            if len(chunk) == READ_CHUNK_BYTES:
                self._backlog_since_flush = full_read = True
            lines = stream.take_lines(chunk)
            if lines:
                await self._handle(stream, stream.reader.feed(lines), lines)
            if len(self._pending_log) >= MAX_BUFFERED_LOG_BYTES:
                await self._flush()
            if len(chunk) < READ_CHUNK_BYTES:
                break
        return full_read

    async def _handle(self, stream: _Stream, items: list, raw: bytes, *, final: bool = False) -> None:
        for item in items:
            if isinstance(item, ProgressPoint):
                self._pending_points.append(item)
                self.latest = item
            elif isinstance(item, LogLine):
                stream.errors.add(item.text)
            elif isinstance(item, PhaseUpdate):
                self._pending_phase[:] = [item]
            elif isinstance(item, TrainerEvent):
                # Events are rare and ordered with the progress before them: flush first.
                await self._flush()
                await self._call(self.on_event, item, "event handler")
        # Only now are these bytes part of what a restarted server must not read again.
        self._pending_log += raw
        if final:
            stream.carry = b""
        stream.committed = stream.consumed - len(stream.carry)

    async def _call(self, sink: Callable[[Any], Awaitable[None] | None] | None, value: Any, what: str) -> bool:
        if sink is None:
            return True
        try:
            result = sink(value)
            if asyncio.iscoroutine(result):
                await result
        except Exception:  # a sink bug (or a full disk) must not stop the supervision of the trainer
            logger.exception("%s failed for job %s", what, self.job_id)
            return False
        return True

    async def _flush(self) -> None:
        points, self._pending_points = self._pending_points, []
        self.reading_backlog, self._backlog_since_flush = self._backlog_since_flush, False
        log_bytes, self._pending_log = bytes(self._pending_log), bytearray()
        stdout, stderr = (stream.committed for stream in self._streams) if self._streams else (0, 0)
        if log_bytes and self._log_file is not None:
            await asyncio.to_thread(self._write_log, log_bytes)
        if points and not await self._call(self.on_progress, points, "progress handler"):
            return  # keep the saved offsets before these points: a restarted server reads them again
        if self._pending_phase:
            phase = self._pending_phase.pop()
            await self._call(self.on_phase, phase.text, "phase handler")
        offsets = OutputOffsets(stdout, stderr, self._log_size)
        if offsets != self.offsets:
            self.offsets = offsets
            await self._call(self.on_offsets, offsets, "offsets handler")

    def _write_log(self, data: bytes) -> None:
        try:
            self._log_file.write(data)
            self._log_file.flush()
        except OSError:
            logger.exception("could not write the log of job %s", self.job_id)
        with contextlib.suppress(OSError):
            self._log_size = os.fstat(self._log_file.fileno()).st_size

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
        self._log_file = None

    def _error_line(self) -> str | None:
        stdout, stderr = self._streams
        return stderr.errors.last_error_line() or stdout.errors.last_error_line()

    def _outcome(self, status: dict[str, Any] | None) -> TrainerOutcome:
        if status is None:
            if self._cancel_requested:
                return TrainerOutcome("cancelled", None)
            return TrainerOutcome("failed", None, TRAINER_GONE_ERROR)
        exit_code = status.get("exit_code")
        signum = status.get("signal")
        code = -signum if isinstance(signum, int) else exit_code if isinstance(exit_code, int) else None
        if status.get("cancelled"):
            # The wrapper says whether the cancel reached it before the trainer ended: a trainer that
            # had already finished keeps its real end (and its model).
            return TrainerOutcome("cancelled", code)
        if isinstance(status.get("error"), str) and status["error"]:
            return TrainerOutcome("failed", code, status["error"])
        if code == 0:
            return TrainerOutcome("completed", 0)
        line = self._error_line()
        if line and any(marker in line for marker in DISK_FULL_MARKERS) and "disk is full" not in line:
            # Trainers write their output to files now: on a full disk even a print fails. Say so plainly.
            return TrainerOutcome("failed", code, f"the disk is full: {line}")
        if code is None:
            return TrainerOutcome("failed", None, line or "the trainer failed without an exit status")
        # The root cause (the trainer's own exception, not a launcher's wrapper) and the exit status.
        stdout, stderr = self._streams
        return TrainerOutcome("failed", code, describe_failure(code, [stderr.errors, stdout.errors]))
