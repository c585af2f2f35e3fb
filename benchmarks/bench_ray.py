"""The Ray executor's figures (issue 18): submission to running, and progress latency, Ray against local.

This module owns the `ray` figures. One real local Ray head (tests/ray/ray_head.py: loopback, free ports,
no GPUs, stopped by its own process ids) and two real servers on temp data dirs in the same run: one with
`--executor ray` against that head, one with the default local executor, each with the benchmark stepper
preset (benchmarks/stepper_trainer.py, one progress line per step the benchmark releases through a FIFO).

- ray/submit-to-running: from the POST that creates the job to our server reporting it `running`
  (polled every 10 ms on /api/training/status), on an idle head; the local executor's figure is the baseline.
- ray/progress-latency: from the benchmark releasing a step (its write to the trainer's FIFO, after which
  the trainer prints the step at once) to our server's event for that step on `/api/training/events`, as
  the app reads it (the app's own `EventStream`, client/events.py, on an asyncio loop in a thread of this
  process, open before the job is created): Ray's log tail against the local runner's output files.
- ray/system-sample: one fresh `GET /api/system` (asked just past its one-second cache), whose sample with
  `--executor ray` also reads the cluster from the dashboard (two HTTP calls, concurrent with the machine's
  sample); the local server's (machine only) is the baseline.

Polling at 10 ms adds up to 10 ms to submit-to-running on both sides alike (progress latency is not polled:
the event's arrival stops its clock); the figures are medians. The notes give the machine's load average
(1 minute) at the start and the end of the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchmarks.common import ROOT, BenchServer, Result, log, median, percentile

STEPPER = ROOT / "benchmarks" / "stepper_trainer.py"
PRESET = "bench-ray-stepper"
POLL_S = 0.01
TIMEOUT_S = 180.0


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 120, 200)).save(out, "PNG")
    return out.getvalue()


def _prepare(data_dir: Path, fifo: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    command = json.dumps([sys.executable, str(STEPPER), str(fifo), "{total_steps}"])
    (data_dir / "presets.toml").write_text(f'[[preset]]\nid = "{PRESET}"\nname = "Ray benchmark stepper"\n'
                                           f'command = {command}\nprogress = "jsonl"\nloss_key = "loss"\n')
    os.mkfifo(fifo)


def _dataset(http: httpx.Client) -> str:
    dataset = http.post("/api/datasets", json={"name": "ray bench", "type": "image"})
    dataset.raise_for_status()
    dataset_id = dataset.json()["id"]
    body = _png()
    http.put(f"/api/datasets/{dataset_id}/files/{hashlib.sha256(body).hexdigest()}", params={"filename": "one.png"},
             content=body, headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    http.post(f"/api/datasets/{dataset_id}/commit").raise_for_status()
    return dataset_id


def _wait(http: httpx.Client, job_id: str, condition, what: str) -> dict:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        job = http.get("/api/training/status", params={"job_id": job_id}).json()
        if condition(job):
            return job
        if job["status"] in ("failed", "cancelled") or time.monotonic() > deadline:
            raise RuntimeError(f"{what}: the job is {job['status']} ({job.get('error')})")
        time.sleep(POLL_S)


class _EventWatch(threading.Thread):
    """Our server's event stream read as the app reads it (`EventStream` over an `ApiClient`), on an asyncio
    loop of its own: when each job's event with each step arrived."""

    def __init__(self, server: BenchServer) -> None:
        super().__init__(name="bench-ray-events", daemon=True)
        self.url, self.token = server.url, server.token
        self.first_seen: dict[str, dict[int, float]] = {}  # job id -> step -> perf_counter at arrival
        self.changed = threading.Condition()
        self.opened = threading.Event()
        self.failed: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to the waiting benchmark
            self.failed = exc
            with self.changed:
                self.changed.notify_all()

    async def _main(self) -> None:
        from training_studio.client import ApiClient
        from training_studio.client.events import EventStream, JobEvent, StreamOpened

        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        client = ApiClient(self.url, self.token)
        try:
            async for item in EventStream(client).run():
                arrived = time.perf_counter()
                if isinstance(item, StreamOpened):
                    self.opened.set()
                elif isinstance(item, JobEvent) and item.job.current_step is not None:
                    with self.changed:
                        self.first_seen.setdefault(item.job.id, {}).setdefault(item.job.current_step, arrived)
                        self.changed.notify_all()
        except asyncio.CancelledError:
            pass
        finally:
            await client.aclose()

    def start_open(self) -> "_EventWatch":
        self.start()
        if not self.opened.wait(30):
            raise RuntimeError(f"the event stream did not open: {self.failed}")
        return self

    def step_arrived(self, job_id: str, step: int) -> float:
        """perf_counter when an event of `job_id` at `step` or later first arrived (waits for it)."""
        def arrived() -> float | None:
            later = [at for seen, at in self.first_seen.get(job_id, {}).items() if seen >= step]
            return min(later) if later else None

        with self.changed:
            if not self.changed.wait_for(lambda: arrived() is not None or self.failed is not None, TIMEOUT_S):
                raise RuntimeError(f"no event for step {step} of job {job_id} in {TIMEOUT_S:g} s")
            if self.failed is not None:
                raise RuntimeError(f"the event stream failed: {self.failed!r}")
            return arrived()  # type: ignore[return-value]

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self.join(15)


def _measure(server: BenchServer, fifo: Path, jobs: int, steps: int) -> tuple[list[float], list[float]]:
    """(seconds from creation to running per job, seconds from release to its event per step)."""
    to_running: list[float] = []
    latencies: list[float] = []
    events = _EventWatch(server).start_open()
    try:
        _measure_with(server, fifo, jobs, steps, events, to_running, latencies)
    finally:
        events.stop()
    return to_running, latencies


def _measure_with(server: BenchServer, fifo: Path, jobs: int, steps: int, events: _EventWatch,
                  to_running: list[float], latencies: list[float]) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as http:
        dataset_id = _dataset(http)
        for _ in range(jobs):
            began = time.perf_counter()
            job = http.post("/api/training/jobs", json={"name": "bench", "dataset_id": dataset_id,
                                                        "base_model": PRESET, "total_steps": steps + 2})
            job.raise_for_status()
            job_id = job.json()["id"]
            _wait(http, job_id, lambda j: j["status"] == "running", "waiting for running")
            to_running.append(time.perf_counter() - began)
            events.step_arrived(job_id, 1)
            fd = os.open(fifo, os.O_RDWR)  # never blocks; the trainer holds its own end open
            try:
                for step in range(2, steps + 2):
                    released = time.perf_counter()
                    os.write(fd, f"{step}\n".encode())
                    latencies.append(events.step_arrived(job_id, step) - released)
                os.write(fd, b"end\n")
            finally:
                os.close(fd)
            _wait(http, job_id, lambda j: j["status"] == "completed", "waiting for the end")


def _system_samples(server: BenchServer, count: int) -> list[float]:
    """Seconds per uncached /api/system answer (each asked after the sampler's one-second cache ran out)."""
    took: list[float] = []
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as http:
        http.get("/api/system").raise_for_status()  # the sampler's first use, and the dashboard's first answer
        for _ in range(count):
            time.sleep(1.1)
            began = time.perf_counter()
            answer = http.get("/api/system")
            answer.raise_for_status()
            took.append(time.perf_counter() - began)
            cluster = answer.json().get("cluster")
            if cluster is not None and not cluster["reachable"]:
                raise RuntimeError(f"the cluster did not answer: {cluster['error']}")
    return took


def run_ray(smoke: bool) -> list[Result]:
    sys.path.insert(0, str(ROOT))
    from tests.ray.ray_head import RayHead

    jobs, steps = (1, 3) if smoke else (5, 20)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as scratch:
        root = Path(scratch)
        shared = root / "shared"
        shared.mkdir()
        head = RayHead()
        try:
            started = time.perf_counter()
            head.start()
            log(f"ray: local head up in {time.perf_counter() - started:.1f} s at {head.address}")
            figures: dict[str, tuple[list[float], list[float]]] = {}
            system: dict[str, list[float]] = {}
            for name, extra in (("local", []), ("ray", ["--executor", "ray", "--ray-address", head.address,
                                                        "--shared-dir", str(shared)])):
                fifo = root / f"{name}.fifo"
                _prepare(root / name, fifo)
                with BenchServer(root / name, extra_args=extra) as server:
                    figures[name] = _measure(server, fifo, jobs, steps)
                    system[name] = _system_samples(server, 2 if smoke else 10)
        finally:
            head.stop()
            head.remove()
    (local_running, local_latency), (ray_running, ray_latency) = figures["local"], figures["ray"]
    load = f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"
    return [
        # In ms: the local figure is ~10 ms, which 4-decimal seconds would round off the ratio.
        Result("ray/submit-to-running", median(ray_running) * 1000, "ms", "local executor, same run",
               median(local_running) * 1000, len(ray_running), f"job created to running on an idle local Ray head; load {load}"),
        Result("ray/progress-latency", median(ray_latency) * 1000, "ms", "local executor, same run",
               median(local_latency) * 1000, len(ray_latency),
               f"trainer's print to our server's event on /api/training/events, read by the app's "
               f"EventStream (p95 ray {percentile(ray_latency, 0.95) * 1000:.0f} ms, local "
               f"{percentile(local_latency, 0.95) * 1000:.0f} ms); load {load}"),
        Result("ray/system-sample", median(system["ray"]) * 1000, "ms", "local executor, same run",
               median(system["local"]) * 1000, len(system["ray"]),
               f"uncached /api/system with the cluster read from the dashboard; load {load}"),
    ]
