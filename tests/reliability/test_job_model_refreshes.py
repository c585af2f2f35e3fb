"""Property: whatever sequence of refreshes the monitor sees, the job model ends showing exactly what it
should, with Qt's model tester watching every change.

One example is a random sequence of what the store does to the model: apply an active-list snapshot
(new, changed, repeated, reordered and vanished jobs, unknown statuses, terminal jobs still listed by
a lagging server), then for every job that left the list fetch its final state (terminal, still
active, unknown, forgotten by the server = 404, or a failed fetch), interleaved with clock ticks and
"Clear finished". After every step it is checked against a plain reference: the rows in an active
state are the last snapshot's active jobs plus the jobs that left it and whose final state is not
known yet; every row holds exactly the newest data seen for its job; terminal rows are dimmed and
stay until Clear finished, which removes exactly them; rows stay in creation order; the ids handed
back for a final-state fetch are exactly the unfinished jobs missing from the snapshot.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PySide6.QtCore import Qt

from training_studio.contract.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    TrainingJob,
    format_timestamp,
)
from training_studio.ui.jobs.model import JobListModel, JobRole

BASE = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
ID_SPACE = 10

listed_statuses = st.sampled_from(["pending", "queued", "running", "running", "paused-by-operator",
                                   "completed", "failed"])
final_outcomes = st.sampled_from(["completed", "failed", "cancelled", "running", "warming-up", "404",
                                  "fetch failed"])


def make_job(number: int, status: str, progress: int, tag: str) -> TrainingJob:
    terminal = status in ("completed", "failed", "cancelled")
    return TrainingJob.model_validate(dict(
        id=f"job-{number}", name=f"job {number}{tag}", status=status, progress=float(progress * 25),
        current_step=progress * 25, total_steps=100, current_loss=0.5 / (progress + 1),
        # A few equal creation times, so arrival order decides ties.
        created_at=format_timestamp(BASE + timedelta(seconds=(number // 2) * 10)),
        started_at=None if status in ("pending", "queued") else format_timestamp(BASE + timedelta(seconds=99)),
        finished_at=format_timestamp(BASE + timedelta(seconds=500)) if terminal and progress % 2 else None,
        error="out of memory" if status == "failed" else None))


job_specs = st.tuples(st.integers(0, ID_SPACE - 1), listed_statuses, st.integers(0, 4), st.sampled_from(["", "*"]))
refresh = st.tuples(st.just("refresh"), st.lists(job_specs, max_size=8),
                    st.lists(final_outcomes, min_size=ID_SPACE, max_size=ID_SPACE))
step = st.one_of(refresh, refresh, refresh, st.tuples(st.just("clear")), st.tuples(st.just("tick")))


class Reference:
    """What the monitor should show, kept in plain dicts."""

    def __init__(self) -> None:
        self.jobs: dict[str, TrainingJob] = {}
        self.arrival: dict[str, int] = {}
        self.last_listed: set[str] = set()
        self._arrivals = 0

    def put(self, job: TrainingJob) -> None:
        if job.id not in self.jobs:
            self._arrivals += 1
            self.arrival[job.id] = self._arrivals
        self.jobs[job.id] = job

    def remove(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)
        self.arrival.pop(job_id, None)

    def order(self) -> list[str]:
        return sorted(self.jobs, key=lambda job_id: (self.jobs[job_id].created_at, self.arrival[job_id]))

    def awaiting_final(self) -> list[str]:
        return [job_id for job_id in self.order()
                if job_id not in self.last_listed and self.jobs[job_id].status not in TERMINAL_STATUSES]


def check(model: JobListModel, reference: Reference, last_snapshot: dict[str, TrainingJob]) -> None:
    shown = [model.job_at(row) for row in range(model.rowCount())]
    assert [job.id for job in shown] == reference.order()
    for row, job in enumerate(shown):
        assert job == reference.jobs[job.id]
        assert model.row_of(job.id) == row
        finished = job.status in TERMINAL_STATUSES
        assert model.index(row, 0).data(JobRole.IS_FINISHED) is finished
        dimmed = model.index(row, 1).data(Qt.ItemDataRole.ForegroundRole)
        assert (dimmed is not None) is finished
    # The rows in an active state: the last snapshot's active jobs, plus those that left it and
    # whose final state is not known yet (shown with their last known data).
    active_rows = {job.id for job in shown if job.status in ACTIVE_STATUSES}
    expected_active = {job_id for job_id, job in last_snapshot.items() if job.status in ACTIVE_STATUSES}
    expected_active |= {job_id for job_id in reference.awaiting_final()
                        if reference.jobs[job_id].status in ACTIVE_STATUSES}
    assert active_rows == expected_active
    for job_id, job in last_snapshot.items():
        if job_id in reference.jobs:  # (a terminal one may have been cleared since)
            assert model.job_at(model.row_of(job_id)) == job
    assert model.active_count() == len(active_rows)
    assert model.finished_count() == sum(job.status in TERMINAL_STATUSES for job in shown)


@pytest.mark.parametrize("python_tester", [True, False], ids=["py-tester", "qt-tester"])
@given(steps=st.lists(step, min_size=1, max_size=12))
def test_any_refresh_sequence_leaves_the_model_equal_to_the_reference(qapp, qtmodeltester, python_tester, steps):
    model = JobListModel()
    qtmodeltester.check(model, force_py=python_tester)  # stays attached: every change below is verified
    reference = Reference()
    last_snapshot: dict[str, TrainingJob] = {}
    for action, *args in steps:
        if action == "refresh":
            specs, outcomes = args
            snapshot = [make_job(*spec) for spec in specs]
            for job in snapshot:
                reference.put(job)
            last_snapshot = {job.id: job for job in snapshot}  # a repeated id: the last copy wins
            reference.last_listed = set(last_snapshot)

            gone = model.apply_active_snapshot(snapshot)
            assert gone == reference.awaiting_final()
            check(model, reference, last_snapshot)

            # The store then asks /status for each of them (some fail and are retried next time).
            for job_id in gone:
                outcome = outcomes[int(job_id.split("-")[1])]
                if outcome == "fetch failed":
                    continue
                if outcome == "404":
                    model.remove_job(job_id)
                    reference.remove(job_id)
                    continue
                held = reference.jobs[job_id]
                final = make_job(int(job_id.split("-")[1]), outcome, 4 if outcome == "completed" else 2,
                                 held.name[-1] if held.name.endswith("*") else "")
                model.update_job(final)
                reference.put(final)
        elif action == "clear":
            expected_removed = sum(job.status in TERMINAL_STATUSES for job in reference.jobs.values())
            assert model.clear_finished() == expected_removed
            for job_id in [job_id for job_id, job in reference.jobs.items() if job.status in TERMINAL_STATUSES]:
                reference.remove(job_id)
        else:
            model.tick()
        check(model, reference, last_snapshot)
