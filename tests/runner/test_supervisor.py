"""TrainerProcess on real trainer subprocesses (each under its real wrapper process): outcomes, cancel,
the whole tree gone, floods of output, the environment a trainer gets."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import kill_leftovers, pid_alive
from training_studio.runner.progress import ProgressPoint, TrainerEvent
from training_studio.runner.supervisor import OutputOffsets, TrainerOutcome, TrainerProcess
from training_studio.runner.trainer_wrapper import read_json

TRAINERS = Path(__file__).parent / "trainers"


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[ProgressPoint]] = []
        self.events: list[TrainerEvent] = []

    def progress(self, points: list[ProgressPoint]) -> None:
        self.batches.append(points)

    def event(self, event: TrainerEvent) -> None:
        self.events.append(event)

    @property
    def points(self) -> list[ProgressPoint]:
        return [p for batch in self.batches for p in batch]


def make(tmp_path: Path, script: str, *args: str, recorder: Recorder | None = None, **kwargs) -> TrainerProcess:
    recorder = recorder or Recorder()
    return TrainerProcess([sys.executable, str(TRAINERS / script), *args], log_path=tmp_path / "job.log",
                          job_id="job-under-test", on_progress=recorder.progress, on_event=recorder.event,
                          **kwargs)


async def run_to_end(process: TrainerProcess) -> TrainerOutcome:
    await process.start()
    return await asyncio.wait_for(process.wait(), 60)


def job_pids(process: TrainerProcess) -> list[int]:
    """The wrapper's and the trainer's PIDs, as the wrapper recorded them."""
    info = read_json(process.files.wrapper_info) or {}
    return [pid for pid in (process.pid, info.get("trainer_pid")) if pid]


def none_alive(process: TrainerProcess) -> bool:
    pids = job_pids(process)
    return len(pids) == 2 and not any(pid_alive(pid) for pid in pids)


async def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_exit_zero_is_completed_with_progress_and_a_complete_log(tmp_path: Path) -> None:
    recorder = Recorder()
    process = make(tmp_path, "steady.py", "5", "0.01", recorder=recorder)
    outcome = asyncio.run(run_to_end(process))
    assert outcome == TrainerOutcome("completed", 0)
    assert [p.step for p in recorder.points] == [1, 2, 3, 4, 5]
    assert recorder.points[-1] == ProgressPoint(step=5, total_steps=5, loss=0.2)
    log = (tmp_path / "job.log").read_text()
    assert log.count('"step"') == 5 and "done" in log
    assert none_alive(process)


def test_exit_one_fails_with_the_exception_line(tmp_path: Path) -> None:
    outcome = asyncio.run(run_to_end(make(tmp_path, "fails_with_error.py")))
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert outcome.error == "ValueError: boom at step 3 (exit status 1)"
    assert "Traceback" in (tmp_path / "job.log").read_text()


def test_death_by_sigkill_says_so(tmp_path: Path) -> None:
    outcome = asyncio.run(run_to_end(make(tmp_path, "killed_by_sigkill.py")))
    assert outcome.status == "failed"
    assert outcome.error == "the trainer was killed by SIGKILL"


def test_a_missing_program_fails_with_the_reason(tmp_path: Path) -> None:
    process = TrainerProcess([str(tmp_path / "no-such-trainer")], log_path=tmp_path / "job.log")
    outcome = asyncio.run(run_to_end(process))
    assert outcome.status == "failed" and outcome.exit_code is None
    assert outcome.error.startswith("could not start the trainer") and "no-such-trainer" in outcome.error


def test_cancel_of_a_trainer_that_exits_on_sigterm(tmp_path: Path) -> None:
    recorder = Recorder()
    process = make(tmp_path, "steady.py", "100000", "0.02", recorder=recorder, cancel_grace=5)

    async def scenario() -> TrainerOutcome:
        await process.start()
        waiter = asyncio.ensure_future(process.wait())
        await wait_for(lambda: len(recorder.points) > 0)
        process.cancel()
        return await asyncio.wait_for(waiter, 30)

    outcome = asyncio.run(scenario())
    assert outcome.status == "cancelled" and outcome.exit_code == -15
    assert none_alive(process)


def test_a_trainer_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    recorder = Recorder()
    process = make(tmp_path, "ignores_sigterm.py", recorder=recorder, cancel_grace=2.0)

    async def scenario() -> TrainerOutcome:
        await process.start()
        waiter = asyncio.ensure_future(process.wait())
        await wait_for(lambda: b"ready" in (tmp_path / "job.log").read_bytes())
        process.cancel()
        # It got SIGTERM, ignored it and trained on inside the grace: a step after the one it was at.
        await wait_for(lambda: b"SIGTERM ignored at step" in (tmp_path / "job.log").read_bytes())
        at_sigterm = int(re.search(rb"SIGTERM ignored at step (\d+)", (tmp_path / "job.log").read_bytes())[1])
        await wait_for(lambda: any(point.step > at_sigterm for point in recorder.points))
        return await asyncio.wait_for(waiter, 30)

    outcome = asyncio.run(scenario())
    assert outcome.status == "cancelled" and outcome.exit_code == -9
    assert none_alive(process)


@pytest.fixture
def leftovers():
    """PIDs a failing test could leave running; SIGKILLed at teardown."""
    yield from kill_leftovers()


def test_cancel_kills_the_trainers_children_too(tmp_path: Path, leftovers: list[int]) -> None:
    pid_file = tmp_path / "child.pid"
    process = make(tmp_path, "spawns_child.py", str(pid_file), cancel_grace=0.5)

    async def scenario() -> tuple[TrainerOutcome, int]:
        await process.start()
        waiter = asyncio.ensure_future(process.wait())
        await wait_for(pid_file.exists)
        child = int(pid_file.read_text())
        leftovers.append(child)
        assert pid_alive(child)
        process.cancel()
        return await asyncio.wait_for(waiter, 30), child

    outcome, child = asyncio.run(scenario())
    # the trainer dies of SIGTERM at once; its child ignores SIGTERM and needs the SIGKILL: cancelled
    # is only reported once it is gone too
    assert outcome.status == "cancelled"
    assert not pid_alive(child)
    assert none_alive(process)


def test_cancel_before_start_signals_as_soon_as_it_runs(tmp_path: Path) -> None:
    process = make(tmp_path, "steady.py", "100000", "0.02", cancel_grace=5)

    async def scenario() -> TrainerOutcome:
        process.cancel()
        return await run_to_end(process)

    assert asyncio.run(scenario()).status == "cancelled"


def test_a_flood_of_100000_lines_keeps_the_latest_value_and_the_whole_log(tmp_path: Path) -> None:
    recorder = Recorder()
    process = make(tmp_path, "floods_output.py", "100000", recorder=recorder)
    outcome = asyncio.run(run_to_end(process))
    assert outcome.status == "completed"
    points = recorder.points
    assert len(points) == 100_000
    assert points[-1] == ProgressPoint(step=100_000, total_steps=100_000, loss=1.0 / 100_000)
    # batched: far fewer flushes than lines
    assert len(recorder.batches) < 1000
    log_lines = (tmp_path / "job.log").read_bytes().splitlines()
    assert len(log_lines) == 100_000 + 100
    assert log_lines[-1] == b"checkpoint of the loop at 100000"


def test_events_arrive_in_order_with_the_progress_before_them(tmp_path: Path) -> None:
    script = tmp_path / "events.py"
    script.write_text(
        "import json\n"
        "print(json.dumps({'step': 1, 'total_steps': 1, 'loss': 0.1}))\n"
        "print(json.dumps({'event': 'checkpoint', 'state': 'writing'}))\n"
        "print(json.dumps({'event': 'checkpoint', 'state': 'written', 'checkpoint': 'm.npz'}))\n"
    )
    seen: list[str] = []
    process = TrainerProcess([sys.executable, str(script)], log_path=tmp_path / "job.log",
                             on_progress=lambda pts: seen.extend(f"step{p.step}" for p in pts),
                             on_event=lambda ev: seen.append(ev.data["state"]))
    assert asyncio.run(run_to_end(process)).status == "completed"
    assert seen == ["step1", "writing", "written"]


def test_leftover_children_of_a_finished_trainer_are_killed(tmp_path: Path, leftovers: list[int]) -> None:
    script = tmp_path / "leaves_child.py"
    pid_file = tmp_path / "leftover.pid"
    script.write_text(
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
    )
    process = TrainerProcess([sys.executable, str(script)], log_path=tmp_path / "job.log")
    outcome = asyncio.run(run_to_end(process))
    leftovers.append(int(pid_file.read_text()))
    assert outcome.status == "completed"
    assert not pid_alive(leftovers[0])


def test_the_trainer_gets_unbuffered_python_and_its_job_marker_but_no_server_setting(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRAINING_STUDIO_TOKEN", "secret-token")
    monkeypatch.setenv("TRAINING_STUDIO_DATA_DIR", str(tmp_path))
    script = tmp_path / "env.py"
    script.write_text("import os\n"
                      "print(os.environ.get('PYTHONUNBUFFERED'), os.environ.get('TRAINING_STUDIO_JOB_ID'),\n"
                      "      sorted(k for k in os.environ if k.startswith('TRAINING_STUDIO_')), os.getpgrp() == os.getpid())\n")
    process = TrainerProcess([sys.executable, str(script)], log_path=tmp_path / "job.log", job_id="abc",
                             env={"PYTHONUNBUFFERED": "0"})
    assert asyncio.run(run_to_end(process)).status == "completed"
    assert (tmp_path / "job.log").read_text().strip() == "1 abc ['TRAINING_STUDIO_JOB_ID'] True"


def test_points_read_in_a_catch_up_are_marked_as_such_and_live_ones_are_not(tmp_path: Path) -> None:
    """What a re-attached server reads from the backlog arrives all at once: the runner's ETA must know
    (issue 14). A trainer's live output is never marked."""
    live = Recorder()
    flags_live: list[bool] = []
    process = make(tmp_path, "steady.py", "20", "0.02", recorder=live,
                   control_dir=tmp_path / "live-control", cwd=tmp_path)
    process.on_progress = lambda points: (flags_live.append(process.reading_backlog), live.progress(points))
    assert asyncio.run(run_to_end(process)).status == "completed"
    assert len(live.points) == 20 and flags_live and not any(flags_live)

    # a finished flood of 5 MB, then a new server that follows it from the beginning: all backlog
    flood = make(tmp_path, "floods_output.py", "100000", control_dir=tmp_path / "flood-control", cwd=tmp_path)
    assert asyncio.run(run_to_end(flood)).status == "completed"
    caught_up = Recorder()
    flags: list[bool] = []
    again = TrainerProcess.attach(None, OutputOffsets(0, 0, 0), log_path=tmp_path / "again.log",
                                  control_dir=tmp_path / "flood-control", job_id="job-under-test")
    again.on_progress = lambda points: (flags.append(again.reading_backlog), caught_up.progress(points))
    assert asyncio.run(asyncio.wait_for(again.wait(), 60)).status == "completed"
    assert len(caught_up.points) == 100_000
    assert len(flags) >= 2 and all(flags)
