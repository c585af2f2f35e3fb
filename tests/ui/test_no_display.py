"""Starting the window with no display: one line saying what to do and exit status 2, before Qt can abort
(status 134) blaming a missing xcb-cursor library. Real processes, with DISPLAY, WAYLAND_DISPLAY and
QT_QPA_PLATFORM removed from their environment, or DISPLAY naming a display no X server answers on; the
display check itself against real listening sockets (no X server: a socket that accepts is what it asks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from training_studio.cli import NO_DISPLAY_EXIT, no_display_problem, x_display_answers

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
    assert no_display_problem({"DISPLAY": ":0"}, "linux", lambda display: True) is None  # one that answers
    assert no_display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert no_display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert no_display_problem({"DISPLAY": ""}, "freebsd14") is not None
    assert no_display_problem({}, "darwin") is None and no_display_problem({}, "win32") is None


def _unused_display_number() -> int:
    """A display number nothing listens for: its abstract socket and its TCP port can both be bound here."""
    for number in range(90, 400):
        try:
            with socket.socket(socket.AF_UNIX) as unix, socket.socket(socket.AF_INET) as tcp:
                unix.bind(f"\0/tmp/.X11-unix/X{number}")
                tcp.bind(("127.0.0.1", 6000 + number))
        except OSError:
            continue
        if not os.path.exists(f"/tmp/.X11-unix/X{number}"):
            return number
    raise AssertionError("no unused display number between 90 and 399")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux's")
def test_a_display_nothing_answers_on_says_so_in_one_line_and_exits_2(tmp_path):
    number = _unused_display_number()
    env = {**headless_env(), "DISPLAY": f":{number}"}
    result = subprocess.run([sys.executable, "-m", "training_studio", "--data-dir", str(tmp_path / "data")],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == NO_DISPLAY_EXIT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"training-studio: the display :{number} (DISPLAY) does not answer")
    assert "graphical desktop" in lines[0] and "xcb" not in lines[0]
    assert not (tmp_path / "data").exists()  # nothing was started: not even the local server


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux's")
def test_a_display_answers_when_a_server_accepts_on_its_socket_or_port():
    number = _unused_display_number()
    assert not x_display_answers(f":{number}")
    assert not x_display_answers(f"127.0.0.1:{number}.0")
    with socket.socket(socket.AF_UNIX) as local:
        local.bind(f"\0/tmp/.X11-unix/X{number}")
        local.listen()
        assert x_display_answers(f":{number}") and x_display_answers(f"unix:{number}.0")
        assert not x_display_answers(f"127.0.0.1:{number}")  # a remote display is asked over TCP only
        assert no_display_problem({"DISPLAY": f":{number}"}, "linux") is None
    with socket.socket(socket.AF_INET) as remote:
        remote.bind(("127.0.0.1", 6000 + number))
        remote.listen()
        assert x_display_answers(f"127.0.0.1:{number}.0") and x_display_answers(f"tcp/127.0.0.1:{number}")
        assert x_display_answers(f":{number}")  # a local display falls back to TCP on this machine
    assert not x_display_answers(f":{number}")
    assert x_display_answers("not a display")  # left to Qt


def test_an_explicit_platform_or_wayland_is_trusted_and_xcb_is_checked():
    silent = lambda display: False  # noqa: E731  (the display check's answer, for the rules around it)
    assert no_display_problem({"DISPLAY": ":5"}, "linux", silent).startswith("the display :5 (DISPLAY)")
    assert no_display_problem({"DISPLAY": ":5", "QT_QPA_PLATFORM": "xcb"}, "linux", silent) is not None
    assert no_display_problem({"DISPLAY": ":5", "QT_QPA_PLATFORM": "offscreen"}, "linux", silent) is None
    assert no_display_problem({"DISPLAY": ":5", "WAYLAND_DISPLAY": "wayland-0"}, "linux", silent) is None
    assert no_display_problem({"DISPLAY": ":5"}, "linux", lambda display: True) is None
