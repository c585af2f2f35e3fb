"""Logs figure (issue 14): opening a 100 MB job log in the details pane's Logs view.

This module owns the `details-logs` figures. Set-up (SEEDING, before the server starts): one finished job
written into a data dir's database (`insert_job_rows`) and a 100 MB log for it in `logs/<job id>.log`
(numbered lines, every tenth coloured with ANSI codes, as a trainer's log may be). Then a real
`training-studio serve` on that data dir.

Each run is a fresh process (`python -m benchmarks.bench_details_logs --probe MODE URL TOKEN JOB`) so that
its resident memory starts from the same point: it builds a QApplication and a qasync loop as the app does,
shows the widget offscreen at 900 × 500 px, makes two requests with the client (health, the job's status:
in the app the client is in use already, its connection open), notes VmRSS, starts the clock and then:
- mode `view`: the real `LogView` (ui/jobs/details/logs.py) over its `LogStore`: `show_job(job)`; the clock
  stops at the end of a synchronous repaint of the text area, run right after the first lines arrived.
- mode `whole` (the baseline): the straightforward approach: read the whole log through the same API
  (`ApiClient.job_log`, forward, 1 MiB per request, the server's largest), strip the escape codes
  (`ansi.strip_ansi`), `setPlainText` it into a read-only QPlainTextEdit scrolled to its end, repaint.
The process reports the elapsed time and VmRSS growth (after the paint minus before the clock started); in
mode `view` it then scrolls back through `SCROLLBACK_PARTS` older parts (twice what the view holds) and
reports VmRSS growth again. Figures: `details-logs/open` (ms to the first painted lines, median),
`details-logs/memory` (MB of resident memory growth at that moment, median) and
`details-logs/scrollback-memory` (the same after the scroll-back), each against the whole-log baseline
measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import BenchServer, Result, goal_note, insert_job_rows, job_rows, log, median

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

OPEN_GOAL_MS = 300.0
MEMORY_GOAL_MB = 50.0
PROBE_TIMEOUT_S = 600.0
SCROLLBACK_PARTS = 32  # × OLDER_STEP_BYTES (256 KiB) = 8 MiB read back: twice what the view holds


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _seed_log(path: Path, size: int) -> int:
    """SEEDING: numbered lines (every tenth coloured) until `size` bytes; returns the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    number = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        while written < size:
            block = []
            for _ in range(1_000):
                colour = "\x1b[32m" if number % 10 == 0 else ""
                block.append(f"{colour}step {number:09d} | loss 0.{number % 9973:04d} | lr 1e-4 | "
                             f"grad_norm 1.{number % 97:02d} | images/s 12.5\x1b[0m\n")
                number += 1
            text = "".join(block)
            handle.write(text)
            written += len(text)
    return written


# -- the probe process ----------------------------------------------------------------------------------------

def _probe(mode: str, url: str, token: str, job_id: str) -> dict:
    import qasync
    from PySide6.QtWidgets import QApplication, QPlainTextEdit

    from training_studio.client import ApiClient
    from training_studio.ui.jobs.details.ansi import strip_ansi
    from training_studio.ui.jobs.details.logs import LogView
    from training_studio.ui.jobs.store import JobStore

    app = QApplication.instance() or QApplication(sys.argv[:1])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    client = ApiClient(url, token, timeout=60.0)
    jobs = JobStore(client)  # never started: the view only needs its client (and it is not local)
    result: dict = {}

    # Widgets are built and shown before the loop runs: processing events inside a coroutine would nest the
    # event loop (docs: QT-NOTES), so nothing below does.
    view = LogView(jobs) if mode == "view" else None
    editor = QPlainTextEdit() if mode != "view" else None
    shown = view if view is not None else editor
    assert shown is not None
    shown.resize(900, 500)
    if editor is not None:
        editor.setReadOnly(True)
    shown.show()
    app.processEvents()

    async def run_view() -> None:
        assert view is not None
        done = asyncio.get_running_loop().create_future()

        def painted(*_args: object) -> None:
            if done.done():
                return
            view.editor.viewport().repaint()
            done.set_result(time.perf_counter())

        # Queued after the slot that inserts the lines: the repaint sees them.
        view.store.appended.connect(lambda *a: loop.call_soon(painted))
        before = _rss_kib()
        started = time.perf_counter()
        view.show_job(job_id)
        ended = await asyncio.wait_for(done, PROBE_TIMEOUT_S)
        result.update(ms=(ended - started) * 1000, rss_growth_kib=_rss_kib() - before,
                      lines=view.editor.blockCount(), held_bytes=view.store.held_bytes,
                      last_line=view.editor.document().lastBlock().text()[:60])
        # Then the user scrolls back through SCROLLBACK_PARTS older parts (twice what the view holds).
        for _ in range(SCROLLBACK_PARTS):
            start = view.store.start
            if start <= 0:
                break
            deadline = time.monotonic() + 120
            while view.store.start >= start:
                view.store.request_older()  # ignored while one is in flight (the view may have asked too)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the part before byte {start} never arrived: {view.error_label.text()}")
                await asyncio.sleep(0.002)
        view.editor.viewport().repaint()
        result.update(scrollback_rss_growth_kib=_rss_kib() - before, scrollback_held_bytes=view.store.held_bytes,
                      scrollback_read_bytes=view.store.size - view.store.start)
        view.shutdown()
        await view.store.wait_idle()

    async def run_whole() -> None:
        assert editor is not None
        before = _rss_kib()
        started = time.perf_counter()
        parts: list[str] = []
        offset = 0
        while True:
            chunk = await client.job_log(job_id, offset=offset, limit=1024 * 1024)
            parts.append(chunk.text)
            if chunk.next_offset >= chunk.size or chunk.next_offset <= offset:
                break
            offset = chunk.next_offset
        text = strip_ansi("".join(parts))
        del parts
        editor.setPlainText(text)
        scroll = editor.verticalScrollBar()
        scroll.setValue(scroll.maximum())
        editor.viewport().repaint()
        ended = time.perf_counter()
        result.update(ms=(ended - started) * 1000, rss_growth_kib=_rss_kib() - before,
                      lines=editor.blockCount(), held_bytes=len(text))

    async def main() -> None:
        try:
            # As in the app, whose client already talks to the server (the jobs table's refreshes): the
            # connection is open and httpx's lazily imported parts are loaded before the clock starts.
            await client.health()
            await client.job_status(job_id)
            await (run_view() if mode == "view" else run_whole())
        finally:
            await client.aclose()

    with loop:
        loop.run_until_complete(main())
    return result


def _run_probe(mode: str, server: BenchServer, job_id: str) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_details_logs", "--probe", mode, server.url,
                           server.token, job_id], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, timeout=PROBE_TIMEOUT_S)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the {mode} probe failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def run_details_logs(smoke: bool) -> list[Result]:
    size = (10 if smoke else 100) * 1024 * 1024
    runs = 1 if smoke else 5
    baseline_runs = 1 if smoke else 3
    with tempfile.TemporaryDirectory(prefix="bench-details-logs-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        row = job_rows(1, running=0, statuses=("completed",))[0]
        row["baseModel"] = "builtin-linear-vae"
        insert_job_rows(data_dir, [row])
        log(f"seeding a {size // (1024 * 1024)} MB log for job {row['id']}…")
        written = _seed_log(data_dir / "logs" / f"{row['id']}.log", size)
        with BenchServer(data_dir) as server:
            views = []
            for index in range(runs):
                views.append(_run_probe("view", server, row["id"]))
                log(f"view run {index + 1}: {views[-1]['ms']:.0f} ms, +{views[-1]['rss_growth_kib'] / 1024:.1f} MB")
            wholes = []
            for index in range(baseline_runs):
                wholes.append(_run_probe("whole", server, row["id"]))
                log(f"whole-log run {index + 1}: {wholes[-1]['ms']:.0f} ms, "
                    f"+{wholes[-1]['rss_growth_kib'] / 1024:.1f} MB")
    open_ms = median([v["ms"] for v in views])
    growth_mb = median([v["rss_growth_kib"] for v in views]) / 1024
    scrollback_mb = median([v["scrollback_rss_growth_kib"] for v in views]) / 1024
    baseline_ms = median([w["ms"] for w in wholes])
    baseline_mb = median([w["rss_growth_kib"] for w in wholes]) / 1024
    where = (f"{written / 1024 / 1024:.0f} MB log (SEEDED into the data dir of a finished job), real server "
             f"subprocess, fresh process per run, offscreen 900×500")
    return [
        Result("details-logs/open", open_ms, "ms",
               "read the whole log (GET /logs 1 MiB at a time), strip ANSI, setPlainText, paint", baseline_ms, runs,
               f"{where}; from show_job to the end of the repaint showing the log's last lines "
               f"({views[0]['lines']} lines shown); {goal_note(open_ms <= OPEN_GOAL_MS, f'≤ {OPEN_GOAL_MS:.0f} ms')}"),
        Result("details-logs/memory", growth_mb, "MB", "the same whole-log baseline", baseline_mb, runs,
               f"{where}; VmRSS after the first paint minus before show_job; "
               f"{goal_note(growth_mb < MEMORY_GOAL_MB, f'< {MEMORY_GOAL_MB:.0f} MB')}"),
        Result("details-logs/scrollback-memory", scrollback_mb, "MB", "the same whole-log baseline", baseline_mb,
               runs, f"{where}; VmRSS growth after then scrolling back through {SCROLLBACK_PARTS} older parts "
               f"({views[0]['scrollback_read_bytes'] / 1024 / 1024:.1f} MB read from the end; the view holds at most "
               f"{views[0]['scrollback_held_bytes'] / 1024 / 1024:.1f} MB of it: the far end is dropped); "
               f"{goal_note(scrollback_mb < MEMORY_GOAL_MB, f'< {MEMORY_GOAL_MB:.0f} MB')}"),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--probe":
        print(json.dumps(_probe(*sys.argv[2:6])), flush=True)
    else:
        raise SystemExit("usage: python -m benchmarks.bench_details_logs --probe view|whole URL TOKEN JOB_ID")
