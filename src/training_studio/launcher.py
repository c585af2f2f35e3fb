"""How this program starts another copy of itself (the server, a trainer), and the embedded server itself.

A frozen app (PyInstaller) has no Python interpreter to run `-m` with: `sys.executable` is the app
itself, so it relaunches itself with a subcommand. From a checkout or a wheel we run the same entry
point through the current interpreter. `spawn_local_server` is the one way the embedded server of a data dir
is started (by `client.local_server.LocalServerManager`, and early at a cold start by `ui.warm_start`).
Nothing here imports Qt or httpx: the warm start runs this before they are loaded.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TOKEN_ENV = "TRAINING_STUDIO_TOKEN"  # how a server is handed its token (never argv: visible in `ps`)


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def self_command(subcommand: str) -> list[str]:
    """argv prefix that runs `training-studio <subcommand>` with this very program."""
    if is_frozen():
        return [sys.executable, subcommand]
    return [sys.executable, "-m", "training_studio", subcommand]


def spawn_local_server(data_dir: Path, extra_args: Sequence[str] = ()) -> tuple[subprocess.Popen[bytes], str]:
    """Start `training-studio serve` on `data_dir` (loopback, an ephemeral port) and return at once with the
    process and the fresh token it was given. The token travels in the environment, never argv (visible in
    `ps`); output is appended to the data dir's server.log; the server gets its own session, so it outlives
    the window. The data dir must exist. OSError when the process cannot be started."""
    token = secrets.token_urlsafe(32)
    argv = self_command("serve") + ["--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", "0",
                                    *extra_args]
    env = {**os.environ, TOKEN_ENV: token, "PYTHONUNBUFFERED": "1"}
    with open(Path(data_dir) / "server.log", "ab") as log_file:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, close_fds=True)
    return proc, token
