"""How this program starts another copy of itself (the server, a trainer).

A frozen app (PyInstaller) has no Python interpreter to run `-m` with: `sys.executable` is the app
itself, so it relaunches itself with a subcommand. From a checkout or a wheel we run the same entry
point through the current interpreter. Nothing here imports Qt.
"""

from __future__ import annotations

import sys


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def self_command(subcommand: str) -> list[str]:
    """argv prefix that runs `training-studio <subcommand>` with this very program."""
    if is_frozen():
        return [sys.executable, subcommand]
    return [sys.executable, "-m", "training_studio", subcommand]
