"""What the stand-ins for third-party trainers (kohya/, diffusers/, ai_toolkit/, accelerate_launch.py)
share. The stand-ins draw their bars with the real tqdm, in the order the real scripts do (read from
their source), so the server reads exactly what it would read from the real thing. Test-only knobs
come from the environment (a preset's `env` table), never from the real scripts' arguments:

- STAND_IN_RECORD=path: append `{"step": n, "loss": x}` for each loss the training bar displayed, as
  displayed (the postfix's rounding), so a test can compare /metrics with what was printed;
- STAND_IN_FAIL_AT_STEP=n: die of a CUDA out-of-memory error at step n, as torch reports it;
- STAND_IN_STEP_DELAY=s: seconds per training step (default 0.01);
- STAND_IN_PHASE_DELAY=s: seconds per item of the bars before training (default 0.002);
- STAND_IN_PID_FILE=path: write this process's pid and its data-loader workers' pids there (a relative
  path is inside the job's output folder).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

WORKER = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"  # like a busy worker: only SIGKILL or the parent's end stops it
    "parent = int(sys.argv[1])\n"
    "while os.getppid() == parent: time.sleep(0.05)\n"
)


class OutOfMemoryError(RuntimeError):
    """Stands for torch.OutOfMemoryError: the traceback names it `torch.OutOfMemoryError`."""


OutOfMemoryError.__module__ = "torch"

OOM_MESSAGE = ("CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 23.65 GiB of which "
               "3.06 MiB is free. Including non-PyTorch memory, this process has 23.63 GiB memory in use. Of the "
               "allocated memory 22.98 GiB is allocated by PyTorch, and 193.41 MiB is reserved by PyTorch but "
               "unallocated. If reserved but unallocated memory is large try setting "
               "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for "
               "Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")


def step_delay() -> float:
    return float(os.environ.get("STAND_IN_STEP_DELAY", "0.01"))


def phase_delay() -> float:
    return float(os.environ.get("STAND_IN_PHASE_DELAY", "0.002"))


def fail_at_step() -> int | None:
    value = os.environ.get("STAND_IN_FAIL_AT_STEP")
    return int(value) if value else None


def forward(step: int) -> None:
    """A training step's forward pass; out of memory at STAND_IN_FAIL_AT_STEP."""
    if fail_at_step() == step:
        _allocate(20 * 2**20)


def _allocate(size: int) -> None:
    raise OutOfMemoryError(OOM_MESSAGE)


def step_loss(step: int) -> float:
    return 0.12 + 0.08 * math.cos(step * 0.7) + 0.3 / (step + 1)


def record(step: int, loss_text: str) -> None:
    """Note the loss the training bar now displays for `step`, as displayed."""
    path = os.environ.get("STAND_IN_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, "loss": float(loss_text)}) + "\n")


def start_workers(count: int, output_dir: Path) -> list[subprocess.Popen]:
    """Data-loader workers (torch DataLoader num_workers): children of the trainer."""
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(os.getpid())]) for _ in range(count)]
    pid_file = os.environ.get("STAND_IN_PID_FILE")
    if pid_file:
        path = Path(output_dir) / pid_file
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"trainer": os.getpid(), "launcher": os.getppid(),
                                   "workers": [w.pid for w in workers]}))
        tmp.replace(path)
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.kill()
        worker.wait()


def write_png(path: Path, seed: int, size: int = 32) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (size, size), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    image.save(path)


def write_weights(path: Path, size: int = 2048) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(b"\0" * size)
    tmp.replace(path)


def count_images(folder: Path) -> int:
    return sum(1 for p in Path(folder).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"))


def pause(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)
