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
    if args.command == "serve":
        from training_studio.server.main import run_server

        return int(run_server(args) or 0)

    from training_studio.ui.app import run_gui

    return int(run_gui(args, environ=os.environ) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
