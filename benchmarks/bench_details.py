"""Loss-chart figures (issue 14): one point appended to a chart holding 1,000,000, and opening a job with
100,000 metric points.

This module owns the two chart figures; both run the real `LossChart` (ui/jobs/details/chart.py) shown
offscreen at 900 × 500 px on this process's GUI thread.

- details-chart (append): the chart holds one job with 1,000,000 loss points, and points keep arriving
  one at a time, 1,000 per second, exactly as the app delivers them (the chart's `MetricsStore` emits
  `points_appended`, the chart's slot takes it), the chart's own 16 ms frame timer coalescing the redraws
  and Qt painting what changed. Value: the GUI thread's CPU time (time.thread_time: slots, redraws, paints,
  the event loop) per appended point, in 100 ms windows, median and p95. Baseline, same process, same size
  and stream: a stock pyqtgraph PlotWidget with clip-to-view and auto "peak" downsampling on, given the
  whole series by `setData` for every new point. The notes add the worst case, one point per frame: the
  append, then its redraw at once (the frame timer's slot) and the paint it causes.
- details-chart (open): a real server subprocess whose data dir holds one finished job with 100,000 metric
  points, SEEDED before the server starts by the runner's own progress call (`Storage.record_progress`, one
  transaction: the benchmark does not wait for a trainer to print 100,000 lines). The app's JobStore lists
  the job first (as the table does before a user opens a job). Clock: from `chart.show_jobs([job])` to the
  first paint of the curve: the overview request (every k-th point, `stride`), its decoding in a worker
  thread, the chart's buffers, smoothing and pyramid, the redraw and the paint, on a qasync loop as in the
  app; the notes add when every point was painted (the whole series, fetched right after). Baseline: the
  whole series' request alone (`httpx` GET and `json.loads`), i.e. what any client pays for all the data.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import BenchServer, Result, goal_note, insert_job_rows, iso, job_rows, log, median, percentile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

APPEND_POINTS = 1_000_000
OPEN_POINTS = 100_000
SIZE = (900, 500)


def _qt_app() -> Any:
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication(sys.argv[:1])


class _NoServerJobs:
    """The parts of JobStore the chart uses, for the append figure (no server: the points are handed to
    the chart's store signal directly)."""

    def __init__(self) -> None:
        from PySide6.QtCore import QObject, Signal

        from training_studio.client import ApiClient
        from training_studio.ui.jobs.model import JobListModel

        class Jobs(QObject):
            jobs_changed = Signal()

        self.qobject = Jobs()
        self.jobs_changed = self.qobject.jobs_changed
        self.client = ApiClient("")
        self.model = JobListModel()


def _series(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1, dtype=np.int64)
    times = 1.75e9 + steps * 0.05
    loss = 2.0 * np.exp(-steps / (n / 5)) + 0.1 + rng.normal(0, 0.03, n)
    return steps, times, np.abs(loss)


class _PaintCounter:
    """Counts the paint events a widget receives."""

    def __init__(self, widget: Any) -> None:
        from PySide6.QtCore import QEvent, QObject

        counter = self

        class Filter(QObject):
            def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802
                if event.type() == QEvent.Type.Paint:
                    counter.count += 1
                return False

        self.count = 0
        self._filter = Filter()
        widget.installEventFilter(self._filter)


def _measure_append(runs: int, points: int) -> tuple[list[float], list[float], list[float]]:
    app = _qt_app()
    from PySide6.QtCore import QEventLoop
    from training_studio.ui.jobs.details.chart import LossChart

    jobs = _NoServerJobs()
    chart = LossChart(jobs)
    chart.resize(*SIZE)
    chart.show()
    chart.show_jobs(["bench"])
    chart.store.shutdown()  # no server: the points come from here
    steps, times, loss = _series(points)
    chart.store.points_appended.emit("bench", steps, times, {"loss": loss})
    chart.redraw()
    app.processEvents()
    viewport = chart.plot_widget.viewport()
    paints = _PaintCounter(viewport)
    viewport.repaint()
    totals, slots, draws = [], [], []
    for index in range(runs):
        step = points + 1 + index
        new_steps = np.array([step], dtype=np.int64)
        new_times = np.array([1.75e9 + step * 0.05])
        new_loss = np.array([0.1 + 0.01 * (index % 7)])
        # GUI thread CPU time (the wait for Qt's paint request, a few ms of timer, is not GUI work).
        started = time.thread_time()
        chart.store.points_appended.emit("bench", new_steps, new_times, {"loss": new_loss})
        appended = time.thread_time()
        before = paints.count
        chart.redraw()          # what the frame timer would run…
        while paints.count == before:
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)  # …and the paint it causes
        done = time.thread_time()
        assert len(chart._jobs["bench"].data) == step  # noqa: SLF001
        slots.append((appended - started) * 1000)
        draws.append((done - appended) * 1000)
        totals.append((done - started) * 1000)
        app.processEvents()
    chart.shutdown()
    chart.close()
    return totals, slots, draws


def _measure_stream(seconds: float, rate: int, points: int, stock: bool) -> tuple[list[float], int, float]:
    """Points arriving one by one at `rate` per second (a QTimer on the GUI thread emits each as the store
    would) into a chart holding `points`, for `seconds`; the GUI thread's CPU time (time.thread_time: slots,
    the coalesced redraws, the paints, the event loop itself) per point appended, in 100 ms windows.
    `stock`: a bare pyqtgraph PlotWidget given the whole series by setData for every point instead."""
    app = _qt_app()
    from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer

    steps, times, loss = _series(points)
    if stock:
        import pyqtgraph as pg

        widget = pg.PlotWidget()
        widget.resize(*SIZE)
        widget.show()
        plot = widget.getPlotItem()
        plot.setClipToView(True)
        plot.setDownsampling(auto=True, mode="peak")
        x = np.empty(points + int(seconds * rate) + 10)
        y = np.empty_like(x)
        x[:points], y[:points] = steps, loss
        item = plot.plot(x[:points], y[:points], skipFiniteCheck=True)
        count = [points]

        def add(step: int) -> None:
            x[count[0]], y[count[0]] = step, 0.1
            count[0] += 1
            item.setData(x[:count[0]], y[:count[0]], skipFiniteCheck=True)
    else:
        from training_studio.ui.jobs.details.chart import LossChart

        widget = LossChart(_NoServerJobs())
        widget.resize(*SIZE)
        widget.show()
        widget.show_jobs(["bench"])
        widget.store.shutdown()
        widget.store.points_appended.emit("bench", steps, times, {"loss": loss})

        def add(step: int) -> None:
            widget.store.points_appended.emit("bench", np.array([step], dtype=np.int64),
                                              np.array([1.75e9 + step * 0.05]), {"loss": np.array([0.1])})
    for _ in range(5):
        app.processEvents()
    windows: list[float] = []
    state = {"step": points, "window_points": 0, "window_cpu": time.thread_time()}
    clock = QElapsedTimer()
    clock.start()
    window_clock = QElapsedTimer()
    window_clock.start()

    def tick() -> None:
        # Catch up to the schedule (a slow baseline cannot: it then appends fewer points, each still timed).
        due = min(int(clock.elapsed() * rate / 1000), int(seconds * rate)) + points
        while state["step"] < due and clock.elapsed() < seconds * 1000:  # a slow baseline falls behind
            state["step"] += 1
            add(state["step"])
            state["window_points"] += 1
        if window_clock.elapsed() >= 100:
            now = time.thread_time()
            if state["window_points"]:
                windows.append((now - state["window_cpu"]) * 1000 / state["window_points"])
            state["window_cpu"], state["window_points"] = now, 0
            window_clock.restart()

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(0 if rate > 1000 else max(1, 1000 // rate))
    timer.timeout.connect(tick)
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    timer.start()
    began = time.perf_counter()
    loop.exec()
    wall = time.perf_counter() - began
    timer.stop()
    appended = state["step"] - points
    widget.close()
    if not stock:
        widget.shutdown()
    return windows, appended, wall


def _measure_stock_pyqtgraph(runs: int, points: int) -> list[float]:
    app = _qt_app()
    import pyqtgraph as pg

    widget = pg.PlotWidget()
    widget.resize(*SIZE)
    widget.show()
    plot = widget.getPlotItem()
    plot.setClipToView(True)
    plot.setDownsampling(auto=True, mode="peak")
    steps, _times, loss = _series(points + runs)
    x = steps.astype(np.float64)
    item = plot.plot(x[:points], loss[:points], skipFiniteCheck=True)
    app.processEvents()
    paints = _PaintCounter(widget.viewport())
    widget.viewport().repaint()
    totals = []
    for index in range(runs):
        count = points + 1 + index
        before = paints.count
        started = time.perf_counter()
        item.setData(x[:count], loss[:count], skipFiniteCheck=True)
        while paints.count == before:
            app.processEvents()
        totals.append((time.perf_counter() - started) * 1000)
        app.processEvents()
    widget.close()
    return totals


def _seed_job(data_dir: Path, points: int) -> str:
    """SEEDING (labelled): one finished job and its metric points, written before the server starts."""
    from training_studio.server.storage import Storage

    row = job_rows(1, running=0, statuses=("completed",))[0]
    row.update(currentStep=points, totalSteps=points)
    insert_job_rows(data_dir, [row])
    start = datetime.now(timezone.utc) - timedelta(seconds=points * 0.05)
    _steps, _times, loss = _series(points, seed=1)
    storage = Storage(data_dir)
    try:
        storage.record_progress([(row["id"], step, points, float(loss[step - 1]),
                                  iso(start + timedelta(milliseconds=50 * step))) for step in range(1, points + 1)])
    finally:
        storage.close()
    return row["id"]


async def _open_once(app: Any, server: BenchServer, job_id: str, points: int) -> tuple[float, float]:
    from PySide6.QtCore import QEvent, QObject

    from training_studio.client import ApiClient
    from training_studio.ui.jobs.details.chart import LossChart
    from training_studio.ui.jobs.store import JobStore

    client = ApiClient(server.url, server.token, timeout=30)
    store = JobStore(client, live_updates=False)
    store.start()  # the jobs table holds the job before its details are opened, as in the app
    deadline = time.perf_counter() + 60
    while store.model.job(job_id) is None:
        if time.perf_counter() > deadline:
            raise TimeoutError("the jobs table never listed the job")
        await asyncio.sleep(0.01)
    chart = LossChart(store)
    chart.resize(*SIZE)
    chart.show()
    app.processEvents()
    state: dict[str, float] = {}

    class PaintWatch(QObject):
        def eventFilter(self, watched: Any, event: QEvent) -> bool:  # noqa: N802
            if event.type() == QEvent.Type.Paint and chart.job_ids and \
                    chart.stack.currentWidget() is chart.plot_widget:
                held = len(chart._jobs[job_id].data)  # noqa: SLF001
                if held and "first" not in state:
                    state["first"] = time.perf_counter()
                if held >= points and "painting" not in state:
                    state["painting"] = time.perf_counter()
            return False

    watch = PaintWatch()
    viewport = chart.plot_widget.viewport()
    viewport.installEventFilter(watch)
    started = time.perf_counter()
    chart.show_jobs([job_id])
    deadline = started + 60
    while "painting" not in state:
        if time.perf_counter() > deadline:
            raise TimeoutError("the chart never painted the job's points")
        await asyncio.sleep(0.001)
    # The paint event was being delivered when the filter saw it; the next turn of the loop is after it.
    await asyncio.sleep(0)
    painted = time.perf_counter()
    first = state.get("first", painted)
    viewport.removeEventFilter(watch)

    import httpx

    async with httpx.AsyncClient(timeout=30) as http:
        began = time.perf_counter()
        response = await http.get(f"{server.url}/api/training/jobs/{job_id}/metrics",
                                  params={"since_step": -1}, headers={"Authorization": f"Bearer {server.token}"})
        data = json.loads(response.content)
        fetched = time.perf_counter()
        stride = -(-points // 2000)
        response = await http.get(f"{server.url}/api/training/jobs/{job_id}/metrics",
                                  params={"since_step": -1, "stride": stride},
                                  headers={"Authorization": f"Bearer {server.token}"})
        json.loads(response.content)
        overview = time.perf_counter()
    assert len(data) == points, len(data)
    chart.shutdown()
    await chart.store.wait_idle()
    chart.close()
    store.shutdown()
    await store.wait_idle()
    try:
        await client.aclose()
    except RuntimeError as exc:
        log(f"closing an HTTP client failed ({exc}); ignored")
    return ((first - started) * 1000, (fetched - began) * 1000, (painted - started) * 1000,
            (overview - fetched) * 1000)


def run_details_chart(smoke: bool) -> list[Result]:
    import qasync

    runs = 20 if smoke else 200
    points = 20_000 if smoke else APPEND_POINTS
    seconds = 1.0 if smoke else 5.0
    rate = 1000
    open_points = 5_000 if smoke else OPEN_POINTS
    open_runs = 1 if smoke else 7
    app = _qt_app()
    app.setQuitOnLastWindowClosed(False)  # closing one chart must not stop the qasync loop of the next

    log(f"details-chart: {rate} points/s for {seconds:g} s into a chart holding {points:,}…")
    windows, appended, wall = _measure_stream(seconds, rate, points, stock=False)
    stock_windows, stock_appended, stock_wall = _measure_stream(seconds, rate, points, stock=True)
    log(f"details-chart: {runs} single appends, each with its own redraw and paint…")
    totals, slots, draws = _measure_append(runs, points)
    value, p95 = median(windows), percentile(windows, 0.95)
    results = [Result(
        "details-chart/append", value, "ms", "stock pyqtgraph: setData of the whole series per point",
        median(stock_windows), len(windows),
        f"{points:,} points held, one more arriving every ms ({rate}/s, each its own store signal); value = GUI "
        f"thread CPU time per appended point incl. the coalesced redraws (≤ 1 per 16 ms frame) and paints, "
        f"median of 100 ms windows, p95 {p95:.3f} ms; {appended} points appended in {wall:.1f} s (baseline: "
        f"{stock_appended} in {stock_wall:.1f} s: it falls behind; its p95 {percentile(stock_windows, 0.95):.1f} ms). Worst case, one "
        f"point per frame (append + its own redraw + paint, GUI thread CPU, {runs} runs): median "
        f"{median(totals):.2f} ms, p95 "
        f"{percentile(totals, 0.95):.2f} ms, of which the append slot {median(slots):.3f} ms (p95 "
        f"{percentile(slots, 0.95):.3f}); the redraw + paint does not grow with the points held (about two values "
        f"per pixel are drawn). {SIZE[0]}×{SIZE[1]} px offscreen; "
        + goal_note(p95 <= 1.0, "≤ 1 ms of GUI time per appended point (p95)"))]

    log(f"details-chart: opening a job with {open_points:,} metric points from a real server…")
    with tempfile.TemporaryDirectory(prefix="bench-details-") as temp:
        data_dir = Path(temp) / "data"
        data_dir.mkdir()
        job_id = _seed_job(data_dir, open_points)
        with BenchServer(data_dir, extra_args=["--no-runner"]) as server:
            async def measure() -> list[tuple[float, float, float, float]]:
                return [await _open_once(app, server, job_id, open_points) for _ in range(open_runs)]

            measured = qasync.run(measure())
    opens = [m[0] for m in measured]
    fetches = [m[1] for m in measured]
    fulls = [m[2] for m in measured]
    overviews = [m[3] for m in measured]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results.append(Result(
        "details-chart/open", median(opens), "ms", "GET /metrics + json.loads of the whole series (httpx)",
        median(fetches), open_runs,
        f"{open_points:,} points stored (SEEDED through Storage.record_progress before the server started), "
        f"real server subprocess, the job listed in the jobs table (JobStore) first; value: from show_jobs() to "
        f"the first paint of the curve (an overview of every k-th point, ~2,000, fetched with the server's "
        f"`stride`; that request alone, same run: median {median(overviews):.0f} ms, the server's part of the "
        f"figure); every point painted after a median {median(fulls):.0f} ms (the whole series follows in the "
        f"background: the server takes most of that); slowest first paint {max(opens):.0f} ms; load average "
        f"{load:.1f} during the run; " + goal_note(median(opens) <= 300, "painted within 300 ms")))
    return results
