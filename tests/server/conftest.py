"""Server-test fixtures: a server that stores jobs without running them, for deterministic job states."""

from __future__ import annotations

import pytest


@pytest.fixture
def pending_server(server_factory):
    """A real server started with --no-runner: jobs stay exactly where the test puts them."""
    return server_factory("pending", extra_args=["--no-runner", "--cancel-grace", "1"])


UNEXPECTED_ERROR_MARKERS = ("unexpected error on", "Exception in ASGI application")


@pytest.fixture(autouse=True)
def no_unexpected_server_errors(tmp_path):
    """Every server test also checks that no request hit the catch-all 500 handler."""
    yield
    for log in tmp_path.glob("*/logs/server.log*"):
        text = log.read_text(errors="replace")
        for marker in UNEXPECTED_ERROR_MARKERS:
            assert marker not in text, f"{log}: a request failed unexpectedly:\n{text[-3000:]}"
