"""Figure 7: resident memory of the GUI holding 10,000 jobs and a 10,000-thumbnail dataset grid.

This module owns the memory figure. A fresh process (`python -m benchmarks.bench_memory --probe N T DIR`)
builds the app's real widgets on the offscreen platform, on a qasync loop as the app runs: the `JobsPanel`
over a `JobStore` whose `JobListModel` holds N jobs (as a refresh would apply them), and the `DatasetViewer`
over a `DatasetStore` whose `DatasetFilesModel` holds N files. T of the files have their thumbnail as the
server sends it: a 128×96 JPEG that the server's own `render_thumbnail` made from one of 20 generated 2 MP
photos (`benchmarks/photos.py`; every file gets its own copy of the bytes, as each arrives in its own
response), handed to the store's cache (`DatasetStore.cache_thumbnail_data`, what `_load_thumbnail` does with
a server's answer). The grid is then scrolled page by page over those T rows, each page painted and its
thumbnails decoded by the store's real path (off the GUI thread), as a user scrolling through them would;
the process reports its VmRSS at the end. The stores are never started (no server is needed: the data goes
in through the same model and store calls a refresh and a thumbnail answer make). Two start-up steps of the
app are taken as the app takes them (ui/app.py): httpx is loaded without its command-line client, and the
source lines PySide6's import hook read are dropped once the widgets are built. Baseline: the resident
memory of a bare PySide6 QMainWindow process at its first paint (`benchmarks.gui_probe bare`).
- gui-rss: all N thumbnails received (the whole grid scrolled through);
- gui-rss-store-cache: 2,000 received, the figure's historical case (the store used to keep 2,000 decoded).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

if __name__ == "__main__":
    # The probe process loads httpx as the app does (ui/app.py `_run_gui`: without httpx's command-line
    # client, i.e. click, rich and pygments where installed: about 5 MiB here); benchmarks.common below
    # imports httpx, so this must come first.
    from training_studio.ui.app import _skip_httpx_command_line, _skip_pyside_source_scan

    _skip_httpx_command_line()
    _skip_pyside_source_scan()  # as the app does once its client stack is loaded

from benchmarks.common import Result, job_rows, log, median

THUMB_W, THUMB_H = 128, 96
SCROLLED = 2000  # thumbnails received in the store-cache case
PHOTOS = 20


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _thumbnail_files(target: Path) -> list[Path]:
    """128×96 JPEGs made by the server's own thumbnail code from the generated photo set."""
    from benchmarks.photos import ensure_photo_set
    from training_studio.server.images import inspect_image, render_thumbnail

    paths = []
    for index, photo in enumerate(ensure_photo_set(PHOTOS)):
        data, _media = render_thumbnail(photo, inspect_image(photo, 100_000_000), THUMB_W)
        path = target / f"thumb-{index:02d}.jpg"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _probe(count: int, thumbnails: int, thumbs_dir: str) -> dict:
    import qasync
    from PySide6.QtWidgets import QApplication, QHBoxLayout, QWidget

    from training_studio.client import ApiClient
    from training_studio.contract.models import DatasetFile, TrainingJob
    from training_studio.ui.datasets.files_model import FileRole
    from training_studio.ui.datasets.store import DatasetStore
    from training_studio.ui.datasets.viewer import DatasetViewer
    from training_studio.ui.jobs.panel import JobsPanel
    from training_studio.ui.jobs.store import JobStore

    app = QApplication.instance() or QApplication(sys.argv[:1])
    sources = [path.read_bytes() for path in sorted(Path(thumbs_dir).glob("thumb-*.jpg"))]

    async def run() -> dict:
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
        # What the app does once its window is built, before the first answer (ui/app.py _main): the
        # source lines PySide6's import hook read are dropped.
        from training_studio.ui.app import _drop_imported_sources

        _drop_imported_sources()
        await asyncio.sleep(0.05)  # the loop runs Qt's events (processEvents here would re-enter it)
        before = _rss_kib()

        jobs_store.model.apply_active_snapshot(
            [TrainingJob.model_validate(row) for row in job_rows(count, running=count // 10,
                                                                  statuses=("queued", "pending"))])
        jobs_store.jobs_changed.emit()
        files = [DatasetFile(sha256=f"{index:064x}", filename=f"photo-{index:05d}.jpg", size=1_000_000 + index,
                             width=1632, height=1224, caption=f"a photo of subject {index % 97}")
                 for index in range(count)]
        model = dataset_store.files_model
        model.set_files("dataset-1", files)
        for index, file in enumerate(files[:thumbnails]):
            # Its own copy, as each answer's body is its own bytes object.
            dataset_store.cache_thumbnail_data(file.sha256, bytes(bytearray(sources[index % len(sources)])))
        viewer.stack.setCurrentWidget(viewer.grid)
        window.show()
        grid = viewer.grid
        proxy = grid.model()
        decoded_seen: set[str] = set()

        async def settle_page() -> None:
            # Paint, then wait (bounded) until every painted row that has cached bytes shows its pixmap.
            for _ in range(400):
                grid.viewport().repaint()
                await asyncio.sleep(0.005)
                viewport = grid.viewport().rect()
                pending = 0
                # From the first painted row on (found by bisection: rows are laid out in order).
                low, high = 0, proxy.rowCount()
                while low < high:
                    middle = (low + high) // 2
                    if grid.visualRect(proxy.index(middle, 0)).bottom() < viewport.top():
                        low = middle + 1
                    else:
                        high = middle
                for row in range(low, proxy.rowCount()):
                    index = proxy.index(row, 0)
                    rect = grid.visualRect(index)
                    if rect.bottom() < viewport.top():
                        continue
                    if rect.top() > viewport.bottom():
                        break
                    sha = index.data(FileRole.SHA256)
                    if index.data(FileRole.THUMBNAIL) is not None:
                        decoded_seen.add(sha)
                    elif model.row_of(sha) is not None and model.row_of(sha) < thumbnails:
                        pending += 1
                if not pending:
                    return
            raise RuntimeError("the visible thumbnails were not decoded within 2 s")

        await settle_page()
        last = proxy.index(max(0, thumbnails - 1), 0)
        scroll = grid.verticalScrollBar()
        while grid.visualRect(last).bottom() > grid.viewport().rect().bottom() and scroll.value() < scroll.maximum():
            scroll.setValue(scroll.value() + max(1, scroll.pageStep()))
            await settle_page()
        window.repaint()
        await asyncio.sleep(0.05)
        held, held_bytes = dataset_store.thumbnail_data_size()
        report = {"rss_kib": _rss_kib(), "before_data_kib": before, "rows": jobs_store.model.rowCount(),
                  "files": model.rowCount(), "thumbnails": thumbnails, "compressed": held,
                  "compressed_bytes": held_bytes, "decoded_now": len(model._thumbnails),
                  "decoded_while_scrolling": len(decoded_seen)}
        dataset_store.shutdown()
        jobs_store.shutdown()
        return report

    return qasync.run(run())


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
    scrolled = min(count, SCROLLED)
    log(f"memory: {runs} fresh processes holding {count:,} jobs and {count:,} thumbnails, {runs} with {scrolled:,}, "
        f"and {runs} bare windows")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        thumbs = _thumbnail_files(Path(tmp))
        sizes = sorted(path.stat().st_size for path in thumbs)
        full = [_run_probe(["--probe", str(count), str(count), tmp], "benchmarks.bench_memory") for _ in range(runs)]
        lru = [_run_probe(["--probe", str(count), str(scrolled), tmp], "benchmarks.bench_memory")
               for _ in range(runs)]
    bare = [_run_probe(["bare"], "benchmarks.gui_probe") for _ in range(runs)]
    for report in full + lru:
        if report["rows"] != count or report["files"] != count:
            raise RuntimeError(f"the probe held {report['rows']} jobs and {report['files']} files, not {count}")
    base = median([r["rss_kib"] for r in bare]) / 1024
    empty = median([r["before_data_kib"] for r in full]) / 1024
    window = f"real JobsPanel + DatasetViewer in one 1400×800 window (the same widgets before the data: {empty:,.0f} MiB)"
    thumbs_note = (f"thumbnails are 128×96 JPEGs from the server's render_thumbnail ({sizes[0] / 1000:.1f}-"
                   f"{sizes[-1] / 1000:.1f} KB, median {sizes[len(sizes) // 2] / 1000:.1f} KB)")

    def held(reports: list[dict]) -> str:
        last = reports[-1]
        return (f"{last['compressed']:,} held compressed ({last['compressed_bytes'] / 2**20:.1f} MiB), "
                f"{last['decoded_now']} decoded at the end, {last['decoded_while_scrolling']:,} decoded while "
                "scrolling")

    return [
        Result("memory/gui-rss", median([r["rss_kib"] for r in full]) / 1024, "MiB",
               "bare PySide6 QMainWindow process at its first paint", base, runs,
               f"goal ≤ 250 MiB; {count:,} jobs and {count:,} files, every thumbnail received and the grid scrolled "
               f"through all of them: {held(full)}; {thumbs_note}; {window}"),
        Result("memory/gui-rss-store-cache", median([r["rss_kib"] for r in lru]) / 1024, "MiB",
               "bare PySide6 QMainWindow process at its first paint", base, runs,
               f"goal ≤ 150 MiB; {count:,} jobs and {count:,} files, the first {scrolled:,} thumbnails received and "
               f"scrolled through: {held(lru)}; {thumbs_note}; {window}"),
    ]


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "--probe":
        print(json.dumps(_probe(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])), flush=True)
    else:
        sys.exit("usage: python -m benchmarks.bench_memory --probe N THUMBNAILS THUMBNAIL_DIR")
