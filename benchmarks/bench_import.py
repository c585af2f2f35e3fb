"""Figure 5: importing 2,000 photo-like 2 MP JPEGs end to end, against `curl --parallel` PUTting the same files.

This module owns the import-throughput measurement. The app side is the real `DatasetImportPanel` (with its
`DatasetImportController`, `ThumbnailCache` grid and `DatasetUploader`) shown offscreen at 1000×700 on a
qasync loop, talking to a real server subprocess: add the files → local checks and hashing → the grid's
thumbnails → create dataset → upload (the app's concurrency) → commit, timed from adding the files to the
commit's answer. While it runs, a 5 ms precise QTimer records the longest gap of the GUI event loop (the
stall a user would feel). The baseline is one `curl --parallel --parallel-max N` run (N = the uploader's
MAX_IN_FLIGHT) PUTting the same files to the same kind of server, hashes given for free and no commit.
Each run uses a fresh server data dir: the server deduplicates by content, so a second upload of the same
files to the same server would only link them and flatter the figure.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import httpx

from benchmarks.common import BenchServer, Result, goal_note, log, median
from benchmarks.photos import ensure_photo_set

STALL_TICK_MS = 5


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a live process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    """CPU seconds of this process's waited-for children (curl, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


async def _curl_run(files: list[Path], hashes: list[str], work: Path, concurrency: int
                    ) -> tuple[float, float, dict[str, float]]:
    """(seconds for one curl process to PUT every file into a fresh dataset of a fresh server, longest gap
    of this idle GUI loop meanwhile in ms: the machine's own noise under the same server load, CPU seconds
    meanwhile: {"client": curl's, "server": the server's})."""
    from PySide6.QtCore import Qt, QTimer

    curl = shutil.which("curl")
    if curl is None:
        raise RuntimeError("curl is not installed (apt-get install curl)")
    data_dir = work / "curl-data"
    meter = _StallMeter()
    ticker = QTimer()
    ticker.setTimerType(Qt.TimerType.PreciseTimer)
    ticker.setInterval(STALL_TICK_MS)
    ticker.timeout.connect(meter.tick)
    try:
        with BenchServer(data_dir, extra_args=["--no-runner"]) as server:
            dataset = httpx.post(server.url + "/api/datasets", json={"name": "curl", "type": "image"},
                                 headers=server.headers, timeout=30).json()
            config = work / "curl.config"
            with open(config, "w", encoding="utf-8") as out:
                for path, digest in zip(files, hashes):
                    url = f"{server.url}/api/datasets/{dataset['id']}/files/{digest}?filename={quote(path.name)}"
                    out.write(f'url = "{url}"\nupload-file = "{path}"\noutput = "/dev/null"\n')
            command = [curl, "--silent", "--show-error", "--parallel", "--parallel-max", str(concurrency),
                       "-H", f"Authorization: Bearer {server.token}", "-H", "Content-Type: application/octet-stream",
                       "-H", "Expect:", "--write-out", "%{http_code}\\n", "--config", str(config)]
            ticker.start()
            meter.reset()
            assert server.proc is not None
            server_cpu, children_cpu = _cpu_s(server.proc.pid), _children_cpu_s()
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            out_bytes, err_bytes = await asyncio.wait_for(proc.communicate(), 1200)
            elapsed = time.perf_counter() - started
            ticker.stop()
            cpu = {"client": _children_cpu_s() - children_cpu, "server": _cpu_s(server.proc.pid) - server_cpu}
            codes = out_bytes.decode().split()
            good = sum(code == "201" for code in codes)
            if proc.returncode != 0 or good != len(files):
                raise RuntimeError(f"curl stored {good} of {len(files)} files (exit {proc.returncode}): "
                                   f"{err_bytes.decode(errors='replace')[-500:]}")
            return elapsed, max(0.0, meter.longest * 1000 - STALL_TICK_MS), cpu
    finally:
        ticker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class _StallMeter:
    """Longest gap between ticks of a fast timer on the GUI loop, and the import stage it fell in."""

    last: float = 0.0
    longest: float = 0.0
    stage: str = "checking"
    worst_stage: str = ""

    def reset(self) -> None:
        self.last, self.longest = time.perf_counter(), 0.0

    def tick(self) -> None:
        now = time.perf_counter()
        if now - self.last > self.longest:
            self.longest, self.worst_stage = now - self.last, self.stage
        self.last = now


async def _app_run(app: object, files: list[Path], work: Path) -> tuple[float, float, int, str, dict[str, float]]:
    """(seconds, longest event-loop stall in ms, files stored, the stage it happened in, seconds per phase:
    check, upload, commit, and CPU seconds during the upload: client_cpu (this process: the GUI thread, the
    uploader's file reads, the grid's thumbnails), server_cpu) for one import through the real panel."""
    data_dir = work / "app-data"
    gui_dir = work / "gui-data"
    try:
        with BenchServer(data_dir, extra_args=["--no-runner"]) as server:
            return await _import(app, server, files, gui_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(gui_dir, ignore_errors=True)


async def _import(app: object, server: BenchServer, files: list[Path], gui_dir: Path
                  ) -> tuple[float, float, int, str, dict[str, float]]:
    from PySide6.QtCore import Qt, QTimer

    from training_studio.client import ApiClient
    from training_studio.ui.datasets.import_dialog import DatasetImportPanel

    loop = asyncio.get_running_loop()
    client = ApiClient(server.url, server.token)
    panel = DatasetImportPanel(client, gui_dir)
    controller = panel.controller
    panel.resize(1000, 700)
    panel.show()
    errors: list[str] = []
    controller.error_occurred.connect(errors.append)

    meter = _StallMeter()
    ticker = QTimer()
    ticker.setTimerType(Qt.TimerType.PreciseTimer)
    ticker.setInterval(STALL_TICK_MS)
    ticker.timeout.connect(meter.tick)

    def waiter(signal: object, accept: object) -> asyncio.Future:
        future = loop.create_future()

        def slot(*args: object) -> None:
            if not future.done() and accept(*args):
                future.set_result(args)

        signal.connect(slot)  # type: ignore[attr-defined]
        return future

    try:
        await asyncio.sleep(0.2)  # let the panel settle before the clock starts
        ticker.start()
        meter.reset()
        started = time.perf_counter()
        controller.set_name("benchmark photos")
        scanned = waiter(controller.scanning_changed, lambda busy: not busy)
        controller.add_paths([str(path) for path in files])
        await asyncio.wait_for(scanned, 600)
        checked = time.perf_counter()
        assert server.proc is not None
        client_cpu, server_cpu = time.process_time(), _cpu_s(server.proc.pid)
        reviewed = waiter(controller.phase_changed, lambda phase: phase in ("review", "interrupted"))
        meter.stage = "uploading"
        controller.start_upload()
        phase = (await asyncio.wait_for(reviewed, 1200))[0]
        if phase != "review":
            raise RuntimeError(f"the upload stopped: {errors[-1:] or phase}")
        uploaded = time.perf_counter()
        client_cpu, server_cpu = time.process_time() - client_cpu, _cpu_s(server.proc.pid) - server_cpu
        created = waiter(controller.dataset_created, lambda _id: True)
        meter.stage = "committing"
        controller.commit()
        dataset_id = (await asyncio.wait_for(created, 600))[0]
        elapsed = time.perf_counter() - started
        ticker.stop()
        stored = (await client.get_dataset(dataset_id)).image_count
        if stored != len(files):
            raise RuntimeError(f"the committed dataset holds {stored} of {len(files)} files: {errors[-3:]}")
        phases = {"check": checked - started, "upload": uploaded - checked, "commit": elapsed - (uploaded - started),
                  "client_cpu": client_cpu, "server_cpu": server_cpu}
        return elapsed, max(0.0, meter.longest * 1000 - STALL_TICK_MS), stored, meter.worst_stage, phases
    finally:
        ticker.stop()
        controller.shutdown()
        await controller.wait_idle()
        panel.close()
        panel.deleteLater()
        await client.aclose()


def _floor_note(curl_seconds: list[float], curl_cpus: list[dict[str, float]], app_phases: list[dict[str, float]],
                count: int) -> str:
    """What stands between the app and 0.95x curl, in this run's own measurements (issue 19: a goal that is
    not met says what stops it): the time 0.95x leaves for everything curl does not do, what the app's own
    check and commit took, and the CPU each side spent while uploading (medians)."""
    curl_s = median(curl_seconds)
    budget = curl_s / 0.95 - curl_s
    extra = median([p["check"] + p["commit"] for p in app_phases])
    client_cpu = median([p["client_cpu"] for p in app_phases])
    server_cpu = median([p["server_cpu"] for p in app_phases])
    curl_cpu = median([c["client"] for c in curl_cpus])
    curl_server_cpu = median([c["server"] for c in curl_cpus])
    return (f"0.95x leaves {budget:.2f} s over curl's {curl_s:.1f} s for all the work curl does not do, and the "
            f"app's check and commit alone took {extra:.2f} s; CPU while uploading: the app's process "
            f"{client_cpu:.1f} s ({client_cpu / count * 1000:.1f} ms per file, its GUI thread and workers together: HTTP, "
            f"file reads, thumbnails) and the server {server_cpu:.1f} s, against curl "
            f"{curl_cpu:.1f} s ({curl_cpu / count * 1000:.2f} ms per file) and the server {curl_server_cpu:.1f} s")


def run_import_throughput(smoke: bool) -> list[Result]:
    from training_studio.ui.datasets.uploader import MAX_IN_FLIGHT

    runs = 1 if smoke else 3
    files = ensure_photo_set(20 if smoke else 2000)
    sizes = [path.stat().st_size for path in files]
    total_mb = sum(sizes) / 1e6
    hashes = [_sha256(path) for path in files]  # curl gets these for free; the app computes its own
    log(f"import-throughput: {len(files):,} JPEGs, {total_mb:,.0f} MB (mean {total_mb / len(files):.2f} MB); "
        f"{runs} runs of the app and of curl --parallel-max {MAX_IN_FLIGHT}")
    app_rates: list[float] = []
    curl_rates: list[float] = []
    stalls: list[float] = []
    stored_counts: list[int] = []
    stages: list[str] = []
    idle_stalls: list[float] = []
    app_phases: list[dict[str, float]] = []
    upload_ratios: list[float] = []  # curl's seconds / the app's upload phase alone, run by run
    curl_seconds: list[float] = []
    curl_cpus: list[dict[str, float]] = []  # CPU seconds of curl and of the server during each curl run
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)  # closing the panel between runs must not stop the loop

    async def all_runs(work: Path) -> None:
        # One qasync loop for every run: a second qasync loop in one process never fires its timers.
        for run in range(runs):
            seconds, idle_stall_ms, cpu = await _curl_run(files, hashes, work, MAX_IN_FLIGHT)
            curl_rates.append(total_mb / seconds)
            curl_cpus.append(cpu)
            idle_stalls.append(idle_stall_ms)
            log(f"import-throughput: curl run {run + 1}: {seconds:.1f} s (idle loop's longest gap {idle_stall_ms:.0f} ms; "
                f"CPU: curl {cpu['client']:.1f} s, server {cpu['server']:.1f} s)")
            app_seconds, stall_ms, stored, stage, phases = await _app_run(app, files, work)
            app_rates.append(total_mb / app_seconds)
            app_phases.append(phases)
            upload_ratios.append(seconds / phases["upload"])
            curl_seconds.append(seconds)
            stalls.append(stall_ms)
            stages.append(stage)
            stored_counts.append(stored)
            log(f"import-throughput: app run {run + 1}: {app_seconds:.1f} s (check {phases['check']:.1f} s, upload "
                f"{phases['upload']:.1f} s, commit {phases['commit']:.1f} s), longest stall {stall_ms:.0f} ms, "
                f"{stored} stored (stall while {stage}); CPU during the upload: app {phases['client_cpu']:.1f} s, "
                f"server {phases['server_cpu']:.1f} s")

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        qasync.run(all_runs(Path(tmp)))
    rate, curl_rate = median(app_rates), median(curl_rates)
    stall = max(stalls)
    what = (f"{len(files):,} photo-like 1632×1224 JPEGs at quality 90, mean {total_mb / len(files):.2f} MB "
            f"({min(sizes) / 1e6:.2f}-{max(sizes) / 1e6:.2f} MB), {total_mb:,.0f} MB in all")
    return [
        Result("import-throughput/rate", rate, "MB/s", f"curl --parallel --parallel-max {MAX_IN_FLIGHT} PUTting the same "
               "files to the same kind of server", curl_rate, runs,
               f"{goal_note(rate >= 0.95 * curl_rate, '>= 0.95x curl (issue 19)')}; app end to end: check, hash, thumbnails, "
               f"upload ({MAX_IN_FLIGHT} in flight), commit; {what}; files stored per run: {stored_counts}; "
               f"{len(files) / (total_mb / rate):.1f} files/s; the app's phases (median s): check and hash "
               f"{median([p['check'] for p in app_phases]):.2f}, upload {median([p['upload'] for p in app_phases]):.2f}, "
               f"commit {median([p['commit'] for p in app_phases]):.2f}; the upload phase alone against curl "
               f"(same run): {median(upload_ratios):.2f}x; {_floor_note(curl_seconds, curl_cpus, app_phases, len(files))}"),
        Result("import-throughput/stall", stall, "ms", "longest gap of the same GUI loop left idle while curl uploads "
               "the same files (the machine's own noise under that server load)", max(idle_stalls), runs,
               f"{goal_note(stall <= 50, '<= 50 ms')}; longest GUI event-loop gap during the import (worst run; "
               f"per run: {', '.join(f'{s:.0f} ms while {stage}' for s, stage in zip(stalls, stages))}), measured by a {STALL_TICK_MS} ms precise QTimer"),
    ]
