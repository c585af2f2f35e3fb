"""PyInstaller's entry script for the bundle: the frozen `training-studio` executable starts here.

It only hands over to `training_studio.cli.main`, which dispatches GUI / `serve` / `train` before
importing Qt, so the bundle's relaunches of itself as server and trainer stay light.
"""

import multiprocessing

from training_studio.cli import main

if __name__ == "__main__":
    # A no-op except on Windows, where a frozen app that uses multiprocessing must call it first.
    multiprocessing.freeze_support()
    raise SystemExit(main())
