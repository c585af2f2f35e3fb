"""Test trainer: ignores SIGTERM (saying so, with the step it was at) and keeps "training" until it is killed."""

import json
import signal
import sys
import time

step = 0


def ignore(signum: int, frame: object) -> None:
    print(f"SIGTERM ignored at step {step}", file=sys.stderr, flush=True)


signal.signal(signal.SIGTERM, ignore)
while True:
    step += 1
    print(json.dumps({"step": step, "total_steps": 1000000, "loss": 1.0}), flush=True)
    if step == 1:
        print("ready: ignoring SIGTERM", file=sys.stderr, flush=True)
    time.sleep(0.05)
