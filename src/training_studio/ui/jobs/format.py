"""Text and colour choices for showing training jobs: no Qt here, so every choice is plain data.

This module owns how a job's numbers read (elapsed time, loss, step counter, percentage), the
human label of each status (including the unknown one a foreign server may send), and the colour
palettes of the status badges and progress bars for light and dark themes. The palettes are chosen
to meet WCAG 2.x contrast: badge text against badge background at least 4.5:1 (AA for normal text),
bar fill against bar track at least 3:1 (AA for graphical objects). `contrast_ratio()` is the WCAG
formula, so tests and callers can check any pair, and `dimmed_text_colour()` fades the text of
finished rows only as far as AA allows. It also owns the ETA texts (`eta_cell_text`, `eta_overview_text`:
"estimating…", "in 12 min", a local clock time; computed from timestamps, never negative), and the CSV text
of a table (`table_csv`), and where a job runs (`placement_text` for a cell, `placement_details` for its
tooltip; the Jobs table's "Runs on", the Overview's and History's "Ran on").
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from training_studio.contract.models import JobStatus, Placement

__all__ = [
    "NO_VALUE",
    "CANCELLING_LABEL",
    "StatusColours",
    "ProgressColours",
    "status_label",
    "known_status",
    "format_elapsed",
    "spoken_elapsed",
    "format_loss",
    "format_step",
    "spoken_step",
    "clamp_progress",
    "format_progress",
    "status_colours",
    "progress_colours",
    "relative_luminance",
    "contrast_ratio",
    "dimmed_text_colour",
    "is_dark_background",
    "AA_TEXT_RATIO",
    "AA_GRAPHICS_RATIO",
    "ESTIMATING",
    "format_remaining",
    "eta_cell_text",
    "eta_clock_text",
    "eta_overview_text",
    "table_csv",
    "placement_text",
    "placement_details",
]

NO_VALUE = "—"  # shown where a job has no value yet (no loss before the first progress line)
CANCELLING_LABEL = "Cancelling…"
HELD_LABEL = "Held"  # a queued job the user holds back (issue 16)
ESTIMATING = "estimating…"  # a running job whose server has no ETA yet (too few steps, or an older server)
AA_TEXT_RATIO = 4.5
AA_GRAPHICS_RATIO = 3.0

_STATUS_LABELS: dict[JobStatus, str] = {
    JobStatus.PENDING: "Pending",
    JobStatus.QUEUED: "Queued",
    JobStatus.RUNNING: "Running",
    JobStatus.COMPLETED: "Completed",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Cancelled",
    JobStatus.UNKNOWN: "Unknown",
}


# Both the members and their wire strings as keys: JobStatus("x") costs a microsecond through
# Enum machinery, a dict lookup a few dozen nanoseconds, and paint() asks for every visible row.
_STATUS_OF: dict[object, JobStatus] = {**{s: s for s in JobStatus}, **{s.value: s for s in JobStatus}}


def known_status(status: JobStatus | str | None) -> JobStatus:
    """`status` as a JobStatus; anything unrecognised (or not a string) is UNKNOWN."""
    try:
        return _STATUS_OF.get(status, JobStatus.UNKNOWN)  # type: ignore[arg-type]
    except TypeError:  # unhashable junk
        return JobStatus.UNKNOWN


def status_label(status: JobStatus | str | None) -> str:
    """The human label of a status; anything unrecognised reads "Unknown"."""
    return _STATUS_LABELS[known_status(status)]


def format_elapsed(seconds: float | None) -> str:
    """`m:ss` under an hour, `h:mm:ss` from an hour on; whole seconds, never negative."""
    if seconds is None or not math.isfinite(seconds):
        return NO_VALUE
    total = int(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def spoken_elapsed(seconds: float | None) -> str:
    """Elapsed time as a screen reader should say it ("1 hour 2 minutes 5 seconds")."""
    if seconds is None or not math.isfinite(seconds):
        return "not started"
    total = int(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(_plural(hours, "hour"))
    if minutes:
        parts.append(_plural(minutes, "minute"))
    if secs or not parts:
        parts.append(_plural(secs, "second"))
    return " ".join(parts)


def format_loss(loss: float | None) -> str:
    """Four significant digits; scientific notation for very small or large values."""
    if loss is None:
        return NO_VALUE
    if math.isnan(loss):
        return "NaN"  # a diverged run must be visible as such, not hidden as "—"
    if math.isinf(loss):
        return "∞" if loss > 0 else "−∞"
    magnitude = abs(loss)
    if magnitude != 0 and (magnitude < 1e-3 or magnitude >= 1e5):
        return f"{loss:.3e}"
    return f"{loss:.4g}" if magnitude >= 1 else f"{loss:.4f}"


def format_step(current: int | None, total: int | None) -> str:
    """`current / total` with thousands separators; a missing side shows as "—"."""
    if current is None and total is None:
        return NO_VALUE
    current_text = NO_VALUE if current is None else f"{current:,}"
    if total is None:
        return current_text
    return f"{current_text} / {total:,}"


def spoken_step(current: int | None, total: int | None) -> str:
    if current is None and total is None:
        return "no steps yet"
    if total is None:
        return f"step {current}"
    if current is None:
        return f"no steps yet of {total}"
    return f"step {current} of {total}"


def clamp_progress(progress: float | None) -> float:
    """A percentage safe to draw: 0 for missing or NaN, clamped to 0–100."""
    if progress is None or not math.isfinite(progress):
        return 0.0
    return min(100.0, max(0.0, float(progress)))


def format_progress(progress: float | None) -> str:
    """Whole percent, except that an unfinished job never rounds up to a misleading "100%"."""
    value = clamp_progress(progress)
    whole = math.floor(value) if value < 100.0 else 100
    return f"{whole}%"


# ---------------------------------------------------------------------------------------------
# Colours. Hex strings "#rrggbb" so this module stays free of Qt.


@dataclass(frozen=True)
class StatusColours:
    """Badge colours of one status: text and icon share `foreground`."""

    foreground: str
    background: str


@dataclass(frozen=True)
class ProgressColours:
    fill: str
    track: str


# Tailwind-like tints: strong hue for the text, pale (light theme) or deep (dark theme) background.
_LIGHT_BADGES: dict[JobStatus, StatusColours] = {
    JobStatus.PENDING: StatusColours("#4b5563", "#eef0f3"),
    JobStatus.QUEUED: StatusColours("#3730a3", "#e0e7ff"),
    JobStatus.RUNNING: StatusColours("#1d4ed8", "#dbeafe"),
    JobStatus.COMPLETED: StatusColours("#166534", "#dcfce7"),
    JobStatus.FAILED: StatusColours("#b91c1c", "#fee2e2"),
    JobStatus.CANCELLED: StatusColours("#92400e", "#fef3c7"),
    JobStatus.UNKNOWN: StatusColours("#44403c", "#e7e5e4"),
}
_DARK_BADGES: dict[JobStatus, StatusColours] = {
    JobStatus.PENDING: StatusColours("#d1d5db", "#374151"),
    JobStatus.QUEUED: StatusColours("#c7d2fe", "#312e81"),
    JobStatus.RUNNING: StatusColours("#bfdbfe", "#1e3a8a"),
    JobStatus.COMPLETED: StatusColours("#bbf7d0", "#14532d"),
    JobStatus.FAILED: StatusColours("#fecaca", "#7f1d1d"),
    JobStatus.CANCELLED: StatusColours("#fde68a", "#78350f"),
    JobStatus.UNKNOWN: StatusColours("#e7e5e4", "#44403c"),
}

_LIGHT_TRACK = "#e5e7eb"
_DARK_TRACK = "#3f3f46"
_LIGHT_FILLS: dict[JobStatus, str] = {
    JobStatus.PENDING: "#6b7280",
    JobStatus.QUEUED: "#4f46e5",
    JobStatus.RUNNING: "#2563eb",
    JobStatus.COMPLETED: "#15803d",
    JobStatus.FAILED: "#dc2626",
    JobStatus.CANCELLED: "#b45309",
    JobStatus.UNKNOWN: "#6b7280",
}
_DARK_FILLS: dict[JobStatus, str] = {
    JobStatus.PENDING: "#a1a1aa",
    JobStatus.QUEUED: "#a5b4fc",
    JobStatus.RUNNING: "#60a5fa",
    JobStatus.COMPLETED: "#4ade80",
    JobStatus.FAILED: "#f87171",
    JobStatus.CANCELLED: "#fbbf24",
    JobStatus.UNKNOWN: "#a1a1aa",
}


def status_colours(status: JobStatus | str | None, *, dark: bool) -> StatusColours:
    """Badge colours for a status in the light or dark theme; unknown statuses get neutral grey."""
    return (_DARK_BADGES if dark else _LIGHT_BADGES)[known_status(status)]


def progress_colours(status: JobStatus | str | None, *, dark: bool) -> ProgressColours:
    """Bar colours: the fill follows the status so a failed run's bar reads differently."""
    return (_DARK_BARS if dark else _LIGHT_BARS)[known_status(status)]


def _rgb(colour: str) -> tuple[int, int, int]:
    text = colour.lstrip("#")
    if len(text) != 6:
        raise ValueError(f"expected a colour like '#1a2b3c', got {colour!r}")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


_LIGHT_BARS = {status: ProgressColours(fill, _LIGHT_TRACK) for status, fill in _LIGHT_FILLS.items()}
_DARK_BARS = {status: ProgressColours(fill, _DARK_TRACK) for status, fill in _DARK_FILLS.items()}


def relative_luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of an sRGB colour."""

    def linear(channel: int) -> float:
        c = channel / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = _rgb(colour)
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def contrast_ratio(first: str, second: str) -> float:
    """WCAG contrast ratio between two colours, from 1 (same) to 21 (black on white)."""
    a, b = relative_luminance(first), relative_luminance(second)
    lighter, darker = max(a, b), min(a, b)
    return (lighter + 0.05) / (darker + 0.05)


def is_dark_background(colour: str) -> bool:
    """True when dark text would be the wrong choice on this background."""
    return relative_luminance(colour) < 0.18


def dimmed_text_colour(text: str, background: str, *, min_ratio: float = AA_TEXT_RATIO,
                       max_fade: float = 0.45) -> str:
    """`text` faded toward `background` as far as `max_fade`, but never below `min_ratio` contrast.

    If the palette's own text colour is already below the ratio, it is returned unchanged: dimming
    must never make things worse than the user's theme.
    """
    if contrast_ratio(text, background) <= min_ratio:
        return text
    fg, bg = _rgb(text), _rgb(background)

    def mix(amount: float) -> str:
        return _hex(tuple(f + (b - f) * amount for f, b in zip(fg, bg)))

    if contrast_ratio(mix(max_fade), background) >= min_ratio:
        return mix(max_fade)
    low, high = 0.0, max_fade  # contrast falls monotonically as we fade: bisect for the limit
    for _ in range(20):
        middle = (low + high) / 2
        if contrast_ratio(mix(middle), background) >= min_ratio:
            low = middle
        else:
            high = middle
    return mix(low)


# ---------------------------------------------------------------------------------------------
# ETA: the server sends when it expects a running job to finish (`etaAt`); these turn that moment and
# the current time (both epoch seconds, the server's clock) into text. Never negative: a moment already
# passed reads "any moment now".


def format_remaining(seconds: float) -> str:
    """A countdown in words: "in 45 s" under a minute, "in 12 min" under an hour, "in 1 h 05 min" beyond;
    "any moment now" when nothing (or less than nothing) is left."""
    if not math.isfinite(seconds) or seconds < 1:
        return "any moment now"
    if seconds < 60:
        return f"in {int(seconds)} s"
    minutes = int(round(seconds / 60.0))
    if minutes < 60:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        return f"in {hours // 24} days"
    return f"in {hours} h {minutes:02d} min"


def _eta_applies(status: JobStatus | str | None) -> bool:
    return known_status(status) is JobStatus.RUNNING


def eta_cell_text(status: JobStatus | str | None, eta_at: float | None, now: float) -> str:
    """The ETA column: "—" unless running; "estimating…" while the server has no ETA; else the countdown."""
    if not _eta_applies(status):
        return NO_VALUE
    if eta_at is None or not math.isfinite(eta_at):
        return ESTIMATING
    return format_remaining(eta_at - now)


def eta_clock_text(eta_at: float, now: float, tz: tzinfo | None = None) -> str:
    """The finishing moment as a local clock time ("14:32"), with the day when it is not today
    ("tomorrow 09:10", "Mon 7 Dec 09:10"). `tz` None: the machine's local time zone."""
    moment = datetime.fromtimestamp(max(eta_at, now), tz=tz) if tz else \
        datetime.fromtimestamp(max(eta_at, now)).astimezone()
    today = datetime.fromtimestamp(now, tz=tz) if tz else datetime.fromtimestamp(now).astimezone()
    clock = moment.strftime("%H:%M")
    if moment.date() == today.date():
        return clock
    if moment.date() == (today + timedelta(days=1)).date():
        return f"tomorrow {clock}"
    return f"{moment.strftime('%a')} {moment.day} {moment.strftime('%b')} {clock}"


def eta_overview_text(status: JobStatus | str | None, eta_at: float | None, now: float,
                      tz: tzinfo | None = None) -> str:
    """The overview's ETA line: "14:32 (in 12 min)", "estimating…" or "—" (see `eta_cell_text`)."""
    if not _eta_applies(status):
        return NO_VALUE
    if eta_at is None or not math.isfinite(eta_at):
        return ESTIMATING
    return f"{eta_clock_text(eta_at, now, tz)} ({format_remaining(eta_at - now)})"


# ---------------------------------------------------------------------------------------------
# CSV


def table_csv(headers: list[str], rows: list[list[str]]) -> str:
    """A table as CSV text (RFC 4180 quoting, "\\r\\n" line ends), header row first. Cells that a
    spreadsheet would run as a formula (starting with =, +, -, @) get a leading apostrophe, unless they
    read as a number ("-0.5")."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([_csv_cell(cell) for cell in headers])
    for row in rows:
        writer.writerow([_csv_cell(cell) for cell in row])
    return buffer.getvalue()


def _csv_cell(text: str) -> str:
    if text and text[0] in "=+-@\t\r":
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def placement_text(placement: Placement | None) -> str:
    """Where a job runs, short enough for a column: the most specific place (Ray node, host, cluster
    address, else the executor) and its GPUs, "ray-node-3 · GPU 0, 1". Empty when the server did not say
    (a job that has not started, or an older server)."""
    if placement is None:
        return ""
    where = placement.node or placement.host or placement.address or placement.executor or ""
    if placement.gpus:
        gpus = f"GPU {', '.join(placement.gpus)}"
        return f"{where} · {gpus}" if where else gpus
    return where


def placement_details(placement: Placement | None) -> str:
    """Every known part of a placement, one per line, for a tooltip or the Overview; empty when unknown."""
    if placement is None:
        return ""
    executor = {"local": "this server's machine", "ray": "Ray cluster"}.get(placement.executor or "",
                                                                             placement.executor or "")
    lines = [f"Executor: {executor}"] if executor else []
    for label, value in (("Host", placement.host), ("Cluster", placement.address), ("Node", placement.node)):
        if value:
            lines.append(f"{label}: {value}")
    lines.append(f"GPU: {', '.join(placement.gpus)}" if len(placement.gpus) == 1
                 else f"GPUs: {', '.join(placement.gpus)}" if placement.gpus else "GPU: none (CPU)")
    return "\n".join(lines)
