"""The server side of a job's details (issue 14) through a real server and real trainers, over real HTTP:
other series besides the loss in /metrics (JSON-lines and tqdm trainers), the job's ETA, and reading a
multi-megabyte log from its end, backwards, in chunks that stitch into the exact file. Also the preset's
`series` rule (plain)."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from tests.runner.test_jobs_e2e import photo_dataset, preset
from tests.runner.test_third_party_trainers import stand_in_preset_block
from tests.server.helpers import committed_dataset
from tests.support.jobs import create_job, finished, job_status, wait_job
from tests.support.server import with_presets
from training_studio.client import ApiClient
from training_studio.contract import parse_timestamp
from training_studio.runner.presets import PresetError, parse_preset
from training_studio.runner.progress import MAX_SCALARS, SCALAR_NAME
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID
from training_studio.server.storage import Storage

TRAINERS = Path(__file__).parent / "trainers"
PY = sys.executable
PRESETS = "\n".join([
    preset("series", [PY, str(TRAINERS / "reports_series.py"), "{total_steps}", "{output_dir}/printed.jsonl"]),
    preset("tqdm-series", [PY, str(TRAINERS / "uses_tqdm.py"), "{total_steps}", "avr_loss", "0.01"],
           progress="tqdm", loss_key="avr_loss", extra='progress_bar = "steps"\nseries = ["lr", "grad*"]'),
    preset("big-log", [PY, str(TRAINERS / "prints_a_big_log.py"), "3"]),
    preset("steady", [PY, str(TRAINERS / "steady.py"), "{total_steps}", "0.05"]),
])


@pytest.fixture
def srv(server_factory, tmp_path):
    return with_presets(server_factory, tmp_path / "data", PRESETS)


@pytest.fixture
def client(srv):
    with srv.client() as http:
        yield http


@pytest.fixture
def dataset(client) -> dict:
    return committed_dataset(client, name="cats")


def metrics(client: httpx.Client, job_id: str, **params) -> list[dict]:
    response = client.get(f"/api/training/jobs/{job_id}/metrics", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def expected_series(printed: dict) -> dict[str, float] | None:
    """What the protocol keeps of one printed progress line: finite numbers under valid names, 16 at most."""
    kept: dict[str, float] = {}
    for name, value in printed.items():
        if name in ("step", "total_steps", "loss", "message"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        if SCALAR_NAME.fullmatch(name) and len(kept) < MAX_SCALARS:
            kept[name] = float(value)
    return kept or None


def test_a_json_lines_trainer_s_other_series_are_served_per_step_exactly(client, srv, dataset):
    job = create_job(client, dataset["id"], "series", total_steps=20)
    done = wait_job(client, job["id"], finished)
    assert done["status"] == "completed", done
    printed = [json.loads(line) for line in
               (Storage(srv.data_dir).job_output_dir(job["id"]) / "printed.jsonl").read_text().splitlines()]
    want: dict[int, dict | None] = {}
    for line in printed:  # a later report of a step replaces its series only if it has some
        want[line["step"]] = expected_series(line) or want.get(line["step"])
    points = metrics(client, job["id"])
    assert [p["step"] for p in points] == list(range(1, 21))
    assert {p["step"]: p.get("scalars") for p in points} == want
    assert set(want[1]) == {"lr", "grad_norm", "epoch"}
    assert len(want[6]) == MAX_SCALARS  # the line had 23
    assert want[4] is not None  # the repeated step 4 without series did not wipe them
    assert all(p["loss"] == pytest.approx(1.0 / p["step"]) for p in points)
    # since_step gives the same points from there on, series included
    assert metrics(client, job["id"], since_step=15) == points[15:]
    # and the server log says once (at the first, step 3) that it left some out
    log = (srv.data_dir / "logs" / "server.log").read_text()
    assert log.count("ignoring series the trainer reported") == 1 and "'bad name!'" in log


def test_a_tqdm_preset_s_named_postfix_keys_are_series(client, dataset):
    job = create_job(client, dataset["id"], "tqdm-series", total_steps=50)
    done = wait_job(client, job["id"], finished)
    assert done["status"] == "completed", done
    points = metrics(client, job["id"])
    assert points and points[-1]["step"] == 50
    # uses_tqdm.py shows avr_loss (the loss: never repeated as a series) and lr = 1e-4 at every update
    assert all(p.get("scalars") == {"lr": pytest.approx(1e-4)} for p in points), points
    assert all(p["loss"] is not None for p in points)


@pytest.mark.parametrize("preset_id", ["diffusers-sd15-lora", "ai-toolkit-flux-lora"])
def test_the_shipped_presets_chart_the_learning_rate_their_trainers_display(server_factory, tmp_path, preset_id):
    """The example presets.toml's diffusers and ai-toolkit presets (stand-in trainers) name `lr` a series:
    diffusers shows it as `lr=0.0001`, ai-toolkit as `lr: 1.0e-04` (the value each stand-in was given)."""
    data_dir = tmp_path / "standins"
    data_dir.mkdir()
    (data_dir / "presets.toml").write_text(stand_in_preset_block(preset_id, "shipped", {}))
    srv = server_factory("standins", extra_args=["--cancel-grace", "1"])
    with srv.client() as client:
        dataset = committed_dataset(client, name="cats")
        job = create_job(client, dataset["id"], "shipped", total_steps=40, params={"learning_rate": 0.0002})
        done = wait_job(client, job["id"], finished, timeout=120)
        assert done["status"] == "completed", done
        points = metrics(client, job["id"])
    with_series = [p for p in points if p.get("scalars")]
    assert with_series and with_series[-1]["step"] == 40
    assert all(p["scalars"] == {"lr": pytest.approx(0.0002)} for p in with_series), with_series


def test_points_without_series_have_no_scalars_key(client, dataset):
    job = create_job(client, dataset["id"], "big-log")
    assert wait_job(client, job["id"], finished)["status"] == "completed"
    points = metrics(client, job["id"])
    assert points == [{"step": 1, "loss": 0.5, "time": points[0]["time"]}]  # exactly the old answer


def test_a_running_builtin_job_gets_an_eta_that_is_cleared_when_it_completes(client, tmp_path):
    dataset = photo_dataset(client, tmp_path, count=30)
    job = create_job(client, dataset["id"], BUILTIN_BASE_MODEL_ID, total_steps=2500, name="eta")
    seen: list[dict] = []
    deadline = time.monotonic() + 300
    while not finished(current := job_status(client, job["id"])):
        seen.append(current)
        assert time.monotonic() < deadline, f"the job did not finish: {current}"
        time.sleep(0.05)
    assert current["status"] == "completed", current
    assert current["etaAt"] is None  # cleared once it ended
    running = [j for j in seen if j["status"] == "running"]
    with_eta = [j for j in running if j["etaAt"] is not None]
    assert with_eta, "no ETA while the job ran"
    for state in with_eta:
        eta = parse_timestamp(state["etaAt"])
        assert eta is not None and state["etaAt"].endswith("Z")
        assert eta > parse_timestamp(state["startedAt"])
        assert 0 < state["currentStep"] <= 2500
    assert all(j["etaAt"] is None for j in seen if j["status"] != "running")


def test_a_restarted_server_estimates_a_re_attached_job_s_eta_afresh(srv, dataset):
    with srv.client() as client:
        job = create_job(client, dataset["id"], "steady", total_steps=600)
        before = wait_job(client, job["id"], lambda j: j["etaAt"] is not None, timeout=120)
        assert before["status"] == "running"
    srv.kill()  # the trainer runs on; the next server re-attaches to it
    srv.start()
    with srv.client() as client:
        # "estimating…" again once the new server records the trainer's progress (its own estimate)...
        again = wait_job(client, job["id"], lambda j: finished(j) or (
            j["etaAt"] is None and (j["currentStep"] or 0) > before["currentStep"]), timeout=120)
        assert again["status"] == "running", again
        # ...then an estimate of its own
        estimated = wait_job(client, job["id"], lambda j: finished(j) or j["etaAt"] is not None, timeout=120)
        assert estimated["status"] == "running" and estimated["currentStep"] > again["currentStep"], estimated
        assert client.post(f"/api/training/jobs/{job['id']}/cancel").status_code == 200
        cancelled = wait_job(client, job["id"], finished)
        assert cancelled["status"] == "cancelled" and cancelled["etaAt"] is None


def read_log(client: httpx.Client, job_id: str, **params) -> httpx.Response:
    return client.get(f"/api/training/jobs/{job_id}/logs", params=params)


def test_a_multi_megabyte_log_is_read_from_its_end_backwards_into_the_exact_file(client, srv, dataset):
    job = create_job(client, dataset["id"], "big-log")
    assert wait_job(client, job["id"], finished)["status"] == "completed"
    data = (srv.data_dir / "logs" / f"{job['id']}.log").read_bytes()
    assert len(data) > 3_000_000
    tail = read_log(client, job["id"], offset=-65536).json()
    assert tail["next_offset"] == tail["size"] == len(data)
    assert len(data) - 65536 <= tail["start"] < len(data)
    assert tail["text"].encode() == data[tail["start"]:]
    chunks, start = [tail["text"]], tail["start"]
    mid_line_starts = 0
    while start > 0:
        chunk = read_log(client, job["id"], before=start, limit=65536).json()
        assert chunk["next_offset"] == start and start - 65536 <= chunk["start"] < start
        # a chunk begins at a line start, unless the line before `start` is longer than the window
        if chunk["start"] > 0 and data[chunk["start"] - 1] not in b"\r\n":
            mid_line_starts += 1
            assert b"\n" not in data[chunk["start"]:start - 1]
        chunks.append(chunk["text"])
        start = chunk["start"]
    assert "".join(reversed(chunks)).encode() == data
    assert mid_line_starts > 0  # the long lines were crossed too
    # the same chunk sizes also stitch forward from wherever a backward read began
    forward = read_log(client, job["id"], offset=tail["start"], limit=65536).json()
    assert forward["start"] == tail["start"] and forward["text"] == tail["text"]


def test_log_range_requests_that_make_no_sense_get_a_clear_422(client, dataset):
    job = create_job(client, dataset["id"], "big-log")
    assert wait_job(client, job["id"], finished)["status"] == "completed"
    for params, field in [({"limit": 0}, "limit"),
                          ({"limit": 2_000_000}, "limit"), ({"offset": -2_000_000}, "offset"),
                          ({"before": -1}, "before")]:
        response = read_log(client, job["id"], **params)
        assert response.status_code == 422, (params, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error" and field in error["message"], (params, error)
    # before wins over offset; before=0 and a before past the end are fine
    both = read_log(client, job["id"], offset=5, before=100, limit=10).json()
    assert both["next_offset"] == 100 and 90 <= both["start"] < 100
    beginning = read_log(client, job["id"], before=0).json()
    assert beginning["text"] == "" and beginning["start"] == beginning["next_offset"] == 0 and beginning["size"] > 0
    end = read_log(client, job["id"], before=10**12, limit=100).json()
    assert end["next_offset"] == end["size"] and end["start"] >= end["size"] - 100


def test_a_preset_s_series_must_be_postfix_key_patterns_of_a_tqdm_preset():
    base = '[[preset]]\nid = "p"\ncommand = ["x"]\nprogress = "tqdm"\n'
    assert parse_preset(tomllib.loads(base + 'series = ["lr", "lr/*", "grad_norm"]')["preset"][0]).series == (
        "lr", "lr/*", "grad_norm")
    assert parse_preset(tomllib.loads(base)["preset"][0]).series == ()
    for bad, message in [('series = "lr"', "series must be a list of postfix keys"),
                         ('series = ["lr", ""]', "series must be a list of postfix keys"),
                         ('series = ["bad name"]', "series must be a list of postfix keys"),
                         ('series = [1]', "series must be a list of postfix keys")]:
        with pytest.raises(PresetError, match=message):
            parse_preset(tomllib.loads(base + bad)["preset"][0])
    jsonl = base.replace('progress = "tqdm"', 'progress = "jsonl"') + 'series = ["lr"]'
    with pytest.raises(PresetError, match='series needs progress = "tqdm"'):
        parse_preset(tomllib.loads(jsonl)["preset"][0])


def test_the_typed_client_reads_series_and_log_ranges(client, srv, dataset):
    series_job = create_job(client, dataset["id"], "series", total_steps=8)
    log_job = create_job(client, dataset["id"], "big-log")
    for job in (series_job, log_job):
        assert wait_job(client, job["id"], finished)["status"] == "completed"
    data = (srv.data_dir / "logs" / f"{log_job['id']}.log").read_bytes()

    async def main():
        api = ApiClient(srv.url, srv.token, timeout=30)
        try:
            points = await api.job_metrics(series_job["id"])
            later = await api.job_metrics(series_job["id"], since_step=4, stride=2)
            tail = await api.job_log_tail(log_job["id"], 100_000)
            older = await api.job_log_before(log_job["id"], tail.start, 100_000)
            forward = await api.job_log(log_job["id"], offset=older.start, limit=100_000)
            return points, later, tail, older, forward
        finally:
            await api.aclose()

    points, later, tail, older, forward = asyncio.run(main())
    assert [p.step for p in points] == list(range(1, 9))
    assert points[0].scalars == {"lr": pytest.approx(1e-4 * 0.9), "grad_norm": pytest.approx(0.37), "epoch": 0.0}
    assert [p.step for p in later] == [5, 7, 8]  # every 2nd after step 4, and always the latest
    assert tail.next_offset == tail.size == len(data) and tail.text.encode() == data[tail.start:]
    assert older.next_offset == tail.start and (older.text + tail.text).encode() == data[older.start:]
    assert forward.start == older.start and forward.text.encode() == data[older.start:forward.next_offset]


def test_the_event_stream_s_job_events_carry_the_eta(client, srv, dataset):
    job = create_job(client, dataset["id"], "steady", total_steps=600)
    found = None
    deadline = time.monotonic() + 120
    with client.stream("GET", "/api/training/events", timeout=30) as stream:
        event = None
        for line in stream.iter_lines():
            assert time.monotonic() < deadline, "no job event with an ETA"
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event == "job":
                data = json.loads(line[len("data: "):])
                if data["id"] == job["id"] and data.get("etaAt"):
                    found = data
                    break
    assert found is not None and found["status"] == "running"
    assert parse_timestamp(found["etaAt"]) > parse_timestamp(found["startedAt"])
    assert client.post(f"/api/training/jobs/{job['id']}/cancel").status_code == 200
    assert wait_job(client, job["id"], finished)["etaAt"] is None
