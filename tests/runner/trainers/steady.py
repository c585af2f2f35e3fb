"""Test trainer: argv[1] steps, argv[2] seconds each, JSON-lines progress; exits on SIGTERM (default)."""

import json
import sys
import time

total = int(sys.argv[1]) if len(sys.argv) > 1 else 10
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
for step in range(1, total + 1):
    time.sleep(delay)
    print(json.dumps({"step": step, "total_steps": total, "loss": 1.0 / step}), flush=True)
print("done", file=sys.stderr, flush=True)
