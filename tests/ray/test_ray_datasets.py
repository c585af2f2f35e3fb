"""Where a Ray job's dataset comes from and where its outputs go (issue 18), on the real local Ray head:
without `--shared-dir` a small dataset travels with the job as Ray's working_dir and the outputs are
written straight into the data dir (the head is on this machine); a dataset over the limit, or a head on
another machine, is refused with a clear reason. Caption jobs (issue 17) read their captions back, with
and without a shared folder (the stand-in captioner in tests/support)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.ray.test_ray_cluster import this_machines_addresses
from tests.ray.test_ray_executor import JOB_TIMEOUT_S, photo_dataset
from tests.server.helpers import committed_dataset, png_bytes, sha256_of
from tests.support.jobs import create_job, finished, full_log, wait_job
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID

pytestmark = pytest.mark.timeout(400)

CAPTIONER = Path(__file__).resolve().parents[1] / "support" / "standin_captioner.py"
CAPTION_PRESET = ('[[preset]]\nid = "standin-captioner"\nname = "Stand-in captioner"\nkind = "caption"\n'
                  f'command = [{json.dumps(sys.executable)}, {json.dumps(str(CAPTIONER))}, "{{dataset_dir}}"]\n')


def test_without_a_shared_folder_the_dataset_travels_as_the_jobs_working_dir_and_outputs_land_home(
        ray_server_factory, tmp_path):
    srv = ray_server_factory("data", shared_dir=False)
    with srv.client() as client:
        dataset = photo_dataset(client, tmp_path, count=12)
        job = create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, total_steps=40, name="travels")
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        log = full_log(client, job["id"])
        assert done["status"] == "completed", (done, log[-3000:])
        assert done["currentStep"] == 40
        # the trainer read Ray's unpacked working_dir (through the link its command made) and wrote home
        staging = srv.data_dir / "ray-staging" / job["id"]
        assert f"--dataset-dir {staging / 'working_dir' / 'dataset' / 'imagefolder'}" in log
        assert f"--output-dir {srv.data_dir / 'jobs' / job['id']}" in log
        assert not staging.exists()  # the staged package and the link are gone once the job ended
        assert done["placement"]["executor"] == "ray" and done["placement"]["node"]
        assert done["placement"]["host"] in this_machines_addresses()
        model = next(m for m in client.get("/api/models").json() if m["id"] == done["modelId"])
        assert model["status"] == "ready"
        checkpoint = client.get(f"/api/models/{model['id']}/checkpoint")
        assert checkpoint.status_code == 200 and len(checkpoint.content) == model["size_bytes"] > 0


def test_a_dataset_over_the_working_dir_limit_is_refused_saying_it_needs_a_shared_folder(ray_server_factory,
                                                                                        tmp_path):
    # A limit of 4 KiB (TRAINING_STUDIO_RAY_WORKING_DIR_MIB) stands for 100 MiB: the dataset is bigger.
    srv = ray_server_factory("data", shared_dir=False, env={"TRAINING_STUDIO_RAY_WORKING_DIR_MIB": "0.004"})
    with srv.client() as client:
        dataset = photo_dataset(client, tmp_path, count=8)
        job = create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, total_steps=5)
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        assert done["status"] == "failed", done
        assert done["error"].startswith("the dataset is "), done["error"]
        assert ("without --shared-dir a dataset travels with its job as Ray's working_dir, up to"
                in done["error"]), done["error"]
        assert "Start the server with --shared-dir" in done["error"]
        assert "submitting to the Ray cluster" not in full_log(client, job["id"])
        assert not (srv.data_dir / "ray-staging" / job["id"]).exists()


def test_a_head_on_another_machine_without_a_shared_folder_is_refused_before_anything_is_sent(server_factory):
    # 192.0.2.1 is TEST-NET-1 (never this machine): the job is refused before any call to it.
    srv = server_factory("data", extra_args=["--executor", "ray", "--ray-address", "http://192.0.2.1:8265"])
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, total_steps=5)
        done = wait_job(client, job["id"], finished, timeout=60)
        assert done["status"] == "failed", done
        assert done["error"] == (
            "the Ray head at http://192.0.2.1:8265 is not on this machine and the server has no --shared-dir: "
            "the job's outputs could not come back. Start the server with --shared-dir, a folder every node of "
            "the cluster sees at the same path"), done["error"]


IMAGES = [png_bytes(color=(10, 20, 30)), png_bytes(color=(40, 50, 60)), png_bytes(color=(70, 80, 90))]


@pytest.mark.parametrize("shared_dir", [True, False], ids=["shared-folder", "no-shared-folder"])
def test_a_caption_job_on_ray_reads_its_captions_back(ray_server_factory, shared_dir):
    srv = ray_server_factory("data", presets=CAPTION_PRESET, shared_dir=shared_dir)
    with srv.client() as client:
        dataset = committed_dataset(client, images=IMAGES, name="to caption")
        response = client.post(f"/api/datasets/{dataset['id']}/caption", json={"preset": "standin-captioner"})
        assert response.status_code == 201, response.text
        job = response.json()
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        log = full_log(client, job["id"])
        assert done["status"] == "completed", (done, log[-3000:])
        assert "submitting to the Ray cluster" in log and "3 caption(s) stored" in log
        assert done["placement"]["executor"] == "ray" and done["placement"]["node"]
        files = client.get(f"/api/datasets/{dataset['id']}/files").json()
        expected = {sha256_of(data): f"a 32x24 picture, colour {','.join(map(str, colour))}"
                    for data, colour in zip(IMAGES, [(10, 20, 30), (40, 50, 60), (70, 80, 90)])}
        assert {file["sha256"]: file["caption"] for file in files} == expected
