"""Jobs through the real server process: real trainers, real HTTP, real restarts.

Third-party trainers are stood in for by the scripts in tests/runner/trainers/, declared as presets in
the data dir's presets.toml before the server starts, exactly as a user would declare kohya's script.
"""

from __future__ import annotations

import io
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.server.helpers import committed_dataset, upload
from tests.support.jobs import create_job, finished, full_log, job_status, wait_job
from tests.support.processes import kill_leftovers, pid_alive
from tests.support.server import with_presets
from tests.trainers.images import write_image_set
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID
from training_studio.server.storage import Storage

TRAINERS = Path(__file__).parent / "trainers"
PY = sys.executable


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def preset(preset_id: str, command: list[str], *, progress: str = "jsonl", loss_key: str = "loss",
           extra: str = "", params: str = "") -> str:
    return (f'[[preset]]\nid = "{preset_id}"\nname = "{preset_id}"\ncommand = {toml_list(command)}\n'
            f'progress = "{progress}"\nloss_key = "{loss_key}"\n{extra}\n{params}\n')


DELAY_PARAM = ('[[preset.params]]\nname = "delay"\ntype = "float"\ndefault = 0.05\nmin = 0.0\nmax = 5.0\n'
               'description = "seconds per step"\n')
NOTE_PARAM = '[[preset.params]]\nname = "note"\ntype = "str"\ndefault = ""\ndescription = "free text"\n'

PRESETS = "\n".join([
    preset("steady", [PY, str(TRAINERS / "steady.py"), "{total_steps}", "{params.delay}"], params=DELAY_PARAM),
    preset("fails", [PY, str(TRAINERS / "fails_with_error.py")]),
    preset("sigkill", [PY, str(TRAINERS / "killed_by_sigkill.py")]),
    preset("ignores-term", [PY, str(TRAINERS / "ignores_sigterm.py")]),
    preset("spawns-child", [PY, str(TRAINERS / "spawns_child.py"), "{output_dir}/child.pid"]),
    preset("flood", [PY, str(TRAINERS / "floods_output.py"), "{total_steps}"]),
    preset("tqdm", [PY, str(TRAINERS / "uses_tqdm.py"), "{total_steps}", "avr_loss", "{params.delay}"],
           progress="tqdm", loss_key="avr_loss", params=DELAY_PARAM),
    preset("argv-dump", [PY, "-c", "import json, sys; print('ARGV ' + json.dumps(sys.argv[1:]))",
                         "{params.note}", "{dataset_dir}"], params=NOTE_PARAM),
    preset("writes-file", [PY, "-c", "import sys, pathlib; pathlib.Path(sys.argv[1], 'lora.safetensors')"
                                     ".write_bytes(b'w' * 1234)", "{output_dir}"],
           extra='checkpoint_glob = "*.safetensors"'),
    preset("missing-program", [str(TRAINERS / "no-such-trainer")]),
])


@pytest.fixture
def srv(server_factory, tmp_path):
    return with_presets(server_factory, tmp_path / "data", PRESETS)


@pytest.fixture
def client(srv):
    with srv.client() as http:
        yield http


@pytest.fixture
def leftover_pids():
    """PIDs a failing test could leave running (a trainer's child); SIGKILLed at teardown."""
    yield from kill_leftovers()


@pytest.fixture
def dataset(client) -> dict:
    return committed_dataset(client, name="; rm -rf ~")


def trainer_child(client: httpx.Client, srv, job_id: str, leftover_pids: list[int]) -> int:
    """PID of the child a running "spawns-child" trainer started (listed for SIGKILL at teardown)."""
    pid_file = Storage(srv.data_dir).job_output_dir(job_id) / "child.pid"
    wait_job(client, job_id, lambda j: (j["currentStep"] or 0) > 0 and pid_file.exists())
    child = int(pid_file.read_text())
    leftover_pids.append(child)
    return child


# --- the built-in trainer, end to end ---------------------------------------------------------------

def photo_dataset(client: httpx.Client, tmp_path: Path, style: str = "warm", count: int = 100) -> dict:
    folder = tmp_path / f"images-{style}"
    paths = write_image_set(folder, count, style, seed=7)
    response = client.post("/api/datasets", json={"name": f"{style} photos", "type": "image"})
    dataset = response.json()
    with ThreadPoolExecutor(max_workers=4) as pool:  # httpx.Client is thread-safe
        statuses = list(pool.map(lambda p: upload(client, dataset["id"], p.read_bytes(), p.name).status_code, paths))
    assert statuses == [201] * count
    committed = client.post(f"/api/datasets/{dataset['id']}/commit")
    assert committed.status_code == 200, committed.text
    return committed.json()


def test_a_builtin_job_trains_on_real_images_and_registers_its_model(client, tmp_path):
    dataset = photo_dataset(client, tmp_path)
    job = create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, total_steps=300, name="warm vae")
    assert job["status"] == "pending"
    done = wait_job(client, job["id"], finished)
    log = full_log(client, job["id"])
    assert done["status"] == "completed", (done, log[-2000:])
    assert done["progress"] == 100 and done["currentStep"] == 300 and done["totalSteps"] == 300
    assert done["currentLoss"] is not None and done["currentLoss"] > 0
    assert done["startedAt"] and done["finishedAt"] and done["finishedAt"] >= done["startedAt"]
    assert done["error"] is None

    evaluation = next(json.loads(line) for line in log.splitlines() if '"event": "evaluation"' in line)
    assert evaluation["heldout_mse"] <= 0.7 * evaluation["baseline_mse"]

    models = client.get("/api/models").json()
    [model] = [m for m in models if m["training_job_id"] == job["id"]]
    assert done["modelId"] == model["id"]
    assert model["status"] == "ready" and model["base_model"] == BUILTIN_BASE_MODEL_ID
    checkpoint = client.get(f"/api/models/{model['id']}/checkpoint")
    assert checkpoint.status_code == 200 and len(checkpoint.content) == model["size_bytes"] > 0
    with np.load(io.BytesIO(checkpoint.content)) as arrays:
        assert arrays["W"].shape == (32 * 32 * 3, 16)
    samples = client.get(f"/api/models/{model['id']}/samples")
    assert samples.status_code == 200
    with Image.open(io.BytesIO(samples.content)) as image:
        assert image.format == "PNG" and image.width >= 256

    # metrics per the contract: ascending, since_step, stride keeps the latest
    every = client.get(f"/api/training/jobs/{job['id']}/metrics").json()
    assert [p["step"] for p in every] == list(range(1, 301))
    assert every[-1]["loss"] == pytest.approx(done["currentLoss"])
    strided = client.get(f"/api/training/jobs/{job['id']}/metrics", params={"since_step": 100, "stride": 50}).json()
    assert [p["step"] for p in strided] == [101, 151, 201, 251, 300]
    assert all(p["time"].endswith("Z") for p in strided)
    # logs: offsets page through the same text; past the end is empty
    size = client.get(f"/api/training/jobs/{job['id']}/logs", params={"offset": 0}).json()["size"]
    assert len(log.encode()) == size
    tail = client.get(f"/api/training/jobs/{job['id']}/logs", params={"offset": size + 10}).json()
    assert tail == {"text": "", "next_offset": size, "size": size, "start": size}


def test_a_builtin_job_on_a_single_image_completes(client):
    dataset = committed_dataset(client)
    job = create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, total_steps=5, params={"latent_dim": 4})
    done = wait_job(client, job["id"], finished)
    assert done["status"] == "completed", full_log(client, job["id"])[-1000:]
    assert done["currentStep"] == 5 and done["modelId"]
    log = full_log(client, job["id"])
    assert '"heldout_images": 0' in log and "latent_dim=4" in log


# --- queue and cancel ------------------------------------------------------------------------------

def test_two_jobs_at_concurrency_one_run_one_after_the_other(client, dataset):
    first = create_job(client, dataset["id"], "steady", total_steps=15, params={"delay": 0.05}, name="first")
    second = create_job(client, dataset["id"], "steady", total_steps=5, params={"delay": 0.01}, name="second")
    wait_job(client, first["id"], lambda j: j["status"] == "running")
    assert job_status(client, second["id"])["status"] == "queued"
    active = client.get("/api/training/jobs", params={"status": "active"}).json()
    assert [j["id"] for j in active] == [first["id"], second["id"]]
    while True:
        second_seen = job_status(client, second["id"])
        if finished(job_status(client, first["id"])):
            break
        # read before the first job's state, which was unfinished even later: the second one waits
        assert second_seen["status"] == "queued" and second_seen["startedAt"] is None
        time.sleep(0.05)
    a = wait_job(client, first["id"], finished)
    b = wait_job(client, second["id"], finished)
    assert a["status"] == b["status"] == "completed"
    assert b["startedAt"] >= a["finishedAt"]
    assert b["currentStep"] == 5 and b["currentLoss"] == pytest.approx(0.2)


def test_cancel_of_a_running_and_of_a_queued_job(client, dataset, srv):
    running = create_job(client, dataset["id"], "steady", total_steps=100000, params={"delay": 0.05})
    queued = create_job(client, dataset["id"], "steady", total_steps=5)
    wait_job(client, running["id"], lambda j: j["status"] == "running" and (j["currentStep"] or 0) > 0)
    assert job_status(client, queued["id"])["status"] == "queued"

    assert client.post(f"/api/training/jobs/{queued['id']}/cancel").json() == {"success": True}
    assert job_status(client, queued["id"])["status"] == "cancelled"
    assert client.post(f"/api/training/jobs/{running['id']}/cancel").json() == {"success": True}
    done = wait_job(client, running["id"], finished, timeout=20)
    assert done["status"] == "cancelled" and done["finishedAt"]
    assert client.post(f"/api/training/jobs/{running['id']}/cancel").json() == {"success": True}  # idempotent

    # The freed slot goes to the next job in the queue, never to the cancelled one.
    after = create_job(client, dataset["id"], "steady", total_steps=3)
    assert wait_job(client, after["id"], finished)["status"] == "completed"
    never = job_status(client, queued["id"])
    assert never["status"] == "cancelled" and never["startedAt"] is None and never["currentStep"] is None
    assert full_log(client, queued["id"]) == ""


def test_a_trainer_ignoring_sigterm_is_cancelled_after_the_grace(client, dataset):
    job = create_job(client, dataset["id"], "ignores-term")
    wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) > 0)
    client.post(f"/api/training/jobs/{job['id']}/cancel")
    done = wait_job(client, job["id"], finished, timeout=60)
    assert done["status"] == "cancelled"
    # It heard SIGTERM, ignored it and trained on inside the grace, until SIGKILL ended it.
    heard = re.search(r"SIGTERM ignored at step (\d+)", full_log(client, job["id"]))
    assert heard is not None and done["currentStep"] > int(heard[1]), done


def test_cancel_kills_the_trainers_children_too(client, dataset, srv, leftover_pids):
    job = create_job(client, dataset["id"], "spawns-child")
    child = trainer_child(client, srv, job["id"], leftover_pids)
    assert pid_alive(child)
    client.post(f"/api/training/jobs/{job['id']}/cancel")
    done = wait_job(client, job["id"], finished, timeout=20)
    assert done["status"] == "cancelled"
    assert not pid_alive(child)


# --- failures --------------------------------------------------------------------------------------

def test_a_trainer_that_exits_1_fails_with_its_error_line(client, dataset):
    job = create_job(client, dataset["id"], "fails")
    done = wait_job(client, job["id"], finished)
    assert done["status"] == "failed"
    assert done["error"] == "ValueError: boom at step 3 (exit status 1)"
    assert done["currentStep"] == 3 and done["progress"] < 100
    assert "Traceback" in full_log(client, job["id"])


def test_a_trainer_killed_by_sigkill_fails_saying_so(client, dataset):
    done = wait_job(client, create_job(client, dataset["id"], "sigkill")["id"], finished)
    assert done["status"] == "failed" and done["error"] == "the trainer was killed by SIGKILL"


def test_a_trainer_that_cannot_start_fails_with_the_reason(client, dataset):
    done = wait_job(client, create_job(client, dataset["id"], "missing-program")["id"], finished)
    assert done["status"] == "failed"
    assert "could not start the trainer" in done["error"] and "no-such-trainer" in done["error"]


# --- output formats --------------------------------------------------------------------------------

def test_a_real_tqdm_trainer_is_read(client, dataset):
    job = create_job(client, dataset["id"], "tqdm", total_steps=60, params={"delay": 0.01})
    done = wait_job(client, job["id"], finished)
    assert done["status"] == "completed", full_log(client, job["id"])[-1000:]
    assert done["currentStep"] == 60 and done["totalSteps"] == 60
    assert done["currentLoss"] == pytest.approx(2.0 / 61, rel=1e-2)
    metrics = client.get(f"/api/training/jobs/{job['id']}/metrics").json()
    assert metrics[-1]["step"] == 60 and len(metrics) >= 2
    assert "saved model to lora.safetensors" in full_log(client, job["id"])


def test_a_trainer_printing_100000_lines_quickly(client, dataset):
    job = create_job(client, dataset["id"], "flood", total_steps=100_000)
    done = wait_job(client, job["id"], finished, timeout=90)
    assert done["status"] == "completed"
    assert done["currentStep"] == 100_000 and done["currentLoss"] == pytest.approx(1e-5)
    latest = client.get(f"/api/training/jobs/{job['id']}/metrics", params={"since_step": 99_990}).json()
    assert [p["step"] for p in latest] == list(range(99_991, 100_001))
    strided = client.get(f"/api/training/jobs/{job['id']}/metrics", params={"stride": 1000}).json()
    assert len(strided) == 101 and strided[-1]["step"] == 100_000
    log = full_log(client, job["id"])
    assert log.count('"step"') == 100_000 and "checkpoint of the loop at 100000" in log


def test_placeholders_are_argv_items_never_shell_text(client, dataset, tmp_path, srv):
    hostile = f"; touch {tmp_path}/pwned $(touch {tmp_path}/pwned2) `id`"
    job = create_job(client, dataset["id"], "argv-dump", params={"note": hostile})
    done = wait_job(client, job["id"], finished)
    assert done["status"] == "completed"
    line = next(line for line in full_log(client, job["id"]).splitlines() if line.startswith("ARGV "))
    argv = json.loads(line[5:])
    assert argv == [hostile, str(Storage(srv.data_dir).dataset_layout_dir(dataset["id"], "imagefolder"))]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_a_presets_checkpoint_glob_registers_the_model(client, dataset):
    job = create_job(client, dataset["id"], "writes-file")
    done = wait_job(client, job["id"], finished)
    assert done["status"] == "completed" and done["modelId"]
    model = next(m for m in client.get("/api/models").json() if m["id"] == done["modelId"])
    assert model["status"] == "ready" and model["size_bytes"] == 1234
    assert client.get(f"/api/models/{model['id']}/checkpoint").content == b"w" * 1234


def test_base_models_list_presets_with_their_schema(client):
    models = {m["id"]: m for m in client.get("/api/training/base-models").json()}
    assert list(models)[0] == BUILTIN_BASE_MODEL_ID
    assert models["tqdm"]["params_schema"][0]["name"] == "delay"
    assert models["tqdm"]["trainer"] == "preset:tqdm"


# --- restarts --------------------------------------------------------------------------------------

@pytest.mark.parametrize("stop", ["kill", "sigterm"])
def test_a_server_stopped_mid_job_reattaches_after_restart_and_only_cancel_ends_the_run(
        client, dataset, srv, leftover_pids, stop):
    running = create_job(client, dataset["id"], "spawns-child", name="outlives the server")
    waiting = create_job(client, dataset["id"], "steady", total_steps=3, params={"delay": 0.01}, name="waits")
    child = trainer_child(client, srv, running["id"], leftover_pids)
    assert job_status(client, waiting["id"])["status"] == "queued"
    before = job_status(client, running["id"])["currentStep"]

    if stop == "kill":
        srv.kill()  # SIGKILL: no shutdown code runs
    else:
        assert srv.stop(timeout=20) == 0  # a clean stop (Server › Restart, an upgrade)
    assert pid_alive(child), "the trainer (and its child) outlive the server"
    srv.start()
    with srv.client() as fresh:
        # re-attached: still running, and still reporting progress to the new server
        wait_job(fresh, running["id"], lambda j: j["status"] == "running" and j["currentStep"] > before + 2)
        assert pid_alive(child)
        assert job_status(fresh, waiting["id"])["status"] == "queued"  # the re-attached job holds the slot
        assert fresh.post(f"/api/training/jobs/{running['id']}/cancel").json() == {"success": True}
        cancelled = wait_job(fresh, running["id"], finished, timeout=30)
        assert cancelled["status"] == "cancelled" and cancelled["finishedAt"]
        assert not pid_alive(child)
        done = wait_job(fresh, waiting["id"], finished)  # then the queue moves on
        assert done["status"] == "completed"
        assert fresh.get("/api/training/jobs", params={"status": "active"}).json() == []


def test_concurrency_two_runs_two_jobs_at_once_and_queues_the_third(server_factory, tmp_path):
    data_dir = tmp_path / "wide"
    data_dir.mkdir()
    (data_dir / "presets.toml").write_text(PRESETS)
    wide = server_factory("wide", extra_args=["--cancel-grace", "1", "--concurrency", "2"])
    with wide.client() as client:
        dataset = committed_dataset(client)
        jobs = [create_job(client, dataset["id"], "steady", total_steps=100000, name=f"j{i}") for i in range(3)]
        wait_job(client, jobs[0]["id"], lambda j: j["status"] == "running")
        wait_job(client, jobs[1]["id"], lambda j: j["status"] == "running")
        assert job_status(client, jobs[2]["id"])["status"] == "queued"
        client.post(f"/api/training/jobs/{jobs[0]['id']}/cancel")
        wait_job(client, jobs[2]["id"], lambda j: j["status"] == "running")  # the freed slot
        assert wait_job(client, jobs[0]["id"], finished)["status"] == "cancelled"
        for job in jobs[1:]:
            client.post(f"/api/training/jobs/{job['id']}/cancel")
            assert wait_job(client, job["id"], finished, timeout=20)["status"] == "cancelled"
