"""Runner and built-in trainer speed: `python benchmarks/bench_runner.py`.

Measures (1) how fast the supervisor reads a trainer that prints progress lines as fast as it can
(lines per second, with the batched progress sink), and (2) how long the built-in trainer takes for
300 steps on 100 photo-like 96 px images. Prints numbers; asserts nothing (speed is not a test).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.trainers.images import write_image_set  # noqa: E402
from training_studio.runner.supervisor import TrainerProcess  # noqa: E402

FLOOD = ROOT / "tests" / "runner" / "trainers" / "floods_output.py"


def bench_flood(workdir: Path, lines: int = 200_000) -> None:
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

    elapsed = asyncio.run(run())
    print(f"supervisor: {lines:,} progress lines in {elapsed:.2f}s = {lines / elapsed:,.0f} lines/s "
          f"(received {received:,})")


def bench_builtin(workdir: Path) -> None:
    images = workdir / "images"
    write_image_set(images, 100, "warm", seed=1)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "training_studio", "train", "builtin", "--dataset-dir", str(images),
                    "--output-dir", str(workdir / "out"), "--total-steps", "300"],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"built-in trainer: 300 steps on 100 images in {time.perf_counter() - started:.2f}s "
          "(process start included)")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        bench_flood(Path(tmp))
        bench_builtin(Path(tmp))
