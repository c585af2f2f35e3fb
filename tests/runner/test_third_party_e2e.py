"""A kohya preset through the real server (issue 13): the shipped kohya preset pointed at the stand-in
trainer, started through the stand-in `accelerate launch`, with data-loader grandchildren; real HTTP.

The job's step and progress only rise and end at the total, its `detail` shows the phase before
training, /metrics holds the loss the trainer displayed at every step, a crash reads as the trainer's
own exception, and a cancel leaves no process of the launcher, the trainer or its workers.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.runner.test_third_party_trainers import stand_in_preset_block
from tests.server.helpers import committed_dataset, png_bytes
from tests.support.jobs import create_job, finished, job_status, wait_job
from tests.support.processes import kill_leftovers, pid_alive
from training_studio.server.storage import Storage

TOTAL = 40


@pytest.fixture
def srv(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    record = tmp_path / "displayed.jsonl"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\n")
    (data_dir / "presets.toml").write_text("\n".join([
        stand_in_preset_block("kohya-sd15-lora", "kohya", {
            "STAND_IN_STEP_DELAY": "0.03", "STAND_IN_PHASE_DELAY": "0.4", "STAND_IN_RECORD": str(record)}),
        stand_in_preset_block("kohya-sd15-lora", "kohya-oom", {
            "STAND_IN_STEP_DELAY": "0", "STAND_IN_FAIL_AT_STEP": "3"}),
        stand_in_preset_block("kohya-sd15-lora", "kohya-slow", {
            "STAND_IN_STEP_DELAY": "0.5", "STAND_IN_PHASE_DELAY": "0", "STAND_IN_PID_FILE": "pids.json"}),
        # samples every 10 steps, checkpoints every 20 (the parameter), slow enough to be seen while running
        stand_in_preset_block("kohya-sd15-lora", "kohya-outputs", {
            "STAND_IN_STEP_DELAY": "0.15", "STAND_IN_PHASE_DELAY": "0"}).replace(
            '"--cache_latents",', f'"--cache_latents", "--sample_every_n_steps=10", "--sample_prompts={prompts}",'),
    ]))
    server = server_factory("data", extra_args=["--cancel-grace", "2"])
    server.record = record
    return server


@pytest.fixture
def client(srv):
    with srv.client() as http:
        yield http


@pytest.fixture
def dataset(client) -> dict:
    return committed_dataset(client, images=[png_bytes(), png_bytes(color=(9, 9, 9)), png_bytes(color=(200, 9, 9))],
                             name="cats")


@pytest.fixture
def leftover_pids():
    yield from kill_leftovers()


def test_a_kohya_job_moves_forward_shows_its_phase_and_stores_the_printed_loss(client, srv, dataset) -> None:
    job = create_job(client, dataset["id"], "kohya", total_steps=TOTAL, params={"save_every_n_steps": 20})
    seen: list[dict] = []
    deadline = time.monotonic() + 120
    while True:
        current = job_status(client, job["id"])
        seen.append(current)
        if finished(current):
            break
        assert time.monotonic() < deadline, f"the job did not finish: {current}"
        time.sleep(0.05)
    assert current["status"] == "completed", current
    steps = [j["currentStep"] or 0 for j in seen]
    progress = [j["progress"] for j in seen]
    assert steps == sorted(steps) and progress == sorted(progress)
    assert current["currentStep"] == TOTAL and current["totalSteps"] == TOTAL and current["progress"] == 100
    # the phase before training: kohya's image-size and latent-caching bars, never as progress
    before = [j["detail"] for j in seen if not j["currentStep"] and j.get("detail")]
    assert any(d.startswith(("loading image sizes", "caching latents")) for d in before), before
    assert all(j["totalSteps"] == TOTAL for j in seen)
    assert current.get("detail") is None  # a finished job has no phase
    displayed: dict[int, float] = {}
    for line in srv.record.read_text().splitlines():
        entry = json.loads(line)
        displayed[entry["step"]] = entry["loss"]
    metrics = {p["step"]: p["loss"] for p in client.get(f"/api/training/jobs/{job['id']}/metrics").json()}
    assert {step: metrics.get(step) for step in displayed} == displayed
    model = client.get("/api/models").json()[0]
    assert model["status"] == "ready" and model["path"].endswith("lora.safetensors")


def test_a_kohya_crash_reads_as_the_trainers_own_exception(client, dataset) -> None:
    job = create_job(client, dataset["id"], "kohya-oom", total_steps=TOTAL)
    done = wait_job(client, job["id"], finished, timeout=120)
    assert done["status"] == "failed"
    assert done["error"].startswith("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB."), \
        done["error"]


def test_cancel_leaves_no_launcher_trainer_or_worker(client, srv, dataset, leftover_pids) -> None:
    job = create_job(client, dataset["id"], "kohya-slow", total_steps=TOTAL)
    pid_file = Storage(srv.data_dir).job_output_dir(job["id"]) / "pids.json"
    wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) > 0 and pid_file.exists(), timeout=120)
    pids = json.loads(pid_file.read_text())
    processes = [pids["launcher"], pids["trainer"], *pids["workers"]]
    leftover_pids.extend(processes)
    assert len(pids["workers"]) == 2 and all(pid_alive(pid) for pid in processes)
    response = client.post(f"/api/training/jobs/{job['id']}/cancel")
    assert response.status_code == 200 and response.json() == {"success": True}
    done = wait_job(client, job["id"], finished, timeout=60)
    assert done["status"] == "cancelled"
    assert [pid for pid in processes if pid_alive(pid)] == []


def test_samples_and_step_checkpoints_are_listed_and_served_while_the_job_runs(client, srv, dataset, tmp_path):
    job = create_job(client, dataset["id"], "kohya-outputs", total_steps=TOTAL, params={"save_every_n_steps": 20})
    base = f"/api/training/jobs/{job['id']}"

    def listed(kind: str) -> list[dict]:
        response = client.get(f"{base}/{kind}")
        assert response.status_code == 200, response.text
        return response.json()

    deadline = time.monotonic() + 120
    while not (any(s["step"] == 10 for s in listed("samples")) and any(c["step"] == 20 for c in listed("checkpoints"))):
        assert time.monotonic() < deadline and not finished(job_status(client, job["id"])), "no outputs while running"
        time.sleep(0.05)
    assert job_status(client, job["id"])["status"] == "running"  # seen while it trains
    sample = next(s for s in listed("samples") if s["step"] == 10)
    assert sample["name"].startswith("sample/lora_000010_00_") and sample["name"].endswith(".png") and sample["time"]
    image = client.get(f"{base}/samples/{sample['name']}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    checkpoint = next(c for c in listed("checkpoints") if c["step"] == 20)
    assert checkpoint["name"] == "lora-step00000020.safetensors"
    download = client.get(f"{base}/checkpoints/{checkpoint['name']}")
    assert download.status_code == 200 and len(download.content) == checkpoint["size"] > 0
    done = wait_job(client, job["id"], finished, timeout=120)
    assert done["status"] == "completed"
    assert [s["step"] for s in listed("samples")] == [10, 20, 30, 40]
    assert [c["step"] for c in listed("checkpoints")] == [20, 40]  # the final lora.safetensors is the model
    # only what the preset declares, inside the job's folder, and a sample only if it is an image
    folder = Storage(srv.data_dir).job_output_dir(job["id"])
    secret = tmp_path / "secret.png"
    secret.write_bytes(image.content)
    (folder / "sample" / "lora_000050_00_link.png").symlink_to(secret)
    (folder / "sample" / "lora_000060_00_fake.png").write_bytes(b"not an image")
    assert client.get(f"{base}/samples/sample/lora_000050_00_link.png").status_code == 403
    assert client.get(f"{base}/samples/sample/lora_000060_00_fake.png").status_code == 415
    for name in ["lora.safetensors", "../../../studio.db", "sample/../lora.safetensors"]:
        assert client.get(f"{base}/samples/{name}").status_code == 404
        assert client.get(f"{base}/checkpoints/{name}").status_code == 404
    assert client.get("/api/training/jobs/nope/samples").status_code == 404
