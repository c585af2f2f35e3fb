"""Lets `python -m training_studio` behave exactly like the `training-studio` command."""

from training_studio.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
