"""What the History tab asks the server for, as plain data (no Qt): statuses, name text, date range, order.

`HistoryQuery` is immutable, turns into the jobs list's query parameters (docs/api.md, history) and into
JSON for the settings file and back; a stored value that does not parse reads back as the default, never
as an exception (the settings file is user-editable).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from training_studio.contract.models import TERMINAL_STATUSES, JobStatus, format_timestamp

__all__ = ["HistoryQuery", "DATE_RANGES", "ALL_STATUSES"]

ALL_STATUSES: tuple[str, ...] = tuple(status.value for status in JobStatus if status is not JobStatus.UNKNOWN)
# (key, label, days back from now or None for any time)
DATE_RANGES: list[tuple[str, str, int | None]] = [
    ("any", "Any time", None), ("day", "Last 24 hours", 1), ("week", "Last 7 days", 7),
    ("month", "Last 30 days", 30), ("year", "Last 12 months", 365),
]
MAX_TEXT = 200


@dataclass(frozen=True)
class HistoryQuery:
    statuses: frozenset[str] = field(default_factory=lambda: frozenset(s.value for s in TERMINAL_STATUSES))
    text: str = ""
    date_range: str = "any"
    order: str = "-createdAt"

    def with_changes(self, **changes: Any) -> "HistoryQuery":
        return replace(self, **changes)

    def after(self, now: datetime | None = None) -> str | None:
        days = next((days for key, _, days in DATE_RANGES if key == self.date_range), None)
        if days is None:
            return None
        return format_timestamp((now or datetime.now(timezone.utc)) - timedelta(days=days))

    def params(self, now: datetime | None = None) -> dict[str, Any]:
        """Keyword arguments of ApiClient.job_history for the first page."""
        return {"statuses": sorted(self.statuses) or list(ALL_STATUSES), "query": self.text.strip() or None,
                "order": self.order, "after": self.after(now)}

    def to_json(self) -> dict[str, Any]:
        return {"statuses": sorted(self.statuses), "text": self.text, "date_range": self.date_range,
                "order": self.order}

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
        return cls(statuses=chosen, text=text[:MAX_TEXT], date_range=date_range, order=order)
