"""Text formatting shared by the Datasets and Models panels: timestamps, byte sizes, record statuses.

Pure functions, no Qt: what a user reads for a server value. Unknown enum values (a newer server) read
"Unknown", never crash.
"""

from __future__ import annotations

from datetime import datetime

from training_studio.contract.models import DatasetStatus, ModelStatus, parse_timestamp

__all__ = ["format_created", "format_bytes", "status_text", "status_tooltip", "status_icon"]

_STATUS_TEXT = {
    "active": "Active", "processing": "Processing", "failed": "Failed", "ready": "Ready", "unknown": "Unknown",
}
# Icons shipped in training_studio/resources/icons.
_STATUS_ICON = {
    "active": "circle-check", "ready": "circle-check", "processing": "clock", "failed": "circle-alert",
}


def format_created(text: str | None, *, now: datetime | None = None) -> str:
    """A wire timestamp in local time, "2026-11-27 15:44"; "—" when missing or unreadable."""
    moment = parse_timestamp(text)
    if moment is None:
        return "—"
    return moment.astimezone(now.tzinfo if now is not None else None).strftime("%Y-%m-%d %H:%M")


def format_bytes(size: int | None) -> str:
    """1 KB = 1000 bytes (as file managers show it); "—" for an unknown size."""
    if size is None or size < 0:
        return "—"
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000.0
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{size} B"  # unreachable


def status_text(status: DatasetStatus | ModelStatus | str | None) -> str:
    return _STATUS_TEXT.get(str(status or "unknown"), "Unknown")


def status_tooltip(status: DatasetStatus | ModelStatus | str | None, error: str | None) -> str:
    """The status cell's tooltip: its name (a narrow badge shows only its icon), and why, when it failed."""
    return f"{status_text(status)}: {error}" if error else status_text(status)


def status_icon(status: DatasetStatus | ModelStatus | str | None) -> str:
    return _STATUS_ICON.get(str(status or "unknown"), "circle-help")
