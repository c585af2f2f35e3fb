"""One app per settings and data dir (issue 15): a second launch hands its arguments to the running app and
exits with status 0; the running app raises its window and opens the import window with the paths. Two
real processes, observed through the first one's log lines; plus the rendezvous itself in this process."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from training_studio.ui.single_instance import (
    absolute_paths,
    hand_over,
    instance_name,
    make_instance_server,
    wants_new_instance,
)
from tests.support.processes import stop_server_left_in

pytestmark = pytest.mark.skipif(sys.platform.startswith("win"),
                                reason="these tests use Unix sockets; on Windows the rendezvous is a named pipe")


def app_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TRAINING_STUDIO_LOG_DIR": str(tmp_path / "logs"),
           "TRAINING_STUDIO_CONFIG_DIR": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")}
    for name in ("TRAINING_STUDIO_TOKEN", "TRAINING_STUDIO_SERVER", "TRAINING_STUDIO_DATA_DIR",
                 "TRAINING_STUDIO_NEW_INSTANCE"):
        env.pop(name, None)
    return env


def png(path: Path, seed: int) -> Path:
    buffer = io.BytesIO()
    Image.effect_noise((16, 16), 20 + seed).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float = 90.0) -> str:
    """The first line of `log` containing `text`, waiting for it; fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace") if log.exists() else ""
        for line in content.splitlines():
            if text in line:
                return line
        assert process.poll() is None, f"the app exited ({process.returncode}) before logging {text!r}:\n{content}"
        time.sleep(0.1)
    raise AssertionError(f"no {text!r} in {log} after {timeout} s:\n{log.read_text(errors='replace')}")


def test_a_second_launch_hands_over_to_the_running_app_and_exits(tmp_path):
    data_dir = tmp_path / "data"
    env = app_env(tmp_path)
    first_picture = png(tmp_path / "first.png", 1)
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    png(pictures / "a.png", 2)
    log = tmp_path / "first.log"
    with open(log, "wb") as out:
        first = subprocess.Popen([sys.executable, "-m", "training_studio", "--data-dir", str(data_dir), "--verbose",
                                  str(first_picture)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_line(log, "single instance: listening on", first)
        # its own command line's file opens the import window once the first screen is up
        line = wait_for_line(log, "from command line", first)
        assert "handover: import window open with 1 path(s) from command line" in line and str(first_picture) in line

        # The second launch, from another folder with a relative path, hands over and exits with 0.
        second = subprocess.run([sys.executable, "-m", "training_studio", "--data-dir", str(data_dir), "pictures"],
                                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        assert "already running for this data folder" in second.stderr
        assert "Traceback" not in second.stderr
        raised = wait_for_line(log, "handover: another launch asked for the window; raised and activated", first)
        assert "active:" in raised
        opened = wait_for_line(log, "from another launch", first)
        assert f"handover: import window open with 1 path(s) from another launch: {pictures}" in opened
        assert first.poll() is None  # still the one app
    finally:
        first.terminate()
        first.wait(timeout=30)
        stop_server_left_in(data_dir)


# the rendezvous in this process ----------------------------------------------------------------------------
def test_instances_are_told_apart_by_settings_data_dir_and_server(tmp_path):
    env = {"TRAINING_STUDIO_CONFIG_DIR": str(tmp_path / "config")}
    name = instance_name(tmp_path / "data", None, env)
    assert name == instance_name(tmp_path / "data" / ".." / "data", None, env)  # the same folder
    assert name != instance_name(tmp_path / "other", None, env)
    assert name != instance_name(tmp_path / "data", None, {"TRAINING_STUDIO_CONFIG_DIR": str(tmp_path / "c2")})
    assert name != instance_name(tmp_path / "data", "https://team.example", env)
    assert len(name.encode()) < 104  # a Unix socket path's limit


def test_who_opts_out_and_how_paths_are_read(tmp_path):
    assert wants_new_instance(SimpleNamespace(new_instance=True), {})
    assert wants_new_instance(SimpleNamespace(screenshot="x.png"), {})
    assert wants_new_instance(SimpleNamespace(), {"TRAINING_STUDIO_NEW_INSTANCE": "1"})
    assert not wants_new_instance(SimpleNamespace(new_instance=False, screenshot=None), {})
    assert not wants_new_instance(SimpleNamespace(), {"TRAINING_STUDIO_NEW_INSTANCE": "0"})
    assert absolute_paths(["a.png", "/x/b.png", "file:///tmp/c%20d.png", "file://elsewhere/e.png"], cwd="/home/u") \
        == ["/home/u/a.png", "/x/b.png", "/tmp/c d.png"]


def test_the_listener_replaces_a_stale_socket_and_answers_a_handover(qtbot, tmp_path):
    name = str(tmp_path / "ts.sock")
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(name)  # a crashed app's socket file: bound, never listening, never removed
    leftover.close()
    assert hand_over(name, ["/x.png"], timeout=2) is False  # nobody answers: this launch becomes the app

    server = make_instance_server(name)
    assert server.listen()
    received: list[list[str]] = []
    server.handover.connect(received.append)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(hand_over, name, ["/x.png", "/folder"], 10)
        qtbot.waitUntil(future.done, timeout=15_000)
        assert future.result() is True
    qtbot.waitUntil(lambda: received == [["/x.png", "/folder"]], timeout=5_000)

    # garbage on the socket is dropped, and the listener keeps working
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as junk:
        junk.connect(name)
        junk.sendall(b"GET / HTTP/1.1\r\n\r\n")
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(hand_over, name, [], 10)
        qtbot.waitUntil(future.done, timeout=15_000)
        assert future.result() is True
    qtbot.waitUntil(lambda: received[-1:] == [[]], timeout=5_000)
    assert len(received) == 2
    server.close()
