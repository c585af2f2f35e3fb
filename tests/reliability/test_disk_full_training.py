"""A really full disk while a job trains: the data dir on a small tmpfs, filled up before the trainer
writes its checkpoint. Needs root and a kernel that lets us mount tmpfs (CI runs as root); elsewhere
these tests skip and say why.

The job must end `failed` with a reason that says the disk is full, its model `failed`, no half-written
checkpoint left behind, the database intact; and once space is freed the same dataset trains fine.
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.helpers import (
    assert_data_dir_consistent,
    create_job,
    db_rows,
    finished,
    job_status,
    pid_alive,
    wait_job,
)
from tests.server.helpers import assert_error, committed_dataset, create_dataset, png_bytes, upload
from tests.support.tmpfs import fill, mounted_tmpfs

# latent_dim=64 at 32 px: the checkpoint is ~3 MB of float64 matrices, far more than the room we leave.
BIG_CHECKPOINT = {"resolution": 32, "latent_dim": 64}
ROOM_LEFT = 768 * 1024


@pytest.fixture
def small_disk(tmp_path):
    yield from mounted_tmpfs(tmp_path, "24m")


def test_a_trainer_hitting_enospc_fails_its_job_clearly_and_the_server_recovers(small_disk, server_factory):
    server = server_factory("small", extra_args=["--cancel-grace", "1"])
    with server.client() as client:
        dataset = committed_dataset(client, [png_bytes(color=(seed * 30, 60, 90)) for seed in range(4)])
        filler = fill(small_disk, leave_bytes=ROOM_LEFT)

        job = create_job(client, dataset["id"], total_steps=30, name="no room", **BIG_CHECKPOINT)
        failed = wait_job(client, job["id"], finished)
        assert failed["status"] == "failed", failed
        assert "No space left on device" in failed["error"] or "disk is full" in failed["error"], failed
        assert failed["currentStep"] == 30  # the training itself ran; only the checkpoint did not fit
        models = [model for model in client.get("/api/models").json() if model["training_job_id"] == job["id"]]
        assert [model["status"] for model in models] in ([], ["failed"]), models
        output = server.data_dir / "jobs" / job["id"]
        assert not any(path.suffix == ".tmp" or path.name.endswith(".tmp") for path in output.iterdir()), \
            sorted(path.name for path in output.iterdir())
        assert client.get(f"/api/training/jobs/{job['id']}/logs").status_code == 200
        assert client.get("/api/training/jobs", params={"status": "active"}).json() == []
        assert_data_dir_consistent(server.data_dir)

        filler.unlink()
        again = create_job(client, dataset["id"], total_steps=30, name="room again", **BIG_CHECKPOINT)
        done = wait_job(client, again["id"], finished)
        assert done["status"] == "completed", done
        model = next(m for m in client.get("/api/models").json() if m["training_job_id"] == again["id"])
        assert model["status"] == "ready" and model["size_bytes"] > ROOM_LEFT
        checkpoint = client.get(f"/api/models/{model['id']}/checkpoint")
        assert checkpoint.status_code == 200 and len(checkpoint.content) == model["size_bytes"]
    assert_data_dir_consistent(server.data_dir)


def test_a_disk_that_fills_completely_mid_training_settles_the_job_once_space_is_freed(small_disk,
                                                                                       server_factory):
    """No room at all, not even for the log or the database: the end of the job cannot be recorded while
    the disk is full, but the job must not stay `running` once space is back (no restart needed)."""
    server = server_factory("small", extra_args=["--cancel-grace", "1"])
    with server.client() as client:
        dataset = committed_dataset(client, [png_bytes(color=(seed * 30, 90, 60)) for seed in range(4)])
        job = create_job(client, dataset["id"], total_steps=300, name="disk fills", **BIG_CHECKPOINT)
        wait_job(client, job["id"], lambda state: (state["currentStep"] or 0) > 0)
        trainer_pid = db_rows(server.data_dir / "studio.db", "SELECT pid FROM jobs WHERE id = ?",
                              (job["id"],))[0]["pid"]
        filler = fill(small_disk, leave_bytes=0)
        try:
            deadline = time.monotonic() + 60
            while pid_alive(trainer_pid):  # it trains on, then cannot write its checkpoint
                assert time.monotonic() < deadline, "the trainer never ended"
                time.sleep(0.1)
            assert client.get("/api/health").json()["status"] == "ok"
            assert job_status(client, job["id"])["status"] in ("running", "failed")
        finally:
            filler.unlink()
        ended = wait_job(client, job["id"], finished, timeout=15)
        assert ended["status"] == "failed", ended
        assert "disk is full" in ended["error"], ended
        assert client.get("/api/training/jobs", params={"status": "active"}).json() == []
        again = create_job(client, dataset["id"], total_steps=20, name="after")
        assert wait_job(client, again["id"], finished)["status"] == "completed"
    assert_data_dir_consistent(server.data_dir)


def test_a_database_write_failing_on_a_full_disk_is_a_plain_507(small_disk, server_factory):
    """The commit's layouts and then its 'failed' status write both hit the full disk: the answer is a 507
    like any other, the connection stays usable, and the commit works once space is back."""
    server = server_factory("small", extra_args=["--no-runner"])
    with server.client() as client:
        dataset = create_dataset(client)
        for seed in range(3):
            assert upload(client, dataset["id"], png_bytes(color=(seed, 1, 2))).status_code == 201
        filler = fill(small_disk, leave_bytes=0)
        try:
            for _ in range(3):  # the same keep-alive connection every time
                assert_error(client.post(f"/api/datasets/{dataset['id']}/commit"), 507, "insufficient_storage")
                assert client.get(f"/api/datasets/{dataset['id']}").json()["status"] in ("processing", "failed")
        finally:
            filler.unlink()
        committed = client.post(f"/api/datasets/{dataset['id']}/commit")
        assert committed.status_code == 200 and committed.json()["status"] == "active", committed.text
    log = server.log_path.read_text(errors="replace")
    assert "Exception in ASGI application" not in log and "unexpected error on" not in log, log[-3000:]
    assert_data_dir_consistent(server.data_dir)
