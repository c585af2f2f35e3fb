"""The trainer's wrapper and re-attaching to it, on real processes: a trainer outlives whoever followed
it, a new follower reads on from the saved offsets without a gap or a duplicate, a setsid'd grandchild
never outlives its job, and a wrapper is recognised by pid plus start time, never by pid alone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import kill_leftovers, pid_alive
from training_studio.runner.progress import ProgressPoint
from training_studio.runner.supervisor import (
    TRAINER_GONE_ERROR,
    OutputOffsets,
    TrainerOutcome,
    TrainerProcess,
    WrapperRecord,
)
from training_studio.runner.trainer_wrapper import read_json

TRAINERS = Path(__file__).parent / "trainers"


@pytest.fixture
def leftovers():
    """PIDs a failing test could leave running; SIGKILLed at teardown."""
    yield from kill_leftovers()


class Follower:
    """What a server keeps of a trainer's output: the points (by step) and the last saved offsets."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.offsets = OutputOffsets()

    def progress(self, points: list[ProgressPoint]) -> None:
        self.steps.extend(point.step for point in points)

    def save(self, offsets: OutputOffsets) -> None:
        self.offsets = offsets


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def gated_tqdm(tmp_path: Path, total: int, pause_at: int) -> tuple[list[str], Path]:
    gate = tmp_path / "gate"
    return [sys.executable, str(TRAINERS / "gated_tqdm.py"), str(total), str(tmp_path / "out"), str(pause_at),
            str(gate)], gate


def test_a_new_follower_reads_on_where_the_last_one_stopped(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    argv, gate = gated_tqdm(tmp_path, total=40, pause_at=15)
    log_path = tmp_path / "job.log"
    first = Follower()

    async def follow_until_detached() -> TrainerProcess:
        process = TrainerProcess(argv, log_path=log_path, job_id="j", cwd=tmp_path / "out", progress_format="tqdm",
                                 on_progress=first.progress, on_offsets=first.save, flush_interval=0.05,
                                 log_header="header\n")
        await process.start()
        waiter = asyncio.ensure_future(process.wait())
        # tqdm ends each redraw with the next one's '\r': the bar of step 15 is complete once 16 starts,
        # so 14 is the last step known while the trainer waits at its gate.
        while 14 not in first.steps:
            await asyncio.sleep(0.02)
        process.detach()  # the server stops: the trainer runs on
        assert await asyncio.wait_for(waiter, 30) is None
        return process

    process = asyncio.run(follow_until_detached())
    record = process.record
    assert record is not None and pid_alive(record.pid)
    # A server killed right after writing log bytes but before recording it: the next one truncates them.
    with open(log_path, "ab") as log:
        log.write(b"trained step 16\n")
    gate.touch()
    second = Follower()

    async def follow_to_the_end() -> TrainerOutcome:
        attached = TrainerProcess.attach(WrapperRecord(record.pid, record.start_time), first.offsets,
                                         log_path=log_path, control_dir=process.files.control_dir, job_id="j",
                                         progress_format="tqdm", on_progress=second.progress, on_offsets=second.save)
        return await asyncio.wait_for(attached.wait(), 60)

    outcome = asyncio.run(follow_to_the_end())
    assert outcome == TrainerOutcome("completed", 0)
    assert sorted(set(first.steps) | set(second.steps)) == list(range(0, 41))
    assert min(second.steps) >= max(first.steps) - 1  # read on from the offsets, not from the start
    log = log_path.read_text()
    assert log.startswith("header\n")
    for step in range(1, 41):
        assert log.count(f"trained step {step}\n") == 1, step
    assert log.count("saved model to lora.safetensors") == 1
    assert not pid_alive(record.pid)


def test_a_trainer_that_ended_while_nobody_followed_it_gets_its_real_outcome(tmp_path: Path) -> None:
    script = tmp_path / "fails_later.py"
    gate = tmp_path / "gate"
    script.write_text(
        "import json, sys, time, pathlib\n"
        "print(json.dumps({'step': 1, 'total_steps': 2, 'loss': 0.5}), flush=True)\n"
        f"while not pathlib.Path({str(gate)!r}).exists(): time.sleep(0.02)\n"
        "print(json.dumps({'step': 2, 'total_steps': 2, 'loss': 0.4}), flush=True)\n"
        "raise RuntimeError('CUDA out of memory')\n"
    )
    first = Follower()

    async def start_and_detach() -> TrainerProcess:
        process = TrainerProcess([sys.executable, str(script)], log_path=tmp_path / "job.log", job_id="j",
                                 on_progress=first.progress, on_offsets=first.save, flush_interval=0.05)
        await process.start()
        waiter = asyncio.ensure_future(process.wait())
        while 1 not in first.steps:
            await asyncio.sleep(0.02)
        process.detach()
        await waiter
        return process

    process = asyncio.run(start_and_detach())
    gate.touch()
    wait_until(process.files.exit_status.exists, what="the wrapper's exit status")
    second = Follower()
    attached = TrainerProcess.attach(process.record, first.offsets, log_path=tmp_path / "job.log",
                                     control_dir=process.files.control_dir, on_progress=second.progress)
    outcome = asyncio.run(attached.wait())
    assert outcome == TrainerOutcome("failed", 1, "RuntimeError: CUDA out of memory (exit status 1)")
    assert second.steps == [2]


def test_a_pid_with_another_start_time_is_not_the_wrapper(tmp_path: Path) -> None:
    """A recorded wrapper pid now used by an unrelated process (here: this test) is not re-attached to."""
    control = tmp_path / "out" / ".training-studio"
    control.mkdir(parents=True)
    stat = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    reused = WrapperRecord(os.getpid(), int(stat[19]) + 1)
    attached = TrainerProcess.attach(reused, OutputOffsets(), log_path=tmp_path / "job.log", control_dir=control)
    outcome = asyncio.run(asyncio.wait_for(attached.wait(), 30))
    assert outcome == TrainerOutcome("failed", None, TRAINER_GONE_ERROR)
    assert pid_alive(os.getpid())


def test_a_wrapper_killed_from_outside_fails_the_job_and_takes_its_trainer_along(tmp_path: Path,
                                                                                leftovers: list[int]) -> None:
    process = TrainerProcess([sys.executable, str(TRAINERS / "steady.py"), "100000", "0.05"],
                             log_path=tmp_path / "job.log")

    async def scenario() -> tuple[TrainerOutcome, int]:
        await process.start()
        waiter = asyncio.ensure_future(process.wait())
        while not (read_json(process.files.wrapper_info) or {}).get("trainer_pid"):
            await asyncio.sleep(0.02)
        trainer = read_json(process.files.wrapper_info)["trainer_pid"]
        leftovers.append(trainer)
        os.kill(process.pid, signal.SIGKILL)
        return await asyncio.wait_for(waiter, 30), trainer

    outcome, trainer = asyncio.run(scenario())
    assert outcome == TrainerOutcome("failed", None, TRAINER_GONE_ERROR)
    assert not pid_alive(trainer)


@pytest.mark.parametrize("mode", ["forever", "exit"])
def test_a_setsid_grandchild_is_gone_when_the_job_ends(tmp_path: Path, leftovers: list[int], mode: str) -> None:
    pid_file = tmp_path / "grandchild.pid"
    process = TrainerProcess([sys.executable, str(TRAINERS / "setsid_grandchild.py"), str(pid_file), mode],
                             log_path=tmp_path / "job.log", cancel_grace=0.5)

    async def scenario() -> TrainerOutcome:
        await process.start()
        waiter = asyncio.ensure_future(process.wait())
        while not pid_file.exists():
            await asyncio.sleep(0.02)
        leftovers.append(int(pid_file.read_text()))
        if mode == "forever":
            process.cancel()
        return await asyncio.wait_for(waiter, 60)

    outcome = asyncio.run(scenario())
    grandchild = leftovers[0]
    # when the outcome is known, every process of the job is gone: even one in a session of its own
    assert not pid_alive(grandchild)
    assert outcome.status == ("cancelled" if mode == "forever" else "completed")
    info = read_json(process.files.wrapper_info)
    assert info["subreaper"] is True
    if info["cgroup"]:  # where a cgroup v2 subtree is writable, the job's cgroup is removed after it
        assert not Path(info["cgroup"]).exists()


def test_the_output_files_and_the_status_are_private(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        process = TrainerProcess([sys.executable, str(TRAINERS / "steady.py"), "2", "0.01"],
                                 log_path=tmp_path / "job.log")
        assert asyncio.run(asyncio.wait_for(_run(process), 60)).status == "completed"
    finally:
        os.umask(previous)
    files = process.files
    for path in (files.stdout, files.stderr, files.exit_status, files.wrapper_info, files.spec):
        assert path.stat().st_mode & 0o077 == 0, path
    status = json.loads(files.exit_status.read_text())
    assert status["exit_code"] == 0 and status["cancelled"] is False


async def _run(process: TrainerProcess) -> TrainerOutcome:
    await process.start()
    return await process.wait()


def test_a_run_whose_job_folder_is_deleted_is_ended(tmp_path: Path, leftovers: list[int]) -> None:
    """Its data dir removed, a run can never be followed nor recorded: the wrapper ends it."""
    import shutil

    output = tmp_path / "out"
    output.mkdir()
    process = TrainerProcess([sys.executable, str(TRAINERS / "steady.py"), "100000", "0.05"],
                             log_path=tmp_path / "job.log", cwd=output, cancel_grace=1)

    async def scenario() -> int:
        await process.start()
        waiter = asyncio.ensure_future(process.wait())
        while not (read_json(process.files.wrapper_info) or {}).get("trainer_pid"):
            await asyncio.sleep(0.02)
        trainer = read_json(process.files.wrapper_info)["trainer_pid"]
        leftovers.append(trainer)
        shutil.rmtree(output)
        await asyncio.wait_for(waiter, 60)
        return trainer

    trainer = asyncio.run(scenario())
    assert not pid_alive(trainer) and not pid_alive(process.pid)
