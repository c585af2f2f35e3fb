"""Metrics as CSV (ui/jobs/details/metrics_csv.py) and the columns it reads (metric_columns.py): the file
equals the points, missing values are empty cells, the write is atomic and a failure says why."""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import pytest

from training_studio.ui.jobs.details.metric_columns import MetricColumns, format_time_ms, parse_points, parse_times
from training_studio.ui.jobs.details.metrics_csv import MetricsExportError, metrics_csv_text, write_metrics_csv

POINTS = [
    {"step": 1, "loss": 0.5, "time": "2026-12-04T10:00:00.001Z"},
    {"step": 2, "loss": None, "time": "2026-12-04T10:00:00.999Z", "scalars": {"lr": 0.001}},
    {"step": 5, "loss": 0.1 + 0.2, "time": "2026-12-04T10:00:01.500Z",
     "scalars": {"lr": 0.0009, "grad_norm": 12.5, "step": 3.0}},
]


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_csv_equals_the_points(tmp_path):
    columns = parse_points(POINTS)
    target = tmp_path / "metrics.csv"
    write_metrics_csv(target, columns)
    rows = read_csv(target)
    assert list(rows[0]) == ["step", "wall_time", "loss", "lr", "grad_norm", "scalar:step"]
    assert len(rows) == len(POINTS)
    for row, point in zip(rows, POINTS):
        assert int(row["step"]) == point["step"]
        assert row["wall_time"] == point["time"]
        assert (float(row["loss"]) if row["loss"] else None) == point["loss"]  # exact: repr round-trips
        scalars = point.get("scalars") or {}
        for name in ("lr", "grad_norm"):
            assert (float(row[name]) if row[name] else None) == scalars.get(name)
        assert (float(row["scalar:step"]) if row["scalar:step"] else None) == scalars.get("step")


def test_appending_answers_keeps_the_columns_aligned():
    columns = MetricColumns()
    columns.extend(parse_points(POINTS[:1]))
    columns.extend(parse_points(POINTS[1:], after_step=columns.last_step))
    assert columns.steps.tolist() == [1, 2, 5]
    assert columns.names == ["loss", "lr", "grad_norm", "step"]
    lr = columns.column("lr")
    assert math.isnan(lr[0]) and lr[1:].tolist() == [0.001, 0.0009]
    assert metrics_csv_text(columns) == metrics_csv_text(parse_points(POINTS))
    # Many appends grow the buffers without losing rows.
    for step in range(6, 5006):
        columns.extend(parse_points([{"step": step, "loss": step / 10, "time": "2026-12-04T10:00:02.000Z"}]))
    assert len(columns) == 5003 and columns.column("loss")[-1] == 500.5
    assert np.isnan(columns.column("grad_norm")[3:]).all()


def test_malformed_points_are_skipped_not_fatal():
    items = [{"step": 1, "loss": "x", "time": "yesterday"}, "junk", {"loss": 1.0}, {"step": True},
             {"step": 3, "loss": 1e400, "time": "2026-12-04T10:00:00+00:00", "scalars": {"lr": "fast", "7": [1]}},
             {"step": 2, "loss": 0.5, "time": None}]  # not ascending: skipped
    columns = parse_points(items)
    assert columns.steps.tolist() == [1, 3]
    assert columns.skipped_points == 4
    assert math.isnan(columns.times[0]) and columns.times[1] == 1796378400.0
    assert np.isnan(columns.column("loss")).all()
    assert parse_points({"not": "a list"}).skipped_points == 1


def test_times_round_trip_at_millisecond_precision():
    texts = [f"2026-12-04T10:00:0{n}.{n * 111:03d}Z" for n in range(10)]
    assert [format_time_ms(t) for t in parse_times(texts)] == texts
    assert format_time_ms(math.nan) == ""


def test_write_is_atomic_and_failures_say_why(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("old content")
    with pytest.raises(MetricsExportError, match="Could not save the metrics to .*missing"):
        write_metrics_csv(tmp_path / "missing" / "metrics.csv", parse_points(POINTS))
    with pytest.raises(MetricsExportError, match="folder"):
        write_metrics_csv(tmp_path, parse_points(POINTS))
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        (locked / "metrics.csv").write_text("old content")
        locked.chmod(0o500)
        try:
            with pytest.raises(MetricsExportError, match="Permission denied"):
                write_metrics_csv(locked / "metrics.csv", parse_points(POINTS))
            assert (locked / "metrics.csv").read_text() == "old content"
        finally:
            locked.chmod(0o700)
    write_metrics_csv(target, parse_points(POINTS))
    assert target.read_text().startswith("step,wall_time,loss")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
