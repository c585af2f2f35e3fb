"""Readers that turn a trainer's raw output bytes into progress points, phases, events and log lines.

A trainer writes whatever it likes to stdout and stderr; this module owns making sense of it without
ever raising. Bytes arrive in arbitrary chunks (split anywhere, even inside a UTF-8 character), so the
reader decodes incrementally and splits on both newlines and carriage returns (tqdm separates its
updates with '\\r'). Each piece is one of:

- a progress point: a JSON object with a `step` key (`{"step", "total_steps", "loss", "message"}`, any other
  numeric key being one more series such as `lr` or `grad_norm`), or, for third-party trainers in tqdm mode,
  an update of the *training* bar, whose loss comes from the postfix key the preset names (`loss=`,
  `avr_loss=`, `step_loss=`, or ai-toolkit's `loss: 4.1e-01`) and whose other series from the postfix keys
  the preset's `series` patterns name;
- a phase: an update of any other tqdm bar (loading image sizes, caching latents, downloads, sample
  generation, validation pipelines). It is what the job is doing right now, shown as its `detail`,
  never progress: a 16-image bar must not make a 40-step job read 16/16;
- an event: a JSON object with an `event` key and no `step` (the checkpoint announcements, the final
  evaluation), see docs/api.md "Trainer progress protocol";
- log text.

Which bar is the training bar: the one whose label matches the preset's `progress_bar` pattern; without
a pattern, the one whose total equals the job's total steps; with neither (an old caller), any bar.

It also owns explaining a failure (`ErrorTracker`, `describe_failure`): the root cause is the last
exception of the trainer's own process, in preference to the wrapper a launcher prints after it
(accelerate's `CalledProcessError`, torchrun's `ChildFailedError` summary), plus the exit status.
"""

from __future__ import annotations

import codecs
import json
import logging
import math
import re
import signal
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

ProgressFormat = Literal["jsonl", "tqdm"]
logger = logging.getLogger(__name__)

# A line longer than this without a separator is cut into pieces: a trainer that never prints a
# newline must not make the reader hold megabytes.
MAX_LINE_CHARS = 64 * 1024
# How much of one line an error message keeps.
MAX_ERROR_CHARS = 500
# How much of a phase text a job's `detail` keeps.
MAX_DETAIL_CHARS = 200
# A point's other series (issue 14): at most this many, named like this; the rest is ignored (and said
# once per stream in the server log), so a trainer cannot bloat the metrics table.
MAX_SCALARS = 16
SCALAR_NAME = re.compile(r"[A-Za-z0-9_./-]{1,64}")
# Keys of a JSON progress line that are not series.
_PROGRESS_KEYS = frozenset({"step", "total_steps", "loss", "message", "event"})


@dataclass(frozen=True)
class ProgressPoint:
    step: int
    total_steps: int | None = None
    loss: float | None = None
    message: str | None = None
    # Other series at this step besides the loss (lr, grad_norm…), name -> finite number; None when none.
    scalars: dict[str, float] | None = None


@dataclass(frozen=True)
class TrainerEvent:
    """A JSON line with an `event` key (and no `step`): checkpoint state, final evaluation..."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LogLine:
    text: str


@dataclass(frozen=True)
class PhaseUpdate:
    """What the trainer is busy with besides training steps ("loading image sizes 16/16"), for the
    job's `detail`; `text=None` when the training bar moves again (the phase is over).

    A consumer keeps only the latest one per flush: bars redraw many times a second."""

    text: str | None


ReaderItem = ProgressPoint | TrainerEvent | LogLine | PhaseUpdate

# One tqdm bar with a total: `desc: 12%|█▏   | 120/1000 [00:01<00:10, 98it/s, loss=0.1]`. With unit_scale
# (downloads) the counters read `1.55G/3.44G`: a phase, never a step count.
_BAR_WITH_TOTAL = re.compile(
    r"(?:(?P<pct>\d{1,3})%\|[^|\r\n]*\|\s*)?"
    r"(?<![\w.])(?P<n>\d+(?:\.\d+)?)(?P<nsuffix>[kMGTPEZY]?)/(?P<total>\d+(?:\.\d+)?)(?P<tsuffix>[kMGTPEZY]?)"
    r" \[(?P<info>[^\]]*)\]"
)
# A bar without a total: `Generating: 5it [00:01, 3.21it/s]`.
_BAR_WITHOUT_TOTAL = re.compile(
    r"(?<![\w.])(?P<n>\d+(?:\.\d+)?)(?P<unit>[A-Za-z]{0,8}) \[(?P<info>\d+:\d+(?::\d+)?(?:,[^\]]*)?)\]"
)
_TQDM_BAR_HINT = re.compile(r"\d+%\|.*\|\s*[\d.]+[kMGTPEZY]?/[\d.]+|\d+/\d+ \[\d+:\d+|\d+\w* \[\d+:\d+")
# Postfix items: tqdm's set_postfix writes `key=value`, ai-toolkit's set_postfix_str `key: value`.
_POSTFIX_ITEM = re.compile(r"(?:^|[,\s])([A-Za-z_][\w.\-/]*)(?:=|:\s*)([^,\s\]]+)")


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _number(value: Any) -> float | None:
    """A JSON number that is finite (not a bool, not a string): a series value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return number if math.isfinite(number) else None


def collect_scalars(items: Iterable[tuple[str, float | None]], dropped: list[str] | None = None) -> dict[str, float] | None:
    """The series among (name, value) pairs: values that are numbers, names that are SCALAR_NAME, at most
    MAX_SCALARS of them in order; the names left out for their name or the limit go to `dropped`."""
    kept: dict[str, float] = {}
    for name, value in items:
        if value is None:
            continue
        if len(kept) >= MAX_SCALARS or not SCALAR_NAME.fullmatch(name):
            if dropped is not None:
                dropped.append(name)
            continue
        kept[name] = value
    return kept or None


def parse_json_line(text: str, dropped: list[str] | None = None) -> ProgressPoint | TrainerEvent | None:
    """A progress point or event from one line, or None when the line is plain log text. Series names
    that were left out (see `collect_scalars`) are appended to `dropped`."""
    stripped = text.strip()
    if not stripped.startswith("{") or not stripped.endswith("}"):
        return None
    try:
        data = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    if "step" in data:
        step = _to_int(data.get("step"))
        if step is None or step < 0:
            return None
        total = _to_int(data.get("total_steps"))
        if total is not None and total <= 0:
            total = None
        message = data.get("message")
        scalars = collect_scalars(((key, _number(value)) for key, value in data.items() if key not in _PROGRESS_KEYS),
                                  dropped)
        return ProgressPoint(
            step=step,
            total_steps=total,
            loss=_to_float(data.get("loss")),
            message=message[:MAX_ERROR_CHARS] if isinstance(message, str) else None,
            scalars=scalars,
        )
    event = data.get("event")
    if isinstance(event, str) and event:
        return TrainerEvent(name=event, data=data)
    return None


@dataclass(frozen=True)
class TqdmBar:
    """One redraw of a tqdm bar, as read back from its text."""

    label: str  # the bar's desc, without tqdm's ": " ("" when the bar has none)
    n: str  # the counter as printed ("120", "1.55G")
    total: str | None  # None for a bar without a total
    percent: int | None
    info: str  # inside the brackets: elapsed<remaining, rate, postfix
    is_bytes: bool  # unit "B" (downloads)

    @property
    def step(self) -> int | None:
        return int(self.n) if self.n.isdigit() else None

    @property
    def total_steps(self) -> int | None:
        return int(self.total) if self.total is not None and self.total.isdigit() else None

    def postfix(self) -> dict[str, str]:
        """The postfix items, `key=value` and `key: value` alike (the elapsed/rate part has no keys)."""
        return {key: value for key, value in _POSTFIX_ITEM.findall(self.info)}


def parse_bar(text: str) -> TqdmBar | None:
    """The tqdm bar drawn by one line, or None. The last counter on the line is the bar's (a desc
    could contain "1/2 [x]")."""
    match = None
    for match in _BAR_WITH_TOTAL.finditer(text):
        pass
    if match is not None:
        info = match.group("info")
        is_bytes = bool(re.search(r"B/s\b", info)) or match.group("tsuffix") != "" and "B" in info
        return TqdmBar(label=_clean_label(text[:match.start()]), n=match.group("n") + match.group("nsuffix"),
                       total=match.group("total") + match.group("tsuffix"),
                       percent=int(match.group("pct")) if match.group("pct") else None,
                       info=info, is_bytes=is_bytes)
    for match in _BAR_WITHOUT_TOTAL.finditer(text):
        pass
    if match is not None:
        info = match.group("info")
        return TqdmBar(label=_clean_label(text[:match.start()]), n=match.group("n") + match.group("unit"),
                       total=None, percent=None, info=info,
                       is_bytes=match.group("unit").endswith("B") or bool(re.search(r"B/s\b", info)))
    return None


def parse_tqdm_line(text: str, loss_key: str | None, series: re.Pattern[str] | None = None) -> ProgressPoint | None:
    """The progress in one tqdm bar with a whole-number total, whichever bar it is."""
    bar = parse_bar(text)
    if bar is None or bar.step is None or bar.total_steps is None:
        return None
    return _bar_point(bar, loss_key, series)


def series_pattern(patterns: Iterable[str] | None) -> re.Pattern[str] | None:
    """The preset's `series` (postfix key patterns, `*` and `?` as in bar labels) as one regex; None when
    there are none."""
    parts = [bar_label_pattern(pattern).pattern for pattern in patterns or () if pattern]
    return re.compile("|".join(f"(?:{part})" for part in parts), re.DOTALL) if parts else None


def _bar_point(bar: TqdmBar, loss_key: str | None, series: re.Pattern[str] | None = None,
               dropped: list[str] | None = None) -> ProgressPoint | None:
    step = bar.step
    if step is None:
        return None
    total = bar.total_steps
    postfix = bar.postfix()
    loss = _to_float(postfix.get(loss_key)) if loss_key else None
    scalars = None
    if series is not None:
        scalars = collect_scalars(((key, _to_float(value)) for key, value in postfix.items()
                                   if key != loss_key and series.fullmatch(key)), dropped)
    return ProgressPoint(step=step, total_steps=total if total else None, loss=loss, scalars=scalars)


def looks_like_progress_bar(text: str) -> bool:
    return bool(_TQDM_BAR_HINT.search(text))


# Log prefixes that say nothing about the phase: timestamps, levels, logger names, rich's `file.py:12`.
_LOG_PREFIX = re.compile(
    r"^\s*(?:\[?\d{1,4}[-/]\d{1,2}[-/]\d{1,4}[ T]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\]?\s*|\[?\d{1,2}:\d{2}:\d{2}\]?\s*)?"
    r"(?:-\s*)?(?:\[?(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\]?:?\s*)?(?:-\s*(?:[\w.]+\s+-\s+)?)?"
)
_RICH_SOURCE = re.compile(r"\s+[\w.\-]+\.py:\d+\s*$")
# kohya prints bilingual messages: "generating sample images at step / サンプル画像生成 ステップ: 20".
_SECOND_LANGUAGE = re.compile(r"\s+/\s+[^\x00-\x7f][^:：]*")


def _clean_label(text: str) -> str:
    label = text.strip()
    while label.endswith(":"):
        label = label[:-1].rstrip()
    return _strip_ellipsis(label)


def _strip_ellipsis(text: str) -> str:
    return re.sub(r"(?:\.{2,}|…|\.)$", "", text.strip()).rstrip(" :")


def clean_log_message(text: str) -> str:
    """A log line without its timestamp, level and logger name: what it says the program is doing."""
    message = _RICH_SOURCE.sub("", text)
    message = _LOG_PREFIX.sub("", message, count=1)
    message = _SECOND_LANGUAGE.sub("", message)
    return _strip_ellipsis(message)


def phase_text(bar: TqdmBar, context_line: str | None) -> str:
    """How a non-training bar reads as the job's phase: "loading image sizes 16/16",
    "downloading config.json 100%", "Loading pipeline components 7/7"."""
    label = bar.label or (context_line or "")
    if bar.is_bytes:
        text = f"downloading {label or 'files'}"
        if bar.percent is not None:
            text += f" {bar.percent}%"
    elif bar.total is not None:
        text = f"{label} {bar.n}/{bar.total}" if label else f"{bar.n}/{bar.total}"
    else:
        text = f"{label} {bar.n}" if label else bar.n
    return text.strip()[:MAX_DETAIL_CHARS]


def bar_label_pattern(pattern: str) -> re.Pattern[str]:
    """A bar label pattern (`*` any text, `?` one character, `\\*`, `\\?` and `\\\\` literal, the rest
    literal; it must match the whole label, case sensitive) as a regular expression."""
    parts = []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    if escaped:
        parts.append(re.escape("\\"))
    return re.compile("".join(parts), re.DOTALL)


def escape_label(text: str) -> str:
    """`text` as a bar label pattern that matches only itself."""
    return re.sub(r"([*?\\])", r"\\\1", text)


class PhaseContext:
    """What the readers of one trainer share: its last log message (the label of the unlabeled bars
    that follow it, kohya style) and its current phase. The readers of a trainer's stdout and stderr
    should share one: kohya logs to one and draws its bars on the other."""

    def __init__(self) -> None:
        self.last_message: str | None = None
        self.phase: str | None = None


class StreamReader:
    """Incremental reader for one output stream; `feed()` bytes, `close()` at EOF.

    `progress_bar` is the training bar's label pattern (a compiled regex, see `bar_label_pattern`, or
    the pattern text); `total_steps` the job's; `series` the postfix keys (patterns) that are series in
    tqdm mode. Never raises on any input: undecodable bytes become U+FFFD, unparseable lines are log text.
    Series left out (bad names, over MAX_SCALARS) are said once per reader in the log, under `name`.
    """

    def __init__(self, progress_format: ProgressFormat = "jsonl", loss_key: str | None = None, *,
                 progress_bar: re.Pattern[str] | str | None = None, total_steps: int | None = None,
                 context: PhaseContext | None = None, series: Iterable[str] | None = None,
                 name: str = "") -> None:
        self.progress_format = progress_format
        self.loss_key = loss_key
        if isinstance(progress_bar, str):
            progress_bar = bar_label_pattern(progress_bar)
        self.progress_bar = progress_bar
        self.total_steps = total_steps if total_steps and total_steps > 0 else None
        self.context = context or PhaseContext()
        self.series = series_pattern(series)
        self.name = name
        self._dropped: list[str] | None = []  # None once the dropped series were logged
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> list[ReaderItem]:
        text = self._pending + self._decoder.decode(chunk)
        pieces = re.split(r"\r\n|\r|\n", text)
        self._pending = pieces.pop()
        items: list[ReaderItem] = []
        for piece in pieces:
            items.extend(self._classify(piece))
        while len(self._pending) > MAX_LINE_CHARS:
            items.extend(self._classify(self._pending[:MAX_LINE_CHARS]))
            self._pending = self._pending[MAX_LINE_CHARS:]
        return items

    def close(self) -> list[ReaderItem]:
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return self._classify(rest) if rest else []

    def is_training_bar(self, bar: TqdmBar) -> bool:
        if self.progress_format != "tqdm" or bar.step is None:
            return False
        if self.progress_bar is not None:
            return self.progress_bar.fullmatch(bar.label) is not None
        if self.total_steps is not None:
            return bar.total_steps == self.total_steps
        return bar.total_steps is not None  # no rule given: any counted bar (the old behaviour)

    def _classify(self, piece: str) -> list[ReaderItem]:
        if not piece:
            return []
        parsed = parse_json_line(piece, self._dropped)
        if parsed is not None:
            self._log_dropped()
            if isinstance(parsed, ProgressPoint):
                return [*self._phase(None), parsed]
            return [parsed]
        bar = parse_bar(piece)
        if bar is not None:
            if self.is_training_bar(bar):
                point = _bar_point(bar, self.loss_key, self.series, self._dropped)
                self._log_dropped()
                if point is not None:
                    return [*self._phase(None), point]
            return self._phase(phase_text(bar, self.context.last_message))
        if piece.strip():
            message = clean_log_message(piece)
            if message:
                self.context.last_message = message[:MAX_DETAIL_CHARS]
        return [LogLine(piece)]

    def _log_dropped(self) -> None:
        if self._dropped:
            names = ", ".join(repr(name[:80]) for name in dict.fromkeys(self._dropped))
            logger.info("%signoring series the trainer reported beyond %d per step or with a name other than "
                        "1-64 of [A-Za-z0-9_./-]: %s (said once)", f"job {self.name}: " if self.name else "",
                        MAX_SCALARS, names[:500])
            self._dropped = None

    def _phase(self, text: str | None) -> list[ReaderItem]:
        if text == self.context.phase:
            return []
        self.context.phase = text
        return [PhaseUpdate(text)]


# ---- failures ------------------------------------------------------------------------------------

# Lines a traceback is made of, none of which says what went wrong.
_TRACEBACK_START = re.compile(r"^\s*Traceback \(most recent call last\):")
_TRACEBACK_FRAME = re.compile(r'^\s*File ".*", line \d+')
_TRACEBACK_NOISE = (
    _TRACEBACK_START,
    _TRACEBACK_FRAME,
    re.compile(r"^\s*[\^~\s]+$"),
    re.compile(r"^\s*During handling of the above exception"),
    re.compile(r"^\s*The above exception was the direct cause"),
)
_ERROR_LINE = re.compile(
    r"^\s*(?:[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Fault|Failure)\b"
    r"|(?:error|fatal|ERROR|FATAL|Error|Fatal)\b)"
)
# The line that ends a traceback: `module.Type: message` (or the bare type); a class name has a capital
# and a lowercase letter (`OSError`, `torch.OutOfMemoryError`), which log words like `INFO:` lack.
_EXCEPTION_LINE = re.compile(
    r"^(?P<type>(?:[A-Za-z_]\w*\.)*_?[A-Z]\w*[a-z]\w*)(?::(?:\s(?P<message>.*))?)?$"
)
# What launchers raise about a child that failed: never the root cause.
LAUNCHER_WRAPPERS = frozenset({
    "subprocess.CalledProcessError", "CalledProcessError",
    "torch.distributed.elastic.multiprocessing.errors.ChildFailedError", "ChildFailedError",
})
# torchrun's / accelerate's multi-process failure summary (printed after ChildFailedError).
_LAUNCHER_SUMMARY = re.compile(
    r"^\s*(?:=+|-+|\[\d+\]:|Failures:|<NO_OTHER_FAILURES>|Root Cause \(first observed failure\):"
    r"|time\s*:|host\s*:|rank\s*:|exitcode\s*:|error_file\s*:|traceback\s*:|\S+ FAILED$)"
)
_CALLED_PROCESS_STATUS = re.compile(
    r"returned non-zero exit status (?P<code>-?\d+)|died with <Signals\.(?P<signame>SIG\w+): (?P<signum>\d+)>"
)
_TORCHRUN_STATUS = re.compile(r"^\s*exitcode\s*:\s*(?P<code>-?\d+)")
MAX_TRACEBACK_LINES = 400


def names_error(line: str) -> bool:
    """Whether a line says what went wrong (`ValueError: boom`, `error: ...`)."""
    return bool(_ERROR_LINE.match(line))


def describe_signal(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_status(exit_code: int) -> str:
    """ "exit status 1", "killed by SIGKILL" (a negative code is a signal, as subprocess reports it)."""
    if exit_code < 0:
        return f"killed by {describe_signal(-exit_code)}"
    return f"exit status {exit_code}"


def exception_type(line: str) -> str | None:
    match = _EXCEPTION_LINE.match(line.strip())
    return match.group("type") if match else None


class ErrorTracker:
    """Remembers the recent meaningful lines of a trainer's output, and the exceptions it printed, to
    explain a failure. Feed it the LogLines of one stream (bars are ignored anyway)."""

    def __init__(self, keep: int = 64) -> None:
        self._lines: deque[str] = deque(maxlen=keep)
        self._in_traceback_source = False
        self._traceback_lines = -1  # >= 0 while inside a traceback: lines seen since its start
        # Exceptions that ended a traceback, in order (a launcher's wrapper comes after its child's).
        self.exceptions: deque[str] = deque(maxlen=16)
        # The status a launcher reported for its child ("exit status 1", "killed by SIGKILL").
        self.child_status: str | None = None

    def add(self, text: str) -> None:
        line = text.strip()
        if not line:
            return
        if looks_like_progress_bar(line):
            return
        self._note_child_status(line)
        if _TRACEBACK_START.match(text):
            self._traceback_lines = 0
            self._in_traceback_source = False
            return
        if self._traceback_lines >= 0:
            self._traceback_lines += 1
            if self._traceback_lines > MAX_TRACEBACK_LINES:
                self._traceback_lines = -1
            elif not text[:1].isspace() and exception_type(line) is not None:
                self.exceptions.append(line[:MAX_ERROR_CHARS * 4])
                self._traceback_lines = -1
                self._in_traceback_source = False
                self._lines.append(line[:MAX_ERROR_CHARS])
                return
        if _TRACEBACK_FRAME.match(text):
            # the next indented line is the frame's source code, not an error
            self._in_traceback_source = True
            return
        if self._in_traceback_source and text[:1].isspace():
            self._in_traceback_source = False
            return
        self._in_traceback_source = False
        if any(pattern.match(text) for pattern in _TRACEBACK_NOISE) or _LAUNCHER_SUMMARY.match(text):
            return
        self._lines.append(line[:MAX_ERROR_CHARS])

    def _note_child_status(self, line: str) -> None:
        if exception_type(line) in LAUNCHER_WRAPPERS:
            match = _CALLED_PROCESS_STATUS.search(line)
            if match is not None:
                if match.group("code") is not None:
                    self.child_status = describe_status(int(match.group("code")))
                else:
                    self.child_status = f"killed by {match.group('signame')}"
            return
        match = _TORCHRUN_STATUS.match(line)
        if match is not None:
            self.child_status = describe_status(int(match.group("code")))

    def root_exception(self) -> str | None:
        """The last exception that is not a launcher's wrapper: the trainer's own."""
        for line in reversed(self.exceptions):
            if exception_type(line) not in LAUNCHER_WRAPPERS:
                return line
        return None

    def last_error_line(self) -> str | None:
        """The trainer's own exception, else the last line that names an error (not a launcher's
        wrapper), else the last meaningful line, else None."""
        root = self.root_exception()
        if root is not None:
            return root[:MAX_ERROR_CHARS]
        for line in reversed(self._lines):
            if names_error(line) and exception_type(line) not in LAUNCHER_WRAPPERS:
                return line
        for line in reversed(self._lines):
            if exception_type(line) not in LAUNCHER_WRAPPERS:
                return line
        return self._lines[-1] if self._lines else None


def describe_failure(exit_code: int, trackers: Iterable[ErrorTracker]) -> str:
    """A failed trainer's `error`: its root cause and status, at most MAX_ERROR_CHARS characters.

    `torch.OutOfMemoryError: CUDA out of memory. Tried to allocate … (exit status 1)`: the trainer's
    own last exception (stderr's tracker first) rather than the launcher's wrapper, with the status
    the launcher reported for its child when there is one, else the status of the process we started.
    """
    trackers = list(trackers)
    status = next((t.child_status for t in trackers if t.child_status), None) or describe_status(exit_code)
    if exit_code < 0:
        status = describe_status(exit_code)  # we killed (or someone killed) the launcher itself
    cause = next((root for t in trackers if (root := t.root_exception()) is not None), None)
    if cause is None:
        cause = next((line for t in trackers if (line := t.last_error_line()) is not None
                      and names_error(line) and exception_type(line) not in LAUNCHER_WRAPPERS), None)
    if cause is None:
        return f"the trainer failed ({status})" if exit_code >= 0 else f"the trainer was {status}"
    suffix = f" ({status})"
    room = MAX_ERROR_CHARS - len(suffix)
    if len(cause) > room:
        cause = cause[:room - 1].rstrip() + "…"
    return cause + suffix
