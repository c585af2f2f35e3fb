"""Server-test fixtures: a server that stores jobs without running them, for deterministic job states."""

from __future__ import annotations

import pytest


@pytest.fixture
def pending_server(server_factory):
    """A real server started with --no-runner: jobs stay exactly where the test puts them."""
    return server_factory("pending", extra_args=["--no-runner", "--cancel-grace", "1"])
