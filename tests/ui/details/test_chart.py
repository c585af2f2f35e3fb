"""The loss chart (ui/jobs/details/chart.py, metrics_store.py) against a real server subprocess and the real
built-in trainer: live points, smoothing, compare, exports and empty states.

The old-contract case uses the labelled seed-only stand-in (tests/support/seed_server.py) on a real socket:
it implements only the seed endpoints, so /metrics answers 404 as an unknown route.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QPalette, QWheelEvent
from PySide6.QtWidgets import QApplication

from tests.support.jobs import create_job
from tests.support.seed_server import SeedOnlyServer
from tests.ui.app_fixtures import sync_client
from tests.ui.details.test_smoothing import reference
from tests.ui.jobs_helpers import make_dataset, make_job, wait_status
from training_studio.ui.jobs.details.chart import LossChart
from training_studio.ui.jobs.details.metric_columns import parse_times
from training_studio.ui.jobs.details.metrics_store import MetricsStore

pytestmark = pytest.mark.timeout(180)

TERMINAL = {"completed", "failed", "cancelled"}


def make_chart(harness, qtbot, url: str, token: str) -> LossChart:
    store = harness.store(url, token, refresh_interval=0.3)
    store.start()
    # The metrics store outlives the widget (qtbot deletes widgets first): the harness shuts it down and
    # drains its tasks with the jobs store (same shutdown()/wait_idle() API).
    metrics_store = MetricsStore(store)
    harness.stores.append(metrics_store)
    chart = LossChart(store, store=metrics_store)
    qtbot.addWidget(chart)
    chart.resize(900, 480)
    chart.show()
    return chart


def metrics(http, job_id: str) -> list[dict]:
    response = http.get(f"/api/training/jobs/{job_id}/metrics")
    response.raise_for_status()
    return response.json()


def chart_points(chart: LossChart, job_id: str):
    data = chart._jobs[job_id].data  # noqa: SLF001 (the chart's buffers are what it draws)
    return data.steps.view.astype(int).tolist(), data.raw.view.tolist(), data


def test_the_chart_follows_a_running_builtin_job_and_ends_equal_to_metrics(server, harness, qtbot):
    with sync_client(server.url, server.token) as http:
        dataset_id = make_dataset(http, "live", images=6)
        job = make_job(http, dataset_id, "live run", total_steps=3000)
        chart = make_chart(harness, qtbot, server.url, server.token)
        batches: list[tuple[int, str]] = []  # (rows, job status when they arrived)

        def on_points(job_id, steps, _times, _values):
            status = http.get("/api/training/status", params={"job_id": job_id}).json()["status"]
            batches.append((len(steps), status))

        chart.store.points_appended.connect(on_points)
        resets: list[str] = []
        chart.store.series_reset.connect(resets.append)
        chart.show_jobs([job["id"]])
        # Points arrive while the trainer runs, in several fetches (incremental, not one load at the end).
        qtbot.waitUntil(lambda: sum(1 for _n, status in batches if status == "running") >= 2, timeout=90_000)
        assert chart.empty_message() == ""
        wait_status(http, job["id"], TERMINAL, timeout=120)
        expected = metrics(http, job["id"])
        assert expected and expected[-1]["step"] == 3000
        qtbot.waitUntil(lambda: chart_points(chart, job["id"])[0][-1:] == [expected[-1]["step"]], timeout=30_000)
        steps, raw, data = chart_points(chart, job["id"])
        assert steps == [p["step"] for p in expected if p["loss"] is not None]
        assert raw == [p["loss"] for p in expected if p["loss"] is not None]
        # Never the whole series twice: the rows received add up to the points, once each, no reset.
        assert sum(n for n, _status in batches) == len(expected) and resets == []
        # The smoothed curve is TensorBoard's EMA of the raw one, at the default weight and after a change.
        np.testing.assert_allclose(data.smoothed.view, reference(raw, 0.6), rtol=1e-9)
        chart.set_smoothing(0.95)
        np.testing.assert_allclose(chart_points(chart, job["id"])[2].smoothed.view, reference(raw, 0.95), rtol=1e-9)
        # The built-in trainer's other scalar is offered as a series and plots /metrics' values.
        qtbot.waitUntil(lambda: chart.series_box.findText("elbo_loss") >= 0, timeout=10_000)
        chart.set_series("elbo_loss")
        steps, raw, _data = chart_points(chart, job["id"])
        assert raw == [p["scalars"]["elbo_loss"] for p in expected if (p.get("scalars") or {}).get("elbo_loss")
                       is not None]
        # The hover readout names the step, raw and smoothed values and the wall time.
        text = chart.readout_text(float(steps[10]))
        assert f"step {steps[10]}" in text and "raw" in text and "smoothed" in text and "20" in text


def test_compare_three_jobs_draws_three_curves_with_three_legend_entries(server, harness, qtbot):
    with sync_client(server.url, server.token) as http:
        dataset_id = make_dataset(http, "compare", images=4)
        jobs = [make_job(http, dataset_id, f"run {name}", total_steps=40) for name in ("a", "b", "c")]
        for job in jobs:
            wait_status(http, job["id"], TERMINAL, timeout=120)
    chart = make_chart(harness, qtbot, server.url, server.token)
    ids = [job["id"] for job in jobs]
    colours = {ids[0]: QColor("#0060b0"), ids[1]: QColor("#d55e00"), ids[2]: QColor("#007a5e")}
    chart.show_jobs(ids, colours)
    qtbot.waitUntil(lambda: all(len(chart._jobs[j].data) == 40 for j in ids), timeout=30_000)  # noqa: SLF001
    chart.redraw()
    curves = [item for item in chart.plot_item.listDataItems() if item.xData is not None and len(item.xData)]
    assert len(curves) == 6  # per job: the faint raw series and the smoothed one
    assert len(chart.legend.items) == 3
    qtbot.waitUntil(lambda: sorted(label.text for _sample, label in chart.legend.items)
                    == ["run a", "run b", "run c"], timeout=10_000)
    for job_id, colour in colours.items():
        curve = chart._jobs[job_id]  # noqa: SLF001
        assert curve.smoothed_item.opts["pen"].color().name() == colour.name()
        assert curve.raw_item.opts["pen"].color().name() != colour.name()  # faint: mixed into the background
    # By wall time: the same curves over the points' timestamps (epoch seconds), hover included.
    chart.set_x_axis("time")
    chart.redraw()
    first = chart._jobs[ids[0]]  # noqa: SLF001
    assert first.smoothed_item.xData[0] == first.data.times.view[0] > 1.7e9
    assert "step 1 ·" in chart.readout_text(float(first.data.times.view[0]))
    chart.set_x_axis("step")
    # Dropping one from the comparison drops its curves and its legend entry.
    chart.show_jobs(ids[:2], colours)
    chart.redraw()
    assert len(chart.legend.items) == 2
    assert len([i for i in chart.plot_item.listDataItems() if i.xData is not None and len(i.xData)]) == 4


def test_exports_csv_equal_to_metrics_png_and_svg(server, harness, qtbot, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("exports")
    with sync_client(server.url, server.token) as http:
        dataset_id = make_dataset(http, "export", images=4)
        job = make_job(http, dataset_id, "export run", total_steps=60)
        wait_status(http, job["id"], TERMINAL, timeout=120)
        expected = metrics(http, job["id"])
    chart = make_chart(harness, qtbot, server.url, server.token)
    failures: list[str] = []
    chart.export_failed.connect(failures.append)
    chart.show_jobs([job["id"]])
    qtbot.waitUntil(lambda: len(chart._jobs[job["id"]].data) == 60, timeout=30_000)  # noqa: SLF001

    target = tmp_path / "metrics.csv"
    assert chart.export_csv(target), failures
    with open(target, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(expected)
    scalar_names = sorted({name for p in expected for name in (p.get("scalars") or {})})
    assert rows and set(rows[0]) == {"step", "wall_time", "loss", *scalar_names}
    for row, point in zip(rows, expected):
        assert int(row["step"]) == point["step"]
        assert parse_times([row["wall_time"]])[0] == parse_times([point["time"]])[0]
        assert (float(row["loss"]) if row["loss"] else None) == point["loss"]
        for name in scalar_names:
            value = (point.get("scalars") or {}).get(name)
            assert (float(row[name]) if row[name] else None) == value

    # Through the non-blocking dialog (QFileDialog.open(), answered by a slot), as the menu does.
    finished: list[str] = []
    chart.export_finished.connect(finished.append)
    dialog = chart.request_export("csv")
    assert dialog.isVisible() and dialog.isModal()
    dialog.selectFile(str(tmp_path / "again.csv"))
    dialog.accept()
    qtbot.waitUntil(lambda: finished == [str(tmp_path / "again.csv")], timeout=10_000)
    assert (tmp_path / "again.csv").read_bytes() == target.read_bytes()
    (tmp_path / "again.csv").unlink()

    png, svg = tmp_path / "chart.png", tmp_path / "chart.svg"
    assert chart.export_png(png) and chart.export_svg(svg), failures
    image = QImage(str(png))
    assert not image.isNull() and image.width() > 100
    assert "<svg" in svg.read_text(encoding="utf-8")[:2000]
    # A failed export says why and leaves nothing behind.
    assert not chart.export_png(tmp_path / "no such folder" / "chart.png")
    assert failures and "Could not save the chart" in failures[-1]
    assert not chart.export_csv(tmp_path)
    assert "Could not save the metrics" in failures[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chart.png", "chart.svg", "metrics.csv"]


FAILING_PRESET = """[[preset]]
id = "fails-at-once"
name = "A trainer that fails before its first step"
command = [{python}, "-c", "import sys; print('RuntimeError: no GPU found', file=sys.stderr); sys.exit(1)"]
"""


def test_a_job_without_metrics_and_a_failed_job_show_a_sentence(server_factory, harness, qtbot, tmp_path):
    (tmp_path / "failing").mkdir()
    (tmp_path / "failing" / "presets.toml").write_text(FAILING_PRESET.format(python=json.dumps(sys.executable)))
    srv = server_factory("failing", extra_args=["--cancel-grace", "1"])
    with sync_client(srv.url, srv.token) as http:
        dataset_id = make_dataset(http, "fine", images=2)
        failed = create_job(http, dataset_id, "fails-at-once", total_steps=50, name="doomed")
        final = wait_status(http, failed["id"], TERMINAL, timeout=120)
        assert final["status"] == "failed"
        assert metrics(http, failed["id"]) == []
    chart = make_chart(harness, qtbot, srv.url, srv.token)
    assert chart.stack.currentWidget() is chart.empty_label and "Select a job" in chart.empty_label.text()
    qtbot.waitUntil(lambda: chart.store.job(failed["id"]) is not None, timeout=30_000)
    chart.show_jobs([failed["id"]])
    qtbot.waitUntil(lambda: "failed before reporting any metrics" in chart.empty_label.text(), timeout=30_000)
    assert chart.stack.currentWidget() is chart.empty_label

    # A job that has not produced a point yet (held by a server without a runner: it stays pending).
    idle = server_factory("idle", extra_args=["--no-runner"])
    with sync_client(idle.url, idle.token) as http:
        pending = make_job(http, make_dataset(http, "later", images=2), "waiting", total_steps=10)
    other = make_chart(harness, qtbot, idle.url, idle.token)
    qtbot.waitUntil(lambda: other.store.job(pending["id"]) is not None, timeout=30_000)
    other.show_jobs([pending["id"]])
    qtbot.waitUntil(lambda: other.empty_label.text() == "No metrics yet: the job has not started.", timeout=30_000)
    assert other.stack.currentWidget() is other.empty_label


@pytest.fixture
def seed_server():
    server = SeedOnlyServer().start()
    yield server
    server.stop()


def test_an_old_contract_server_without_metrics_shows_a_sentence(seed_server, harness, qtbot):
    seed_server.add_job("old", "an old server's job", total_steps=10)
    seed_server.advance("old", 4)
    chart = make_chart(harness, qtbot, seed_server.url, seed_server.token)
    qtbot.waitUntil(lambda: chart.store.job("old") is not None, timeout=20_000)
    chart.show_jobs(["old"])
    qtbot.waitUntil(lambda: "does not provide metrics" in chart.empty_label.text(), timeout=20_000)
    assert chart.stack.currentWidget() is chart.empty_label
    asked = seed_server.count("/api/training/jobs/old/metrics")
    assert asked == 1
    # Not asked again: the job advancing does not retry a route the server does not have.
    seed_server.advance("old", 8)
    qtbot.waitUntil(lambda: chart.store.job("old").current_step == 8, timeout=20_000)
    assert seed_server.count("/api/training/jobs/old/metrics") == 1


SIGNED = Path(__file__).parent / "trainers" / "signed.py"
SIGNED_PRESET = """[[preset]]
id = "signed"
name = "A trainer whose loss crosses zero"
command = {command}
progress = "jsonl"
loss_key = "loss"
[[preset.params]]
name = "gate"
type = "str"
default = "stop"
description = "gate"
[[preset.params]]
name = "interval"
type = "str"
default = "0.1"
description = "interval"
"""


@pytest.fixture
def signed_server(server_factory, tmp_path):
    """A real server whose "signed" preset runs trainers/signed.py: losses through zero and below, one step
    every `interval` seconds until the test touches <control>/<gate>."""
    control, data = tmp_path / "control", tmp_path / "signed"
    control.mkdir()
    data.mkdir()
    command = json.dumps([sys.executable, str(SIGNED), str(control), "{params.gate}", "{params.interval}"])
    (data / "presets.toml").write_text(SIGNED_PRESET.format(command=command))
    srv = server_factory("signed", extra_args=["--cancel-grace", "1"])
    with sync_client(srv.url, srv.token) as http:
        yield srv, http, control


def start_signed(http, interval: float, gate: str = "stop") -> str:
    job = create_job(http, make_dataset(http, "signed", images=1), "signed", total_steps=100_000,
                     name="crosses zero", params={"gate": gate, "interval": str(interval)})
    return job["id"]


def drawn(item) -> tuple[np.ndarray, np.ndarray]:
    """What the chart handed a curve item: x and y before pyqtgraph's own log transform."""
    return np.asarray(item.xData, dtype=float), np.asarray(item.yData, dtype=float)


def redrawn(qtbot, chart: LossChart, action) -> None:
    """Do `action`, then wait for the chart's next redraw (its redraws are coalesced to one per frame)."""
    before = chart.redraws
    action()
    qtbot.waitUntil(lambda: chart.redraws > before, timeout=10_000)


def test_log_scale_plots_only_positive_values_on_a_log_axis_and_off_restores_them(signed_server, harness, qtbot):
    srv, http, control = signed_server
    job_id = start_signed(http, 0.02)
    chart = make_chart(harness, qtbot, srv.url, srv.token)
    chart.show_jobs([job_id])
    qtbot.waitUntil(lambda: len(chart._jobs[job_id].data) >= 16, timeout=60_000)  # noqa: SLF001 (two cycles)
    (control / "stop").touch()
    wait_status(http, job_id, TERMINAL, timeout=60)
    expected = metrics(http, job_id)
    qtbot.waitUntil(lambda: len(chart._jobs[job_id].data) == len(expected), timeout=30_000)  # noqa: SLF001
    curves = chart._jobs[job_id]  # noqa: SLF001
    by_step = {p["step"]: p["loss"] for p in expected}
    smoothed_by_step = dict(zip(curves.data.steps.view.tolist(), curves.data.smoothed.view.tolist()))
    assert min(by_step.values()) < 0 and 0.0 in by_step.values()  # the data has what a log axis cannot show
    redrawn(qtbot, chart, chart.redraw)
    x, y = drawn(curves.raw_item)
    assert np.array_equal(y, [by_step[int(step)] for step in x])  # linear: every value, as reported
    assert not chart.plot_item.getAxis("left").logMode

    redrawn(qtbot, chart, chart.log_check.click)  # the "Log scale" box, as a user ticks it

    assert chart.log_check.isChecked() and chart.following
    assert chart.plot_item.getAxis("left").logMode and curves.raw_item.opts["logMode"] == [False, True]
    x, y = drawn(curves.raw_item)
    wanted = np.array([by_step[int(step)] for step in x])
    assert np.array_equal(np.isnan(y), wanted <= 0)  # zero and negative losses are not plotted (NaN)…
    assert np.array_equal(y[wanted > 0], wanted[wanted > 0])  # …the rest are, unchanged
    sx, sy = drawn(curves.smoothed_item)
    smoothed = np.array([smoothed_by_step[step] for step in sx])
    assert np.array_equal(np.isnan(sy), smoothed <= 0) and np.array_equal(sy[smoothed > 0], smoothed[smoothed > 0])
    # The view holds the plotted values in log10 units (pyqtgraph's log axis): 0.25 .. 8 here.
    (_x_lo, _x_hi), (y_lo, y_hi) = chart.view_box.viewRange()
    positive = wanted[wanted > 0]
    assert y_lo <= math.log10(positive.min()) and math.log10(positive.max()) <= y_hi < 2

    redrawn(qtbot, chart, chart.log_check.click)  # off again

    assert not chart.log_check.isChecked() and not chart.plot_item.getAxis("left").logMode
    assert curves.raw_item.opts["logMode"] == [False, False]
    x, y = drawn(curves.raw_item)
    assert np.array_equal(y, [by_step[int(step)] for step in x]) and not np.isnan(y).any()
    (_x_lo, _x_hi), (y_lo, y_hi) = chart.view_box.viewRange()
    assert y_lo <= min(by_step.values()) and max(by_step.values()) <= y_hi


def wheel_zoom(chart: LossChart, notches: int = 2) -> None:
    """Zoom in with the mouse wheel over the middle of the plot, as a user does."""
    viewport = chart.plot_widget.viewport()
    centre = QPointF(viewport.rect().center())
    event = QWheelEvent(centre, QPointF(viewport.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, event)


def test_zooming_stops_following_new_points_leave_the_view_alone_and_reset_view_follows_again(
        signed_server, harness, qtbot):
    srv, http, control = signed_server
    job_id = start_signed(http, 0.1)
    chart = make_chart(harness, qtbot, srv.url, srv.token)
    chart.show_jobs([job_id])
    data = chart._jobs[job_id].data  # noqa: SLF001
    try:
        qtbot.waitUntil(lambda: len(data) >= 12, timeout=60_000)
        assert chart.following
        # Following: the view holds every point (it only grows, with headroom ahead).
        qtbot.waitUntil(lambda: chart.view_box.viewRange()[0][1] >= data.steps.view[-1], timeout=10_000)

        redrawn(qtbot, chart, lambda: wheel_zoom(chart))  # the user zooms in

        assert not chart.following
        zoomed = chart.view_box.viewRange()
        assert zoomed[0][1] - zoomed[0][0] < data.steps.view[-1] - data.steps.view[0]
        # New points arrive and are drawn; the view stays where the user put it.
        seen = len(data)
        qtbot.waitUntil(lambda: len(data) >= seen + 5, timeout=30_000)
        redrawn(qtbot, chart, lambda: None)
        np.testing.assert_allclose(chart.view_box.viewRange(), zoomed)
        assert not chart.following

        # Reset view: following again, every point in view (and the theme's background stays: the faint raw
        # curve is mixed into it).
        dark = QPalette(chart.palette())
        dark.setColor(QPalette.ColorRole.Base, QColor("#1e1e1e"))
        chart.setPalette(dark)
        background = QColor(chart._background)  # noqa: SLF001
        assert background.lightness() < 128
        redrawn(qtbot, chart, lambda: qtbot.mouseClick(chart.reset_button, Qt.MouseButton.LeftButton))
        assert chart.following and chart._background == background  # noqa: SLF001
        (x_lo, x_hi), (y_lo, y_hi) = chart.view_box.viewRange()
        shown = len(data)
        assert x_lo == data.steps.view[0] and x_hi >= data.steps.view[shown - 1]
        assert y_lo <= data.raw.view[:shown].min() and data.raw.view[:shown].max() <= y_hi
        # …and it grows with the points again.
        qtbot.waitUntil(lambda: chart.view_box.viewRange()[0][1] > x_hi, timeout=60_000)
        assert chart.view_box.viewRange()[0][0] == data.steps.view[0]
    finally:
        (control / "stop").touch()
    wait_status(http, job_id, TERMINAL, timeout=60)
