"""Logs and crashes: a rotating log file, --verbose to the console, and uncaught errors shown in a dialog
that names the log instead of the app dying or failing silently."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

from training_studio.ui.crash import LOG_FILE_NAME, CrashDialog, CrashReporter, configure_logging, default_log_dir


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_log_goes_to_a_rotating_file_in_the_log_dir(tmp_path, restore_logging, capsys):
    log_file = configure_logging(False, tmp_path / "logs", max_bytes=2000, backups=2)
    assert log_file == tmp_path / "logs" / LOG_FILE_NAME
    logger = logging.getLogger("training_studio.test")
    logger.info("first line")
    logger.debug("debug is not logged without --verbose")
    for n in range(100):
        logger.info("filler line %03d to make the file rotate ............................", n)
    files = sorted(p.name for p in (tmp_path / "logs").iterdir() if p.name.startswith(LOG_FILE_NAME))
    assert files == [LOG_FILE_NAME, f"{LOG_FILE_NAME}.1", f"{LOG_FILE_NAME}.2"]
    assert all((tmp_path / "logs" / name).stat().st_size <= 2000 for name in files)
    everything = "".join((tmp_path / "logs" / name).read_text() for name in files)
    assert "filler line 099" in everything and "debug is not logged" not in everything
    assert capsys.readouterr().err == ""  # not on the console without --verbose


def test_verbose_also_logs_debug_to_the_console(tmp_path, restore_logging, capsys):
    log_file = configure_logging(True, tmp_path)
    logging.getLogger("training_studio.test").debug("a debug detail")
    assert "a debug detail" in capsys.readouterr().err
    assert "a debug detail" in log_file.read_text()


def test_an_unusable_log_dir_is_reported_and_the_app_still_starts(tmp_path, restore_logging, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log folder should be")
    assert configure_logging(False, blocker / "logs") is None
    assert "cannot write the log in" in capsys.readouterr().err
    logging.getLogger("training_studio.test").error("still fine")


def test_the_log_dir_is_platformdirs_unless_overridden(tmp_path):
    import platformdirs

    assert default_log_dir({}) == __import__("pathlib").Path(
        platformdirs.user_log_dir("training-studio", appauthor=False))
    assert default_log_dir({"TRAINING_STUDIO_LOG_DIR": str(tmp_path)}) == tmp_path


def _raise_value_error() -> None:
    raise ValueError("the model index went missing")


def test_an_uncaught_error_in_a_slot_shows_a_dialog_with_the_log_path(qtbot, tmp_path, restore_logging):
    log_file = configure_logging(False, tmp_path)
    window = QMainWindow()
    qtbot.addWidget(window)
    window.show()
    seen: list[str] = []
    reporter = CrashReporter(log_file, parent=lambda: window, on_error=seen.append)
    reporter.install()
    try:
        QTimer.singleShot(0, _raise_value_error)
        qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible(), timeout=5000)
        dialog = reporter.dialog
        assert isinstance(dialog, CrashDialog)
        assert str(log_file) in dialog.informativeText()
        assert "ValueError: the model index went missing" in dialog.informativeText()
        assert "Traceback" in dialog.detailedText() and "_raise_value_error" in dialog.detailedText()
        assert seen == ["ValueError: the model index went missing"]
        assert window.isVisible()  # the app keeps running
        text = log_file.read_text()
        assert "uncaught exception" in text and "_raise_value_error" in text

        # A repeat while the dialog is open is counted in it, not stacked as another dialog.
        QTimer.singleShot(0, _raise_value_error)
        qtbot.waitUntil(lambda: reporter.errors_seen == 2, timeout=5000)
        assert reporter.dialog is dialog
        assert "1 more error(s)" in dialog.informativeText()
        assert len([w for w in QApplication.topLevelWidgets() if isinstance(w, CrashDialog) and w.isVisible()]) == 1
        dialog.copy_details()
        assert "the model index went missing" in QApplication.clipboard().text()
        dialog.close()
        qtbot.waitUntil(lambda: reporter.dialog is None, timeout=5000)

        # After the user closed it, the next error opens a new dialog.
        QTimer.singleShot(0, _raise_value_error)
        qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible(), timeout=5000)
        assert reporter.errors_seen == 3 and "more error" not in reporter.dialog.informativeText()
    finally:
        reporter.uninstall()
    assert sys.excepthook != reporter.excepthook


def test_errors_in_threads_and_asyncio_tasks_reach_the_dialog_from_the_gui_thread(qtbot, tmp_path, loop,
                                                                                   restore_logging):
    log_file = configure_logging(False, tmp_path)
    reporter = CrashReporter(log_file)
    reporter.install(loop)
    try:
        worker = threading.Thread(target=_raise_value_error, name="scanner")
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible(), timeout=5000)
        assert "ValueError" in reporter.dialog.informativeText()
        assert "in thread scanner" in log_file.read_text()

        async def fails() -> None:
            raise RuntimeError("a task nobody awaited")

        future = asyncio.ensure_future(fails())
        qtbot.waitUntil(future.done, timeout=5000)
        # The handler hears it when the failed task is collected without anyone reading its result.
        loop.call_exception_handler({"message": "Task exception was never retrieved",
                                     "exception": future.exception(), "future": future})
        qtbot.waitUntil(lambda: reporter.errors_seen == 2, timeout=5000)
        assert "RuntimeError: a task nobody awaited" in reporter.dialog.summaries[1]
        assert "Task exception was never retrieved" in log_file.read_text()
    finally:
        reporter.uninstall(loop)


def _isolated_env(tmp_path) -> dict[str, str]:
    import os

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TRAINING_STUDIO_LOG_DIR": str(tmp_path / "logs"),
           "TRAINING_STUDIO_CONFIG_DIR": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")}
    for name in ("TRAINING_STUDIO_TOKEN", "TRAINING_STUDIO_SERVER", "TRAINING_STUDIO_DATA_DIR"):
        env.pop(name, None)
    return env


def test_a_whole_run_logs_to_the_file_and_with_verbose_also_to_the_console(tmp_path):
    import subprocess

    from tests.support.processes import stop_server_left_in

    data_dir = tmp_path / "data"
    env = _isolated_env(tmp_path)
    command = [sys.executable, "-m", "training_studio", "--data-dir", str(data_dir), "--quit-after", "3"]
    try:
        quiet = subprocess.run(command, env=env, capture_output=True, timeout=90)
        assert quiet.returncode == 0, quiet.stderr.decode(errors="replace")
        log_file = tmp_path / "logs" / LOG_FILE_NAME
        assert "Training Studio" in log_file.read_text() and "starting" in log_file.read_text()
        assert b"INFO" not in quiet.stderr  # no console logging without --verbose

        loud = subprocess.run([*command, "--verbose"], env=env, capture_output=True, timeout=90)
        assert loud.returncode == 0, loud.stderr.decode(errors="replace")
        stderr = loud.stderr.decode(errors="replace")
        assert "DEBUG" in stderr or "INFO" in stderr
        assert str(log_file) in stderr  # the start-up line names the log file
        assert "Traceback" not in stderr
        assert (tmp_path / "config" / "settings.ini").exists()  # the layout was saved, in the isolated place
    finally:
        stop_server_left_in(data_dir)  # never a `return` here: it would swallow the assertion above


def test_a_fatal_error_is_logged_printed_and_shown_before_the_app_exits(qtbot, tmp_path, restore_logging, capsys):
    from training_studio.ui.crash import report_fatal

    log_file = configure_logging(False, tmp_path)
    try:
        raise RuntimeError("the main window could not be built")
    except RuntimeError as error:
        failure = error
    report_fatal(failure, log_file)  # offscreen: nobody could close a dialog, so none is shown
    assert "stopped by an unexpected error: RuntimeError: the main window could not be built" in \
        capsys.readouterr().err
    assert "Training Studio stopped because of an unexpected error" in log_file.read_text()

    seen: dict[str, str] = {}

    def close_it() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, CrashDialog)
        seen["text"], seen["info"] = dialog.text(), dialog.informativeText()
        dialog.done(0)

    QTimer.singleShot(0, close_it)
    report_fatal(failure, log_file, show_dialog=True)  # returns once the user closed the dialog
    assert seen["text"] == "Training Studio stopped because of an unexpected error."
    assert str(log_file) in seen["info"] and "could not be built" in seen["info"]
