"""Runner speed: how fast the trainer supervisor reads progress, and how long the built-in trainer takes.

This module owns the runner figures (folded in from the runner engineer's script). `python -m benchmarks
--only runner-throughput` measures the supervisor (`TrainerProcess`, with its batched progress sink and
log file) reading a trainer that prints JSON progress lines as fast as it can, in lines per second, against
a plain asyncio subprocess that only reads the same output line by line and discards it (the pipe's
floor). Run as a script (`python benchmarks/bench_runner.py`) it also times the built-in trainer for 300
steps on 100 photo-like 96 px images, as before.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import Result, log, median  # noqa: E402
from training_studio.runner.supervisor import TrainerProcess  # noqa: E402

FLOOD = ROOT / "tests" / "runner" / "trainers" / "floods_output.py"


def _supervised(workdir: Path, lines: int) -> tuple[float, int]:
    received = 0

    def sink(points) -> None:
        nonlocal received
        received += len(points)

    async def run() -> float:
        process = TrainerProcess([sys.executable, str(FLOOD), str(lines)], log_path=workdir / "flood.log",
                                 on_progress=sink)
        started = time.perf_counter()
        await process.start()
        await process.wait()
        return time.perf_counter() - started

    return asyncio.run(run()), received


def _raw(lines: int) -> tuple[float, int]:
    async def run() -> tuple[float, int]:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(sys.executable, str(FLOOD), str(lines),
                                                    stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        count = 0
        while await proc.stdout.readline():
            count += 1
        await proc.wait()
        return time.perf_counter() - started, count

    return asyncio.run(run())


def run_runner_throughput(smoke: bool) -> list[Result]:
    lines = 5_000 if smoke else 200_000
    runs = 1 if smoke else 5
    ours: list[float] = []
    raw: list[float] = []
    shortfalls: list[int] = []
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        log(f"runner-throughput: {runs} runs of {lines:,} progress lines, supervised and raw")
        for _ in range(runs):
            elapsed, received = _supervised(Path(tmp), lines)
            if received != lines:
                # Not fatal for a speed figure, but a correctness problem worth shouting about.
                log(f"runner-throughput: WARNING the supervisor delivered {received:,} of {lines:,} progress points")
                shortfalls.append(lines - received)
            ours.append(lines / elapsed)
            raw_elapsed, _count = _raw(lines)
            raw.append(lines / raw_elapsed)
    return [Result("runner-throughput/progress-lines", median(ours), "lines/s",
                   "plain asyncio readline loop over the same trainer output (parse nothing, store nothing)",
                   median(raw), runs,
                   f"TrainerProcess parsing JSON progress, batching it to the sink and writing the log; {lines:,} lines "
                   "per run from a trainer printing as fast as it can; process start included in both"
                   + (f"; WARNING: progress points lost in {len(shortfalls)} of {runs} runs ({shortfalls} missing)"
                      if shortfalls else "; every progress point delivered"))]


def bench_builtin(workdir: Path) -> None:
    from tests.trainers.images import write_image_set

    images = workdir / "images"
    write_image_set(images, 100, "warm", seed=1)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "training_studio", "train", "builtin", "--dataset-dir", str(images),
                    "--output-dir", str(workdir / "out"), "--total-steps", "300"],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"built-in trainer: 300 steps on 100 images in {time.perf_counter() - started:.2f}s "
          "(process start included)")


if __name__ == "__main__":
    for result in run_runner_throughput(smoke=False):
        print(f"{result.name}: {result.value:,.0f} {result.unit} (baseline {result.baseline_value:,.0f})")
    with tempfile.TemporaryDirectory() as tmp:
        bench_builtin(Path(tmp))
