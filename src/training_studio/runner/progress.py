"""Readers that turn a trainer's raw output bytes into progress points, events and log lines.

A trainer writes whatever it likes to stdout and stderr; this module owns making sense of it without
ever raising. Bytes arrive in arbitrary chunks (split anywhere, even inside a UTF-8 character), so the
reader decodes incrementally and splits on both newlines and carriage returns (tqdm separates its
updates with '\\r'). Each piece is one of:

- a progress point: a JSON object with a `step` key (`{"step", "total_steps", "loss", "message"}`), or,
  for third-party trainers in tqdm mode, a tqdm bar with an `N/M [...]` counter, whose loss comes from
  the postfix key the preset names (`loss=`, `avr_loss=`, `step_loss=`);
- an event: a JSON object with an `event` key and no `step` (the checkpoint announcements, the final
  evaluation), see docs/api.md "Trainer progress protocol";
- log text.

It also owns "the last meaningful error line": what a failed job shows as its `error`.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

ProgressFormat = Literal["jsonl", "tqdm"]

# A line longer than this without a separator is cut into pieces: a trainer that never prints a
# newline must not make the reader hold megabytes.
MAX_LINE_CHARS = 64 * 1024
# How much of one line an error message keeps.
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class ProgressPoint:
    step: int
    total_steps: int | None = None
    loss: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class TrainerEvent:
    """A JSON line with an `event` key (and no `step`): checkpoint state, final evaluation..."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LogLine:
    text: str


ReaderItem = ProgressPoint | TrainerEvent | LogLine

# `120/1000 [00:01<00:10, 98.21it/s, loss=0.123]`; with unit_scale tqdm may write 1.2k: not a step count.
_TQDM_COUNTER = re.compile(r"(?<![\w.])(\d+)/(\d+) \[([^\]]*)\]")
_TQDM_BAR_HINT = re.compile(r"\d+%\|.*\|\s*\d+/\d+|\d+/\d+ \[\d+:\d+|\d+it \[\d+:\d+")
_POSTFIX_ITEM = re.compile(r"([A-Za-z_][\w.\-]*)=([^,\]]*)")


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


def parse_json_line(text: str) -> ProgressPoint | TrainerEvent | None:
    """A progress point or event from one line, or None when the line is plain log text."""
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
        return ProgressPoint(
            step=step,
            total_steps=total,
            loss=_to_float(data.get("loss")),
            message=message[:MAX_ERROR_CHARS] if isinstance(message, str) else None,
        )
    event = data.get("event")
    if isinstance(event, str) and event:
        return TrainerEvent(name=event, data=data)
    return None


def parse_tqdm_line(text: str, loss_key: str | None) -> ProgressPoint | None:
    """The progress in one tqdm bar (`desc: 12%|█▏ | 120/1000 [00:01<00:10, 98it/s, loss=0.1]`)."""
    match = None
    for match in _TQDM_COUNTER.finditer(text):
        pass  # the last counter on the line is the bar's (a desc could contain "1/2 [x]")
    if match is None:
        return None
    step, total = int(match.group(1)), int(match.group(2))
    loss = None
    if loss_key:
        for key, value in _POSTFIX_ITEM.findall(match.group(3)):
            if key == loss_key:
                loss = _to_float(value)
    return ProgressPoint(step=step, total_steps=total if total > 0 else None, loss=loss)


def looks_like_progress_bar(text: str) -> bool:
    return bool(_TQDM_BAR_HINT.search(text))


class StreamReader:
    """Incremental reader for one output stream; `feed()` bytes, `close()` at EOF.

    Never raises on any input: undecodable bytes become U+FFFD, unparseable lines are log text.
    """

    def __init__(self, progress_format: ProgressFormat = "jsonl", loss_key: str | None = None) -> None:
        self.progress_format = progress_format
        self.loss_key = loss_key
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> list[ReaderItem]:
        text = self._pending + self._decoder.decode(chunk)
        pieces = re.split(r"\r\n|\r|\n", text)
        self._pending = pieces.pop()
        items = [self._classify(piece) for piece in pieces]
        while len(self._pending) > MAX_LINE_CHARS:
            items.append(self._classify(self._pending[:MAX_LINE_CHARS]))
            self._pending = self._pending[MAX_LINE_CHARS:]
        return [item for item in items if item is not None]

    def close(self) -> list[ReaderItem]:
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        item = self._classify(rest) if rest else None
        return [item] if item is not None else []

    def _classify(self, piece: str) -> ReaderItem | None:
        if not piece:
            return None
        parsed = parse_json_line(piece)
        if parsed is not None:
            return parsed
        if self.progress_format == "tqdm":
            point = parse_tqdm_line(piece, self.loss_key)
            if point is not None:
                return point
        return LogLine(piece)


# Lines a traceback is made of, none of which says what went wrong.
_TRACEBACK_NOISE = (
    re.compile(r"^\s*Traceback \(most recent call last\):"),
    re.compile(r'^\s*File ".*", line \d+'),
    re.compile(r"^\s*[\^~\s]+$"),
    re.compile(r"^\s*During handling of the above exception"),
    re.compile(r"^\s*The above exception was the direct cause"),
)
_ERROR_LINE = re.compile(
    r"^\s*(?:[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Fault|Failure)\b"
    r"|(?:error|fatal|ERROR|FATAL|Error|Fatal)\b)"
)


def names_error(line: str) -> bool:
    """Whether a line says what went wrong (`ValueError: boom`, `error: ...`)."""
    return bool(_ERROR_LINE.match(line))


class ErrorTracker:
    """Remembers the recent meaningful lines of a trainer's output to explain a failure."""

    def __init__(self, keep: int = 64) -> None:
        self._lines: deque[str] = deque(maxlen=keep)
        self._in_traceback_source = False

    def add(self, text: str) -> None:
        line = text.strip()
        if not line:
            return
        if looks_like_progress_bar(line):
            return
        if _TRACEBACK_NOISE[1].match(text):
            # the next indented line is the frame's source code, not an error
            self._in_traceback_source = True
            return
        if self._in_traceback_source and text[:1].isspace():
            self._in_traceback_source = False
            return
        self._in_traceback_source = False
        if any(pattern.match(text) for pattern in _TRACEBACK_NOISE):
            return
        self._lines.append(line[:MAX_ERROR_CHARS])

    def last_error_line(self) -> str | None:
        """The last line that names an error, else the last meaningful line, else None."""
        for line in reversed(self._lines):
            if names_error(line):
                return line
        return self._lines[-1] if self._lines else None
