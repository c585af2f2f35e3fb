"""Storage's progress rules (issue 13): the step never goes back, the total changes only when stated,
an empty point never wipes a loss, and a job's `detail` (its phase) is stored and cleared at its end; a
point's other series follow the loss's rule and the ETA rides on progress (issue 14)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from training_studio.contract import JobStatus
from training_studio.server.storage import Storage

T = "2026-01-01T00:00:00Z"


def running_job(tmp_path: Path, total: int = 40) -> tuple[Storage, str]:
    storage = Storage(tmp_path / "data")
    job = storage.create_job("j", None, None, total, {})
    storage.set_job_status(job.id, JobStatus.RUNNING)
    return storage, job.id


def test_the_step_and_progress_never_go_backwards(tmp_path: Path) -> None:
    storage, job_id = running_job(tmp_path)
    storage.record_progress([(job_id, 14, 40, 0.2, T)])
    storage.record_progress([(job_id, 0, None, None, T), (job_id, 7, None, None, T)])
    job = storage.get_job(job_id)
    assert job is not None and job.current_step == 14 and job.progress == 100.0 * 14 / 40
    storage.record_progress([(job_id, 15, None, 0.1, T)])
    assert storage.get_job(job_id).current_step == 15


def test_a_point_without_a_loss_never_replaces_one_with_a_loss(tmp_path: Path) -> None:
    storage, job_id = running_job(tmp_path)
    storage.record_progress([(job_id, 3, 40, 0.193, T), (job_id, 3, 40, None, T)])
    storage.record_progress([(job_id, 3, 40, None, T)])
    assert [(p.step, p.loss) for p in storage.metrics(job_id)] == [(3, 0.193)]
    assert storage.get_job(job_id).current_loss == 0.193
    # a real loss for the same step still wins (kohya redraws a step with its new average)
    storage.record_progress([(job_id, 3, 40, 0.25, T)])
    assert [(p.step, p.loss) for p in storage.metrics(job_id)] == [(3, 0.25)]
    storage.record_progress([(job_id, 4, 40, None, T)])
    assert [(p.step, p.loss) for p in storage.metrics(job_id)] == [(3, 0.25), (4, None)]
    storage.record_progress([(job_id, 4, 40, 0.5, T)])
    assert [(p.step, p.loss) for p in storage.metrics(job_id)] == [(3, 0.25), (4, 0.5)]


def test_the_total_changes_only_when_a_point_states_another_and_it_is_logged_once(tmp_path: Path, caplog) -> None:
    storage, job_id = running_job(tmp_path, total=40)
    with caplog.at_level(logging.INFO, logger="training_studio.server.storage"):
        storage.record_progress([(job_id, 1, None, 0.5, T)])
        assert storage.get_job(job_id).total_steps == 40
        storage.record_progress([(job_id, 2, 50, 0.5, T)])
        storage.record_progress([(job_id, 3, 50, 0.5, T), (job_id, 4, 50, 0.5, T)])
    job = storage.get_job(job_id)
    assert job.total_steps == 50 and job.progress == 100.0 * 4 / 50
    notes = [r.getMessage() for r in caplog.records if "steps, not" in r.getMessage()]
    assert notes == [f"job {job_id}: the trainer counts 50 steps, not 40: the job's total is now 50"]


def test_detail_is_stored_and_ends_with_the_job(tmp_path: Path) -> None:
    storage, job_id = running_job(tmp_path)
    assert storage.get_job(job_id).detail is None
    job = storage.set_job_detail(job_id, "loading image sizes\n16/16")
    assert job is not None and job.detail == "loading image sizes 16/16"
    assert storage.set_job_detail(job_id, "x" * 1000).detail == "x" * 200
    assert storage.set_job_detail(job_id, None).detail is None
    storage.set_job_detail(job_id, "caching latents 9/20")
    storage.set_job_status(job_id, JobStatus.COMPLETED)
    assert storage.get_job(job_id).detail is None
    assert storage.set_job_detail(job_id, "late") is None
    assert storage.set_job_detail("no-such-job", "x") is None


def test_a_database_without_the_detail_column_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    from training_studio.server import storage as storage_module

    # A database as a server from before the `detail` migration left it, with a running job.
    index = next(i for i, sql in enumerate(storage_module._MIGRATIONS) if "ADD COLUMN detail" in sql)
    (tmp_path / "data").mkdir()
    conn = sqlite3.connect(tmp_path / "data" / "studio.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (index,))
    for sql in storage_module._MIGRATIONS[:index]:
        conn.executescript(sql)
    conn.execute("INSERT INTO jobs (id, name, status, created_at) VALUES ('old', 'old job', 'running', ?)", (T,))
    conn.commit()
    conn.close()
    storage = Storage(tmp_path / "data")
    assert storage.schema_version() == storage_module.SCHEMA_VERSION
    assert storage.get_job("old").detail is None
    assert storage.set_job_detail("old", "phase").detail == "phase"


def test_a_point_s_series_are_stored_and_never_wiped_by_a_point_without_any(tmp_path: Path) -> None:
    """Issue 14: the other series (scalars) follow the loss's rule."""
    storage, job_id = running_job(tmp_path)
    storage.record_progress([(job_id, 1, 40, 0.5, T, {"lr": 1e-4, "grad_norm": 2}),
                             (job_id, 2, 40, 0.4, T, None), (job_id, 3, 40, 0.3, T)])
    storage.record_progress([(job_id, 1, 40, None, T, None), (job_id, 1, 40, 0.45, T)])  # no series: kept
    storage.record_progress([(job_id, 2, 40, None, T, {"lr": 2e-4, "bad": float("nan"), "flag": True})])
    wire = storage.metrics_wire(job_id)
    assert wire == [{"step": 1, "loss": 0.45, "time": T, "scalars": {"lr": 1e-4, "grad_norm": 2.0}},
                    {"step": 2, "loss": 0.4, "time": T, "scalars": {"lr": 2e-4}},
                    {"step": 3, "loss": 0.3, "time": T}]
    storage.record_progress([(job_id, 1, 40, None, T, {"lr": 3e-4})])  # a later report with series replaces them
    assert storage.metrics(job_id)[0].scalars == {"lr": 3e-4} and storage.metrics(job_id)[0].loss == 0.45
    assert json.loads(storage.metrics_json(job_id)) == storage.metrics_wire(job_id)
    assert json.loads(storage.metrics_json(job_id, since_step=1, stride=2)) == storage.metrics_wire(job_id, 1, 2)


def test_the_eta_rides_on_progress_and_ends_with_the_job(tmp_path: Path) -> None:
    storage, job_id = running_job(tmp_path)
    storage.record_progress([(job_id, 1, 40, 0.5, T)], {job_id: "2026-01-01T00:10:00.000Z"})
    assert storage.get_job(job_id).eta_at == "2026-01-01T00:10:00.000Z"
    storage.record_progress([(job_id, 2, 40, 0.5, T)])  # not in `etas`: kept
    assert storage.get_job(job_id).eta_at == "2026-01-01T00:10:00.000Z"
    storage.record_progress([(job_id, 3, 40, 0.5, T)], {job_id: None})  # estimating again
    assert storage.get_job(job_id).eta_at is None
    storage.record_progress([(job_id, 4, 40, 0.5, T)], {job_id: "2026-01-01T00:11:00.000Z"})
    storage.set_job_status(job_id, JobStatus.COMPLETED)
    assert storage.get_job(job_id).eta_at is None
    storage.record_progress([(job_id, 5, 40, 0.5, T)], {job_id: "2026-01-01T00:12:00.000Z"})  # terminal: ignored
    assert storage.get_job(job_id).eta_at is None
