"""A job's metrics as a CSV file: step, wall time, loss, then one column per scalar series.

No Qt here. `metrics_csv_text()` renders `MetricColumns` (one row per recorded step, ascending): `step`,
`wall_time` (the contract's timestamp form, UTC with milliseconds), `loss`, then every other series in the
order the job first reported it; a cell is empty where that step has no value. Numbers are written with
Python's `repr`, the shortest text that reads back as the same float, so the file equals the points.
A scalar whose name collides with a fixed column gets a `scalar:` prefix.

`write_metrics_csv()` writes it atomically (the server's `write_atomically`: temp file beside the target,
fsync, rename), so a reader never sees half a file and a failed export leaves the old file in place; it
raises `MetricsExportError` whose message says which file and why, for the user.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from training_studio.atomicfile import write_atomically
from training_studio.ui.jobs.details.metric_columns import LOSS, MetricColumns, format_time_ms

__all__ = ["metrics_csv_text", "write_metrics_csv", "MetricsExportError", "csv_header"]

_FIXED = ("step", "wall_time", LOSS)


class MetricsExportError(Exception):
    """The CSV could not be written; str() is a sentence for the user."""


def csv_header(columns: MetricColumns) -> list[str]:
    header = list(_FIXED)
    for name in columns.names:
        if name == LOSS:
            continue
        header.append(f"scalar:{name}" if name in _FIXED or name.startswith("scalar:") else name)
    return header


def _cell(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def metrics_csv_text(columns: MetricColumns) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_header(columns))
    others = [name for name in columns.names if name != LOSS]
    # Column lists once (tolist() is far faster than indexing numpy scalars row by row).
    steps = columns.steps.tolist()
    times = columns.times.tolist()
    loss = columns.column(LOSS).tolist()
    values = [columns.column(name).tolist() for name in others]
    for row, step in enumerate(steps):
        writer.writerow([step, format_time_ms(times[row]), _cell(loss[row]), *(_cell(v[row]) for v in values)])
    return buffer.getvalue()


def write_metrics_csv(path: str | os.PathLike[str], columns: MetricColumns) -> None:
    target = Path(path)
    text = metrics_csv_text(columns)
    try:
        if target.is_dir():
            raise IsADirectoryError(21, "it is a folder")
        write_atomically(target, text.encode("utf-8"))
    except OSError as error:
        reason = error.strerror or str(error)
        raise MetricsExportError(f"Could not save the metrics to {target}: {reason}.") from error
