"""Soak: 1,000 real jobs through a real server while the GUI refreshes, and nothing grows.

A preset trainer that is just /bin/echo printing its last progress line makes each job a real
subprocess that completes at once, so the server runs 1,000 of them (4 at a time) in minutes. The
main window watches it all with a fast refresh and the user clears finished rows now and then. At
the end the GUI's process (this one) and the server's have the same memory, open files and threads
as after the warm-up, within small bounds. The figures are printed (run with -s) for the record.

Marked slow: it takes minutes, so it is not part of the default CI run.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import ServerProcess
from tests.ui.app_fixtures import harness, sync_client  # noqa: F401  (fixture re-export)
from tests.ui.conftest import loop, qasync_loop  # noqa: F401  (fixture re-export)
from tests.ui.jobs_helpers import make_dataset

JOB_COUNT = 1000
CONCURRENCY = 4
# The first figures are taken once this many jobs have finished: by then connection pools and
# executor threads have grown to their working size. A leak scales with the 700 jobs after that.
WARM_UP_JOBS = 300
# Allowed growth from the warm-up figures to the end, far below one leaked item per job:
RSS_SLACK_KB = 30 * 1024  # allocator noise (700 jobs leaking 45 KB each would exceed it)
FD_SLACK = 10       # keep-alive connections come and go (the GUI fetches up to 8 final states at once)
THREAD_SLACK = 8    # executor threads are created lazily, up to a fixed cap

ECHO_PRESET = """
[[preset]]
id = "echo-done"
name = "Echo (finishes at once)"
description = "prints the last progress line and exits"
command = ["/bin/echo", "{{\\"step\\": {total_steps}, \\"total_steps\\": {total_steps}, \\"loss\\": 0.125}}"]
progress = "jsonl"
"""


@dataclass(frozen=True)
class Figures:
    rss_kb: int
    fds: int
    threads: int


def figures(pid: int) -> Figures:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return Figures(rss_kb=int(fields["VmRSS"].split()[0]), fds=len(os.listdir(f"/proc/{pid}/fd")),
                   threads=int(fields["Threads"]))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_thousand_jobs_leave_memory_files_and_threads_flat(harness, qtbot, tmp_path):
    data_dir = tmp_path / "soak"
    data_dir.mkdir()
    (data_dir / "presets.toml").write_text(ECHO_PRESET)
    server = ServerProcess(data_dir, extra_args=["--concurrency", str(CONCURRENCY)]).start()
    try:
        with sync_client(server.url, server.token) as http:
            dataset = make_dataset(http, images=1)
            assert "echo-done" in {model["id"] for model in http.get("/api/training/base-models").json()}

        store = harness.store(server.url, server.token, refresh_interval=1.0, timeout=4.0)
        window = harness.window(store)
        failures: list[tuple[str, str]] = []
        store.refresh_failed.connect(lambda kind, message: failures.append((kind, message)))
        cleared = [0]
        store.jobs_changed.connect(lambda: cleared.__setitem__(0, cleared[0] + (
            store.clear_finished() if store.model.finished_count() >= 50 else 0)))
        store.start()

        created: list[str] = []
        creation_errors: list[BaseException] = []

        def create_all() -> None:  # off the GUI thread: the window keeps refreshing meanwhile
            try:
                with sync_client(server.url, server.token) as http:
                    for number in range(JOB_COUNT):
                        response = http.post("/api/training/jobs", json={
                            "name": f"soak {number}", "dataset_id": dataset, "base_model": "echo-done",
                            "total_steps": 2, "params": {}})
                        response.raise_for_status()
                        created.append(response.json()["id"])
            except BaseException as error:
                creation_errors.append(error)

        creator = threading.Thread(target=create_all, daemon=True)
        creator.start()

        def server_finished() -> int:
            with sync_client(server.url, server.token) as http:
                active = http.get("/api/training/jobs", params={"status": "active"}).json()
            return len(created) - len(active)

        def wait_for(condition, timeout_s: float) -> None:
            """Poll twice a second (each poll is an HTTP request) while the GUI runs."""
            deadline = time.monotonic() + timeout_s
            while not condition():
                assert time.monotonic() < deadline, "the soak did not finish in time"
                assert creation_errors == []
                qtbot.wait(500)

        wait_for(lambda: len(created) >= WARM_UP_JOBS and server_finished() >= WARM_UP_JOBS, 600)
        gui_first, server_first = figures(os.getpid()), figures(server.proc.pid)
        started_at = time.monotonic()

        wait_for(lambda: server_finished() >= (WARM_UP_JOBS + JOB_COUNT) // 2, 1800)
        gui_middle, server_middle = figures(os.getpid()), figures(server.proc.pid)
        wait_for(lambda: not creator.is_alive() and server_finished() == JOB_COUNT, 1800)
        assert creation_errors == []
        # Let the GUI see the last of them finish, then settle for three more refreshes.
        qtbot.waitUntil(lambda: store.model.active_count() == 0, timeout=60_000)
        settled: list[bool] = []
        store.refreshing_changed.connect(lambda refreshing: refreshing or settled.append(True))
        qtbot.waitUntil(lambda: len(settled) >= 3, timeout=60_000)
        gui_last, server_last = figures(os.getpid()), figures(server.proc.pid)

        with sync_client(server.url, server.token) as http:
            everything = http.get("/api/training/jobs", params={"status": "all", "limit": 1000}).json()
        assert {job["id"] for job in everything} == set(created) and len(created) == JOB_COUNT
        statuses = {job["status"] for job in everything}
        print(f"\nsoak: {JOB_COUNT} jobs, {time.monotonic() - started_at:.0f} s after the warm-up; statuses "
              f"{statuses}; the GUI cleared {cleared[0]} finished rows; {len(failures)} failed refreshes")
        print(f"GUI    first {gui_first}  middle {gui_middle}  last {gui_last}")
        print(f"server first {server_first}  middle {server_middle}  last {server_last}")

        assert statuses == {"completed"}
        assert failures == []
        assert not window.banner.isVisible()
        for first, last in ((gui_first, gui_last), (server_first, server_last)):
            assert last.rss_kb <= first.rss_kb + RSS_SLACK_KB
            assert last.fds <= first.fds + FD_SLACK
            assert last.threads <= first.threads + THREAD_SLACK
    finally:
        server.stop(timeout=30)
