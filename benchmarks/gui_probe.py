"""A thin launcher that runs the real GUI (or a bare window) and reports when it first painted rows.

Used by the first-paint and memory figures as `python -m benchmarks.gui_probe MODE ...`. It adds nothing to
the app: it creates the QApplication first (the app reuses an existing instance), installs an
application-wide event filter, then calls the real `training_studio.cli.main` with the given arguments.
The filter watches for the jobs table (`objectName() == "jobsTable"`) painting its viewport while the model
holds at least `--rows` rows; one zero-timer later (the paint has then finished and been flushed) it prints
one JSON line with CLOCK_MONOTONIC times (the same clock in every process on Linux, so the parent can
subtract its own start time), and closes the window so the app shuts down normally. An httpx response hook
on the app's one HTTP client records when each `GET /api/training/jobs` answer arrived ("data arrival").

Modes: `app ARGS...` (the real GUI), `bare` (a bare QMainWindow of the same size: the baseline).
The JSON line also carries the process's resident memory at that moment (the memory figure's baseline).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _report(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else "bare"
    rows_wanted = 0
    if "--rows" in argv:
        at = argv.index("--rows")
        rows_wanted = int(argv[at + 1])
        del argv[at:at + 2]

    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    state: dict[str, Any] = {"arrivals": [], "done": False, "shown": None}

    def finish(window: Any) -> None:
        if state["done"]:
            return
        state["done"] = True
        state["painted"] = time.monotonic()

        def after_paint() -> None:
            painted = time.monotonic()
            arrivals = [t for t in state["arrivals"] if t <= painted]
            _report({"painted": painted, "shown": state["shown"], "data_arrival": arrivals[-1] if arrivals else None,
                     "rss_kib": _rss_kib(), "pid": os.getpid()})
            window.close()

        QTimer.singleShot(0, after_paint)

    class Probe(QObject):
        def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 (Qt name)
            kind = event.type()
            if kind == QEvent.Type.Show and isinstance(watched, QMainWindow) and state["shown"] is None:
                state["shown"] = time.monotonic()
                store = getattr(watched, "store", None)
                if store is not None:
                    async def on_response(response: Any) -> None:
                        if response.request.url.path == "/api/training/jobs":
                            state["arrivals"].append(time.monotonic())

                    store.client.http.event_hooks["response"].append(on_response)
            elif kind == QEvent.Type.Paint and not state["done"]:
                if mode == "bare":
                    if isinstance(watched, QMainWindow):
                        finish(watched)
                else:
                    table = watched.parent()
                    if table is not None and table.objectName() == "jobsTable" and watched is table.viewport():
                        model = table.model()
                        if model is not None and model.rowCount() >= rows_wanted:
                            finish(table.window())
            return False

    probe = Probe()
    app.installEventFilter(probe)

    if mode == "bare":
        window = QMainWindow()
        window.setWindowTitle("bare")
        window.resize(1000, 640)
        window.show()
        app.exec()
        return 0
    from training_studio.cli import main as cli_main

    return int(cli_main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
