"""GUI bootstrap: `run_gui()` builds the QApplication, runs asyncio on it with qasync, and tears down.

It decides where to connect (`--server`/`--token` or TRAINING_STUDIO_SERVER/TRAINING_STUDIO_TOKEN for any
server implementing the contract; otherwise the embedded local server of the data dir), creates the app's
one `ApiClient` (one httpx.AsyncClient), the `JobStore` and the `MainWindow`, shows the window at once
(the store connects in the background), and on quit stops timers, cancels tasks and closes the client
before the loop ends, so nothing is left to warn at exit. The local server is not stopped: its jobs keep
running after the window closes. It also implements `--screenshot PATH --quit-after S`. Logging (a
rotating file under the user log dir, the console with --verbose) and uncaught exceptions (logged and
shown in a dialog naming the log) are `ui.crash`'s; settings, tokens, notifications and the Settings,
Connect and About dialogs are plugged in by `ui.desktop.install_desktop`. Without --server or
--data-dir, the app goes back to the remote server it used last if that server's token is at hand.

Start-up is kept to what the first screen needs: when the local server is already running, its first
answers are fetched in the background from the very start (`ui.warm_start`) while Qt, httpx and pydantic
load; when none is running and the local server is sure to be used, it is started at the very start, so
that it loads while the GUI does, and asked the same way as soon as it is up; httpx's command-line extras
are not loaded; the Datasets and Models tabs are built when first shown, the dialogs when first opened,
the keyring when a token is first needed; and the window-wide import entry points come once the first
refresh has been painted.

One app runs per settings and data dir (`ui.single_instance`): a later launch hands its file and folder
arguments to it and exits, and the running app raises its window and opens the import window with them.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training_studio.ui.single_instance import absolute_paths, wants_new_instance  # stdlib only, no Qt

if TYPE_CHECKING:
    from training_studio.ui.warm_start import LocalPrefetch

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
    data_dir_explicit: bool = False
    tab: str | None = None  # --tab: the panel to open on ("jobs", "datasets", "models")  # --data-dir or TRAINING_STUDIO_DATA_DIR: use that local server
    paths: tuple[str, ...] = ()  # files and folders to import (absolute), from `training-studio PATH…`
    new_instance: bool = False  # never hand over to a running app, never listen for later launches


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
        data_dir_explicit=bool(data_dir),
        tab=getattr(args, "tab", None),
        paths=tuple(absolute_paths(getattr(args, "paths", None) or [])),
        new_instance=wants_new_instance(args, environ),
    )


def _configure_logging(config: GuiConfig) -> Path | None:
    """The rotating log file under the user log dir (+ the console with --verbose); its path or None."""
    from training_studio.ui.crash import configure_logging

    return configure_logging(config.verbose)


def run_gui(args: Any, environ: Mapping[str, str] = os.environ) -> int:
    """Run the desktop app until its window closes; returns the process exit code."""
    config = resolve_config(args, environ)
    if _handed_over(config, environ):
        return 0  # the running app raised its window and took the paths

    prefetch = _start_warm_start(config, environ)
    _hold_gc_for_start()
    try:
        return _run_gui(config, prefetch)
    finally:
        _release_gc_after_start()  # if the first screen never came


def _run_gui(config: GuiConfig, prefetch: LocalPrefetch | None) -> int:
    _skip_httpx_command_line()
    # The client stack (httpx, pydantic, the contract) is imported before Qt, while the warm start's
    # answers are on their way; PySide6's import hook is made cheap for every module imported after it.
    import training_studio.client  # noqa: F401

    _skip_pyside_source_scan()
    log_file = _configure_logging(config)  # ui.crash imports Qt, so this comes after the client stack

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
        log.info("Training Studio %s starting; log file: %s", __version__, log_file or "none")
        return int(qasync.run(_main(app, config, log_file, prefetch)) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # start-up or the loop itself failed: say so instead of vanishing
        from training_studio.ui.crash import report_fatal

        report_fatal(error, log_file)
        return 1


def _start_warm_start(config: GuiConfig, environ: Mapping[str, str] = os.environ) -> LocalPrefetch | None:
    """For the local server: ask an already running one for the first screen's data now, in the
    background, while the rest loads (`ui.warm_start`). With none running, and the local server sure to
    be used, start it now so that it loads while the GUI does (the store's manager adopts it), and ask
    it as soon as it is up. The prefetch (its `launched` server, if any), or None."""
    if config.server_url is not None:
        return None
    from training_studio.ui.warm_start import LocalPrefetch, launch_local_server, local_server_wanted

    prefetch = LocalPrefetch(config.data_dir)
    try:
        if prefetch.start():
            return prefetch
        if not local_server_wanted(config.data_dir_explicit, environ):
            return None  # maybe back to the last remote server: Qt's settings decide, later
        prefetch.launched = launch_local_server(config.data_dir)
    except Exception:  # an optimisation only: without it the app starts and asks the server itself
        log.warning("could not prefetch from (or start early) the local server", exc_info=True)
        return None
    try:
        prefetch.start_after_launch(prefetch.launched)
    except Exception:  # the server was started all the same: the manager must adopt it, not start another
        log.warning("could not prefetch from the local server started early", exc_info=True)
    return prefetch


_gc_held_for_start = False


def _hold_gc_for_start() -> None:
    """No automatic cyclic garbage collection until the first screen is up: loading pydantic, httpx, Qt and
    the window makes hundreds of thousands of objects that all outlive the start, so every collection on
    the way walks a growing heap to find almost nothing (about 8% of the start's CPU, measured with the
    first-paint benchmark). Only reference cycles wait; everything else is freed as always. A collector
    already disabled by someone else is left alone."""
    global _gc_held_for_start
    if gc.isenabled() and not _gc_held_for_start:
        gc.disable()
        _gc_held_for_start = True


def _release_gc_after_start() -> None:
    """End `_hold_gc_for_start`: the objects made so far (modules, classes, the window: there for the app's
    life) are moved out of the collector's way (`gc.freeze()`), so neither the first collection nor any
    later one walks them (a full collection of them here would be one more pause of tens of ms), then
    collections resume. The start's own garbage cycles (about a thousand objects) stay with them. Idempotent."""
    global _gc_held_for_start
    if _gc_held_for_start:
        _gc_held_for_start = False
        gc.freeze()
        gc.enable()


def _drop_imported_sources() -> None:
    """Empty Python's source-line cache: once the window is built, and again once the first screen is up
    (for the modules imported in between). Where `_skip_pyside_source_scan` could not stop it (another
    PySide6 version), PySide6's import hook reads the whole source of every module imported after PySide6
    and linecache keeps every line of it: about 120,000 lines, 8-9 MiB of the GUI's resident memory held
    for nothing (issue 19, benchmarks/bench_memory.py). A traceback printed later reads its few files
    again. About 2 ms, and next to nothing when the cache is empty."""
    import linecache

    linecache.clearcache()


def _skip_pyside_source_scan() -> None:
    """Load PySide6 and stop its import hook from reading the source of every module imported after it.

    For each new module the hook asks `shibokensupport.feature._mod_uses_pyside(module)`, which reads the
    module's whole source (inspect.getsource) to look for the word "PySide6", and linecache keeps every line.
    The answer only matters to modules that switch on PySide6's `__feature__`s (snake_case,
    true_property): a module answered "no" runs with the selection last used, and since no module of the
    app or its libraries selects any feature, that is the default selection, the same as "yes" gives. So
    the app answers "no" without reading: about 30 ms less to the first paint (benchmarks/bench_first_paint.py)
    and no source lines held for nothing. Versions without that private function are left as they are."""
    import PySide6  # noqa: F401  (installs the hook)

    feature = sys.modules.get("shibokensupport.feature")
    if feature is not None and callable(getattr(feature, "_mod_uses_pyside", None)):
        feature._mod_uses_pyside = _uses_no_pyside_features  # noqa: SLF001


def _uses_no_pyside_features(module: Any) -> bool:
    return False


def _skip_httpx_command_line() -> None:
    """Keep httpx from importing its command-line client (click, rich, pygments: about 120 ms) when those
    happen to be installed: `import httpx` loads it only to offer `httpx.main`, which the app never uses.
    A None entry in sys.modules makes that import fail, and httpx then falls back to a stub."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


async def _main(app: Any, config: GuiConfig, log_file: Path | None = None,
                prefetch: LocalPrefetch | None = None) -> int:
    # Not at the top: this module is imported before the warm start begins, which asyncio's import
    # (tens of ms) would only delay; the client stack loads it a moment later anyway.
    import asyncio

    from PySide6.QtCore import QTimer

    from training_studio.client import ApiClient, LocalServerManager
    from training_studio.ui.connection import make_http_client, make_local_http_client
    from training_studio.ui.crash import CrashReporter
    from training_studio.ui.desktop import install_desktop, startup_request
    from training_studio.ui.jobs.store import JobStore
    from training_studio.ui.main_window import MainWindow
    from training_studio.ui.secrets import TokenStore
    from training_studio.ui.settings import AppSettings, set_shared_settings

    quit_requested = asyncio.Event()
    exit_code = 0
    app.aboutToQuit.connect(quit_requested.set)

    settings = AppSettings()
    set_shared_settings(settings)
    tokens = TokenStore()
    server_url, token = config.server_url, config.token
    ca_file: str | None = None
    if server_url is None:
        last = startup_request(settings, tokens, explicit_choice=config.data_dir_explicit)
        if last is not None:
            server_url, token, ca_file = last.url, last.token or None, last.ca_file
    local_http = None  # the local server's client, with the warm-start answers; closed here at quit
    if server_url is None:
        local_http = make_local_http_client(prefetch)
    elif prefetch is not None:
        prefetch.discard()  # going back to the last remote server instead
        if prefetch.launched is not None:  # not expected: local_server_wanted() said local
            log.warning("a local server was started early (pid %d) but the app went back to %s; it keeps "
                        "running like any local server", prefetch.launched.proc.pid, server_url)
    client = ApiClient(server_url or "", token, http=local_http)
    if server_url is not None and server_url.startswith("https://"):
        profile = settings.profile_for(server_url)
        ca_file = ca_file if ca_file is not None else (profile.ca_file if profile else "")
        try:  # the system's certificates, or only the CA file chosen for this server
            await client.replace_http(make_http_client(ca_file)).aclose()
        except ValueError as error:
            log.warning("keeping the default certificate check for %s: %s", server_url, error)
            ca_file = None
    store: JobStore | None = None
    window: MainWindow | None = None
    library: Any = None  # the Datasets and Models panels' stores (ui.datasets.wiring.LibraryPanels)
    desktop: Any = None  # ui.desktop.DesktopIntegration
    history: Any = None  # the History tab's store, once built (ui.history.wiring.HistoryTab)
    system: Any = None  # the machine summary's store (ui.system.store.SystemStore)
    instance: Any = None  # ui.single_instance's listener for later launches
    reporter = CrashReporter(
        log_file, parent=lambda: window,
        on_error=lambda summary: window.statusBar().showMessage(
            f"Unexpected error: {summary} (details in the log)", 15000) if window is not None else None)
    loop = asyncio.get_running_loop()
    reporter.install(loop)
    try:
        local = None
        if server_url is None:
            local = LocalServerManager(config.data_dir, client.http, notify=lambda text: _notify(store, text))
            if prefetch is not None and prefetch.launched is not None:
                local.adopt(prefetch.launched.proc, prefetch.launched.token)  # started at the very start
        store = JobStore(client, local=local)
        theme = _install_theme(app, settings, environ_theme=os.environ.get("TRAINING_STUDIO_THEME"))
        window = MainWindow(store)
        _install_theme_menu(window, theme)
        from training_studio.ui.datasets.wiring import install_library_panels

        # The Datasets and Models tabs are built when first shown; the window-wide import entry points
        # (drops, unfinished uploads) come once the first screen is up: start-up pays for the Jobs tab only.
        library = install_library_panels(window, client, store, data_dir=config.data_dir, lazy=True,
                                         defer_entry_points=True)
        from training_studio.ui.history.wiring import install_history_panel

        history = install_history_panel(window, client, store, settings=settings,
                              on_train_again=lambda job: _train_again(window, job),
                              on_save_template=lambda job: _save_as_template(window, job))
        from training_studio.ui.system.wiring import install_system_status

        system = install_system_status(window, client, store)
        desktop = install_desktop(window, store, client, settings=settings, tokens=tokens,
                                  data_dir=config.data_dir, log_file=log_file, ca_file=ca_file)
        window.closing.connect(quit_requested.set)
        instance = _listen_for_launches(config, window, library)
        # The start's modules are all imported by now: the first answer's rows reuse that memory.
        _drop_imported_sources()
        store.start()
        if config.tab is not None:
            window.show_panel(config.tab.capitalize())
        window.show()

        def after_first_screen() -> None:
            _drop_imported_sources()
            _release_gc_after_start()
            if prefetch is not None:
                prefetch.discard()  # an answer not used by now is of no use
            library.install_entry_points()
            if config.paths:
                _open_import(window, library, list(config.paths), "command line")

        _after_first_screen(store, after_first_screen)

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
        _release_gc_after_start()  # quitting before the first screen was up
        if instance is not None:
            instance.close()  # a launch from now on starts its own window
        if desktop is not None:
            desktop.save_state()  # also when quitting without a close (--quit-after, session end)
            desktop.shutdown()
            await desktop.wait_idle()
        if store is not None:
            store.shutdown()
            await store.wait_idle()
        if library is not None:
            library.shutdown()
            await library.wait_idle()
        for extra in (history, system):  # the History tab's and the machine summary's requests
            if extra is not None:
                extra.shutdown()
                await extra.wait_idle()
        if window is not None:
            window.hide()
            window.deleteLater()
        await client.aclose()
        if local_http is not None:
            await local_http.aclose()  # unless the app switched servers, which closed it already
        reporter.uninstall(loop)
        set_shared_settings(None)
    return exit_code


FIRST_SCREEN_SETTLE_MS = 200  # after the first answer: its rows have been painted by then
FIRST_SCREEN_FALLBACK_MS = 2000  # a server that takes long to start must not hold the rest back


def _after_first_screen(store: Any, work: Callable[[], None]) -> None:
    """Run `work` (start-up extras the first screen does not show) once the first refresh has been
    answered and painted, or after FIRST_SCREEN_FALLBACK_MS, whichever comes first; once."""
    from PySide6.QtCore import QTimer

    done = False

    def run() -> None:
        nonlocal done
        if done:
            return
        done = True
        for signal in (store.jobs_changed, store.refresh_failed):
            try:
                signal.disconnect(soon)
            except (RuntimeError, TypeError):
                pass
        work()

    def soon(*_args: Any) -> None:
        QTimer.singleShot(FIRST_SCREEN_SETTLE_MS, run)

    store.jobs_changed.connect(soon)
    store.refresh_failed.connect(soon)
    QTimer.singleShot(FIRST_SCREEN_FALLBACK_MS, run)


def _install_theme(app: Any, settings: Any, *, environ_theme: str | None = None) -> Any:
    """Light or dark from the start (View › Theme, remembered; TRAINING_STUDIO_THEME=light|dark|system
    overrides it for one run, e.g. for screenshots), following the desktop's scheme live."""
    from training_studio.ui.theme import ThemeChoice, ThemeController, install_indicator_outlines

    install_indicator_outlines(app)
    theme = ThemeController(app, settings, parent=app)
    if environ_theme:
        try:
            theme.choice = ThemeChoice(environ_theme.strip().lower())
        except ValueError:
            log.warning("ignoring TRAINING_STUDIO_THEME=%r (use system, light or dark)", environ_theme)
    theme.apply()
    return theme


def _install_theme_menu(window: Any, theme: Any) -> None:
    from training_studio.ui.theme import install_theme_menu

    install_theme_menu(window, theme)


def _handed_over(config: GuiConfig, environ: Mapping[str, str]) -> bool:
    """One app per settings and data dir (ui.single_instance): True when a running one took this launch."""
    if config.new_instance:
        return False
    from training_studio.ui.single_instance import hand_over, instance_name

    if not hand_over(instance_name(config.data_dir, config.server_url, environ), list(config.paths)):
        return False
    if sys.stderr is not None:
        print("training-studio: already running for this data folder; its window was brought to the front"
              + (" with the files to import." if config.paths else "."), file=sys.stderr)
    return True


def _listen_for_launches(config: GuiConfig, window: Any, library: Any) -> Any:
    """Listen for later launches with the same key; each raises the window and imports its paths."""
    if config.new_instance:
        return None
    from training_studio.ui.single_instance import instance_name, make_instance_server

    instance = make_instance_server(instance_name(config.data_dir, config.server_url, os.environ), window)
    instance.handover.connect(lambda paths: _on_handover(window, library, paths))
    instance.listen()
    return instance


def _on_handover(window: Any, library: Any, paths: list[str]) -> None:
    from PySide6.QtCore import Qt

    if window.windowState() & Qt.WindowState.WindowMinimized:
        window.setWindowState(window.windowState() & ~Qt.WindowState.WindowMinimized)
    window.show()
    window.raise_()
    window.activateWindow()
    log.info("handover: another launch asked for the window; raised and activated (active: %s)",
             window.isActiveWindow())
    if paths:
        _open_import(window, library, paths, "another launch")


def _open_import(window: Any, library: Any, paths: list[str], source: str) -> None:
    """Open the import window with `paths` (files and folders given on a command line)."""
    library.install_entry_points()  # at once if the first screen is not up yet
    entry = library.entry_points
    widget = entry.open_with(paths, []) if entry is not None else None
    log.info("handover: import window %s with %d path(s) from %s: %s",
             "open" if widget is not None and widget.isVisible() else "NOT open", len(paths), source,
             ", ".join(paths))


def _train_again(window: Any, job: Any) -> None:
    # Imported on first use: start-up does not load the Train dialog.
    from training_studio.ui.datasets.train_again import open_train_again

    open_train_again(window, job)


def _save_as_template(window: Any, job: Any) -> None:
    from training_studio.ui.datasets.train_again import save_job_as_template

    save_job_as_template(window, job)


def _notify(store: Any, text: str) -> None:
    if store is not None:
        store.connection_note.emit(text)
