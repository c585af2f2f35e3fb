"""Figure 7: resident memory of the GUI holding 10,000 jobs and a 10,000-thumbnail dataset grid.

This module owns the memory figure. A fresh process (`python -m benchmarks.bench_memory --probe N`) builds
the app's real widgets on the offscreen platform: the `JobsPanel` over a `JobStore` whose `JobListModel`
holds N jobs (as a refresh would apply them), and the `DatasetViewer` over a `DatasetStore` whose
`DatasetFilesModel` holds N files with a decoded 128×96 thumbnail each (the grid's thumbnail size; real
thumbnails arrive from the server the same way, through `set_thumbnail`, and the store's own cache keeps
at most 2,000 of them, so holding all N is the worst case). Both are shown side by side in one 1400×800
window and painted, then the process reports its VmRSS. The stores are never started (no server is
needed: the data goes in through the same model calls a refresh makes). Baseline: the resident memory of
a bare PySide6 QMainWindow process at its first paint (`benchmarks.gui_probe bare`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks.common import Result, job_rows, log, median

THUMB_W, THUMB_H = 128, 96
CACHE_LIMIT = 2000  # DatasetStore's THUMBNAIL_CACHE_SIZE


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _probe(count: int, thumbnails: int) -> dict:
    from PySide6.QtGui import QColor, QImage, QPixmap
    from PySide6.QtWidgets import QApplication, QHBoxLayout, QWidget

    from training_studio.client import ApiClient
    from training_studio.contract.models import DatasetFile, TrainingJob
    from training_studio.ui.datasets.store import DatasetStore
    from training_studio.ui.datasets.viewer import DatasetViewer
    from training_studio.ui.jobs.panel import JobsPanel
    from training_studio.ui.jobs.store import JobStore

    app = QApplication.instance() or QApplication(sys.argv[:1])
    client = ApiClient("http://127.0.0.1:9", None)
    jobs_store = JobStore(client)
    dataset_store = DatasetStore(client)
    window = QWidget()
    layout = QHBoxLayout(window)
    jobs_panel = JobsPanel(jobs_store, window)
    viewer = DatasetViewer(dataset_store, window)
    layout.addWidget(jobs_panel)
    layout.addWidget(viewer)
    window.resize(1400, 800)
    app.processEvents()
    before = _rss_kib()

    jobs_store.model.apply_active_snapshot(
        [TrainingJob.model_validate(row) for row in job_rows(count, running=count // 10,
                                                              statuses=("queued", "pending"))])
    jobs_store.jobs_changed.emit()
    files = [DatasetFile(sha256=f"{index:064x}", filename=f"photo-{index:05d}.jpg", size=1_000_000 + index,
                         width=1632, height=1224, caption=f"a photo of subject {index % 97}") for index in range(count)]
    dataset_store.files_model.set_files("dataset-1", files)
    for index, file in enumerate(files[:thumbnails]):
        image = QImage(THUMB_W, THUMB_H, QImage.Format.Format_RGB32)
        image.fill(QColor.fromHsv(index % 360, 120 + index % 100, 200))  # a distinct, fully allocated image each
        dataset_store.files_model.set_thumbnail(file.sha256, QPixmap.fromImage(image))
    viewer.stack.setCurrentWidget(viewer.grid)
    window.show()
    for _ in range(3):
        app.processEvents()
    window.repaint()
    return {"rss_kib": _rss_kib(), "before_data_kib": before, "rows": jobs_store.model.rowCount(),
            "files": dataset_store.files_model.rowCount(), "thumbnails": thumbnails}


def _run_probe(args: list[str], module: str) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{module} reported nothing (exit {proc.returncode}): {proc.stderr[-1500:]}")
    return json.loads(lines[-1])


def run_memory(smoke: bool) -> list[Result]:
    count = 500 if smoke else 10_000
    runs = 1 if smoke else 3
    log(f"memory: {runs} fresh processes holding {count:,} jobs and {count:,} thumbnails, and {runs} bare windows")
    cached = min(count, CACHE_LIMIT)
    full = [_run_probe(["--probe", str(count)], "benchmarks.bench_memory") for _ in range(runs)]
    lru = [_run_probe(["--probe", str(count), str(cached)], "benchmarks.bench_memory") for _ in range(runs)]
    bare = [_run_probe(["bare"], "benchmarks.gui_probe") for _ in range(runs)]
    for report in full + lru:
        if report["rows"] != count or report["files"] != count:
            raise RuntimeError(f"the probe held {report['rows']} jobs and {report['files']} files, not {count}")
    base = median([r["rss_kib"] for r in bare]) / 1024
    empty = median([r["before_data_kib"] for r in full]) / 1024
    window = f"real JobsPanel + DatasetViewer in one 1400×800 window (the same widgets before the data: {empty:,.0f} MiB)"
    return [
        Result("memory/gui-rss", median([r["rss_kib"] for r in full]) / 1024, "MiB",
               "bare PySide6 QMainWindow process at its first paint", base, runs,
               f"no goal yet; {count:,} jobs and {count:,} decoded {THUMB_W}×{THUMB_H} thumbnails held "
               f"(≈{count * THUMB_W * THUMB_H * 4 / 1e6:,.0f} MB of pixels; the worst case); {window}"),
        Result("memory/gui-rss-store-cache", median([r["rss_kib"] for r in lru]) / 1024, "MiB",
               "bare PySide6 QMainWindow process at its first paint", base, runs,
               f"no goal yet; {count:,} jobs and {count:,} files of which {cached:,} have their thumbnail decoded "
               f"(what DatasetStore's LRU cache keeps at most); {window}"),
    ]


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--probe":
        wanted = int(sys.argv[2])
        print(json.dumps(_probe(wanted, int(sys.argv[3]) if len(sys.argv) > 3 else wanted)), flush=True)
    else:
        sys.exit("usage: python -m benchmarks.bench_memory --probe N [THUMBNAILS]")
