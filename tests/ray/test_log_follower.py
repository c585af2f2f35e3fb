"""The Ray log follower's byte counting (issue 18), without a cluster: Ray's tail replays the log from its
start each time it is opened, in chunks cut anywhere (inside lines, inside UTF-8 characters); every line
must reach the parsers, the job's log and the metrics exactly once, and a follower that resumes from the
saved offset (a restarted server) must read on exactly where the previous one stopped. Real Storage on a
temp SQLite file."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

from training_studio.contract import JobStatus
from training_studio.runner.job_runner import TrainerPlan, _ActiveJob
from training_studio.runner.ray_executor import RayExecutor, _LogFollower
from training_studio.server.storage import Storage

TOTAL = 40


def ray_log() -> str:
    lines = ["Runtime env is setting up.\n", "Running entrypoint for job training-studio-x: python train.py\n"]
    for step in range(1, TOTAL + 1):
        lines.append(f"épreuve {step} ✓\n")  # multi-byte characters: offsets count bytes, not characters
        lines.append(json.dumps({"step": step, "total_steps": TOTAL, "loss": 1.0 / step}) + "\n")
    return "".join(lines)


def chunks(text: str, rng: random.Random) -> list[str]:
    out, index = [], 0
    while index < len(text):
        size = rng.randint(1, 37)
        out.append(text[index:index + size])
        index += size
    return out


def follower_for(storage: Storage, executor: RayExecutor, job_id: str, *, attached: bool) -> _LogFollower:
    job = storage.get_job(job_id)
    assert job is not None
    plan = TrainerPlan(argv=["python", "train.py"], cwd=Path("."))
    follower = _LogFollower(executor, _ActiveJob(job_id), job, plan, attached=attached)
    follower.open()
    return follower


def test_replayed_tails_and_a_resumed_follower_record_every_line_once(tmp_path):
    storage = Storage(tmp_path / "data")
    executor = RayExecutor(storage, tmp_path / "data", address="http://127.0.0.1:1", shared_dir=tmp_path)
    job = storage.create_job("j", None, None, TOTAL, {})
    storage.set_job_status(job.id, JobStatus.QUEUED)
    storage.set_job_status(job.id, JobStatus.RUNNING)
    text = ray_log()
    half = text.index('{"step": 21')
    later = text.index('{"step": 31')
    rng = random.Random(18)

    async def first_server() -> None:
        follower = follower_for(storage, executor, job.id, attached=False)
        # Tails that each replay from the start, cut differently, the first two ending inside a line that
        # the third completes; the first server stops inside a later line.
        for end in (half + 5, half + 5, later + 9):
            follower.seen = 0
            for piece in chunks(text[:end], rng):
                await follower.feed_text(piece)
            await follower.flush()
        follower.close_log()

    async def second_server() -> None:
        follower = follower_for(storage, executor, job.id, attached=True)
        for _ in range(2):
            follower.seen = 0
            for piece in chunks(text, rng):
                await follower.feed_text(piece)
            await follower.flush()
        await follower.close()
        follower.close_log()

    asyncio.run(first_server())
    assert storage.get_job(job.id).current_step == 30
    asyncio.run(second_server())

    steps = [point.step for point in storage.metrics(job.id)]
    log = storage.job_log_path(job.id).read_text(encoding="utf-8")
    assert log.count("a new server follows this Ray job from here on") == 1
    without_header = "".join(line for line in log.splitlines(keepends=True) if not line.startswith("[training-studio]"))
    assert without_header == text  # every byte once, in order
    assert storage.get_job(job.id).current_step == TOTAL
    assert steps == list(range(1, TOTAL + 1))
    storage.close()
