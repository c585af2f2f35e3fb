"""Test trainer: JSON-lines progress with other series besides the loss (issue 14).

argv[1] steps, argv[2] a file where each printed progress line is also written (one JSON line each), argv[3]
seconds per step. Each step reports `lr`, `grad_norm` and `epoch`; some steps add what a server must leave
out (a bad name, a bool, a string, NaN, a nested value) or too many series; step 4 is reported again
without any series, which must not wipe the ones already stored.
"""

import json
import sys
import time

total = int(sys.argv[1]) if len(sys.argv) > 1 else 20
record = open(sys.argv[2], "w") if len(sys.argv) > 2 else None
delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.01


def emit(payload: dict) -> None:
    line = json.dumps(payload)
    print(line, flush=True)
    if record is not None:
        record.write(line + "\n")
        record.flush()


for step in range(1, total + 1):
    time.sleep(delay)
    point = {"step": step, "total_steps": total, "loss": 1.0 / step, "lr": 1e-4 * 0.9 ** step,
             "grad_norm": step * 0.37, "epoch": step // 5}
    if step == 3:
        point.update({"bad name!": 1.0, "flag": True, "text": "0.5", "nan": float("nan"), "nested": {"a": 1}})
    if step == 6:
        point.update({f"k{index:02d}": index / 7 for index in range(20)})
    emit(point)
    if step == 4:
        emit({"step": 4, "total_steps": total})
print("done", file=sys.stderr, flush=True)
