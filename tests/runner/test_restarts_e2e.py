"""A server crash never loses a training run: real server processes, real trainers, kill -9 and restarts.

Trainers run under their own wrapper and write to files (runner/trainer_wrapper.py), so killing or
stopping the server costs a run nothing: the next server re-attaches, reads on from where the output was
last recorded (every step once, the log text once) and records the real end of a trainer that finished
meanwhile. Also here: a trainer's environment carries none of the server's settings (the API token
first), a setsid'd grandchild does not survive cancel, and a checkpoint_glob match that links out of
the job's folder is never registered.
"""

from __future__ import annotations

import json
import sqlite3
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.server.helpers import committed_dataset
from tests.support.jobs import create_job, finished, full_log, job_status, wait_for, wait_job
from tests.support.processes import kill_leftovers, pid_alive
from tests.support.server import ServerProcess
from training_studio.runner.trainer_wrapper import JobFiles, read_json

TRAINERS = Path(__file__).parent / "trainers"
GATED = Path(__file__).parents[1] / "ui" / "trainers" / "gated.py"
PY = sys.executable
TOTAL, PAUSE_AT = 40, 15


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def presets(gates: Path, outside: Path) -> str:
    entries = [
        ("gated-tqdm", [PY, str(TRAINERS / "gated_tqdm.py"), "{total_steps}", "{output_dir}", str(PAUSE_AT),
                        str(gates / "open")], 'progress = "tqdm"\ncheckpoint_glob = "*.safetensors"'),
        ("gated-fail", [PY, str(GATED), str(gates), "open", "fail"], ""),
        ("setsid", [PY, str(TRAINERS / "setsid_grandchild.py"), "{output_dir}/grandchild.pid", "forever"], ""),
        ("steady", [PY, str(TRAINERS / "steady.py"), "{total_steps}", "0.05"], ""),
        ("links-out", [PY, "-c", "import os, sys; os.symlink(sys.argv[2], os.path.join(sys.argv[1], "
                                 "'lora.safetensors'))", "{output_dir}", str(outside)],
         'checkpoint_glob = "*.safetensors"'),
    ]
    return "\n".join(f'[[preset]]\nid = "{pid}"\nname = "{pid}"\ncommand = {toml_list(cmd)}\n{extra}\n'
                     for pid, cmd, extra in entries)


@pytest.fixture
def gates(tmp_path: Path) -> Path:
    folder = tmp_path / "gates"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside-secret.bin"
    secret.write_bytes(b"not the model" * 100)
    return secret


@pytest.fixture
def srv(server_factory, tmp_path: Path, gates: Path, outside: Path) -> ServerProcess:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "presets.toml").write_text(presets(gates, outside))
    return server_factory("data", extra_args=["--cancel-grace", "1"])


@pytest.fixture
def leftover_pids():
    yield from kill_leftovers()


def job_files(srv: ServerProcess, job_id: str) -> JobFiles:
    return JobFiles.for_output_dir(srv.data_dir / "jobs" / job_id)


def stop_server(srv: ServerProcess, how: str) -> None:
    if how == "kill -9":
        srv.kill()
    else:
        assert srv.stop(timeout=20) == 0


def assert_completed_once(client: httpx.Client, job_id: str) -> None:
    """Completed with its model; every step recorded, none missing; every log line exactly once."""
    done = wait_job(client, job_id, finished)
    log = full_log(client, job_id)
    assert done["status"] == "completed", (done, log[-2000:])
    assert done["currentStep"] == TOTAL and done["progress"] == 100
    steps = [point["step"] for point in client.get(f"/api/training/jobs/{job_id}/metrics").json()]
    assert [step for step in steps if step >= 1] == list(range(1, TOTAL + 1))
    for step in range(1, TOTAL + 1):
        assert log.count(f"trained step {step}\n") == 1, (step, log[-3000:])
    assert log.count("starting: ") == 1 and log.count("the trainer ended") == 1
    assert log.count("saved model to lora.safetensors") == 1
    model = next(m for m in client.get("/api/models").json() if m["id"] == done["modelId"])
    assert model["status"] == "ready" and model["size_bytes"] == 4321


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
def test_a_preset_job_survives_the_server_and_completes_with_every_step_once(srv, gates, how):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "gated-tqdm", total_steps=TOTAL, name="outlives the server")
        wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= PAUSE_AT - 1)
    stop_server(srv, how)
    wrapper = read_json(job_files(srv, job["id"]).wrapper_info)
    assert wrapper and pid_alive(wrapper["trainer_pid"]), "the trainer outlives the server"
    srv.start()
    with srv.client() as client:
        # re-attached to the live trainer, which is still waiting at its gate
        assert job_status(client, job["id"])["status"] == "running"
        (gates / "open").touch()
        assert_completed_once(client, job["id"])
        assert full_log(client, job["id"]).count("a new server follows this trainer from here on") == 1
    assert not pid_alive(wrapper["trainer_pid"]) and not pid_alive(wrapper["pid"])


def test_a_preset_job_that_completed_while_the_server_was_down_is_recorded_as_completed(srv, gates):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "gated-tqdm", total_steps=TOTAL)
        wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= PAUSE_AT - 1)
    srv.kill()
    (gates / "open").touch()
    wait_for(job_files(srv, job["id"]).exit_status.exists, what="the trainer to finish while no server runs")
    srv.start()
    with srv.client() as client:
        assert_completed_once(client, job["id"])


def test_a_job_that_failed_while_the_server_was_down_is_recorded_with_its_reason(srv, gates):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "gated-fail", total_steps=2)
        wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= 1)
    srv.kill()
    (gates / "open").touch()
    wait_for(job_files(srv, job["id"]).exit_status.exists, what="the trainer to fail while no server runs")
    srv.start()
    with srv.client() as client:
        failed = wait_job(client, job["id"], finished)
        assert failed["status"] == "failed"
        assert failed["error"].startswith("RuntimeError: CUDA out of memory while allocating 2.00 GiB (exit status ")


def test_a_maintenance_server_without_runner_still_follows_a_running_job(srv, gates):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "gated-tqdm", total_steps=TOTAL)
        wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= PAUSE_AT - 1)
        pending = create_job(client, dataset["id"], "steady", total_steps=3, name="never started here")
    srv.kill()
    srv.extra_args = [*srv.extra_args, "--no-runner"]
    srv.start()
    with srv.client() as client:
        assert job_status(client, job["id"])["status"] == "running"
        (gates / "open").touch()
        assert_completed_once(client, job["id"])
        assert job_status(client, pending["id"])["status"] == "pending"


def test_cancel_leaves_no_setsid_grandchild_behind(srv, leftover_pids):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "setsid", total_steps=10)
        pid_file = srv.data_dir / "jobs" / job["id"] / "grandchild.pid"
        wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) > 0 and pid_file.exists())
        grandchild = int(pid_file.read_text())
        leftover_pids.append(grandchild)
        session = Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[3]
        assert int(session) == grandchild, "the grandchild leads a session of its own"
        assert client.post(f"/api/training/jobs/{job['id']}/cancel").json() == {"success": True}
        done = wait_job(client, job["id"], finished, timeout=30)
        assert done["status"] == "cancelled"
        assert not pid_alive(grandchild)  # gone by the time the job reads cancelled


def test_a_trainer_never_sees_the_servers_token_nor_settings(tmp_path: Path, gates, outside):
    """The token reaches the server the way the desktop app passes it (TRAINING_STUDIO_TOKEN)."""
    data_dir = tmp_path / "envdata"
    data_dir.mkdir()
    (data_dir / "presets.toml").write_text(presets(gates, outside))
    srv = ServerProcess(data_dir, token="a-secret-token-" + "x" * 20)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRAINING_STUDIO_TOKEN": srv.token,
           "TRAINING_STUDIO_DATA_DIR": str(data_dir)}
    with open(srv.log_path, "ab") as log:
        srv.proc = subprocess.Popen([PY, "-m", "training_studio", "serve", "--port", "0", "--cancel-grace", "1"],
                                    stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        srv._wait_ready()
        with srv.client() as client:
            dataset = committed_dataset(client)
            job = create_job(client, dataset["id"], "steady", total_steps=100_000)
            wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) > 0)
            wrapper = read_json(job_files(srv, job["id"]).wrapper_info)
            for pid in (wrapper["pid"], wrapper["trainer_pid"]):
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                assert srv.token.encode() not in b"\0".join(environ)
                names = {item.split(b"=", 1)[0] for item in environ if item}
                assert b"TRAINING_STUDIO_TOKEN" not in names and b"TRAINING_STUDIO_DATA_DIR" not in names
                assert f"TRAINING_STUDIO_JOB_ID={job['id']}".encode() in environ
            client.post(f"/api/training/jobs/{job['id']}/cancel")
            assert wait_job(client, job["id"], finished, timeout=30)["status"] == "cancelled"
    finally:
        srv.stop()


def test_a_checkpoint_glob_match_linking_out_of_the_job_folder_is_not_registered(srv, outside):
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "links-out", total_steps=1)
        done = wait_job(client, job["id"], finished)
        assert done["status"] == "completed" and done["modelId"] is None
        assert (srv.data_dir / "jobs" / job["id"] / "lora.safetensors").is_symlink()
        assert all(model["training_job_id"] != job["id"] for model in client.get("/api/models").json())


def test_a_server_killed_before_it_recorded_the_wrapper_finds_it_by_the_wrappers_own_record(srv, gates):
    """The crash window between starting a wrapper and recording it in the database, reproduced by
    putting the database and the log back as they were in it (no wrapper row, the log's header only)."""
    with srv.client() as client:
        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "gated-tqdm", total_steps=TOTAL)
        wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= PAUSE_AT - 1)
    srv.kill()
    with sqlite3.connect(srv.data_dir / "studio.db") as db:
        db.execute("UPDATE jobs SET wrapper_pid = NULL, wrapper_start_time = NULL, stdout_offset = NULL,"
                   " stderr_offset = NULL, log_offset = NULL WHERE id = ?", (job["id"],))
        db.execute("DELETE FROM metrics WHERE job_id = ?", (job["id"],))
    log_path = srv.data_dir / "logs" / f"{job['id']}.log"
    header = log_path.read_bytes().split(b"\n", 1)[0] + b"\n"
    log_path.write_bytes(header)
    srv.start()
    with srv.client() as client:
        assert job_status(client, job["id"])["status"] == "running"
        (gates / "open").touch()
        assert_completed_once(client, job["id"])
