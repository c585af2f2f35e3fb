"""Our queue in front of a real local Ray head (issue 18 item 3): "held and chained jobs are submitted only
when our queue releases them, in queue order. The token never goes into runtime_env."

Everything is asked of Ray itself (the Jobs API, by the submission id `training-studio-<job id>`) as well as
of our server. "Not submitted" is never inferred from time passing: a job queued behind the held and chained
ones is submitted and finishes first (so the queue had passed them over), and when the chained jobs have run,
the held one is still absent from Ray's list of jobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.server.helpers import committed_dataset
from tests.support.jobs import finished, full_log, job_status, wait_job
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(400)

TRAINERS = Path(__file__).parent / "trainers"
PY = sys.executable
JOB_TIMEOUT_S = 180.0
PRESET_ENV = ("STUDIO_PRESET_MARK", "from-the-preset")


def submission(job_id: str) -> str:
    return f"training-studio-{job_id}"


def presets(gate: Path) -> str:
    gated = [PY, str(TRAINERS / "gated.py"), "4", "2", str(gate)]  # waits before step 2 until `gate` exists
    quick = [PY, str(TRAINERS / "gated.py"), "3"]  # no gate: three steps and a model
    return (
        f'[[preset]]\nid = "gated"\nname = "gated"\ncommand = {json.dumps(gated)}\n'
        'progress = "jsonl"\nloss_key = "loss"\ncheckpoint_glob = "*.safetensors"\n\n'
        f'[[preset]]\nid = "quick"\nname = "quick"\ncommand = {json.dumps(quick)}\n'
        'progress = "jsonl"\nloss_key = "loss"\ncheckpoint_glob = "*.safetensors"\n'
        f'env = {{ {PRESET_ENV[0]} = "{PRESET_ENV[1]}" }}\n'
    )


def rays_jobs(ray_head) -> dict:
    """Every job Ray knows, by submission id (the session head also holds other tests' jobs)."""
    from ray.job_submission import JobSubmissionClient

    return {job.submission_id: job for job in JobSubmissionClient(ray_head.address).list_jobs()}


def wait_ray_status(ray_head, job_id: str, status: str, timeout: float = JOB_TIMEOUT_S) -> None:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(ray_head.address)
    deadline = time.monotonic() + timeout
    while (found := str(client.get_job_status(submission(job_id)))) != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"Ray never reported {job_id} {status}: {found}")
        time.sleep(0.2)


def create(client: httpx.Client, dataset_id: str, preset: str, name: str, **extra) -> str:
    body = {"name": name, "dataset_id": dataset_id, "base_model": preset, "total_steps": 3, **extra}
    response = client.post("/api/training/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def queue(client: httpx.Client, job_id: str, **body) -> dict:
    response = client.patch(f"/api/training/jobs/{job_id}/queue", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_waiting(client: httpx.Client, job_id: str) -> None:
    job = job_status(client, job_id)
    assert job["status"] in ("pending", "queued") and job["startedAt"] is None, job
    assert job["queuePosition"] is not None, job
    assert job["placement"] is None or not job["placement"].get("submission_id"), job


def completed(client: httpx.Client, ray_head, job_id: str) -> dict:
    done = wait_job(client, job_id, finished, timeout=JOB_TIMEOUT_S)
    assert done["status"] == "completed", (done, full_log(client, job_id)[-2000:])
    wait_ray_status(ray_head, job_id, "SUCCEEDED")
    return done


def test_held_and_chained_jobs_reach_ray_only_when_our_queue_releases_them(ray_server_factory, ray_head,
                                                                           tmp_path):
    gate = tmp_path / "gate-a"
    srv = ray_server_factory("data", presets=presets(gate))
    with srv.client() as client:
        dataset = committed_dataset(client)["id"]
        a = create(client, dataset, "gated", "A runs until released", total_steps=4)
        b = create(client, dataset, "quick", "B after A", after_job_id=a)
        c = create(client, dataset, "quick", "C held", held=True)
        e = create(client, dataset, "quick", "E after A, moved first", after_job_id=a)
        queue(client, e, move="top")  # queue order: E, B, C
        d = create(client, dataset, "quick", "D behind them all")
        positions = {j: job_status(client, j)["queuePosition"] for j in (e, b, c, d)}
        assert positions[e] < positions[b] < positions[c] < positions[d], positions

        # A runs (waiting at its gate); D, queued behind B, C and E, is submitted and completes meanwhile:
        # the queue had looked at B, C and E and passed them over, and Ray never received them.
        wait_job(client, a, lambda j: (j["currentStep"] or 0) >= 1, timeout=JOB_TIMEOUT_S)
        wait_ray_status(ray_head, a, "RUNNING")
        completed(client, ray_head, d)
        seen = rays_jobs(ray_head)
        assert str(seen[submission(a)].status) == "RUNNING"
        for waiting in (b, c, e):
            assert submission(waiting) not in seen, (waiting, seen.get(submission(waiting)))
            assert_waiting(client, waiting)

        # A ends: both jobs chained after it are released together and run; C is still held, not in Ray.
        gate.touch()
        completed(client, ray_head, a)
        completed(client, ray_head, b)
        completed(client, ray_head, e)
        seen = rays_jobs(ray_head)
        assert submission(c) not in seen, seen.get(submission(c))
        assert_waiting(client, c)
        a_ended = seen[submission(a)].end_time
        assert seen[submission(d)].start_time < a_ended  # D went to Ray while A ran
        # B and E went to Ray only once A had ended (Ray's own clock), and in queue order: released together,
        # each is prepared in its own task, but their submissions go out one after the other in the order the
        # queue released them (ray_executor.SubmissionOrder; without it B was seen to reach Ray 1 ms before E
        # on a loaded machine).
        assert a_ended <= seen[submission(e)].start_time <= seen[submission(b)].start_time, (
            a_ended, seen[submission(e)].start_time, seen[submission(b)].start_time)

        # Released, C goes to Ray (after the release) and completes.
        released_ms = int(time.time() * 1000)
        queue(client, c, held=False)
        completed(client, ray_head, c)
        assert rays_jobs(ray_head)[submission(c)].start_time >= released_ms
        for job_id in (a, b, c, d, e):
            assert rays_jobs(ray_head)[submission(job_id)].metadata == {"training_studio_job": job_id}


class TokenInEnvServer(ServerProcess):
    """A server handed its token the way the launcher hands it: TRAINING_STUDIO_TOKEN in its environment
    (tests/support/server.py's ServerProcess uses a token file and drops the variable)."""

    def start(self) -> "TokenInEnvServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env, "TRAINING_STUDIO_TOKEN": self.token}
        args = [sys.executable, "-m", "training_studio", "serve", "--data-dir", str(self.data_dir),
                "--host", "127.0.0.1", "--port", "0", *self.extra_args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self._wait_ready()
        return self


def test_the_token_never_goes_to_ray_while_the_presets_env_does(ray_head, tmp_path):
    token = "tok-" + os.urandom(12).hex()
    data = tmp_path / "data"
    data.mkdir()
    (data / "presets.toml").write_text(presets(tmp_path / "unused-gate"))
    shared = tmp_path / "shared"
    shared.mkdir()
    srv = TokenInEnvServer(data, token=token, extra_args=[
        "--cancel-grace", "1", "--executor", "ray", "--ray-address", ray_head.address, "--shared-dir", str(shared)])
    try:
        srv.start()
        with srv.client() as client:
            assert client.get("/api/training/jobs").status_code == 200  # the token from the environment works
            dataset = committed_dataset(client)["id"]
            job = create(client, dataset, "quick", "token check")
            completed(client, ray_head, job)
            log = full_log(client, job)
        from ray.job_submission import JobSubmissionClient

        info = JobSubmissionClient(ray_head.address).get_job_info(submission(job))
        env_vars = (info.runtime_env or {}).get("env_vars", {})
        assert env_vars.get(PRESET_ENV[0]) == PRESET_ENV[1], info.runtime_env
        assert env_vars.get("PYTHONUNBUFFERED") == "1" and env_vars.get("TRAINING_STUDIO_JOB_ID") == job, env_vars
        # Of our own settings only the job's id travels; the token under no name, nor in the command.
        assert [name for name in env_vars if name.startswith("TRAINING_STUDIO_")] == ["TRAINING_STUDIO_JOB_ID"]
        sent = json.dumps({"runtime_env": info.runtime_env, "entrypoint": info.entrypoint,
                           "metadata": info.metadata})
        assert token not in sent and "TRAINING_STUDIO_TOKEN" not in sent, sent
        assert "gated.py" in info.entrypoint
        assert token not in log
    finally:
        try:
            srv.stop(timeout=10)
        except Exception:
            srv.kill()
