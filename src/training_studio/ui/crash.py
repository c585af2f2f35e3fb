"""The GUI's logs and its last line of defence against unexpected errors.

`configure_logging()` sends the app's log to a rotating file under platformdirs' user log dir
(`TRAINING_STUDIO_LOG_DIR` overrides it), and also to the console with `--verbose` when there is a
console (a windowed frozen app has none). Hard crashes (segfaults in Qt) are dumped to the same folder
by faulthandler. `CrashReporter` replaces `sys.excepthook` and `threading.excepthook`, and is the
asyncio loop's exception handler: an uncaught exception is logged with its traceback and shown in a
non-modal dialog that names the log file, instead of the app dying or failing silently. The dialog is
never run with `exec()` (the hook may fire inside a coroutine), and repeats of the same error while it
is open are counted in it rather than stacking new dialogs.
"""

from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import os
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton, QWidget

__all__ = [
    "LOG_FILE_NAME",
    "default_log_dir",
    "configure_logging",
    "CrashReporter",
    "CrashDialog",
    "MainThreadBridge",
    "report_fatal",
]

log = logging.getLogger("training_studio.ui.crash")

LOG_FILE_NAME = "training-studio.log"
FAULT_FILE_NAME = "faults.log"
MAX_LOG_BYTES = 2 * 1024 * 1024
LOG_BACKUPS = 5
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_fault_file: IO[str] | None = None  # kept open for faulthandler for the life of the process


def default_log_dir(environ: Mapping[str, str] = os.environ) -> Path:
    override = environ.get("TRAINING_STUDIO_LOG_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_log_dir("training-studio", appauthor=False))


def configure_logging(verbose: bool, log_dir: Path | None = None, *, max_bytes: int = MAX_LOG_BYTES,
                      backups: int = LOG_BACKUPS) -> Path | None:
    """Log to a rotating file in `log_dir` (and the console if `verbose`); returns the log file's path,
    or None when no file could be opened there (the app still runs, logging to the console if it can)."""
    directory = log_dir if log_dir is not None else default_log_dir()
    handlers: list[logging.Handler] = []
    log_file: Path | None = directory / LOG_FILE_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(
            log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"))
    except OSError as error:
        log_file = None
        if sys.stderr is not None:
            print(f"training-studio: cannot write the log in {directory}: {error}", file=sys.stderr)
    if verbose and sys.stderr is not None:  # a windowed frozen app has no stderr
        handlers.append(logging.StreamHandler(sys.stderr))
    if not handlers:
        handlers.append(logging.NullHandler())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers,
                        format=LOG_FORMAT, force=True)
    for noisy in ("httpx", "httpcore", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if log_file is not None:
        _enable_faulthandler(directory / FAULT_FILE_NAME)
    return log_file


def _enable_faulthandler(path: Path) -> None:
    global _fault_file
    try:
        if _fault_file is None or _fault_file.closed:
            _fault_file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (must outlive this call)
        faulthandler.enable(file=_fault_file, all_threads=True)
    except (OSError, ValueError, RuntimeError):
        pass  # no fault log is no reason not to start


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class CrashReporter:
    """Routes uncaught exceptions to the log and to a dialog; `install()` / `uninstall()`.

    `parent` gives the window to attach the dialog to (it may not exist yet, or any more).
    `on_error` (optional) also hears each error's one-line summary, e.g. for the status bar.
    """

    def __init__(self, log_file: Path | None, parent: Callable[[], Any] | None = None,
                 on_error: Callable[[str], None] | None = None, *, show_dialog: bool = True) -> None:
        self.log_file = log_file
        self._parent = parent or (lambda: None)
        self._on_error = on_error
        self.show_dialog = show_dialog
        self.dialog: CrashDialog | None = None
        self.errors_seen = 0
        self._previous_hook: Callable[..., Any] | None = None
        self._previous_thread_hook: Callable[..., Any] | None = None
        self._bridge: MainThreadBridge | None = None

    # installation ------------------------------------------------------------------------------
    def install(self, loop: Any | None = None) -> None:
        self._bridge = MainThreadBridge(self._report_now)
        self._previous_hook = sys.excepthook
        self._previous_thread_hook = threading.excepthook
        sys.excepthook = self.excepthook
        threading.excepthook = self.thread_excepthook
        if loop is not None:
            loop.set_exception_handler(self.asyncio_handler)

    def uninstall(self, loop: Any | None = None) -> None:
        if sys.excepthook == self.excepthook and self._previous_hook is not None:
            sys.excepthook = self._previous_hook
        if threading.excepthook == self.thread_excepthook and self._previous_thread_hook is not None:
            threading.excepthook = self._previous_thread_hook
        if loop is not None:
            loop.set_exception_handler(None)
        if self.dialog is not None:
            self.dialog.close()
            self.dialog = None

    def _forget_dialog(self, dialog: "CrashDialog") -> None:
        if self.dialog is dialog:
            self.dialog = None  # it deletes itself on close: never touch it again

    # hooks -------------------------------------------------------------------------------------
    def excepthook(self, kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt) and self._previous_hook is not None:
            self._previous_hook(kind, error, tb)
            return
        self.report((kind, error, tb))

    def thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        self.report((args.exc_type, args.exc_value, args.exc_traceback),
                    where=f"in thread {args.thread.name if args.thread else '?'}")

    def asyncio_handler(self, loop: Any, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if error is None:
            log.warning("asyncio: %s", context.get("message", context))
            return
        self.report((type(error), error, error.__traceback__), where=str(context.get("message") or ""))

    # reporting ---------------------------------------------------------------------------------
    def report(self, info: ExcInfo, where: str = "") -> None:
        """Log the error at once (any thread); show it from the GUI thread."""
        kind, error, tb = info
        details = "".join(traceback.format_exception(kind, error, tb))
        log.error("uncaught exception%s:\n%s", f" ({where})" if where else "", details)
        summary = f"{kind.__name__}: {error}" if str(error) else kind.__name__
        if self._bridge is not None and threading.current_thread() is not threading.main_thread():
            self._bridge.post(summary, details)
        else:
            self._report_now(summary, details)

    def _report_now(self, summary: str, details: str) -> None:
        self.errors_seen += 1
        if self._on_error is not None:
            try:
                self._on_error(summary)
            except Exception:  # the reporter must never raise from inside a hook
                log.exception("the error callback failed")
        if not self.show_dialog:
            return
        try:
            if QApplication.instance() is None:
                return
            if self.dialog is not None and self.dialog.isVisible():
                self.dialog.add_error(summary, details)
                return
            dialog = CrashDialog(summary, details, self.log_file, self._parent())
            dialog.finished.connect(lambda _result: self._forget_dialog(dialog))
            self.dialog = dialog
            dialog.show()  # non-modal and no nested loop: the hook may be inside a coroutine
        except Exception:
            log.exception("could not show the error dialog")


def report_fatal(error: BaseException, log_file: Path | None, *, show_dialog: bool | None = None) -> None:
    """The app cannot go on (start-up failed, or the event loop died): log it and say so in a dialog,
    because a windowed app has no console to print a traceback to. The dialog runs its own loop: only call
    this once the asyncio loop has ended. `show_dialog` None: not on the offscreen/minimal platforms, where
    nobody could close it (CI, smoke runs)."""
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    log.critical("Training Studio stopped because of an unexpected error:\n%s", details)
    if sys.stderr is not None:
        print(f"training-studio: stopped by an unexpected error: {type(error).__name__}: {error}"
              + (f" (details in {log_file})" if log_file is not None else ""), file=sys.stderr)
    if QApplication.instance() is None:
        return
    if show_dialog is None:
        show_dialog = QGuiApplication.platformName() not in ("offscreen", "minimal")
    if not show_dialog:
        return
    dialog = CrashDialog(f"{type(error).__name__}: {error}", details, log_file)
    dialog.setText("Training Studio stopped because of an unexpected error.")
    dialog.setWindowModality(Qt.WindowModality.ApplicationModal)
    dialog.exec()


class MainThreadBridge(QObject):
    """Carries an error from another thread to the GUI thread (a queued signal), where dialogs live."""

    posted = Signal(str, str)

    def __init__(self, receiver: Callable[[str, str], None]) -> None:
        super().__init__()
        self.posted.connect(receiver, Qt.ConnectionType.QueuedConnection)

    def post(self, summary: str, details: str) -> None:
        self.posted.emit(summary, details)


class CrashDialog(QMessageBox):
    """"Training Studio hit an unexpected error", the log path, the traceback under Show Details."""

    def __init__(self, summary: str, details: str, log_file: Path | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("crashDialog")
        self.setWindowTitle("Unexpected error — Training Studio")
        self.setIcon(QMessageBox.Icon.Critical)
        self.setWindowModality(Qt.WindowModality.NonModal)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.log_file = log_file
        self.summaries = [summary]
        self._details = [details]
        self.setText("Training Studio hit an unexpected error. It is still running, but the last action "
                     "may not have finished.")
        self._update_informative()
        self.setDetailedText(details)
        self.copy_button = self.addButton("&Copy details", QMessageBox.ButtonRole.ActionRole)
        self.copy_button.clicked.disconnect()  # an ActionRole button would close the box
        self.copy_button.clicked.connect(self.copy_details)
        self.open_folder_button: QPushButton | None = None
        if log_file is not None:
            self.open_folder_button = self.addButton("Open log &folder", QMessageBox.ButtonRole.ActionRole)
            self.open_folder_button.clicked.disconnect()
            self.open_folder_button.clicked.connect(self.open_log_folder)
        self.addButton(QMessageBox.StandardButton.Close)

    def _update_informative(self) -> None:
        where = (f"Details were written to the log:\n{self.log_file}" if self.log_file is not None
                 else "The log file could not be opened, so the details are only shown below.")
        extra = len(self.summaries) - 1
        more = f"\n\n{extra} more error(s) happened since this one opened." if extra else ""
        self.setInformativeText(f"{self.summaries[0]}\n\n{where}{more}")

    def add_error(self, summary: str, details: str) -> None:
        self.summaries.append(summary)
        self._details.append(details)
        self._update_informative()
        self.setDetailedText("\n\n".join(self._details[-5:]))

    def copy_details(self) -> None:
        QGuiApplication.clipboard().setText(f"{self.informativeText()}\n\n{self.detailedText()}")

    def open_log_folder(self) -> None:
        if self.log_file is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.log_file.parent)))
