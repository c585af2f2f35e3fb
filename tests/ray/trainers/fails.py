"""Test trainer for the Ray executor: a little progress, then an uncaught exception (exit 1)."""

import json
import sys


def load_batch(step: int) -> None:
    if step == 3:
        raise ValueError(f"boom at step {step}")


for step in range(1, 6):
    print(json.dumps({"step": step, "total_steps": 5, "loss": 1.0 / step}), flush=True)
    print("some log line on stderr", file=sys.stderr, flush=True)
    load_batch(step)
