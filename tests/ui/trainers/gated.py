"""Test trainer: reports one step, then waits for the test to create <control_dir>/<gate>; ends with exit 0
("complete") or with an error line on stderr and exit 1 ("fail")."""

import json
import sys
import time
from pathlib import Path

control_dir, gate, outcome = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
print(json.dumps({"step": 1, "total_steps": 2, "loss": 0.5}), flush=True)
deadline = time.monotonic() + 60
while not (control_dir / gate).exists() and time.monotonic() < deadline:
    time.sleep(0.05)
if outcome == "fail":
    print("RuntimeError: CUDA out of memory while allocating 2.00 GiB", file=sys.stderr, flush=True)
    sys.exit(1)
print(json.dumps({"step": 2, "total_steps": 2, "loss": 0.25}), flush=True)
