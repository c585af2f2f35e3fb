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

import pytest

from tests.support.server import ServerProcess


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
