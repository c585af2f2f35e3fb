"""Whether the Ray tests can run here (issue 18): "on a platform where Ray does not run, the tests skip with
that reason, but never in CI here".

Ray ships wheels for Linux x86_64 and aarch64, macOS arm64 and Windows x86_64 only (pyproject.toml's test
extras install it there and nowhere else). Elsewhere `import ray` fails, or a head cannot start: outside CI
the tests that need a head skip, saying why; in CI (`CI` set, as `.ci/run` is run with `CI=true`) Ray comes
with the test extras, so the same problem is a failure, never a skip that would hide it.
"""

from __future__ import annotations

import importlib
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

RUN, SKIP, FAIL = "run", "skip", "fail"
# `CI` set to one of these counts as unset (someone switching CI off by hand).
_CI_OFF = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Verdict:
    action: str  # RUN, SKIP or FAIL
    reason: str = ""


def in_ci(environ: Mapping[str, str]) -> bool:
    return environ.get("CI", "").strip().lower() not in _CI_OFF


def this_platform() -> str:
    return f"{sys.platform} {platform.machine() or 'unknown machine'}"


def verdict(environ: Mapping[str, str], problem: str | None) -> Verdict:
    """What the Ray tests do, given the environment and what stops Ray here (None: nothing does)."""
    if problem is None:
        return Verdict(RUN)
    if in_ci(environ):
        return Verdict(FAIL, f"{problem}; CI is set, and in CI Ray comes with the test extras: "
                             "a skip here would hide a broken install, so this is a failure")
    return Verdict(SKIP, f"Ray does not run on this platform ({this_platform()}): {problem}")


def import_problem() -> str | None:
    """Why Ray's Jobs API client cannot be imported here, or None when it can."""
    try:
        importlib.import_module("ray.job_submission")
    except Exception as exc:  # ImportError, or a wheel whose native parts do not load on this platform
        return f"`import ray.job_submission` failed: {type(exc).__name__}: {exc}"
    return None


def apply(found: Verdict) -> None:
    if found.action == SKIP:
        pytest.skip(found.reason)
    if found.action == FAIL:
        pytest.fail(found.reason, pytrace=False)


def require_ray(environ: Mapping[str, str]) -> None:
    """Skip (outside CI) or fail (in CI) the calling test or fixture when Ray cannot be imported."""
    apply(verdict(environ, import_problem()))


def start_head(head, environ: Mapping[str, str]) -> None:
    """Start `head` (a tests.ray.ray_head.RayHead); one that cannot start here skips outside CI, fails in it."""
    require_ray(environ)
    try:
        head.start()
    except Exception as exc:
        head.stop()
        found = verdict(environ, f"a local Ray head did not start: {type(exc).__name__}: "
                                 f"{str(exc).strip()[-1500:]}")
        if found.action == SKIP:
            pytest.skip(found.reason)
        raise  # in CI: the head's own error, with its log, is the failure
