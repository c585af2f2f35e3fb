"""JobRunner pieces that need no server process: how a job becomes its trainer's argv."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from training_studio.runner.job_runner import JobRunner, JobSetupError
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID
from training_studio.server.storage import Storage


@pytest.fixture
def storage(tmp_path: Path):
    store = Storage(tmp_path)
    yield store
    store.close()


def builtin_job(storage: Storage, **params):
    dataset = storage.create_dataset("photos", "image")
    return storage.create_job("job", dataset.id, BUILTIN_BASE_MODEL_ID, 250, params)


def test_the_builtin_trainer_runs_through_this_program_with_the_jobs_params(storage, tmp_path) -> None:
    job = builtin_job(storage, resolution=24, latent_dim=8)
    plan = JobRunner(storage, tmp_path).plan_for(job, tmp_path / "out")
    assert plan.argv[:4] == [sys.executable, "-m", "training_studio", "train"]
    args = plan.argv[4:]
    assert args[0] == "builtin"
    pairs = dict(zip(args[1::2], args[2::2]))
    assert pairs["--dataset-dir"] == str(storage.dataset_layout_dir(job.dataset_id, "imagefolder"))
    assert pairs["--output-dir"] == str(tmp_path / "out")
    assert (pairs["--total-steps"], pairs["--resolution"], pairs["--latent-dim"]) == ("250", "24", "8")
    assert pairs["--learning-rate"] == "0.01"  # the schema default
    assert plan.progress_format == "jsonl"


def test_a_frozen_app_starts_itself_never_python_dash_m(storage, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/Applications/Training Studio.app/Contents/MacOS/training-studio")
    plan = JobRunner(storage, tmp_path).plan_for(builtin_job(storage), tmp_path / "out")
    assert plan.argv[:3] == [sys.executable, "train", "builtin"]
    assert "-m" not in plan.argv


def test_a_job_whose_preset_disappeared_cannot_start(storage, tmp_path) -> None:
    dataset = storage.create_dataset("photos", "image")
    job = storage.create_job("job", dataset.id, "gone-preset", 10, {})
    with pytest.raises(JobSetupError, match="no longer defined"):
        JobRunner(storage, tmp_path).plan_for(job, tmp_path / "out")


def test_params_outside_the_schema_cannot_start(storage, tmp_path) -> None:
    job = builtin_job(storage, resolution=10_000)
    with pytest.raises(JobSetupError, match="resolution must be at most 64"):
        JobRunner(storage, tmp_path).plan_for(job, tmp_path / "out")
