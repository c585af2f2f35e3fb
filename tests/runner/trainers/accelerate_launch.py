"""Stand-in for `accelerate launch SCRIPT ARGS...` (the real one pulls in torch): like accelerate's
simple launcher it runs `python SCRIPT ARGS...` as a child process, waits, and when the child fails
raises subprocess.CalledProcessError, whose traceback is the last thing on stderr."""

from __future__ import annotations

import os
import subprocess
import sys


def launch_command(argv: list[str]) -> None:
    if not argv or argv[0] != "launch":
        sys.exit("usage: accelerate launch [--option=value ...] SCRIPT [ARGS...]")
    rest = argv[1:]
    while rest and rest[0].startswith("--"):
        rest = rest[1:]
    if not rest:
        sys.exit("accelerate launch: no training script given")
    print("The following values were not passed to `accelerate launch` and had defaults used instead:\n"
          "\t`--num_processes` was set to a value of `1`\n\t`--num_machines` was set to a value of `1`\n"
          "\t`--mixed_precision` was set to a value of `'no'`\n\t`--dynamo_backend` was set to a value of `'no'`\n"
          "To avoid this warning pass in values for each of the problematic parameters or run "
          "`accelerate config`.", file=sys.stderr, flush=True)
    simple_launcher([sys.executable, *rest])


def simple_launcher(cmd: list[str]) -> None:
    process = subprocess.Popen(cmd, env=dict(os.environ))
    process.wait()
    if process.returncode != 0:
        raise subprocess.CalledProcessError(returncode=process.returncode, cmd=cmd)


def main() -> None:
    launch_command(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
