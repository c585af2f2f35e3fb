"""The single `training-studio` entry point: GUI, `serve` and `train` in one executable.

A frozen app can only relaunch itself, so the embedded server (`serve`) and the trainers (`train`)
are subcommands of the same program as the GUI. The subcommand is looked at before anything heavy is
imported: `serve` and `train` never import Qt, and the GUI path imports the server only if it has to.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _build_parser(args_list: Sequence[str] = ("serve",)) -> argparse.ArgumentParser:
    """The full parser; the `serve` options (from the server package) are added only when `serve` is
    on the command line, so that starting the GUI does not import the server's configuration module."""
    from training_studio import __version__

    parser = argparse.ArgumentParser(
        prog="training-studio",
        description="Watch AI training jobs live and build training datasets.",
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
    parser.add_argument("--tab", choices=["jobs", "datasets", "models"], default=None,
                        help="open on this tab (handy with --screenshot)")
    parser.add_argument("--verbose", action="store_true", help="log to the console")

    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the training server in the foreground")
    if "serve" in args_list:
        from training_studio.server.config import add_serve_arguments

        add_serve_arguments(serve)

    train = sub.add_parser("train", help="run a built-in trainer (started by the server)", add_help=True)
    train.add_argument("trainer_args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # `train` is dispatched before argparse so the trainer owns its own argument parsing.
    if args_list and args_list[0] == "train":
        from training_studio.trainers.__main__ import main as train_main

        return int(train_main(args_list[1:]) or 0)

    parser = _build_parser(args_list)
    args = parser.parse_args(args_list)
    if args.command == "serve":
        from training_studio.server.main import run_server

        return int(run_server(args) or 0)

    from training_studio.ui.app import run_gui

    return int(run_gui(args, environ=os.environ) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
