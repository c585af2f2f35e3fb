"""The storm figure's server: the real `training-studio serve`, plus a load generator inside its process.

1,000 real trainers do not fit on a 2-core machine, so the live-storm figure (bench_live.py) feeds the
server's event stream from this process instead: `python -m benchmarks.live_server --control FILE SERVE-ARGS...`
wraps `training_studio.server.app.create_app` (looked up by main.py at call time, so wrapping the module
attribute is enough) to start one `LoadGenerator` thread once the app is ready, then runs the real
`training_studio.cli.main(["serve", ...])`: same uvicorn, same routes, same event hub, same storage.

The generator waits for FILE (JSON written by the benchmark: `start_at` on CLOCK_MONOTONIC, which every
process on Linux shares, `rate` in job updates per second, `seconds`). It then moves running jobs' progress
through `Storage.record_progress`, the very call the job runner makes with a trainer's progress points
(batched, one transaction per batch, a new revision per job, the storage's change listener handing each
committed change to the `EventHub`), round robin over every running job, so each update is a real change
of a job's step and loss. It keeps to the schedule `rate * elapsed` in ticks of `TICK_S`, and writes what
it did to FILE + ".done": updates published, seconds taken, its own thread's CPU seconds. The server stops
itself (SIGTERM, a clean stop) when the process that started it is gone.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

TICK_S = 0.01
MAX_BATCH = 500  # one transaction never holds the storage lock for long (the runner writes small batches too)


class LoadGenerator(threading.Thread):
    """Moves running jobs' progress at a fixed rate once the control file appears; see the module docstring."""

    def __init__(self, storage: Any, control: Path) -> None:
        super().__init__(name="bench-load-generator", daemon=True)
        self.storage = storage
        self.control = control

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # the benchmark reads the reason from the .done file
            self._write_done({"error": f"{type(exc).__name__}: {exc}"})

    def _write_done(self, payload: dict[str, Any]) -> None:
        done = self.control.with_name(self.control.name + ".done")
        tmp = done.with_name(done.name + ".tmp")
        tmp.write_text(json.dumps(payload))
        tmp.replace(done)

    def _run(self) -> None:
        while not self.control.exists():
            time.sleep(0.02)
        plan = json.loads(self.control.read_text())
        rate, seconds, start_at = float(plan["rate"]), float(plan["seconds"]), float(plan["start_at"])
        jobs = [(job.id, job.current_step or 0) for job in self.storage.jobs_with_status(["running"])]
        if not jobs:
            raise RuntimeError("no running jobs to move")
        steps = [step for _id, step in jobs]
        total = int(rate * seconds)
        while time.monotonic() < start_at:
            time.sleep(min(0.005, max(0.0, start_at - time.monotonic())))
        cpu_before = time.thread_time()
        started = time.monotonic()
        published = 0
        batches = 0
        while published < total:
            tick_started = time.monotonic()
            due = min(total, int(rate * (tick_started - started)) + 1)
            count = min(due - published, MAX_BATCH)
            if count > 0:
                stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                points = []
                for number in range(published, published + count):
                    index = number % len(jobs)
                    steps[index] += 1
                    points.append((jobs[index][0], steps[index], None, 1.0 / (1 + steps[index] % 997), stamp))
                self.storage.record_progress(points)
                published += count
                batches += 1
            # Whatever is due goes in one batch per tick, as a busy runner's flush would write it.
            pause = tick_started + TICK_S - time.monotonic()
            if pause > 0 and published < total:
                time.sleep(pause)
        elapsed = time.monotonic() - started
        self._write_done({"published": published, "seconds": elapsed, "thread_cpu_s": time.thread_time() - cpu_before,
                          "jobs": len(jobs), "batches": batches, "ended_at": time.monotonic()})


def _exit_with_parent() -> None:
    """SIGTERM ourselves when the benchmark that started us is gone (a figure killed by the runner's timeout
    never reaches its clean-up, and this server runs in a session of its own)."""
    import signal

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="bench-parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "--control":
        print("usage: python -m benchmarks.live_server --control FILE SERVE-ARGS...", file=sys.stderr)
        return 2
    control, serve_args = Path(argv[1]), argv[2:]

    import training_studio.server.app as server_app

    real_create_app = server_app.create_app

    def create_app_with_load(config: Any, executor_factory: Any = None, **options: Any) -> Any:
        on_started = options.pop("on_started", None)
        app: Any = None

        def started() -> None:
            if on_started is not None:
                on_started()
            LoadGenerator(app.state.context.storage, control).start()

        app = real_create_app(config, executor_factory, on_started=started, **options)
        return app

    server_app.create_app = create_app_with_load
    _exit_with_parent()
    from training_studio.cli import main as cli_main

    return int(cli_main(["serve", *serve_args]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
