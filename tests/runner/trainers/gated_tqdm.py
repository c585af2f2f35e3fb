"""Test trainer for restarts: a real tqdm bar redrawn at every step (stderr, '\r' updates) plus one plain
stdout line per step; after step argv[3] it waits for the file argv[4] to exist, then trains on to
argv[1] steps and writes lora.safetensors into the output folder argv[2]. Exits 0."""

import sys
import time
from pathlib import Path

from tqdm import tqdm

total, output_dir, pause_at, gate = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
bar = tqdm(total=total, desc="steps", mininterval=0, miniters=1)
for step in range(1, total + 1):
    bar.set_postfix({"loss": round(1.0 / step, 6)})
    bar.update(1)
    print(f"trained step {step}", flush=True)
    if step == pause_at:
        print("waiting for the gate", flush=True)
        deadline = time.monotonic() + 120
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
bar.close()
(output_dir / "lora.safetensors").write_bytes(b"L" * 4321)
print("saved model to lora.safetensors", flush=True)
