"""Test trainer: reports progress, then is killed by SIGKILL (as the OOM killer would)."""

import json
import os
import signal

for step in range(1, 3):
    print(json.dumps({"step": step, "total_steps": 10, "loss": 0.5}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
