"""The benchmarks keep working: `python -m benchmarks --smoke` runs every figure once at a small size.

This checks the runner's contract, not speed: the command exits 0, every stdout line is one JSON object
with the required keys and a real measured value, and every benchmark name appears; and no benchmark
process wrote into the user's home (settings, logs, XDG folders): the run gets a home of its own that
must stay empty. The figures themselves are never asserted (speed belongs to the benchmarks, not to tests).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRED_KEYS = {"name", "value", "unit", "baseline", "baseline_value", "ratio", "runs", "notes"}


@pytest.mark.timeout(330)
def test_smoke_run_prints_every_figure_as_json(tmp_path):
    from benchmarks.__main__ import FIGURES

    user_home = tmp_path / "user-home"  # stands in for the user's: nothing may appear in it
    user_dirs = {"HOME": user_home, "XDG_CONFIG_HOME": user_home / ".config", "XDG_STATE_HOME": user_home / ".local/state",
                 "XDG_DATA_HOME": user_home / ".local/share", "XDG_CACHE_HOME": user_home / ".cache"}
    for folder in user_dirs.values():
        folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TRAINING_STUDIO_BENCH_CACHE": str(tmp_path / "cache"),
           "TMPDIR": str(tmp_path), **{name: str(folder) for name, folder in user_dirs.items()}}
    for name in ("TRAINING_STUDIO_SERVER", "TRAINING_STUDIO_TOKEN", "TRAINING_STUDIO_CONFIG_DIR",
                 "TRAINING_STUDIO_LOG_DIR", "TRAINING_STUDIO_BENCH_HOME"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, _why_it_failed(proc.stdout, proc.stderr)

    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, "no output on stdout"
    results = []
    for line in lines:
        item = json.loads(line)  # every line is one JSON object
        assert isinstance(item, dict)
        assert set(item) == REQUIRED_KEYS, line
        assert isinstance(item["value"], (int, float)) and math.isfinite(item["value"]) and item["value"] >= 0, line
        assert item["unit"] and item["baseline"], line
        assert isinstance(item["runs"], int) and item["runs"] >= 1, line
        if item["baseline_value"]:
            assert item["ratio"] == pytest.approx(item["value"] / item["baseline_value"], rel=1e-3, abs=1e-3), line
        results.append(item)

    names = [item["name"] for item in results]
    assert len(names) == len(set(names)), names
    for figure in FIGURES:
        assert any(name == figure or name.startswith(figure + "/") for name in names), f"{figure} missing: {names}"
    # The human-readable table goes to stderr, with every figure in it.
    for name in names:
        assert name in proc.stderr
    written = sorted(str(path.relative_to(user_home)) for path in user_home.rglob("*") if not path.is_dir())
    assert written == [], f"benchmarks wrote into the user's home: {written}"
    assert not list(tmp_path.glob("training-studio-bench-home-*"))  # the run's own folders were removed


def _why_it_failed(stdout: str, stderr: str) -> str:
    """The figures that failed (their JSON lines say why) and the children's tracebacks, which a tail of
    stderr would miss: the table and the notes come last."""
    failed = [line[:600] for line in stdout.splitlines() if '"failed: ' in line]
    tracebacks: list[str] = []
    lines = stderr.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            end = index + 1
            while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
                end += 1
            tracebacks.append("\n".join(lines[index:end + 1])[-3000:])
    progress = [line for line in lines if line.startswith("[bench]")]
    return "\n".join(["failed figures:", *failed, "tracebacks:", *tracebacks[:3], "progress:", *progress[-40:]])
