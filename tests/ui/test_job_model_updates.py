"""JobListModel.apply_updates (live events and `since` deltas) and the rule that an older revision of a job
never replaces a newer one, whatever path it comes by."""

from __future__ import annotations

import pytest

from training_studio.contract.models import JobStatus, TrainingJob
from training_studio.ui.jobs.model import JobListModel, JobRole
from tests.support.faulty_server import job_json


def job(job_id: str, revision: int | None, **fields) -> TrainingJob:
    created = fields.pop("created_at", f"2026-01-01T00:00:0{ord(job_id[0]) % 10}.000Z")
    return TrainingJob.model_validate(job_json(job_id, revision=revision, created_at=created, **fields))


class Signals:
    def __init__(self, model: JobListModel) -> None:
        self.seen: list[str] = []
        model.modelReset.connect(lambda: self.seen.append("reset"))
        model.rowsInserted.connect(lambda parent, first, last: self.seen.append(f"insert {first}-{last}"))
        model.dataChanged.connect(lambda tl, br, roles: self.seen.append(f"changed {tl.row()}-{br.row()}"))


def shown(model: JobListModel) -> list[tuple[str, JobStatus, float]]:
    return [(model.job_at(r).id, model.job_at(r).status, model.index(r, 0).data(JobRole.PROGRESS))
            for r in range(model.rowCount())]


def test_a_batch_inserts_and_updates_in_one_pass_without_a_reset(qtmodeltester):
    model = JobListModel()
    qtmodeltester.check(model)
    model.apply_updates([job("a", 1), job("b", 2)])
    signals = Signals(model)
    model.apply_updates([job("a", 3, progress=50.0), job("c", 4), job("b", 5, progress=60.0)])
    assert shown(model) == [("a", JobStatus.RUNNING, 50.0), ("b", JobStatus.RUNNING, 60.0),
                            ("c", JobStatus.RUNNING, 40.0)]
    assert "reset" not in signals.seen
    assert signals.seen.count("insert 2-2") == 1 and len([s for s in signals.seen if s.startswith("insert")]) == 1


def test_a_job_repeated_in_a_batch_counts_in_its_newest_state(qtmodeltester):
    model = JobListModel()
    qtmodeltester.check(model)
    model.apply_updates([job("a", 7, status="completed", progress=100.0), job("a", 6, progress=90.0)])
    assert shown(model) == [("a", JobStatus.COMPLETED, 100.0)]


@pytest.mark.parametrize("path", ["apply_updates", "update_job", "snapshot"])
def test_an_older_revision_never_replaces_a_newer_one(qtmodeltester, path):
    model = JobListModel()
    qtmodeltester.check(model)
    model.apply_active_snapshot([job("a", 1), job("b", 1)])
    model.apply_updates([job("a", 9, status="completed", progress=100.0)])  # an event, newer than any list
    stale = job("a", 5, progress=70.0)  # e.g. a slow answer overtaken by the event
    if path == "apply_updates":
        model.apply_updates([stale])
    elif path == "update_job":
        model.update_job(stale)
    else:
        model.apply_active_snapshot([stale, job("b", 1)])
        model.apply_active_snapshot([stale, job("b", 2, progress=41.0)])  # the positional fast path too
    assert shown(model)[0] == ("a", JobStatus.COMPLETED, 100.0)
    model.apply_updates([job("a", 10, status="completed", progress=100.0, name="renamed")])
    assert model.job_at(0).name == "renamed"  # a newer one still applies


def test_jobs_without_revisions_apply_as_before(qtmodeltester):
    model = JobListModel()
    qtmodeltester.check(model)
    model.apply_updates([job("a", None, progress=10.0)])
    model.apply_updates([job("a", None, progress=5.0)])
    assert shown(model) == [("a", JobStatus.RUNNING, 5.0)]


def test_name_or_status_changed_comes_once_per_batch_and_only_for_name_or_status_cells(qtmodeltester):
    # The panel's counts and actions and the proxy's queue order follow this one signal instead of a Python
    # slot per dataChanged range (a refresh moving a hundred running jobs emits a hundred ranges).
    model = JobListModel()
    qtmodeltester.check(model)
    model.apply_updates([job(name, 1) for name in "abcdef"])
    heard: list[bool] = []
    ranges: list[int] = []
    updated: list[list[str]] = []
    model.name_or_status_changed.connect(heard.append)
    model.jobs_updated.connect(updated.append)
    model.dataChanged.connect(lambda tl, br, roles: ranges.append(tl.column()))

    model.apply_updates([job("a", 2, progress=50.0), job("c", 2, progress=55.0)])  # progress only
    assert ranges and min(ranges) > 1 and heard == []
    assert updated == [["a", "c"]]  # one batch, its jobs once each
    model.tick()  # the clock moves the Elapsed cells; no job changed
    assert updated == [["a", "c"]]

    ranges.clear()
    model.apply_updates([job("a", 3, status="completed", progress=100.0), job("c", 3, status="failed"),
                         job("e", 3, progress=70.0)])
    assert len([column for column in ranges if column <= 1]) >= 2  # a and c: apart, so two ranges
    assert heard == [True]  # one batch, one signal, a Status cell among its changes

    model.apply_updates([job("b", 4, name="renamed b")])
    assert heard == [True, False]  # a name alone: the queue order may change, the counts cannot

    model.apply_active_snapshot([job(name, 5, status="completed") for name in "abcdef"])
    assert heard == [True, False, True]  # a refresh is one batch too
    assert model.finished_count() == 6


@pytest.mark.parametrize(("fields", "columns"), [
    ({"progress": 41.0}, [(2, 2)]),
    ({"currentStep": 41}, [(3, 3)]),
    ({"totalSteps": 200}, [(3, 3)]),
    ({"currentLoss": 0.5}, [(4, 4)]),
    ({"currentLoss": float("nan")}, [(4, 4)]),
    ({"etaAt": "2026-01-01T01:00:00.000Z"}, [(6, 6)]),
    ({"placement": {"executor": "ray", "node": "n1", "gpus": ["0"]}}, [(7, 7)]),
    ({"name": "renamed"}, [(0, 0)]),
    ({"error": "out of memory"}, [(0, 1)]),  # the name and status tooltips carry the error
    ({"detail": "caching latents 3/9"}, [(1, 1)]),
    ({"held": True}, [(1, 1)]),
    ({"progress": 41.0, "currentStep": 41, "currentLoss": 0.5}, [(2, 4)]),
    ({"progress": 41.0, "etaAt": "2026-01-01T01:00:00.000Z"}, [(2, 2), (6, 6)]),
    ({"modelId": "m-1"}, [(0, 0)]),  # nothing shown changed: JobRole.JOB readers still hear of it
    ({"status": "completed", "progress": 100.0}, [(0, 7)]),  # finished: the whole row dims
    ({"startedAt": "2026-01-01T00:00:05.000Z"}, [(5, 5)]),
])
def test_a_running_jobs_change_announces_exactly_the_cells_it_changed(qtmodeltester, fields, columns):
    model = JobListModel()
    qtmodeltester.check(model)
    model.apply_active_snapshot([job("a", 1)])
    seen: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda tl, br, roles: seen.append((tl.column(), br.column())))
    model.apply_active_snapshot([job("a", 2, **fields)])
    assert seen == columns
