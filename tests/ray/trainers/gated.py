"""Test trainer for the Ray executor: argv[1] steps, JSON-lines progress ("trained step N" logged once per
step); from step argv[2] on, it waits until the file argv[3] exists, then finishes and writes
lora.safetensors in its working folder (the job's output folder)."""

import json
import os
import sys
import time

total, pause_at, gate = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for step in range(1, total + 1):
    while step >= pause_at and not os.path.exists(gate):
        time.sleep(0.05)
    print(f"trained step {step}", flush=True)
    print(json.dumps({"step": step, "total_steps": total, "loss": 1.0 / step}), flush=True)
with open("lora.safetensors", "wb") as handle:
    handle.write(b"w" * 4321)
print("saved model to lora.safetensors", flush=True)
