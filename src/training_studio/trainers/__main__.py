"""Command line of the trainers: `training-studio train builtin --dataset-dir D --output-dir O ...`.

The job runner starts trainers through this entry point (as `<the same executable> train ...`), so a
frozen app needs no Python interpreter. It owns argument parsing only; the training is in the trainer
modules. Exit codes: 0 success, 1 bad input (message on stderr), 2 bad usage, 128+N stopped by signal N.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="training-studio train", description="Run a built-in trainer.")
    sub = parser.add_subparsers(dest="trainer", required=True)
    builtin = sub.add_parser("builtin", help="the built-in linear VAE (numpy, no downloads)")
    builtin.add_argument("--dataset-dir", type=Path, required=True, help="folder of training images")
    builtin.add_argument("--output-dir", type=Path, required=True, help="where the checkpoint and samples go")
    builtin.add_argument("--total-steps", type=_positive_int, required=True)
    builtin.add_argument("--resolution", type=_positive_int, default=32)
    builtin.add_argument("--latent-dim", type=_positive_int, default=16)
    builtin.add_argument("--learning-rate", type=float, default=0.01)
    builtin.add_argument("--batch-size", type=_positive_int, default=32)
    builtin.add_argument("--seed", type=int, default=0)
    builtin.add_argument("--sample-every", type=_non_negative_int, default=0,
                         help="write samples/step-NNNNNN.png every N steps (0: never)")
    builtin.add_argument("--checkpoint-every", type=_non_negative_int, default=0,
                         help="write checkpoints/step-NNNNNN.npz every N steps (0: never)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.trainer == "builtin":
        # The model's matrices are small: BLAS thread pools only spin and, on a CPU shared with the GUI
        # and the server, make a run several times slower. Set before numpy is imported; overridable.
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(variable, "1")
        from training_studio.trainers.builtin import TrainConfig, run

        return run(TrainConfig(
            dataset_dir=args.dataset_dir,
            output_dir=args.output_dir,
            total_steps=args.total_steps,
            resolution=args.resolution,
            latent_dim=args.latent_dim,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            seed=args.seed,
            sample_every=args.sample_every,
            checkpoint_every=args.checkpoint_every,
        ))
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
