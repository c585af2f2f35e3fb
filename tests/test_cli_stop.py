"""`training-studio stop`: the command-line way to stop the local server the window leaves running (Quit
does not stop it), as Server › Stop local server does. A real server process, stopped by a real CLI run."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.processes import pid_alive


def test_stop_ends_the_data_dirs_server_and_says_so(server_factory):
    server = server_factory("data")
    pid = int(json.loads((server.data_dir / "server.json").read_text())["pid"])
    assert pid_alive(pid)
    result = subprocess.run([sys.executable, "-m", "training_studio", "stop", "--data-dir", str(server.data_dir)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Stopped the local server of {server.data_dir} (pid {pid}).")
    assert "keep running" in result.stdout
    assert not pid_alive(pid)

    again = subprocess.run([sys.executable, "-m", "training_studio", "--data-dir", str(server.data_dir), "stop"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"No local server is running for {server.data_dir}."
