"""Jobs run on a real local Ray head through `serve --executor ray` (issue 18): real server process, real
HTTP, real Ray Jobs API, real trainers (the built-in one and presets), real `kill -9` of our server."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.ray.ray_head import RayHead
from tests.server.helpers import committed_dataset, upload
from tests.support.jobs import create_job, finished, full_log, job_status, wait_job
from tests.trainers.images import write_image_set
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID

# The first test also pays the session head's start (seconds on an idle machine, much more on a busy one).
pytestmark = pytest.mark.timeout(400)

TRAINERS = Path(__file__).parent / "trainers"
RUNNER_TRAINERS = Path(__file__).parent.parent / "runner" / "trainers"
PY = sys.executable
TOTAL = 12
PAUSE_AT = 6
SECOND_PAUSE_AT = 10  # the "two-gates" preset also waits here, for the gate's sibling (second_gate)
# Generous: a loaded 2-core machine, and Ray sets up each job's runtime environment first.
JOB_TIMEOUT_S = 180.0


def second_gate(gate: Path) -> Path:
    return gate.with_name(gate.name + "-2")


def presets(gate: Path) -> str:
    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(json.dumps(item) for item in items) + "]"

    two_gates = [PY, str(TRAINERS / "gated.py"), "{total_steps}", str(PAUSE_AT), str(gate), str(SECOND_PAUSE_AT),
                 str(second_gate(gate))]

    return (
        '[[preset]]\nid = "gated"\nname = "gated"\n'
        f'command = {toml_list([PY, str(TRAINERS / "gated.py"), "{total_steps}", str(PAUSE_AT), str(gate)])}\n'
        'progress = "jsonl"\nloss_key = "loss"\ncheckpoint_glob = "*.safetensors"\n'
        '[[preset.params]]\nname = "num_gpus"\ntype = "float"\ndefault = 0.0\nmin = 0.0\nmax = 8.0\n'
        'description = "GPUs Ray gives the trainer"\n\n'
        '[[preset]]\nid = "two-gates"\nname = "two gates"\n'
        f'command = {toml_list(two_gates)}\n'
        'progress = "jsonl"\nloss_key = "loss"\ncheckpoint_glob = "*.safetensors"\n\n'
        '[[preset]]\nid = "fails"\nname = "fails"\n'
        f'command = {toml_list([PY, str(TRAINERS / "fails.py")])}\n'
        'progress = "jsonl"\nloss_key = "loss"\n\n'
        '[[preset]]\nid = "tqdm"\nname = "tqdm"\n'
        f'command = {toml_list([PY, str(RUNNER_TRAINERS / "uses_tqdm.py"), "{total_steps}", "avr_loss", "0.02"])}\n'
        'progress = "tqdm"\nloss_key = "avr_loss"\nseries = ["lr"]\n'
    )


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    return tmp_path / "gate-open"


@pytest.fixture
def srv(ray_server_factory, gate):
    return ray_server_factory("data", presets=presets(gate))


def photo_dataset(client: httpx.Client, tmp_path: Path, count: int = 24) -> dict:
    paths = write_image_set(tmp_path / "images", count, "warm", seed=7)
    dataset = client.post("/api/datasets", json={"name": "warm photos", "type": "image"}).json()
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda p: upload(client, dataset["id"], p.read_bytes(), p.name).status_code, paths))
    assert statuses == [201] * count
    committed = client.post(f"/api/datasets/{dataset['id']}/commit")
    assert committed.status_code == 200, committed.text
    return committed.json()


def metric_steps(client: httpx.Client, job_id: str) -> list[int]:
    return [point["step"] for point in client.get(f"/api/training/jobs/{job_id}/metrics").json()]


def printed(step: int) -> list[str]:
    """The lines gated.py prints for a step: a log line, then its progress line."""
    return [f"trained step {step}\n", json.dumps({"step": step, "total_steps": TOTAL, "loss": 1.0 / step}) + "\n"]


def rays_log(ray_head: RayHead, job_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(ray_head.address).get_job_logs(f"training-studio-{job_id}")


def wait_rays_log(ray_head: RayHead, job_id: str, line: str, timeout: float = JOB_TIMEOUT_S) -> str:
    """Ray's own copy of the job's log (asked of Ray directly, not of our server) once it holds `line`."""
    deadline = time.monotonic() + timeout
    while True:
        text = rays_log(ray_head, job_id)
        if line in text:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"Ray's log of the job never showed {line!r}:\n{text[-2000:]}")
        time.sleep(0.2)


def wait_ray_status(ray_head: RayHead, job_id: str, status: str, timeout: float = JOB_TIMEOUT_S) -> None:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(ray_head.address)
    deadline = time.monotonic() + timeout
    while (found := str(client.get_job_status(f"training-studio-{job_id}"))) != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"Ray never reported the job {status}: {found}")
        time.sleep(0.2)


def assert_caught_up_once(client: httpx.Client, ray_head: RayHead, job_id: str, downtime_steps: range) -> str:
    """Every line the trainer printed is in our job's log exactly once, in Ray's order (those printed while
    our server was down included), and every step is one metric point."""
    log = full_log(client, job_id)
    for step in range(1, TOTAL + 1):
        for line in printed(step):
            assert log.count(line) == 1, (step, line, log[-3000:])
    assert metric_steps(client, job_id) == list(range(1, TOTAL + 1))
    # Byte for byte: our log is Ray's log plus our own "[training-studio]" notes, nothing lost or doubled.
    ours = "".join(line for line in log.splitlines(keepends=True) if not line.startswith("[training-studio]"))
    assert ours == rays_log(ray_head, job_id)
    assert ours.index(printed(downtime_steps[0])[0]) < ours.index(printed(downtime_steps[-1])[1])
    assert log.count("a new server follows this Ray job from here on") == 1
    assert log.count("submitting to the Ray cluster") == 1 and log.count("the trainer ended") == 1
    return log


def test_a_builtin_job_runs_to_completed_on_ray_with_falling_loss_and_its_model(srv, tmp_path):
    with srv.client() as client:
        dataset = photo_dataset(client, tmp_path)
        job = create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, total_steps=120, name="on ray")
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        log = full_log(client, job["id"])
        assert done["status"] == "completed", (done, log[-3000:])
        assert done["currentStep"] == 120 and done["progress"] == 100 and done["error"] is None
        assert done["placement"]["executor"] == "ray" and done["placement"]["address"].startswith("http://127.0.0.1:")
        assert done["placement"]["node"]
        points = client.get(f"/api/training/jobs/{job['id']}/metrics").json()
        assert [p["step"] for p in points] == list(range(1, 121))
        losses = [p["loss"] for p in points]
        assert sum(losses[-20:]) / 20 < sum(losses[:20]) / 20
        assert "submitting to the Ray cluster" in log and "the trainer ended (exit code 0): completed" in log
        models = [m for m in client.get("/api/models").json() if m["training_job_id"] == job["id"]]
        assert len(models) == 1 and models[0]["status"] == "ready" and models[0]["id"] == done["modelId"]
        checkpoint = client.get(f"/api/models/{models[0]['id']}/checkpoint")
        assert checkpoint.status_code == 200 and len(checkpoint.content) == models[0]["size_bytes"] > 0
        # the trainer read its dataset from, and wrote to, the shared folder; the outputs came home after
        shared_job = tmp_path / "shared" / "jobs" / job["id"]
        assert f"--dataset-dir {shared_job / 'dataset' / 'imagefolder'}" in log
        assert f"--output-dir {shared_job / 'output'}" in log
        assert not shared_job.exists()
        assert Path(srv.data_dir / "jobs" / job["id"]).is_dir() and not (srv.data_dir / "jobs" / job["id"]).is_symlink()


def test_cancelling_a_running_ray_job_stops_it(srv):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "gated", total_steps=TOTAL)
        wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= PAUSE_AT - 1, timeout=JOB_TIMEOUT_S)
        assert job_status(client, job["id"])["status"] == "running"
        response = client.post(f"/api/training/jobs/{job['id']}/cancel")
        assert response.status_code in (200, 202), response.text
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        assert done["status"] == "cancelled", (done, full_log(client, job["id"])[-2000:])
        assert done["currentStep"] == PAUSE_AT - 1


def test_a_failing_trainer_on_ray_fails_with_rays_message_and_its_root_cause(srv):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "fails", total_steps=5)
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        assert done["status"] == "failed", done
        assert "ValueError: boom at step 3" in done["error"], done["error"]
        assert done["error"] == ("Job entrypoint command failed with exit code 1: ValueError: boom at step 3 "
                                 "(exit status 1)"), done["error"]
        assert metric_steps(client, job["id"]) == [1, 2, 3]


def test_our_server_killed_and_restarted_reattaches_to_its_ray_job_without_losing_or_doubling(srv, gate,
                                                                                              ray_head):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "two-gates", total_steps=TOTAL, name="outlives the server")
        wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= PAUSE_AT - 1, timeout=JOB_TIMEOUT_S)
    srv.kill()
    # While no server of ours runs, the trainer prints steps PAUSE_AT..SECOND_PAUSE_AT-1 (log and progress
    # lines); Ray's own log shows them before our server comes back.
    gate.touch()
    downtime = range(PAUSE_AT, SECOND_PAUSE_AT)
    wait_rays_log(ray_head, job["id"], printed(downtime[-1])[1])
    srv.start()
    with srv.client() as client:
        assert job_status(client, job["id"])["status"] == "running"  # re-attached, the Ray job runs on
        # It caught up with what was printed meanwhile before the trainer prints anything more.
        caught_up = wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= downtime[-1],
                             timeout=JOB_TIMEOUT_S)
        assert caught_up["status"] == "running" and caught_up["currentStep"] == downtime[-1]
        second_gate(gate).touch()
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        assert done["status"] == "completed", (done, full_log(client, job["id"])[-3000:])
        assert done["currentStep"] == TOTAL and done["progress"] == 100
        assert_caught_up_once(client, ray_head, job["id"], downtime)
        model = next(m for m in client.get("/api/models").json() if m["id"] == done["modelId"])
        assert model["status"] == "ready" and model["size_bytes"] == 4321


def test_a_ray_job_that_completes_while_our_server_is_down_reads_completed_with_its_model_after_restart(
        srv, gate, ray_head):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "gated", total_steps=TOTAL, name="ends while the server is down")
        wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= PAUSE_AT - 1, timeout=JOB_TIMEOUT_S)
    srv.kill()
    gate.touch()  # the trainer prints its remaining steps, saves its model and exits: Ray says SUCCEEDED
    wait_ray_status(ray_head, job["id"], "SUCCEEDED")
    srv.start()
    with srv.client() as client:
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        assert done["status"] == "completed", (done, full_log(client, job["id"])[-3000:])
        assert done["currentStep"] == TOTAL and done["progress"] == 100 and done["error"] is None
        log = assert_caught_up_once(client, ray_head, job["id"], range(PAUSE_AT, TOTAL + 1))
        assert "saved model to lora.safetensors\n" in log
        model = next(m for m in client.get("/api/models").json() if m["id"] == done["modelId"])
        assert model["status"] == "ready" and model["size_bytes"] == 4321 and model["training_job_id"] == job["id"]
        checkpoint = client.get(f"/api/models/{model['id']}/checkpoint")
        assert checkpoint.status_code == 200 and checkpoint.content == b"w" * 4321


def test_a_tqdm_preset_runs_on_ray_through_the_same_parsers(srv):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "tqdm", total_steps=30)
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        assert done["status"] == "completed", (done, full_log(client, job["id"])[-2000:])
        points = client.get(f"/api/training/jobs/{job['id']}/metrics").json()
        assert [p["step"] for p in points][-1] == 30 and done["currentStep"] == 30
        assert points[-1]["loss"] == pytest.approx(2.0 / 31, rel=1e-3)
        assert points[-1]["scalars"] == {"lr": pytest.approx(1e-4)}


def test_a_ray_dashboard_that_stops_answering_mid_job_is_reconciled_when_it_answers_again(srv, ray_head, gate):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "gated", total_steps=TOTAL)
        wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= PAUSE_AT - 1, timeout=JOB_TIMEOUT_S)
        dashboard = ray_head.dashboard_pid()
        os.kill(dashboard, signal.SIGSTOP)
        try:
            stalled = wait_job(client, job["id"], lambda j: "cluster unreachable since" in (j["detail"] or ""),
                               timeout=JOB_TIMEOUT_S)
            assert stalled["status"] == "running"
            gate.touch()  # the trainer finishes while nobody can ask Ray about it
        finally:
            os.kill(dashboard, signal.SIGCONT)
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        log = full_log(client, job["id"])
        assert done["status"] == "completed", (done, log[-3000:])
        assert metric_steps(client, job["id"]) == list(range(1, TOTAL + 1))
        for step in range(1, TOTAL + 1):
            assert log.count(f"trained step {step}\n") == 1, (step, log[-3000:])


@pytest.mark.timeout(600)
def test_a_job_waits_for_an_unreachable_cluster_and_fails_when_a_restarted_head_lost_it(server_factory, tmp_path,
                                                                                     gate, ray_installed):
    """A second head of its own: not started yet (the job waits, queued), then started (the job runs),
    then killed and started again (without GCS fault tolerance it forgot the job: the job fails, saying so)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "presets.toml").write_text(presets(gate))
    head = RayHead()
    try:
        srv = server_factory("data", extra_args=["--executor", "ray", "--ray-address", head.address,
                                                 "--shared-dir", str(shared)])
        with srv.client() as client:
            dataset = committed_dataset(client)
            job = create_job(client, dataset["id"], "gated", total_steps=TOTAL)
            waiting = wait_job(client, job["id"], lambda j: (j["detail"] or "").startswith(
                "waiting for the Ray cluster: "), timeout=JOB_TIMEOUT_S)
            assert waiting["status"] == "queued"
            head.start()
            wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= PAUSE_AT - 1, timeout=JOB_TIMEOUT_S)
            head.stop()
            unreachable = wait_job(client, job["id"], lambda j: "cluster unreachable since" in (j["detail"] or ""),
                                   timeout=JOB_TIMEOUT_S)
            assert unreachable["status"] == "running"
            head.start()
            done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
            assert done["status"] == "failed" and "no longer knows this job" in done["error"], done
    finally:
        head.stop()
        head.remove()


def test_a_job_asking_for_gpus_the_cluster_lacks_stays_queued_with_rays_reason_and_can_be_cancelled(srv):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "gated", total_steps=TOTAL, params={"num_gpus": 1})
        # The head has no GPUs: Ray keeps the job PENDING, so it is queued here, saying why.
        waiting = wait_job(client, job["id"], lambda j: (j["detail"] or "").startswith("pending on the Ray cluster"),
                           timeout=JOB_TIMEOUT_S)
        assert waiting["status"] == "queued" and waiting["startedAt"] is None
        response = client.post(f"/api/training/jobs/{job['id']}/cancel")
        assert response.status_code in (200, 202), response.text
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        assert done["status"] == "cancelled" and done["startedAt"] is None, done
        assert metric_steps(client, job["id"]) == []


def test_a_ray_job_stopped_from_outside_shows_as_cancelled(srv, ray_head):
    from ray.job_submission import JobSubmissionClient

    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "gated", total_steps=TOTAL)
        wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= PAUSE_AT - 1, timeout=JOB_TIMEOUT_S)
        assert JobSubmissionClient(ray_head.address).stop_job(f"training-studio-{job['id']}")
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        assert done["status"] == "cancelled", (done, full_log(client, job["id"])[-2000:])
