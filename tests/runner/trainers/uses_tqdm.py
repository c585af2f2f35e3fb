"""Test trainer: a loop with the real tqdm package and its defaults (stderr, '\r' updates), with the
loss in the postfix under the key named by argv[2] (default "loss"). argv[1] = total steps."""

import sys
import time

from tqdm import tqdm

total = int(sys.argv[1]) if len(sys.argv) > 1 else 50
key = sys.argv[2] if len(sys.argv) > 2 else "loss"
delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
bar = tqdm(total=total, desc="steps")
for step in range(1, total + 1):
    if delay:
        time.sleep(delay)
    bar.set_postfix({key: 2.0 / (step + 1), "lr": 1e-4})
    bar.update(1)
bar.close()
print("saved model to lora.safetensors", flush=True)
