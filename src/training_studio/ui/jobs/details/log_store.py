"""The log store: which part of one job's log the Logs view shows, read from the server by byte offset.

`LogStore` owns the window of the log held in the view, `[start, end)` in bytes of the log file, as a deque
of segments (byte range and line count of each read that was shown), and every request for the log. The
view never calls HTTP; it says `show_job()`, `request_older()` (scrolled to the top), `request_newer()`
(scrolled to the bottom of a window that no longer reaches the end) and `set_active()` (shown or hidden),
and it draws what the signals say: `reset`, `appended` (complete lines plus the unfinished last line, e.g.
a tqdm bar that is still redrawing itself), `prepended`, `trimmed` (lines to drop at the top and bottom).

Rules:
- Opening shows the END of the log at once: one request for its last `INITIAL_TAIL_BYTES` (`?offset=-N`,
  beginning at a line start), whatever the log's size. Older parts come `OLDER_STEP_BYTES` at a time
  (`?before=start`) when the view scrolls to the top. Against a server without log ranges (422 for a
  negative offset; docs/api.md) the same happens by forward reads: the size first, then from near the end,
  the partial first line dropped; older parts read forward up to the window's start.
- Memory is bounded: at most `MAX_HELD_BYTES` / `MAX_HELD_LINES` are held. Growing at one end drops whole
  segments at the other (the far end from where the user looks); once the bottom has been dropped the
  window stops following the live end until the user scrolls back down (`request_newer`).
- While the job is active and the view shown, the end is read every `interval` seconds, sooner when the
  jobs store reports the job's progress; a job that ended and whose log has been read completely is no
  longer polled. A log that grew by more than `CATCH_UP_LIMIT_BYTES` since the last read (a flood) jumps to
  its new end instead of reading everything in between.
- The log is plain text from the server (UTF-8); `ansi.AnsiDecoder` turns it into display lines, keeping
  colours as spans and only the last state of a line rewritten with carriage returns.
- A server error is said through `state_changed` (the lines shown stay, polling goes on with a backoff);
  a server without the logs endpoint (a plain 404) or a job it does not know shows an empty state.

Byte offsets of line starts are computed from the decoded text (UTF-8 re-encoded); text the server had to
repair (invalid UTF-8, shown as U+FFFD) can shift them by a few bytes, which at worst repeats or drops a
few characters at the seam of two reads, never more.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from training_studio.client import ApiClient, ApiError, NotFound, RequestRejected
from training_studio.contract.models import LogChunk
from training_studio.ui.jobs.details.ansi import AnsiDecoder
from training_studio.ui.tasks import TaskSet
from training_studio.ui.jobs.details.job_state import job_is_active, wait_for_wake

__all__ = ["LogState", "LogStore", "INITIAL_TAIL_BYTES", "OLDER_STEP_BYTES", "MAX_HELD_BYTES", "MAX_HELD_LINES"]

log = logging.getLogger(__name__)

INITIAL_TAIL_BYTES = 64 * 1024
OLDER_STEP_BYTES = 256 * 1024
MAX_HELD_BYTES = 4 * 1024 * 1024
MAX_HELD_LINES = 100_000
CATCH_UP_LIMIT_BYTES = 2 * 1024 * 1024
TAIL_INTERVAL_S = 1.0
MIN_READ_GAP_S = 0.25
MAX_BACKOFF_S = 10.0
# "Where does the log end?": an offset past any real end answers with empty text and the size.
_SIZE_PROBE_OFFSET = 2 ** 62


class LogState(str, enum.Enum):
    NO_JOB = "no_job"            # nothing selected
    LOADING = "loading"          # the first read is under way
    EMPTY = "empty"              # the job has no log (yet)
    SHOWING = "showing"          # lines are shown
    UNAVAILABLE = "unavailable"  # the server serves no logs, or does not know the job


@dataclass
class _Segment:
    start: int
    end: int
    lines: int


class LogStore(QObject):
    """One job's log window; see the module docstring."""

    reset = Signal()                   # drop everything shown
    appended = Signal(list, object)    # list[Line] complete lines at the bottom, Line | None the unfinished one
    prepended = Signal(list)           # list[Line] older lines at the top
    trimmed = Signal(int, int)         # lines to drop at the top, at the bottom (the unfinished one included)
    state_changed = Signal(str, str)   # LogState value, human text ("" when the lines speak for themselves)
    error = Signal(str)                # a read failed (human text); "" once reads work again
    window_changed = Signal()          # start, end or size changed

    def __init__(self, client: ApiClient, *, jobs: Any = None, interval: float = TAIL_INTERVAL_S,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.jobs = jobs  # the JobStore when there is one: job status without extra requests, progress nudges
        self.interval = interval
        self.job_id: str | None = None
        self.state = LogState.NO_JOB
        self.size = 0           # the log's size at the last read
        self.start = 0          # first byte shown (a line start)
        self.end = 0            # just past the last complete line shown
        self._read_pos = 0      # next forward read; bytes in [end, read_pos) are the unfinished line
        self._segments: deque[_Segment] = deque()
        self._pending_shown = False
        self._at_live_end = True  # the window's bottom is the log's end (nothing dropped there)
        self._decoder = AnsiDecoder()
        self._generation = 0
        self._active = False
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._older_busy = False
        self._newer_busy = False
        self._ranges: bool | None = None  # the server reads ranges (tail, before): None until known
        self._error_shown = False
        self._last_progress: tuple[Any, ...] | None = None
        self._shut_down = False
        self._tasks = TaskSet("LogStore", lambda error: self.error.emit(
            f"Unexpected error while reading the log: {error} (details in the app log)."))
        self._loop_task: asyncio.Task[Any] | None = None
        if jobs is not None:
            jobs.jobs_changed.connect(self._on_jobs_changed)

    # queries -----------------------------------------------------------------------------------------
    @property
    def has_older(self) -> bool:
        return self.start > 0

    @property
    def at_live_end(self) -> bool:
        return self._at_live_end

    @property
    def held_bytes(self) -> int:
        return sum(s.end - s.start for s in self._segments)

    @property
    def held_lines(self) -> int:
        return sum(s.lines for s in self._segments) + (1 if self._pending_shown else 0)

    # intents -------------------------------------------------------------------------------------------
    def show_job(self, job_id: str | None) -> None:
        if job_id == self.job_id or self._shut_down:
            return
        self._generation += 1
        self.job_id = job_id
        self._ranges = None  # (the app may be talking to another server since)
        self._clear_error()
        self._clear_window()
        self.reset.emit()
        if self._loop_task is not None:
            self._loop_task.cancel()
            self._loop_task = None
        if job_id is None:
            self._set_state(LogState.NO_JOB, "Select a job to see its log.")
            return
        self._set_state(LogState.LOADING, "Loading the log…")
        self._loop_task = self._tasks.spawn(self._follow(self._generation))

    def set_active(self, active: bool) -> None:
        """Poll only while the view is shown."""
        self._active = active
        if active:
            self._wake.set()

    def request_older(self) -> None:
        if self.job_id is None or self.start <= 0 or self._older_busy or self._shut_down:
            return
        self._older_busy = True
        self._tasks.spawn(self._load_older(self._generation))

    def request_newer(self) -> None:
        if self.job_id is None or self._at_live_end or self._newer_busy or self._shut_down:
            return
        self._newer_busy = True
        self._tasks.spawn(self._load_newer(self._generation))

    def shutdown(self) -> None:
        self._shut_down = True
        self._generation += 1
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()

    # the tail loop ---------------------------------------------------------------------------------------
    async def _follow(self, generation: int) -> None:
        job_id = self.job_id
        assert job_id is not None
        delay = self.interval
        opened = False
        while generation == self._generation:
            try:
                if not self._active:
                    pass  # hidden: no requests until shown again (set_active wakes us)
                elif not opened:
                    opened = await self._open(generation, job_id)
                    if generation != self._generation or self.state == LogState.UNAVAILABLE:
                        return
                    if not opened and self.state == LogState.EMPTY and not await self._job_active(job_id):
                        return  # finished without a log: nothing will come
                elif self._at_live_end:
                    async with self._lock:
                        caught_up = await self._read_forward(generation, job_id)
                    if not caught_up:
                        await asyncio.sleep(0)  # more is waiting: read on, but let the GUI breathe
                        continue
                    if not await self._job_active(job_id) and generation == self._generation:
                        # One more read after the end was seen: the last lines may land after the status.
                        async with self._lock:
                            while generation == self._generation and not await self._read_forward(generation,
                                                                                                    job_id):
                                pass
                        return
                delay = self.interval
                self._clear_error()
            except asyncio.CancelledError:
                raise
            except NotFound as error:
                if generation == self._generation:
                    self._unavailable(error)
                return
            except ApiError as error:
                if generation != self._generation:
                    return
                self._say_error(f"Could not read the log: {error.message}")
                delay = min(MAX_BACKOFF_S, max(delay * 2, self.interval))
            await self._pause(delay)

    async def _pause(self, delay: float) -> None:
        """Until `delay` passed or something woke us, but never less than MIN_READ_GAP_S (progress events
        can come many times a second; the log need not be read that often)."""
        await wait_for_wake(self._wake, delay, MIN_READ_GAP_S)

    async def _open(self, generation: int, job_id: str) -> bool:
        """Show the end of the log; False when there is nothing yet (the loop will look again)."""
        tail: LogChunk | None = None
        if self._ranges is not False:
            try:
                tail = await self.client.job_log_tail(job_id, INITIAL_TAIL_BYTES)
            except RequestRejected:
                tail = None  # an older server (422 for a negative offset): read forward from near the end
            if generation != self._generation:
                return False
            self._ranges = tail is not None and tail.start is not None
        if tail is not None and tail.start is not None:
            size = tail.size
        else:
            probe = await self.client.job_log(job_id, offset=_SIZE_PROBE_OFFSET)
            if generation != self._generation:
                return False
            size = probe.size
        self.size = size
        if size == 0:
            active = await self._job_active(job_id)
            self._set_state(LogState.EMPTY, "No output yet." if active else "This job wrote no log.")
            return False
        async with self._lock:
            if tail is not None and tail.start is not None:
                self._jump_to(tail.start)  # the server began the text at a line start
                self._read_pos = tail.next_offset
                self.size = tail.size
                if tail.text:
                    self._append(tail.text, tail.start, tail)
                self._settle_state_after_read()
                if self.state == LogState.LOADING:
                    await self._say_empty(job_id)
                self.window_changed.emit()
            else:
                start = max(0, size - INITIAL_TAIL_BYTES)
                self._jump_to(start)
                await self._read_forward(generation, job_id, first=start > 0)
        return True

    def _jump_to(self, start: int) -> None:
        self._clear_window()
        self.start = self.end = self._read_pos = start

    # reading -------------------------------------------------------------------------------------------------
    async def _read_forward(self, generation: int, job_id: str, *, first: bool = False) -> bool:
        """One read at the bottom; True when it reached the log's end."""
        offset = self._read_pos
        chunk = await self.client.job_log(job_id, offset=offset)
        if generation != self._generation:
            return True
        if chunk.size < offset:
            # The log shrank: replaced (a restarted job) or truncated. Start again from its end.
            self.reset.emit()
            self._jump_to(max(0, chunk.size - INITIAL_TAIL_BYTES))
            self.size = chunk.size
            return False
        if chunk.size - chunk.next_offset > CATCH_UP_LIMIT_BYTES and not first:
            # Far behind (a flood of output, or the view was hidden for long): show the new end instead.
            self.reset.emit()
            self._jump_to(chunk.size - INITIAL_TAIL_BYTES)
            self.size = chunk.size
            await self._read_forward(generation, job_id, first=True)
            return False
        self.size = chunk.size
        text = chunk.text
        if first and text:
            cut = text.find("\n")
            if cut >= 0:  # started inside a line: the window starts at the next line
                dropped = text[:cut + 1]
                text = text[cut + 1:]
                self.start = self.end = offset + _utf8_len(dropped)
                offset = self.end
        self._read_pos = chunk.next_offset
        if text:
            self._append(text, offset, chunk)
        self._settle_state_after_read()
        if self.state == LogState.LOADING:
            await self._say_empty(job_id)
        self.window_changed.emit()
        return chunk.next_offset >= chunk.size

    def _settle_state_after_read(self) -> None:
        if self.state != LogState.SHOWING and (self._segments or self._pending_shown):
            self._set_state(LogState.SHOWING, "")

    async def _say_empty(self, job_id: str) -> None:
        active = await self._job_active(job_id)
        self._set_state(LogState.EMPTY, "No output yet." if active else "This job wrote no log.")

    def _append(self, text: str, offset: int, chunk: LogChunk) -> None:
        lines, pending = self._decoder.feed(text)
        last_break = text.rfind("\n")
        if last_break >= 0:
            line_end = chunk.next_offset - _utf8_len(text[last_break + 1:])
            self._segments.append(_Segment(self.end, max(self.end, line_end), len(lines)))
            self.end = max(self.end, line_end)
        was_pending = self._pending_shown
        self._pending_shown = pending is not None
        if lines or pending is not None or was_pending:
            self.appended.emit(lines, pending)
        self._trim(top=True)

    async def _load_older(self, generation: int) -> None:
        job_id = self.job_id
        try:
            async with self._lock:
                if generation != self._generation or job_id is None or self.start <= 0:
                    return
                until = self.start
                if self._ranges:
                    chunk = await self.client.job_log_before(job_id, until, OLDER_STEP_BYTES)
                    if generation != self._generation:
                        return
                    self._show_older(chunk.text, chunk.start if chunk.start is not None else 0, until)
                    return
                begin = max(0, until - OLDER_STEP_BYTES)
                parts: list[str] = []
                position = begin
                while position < until:
                    chunk = await self.client.job_log(job_id, offset=position)
                    if generation != self._generation:
                        return
                    if chunk.next_offset <= position:
                        break  # the log shrank under us: the next tail read restarts it
                    parts.append(chunk.text)
                    position = chunk.next_offset
                text = "".join(parts)
                if position > until:
                    text = _drop_last_bytes(text, position - until)
                new_start = begin
                if begin > 0:
                    cut = text.find("\n")
                    if cut >= 0:
                        new_start = begin + _utf8_len(text[:cut + 1])
                        text = text[cut + 1:]
                self._show_older(text, new_start, until)
        except NotFound as error:
            if generation == self._generation:
                self._unavailable(error)
        except ApiError as error:
            if generation == self._generation:
                self._say_error(f"Could not read the older part of the log: {error.message}")
        finally:
            self._older_busy = False

    def _show_older(self, text: str, new_start: int, until: int) -> None:
        """Text that covers bytes [new_start, until), just above the window, into the view."""
        decoder = AnsiDecoder()  # the style in force before this part is unknown: start plain
        lines, unfinished = decoder.feed(text)
        if unfinished is not None:
            lines.append(unfinished)
        self._segments.appendleft(_Segment(new_start, until, len(lines)))
        self.start = new_start
        if lines:
            self.prepended.emit(lines)
        self._trim(top=False)
        self._settle_state_after_read()
        self.window_changed.emit()
        self._clear_error()

    async def _load_newer(self, generation: int) -> None:
        job_id = self.job_id
        try:
            async with self._lock:
                if job_id is None:
                    return
                target = self._read_pos + OLDER_STEP_BYTES
                while generation == self._generation and self._read_pos < target:
                    if await self._read_forward(generation, job_id):
                        self._at_live_end = True
                        break
                self._clear_error()
            self._wake.set()
        except NotFound as error:
            if generation == self._generation:
                self._unavailable(error)
        except ApiError as error:
            if generation == self._generation:
                self._say_error(f"Could not read the newer part of the log: {error.message}")
        finally:
            self._newer_busy = False

    # the memory bound ------------------------------------------------------------------------------------------
    def _trim(self, *, top: bool) -> None:
        """Drop whole segments at the far end until the window fits (keeping at least one)."""
        dropped = 0
        while len(self._segments) > 1 and (self.held_bytes > MAX_HELD_BYTES or self.held_lines > MAX_HELD_LINES):
            if top:
                dropped += self._segments.popleft().lines
                self.start = self._segments[0].start
            else:
                if self._pending_shown:
                    dropped += 1
                    self._pending_shown = False
                dropped += self._segments.pop().lines
                self.end = self._read_pos = self._segments[-1].end
                self._decoder = AnsiDecoder()
                self._at_live_end = False
        if dropped:
            self.trimmed.emit(dropped if top else 0, 0 if top else dropped)

    # helpers ----------------------------------------------------------------------------------------------------
    def _clear_window(self) -> None:
        self.size = self.start = self.end = self._read_pos = 0
        self._segments.clear()
        self._pending_shown = False
        self._at_live_end = True
        self._decoder = AnsiDecoder()
        self._last_progress = None

    def _say_error(self, text: str) -> None:
        self._error_shown = True
        self.error.emit(text)

    def _clear_error(self) -> None:
        if self._error_shown:
            self._error_shown = False
            self.error.emit("")

    def _set_state(self, state: LogState, text: str) -> None:
        self.state = state
        self.state_changed.emit(state.value, text)

    def _unavailable(self, error: NotFound) -> None:
        if error.code == "job_not_found":
            text = "The server no longer knows this job."
        else:
            text = "This server does not serve job logs."
        self._set_state(LogState.UNAVAILABLE, text)

    async def _job_active(self, job_id: str) -> bool:
        return await job_is_active(self.jobs, self.client, job_id)

    def _on_jobs_changed(self) -> None:
        if self.job_id is None or self.jobs is None:
            return
        job = self.jobs.model.job(self.job_id)
        if job is None:
            return
        progress = (job.status, job.current_step, job.revision)
        if progress != self._last_progress:
            self._last_progress = progress
            self._wake.set()


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", errors="replace"))


def _drop_last_bytes(text: str, count: int) -> str:
    """`text` without its last `count` bytes of UTF-8 (a character cut in two is dropped whole)."""
    tail = text[-count:] if count < len(text) else text  # `count` bytes are at most `count` characters
    encoded = tail.encode("utf-8", errors="replace")
    keep = encoded[:max(0, len(encoded) - count)].decode("utf-8", errors="ignore")
    return text[:len(text) - len(tail)] + keep
