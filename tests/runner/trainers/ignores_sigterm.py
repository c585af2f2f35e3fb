"""Test trainer: ignores SIGTERM and keeps "training" until it is killed."""

import json
import signal
import sys
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
step = 0
while True:
    step += 1
    print(json.dumps({"step": step, "total_steps": 1000000, "loss": 1.0}), flush=True)
    if step == 1:
        print("ready: ignoring SIGTERM", file=sys.stderr, flush=True)
    time.sleep(0.05)
