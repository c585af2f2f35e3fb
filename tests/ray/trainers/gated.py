"""Test trainer for the Ray executor: argv[1] steps, JSON-lines progress ("trained step N" logged once per
step, before that step's progress line); then pairs of (step, gate file): from that step on, it waits until
the gate file exists (`gated.py 12 6 gate` waits before step 6 for `gate`; `gated.py 12 6 a 10 b` also
before step 10 for `b`). At the end it writes lora.safetensors in its working folder (the job's output
folder)."""

import json
import os
import sys
import time

total = int(sys.argv[1])
gates = [(int(at), path) for at, path in zip(sys.argv[2::2], sys.argv[3::2])]
for step in range(1, total + 1):
    for at, path in gates:
        while step >= at and not os.path.exists(path):
            time.sleep(0.05)
    print(f"trained step {step}", flush=True)
    print(json.dumps({"step": step, "total_steps": total, "loss": 1.0 / step}), flush=True)
with open("lora.safetensors", "wb") as handle:
    handle.write(b"w" * 4321)
print("saved model to lora.safetensors", flush=True)
