"""Suite-wide setup: Qt runs offscreen, and a `server` fixture starts the real server subprocess."""

from __future__ import annotations

import os

# Before anything can create a QApplication: CI has no display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

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
