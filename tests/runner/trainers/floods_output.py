"""Test trainer: prints argv[1] progress lines (and one log line every 1000) as fast as it can."""

import json
import sys

total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
write = sys.stdout.write
for step in range(1, total + 1):
    write(json.dumps({"step": step, "total_steps": total, "loss": 1.0 / step}) + "\n")
    if step % 1000 == 0:
        write(f"checkpoint of the loop at {step}\n")
sys.stdout.flush()
