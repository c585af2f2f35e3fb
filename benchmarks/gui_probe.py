"""A thin launcher that runs the real GUI (or a bare window) and reports when it first painted rows.

Used by the first-paint and memory figures as `python -m benchmarks.gui_probe MODE ...`. It adds nothing to
the app's start-up path: in `app` mode it imports no Qt itself; it wraps `training_studio.ui.app._main` (the
coroutine `run_gui` hands to qasync once it has created the QApplication, before the main window exists) so
that an application-wide event filter is installed on the app's own QApplication, then calls the real
`training_studio.cli.main` with the given arguments. Qt is therefore imported exactly when the app imports
it: a probe that imported PySide6 first would make PySide6's import hook read every later module's source,
a cost users do not pay. The filter watches for the jobs table (`objectName() == "jobsTable"`) painting its
viewport while the model holds at least `--rows` rows; one zero-timer later (the paint has then finished and
been flushed) it prints one JSON line with CLOCK_MONOTONIC times (the same clock in every process on Linux,
so the parent can subtract its own start time), and closes the window so the app shuts down normally. An
httpx response hook on the app's one HTTP client records when each `GET /api/training/jobs` answer arrived
("data arrival").

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

# Qt objects the probe creates must outlive the function that made them.
_KEEP_ALIVE: list[Any] = []


def _report(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _install_probe(app: Any, mode: str, rows_wanted: int) -> None:
    """The application-wide event filter; called once the QApplication exists (Qt is loaded by then)."""
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QMainWindow

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
    _KEEP_ALIVE.append(probe)


def _run_bare() -> int:
    from PySide6.QtWidgets import QApplication, QMainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    _install_probe(app, "bare", 0)
    window = QMainWindow()
    window.setWindowTitle("bare")
    window.resize(1000, 640)
    window.show()
    app.exec()
    return 0


def _run_app(args: list[str], rows_wanted: int) -> int:
    # ui.app imports nothing heavy at module level (cli.main would import it a moment later anyway);
    # its `_main` is looked up at call time, so wrapping the module attribute is enough.
    import training_studio.ui.app as gui_app

    real_main = gui_app._main  # noqa: SLF001 (the probe's one hook into the app)

    async def probed_main(app: Any, *rest: Any, **options: Any) -> Any:
        _install_probe(app, "app", rows_wanted)
        return await real_main(app, *rest, **options)

    gui_app._main = probed_main  # noqa: SLF001
    from training_studio.cli import main as cli_main

    return int(cli_main(args) or 0)


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else "bare"
    rows_wanted = 0
    if "--rows" in argv:
        at = argv.index("--rows")
        rows_wanted = int(argv[at + 1])
        del argv[at:at + 2]
    if mode == "bare":
        return _run_bare()
    return _run_app(argv[1:], rows_wanted)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
