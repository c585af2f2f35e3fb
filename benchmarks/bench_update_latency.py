"""Figure 4: how long a job's change on the server takes to show in the jobs model.

This module owns the update-latency measurement of polling: the real `JobStore` with its event stream
off (`live_updates=False`: it polls `GET /api/training/jobs` every 5 s, asking only for the jobs changed
since the revision it holds where the server keeps revisions) on a qasync loop, with its real `ApiClient`,
against the real server subprocess. A change is a job's progress moving on the server, written to its
SQLite database and stamped with the next revision in the same transaction, as the server's storage does
(the server's event hub does not hear of it: push is measured by the live-latency figure, benchmarks/
bench_live.py); the clock stops when the `JobListModel` announces the new step for that job. Changes land
at random moments of the polling cycle, so the median is about half the interval plus one refresh.
Baseline: one `GET /jobs?status=active` round trip through the same client (the floor any mechanism pays
to carry the data).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks.common import BenchServer, Result, insert_job_rows, job_rows, log, mark_running, median


def run_update_latency(smoke: bool) -> list[Result]:
    import qasync
    from PySide6.QtWidgets import QApplication

    count = 100 if smoke else 1000
    runs = 1 if smoke else 8
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        data_dir = Path(tmp) / "data"
        insert_job_rows(data_dir, job_rows(count, running=0, statuses=("queued", "pending")))
        with BenchServer(data_dir, extra_args=["--no-runner"]) as server:
            mark_running(data_dir, min(100, count))
            # Smoke: a 1 s polling interval keeps the run short; the full run uses the app's default.
            wanted_interval = 1.0 if smoke else None
            latencies, round_trips, interval = qasync.run(_measure(app, server, data_dir, runs, wanted_interval))
    return [Result("update-latency", median(latencies) * 1000, "ms",
                   "one GET /api/training/jobs?status=active round trip (the transport floor)",
                   median(round_trips) * 1000, len(latencies),
                   f"mechanism: polling every {interval:g} s (event stream off; push: live-latency); "
                   f"max {max(latencies) * 1000:.0f} ms; "
                   f"{count:,} active jobs; change = a running job's step written on the server, "
                   "end = JobListModel shows it")]


async def _measure(app: QApplication, server: BenchServer, data_dir: Path, runs: int,
                   interval: float | None) -> tuple[list[float], list[float], float]:
    from training_studio.client import ApiClient
    from training_studio.ui.jobs.store import JobStore

    client = ApiClient(server.url, server.token)
    store = JobStore(client, live_updates=False) if interval is None else \
        JobStore(client, live_updates=False, refresh_interval=interval)
    model = store.model
    loop = asyncio.get_running_loop()
    try:
        first = loop.create_future()
        store.jobs_changed.connect(lambda: first.done() or first.set_result(None))
        store.start()
        await asyncio.wait_for(first, 30)
        job_id = model.job_ids()[0]
        row = model.row_of(job_id)
        assert row is not None
        log(f"update-latency: {runs} changes at random moments of the {store.refresh_interval:g} s polling cycle")
        rng = random.Random(3)
        latencies: list[float] = []
        conn = sqlite3.connect(data_dir / "studio.db", timeout=30)
        try:
            for run in range(runs):
                await asyncio.sleep(rng.uniform(0.0, store.refresh_interval))
                step = 10_000 + run
                seen = loop.create_future()

                def on_change(*_args: object, step: int = step, seen: asyncio.Future = seen) -> None:
                    job = model.job_at(row)
                    if job is not None and job.current_step == step and not seen.done():
                        seen.set_result(time.perf_counter())

                model.dataChanged.connect(on_change)
                with conn:
                    revision = conn.execute("UPDATE studio_meta SET value = value + 1 WHERE key = 'revision'"
                                            " RETURNING value").fetchone()[0]
                    conn.execute("UPDATE jobs SET current_step = ?, progress = ?, revision = ? WHERE id = ?",
                                 (step, 50.0 + run / 100, revision, job_id))
                changed = time.perf_counter()
                try:
                    latencies.append(await asyncio.wait_for(seen, store.refresh_interval * 3 + 10) - changed)
                finally:
                    model.dataChanged.disconnect(on_change)
        finally:
            conn.close()
        round_trips = []
        for _ in range(max(3, runs)):
            started = time.perf_counter()
            await client.list_active_jobs()
            round_trips.append(time.perf_counter() - started)
        return latencies, round_trips, store.refresh_interval
    finally:
        store.shutdown()
        await store.wait_idle()
        await client.aclose()
