"""Deleting finished jobs over HTTP against a real server and real built-in trainers (issue 16): the job,
its log, metrics and folder go; the model it produced stays, downloads the same bytes and still lists its
step checkpoints and sample sheet from its own folder (the job's own samples route goes with the job, as
docs/api.md says); a running or queued job is refused with 409 `job_active` and keeps its state; deleting
the model afterwards removes the folder it was given."""

from __future__ import annotations

from tests.server.helpers import committed_dataset
from tests.support.jobs import create_job, finished, wait_job, wait_status
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID


def test_deleting_a_finished_job_keeps_its_model(server):
    with server.client() as client:
        dataset = committed_dataset(client)["id"]
        job = create_job(client, dataset, BUILTIN_BASE_MODEL_ID, total_steps=12,
                         params={"sample_every": 4, "checkpoint_every": 4})
        done = wait_job(client, job["id"], finished, 120)
        assert done["status"] == "completed", done
        model_id = done["modelId"]
        checkpoint = client.get(f"/api/models/{model_id}/checkpoint")
        assert checkpoint.status_code == 200
        steps = client.get(f"/api/models/{model_id}/checkpoints").json()
        assert steps, "the built-in trainer wrote step checkpoints"
        first_step = client.get(f"/api/models/{model_id}/checkpoints/{steps[0]['name']}")
        assert first_step.status_code == 200
        samples = client.get(f"/api/models/{model_id}/samples")
        assert samples.status_code == 200 and samples.content.startswith(b"\x89PNG")
        step_samples = client.get(f"/api/training/jobs/{job['id']}/samples").json()
        assert step_samples, "the built-in trainer wrote step samples"
        job_dir = server.data_dir / "jobs" / job["id"]
        log_file = server.data_dir / "logs" / f"{job['id']}.log"
        assert job_dir.is_dir() and log_file.is_file()

        response = client.delete(f"/api/training/jobs/{job['id']}")
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}

        gone = client.get("/api/training/status", params={"job_id": job["id"]})
        assert gone.status_code == 404
        assert client.get(f"/api/training/jobs/{job['id']}/metrics").status_code == 404
        assert not job_dir.exists() and not log_file.exists()
        all_jobs = client.get("/api/training/jobs", params={"status": "all"}).json()
        assert job["id"] not in {item["id"] for item in all_jobs}

        model = client.get(f"/api/models/{model_id}/checkpoint")
        assert model.status_code == 200 and model.content == checkpoint.content
        assert client.get(f"/api/models/{model_id}/checkpoints").json() == steps
        again = client.get(f"/api/models/{model_id}/checkpoints/{steps[0]['name']}")
        assert again.status_code == 200 and again.content == first_step.content
        # The model's sample sheet survives its job (docs/api.md: `GET /api/models/{id}/samples`); the job's
        # own samples route went with the job.
        samples_again = client.get(f"/api/models/{model_id}/samples")
        assert samples_again.status_code == 200, samples_again.text
        assert samples_again.headers["content-type"] == "image/png" and samples_again.content == samples.content
        job_samples = client.get(f"/api/training/jobs/{job['id']}/samples")
        assert job_samples.status_code == 404 and job_samples.json()["error"]["code"] == "job_not_found"
        model_dir = server.data_dir / "models" / model_id
        assert model_dir.is_dir() and not (model_dir / ".training-studio").exists()

        assert client.delete(f"/api/training/jobs/{job['id']}").status_code == 404
        assert client.delete(f"/api/models/{model_id}").status_code == 200
        assert not model_dir.exists()


def test_a_running_or_queued_job_cannot_be_deleted(server):
    with server.client() as client:
        dataset = committed_dataset(client)["id"]
        job = create_job(client, dataset, BUILTIN_BASE_MODEL_ID, total_steps=100_000)
        wait_job(client, job["id"], lambda j: j["status"] == "running" and (j["currentStep"] or 0) > 0, 60)
        # One job at a time (the default): a second one waits in the queue behind the running one.
        waiting = create_job(client, dataset, BUILTIN_BASE_MODEL_ID, total_steps=10, name="waiting")
        queued = wait_job(client, waiting["id"], lambda j: j["status"] == "queued", 30)
        assert queued["queuePosition"] is not None

        refused = client.delete(f"/api/training/jobs/{job['id']}")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "job_active"
        assert "cancel it before deleting it" in refused.json()["error"]["message"]
        assert client.get("/api/training/status", params={"job_id": job["id"]}).json()["status"] == "running"

        refused_queued = client.delete(f"/api/training/jobs/{waiting['id']}")
        assert refused_queued.status_code == 409, refused_queued.text
        error = refused_queued.json()["error"]
        assert error["code"] == "job_active"
        assert error["message"] == "Job 'waiting' is queued; cancel it before deleting it."
        still = client.get("/api/training/status", params={"job_id": waiting["id"]}).json()
        assert still["status"] == "queued" and still["queuePosition"] == queued["queuePosition"]

        assert client.post(f"/api/training/jobs/{waiting['id']}/cancel").json()["success"] is True
        assert wait_status(client, waiting["id"], {"cancelled"}, 60)["status"] == "cancelled"
        assert client.delete(f"/api/training/jobs/{waiting['id']}").status_code == 200
        assert client.post(f"/api/training/jobs/{job['id']}/cancel").json()["success"] is True
        assert wait_status(client, job["id"], {"cancelled"}, 60)["status"] == "cancelled"
        assert client.delete(f"/api/training/jobs/{job['id']}").status_code == 200
