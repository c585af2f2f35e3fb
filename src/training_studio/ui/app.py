"""GUI bootstrap: `run_gui()` builds the QApplication, runs asyncio on it with qasync, and tears down.

It decides where to connect (`--server`/`--token` or TRAINING_STUDIO_SERVER/TRAINING_STUDIO_TOKEN for any
server implementing the contract; otherwise the embedded local server of the data dir), creates the app's
one `ApiClient` (one httpx.AsyncClient), the `JobStore` and the `MainWindow`, shows the window at once
(the store connects in the background), and on quit stops timers, cancels tasks and closes the client
before the loop ends, so nothing is left to warn at exit. The local server is not stopped: its jobs keep
running after the window closes. It also implements `--screenshot PATH --quit-after S`, and routes
uncaught exceptions to the log and the status bar instead of a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["run_gui", "GuiConfig", "resolve_config", "default_data_dir"]

log = logging.getLogger("training_studio.ui")


@dataclass(frozen=True)
class GuiConfig:
    server_url: str | None  # None: the embedded local server
    token: str | None
    data_dir: Path
    screenshot: Path | None
    quit_after: float | None
    verbose: bool


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("training-studio", appauthor=False))


def resolve_config(args: Any, environ: Mapping[str, str]) -> GuiConfig:
    server_url = getattr(args, "server", None) or environ.get("TRAINING_STUDIO_SERVER") or None
    token = getattr(args, "token", None) or environ.get("TRAINING_STUDIO_TOKEN") or None
    data_dir = getattr(args, "data_dir", None) or environ.get("TRAINING_STUDIO_DATA_DIR")
    screenshot = getattr(args, "screenshot", None)
    quit_after = getattr(args, "quit_after", None)
    return GuiConfig(
        server_url=server_url.rstrip("/") if server_url else None,
        token=token if server_url else None,  # a stray env token must not leak to the local server's client
        data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(),
        screenshot=Path(screenshot).expanduser() if screenshot else None,
        quit_after=float(quit_after) if quit_after is not None else None,
        verbose=bool(getattr(args, "verbose", False)),
    )


def _configure_logging(config: GuiConfig) -> None:
    handlers: list[logging.Handler] = []
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(config.data_dir / "gui.log", encoding="utf-8"))
    except OSError:
        pass
    if config.verbose and sys.stderr is not None:  # a windowed frozen app has no stderr
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=logging.DEBUG if config.verbose else logging.INFO, handlers=handlers or None,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def run_gui(args: Any, environ: Mapping[str, str] = os.environ) -> int:
    """Run the desktop app until its window closes; returns the process exit code."""
    config = resolve_config(args, environ)
    _configure_logging(config)

    # The client stack (httpx, pydantic, the contract) is imported before Qt on purpose: once PySide6 is
    # loaded, its import hook adds a cost to every later module import (about 100 ms here in total).
    import training_studio.client  # noqa: F401

    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Training Studio")
    from training_studio import __version__

    app.setApplicationVersion(__version__)
    app.setDesktopFileName("training-studio")
    # The window's own close drives the shutdown so cleanup can still await (see _main).
    app.setQuitOnLastWindowClosed(False)
    try:
        return int(qasync.run(_main(app, config)) or 0)
    except KeyboardInterrupt:
        return 130


async def _main(app: Any, config: GuiConfig) -> int:
    from PySide6.QtCore import QTimer

    from training_studio.client import ApiClient, LocalServerManager
    from training_studio.ui.jobs.store import JobStore
    from training_studio.ui.main_window import MainWindow

    quit_requested = asyncio.Event()
    exit_code = 0
    app.aboutToQuit.connect(quit_requested.set)

    client = ApiClient(config.server_url or "", config.token)
    store: JobStore | None = None
    window: MainWindow | None = None
    library: Any = None  # the Datasets and Models panels' stores (ui.datasets.wiring.LibraryPanels)
    previous_hook = sys.excepthook

    def excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        log.error("uncaught exception:\n%s", "".join(traceback.format_exception(kind, error, tb)))
        if window is not None:
            window.statusBar().showMessage(f"Unexpected error: {error} (details in the log)", 15000)

    sys.excepthook = excepthook
    try:
        local = None
        if config.server_url is None:
            local = LocalServerManager(config.data_dir, client.http, notify=lambda text: _notify(store, text))
        store = JobStore(client, local=local)
        window = MainWindow(store)
        from training_studio.ui.datasets.wiring import install_library_panels

        library = install_library_panels(window, client, store, data_dir=config.data_dir)
        window.closing.connect(quit_requested.set)
        window.show()
        store.start()

        if config.screenshot is not None:
            def take_screenshot() -> None:
                nonlocal exit_code
                assert window is not None and config.screenshot is not None
                pixmap = window.grab()
                try:
                    config.screenshot.parent.mkdir(parents=True, exist_ok=True)
                    saved = pixmap.save(str(config.screenshot), "PNG")
                except OSError:
                    saved = False
                if not saved:
                    log.error("could not write the screenshot to %s", config.screenshot)
                    if sys.stderr is not None:
                        print(f"training-studio: could not write the screenshot to {config.screenshot}",
                              file=sys.stderr)
                    exit_code = 1
                quit_requested.set()

            QTimer.singleShot(int((config.quit_after or 3.0) * 1000), take_screenshot)
        elif config.quit_after is not None:
            QTimer.singleShot(int(config.quit_after * 1000), quit_requested.set)

        await quit_requested.wait()
    finally:
        if store is not None:
            store.shutdown()
            await store.wait_idle()
        if library is not None:
            library.shutdown()
            await library.wait_idle()
        if window is not None:
            window.hide()
            window.deleteLater()
        await client.aclose()
        sys.excepthook = previous_hook
    return exit_code


def _notify(store: Any, text: str) -> None:
    if store is not None:
        store.server_message.emit(text)
