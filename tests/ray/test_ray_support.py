"""Where Ray does not run, the Ray tests skip saying why, but never in CI (issue 18): the decision itself, and
the real fixtures in a real pytest run on a Python where `ray` cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ray.ray_support import FAIL, RUN, SKIP, in_ci, this_platform, verdict

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "`import ray.job_submission` failed: ModuleNotFoundError: No module named 'ray'"


def test_ray_that_works_runs_whatever_the_environment():
    for environ in ({}, {"CI": "true"}, {"CI": ""}):
        assert verdict(environ, None).action == RUN


def test_ray_missing_outside_ci_skips_naming_the_platform_and_the_problem():
    found = verdict({"HOME": "/home/someone"}, PROBLEM)
    assert found.action == SKIP
    assert found.reason == f"Ray does not run on this platform ({this_platform()}): {PROBLEM}"


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE", "github"])
def test_ray_missing_in_ci_is_a_failure_never_a_skip(value):
    found = verdict({"CI": value}, PROBLEM)
    assert found.action == FAIL and found.reason.startswith(PROBLEM) and "CI is set" in found.reason


@pytest.mark.parametrize("value", ["", "0", "false", "False", "no", "off"])
def test_ci_set_to_off_counts_as_unset(value):
    assert not in_ci({"CI": value})
    assert verdict({"CI": value}, PROBLEM).action == SKIP


# A Ray test that needs the session's head, run in a pytest of its own on a Python where `import ray`
# fails (as on a platform without Ray's wheels): the fixtures decide before any head or server starts.
A_RAY_TEST = "tests/ray/test_ray_executor.py::test_a_tqdm_preset_runs_on_ray_through_the_same_parsers"
WITHOUT_RAY = "import sys; sys.modules['ray'] = None; import pytest; sys.exit(pytest.main(sys.argv[1:]))"


def run_without_ray(**env: str) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if key != "CI"}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", WITHOUT_RAY, "-q", "-rs", "-p", "no:cacheprovider", A_RAY_TEST],
                          cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)


def test_without_ray_a_ray_test_skips_with_the_reason_outside_ci_and_fails_in_ci():
    outside = run_without_ray()
    assert outside.returncode == 0, outside.stdout[-3000:]
    assert "1 skipped" in outside.stdout
    assert f"Ray does not run on this platform ({this_platform()}): `import ray.job_submission` failed" \
        in outside.stdout

    ci = run_without_ray(CI="true")
    assert ci.returncode == 1, ci.stdout[-3000:]
    assert "1 error" in ci.stdout and "skipped" not in ci.stdout
    assert "CI is set, and in CI Ray comes with the test extras" in ci.stdout
