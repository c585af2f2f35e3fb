"""Test trainer for the Logs view: every `interval` seconds it writes a numbered log line coloured with ANSI
codes, a tqdm-style bar redrawn with carriage returns, and a JSON progress line, until the test creates
<control_dir>/<gate> (then it exits 0; after 120 s it gives up the same way)."""

import json
import sys
import time
from pathlib import Path

control_dir, gate, interval = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + 120
step = 0
while not (control_dir / gate).exists() and time.monotonic() < deadline:
    step += 1
    print(f"\x1b[32mINFO\x1b[0m line {step:05d} epoch {step % 7} \x1b[1;31mwarning-red\x1b[0m "
          f"\x1b]0;title {step}\x07done", flush=True)
    for percent in (10, 50, 100):
        sys.stdout.write(f"\rbar {step}: {percent:3d}%|{'#' * (percent // 10):<10}|")
        sys.stdout.flush()
    sys.stdout.write("\n")
    print(json.dumps({"step": step, "total_steps": 100000, "loss": 1.0 / step}), flush=True)
    time.sleep(interval)
