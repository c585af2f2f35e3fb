"""The update-latency figure's stand-in trainer: one progress line per line the benchmark writes to a FIFO.

`python stepper_trainer.py FIFO TOTAL` prints `{"step": 1, ...}` at once, then for every line read from FIFO
(a step number) prints that step as a JSON progress line (flushed at once, as a real trainer's logger
would), and exits 0 on the line `end`. The benchmark times from its write to the FIFO (the moment it
releases a step) to the jobs model showing that step; everything in between is the app's normal path
(trainer wrapper, output file, runner, storage, event hub, stream or polling, store, model). The FIFO is
opened read-write so the trainer never sees end-of-file while the benchmark has no writer open; it gives
up after `IDLE_LIMIT_S` without a line (a benchmark that died must not leave it running). Standard library
only: it starts fast.
"""

import json
import os
import select
import sys

IDLE_LIMIT_S = 300

fifo, total = sys.argv[1], int(sys.argv[2])
print(json.dumps({"step": 1, "total_steps": total, "loss": 1.0}), flush=True)
fd = os.open(fifo, os.O_RDWR)
pending = b""
while True:
    ready, _, _ = select.select([fd], [], [], IDLE_LIMIT_S)
    if not ready:
        sys.exit("no step released for a long time: the benchmark is gone")
    pending += os.read(fd, 4096)
    *lines, pending = pending.split(b"\n")
    for line in lines:
        text = line.decode().strip()
        if text == "end":
            sys.exit(0)
        if text:
            step = int(text)
            print(json.dumps({"step": step, "total_steps": total, "loss": round(1.0 / step, 6)}), flush=True)
