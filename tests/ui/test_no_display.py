"""Starting the window with no display at all: one line saying what to do and exit status 2, before Qt can
abort (status 134) blaming a missing xcb-cursor library. A real process, with DISPLAY, WAYLAND_DISPLAY and
QT_QPA_PLATFORM removed from its environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from training_studio.cli import NO_DISPLAY_EXIT, no_display_problem

pytestmark = pytest.mark.skipif(sys.platform.startswith(("win", "darwin")),
                                reason="Windows and macOS always have a display for Qt")


def headless_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items()
            if key not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}


def test_no_display_says_what_to_do_in_one_line_and_exits_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "training_studio", "--data-dir", str(tmp_path / "data")],
                            env=headless_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == NO_DISPLAY_EXIT == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("training-studio: no display found")
    assert "graphical desktop" in line and "QT_QPA_PLATFORM=offscreen" in line and "--screenshot" in line
    assert "xcb" not in line
    assert not (tmp_path / "data").exists()  # nothing was started: not even the local server


def test_paths_and_other_options_do_not_change_the_answer(tmp_path):
    picture = tmp_path / "a.png"
    picture.write_bytes(b"not really")
    result = subprocess.run([sys.executable, "-m", "training_studio", "--data-dir", str(tmp_path / "data"),
                             "--new-instance", str(picture)],
                            env=headless_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no display found" in result.stderr


def test_the_server_and_presets_check_still_run_headless(tmp_path):
    result = subprocess.run([sys.executable, "-m", "training_studio", "presets", "check", "--data-dir",
                             str(tmp_path)], env=headless_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "no presets file" in result.stdout


def test_any_one_of_the_display_variables_is_enough():
    assert no_display_problem({}, "linux") is not None
    assert no_display_problem({"DISPLAY": ":0"}, "linux") is None
    assert no_display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert no_display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert no_display_problem({"DISPLAY": ""}, "freebsd14") is not None
    assert no_display_problem({}, "darwin") is None and no_display_problem({}, "win32") is None
