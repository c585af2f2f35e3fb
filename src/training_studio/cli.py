"""The single `training-studio` entry point: GUI, `serve` and `train` in one executable.

A frozen app can only relaunch itself, so the embedded server (`serve`) and the trainers (`train`)
are subcommands of the same program as the GUI. The subcommand is looked at before anything heavy is
imported: `serve` and `train` never import Qt, and the GUI path imports the server only if it has to.

The GUI takes files and folders as arguments (`training-studio PATH…`, the launcher's `%F`): they open the
import window. Before Qt is imported, a GUI start on a system with no display (no DISPLAY, no
WAYLAND_DISPLAY, no QT_QPA_PLATFORM, or a DISPLAY where no X server answers) says in one line what to do
and exits with status 2, instead of letting Qt abort with a misleading message about missing xcb libraries.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


SUBCOMMANDS = ("serve", "train", "presets", "stop")
# GUI options that take a value: the word after them is not a subcommand or a path.
_GUI_VALUE_OPTIONS = frozenset({"--server", "--token", "--data-dir", "--screenshot", "--quit-after", "--tab"})
NO_DISPLAY_EXIT = 2


def _subcommand_in(args_list: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option or its value)."""
    skip_value = False
    for word in args_list:
        if skip_value:
            skip_value = False
            continue
        if word == "--":
            return None
        if word.startswith("-"):
            skip_value = word in _GUI_VALUE_OPTIONS
            continue
        return word if word in SUBCOMMANDS else None
    return None


def _build_parser(args_list: Sequence[str] = ("serve",)) -> argparse.ArgumentParser:
    """The full parser; the `serve` options (from the server package) are added only when `serve` is
    on the command line, so that starting the GUI does not import the server's configuration module.
    Without a subcommand the GUI's parser takes files and folders as positional arguments instead (a
    positional list and subcommands cannot share one argparse parser)."""
    from training_studio import __version__

    gui = _subcommand_in(args_list) is None
    parser = argparse.ArgumentParser(
        prog="training-studio",
        description="Watch AI training jobs live and build training datasets.",
        epilog=("commands: serve (run the training server in the foreground), stop (stop the local server the "
                "app started; its running jobs keep running), presets check (say whether each command preset is "
                "usable), train (run a built-in trainer; started by the server). See `training-studio COMMAND "
                "--help`.") if gui else None,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # GUI options (used when no subcommand is given).
    parser.add_argument("--server", help="URL of a Training Studio server to connect to instead of the local one "
                        "(or TRAINING_STUDIO_SERVER)")
    parser.add_argument("--token", help="token for --server (or TRAINING_STUDIO_TOKEN)")
    parser.add_argument("--data-dir", help="data directory of the local server (or TRAINING_STUDIO_DATA_DIR)")
    parser.add_argument("--screenshot", metavar="PATH", help="render the main window to PATH (PNG) and exit")
    parser.add_argument("--quit-after", type=float, metavar="S", default=None,
                        help="quit after S seconds (with --screenshot: take it then)")
    parser.add_argument("--tab", choices=["jobs", "datasets", "models", "history"], default=None,
                        help="open on this tab (handy with --screenshot)")
    parser.add_argument("--verbose", action="store_true", help="log to the console")
    parser.add_argument("--new-instance", action="store_true",
                        help="start another window even if one is running for the same settings and data dir "
                             "(or TRAINING_STUDIO_NEW_INSTANCE=1); --screenshot and --quit-after imply it")
    if gui:
        parser.add_argument("paths", nargs="*", metavar="PATH",
                            help="files or folders to add to a new dataset (opens the import window; in the "
                                 "running window if there is one)")
        parser.set_defaults(command=None)
        return parser

    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the training server in the foreground")
    if "serve" in args_list:
        from training_studio.server.config import add_serve_arguments

        add_serve_arguments(serve)

    train = sub.add_parser("train", help="run a built-in trainer (started by the server)", add_help=True)
    train.add_argument("trainer_args", nargs=argparse.REMAINDER)

    stop = sub.add_parser("stop", help="stop the local server the app started for a data dir (the window's "
                          "Quit leaves it running); its running jobs keep running and the next server re-attaches "
                          "them")
    stop.add_argument("--data-dir", dest="stop_data_dir", metavar="D",
                      help="its data directory (default: the app's, or TRAINING_STUDIO_DATA_DIR)")

    presets = sub.add_parser("presets", help="command presets for third-party trainers (presets.toml)")
    presets_sub = presets.add_subparsers(dest="presets_command", required=True)
    check = presets_sub.add_parser("check", help="say, per preset, whether it is usable or what is wrong with it")
    check.add_argument("--data-dir", dest="presets_data_dir", metavar="D",
                       help="data directory holding presets.toml (default: the local server's, or "
                            "TRAINING_STUDIO_DATA_DIR)")
    return parser


def presets_check(data_dir: str | None) -> int:
    """`training-studio presets check`: one line per preset, OK or its exact problem; exit 1 if any."""
    from pathlib import Path

    from training_studio.runner.presets import check_presets, presets_path
    from training_studio.server.config import default_data_dir

    data_dir = data_dir or os.environ.get("TRAINING_STUDIO_DATA_DIR")
    folder = Path(data_dir).expanduser() if data_dir else default_data_dir()
    path = presets_path(folder)
    if not path.exists():
        print(f"{path}: no presets file (the server writes a commented example there on its first start)")
        return 0
    report = check_presets(folder)
    if report.file_error is not None:
        print(f"{path}: {report.file_error}")
        return 1
    if not report.presets:
        print(f"{path}: no presets defined (every [[preset]] is commented out)")
        return 0
    print(f"{path}:")
    for entry in report.presets:
        print(f"  {entry.label}: {'OK' if entry.error is None else entry.error}")
    return 1 if any(entry.error is not None for entry in report.presets) else 0


def stop_local_server(data_dir: str | None) -> int:
    """`training-studio stop`: SIGTERM the local server recorded in the data dir's server.json and wait for
    it to go (as Server › Stop local server does); 0 also when none runs, 1 when it cannot be stopped."""
    import asyncio
    from pathlib import Path

    from training_studio.client.local_server import LocalServerError, LocalServerManager, read_server_info
    from training_studio.server.config import default_data_dir

    data_dir = data_dir or os.environ.get("TRAINING_STUDIO_DATA_DIR")
    folder = Path(data_dir).expanduser() if data_dir else default_data_dir()
    manager = LocalServerManager(folder, None)  # type: ignore[arg-type]  # stopping sends no HTTP
    info = read_server_info(folder)
    if info is None or not manager._pid_alive(info.pid):
        print(f"No local server is running for {folder}.")
        return 0
    try:
        asyncio.run(manager.stop())
    except LocalServerError as error:
        print(f"training-studio: {error}", file=sys.stderr)
        return 1
    print(f"Stopped the local server of {folder} (pid {info.pid}). Jobs that were running keep running; "
          "the next server (the app's next start, or `training-studio serve`) re-attaches them.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # `train` is dispatched before argparse so the trainer owns its own argument parsing.
    if args_list and args_list[0] == "train":
        from training_studio.trainers.__main__ import main as train_main

        return int(train_main(args_list[1:]) or 0)
    if args_list and args_list[0] == "train-wrapper":  # the per-job process that supervises a trainer
        from training_studio.runner.trainer_wrapper import main as wrapper_main

        return int(wrapper_main(args_list[1:]) or 0)

    parser = _build_parser(args_list)
    args = parser.parse_args(args_list)
    if args.command == "presets":
        return presets_check(args.presets_data_dir or args.data_dir)
    if args.command == "stop":
        return stop_local_server(args.stop_data_dir or args.data_dir)
    if args.command == "serve":
        from training_studio.server.main import run_server

        return int(run_server(args) or 0)

    problem = no_display_problem(os.environ)
    if problem is not None:
        print(f"training-studio: {problem}", file=sys.stderr)
        return NO_DISPLAY_EXIT
    from training_studio.ui.app import run_gui

    return int(run_gui(args, environ=os.environ) or 0)


def no_display_problem(environ: Mapping[str, str], platform: str = sys.platform,
                       display_answers: Callable[[str], bool] | None = None) -> str | None:
    """One line saying what to do when the window cannot open for want of a display, else None.

    Only where Qt needs X11 or Wayland (Linux and the BSDs): with no DISPLAY, WAYLAND_DISPLAY or explicit
    QT_QPA_PLATFORM, or with a DISPLAY nothing answers on (an Xvfb that was stopped, an SSH session's
    forwarding gone), Qt would abort (status 134) blaming a missing xcb-cursor library."""
    if platform.startswith(("win", "cygwin", "darwin")):
        return None
    if environ.get("WAYLAND_DISPLAY") or environ.get("QT_QPA_PLATFORM", "").split(":")[0] not in ("", "xcb"):
        return None
    display = environ.get("DISPLAY")
    if not display:
        return "no display found (DISPLAY and WAYLAND_DISPLAY are not set), so the window cannot open. " + _WHAT_TO_DO
    if (display_answers or x_display_answers)(display):
        return None
    return f"the display {display} (DISPLAY) does not answer, so the window cannot open. " + _WHAT_TO_DO


_WHAT_TO_DO = ("Run it on a graphical desktop (or under Xvfb: xvfb-run training-studio); "
               "to render a screenshot without a display use QT_QPA_PLATFORM=offscreen training-studio "
               "--screenshot out.png. The server alone runs headless: training-studio serve.")
_X_DISPLAY = re.compile(r"^(?:(?P<protocol>unix|tcp)/)?(?P<host>[^:]*):(?P<number>\d+)(?:\.\d+)?$")
X_CONNECT_TIMEOUT_S = 2.0


def x_display_answers(display: str) -> bool:
    """Whether an X server accepts a connection at `display` ("[host]:N[.S]"), tried the ways Xlib and xcb
    do: a local display at its abstract and its file socket (then TCP on this machine), a remote one over
    TCP at port 6000+N. The connection is closed at once; no X request is sent. A DISPLAY of another form
    is left to Qt (True)."""
    import socket

    match = _X_DISPLAY.match(display.strip())
    if match is None:
        return True
    host, number, protocol = match["host"], int(match["number"]), match["protocol"]
    attempts: list[tuple[int, Any]] = []
    if host in ("", "unix") and protocol != "tcp":
        path = f"/tmp/.X11-unix/X{number}"
        if sys.platform.startswith("linux"):
            attempts.append((socket.AF_UNIX, "\0" + path))
        attempts.append((socket.AF_UNIX, path))
    if host != "unix" and protocol != "unix":
        attempts.append((socket.AF_INET, (host or "localhost", 6000 + number)))
    for family, address in attempts:
        try:
            if family == socket.AF_INET:
                with socket.create_connection(address, timeout=X_CONNECT_TIMEOUT_S):
                    return True
            with socket.socket(family, socket.SOCK_STREAM) as connection:
                connection.settimeout(X_CONNECT_TIMEOUT_S)
                connection.connect(address)
                return True
        except OSError:
            continue
    return False


if __name__ == "__main__":
    raise SystemExit(main())
