"""Reliability-test setup: Hypothesis profiles (CI runs ~50 examples per property, selected by CI=true),
and the same "no request hit the catch-all 500 handler" check the server tests make."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Hostile input is slow to generate (big byte strings, many chunkings) and runs against a real server:
# keep CI to a bounded budget and leave the local default a little deeper.
settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("dev", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")

UNEXPECTED_ERROR_MARKERS = ("unexpected error on", "Exception in ASGI application")


@pytest.fixture(autouse=True)
def no_unexpected_server_errors(tmp_path):
    """Every reliability test also checks that no request reached the server's catch-all 500 handler."""
    yield
    # logs/server.log in each data dir, and the server's console output beside it (which survives a
    # data dir on a tmpfs that is unmounted at teardown).
    for log in [*tmp_path.glob("*/logs/server.log*"), *tmp_path.glob("*-server.log")]:
        text = log.read_text(errors="replace")
        for marker in UNEXPECTED_ERROR_MARKERS:
            assert marker not in text, f"{log}: a request failed unexpectedly:\n{text[-3000:]}"
