"""Live-update figures (issue 12): push latency against polling, an update storm, resync after a server crash.

This module owns the three live-update figures. Each drives the real client side (the app's `ApiClient`
and `JobStore` with its `JobListModel`, on a qasync loop in this process) against a real server subprocess
on a temp data dir, with a baseline measured in the same run.

- live-latency: a real trainer's progress line to the model showing it. The job runs
  `benchmarks/stepper_trainer.py` through a preset, started by the server's runner as any job is; the
  benchmark releases a step at a random moment by writing it to the trainer's FIFO (the clock starts
  there) and stops the clock when `JobListModel.dataChanged` shows that step. In between is the app's
  normal progress path only: wrapper, output file, runner, storage, event hub, event stream, store, model.
  Against: the same store with the event stream switched off (`live_updates=False`: polling with deltas,
  the app's fallback), on the same server and job, in the same run. A second event-stream reader in the
  same process notes when each step's event arrives, which splits the push figure into server side
  (trainer line → event on the wire) and client side (event → model).
- live-storm: 10,000 running jobs, 10,000 job updates per second. The updates come from a load generator
  inside the server's process (`benchmarks/live_server.py`: the real server plus one thread calling
  `Storage.record_progress`, the runner's own progress call, so every update is a committed change with a
  revision that the event hub streams), because 1,000 real trainers do not fit on 2 cores. The GUI side
  is the real Jobs tab (`JobsPanel` over the store, shown offscreen). Measured over the same window length
  with the stream open and no changes (idle, first) and during the storm: the GUI thread's CPU time as a
  share of wall time, the longest gap between ticks of a 4 ms timer on the GUI thread (an event-loop
  stall), and the server process's CPU (/proc/<pid>/stat). Afterwards: how long after the last update the
  model held every job's final step.
- live-resync: with the window live on a server, `kill -9` the server, change jobs while it is down (through
  `Storage`, as a restarted server's runner recovery records what its trainers printed meanwhile: progress,
  jobs finishing, new jobs), restart it on the same port, and time from its first answer to
  `/api/health` to the model holding exactly the server's state. Baseline: a fresh store's first full
  load from the same server (what a newly opened window pays). Its jobs are pending, not running: at
  every start the server fails running jobs that have no trainer (the restart rule), which would turn
  each restart into 10,000 changes no real restart makes. (The storm's jobs become running only once its
  server is up, for the same reason.)
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import httpx  # noqa: E402

from benchmarks.common import (  # noqa: E402
    ROOT,
    BenchServer,
    Result,
    goal_note,
    insert_job_rows,
    job_rows,
    log,
    mark_running,
    median,
    percentile,
)

STEPPER = ROOT / "benchmarks" / "stepper_trainer.py"
STEPPER_PRESET = "bench-stepper"
PROBE_INTERVAL_MS = 4
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- shared pieces ---------------------------------------------------------------------------------------

def _qt_app() -> Any:
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication(sys.argv[:1])


async def _until(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        await asyncio.sleep(step)


def _machine_load() -> str:
    """The load average at the end of a figure: these run on shared 2-core machines, say how busy it was."""
    one, five, _fifteen = os.getloadavg()
    return f"machine load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def _process_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class LoadServer(BenchServer):
    """The real server run by benchmarks/live_server.py, with its in-process load generator."""

    def __init__(self, data_dir: Path, control: Path, *, extra_args: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(data_dir, extra_args=extra_args)
        self.control = control

    def start(self) -> LoadServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        token_file = self.data_dir.parent / f"{self.data_dir.name}-token"
        token_file.write_text(self.token)
        token_file.chmod(0o600)
        (self.data_dir / "server.json").unlink(missing_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("TRAINING_STUDIO_TOKEN", None)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        with open(self.data_dir.parent / f"{self.data_dir.name}-server.log", "ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.live_server", "--control", str(self.control),
                 "--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", "0", "--token-file",
                 str(token_file), *self.extra_args],
                stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
        self._wait_ready()
        return self


class LoopProbe:
    """A 4 ms precise timer on the GUI thread; the longest gap between its ticks is the longest stall."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(PROBE_INTERVAL_MS)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.last_cpu = time.thread_time()
        self.longest = 0.0
        self.longest_cpu = 0.0  # the GUI thread's CPU time within the longest gap: the rest it waited (OS, GIL)
        self.ticks = 0
        # (time.monotonic() at its end, gap, the GUI thread's CPU time within it) of gaps over 50 ms
        self.stalls: list[tuple[float, float, float]] = []

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        gap, cpu_gap = now - self.last, cpu - self.last_cpu
        self.last, self.last_cpu = now, cpu
        self.ticks += 1
        if gap > self.longest:
            self.longest, self.longest_cpu = gap, cpu_gap
        if gap > 0.05:
            self.stalls.append((time.monotonic(), gap, cpu_gap))

    def start(self) -> None:
        self.last, self.last_cpu = time.perf_counter(), time.thread_time()
        self.timer.start()

    def begin(self) -> None:
        self.last, self.last_cpu = time.perf_counter(), time.thread_time()
        self.longest = self.longest_cpu = 0.0
        self.ticks = 0
        self.stalls = []

    def stop(self) -> None:
        self.timer.stop()


async def _stop_store(store: Any) -> None:
    store.shutdown()
    await store.wait_idle()


async def _close_client(client: Any) -> None:
    # Seen once under qasync: httpcore's close of pooled connections (through anyio) did not find the running
    # loop. Clean-up only, after the figure is measured; the process ends right after.
    try:
        await client.aclose()
    except RuntimeError as exc:
        log(f"closing an HTTP client failed ({exc}); ignored")


# -- live-latency -----------------------------------------------------------------------------------------

def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


def _write_stepper_preset(data_dir: Path, fifo: Path) -> None:
    command = json.dumps([sys.executable, str(STEPPER), str(fifo), "{total_steps}"])
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "presets.toml").write_text(
        f'[[preset]]\nid = "{STEPPER_PRESET}"\nname = "Benchmark stepper"\ncommand = {command}\n'
        'progress = "jsonl"\nloss_key = "loss"\n')


def _start_stepper_job(server: BenchServer) -> str:
    import hashlib

    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as http:
        dataset = http.post("/api/datasets", json={"name": "latency", "type": "image"})
        dataset.raise_for_status()
        dataset_id = dataset.json()["id"]
        body = _png()
        http.put(f"/api/datasets/{dataset_id}/files/{hashlib.sha256(body).hexdigest()}",
                 params={"filename": "one.png"}, content=body,
                 headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        http.post(f"/api/datasets/{dataset_id}/commit").raise_for_status()
        created = http.post("/api/training/jobs", json={"name": "latency probe", "dataset_id": dataset_id,
                                                        "base_model": STEPPER_PRESET, "total_steps": 1_000_000,
                                                        "params": {}})
        if created.status_code != 201:
            raise RuntimeError(f"could not start the stepper job: {created.status_code} {created.text[:300]}")
        job_id = created.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = http.get("/api/training/status", params={"job_id": job_id}).json()
            if job["status"] == "running" and (job.get("currentStep") or 0) >= 1:
                return job_id
            if job["status"] in ("failed", "cancelled", "completed"):
                raise RuntimeError(f"the stepper job ended early: {job}")
            time.sleep(0.05)
        raise RuntimeError("the stepper job did not start within 60 s")


def _end_stepper_job(server: BenchServer, fifo_fd: int, job_id: str) -> None:
    with contextlib.suppress(OSError):
        os.write(fifo_fd, b"end\n")
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=10) as http:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if http.get("/api/training/status", params={"job_id": job_id}).json()["status"] != "running":
                    return
            time.sleep(0.05)


def run_live_latency(smoke: bool) -> list[Result]:
    import qasync

    push_runs = 4 if smoke else 60
    poll_runs = 2 if smoke else 12
    poll_interval = 0.5 if smoke else None  # None: the app's default interval
    app = _qt_app()
    with tempfile.TemporaryDirectory(prefix="bench-live-latency-") as tmp_text:
        tmp = Path(tmp_text)
        data_dir = tmp / "data"
        fifo = tmp / "steps.fifo"
        os.mkfifo(fifo)
        _write_stepper_preset(data_dir, fifo)
        fifo_fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        try:
            with BenchServer(data_dir) as server:
                job_id = _start_stepper_job(server)
                try:
                    measured = qasync.run(_measure_latency(app, server, job_id, fifo_fd, push_runs, poll_runs,
                                                           poll_interval))
                finally:
                    _end_stepper_job(server, fifo_fd, job_id)
        finally:
            os.close(fifo_fd)
            _end_leftover_wrappers(tmp)
    push, arrivals, poll, interval = measured
    server_side = [arrival for arrival in arrivals if arrival is not None]
    client_side = [total - arrival for total, arrival in zip(push, arrivals) if arrival is not None]
    p95, poll_p95 = percentile(push, 0.95) * 1000, percentile(poll, 0.95) * 1000
    how = ("clock: from the benchmark releasing a step (a line written to the FIFO a gated stand-in trainer "
           "reads; it prints the step as a JSON progress line at once) at a random moment, to "
           "JobListModel.dataChanged showing that step; trainer started by the server's runner from a "
           "preset, so the path is wrapper → output file → runner → storage → event hub → SSE → JobStore "
           f"(per-frame flush) → model; push = the store's event stream, polling = the same store with "
           f"live_updates=False (refresh every {interval:g} s, deltas with since=), same server, same job")
    split = (f"push split: trainer line → event on the wire median {median(server_side) * 1000:.0f} ms "
             f"(p95 {percentile(server_side, 0.95) * 1000:.0f}), event → model median "
             f"{median(client_side) * 1000:.0f} ms (p95 {percentile(client_side, 0.95) * 1000:.0f})"
             if server_side else "push split: no event timings")
    return [
        Result("live-latency/p95", p95, "ms", f"polling (every {interval:g} s) p95, same run", poll_p95, len(push),
               f"{goal_note(p95 <= 50, 'p95 <= 50 ms')}; median {median(push) * 1000:.0f} ms, max "
               f"{max(push) * 1000:.0f} ms; {split}; polling: {len(poll)} changes, max {max(poll) * 1000:.0f} ms; "
               + how + f"; {_machine_load()}"),
        Result("live-latency/median", median(push) * 1000, "ms", f"polling (every {interval:g} s) median, same run",
               median(poll) * 1000, len(push), "push median over the same samples as live-latency/p95"),
    ]


async def _measure_latency(app: Any, server: BenchServer, job_id: str, fifo_fd: int, push_runs: int,
                           poll_runs: int, poll_interval: float | None
                           ) -> tuple[list[float], list[float | None], list[float], float]:
    from training_studio.client import ApiClient
    from training_studio.client.events import EventStream, JobEvent

    client = ApiClient(server.url, server.token)
    observer_client = ApiClient(server.url, server.token)
    arrivals: dict[int, float] = {}

    async def observe() -> None:
        async for item in EventStream(observer_client).run():
            if isinstance(item, JobEvent) and item.job.id == job_id and item.job.current_step is not None:
                arrivals.setdefault(item.job.current_step, time.perf_counter())

    observer = asyncio.create_task(observe())
    steps = iter(range(1000, 10_000_000))
    try:
        log(f"live-latency: {push_runs} steps released at random moments, pushed")
        push, released_steps, released_at = await _latency_run(client, job_id, fifo_fd, push_runs, True, None, steps)
        split = [arrivals[step] - start if step in arrivals else None
                 for step, start in zip(released_steps, released_at)]
        log(f"live-latency: {poll_runs} steps released at random moments, polled")
        poll, _steps, _at = await _latency_run(client, job_id, fifo_fd, poll_runs, False, poll_interval, steps)
        from training_studio.ui.jobs.store import REFRESH_INTERVAL_S

        return push, split, poll, poll_interval or REFRESH_INTERVAL_S
    finally:
        observer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await observer
        await _close_client(client)
        await _close_client(observer_client)


async def _latency_run(client: Any, job_id: str, fifo_fd: int, runs: int, live: bool, interval: float | None,
                       steps: Any) -> tuple[list[float], list[int], list[float]]:
    from training_studio.ui.jobs.store import JobStore, StreamState

    options: dict[str, Any] = {"live_updates": live}
    if interval is not None:
        options["refresh_interval"] = interval
    store = JobStore(client, **options)
    model = store.model
    loop = asyncio.get_running_loop()
    rng = random.Random(12 if live else 13)
    latencies: list[float] = []
    released_steps: list[int] = []
    released_at: list[float] = []
    try:
        store.start()
        await _until(lambda: model.job(job_id) is not None and (not live or store.stream_state is StreamState.LIVE),
                     30, "the store showing the job" + (" with its stream live" if live else ""))
        for _ in range(runs):
            # Push: gaps of 0.15-0.6 s (a trainer logging a few times a second); polling: anywhere in the cycle.
            await asyncio.sleep(rng.uniform(0.15, 0.6) if live else rng.uniform(0.0, store.refresh_interval))
            step = next(steps)
            seen: asyncio.Future[float] = loop.create_future()

            def on_change(*_args: object, step: int = step, seen: asyncio.Future[float] = seen) -> None:
                job = model.job(job_id)
                if job is not None and (job.current_step or 0) >= step and not seen.done():
                    seen.set_result(time.perf_counter())

            model.dataChanged.connect(on_change)
            try:
                released = time.perf_counter()
                os.write(fifo_fd, f"{step}\n".encode())
                shown = await asyncio.wait_for(seen, 10 if live else store.refresh_interval * 3 + 10)
            finally:
                model.dataChanged.disconnect(on_change)
            latencies.append(shown - released)
            released_steps.append(step)
            released_at.append(released)
        return latencies, released_steps, released_at
    finally:
        await _stop_store(store)


def _end_leftover_wrappers(root: Path) -> None:
    """Trainers outlive their server: end any stepper left running under `root` (a failed run)."""
    try:
        from tests.support.trainers import end_wrappers_under
    except ImportError:
        return
    with contextlib.suppress(Exception):
        end_wrappers_under(root)


# -- live-storm -------------------------------------------------------------------------------------------

def run_live_storm(smoke: bool) -> list[Result]:
    import qasync

    jobs = 500 if smoke else 10_000
    rate = 1_000 if smoke else 10_000
    window = 1.0 if smoke else 10.0
    app = _qt_app()
    with tempfile.TemporaryDirectory(prefix="bench-live-storm-") as tmp_text:
        tmp = Path(tmp_text)
        data_dir = tmp / "data"
        insert_job_rows(data_dir, job_rows(jobs, running=0, statuses=("pending",)))
        control = tmp / "storm.json"
        with LoadServer(data_dir, control, extra_args=["--no-runner"]) as server:
            assert server.proc is not None
            # Running only now: at start the server fails every running job that has no trainer (restart rule).
            mark_running(data_dir, jobs)
            measured = qasync.run(_measure_storm(app, server, control, jobs, rate, window))
    idle, storm, done, catch_up, equal = measured
    achieved = done["published"] / done["seconds"]
    generator_cpu = 100 * done["thread_cpu_s"] / done["seconds"]
    how = (f"{jobs:,} running jobs; {done['published']:,} job updates at {achieved:,.0f}/s (asked {rate:,}/s) for "
           f"{window:g} s from a load generator thread inside the server's process (benchmarks/live_server.py: "
           "the real server plus Storage.record_progress, the runner's own progress call, round robin over the "
           "jobs, so each update is a committed change the event hub streams; 1,000 real trainers do not fit on "
           f"2 cores); {_machine_load()}; GUI = the real Jobs tab (JobsPanel over JobStore, 1000×640, "
           "offscreen) on qasync; idle = the same window length just before, stream open, no changes")
    tail = (f"after the last update the model held every job's final step within {catch_up * 1000:.0f} ms"
            if equal else f"the model did NOT reach the server's final state ({catch_up})")
    busy_pct, idle_busy_pct = 100 * storm["busy"], 100 * idle["busy"]
    stall_ms, idle_stall_ms = storm["stall"] * 1000, idle["stall"] * 1000
    # CPU time per update (storm minus idle), which does not depend on the rate reached: on a busy shared
    # machine the generator may fall short of the asked rate, and this says what the asked rate would cost.
    updates = min(done["published"], achieved * window)
    gui_us = 1e6 * (storm["busy"] - idle["busy"]) * window / updates
    server_us = 1e6 * (storm["server"] - idle["server"]) * window / updates
    at_rate = (f"GUI thread CPU {gui_us:.0f} µs per update, so {idle_busy_pct + gui_us * rate / 1e4:.0f}% of wall "
               f"at {rate:,}/s")
    return [
        Result("live-storm/gui-busy", busy_pct, "% of wall", "the same GUI idle (stream open, no changes), same run",
               idle_busy_pct, 1,
               f"{goal_note(busy_pct <= 25, 'GUI thread busy <= 25% of wall time')}; GUI thread CPU time "
               f"(time.thread_time) over the window; whole GUI process {100 * storm['process']:.0f}% "
               f"(idle {100 * idle['process']:.0f}%); {at_rate}; {tail}; {how}"),
        Result("live-storm/loop-stall", stall_ms, "ms", "the idle loop's own longest gap, same run", idle_stall_ms,
               1, f"{goal_note(stall_ms <= idle_stall_ms + 16, 'longest stall <= idle longest gap + 16 ms')}; "
                  f"the GUI thread ran {storm['stall_cpu'] * 1000:.1f} ms of the longest gap (idle: "
                  f"{idle['stall_cpu'] * 1000:.1f} ms of its own; the rest of a gap the thread waited: for a CPU, "
                  f"or for the GIL); longest gap between ticks of a {PROBE_INTERVAL_MS} ms precise QTimer on the GUI "
                  f"thread over "
                  f"the window ({storm['ticks']:,} ticks; idle {idle['ticks']:,}); {storm['stall_text']}; "
                  f"{storm['fetches']}; {storm['gc']} (idle: {idle['gc']})"),
        Result("live-storm/server-cpu", 100 * storm["server"], "% of one core", "the same server idle, same run",
               100 * idle["server"], 1,
               f"server process CPU (utime+stime from /proc/<pid>/stat) over the window, the load generator's "
               f"own thread included (it used {generator_cpu:.0f}% of one core while it ran: the SQLite writes); "
               f"{server_us:.0f} µs per update, so {100 * idle['server'] + server_us * rate / 1e4:.0f}% of one "
               f"core at {rate:,}/s"),
    ]


async def _measure_storm(app: Any, server: LoadServer, control: Path, jobs: int, rate: int, window: float
                         ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Any, bool]:
    from training_studio.client import ApiClient
    from training_studio.ui.jobs.panel import JobsPanel
    from training_studio.ui.jobs.store import JobStore, StreamState

    assert server.proc is not None
    pid = server.proc.pid
    client = ApiClient(server.url, server.token, timeout=60)
    # What the store fetched besides the stream (its resyncs), for the notes: (when, query, body bytes).
    fetched: list[tuple[float, str, int]] = []

    async def note_fetch(response: Any) -> None:
        if response.request.url.path == "/api/training/jobs":
            await response.aread()
            fetched.append((time.monotonic(), response.request.url.query.decode(), len(response.content)))

    client.http.event_hooks["response"].append(note_fetch)
    store = JobStore(client)
    panel = JobsPanel(store)
    panel.resize(1000, 640)
    panel.show()
    probe = LoopProbe()
    try:
        store.start()
        await _until(lambda: store.model.rowCount() >= jobs and store.stream_state is StreamState.LIVE, 120,
                     f"the model holding {jobs:,} jobs with the stream live")
        probe.start()
        await asyncio.sleep(1.0)  # the first paints and the one-off fetch of finished jobs are over
        log(f"live-storm: {window:g} s idle, then {window:g} s of {rate:,} updates/s over {jobs:,} jobs")
        idle = await _storm_window(probe, pid, time.monotonic(), window)
        start_at = time.monotonic() + 0.3
        control.write_text(json.dumps({"start_at": start_at, "rate": rate, "seconds": window}))
        storm = await _storm_window(probe, pid, start_at, window)
        during = [(query, size) for moment, query, size in fetched if start_at <= moment <= start_at + window]
        deltas = sum(1 for query, _size in during if "since=" in query)
        # Stalls over 50 ms that ended within 2 s after one of those answers arrived (its parse and apply).
        after_fetch = sum(1 for end, _gap, _cpu in storm["stalls"]
                          if any(0 <= end - moment <= 2.0 for moment, _q, _s in fetched))
        longest = sorted(((gap, cpu) for _end, gap, cpu in storm["stalls"]), reverse=True)[:3]
        storm["stall_text"] = (f"{len(storm['stalls'])} stalls over 50 ms (longest "
                               f"{', '.join(f'{gap * 1000:.0f}' for gap, _cpu in longest)} ms; the GUI thread ran "
                               f"{', '.join(f'{cpu * 1000:.0f}' for _gap, cpu in longest)} ms of them), "
                               f"{after_fetch} of them ending within 2 s after a list answer arrived"
                               if longest else "no stall over 50 ms")
        storm["fetches"] = (f"the store's GET /api/training/jobs during the storm: {len(during)} ({deltas} of them "
                            "since= deltas)" + (f", the largest answer {max(size for _q, size in during) / 1e6:.1f} MB"
                                                if during else ""))
        log(f"live-storm: {storm['fetches']}")
        done_file = control.with_name(control.name + ".done")
        await _until(done_file.exists, 60, "the load generator finishing")
        done = json.loads(done_file.read_text())
        if "error" in done:
            raise RuntimeError(f"the load generator failed: {done['error']}")
        expected = {job.id: job.current_step for job in await client.list_active_jobs()}
        model = store.model

        def equal() -> bool:
            for job_id, step in expected.items():
                job = model.job(job_id)
                if job is None or job.current_step != step:
                    return False
            return True

        try:
            await _until(equal, 30, "the model reaching the server's final state", step=0.005)
            return idle, storm, done, time.monotonic() - done["ended_at"], True
        except TimeoutError:
            wrong = sum(1 for job_id, step in expected.items()
                        if model.job(job_id) is None or model.job(job_id).current_step != step)
            return idle, storm, done, f"{wrong:,} of {len(expected):,} jobs differ 30 s after", False
    finally:
        probe.stop()
        await _stop_store(store)
        panel.close()
        await _close_client(client)


class GcWatch:
    """The garbage collector's pauses (any thread: a collection holds the GIL, so it stops the GUI thread too),
    per generation, while installed: for the notes, which say whether a stall was a collection."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}  # (wall, the thread's CPU)
        self._started = (0.0, 0.0)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = (time.perf_counter(), time.thread_time())
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._started[0],
                                                    time.thread_time() - self._started[1]))

    def __enter__(self) -> GcWatch:
        import gc

        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_exc: object) -> None:
        import gc

        gc.callbacks.remove(self._callback)

    def text(self) -> str:
        # A pause's wall time beside its CPU time: on a loaded machine the difference is time the OS ran others.
        return "garbage collections " + ", ".join(
            f"gen{generation} {len(pauses)}" + (f" (longest {max(pauses)[0] * 1000:.0f} ms, its CPU "
                                                f"{max(pauses)[1] * 1000:.1f} ms)" if pauses else "")
            for generation, pauses in self.pauses.items())


async def _storm_window(probe: LoopProbe, server_pid: int, start_at: float, seconds: float) -> dict[str, Any]:
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    probe.begin()
    wall, thread, process, server = (time.monotonic(), time.thread_time(), time.process_time(),
                                     _process_cpu_s(server_pid))
    with GcWatch() as collections:
        await asyncio.sleep(seconds)
    elapsed = time.monotonic() - wall
    return {"busy": (time.thread_time() - thread) / elapsed, "process": (time.process_time() - process) / elapsed,
            "server": (_process_cpu_s(server_pid) - server) / elapsed, "stall": probe.longest, "ticks": probe.ticks,
            "stalls": list(probe.stalls), "gc": collections.text(), "stall_cpu": probe.longest_cpu}


# -- live-resync ------------------------------------------------------------------------------------------

def run_live_resync(smoke: bool) -> list[Result]:
    import qasync

    jobs = 300 if smoke else 10_000
    changed = 50 if smoke else 1_000
    runs = 1 if smoke else 3
    app = _qt_app()
    with tempfile.TemporaryDirectory(prefix="bench-live-resync-") as tmp_text:
        data_dir = Path(tmp_text) / "data"
        # Pending, not running: at each restart the server fails running jobs that have no trainer.
        insert_job_rows(data_dir, job_rows(jobs, running=0, statuses=("pending",)))
        servers = [BenchServer(data_dir, extra_args=["--no-runner"]).start()]  # one per (re)start
        try:
            measured = qasync.run(_measure_resync(app, servers, jobs, changed, runs))
        finally:
            for server in servers:
                server.stop()
    resyncs, downtimes, first_load = measured
    value = median(resyncs) * 1000
    return [Result("live-resync", value, "ms", "a fresh store's first full load from the same server, same run",
                   first_load * 1000, len(resyncs),
                   f"{goal_note(max(resyncs) <= 1.0, 'model equals the server within 1 s of it answering')}; "
                   f"max {max(resyncs) * 1000:.0f} ms; clock from the restarted server's first /api/health answer "
                   f"(polled every 2 ms from another thread) to the model holding exactly the server's state "
                   f"({jobs:,} active (pending) jobs; while the server was down (kill -9, restart on the same "
                   f"port, down {median(downtimes):.1f} s median) {changed:,} jobs moved on, {changed // 10:,} "
                   f"completed and {changed // 20:,} new ones appeared, written through Storage as a restarted "
                   "server's runner recovery records them); the window learns through its event stream's reconnect "
                   f"(Last-Event-ID catch-up) and its resync; {_machine_load()}")]


def _change_while_down(data_dir: Path, changed: int, run: int) -> dict[str, tuple[str, int | None]]:
    """Move, finish and create jobs in a stopped server's data dir; returns what the model must then show."""
    from training_studio.server.storage import Storage

    storage = Storage(data_dir)
    try:
        running = storage.jobs_with_status(["pending"])
        rng = random.Random(100 + run)
        picked = rng.sample(running, min(changed, len(running)))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        storage.record_progress([(job.id, (job.current_step or 0) + 500, None, 0.05, stamp) for job in picked])
        for job in picked[: changed // 10]:
            storage.set_job_status(job.id, "completed")
        created = [storage.create_job(f"new while down {run}.{n}", None, "builtin", 1000, {}).id
                   for n in range(changed // 20)]
        expected = {}
        for job_id in [job.id for job in picked] + created:
            job = storage.get_job(job_id)
            assert job is not None
            expected[job_id] = (str(job.status), job.current_step)
        return expected
    finally:
        storage.close()


async def _measure_resync(app: Any, servers: list[BenchServer], jobs: int, changed: int, runs: int
                          ) -> tuple[list[float], list[float], float]:
    from training_studio.client import ApiClient
    from training_studio.ui.jobs.store import JobStore, StreamState

    server = servers[0]
    port = int(server.url.rsplit(":", 1)[1])
    client = ApiClient(server.url, server.token)
    store = JobStore(client)
    model = store.model
    resyncs: list[float] = []
    downtimes: list[float] = []
    try:
        store.start()
        await _until(lambda: model.rowCount() >= jobs and store.stream_state is StreamState.LIVE, 120,
                     f"the model holding {jobs:,} jobs with the stream live")
        await asyncio.sleep(0.5)
        for run in range(runs):
            log(f"live-resync: run {run + 1}/{runs}: kill -9 the server, change {changed:,} jobs, restart it")
            assert server.proc is not None
            server.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await asyncio.to_thread(server.proc.wait)
            expected = await asyncio.to_thread(_change_while_down, server.data_dir, changed, run)
            replacement = BenchServer(server.data_dir, extra_args=["--no-runner", "--port", str(port)])
            replacement.token = server.token
            server.proc = None
            server = replacement
            servers.append(server)

            remaining = dict(expected)
            dirty = [True]  # a model signal came since the last look (the look is not free on the GUI thread)

            def mark_dirty(*_args: object) -> None:
                dirty[0] = True

            model.dataChanged.connect(mark_dirty)
            model.rowsInserted.connect(mark_dirty)

            def settled() -> bool:
                if not dirty[0]:
                    return False
                dirty[0] = False
                for job_id in list(remaining):
                    job = model.job(job_id)
                    if job is not None and (str(job.status), job.current_step) == remaining[job_id]:
                        del remaining[job_id]
                return not remaining

            answered = _HealthWatch(f"http://127.0.0.1:{port}/api/health")
            answered.start()
            starter = asyncio.create_task(asyncio.to_thread(server.start))
            try:
                await _until(settled, 60, "the model reaching the restarted server's state", step=0.002)
                equal_at = time.monotonic()
                await starter
            finally:
                model.dataChanged.disconnect(mark_dirty)
                model.rowsInserted.disconnect(mark_dirty)
                answered.stop()
                if not starter.done():
                    with contextlib.suppress(Exception):
                        await starter
            if answered.first is None:
                raise RuntimeError("the restarted server never answered /api/health")
            resyncs.append(equal_at - answered.first)
            downtimes.append(answered.first - killed)
            await _check_whole_model(client, model)
        # Baseline: a fresh store's first full load (a window opened now).
        fresh_client = ApiClient(server.url, server.token)
        fresh = JobStore(fresh_client, live_updates=False)
        try:
            expected_rows = len(await client.list_active_jobs())
            started = time.monotonic()
            fresh.start()
            await _until(lambda: fresh.model.rowCount() >= expected_rows, 60, "a fresh store's first load",
                         step=0.002)
            first_load = time.monotonic() - started
        finally:
            await _stop_store(fresh)
            await _close_client(fresh_client)
        return resyncs, downtimes, first_load
    finally:
        await _stop_store(store)
        await _close_client(client)


async def _check_whole_model(client: Any, model: Any) -> None:
    """Every active job on the server is in the model with the server's step and status (the figure's
    equality check watches only the changed jobs, to stay cheap on the GUI thread)."""
    for job in await client.list_active_jobs():
        held = model.job(job.id)
        if held is None or (held.status, held.current_step) != (job.status, job.current_step):
            raise RuntimeError(f"after the resync the model differs from the server on job {job.id}: "
                               f"{held and (held.status, held.current_step)} != {(job.status, job.current_step)}")


class _HealthWatch(threading.Thread):
    """Polls a URL every 2 ms from its own thread; `first` = time.monotonic() of the first 200 answer."""

    def __init__(self, url: str) -> None:
        super().__init__(name="bench-health-watch", daemon=True)
        self.url = url
        self.first: float | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=1.0) as http:
            while not self._halt.is_set() and self.first is None:
                try:
                    if http.get(self.url).status_code == 200:
                        self.first = time.monotonic()
                        return
                except httpx.HTTPError:
                    pass
                self._halt.wait(0.002)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


__all__ = ["run_live_latency", "run_live_storm", "run_live_resync", "LoadServer"]
