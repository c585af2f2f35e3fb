"""A trained model's final and intermediate checkpoints, and the built-in trainer's step samples (issue 13),
through the real server with real trainers: the kohya stand-in (through the stand-in `accelerate launch`,
printing no protocol line) and the built-in trainer.

A completed preset job's model is its final checkpoint; its step checkpoints are listed on the model and
served with their bytes; a built-in run's sample grids are listed while it trains; a link out of the job's
folder is refused (403) and a missing file is the documented 404, never a 500 (the server-tests fixture
checks the server log for those).
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image

from tests.runner.test_third_party_trainers import stand_in_preset_block
from tests.server.helpers import committed_dataset, jpeg_bytes, png_bytes
from tests.support.jobs import create_job, finished, job_status, wait_for, wait_job
from training_studio.client import ApiClient, NotFound, RequestRejected
from training_studio.contract import JobOutputFile
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID

TOTAL = 40
FAST = {"STAND_IN_STEP_DELAY": "0", "STAND_IN_PHASE_DELAY": "0"}


@pytest.fixture
def srv_with_presets(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    kohya = stand_in_preset_block("kohya-sd15-lora", "kohya", FAST)
    final_line = 'checkpoint_glob = "lora.safetensors"\n'
    assert final_line in kohya
    (data_dir / "presets.toml").write_text("\n".join([
        kohya,
        # declares only its step checkpoints: the model is the one of the highest step
        stand_in_preset_block("kohya-sd15-lora", "kohya-steps-only", FAST).replace(final_line, ""),
    ]))
    return server_factory("data", extra_args=["--cancel-grace", "2"])


@pytest.fixture
def client(srv_with_presets):
    with srv_with_presets.client() as http:
        yield http


@pytest.fixture
def dataset(client) -> dict:
    return committed_dataset(client, images=[png_bytes(), png_bytes(color=(9, 9, 9)), png_bytes(color=(200, 9, 9))],
                             name="cats")


def job_folder(srv, job_id: str) -> Path:
    return srv.data_dir / "jobs" / job_id  # docs/api.md, "Data dir"


def model_of(client, job: dict) -> dict:
    return next(m for m in client.get("/api/models").json() if m["id"] == job["modelId"])


def error_code(response) -> str:
    return response.json()["error"]["code"]


def completed(client, job: dict) -> dict:
    done = wait_job(client, job["id"], finished, timeout=120)
    assert done["status"] == "completed", done
    return done


def test_a_kohya_jobs_model_is_its_final_checkpoint_and_lists_its_step_checkpoints(
        client, srv_with_presets, dataset) -> None:
    job = completed(client, create_job(client, dataset["id"], "kohya", total_steps=TOTAL,
                                       params={"save_every_n_steps": 10}))
    folder = job_folder(srv_with_presets, job["id"])
    model = model_of(client, job)
    final = folder / "lora.safetensors"
    assert model["status"] == "ready" and model["training_job_id"] == job["id"]
    assert Path(model["path"]) == final.resolve() and model["size_bytes"] == final.stat().st_size
    download = client.get(f"/api/models/{model['id']}/checkpoint")
    assert download.status_code == 200 and download.content == final.read_bytes()

    listed = client.get(f"/api/models/{model['id']}/checkpoints")
    assert listed.status_code == 200, listed.text
    entries = listed.json()
    assert [(e["name"], e["step"]) for e in entries] == [(f"lora-step{s:08d}.safetensors", s) for s in (10, 20, 30, 40)]
    assert all(e["time"] and e["size"] == (folder / e["name"]).stat().st_size for e in entries)
    assert entries == client.get(f"/api/training/jobs/{job['id']}/checkpoints").json()  # the same listing
    # The stand-in writes the same zeros into every checkpoint: give each its own bytes, so that serving
    # the wrong file cannot pass.
    for entry in entries:
        (folder / entry["name"]).write_bytes(f"weights of step {entry['step']}".encode())
    for entry in entries:
        response = client.get(f"/api/models/{model['id']}/checkpoints/{entry['name']}")
        assert response.status_code == 200, response.text
        assert response.content == f"weights of step {entry['step']}".encode()
        assert response.headers["content-type"] == "application/octet-stream"
        assert entry["name"] in response.headers["content-disposition"]


def test_a_preset_declaring_only_step_checkpoints_gets_the_highest_step_as_its_model(
        client, srv_with_presets, dataset) -> None:
    job = completed(client, create_job(client, dataset["id"], "kohya-steps-only", total_steps=TOTAL,
                                       params={"save_every_n_steps": 20}))
    model = model_of(client, job)
    last = job_folder(srv_with_presets, job["id"]) / "lora-step00000040.safetensors"
    assert model["status"] == "ready" and Path(model["path"]) == last.resolve()
    assert model["size_bytes"] == last.stat().st_size
    assert client.get(f"/api/models/{model['id']}/checkpoint").content == last.read_bytes()
    assert [e["step"] for e in client.get(f"/api/models/{model['id']}/checkpoints").json()] == [20, 40]


def test_a_model_checkpoint_is_confined_to_its_job_folder_and_a_missing_one_is_a_404(
        client, srv_with_presets, dataset, tmp_path) -> None:
    job = completed(client, create_job(client, dataset["id"], "kohya", total_steps=TOTAL,
                                       params={"save_every_n_steps": 20}))
    folder = job_folder(srv_with_presets, job["id"])
    model = model_of(client, job)
    base = f"/api/models/{model['id']}"
    secret = tmp_path / "secret.safetensors"
    secret.write_bytes(b"the user's private weights")
    (folder / "lora-step00000060.safetensors").symlink_to(secret)
    refused = client.get(f"{base}/checkpoints/lora-step00000060.safetensors")
    assert refused.status_code == 403 and error_code(refused) == "outside_job_folder"
    assert b"private" not in refused.content
    # only what the preset declares as a step checkpoint is served from here
    for name in ["lora.safetensors", "secret.safetensors", "lora-step00000020.safetensors.part",
                 "sample%2F..%2Flora-step00000020.safetensors", "..%2F..%2F..%2Fstudio.db"]:
        response = client.get(f"{base}/checkpoints/{name}")
        assert response.status_code == 404 and error_code(response) == "checkpoint_not_found", (name, response.text)
    assert client.get(f"{base}/checkpoints/../../../studio.db").status_code == 404  # the client folds the dots
    # a deleted step checkpoint: gone from the list, 404 when asked for
    (folder / "lora-step00000020.safetensors").unlink()
    assert [e["step"] for e in client.get(f"{base}/checkpoints").json()] == [40, 60]  # 60: listed, never served
    gone = client.get(f"{base}/checkpoints/lora-step00000020.safetensors")
    assert gone.status_code == 404 and error_code(gone) == "checkpoint_not_found"
    # the model's own file deleted: its download is the documented 404 too
    (folder / "lora.safetensors").unlink()
    missing = client.get(f"{base}/checkpoint")
    assert missing.status_code == 404 and error_code(missing) == "checkpoint_not_found"
    for path in ("/api/models/nope/checkpoints", "/api/models/nope/checkpoints/lora-step00000040.safetensors"):
        response = client.get(path)
        assert response.status_code == 404 and error_code(response) == "model_not_found"

    async def through_the_client() -> None:
        api = ApiClient(srv_with_presets.url, srv_with_presets.token)
        try:
            listed = await api.model_checkpoints(model["id"])
            assert [(f.name, f.step) for f in listed] == [("lora-step00000040.safetensors", 40),
                                                          ("lora-step00000060.safetensors", 60)]
            assert all(isinstance(f, JobOutputFile) for f in listed)
            received: list[bytes] = []

            async def keep(chunk: bytes) -> None:
                received.append(chunk)

            size = await api.download_model_checkpoint_file(model["id"], listed[0].name, keep)
            assert b"".join(received) == (folder / listed[0].name).read_bytes() and size == listed[0].size
            with pytest.raises(NotFound) as not_found:
                await api.download_model_checkpoint_file(model["id"], "lora-step00000020.safetensors", keep)
            assert not_found.value.code == "checkpoint_not_found"
            with pytest.raises(RequestRejected) as rejected:
                await api.download_model_checkpoint_file(model["id"], listed[1].name, keep)
            assert rejected.value.code == "outside_job_folder" and rejected.value.status_code == 403
            with pytest.raises(NotFound):
                await api.model_checkpoints("nope")
        finally:
            await api.aclose()

    asyncio.run(through_the_client())


@pytest.fixture
def builtin_client(server_factory):
    server = server_factory("builtin", extra_args=["--cancel-grace", "2"])
    with server.client() as http:
        http.srv = server
        yield http


def builtin_dataset(client) -> dict:
    return committed_dataset(client, [jpeg_bytes(48, 48, seed=seed) for seed in range(4)])


def test_the_builtin_trainers_samples_are_listed_and_served_while_it_trains(builtin_client) -> None:
    client = builtin_client
    # 10 million steps: it is still training when the samples are looked at (cancelled at the end)
    job = create_job(client, builtin_dataset(client)["id"], BUILTIN_BASE_MODEL_ID, total_steps=10_000_000,
                     params={"resolution": 8, "batch_size": 4, "sample_every": 300, "checkpoint_every": 600})
    base = f"/api/training/jobs/{job['id']}"

    def listed(kind: str, at_least: int) -> list[dict] | None:
        response = client.get(f"{base}/{kind}")
        assert response.status_code == 200, response.text
        files = response.json()
        return files if len(files) >= at_least else None

    samples = wait_for(lambda: listed("samples", 2), timeout=120, what="two step samples")
    checkpoints = wait_for(lambda: listed("checkpoints", 1), timeout=120, what="an intermediate checkpoint")
    assert job_status(client, job["id"])["status"] == "running"  # seen while it trains
    steps = [s["step"] for s in samples]
    assert steps[:2] == [300, 600] and all(step % 300 == 0 for step in steps)
    assert samples[0]["name"] == "samples/step-000300.png" and samples[0]["time"] and samples[0]["size"] > 0
    assert checkpoints[0]["name"] == "checkpoints/step-000600.npz" and checkpoints[0]["step"] == 600
    image = client.get(f"{base}/samples/{samples[0]['name']}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(image.content)) as grid:
        assert grid.format == "PNG" and grid.size == (2 * 64 + 3 * 2, 2 * 64 + 3 * 2)  # 2x2 tiles of 64 px
    assert client.post(f"{base}/cancel").json() == {"success": True}
    assert wait_job(client, job["id"], finished, timeout=60)["status"] == "cancelled"


def test_a_builtin_models_intermediate_checkpoints_are_listed_on_it(builtin_client) -> None:
    client = builtin_client
    job = completed(client, create_job(client, builtin_dataset(client)["id"], BUILTIN_BASE_MODEL_ID,
                                       total_steps=30, params={"resolution": 8, "batch_size": 4,
                                                               "sample_every": 10, "checkpoint_every": 15}))
    folder = job_folder(client.srv, job["id"])
    model = model_of(client, job)
    assert model["status"] == "ready" and Path(model["path"]) == (folder / "checkpoint.npz").resolve()
    assert [s["step"] for s in client.get(f"/api/training/jobs/{job['id']}/samples").json()] == [10, 20, 30]
    entries = client.get(f"/api/models/{model['id']}/checkpoints").json()
    assert [(e["name"], e["step"]) for e in entries] == [("checkpoints/step-000015.npz", 15),
                                                         ("checkpoints/step-000030.npz", 30)]
    for entry in entries:
        response = client.get(f"/api/models/{model['id']}/checkpoints/{entry['name']}")
        assert response.status_code == 200 and response.content == (folder / entry["name"]).read_bytes()
    # the final sample sheet is the model's, not a step sample
    assert client.get(f"/api/models/{model['id']}/samples").content.startswith(b"\x89PNG")
