"""Recently finished jobs in the monitor: jobs that finished before the window opened show dimmed with their
final state, "Clear finished" keeps them cleared at the next launch (per server, in the settings file), and
jobs older than the window do not show. Real server processes, real trainer subprocesses (a gated test
trainer the test finishes at will), real QSettings files."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from training_studio.client import read_server_info
from training_studio.contract.models import JobStatus, parse_timestamp
from training_studio.ui.jobs.model import JobColumn, JobRole
from training_studio.ui.jobs.store import FINISHED_CHECK_EVERY
from training_studio.ui.settings import MAX_CLEARED_SERVERS, AppSettings
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, wait_status

GATED = Path(__file__).parent / "trainers" / "gated.py"
GATED_PRESET = "gated"


def write_gated_preset(data_dir: Path, control: Path) -> None:
    """A preset running tests/ui/trainers/gated.py: each job waits for <control>/<gate>, then ends as told."""
    command = json.dumps([sys.executable, str(GATED), str(control), "{params.gate}", "{params.outcome}"])
    params = "".join(f'[[preset.params]]\nname = "{name}"\ntype = "str"\ndefault = "{default}"\n'
                     f'description = "{name}"\n' for name, default in (("gate", "go"), ("outcome", "complete")))
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "presets.toml").write_text(
        f'[[preset]]\nid = "{GATED_PRESET}"\nname = "Gated test trainer"\ncommand = {command}\n'
        f'progress = "jsonl"\nloss_key = "loss"\n{params}')


class Jobs:
    """Starts gated jobs on a server over HTTP and finishes them when told."""

    def __init__(self, http, control: Path) -> None:
        self.http = http
        self.control = control
        self.dataset = make_dataset(http)

    def start(self, name: str, outcome: str = "complete") -> str:
        gate = "gate-" + "".join(c if c.isalnum() else "-" for c in name)
        response = self.http.post("/api/training/jobs", json={
            "name": name, "dataset_id": self.dataset, "base_model": GATED_PRESET, "total_steps": 2,
            "params": {"gate": gate, "outcome": outcome}})
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        assert wait_status(self.http, job_id, {"running"})["status"] == "running"
        return job_id

    def finish(self, job_id: str) -> dict:
        job = self.http.get("/api/training/status", params={"job_id": job_id}).json()
        (self.control / job["params"]["gate"]).touch()
        final = wait_status(self.http, job_id, {"completed", "failed"})
        assert final["status"] in ("completed", "failed"), final
        return final

    def cancel(self, job_id: str) -> dict:
        assert self.http.post(f"/api/training/jobs/{job_id}/cancel").json()["success"] is True
        final = wait_status(self.http, job_id, {"cancelled"})
        assert final["status"] == "cancelled", final
        return final

    def run(self, name: str, outcome: str = "complete") -> dict:
        return self.finish(self.start(name, outcome))


@pytest.fixture
def gated(server_factory, tmp_path):
    control = tmp_path / "control"
    control.mkdir()
    write_gated_preset(tmp_path / "data", control)
    srv = server_factory("data", extra_args=["--cancel-grace", "1", "--concurrency", "4"])
    with srv.client() as http:
        yield srv, Jobs(http, control)


def settings_in(path: Path) -> AppSettings:
    return AppSettings(QSettings(str(path), QSettings.Format.IniFormat))


def rows(store) -> list[tuple[str, JobStatus, bool]]:
    """(name, status, dimmed) of every row, in row order."""
    model = store.model
    return [(model.job_at(r).name, model.job_at(r).status, model.index(r, 0).data(JobRole.IS_FINISHED))
            for r in range(model.rowCount())]


def wait_history_loaded(qtbot, store) -> None:
    """The first refresh and its one-off fetch of recently finished jobs are done."""
    qtbot.waitUntil(lambda: store.connected and not store._history_pending and not store.is_refreshing,
                    timeout=20_000)


def test_jobs_finished_before_the_window_opened_show_dimmed_with_their_final_state(
        harness, qtbot, gated, tmp_path, caplog):
    srv, jobs = gated
    done = jobs.run("portrait LoRA")
    failed = jobs.run("landscape LoRA", outcome="fail")
    cancelled = jobs.cancel(jobs.start("abandoned LoRA"))
    running = jobs.start("still going")

    caplog.set_level(logging.INFO, logger="training_studio.ui.jobs.store")
    store = harness.store(srv.url, srv.token)
    store.settings = settings_in(tmp_path / "settings.ini")
    window = harness.window(store)
    store.start()
    wait_history_loaded(qtbot, store)

    # createdAt order, the running job undisturbed among them, the finished ones dimmed.
    assert rows(store) == [("portrait LoRA", JobStatus.COMPLETED, True),
                           ("landscape LoRA", JobStatus.FAILED, True),
                           ("abandoned LoRA", JobStatus.CANCELLED, True),
                           ("still going", JobStatus.RUNNING, False)]
    model = store.model
    failed_row = model.row_of(failed["id"])
    assert model.index(failed_row, int(JobColumn.STATUS)).data(JobRole.DISPLAY_STATUS) == "Failed"
    assert "CUDA out of memory" in model.index(failed_row, 0).data(Qt.ItemDataRole.ToolTipRole)
    done_row = model.row_of(done["id"])
    assert model.index(done_row, int(JobColumn.STEP)).data() == "2 / 2"
    assert model.index(done_row, 0).data(Qt.ItemDataRole.ForegroundRole) is not None  # dimmed text
    assert model.index(model.row_of(running), 0).data(Qt.ItemDataRole.ForegroundRole) is None
    assert model.row_of(cancelled["id"]) is not None

    panel = window.jobs_panel
    assert panel.counts_label.text() == "1 active · 3 finished"
    assert panel.clear_action.isEnabled() and panel.table.isVisible()

    messages = [record.getMessage() for record in caplog.records]
    assert f"connected to {srv.url} (server " in "\n".join(messages)
    shown = next(m for m in messages if m.startswith("showing 3 recently finished job(s)"))
    assert "“portrait LoRA”" in shown and "“abandoned LoRA”" in shown and "still going" not in shown

    # Cleared rows are not brought back by the following refreshes, not even by the fetch of recently
    # finished jobs that repeats every FINISHED_CHECK_EVERY refreshes; the running job still updates live.
    assert store.clear_finished() == 3
    jobs.finish(running)
    qtbot.waitUntil(lambda: model.job_at(model.row_of(running)).status == JobStatus.COMPLETED, timeout=30_000)
    cycles: list[bool] = []
    store.refreshing_changed.connect(lambda refreshing: cycles.append(refreshing))
    qtbot.waitUntil(lambda: cycles.count(False) > FINISHED_CHECK_EVERY, timeout=60_000)
    assert rows(store) == [("still going", JobStatus.COMPLETED, True)]


def test_clear_finished_is_remembered_per_server_across_launches(harness, qtbot, tmp_path):
    data_dir = tmp_path / "data"
    control = tmp_path / "control"
    control.mkdir()
    write_gated_preset(data_dir, control)
    settings_path = tmp_path / "settings.ini"
    server_args = ("--cancel-grace", "1", "--concurrency", "4")

    first = harness.store(data_dir=data_dir, extra_server_args=server_args)
    first.settings = settings_in(settings_path)
    window = harness.window(first)
    first.start()
    wait_history_loaded(qtbot, first)
    info = read_server_info(data_dir)
    http = sync_client(info.url, info.token)
    jobs = Jobs(http, control)
    started = [jobs.start("cleared one"), jobs.start("cleared two", outcome="fail")]
    qtbot.waitUntil(lambda: first.model.active_count() == 2, timeout=15_000)  # seen live, then finished
    old_done, old_failed = jobs.finish(started[0]), jobs.finish(started[1])
    qtbot.waitUntil(lambda: first.model.finished_count() == 2, timeout=15_000)
    window.jobs_panel.clear_action.trigger()
    assert first.model.rowCount() == 0
    later = jobs.run("finished after the clear")
    http.close()
    window.close()
    # The server is restarted too (new port, new URL): the local server is known by its data folder.
    harness.run(first.local.stop(timeout=10))

    second = harness.store(data_dir=data_dir, extra_server_args=server_args)
    second.settings = settings_in(settings_path)  # the next launch reads the same settings file
    second.start()
    wait_history_loaded(qtbot, second)
    assert read_server_info(data_dir).url != info.url
    assert [name for name, _status, _dimmed in rows(second)] == ["finished after the clear"]
    assert second.model.row_of(old_done["id"]) is None and second.model.row_of(old_failed["id"]) is None
    assert second.model.row_of(later["id"]) is not None

    # Other settings (another user, or before any clear): the same server's jobs all show.
    third = harness.store(data_dir=data_dir, extra_server_args=server_args)
    third.settings = settings_in(tmp_path / "other-settings.ini")
    third.start()
    wait_history_loaded(qtbot, third)
    assert sorted(name for name, _status, _dimmed in rows(third)) == [
        "cleared one", "cleared two", "finished after the clear"]


def test_a_clear_on_one_server_does_not_hide_another_servers_jobs(harness, qtbot, server_factory, tmp_path):
    settings_path = tmp_path / "settings.ini"
    controls = []
    servers = []
    for name in ("a", "b"):
        control = tmp_path / f"control-{name}"
        control.mkdir()
        write_gated_preset(tmp_path / name, control)
        servers.append(server_factory(name, extra_args=["--cancel-grace", "1"]))
        controls.append(control)
    finished = []
    for label, srv, control in zip("ab", servers, controls):
        with srv.client() as http:
            finished.append(Jobs(http, control).run(f"done on {label}"))

    store_a = harness.store(servers[0].url, servers[0].token)
    store_a.settings = settings_in(settings_path)
    store_a.start()
    wait_history_loaded(qtbot, store_a)
    assert store_a.clear_finished() == 1

    store_b = harness.store(servers[1].url, servers[1].token)
    store_b.settings = settings_in(settings_path)
    store_b.start()
    wait_history_loaded(qtbot, store_b)
    assert [name for name, _s, _d in rows(store_b)] == ["done on b"]

    store_a_again = harness.store(servers[0].url, servers[0].token)
    store_a_again.settings = settings_in(settings_path)
    store_a_again.start()
    wait_history_loaded(qtbot, store_a_again)
    assert rows(store_a_again) == []


GAP_S = 8.0


def test_jobs_finished_before_the_window_of_recent_jobs_and_past_the_limit_do_not_show(harness, qtbot, gated):
    srv, jobs = gated
    old = jobs.run("finished long ago")
    time.sleep(GAP_S)  # the two finish times lie GAP_S apart: the window's edge goes between them
    recent = [jobs.run(f"recent {n}") for n in range(3)]
    old_end = parse_timestamp(old["finishedAt"]).timestamp()
    first_recent_end = parse_timestamp(recent[0]["finishedAt"]).timestamp()
    assert first_recent_end - old_end >= GAP_S
    # The store measures the window back from when it fetches, by a clock estimate that lags the server's
    # by up to 1 s (HTTP dates have whole seconds) plus a response's latency: the edge starts halfway
    # between the two finish times, so either slip may be up to GAP_S / 2 on a loaded machine.
    window_s = time.time() - (old_end + first_recent_end) / 2

    store = harness.store(srv.url, srv.token)
    store.history_window = window_s
    store.start()
    wait_history_loaded(qtbot, store)
    assert [name for name, _s, _d in rows(store)] == ["recent 0", "recent 1", "recent 2"]

    limited = harness.store(srv.url, srv.token)
    limited.history_limit = 2  # the newest two
    limited.start()
    wait_history_loaded(qtbot, limited)
    assert [name for name, _s, _d in rows(limited)] == ["recent 1", "recent 2"]


def test_a_switch_to_another_server_fetches_that_servers_recent_jobs(harness, qtbot, server_factory, tmp_path):
    from training_studio.ui.connection import ConnectionRequest, ConnectionSwitcher

    servers, names = [], []
    for name in ("a", "b"):
        control = tmp_path / f"control-{name}"
        control.mkdir()
        write_gated_preset(tmp_path / name, control)
        srv = server_factory(name, extra_args=["--cancel-grace", "1"])
        with srv.client() as http:
            names.append(Jobs(http, control).run(f"job of {name}")["name"])
        servers.append(srv)
    store = harness.store(servers[0].url, servers[0].token)
    store.start()
    wait_history_loaded(qtbot, store)
    assert [name for name, _s, _d in rows(store)] == ["job of a"]

    switcher = ConnectionSwitcher(store.client, store, None)
    harness.run(switcher.switch_to(ConnectionRequest(url=servers[1].url, token=servers[1].token)))
    wait_history_loaded(qtbot, store)
    qtbot.waitUntil(lambda: [name for name, _s, _d in rows(store)] == ["job of b"], timeout=10_000)
    switcher.shutdown()


def test_the_clear_moment_is_read_back_safely_from_a_hand_edited_settings_file(tmp_path):
    path = tmp_path / "settings.ini"
    settings = settings_in(path)
    assert settings.finished_cleared_through("http://a:1") is None
    settings.set_finished_cleared_through("http://a:1", 1_700_000_000.5)
    settings.set_finished_cleared_through("local:/data", 1_700_000_100.0)
    settings.sync()
    reread = settings_in(path)
    assert reread.finished_cleared_through("http://a:1") == 1_700_000_000.5
    assert reread.finished_cleared_through("local:/data") == 1_700_000_100.0
    with pytest.raises(ValueError):
        reread.set_finished_cleared_through("http://a:1", float("nan"))

    for garbage in ("not json", "[1, 2]", json.dumps({"http://a:1": "yesterday", "http://b:2": True,
                                                       "http://c:3": 10 ** 400, "http://d:4": 5})):
        reread.qsettings.setValue("jobs/finished_cleared_through", garbage)
        assert reread.finished_cleared_through("http://a:1") is None
        assert reread.finished_cleared_through("http://b:2") is None
        assert reread.finished_cleared_through("http://c:3") is None
    assert reread.finished_cleared_through("http://d:4") == 5.0

    # Only the most recently cleared servers are kept.
    for n in range(MAX_CLEARED_SERVERS + 5):
        reread.set_finished_cleared_through(f"http://s{n}:1", float(n))
    assert reread.finished_cleared_through("http://s0:1") is None
    assert reread.finished_cleared_through(f"http://s{MAX_CLEARED_SERVERS + 4}:1") == MAX_CLEARED_SERVERS + 4


def test_the_history_follows_the_jobs_rows_live_but_not_their_clock(qtbot, qtmodeltester):
    """The History store updates its rows from the Jobs model's changes; the 1 s tick of the running rows
    (their Elapsed cells: the clock moved, not the jobs) does not reach it."""
    from training_studio.client import ApiClient
    from training_studio.contract.models import TrainingJob
    from training_studio.ui.history.store import HistoryStore
    from training_studio.ui.jobs.model import JobListModel
    from tests.support.faulty_server import job_json

    def job(job_id: str, revision: int, **fields) -> TrainingJob:
        return TrainingJob.model_validate(job_json(job_id, revision=revision, **fields))

    jobs = JobListModel()
    jobs.apply_active_snapshot([job("a", 1), job("b", 1, created_at="2026-01-01T00:00:02.000Z")])
    client = ApiClient("http://127.0.0.1:9", None)  # never asked: the rows below are handed over
    store = HistoryStore(client, job_model=jobs)
    qtmodeltester.check(store.model)
    store.model.reset_rows([job("a", 1), job("b", 1)], more=False)
    history_changes: list[int] = []
    store.model.dataChanged.connect(lambda tl, br, roles: history_changes.append(tl.row()))

    jobs.tick()  # both run: their Elapsed cells change
    jobs.apply_updates([job("b", 2, progress=75.0)])
    assert history_changes == [1]  # b's change, and nothing for the tick before it
    assert store.model.job(1).progress == 75.0
    jobs.apply_updates([job("a", 2, status="completed", progress=100.0)])
    assert history_changes == [1, 0] and store.model.job(0).status == JobStatus.COMPLETED
