"""What the History tab asks the server for, as plain data (no Qt): statuses, name text, date range, order.

`HistoryQuery` is immutable, turns into the jobs list's query parameters (docs/api.md, history) and into
JSON for the settings file and back; a stored value that does not parse reads back as the default, never
as an exception (the settings file is user-editable). The date range is either a fixed one back from now
(`after` only) or a custom range of local calendar days, From and To both included: `after` just before
the start of From, `before` the start of the day after To, both sent in UTC (the server compares creation
times strictly: after < createdAt < before).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from training_studio.contract.models import TERMINAL_STATUSES, JobStatus, format_timestamp

__all__ = ["HistoryQuery", "DATE_RANGES", "ALL_STATUSES", "CUSTOM_RANGE", "RANGE_ERROR"]

ALL_STATUSES: tuple[str, ...] = tuple(status.value for status in JobStatus if status is not JobStatus.UNKNOWN)
CUSTOM_RANGE = "custom"  # the date range of the From and To days (`date_from`, `date_to`)
# (key, label, days back from now, or None for any time and for the custom range)
DATE_RANGES: list[tuple[str, str, int | None]] = [
    ("any", "Any time", None), ("day", "Last 24 hours", 1), ("week", "Last 7 days", 7),
    ("month", "Last 30 days", 30), ("year", "Last 12 months", 365), (CUSTOM_RANGE, "Custom range…", None),
]
RANGE_ERROR = "From is after To"
MAX_TEXT = 200


@dataclass(frozen=True)
class HistoryQuery:
    statuses: frozenset[str] = field(default_factory=lambda: frozenset(s.value for s in TERMINAL_STATUSES))
    text: str = ""
    date_range: str = "any"
    order: str = "-createdAt"
    # The custom range's days (local calendar days, both included). Kept while another range is chosen,
    # so choosing "Custom range…" again brings them back.
    date_from: date | None = None
    date_to: date | None = None

    def with_changes(self, **changes: Any) -> "HistoryQuery":
        return replace(self, **changes)

    @staticmethod
    def range_error(date_from: date | None, date_to: date | None) -> str | None:
        """Why a custom range cannot be asked for, or None."""
        if date_from is not None and date_to is not None and date_from > date_to:
            return RANGE_ERROR
        return None

    def bounds(self, now: datetime | None = None) -> tuple[str | None, str | None]:
        """(`after`, `before`) for the server, UTC timestamps or None."""
        if self.date_range == CUSTOM_RANGE:
            after = before = None
            try:  # (a day at the end of the calendar leaves its side open)
                if self.date_from is not None:  # strictly after: one millisecond (the stored precision) earlier
                    after = format_timestamp(_start_of_local_day(self.date_from) - timedelta(milliseconds=1))
            except (OverflowError, ValueError, OSError):
                after = None
            try:
                if self.date_to is not None:
                    before = format_timestamp(_start_of_local_day(self.date_to + timedelta(days=1)))
            except (OverflowError, ValueError, OSError):
                before = None
            return after, before
        days = next((days for key, _, days in DATE_RANGES if key == self.date_range), None)
        if days is None:
            return None, None
        return format_timestamp((now or datetime.now(timezone.utc)) - timedelta(days=days)), None

    def after(self, now: datetime | None = None) -> str | None:
        return self.bounds(now)[0]

    def params(self, now: datetime | None = None) -> dict[str, Any]:
        """Keyword arguments of ApiClient.job_history for the first page."""
        after, before = self.bounds(now)
        return {"statuses": sorted(self.statuses) or list(ALL_STATUSES), "query": self.text.strip() or None,
                "order": self.order, "after": after, "before": before}

    def to_json(self) -> dict[str, Any]:
        return {"statuses": sorted(self.statuses), "text": self.text, "date_range": self.date_range,
                "order": self.order,
                "date_from": self.date_from.isoformat() if self.date_from is not None else None,
                "date_to": self.date_to.isoformat() if self.date_to is not None else None}

    @classmethod
    def from_json(cls, data: Any) -> "HistoryQuery":
        default = cls()
        if not isinstance(data, dict):
            return default
        statuses = data.get("statuses")
        if isinstance(statuses, list) and all(isinstance(s, str) and s in ALL_STATUSES for s in statuses):
            chosen = frozenset(statuses)
        else:
            chosen = default.statuses
        text = data.get("text") if isinstance(data.get("text"), str) else ""
        date_range = data.get("date_range")
        if date_range not in {key for key, _, _ in DATE_RANGES}:
            date_range = default.date_range
        order = data.get("order")
        if not isinstance(order, str) or order.lstrip("-") not in {
                "createdAt", "name", "status", "finishedAt", "currentLoss", "startedAt", "progress"}:
            order = default.order
        # Saved before the custom range existed: no dates, read as none. A custom range missing a day, or
        # with From after To, reads as "any time" (its days are kept for the fields when they parse).
        date_from, date_to = _day(data.get("date_from")), _day(data.get("date_to"))
        if cls.range_error(date_from, date_to) is not None:
            date_from = date_to = None
        if date_range == CUSTOM_RANGE and (date_from is None or date_to is None):
            date_range = default.date_range
        return cls(statuses=chosen, text=text[:MAX_TEXT], date_range=date_range, order=order,
                   date_from=date_from, date_to=date_to)


def _day(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _start_of_local_day(day: date) -> datetime:
    """Local midnight of `day` (the system's time zone, daylight saving included) as an aware moment."""
    return datetime.combine(day, time.min).astimezone()
