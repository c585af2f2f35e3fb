"""Test trainer for queue control and GPU assignment: records when it started and the GPUs it was given
(CUDA_VISIBLE_DEVICES) by appending one line to the file argv[1], prints one progress line, then waits
until the file argv[2] exists (at most 120 s) and exits 0, or exits 3 when argv[3] is "fail"."""

import json
import os
import sys
import time
from pathlib import Path

record, gate = Path(sys.argv[1]), Path(sys.argv[2])
outcome = sys.argv[3] if len(sys.argv) > 3 else "succeed"
name = os.environ.get("TRAINING_STUDIO_JOB_ID", "?")
with record.open("a") as file:
    file.write(json.dumps({"job": name, "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")
print(json.dumps({"step": 1, "total_steps": 2, "loss": 0.5}), flush=True)
deadline = time.monotonic() + 120
while not gate.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
if outcome == "fail":
    print("RuntimeError: asked to fail", file=sys.stderr, flush=True)
    sys.exit(3)
print(json.dumps({"step": 2, "total_steps": 2, "loss": 0.25}), flush=True)
