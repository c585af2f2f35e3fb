"""History figures (issue 16) with 100,000 stored jobs, against the real `serve` subprocess (`--no-runner`):

- history/first-page: from asking (HistoryStore.set_query) to the History table's first page painted
  (rows in the model, then a synchronous repaint of the table's viewport), with the real ApiClient on a
  qasync loop; baseline: the same against a server holding 1,000 jobs. Goal: at most 100 ms.
- history/scroll-page: each scroll-triggered page (the view's fetchMore) until it is appended and painted;
  baseline: the first page at 1,000 jobs. Goal: at most 50 ms.
- history/search: `GET /api/training/jobs?status=all&q=…&limit=200` over 100,000 jobs, a name fragment that
  matches a quarter of them; baseline: the same request with 1,000 jobs stored. Goal: at most 50 ms.
The jobs are written straight into the data dir's SQLite in one transaction before the server starts
(finished jobs, as a long-lived install accumulates).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks.common import BenchServer, Result, goal_note, insert_job_rows, job_rows, log, median, percentile

STATUSES = ("completed", "completed", "failed", "cancelled", "completed")


def _seed(data_dir: Path, count: int) -> None:
    insert_job_rows(data_dir, job_rows(count, running=0, statuses=STATUSES, seed=11))


def run_history(smoke: bool) -> list[Result]:
    import qasync
    from PySide6.QtWidgets import QApplication

    big = 5_000 if smoke else 100_000
    small = 1_000
    runs = 2 if smoke else 10
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        big_dir, small_dir = Path(tmp) / "big", Path(tmp) / "small"
        log(f"history: seeding {big:,} and {small:,} jobs")
        _seed(big_dir, big)
        _seed(small_dir, small)
        with BenchServer(big_dir, extra_args=["--no-runner"]) as big_server, \
                BenchServer(small_dir, extra_args=["--no-runner"]) as small_server:
            # One qasync loop for both: a second qasync.run in one process never fires its timers.
            (first_big, scroll_big), (first_small, _) = qasync.run(_both(app, big_server, small_server, runs))
            search_big = _search(big_server, runs * 3)
            search_small = _search(small_server, runs * 3)
    first, scroll, search = median(first_big) * 1000, median(scroll_big) * 1000, median(search_big) * 1000
    return [
        Result("history/first-page", first, "ms", f"the same with {small:,} jobs stored", median(first_small) * 1000,
               len(first_big), f"{big:,} jobs stored; p95 {percentile(first_big, 0.95) * 1000:.1f} ms; "
               + goal_note(first <= 100, "≤ 100 ms")),
        Result("history/scroll-page", scroll, "ms", f"the first page with {small:,} jobs stored",
               median(first_small) * 1000, len(scroll_big),
               f"pages 2–4 of 100 rows, fetched by the view's fetchMore; p95 {percentile(scroll_big, 0.95) * 1000:.1f} ms; "
               + goal_note(scroll <= 50, "≤ 50 ms")),
        Result("history/search", search, "ms", f"the same search with {small:,} jobs stored",
               median(search_small) * 1000, len(search_big),
               f"q=portrait (a quarter of {big:,} names match), first 200 answered newest first; "
               f"p95 {percentile(search_big, 0.95) * 1000:.1f} ms; " + goal_note(search <= 50, "≤ 50 ms")),
    ]


async def _both(app, big: BenchServer, small: BenchServer, runs: int) -> tuple[tuple[list[float], list[float]], ...]:
    return await _gui_pages(app, big, runs, pages=4), await _gui_pages(app, small, runs, pages=1)


async def _gui_pages(app, server: BenchServer, runs: int, pages: int) -> tuple[list[float], list[float]]:
    from training_studio.client import ApiClient
    from training_studio.ui.history.panel import HistoryPanel
    from training_studio.ui.history.query import HistoryQuery
    from training_studio.ui.history.store import HistoryStore

    client = ApiClient(server.url, server.token, timeout=30)
    store = HistoryStore(client)
    panel = HistoryPanel(store)
    panel.resize(1000, 600)
    panel.show()
    loop = asyncio.get_running_loop()
    firsts: list[float] = []
    scrolls: list[float] = []
    try:
        for run in range(runs + 1):  # the first run warms up the connection and SQLite's cache
            loaded: asyncio.Future = loop.create_future()

            def on_page(*_args: object, future: asyncio.Future = loaded) -> None:
                if not future.done():
                    future.set_result(None)

            store.page_loaded.connect(on_page)
            started = time.perf_counter()
            store.set_query(HistoryQuery(statuses=frozenset(STATUSES), order="-createdAt" if run % 2 else "name"))
            await asyncio.wait_for(loaded, 30)
            panel.table.viewport().repaint()
            took = time.perf_counter() - started
            store.page_loaded.disconnect(on_page)
            if run:
                firsts.append(took)
            for _ in range(pages - 1):
                more: asyncio.Future = loop.create_future()

                def on_more(*_args: object, future: asyncio.Future = more) -> None:
                    if not future.done():
                        future.set_result(None)

                store.page_loaded.connect(on_more)
                started = time.perf_counter()
                panel.table.scrollToBottom()  # the view asks the model for more (fetchMore)
                await asyncio.wait_for(more, 30)
                panel.table.viewport().repaint()
                took = time.perf_counter() - started
                store.page_loaded.disconnect(on_more)
                if run:
                    scrolls.append(took)
        return firsts, scrolls
    finally:
        store.shutdown()
        await store.wait_idle()
        await client.aclose()
        panel.close()
        panel.deleteLater()


def _search(server: BenchServer, runs: int) -> list[float]:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as client:
        params = {"status": "all", "q": "portrait", "limit": "200"}
        for _ in range(2):
            client.get("/api/training/jobs", params=params).raise_for_status()
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get("/api/training/jobs", params=params)
            response.raise_for_status()
            samples.append(time.perf_counter() - started)
        return samples
