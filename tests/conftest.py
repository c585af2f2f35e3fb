"""Suite-wide setup: Qt runs offscreen, and a `server` fixture starts the real server subprocess."""

from __future__ import annotations

import os

# Before anything can create a QApplication: CI has no display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The app's settings and logs (and those of every app subprocess a test starts) go to a temp dir, never
# to the developer's own.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

_ISOLATED = tempfile.mkdtemp(prefix="training-studio-tests-")
atexit.register(shutil.rmtree, _ISOLATED, ignore_errors=True)
os.environ.setdefault("TRAINING_STUDIO_CONFIG_DIR", os.path.join(_ISOLATED, "config"))
os.environ.setdefault("TRAINING_STUDIO_LOG_DIR", os.path.join(_ISOLATED, "logs"))
# Every test server would otherwise set 8 MiB of disk aside (storage.RESERVE_BYTES); the full-disk delete
# test asks for the real size.
os.environ.setdefault("TRAINING_STUDIO_SPACE_RESERVE_BYTES", str(64 * 1024))

import faulthandler  # noqa: E402

import pytest

from tests.support.faulty_server import FaultyServer
from tests.support.server import ServerProcess
from tests.support.trainers import end_wrappers_under


@pytest.fixture(autouse=True)
def no_trainer_outlives_its_test(tmp_path_factory):
    """Trainers outlive the server that started them (only cancel ends a run): whatever a test left
    running under this session's temp dirs is ended after it, so it cannot load the machine."""
    yield
    if os.path.isdir("/proc"):
        end_wrappers_under(tmp_path_factory.getbasetemp())


# pytest-timeout's signal method fails a test by raising in the main thread, which needs Python code to run
# there: a test stuck inside a C call (a Qt wait, a nested event loop with no Python timers) never sees it,
# and CI would hang until its own limit. This watchdog works in C, without the GIL: past the test's timeout
# plus this margin it prints every thread's stack and ends the run, so a hang fails in minutes and says where.
HANG_MARGIN_S = 90


def _real_stderr(config) -> int:
    """The terminal's stderr, not the file pytest captures the test's output into (os._exit loses that)."""
    capture = getattr(config.pluginmanager.getplugin("capturemanager"), "_global_capturing", None)
    saved = getattr(getattr(capture, "err", None), "targetfd_save", None)
    return saved if isinstance(saved, int) else 2


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    marker = item.get_closest_marker("timeout")
    limit = marker.args[0] if marker is not None and marker.args else item.config.getini("timeout")
    try:
        limit = float(limit or 0)
    except (TypeError, ValueError):
        limit = 0.0
    if limit > 0:
        faulthandler.dump_traceback_later(limit + HANG_MARGIN_S, exit=True, file=_real_stderr(item.config))
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def server_factory(tmp_path):
    """Start real servers on temp data dirs; all are stopped at the end of the test."""
    started: list[ServerProcess] = []

    def make(name: str = "data", **kwargs) -> ServerProcess:
        srv = ServerProcess(tmp_path / name, **kwargs)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        try:
            srv.stop(timeout=10)
        except Exception:
            srv.kill()


@pytest.fixture
def server(server_factory) -> ServerProcess:
    return server_factory(extra_args=["--cancel-grace", "1"])


@pytest.fixture
def faulty():
    """A misbehaving server on a real socket (tests/support/faulty_server.py), scripted by the test."""
    srv = FaultyServer().start()
    yield srv
    srv.stop()
