"""Test trainer for the loss chart's log scale and zoom: every `interval` seconds it reports one step whose loss
runs through a fixed cycle with zero and negative values (LOSSES, step n gets LOSSES[(n - 1) % len]), as JSON
lines, until the test creates <control_dir>/<gate> (then it exits 0; after 120 s it gives up the same way)."""

import json
import sys
import time
from pathlib import Path

LOSSES = (4.0, 2.0, 1.0, 0.0, -0.5, 0.5, 0.25, 8.0)

control_dir, gate, interval = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + 120
step = 0
while not (control_dir / gate).exists() and time.monotonic() < deadline:
    step += 1
    print(json.dumps({"step": step, "total_steps": 100000, "loss": LOSSES[(step - 1) % len(LOSSES)]}), flush=True)
    time.sleep(interval)
