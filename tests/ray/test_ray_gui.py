"""The desktop app shows Ray jobs live (issue 18): the app's real main window (its JobStore, Jobs tab and
status bar) against a real `serve --executor ray` server on the session's real local Ray head. The store
refreshes once at start and then not for an hour, so whatever reaches the window afterwards comes through
the server's event stream: a job's row goes queued/running → completed, its "Runs on" cell names the Ray
node its driver runs on, and the status bar's cluster summary says "Ray: 1 node …". The app talks only to
our server; the test asks Ray nothing."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.ray.test_ray_executor import JOB_TIMEOUT_S, PAUSE_AT, TOTAL, presets
from tests.server.helpers import committed_dataset
from tests.support.jobs import create_job, job_status
from tests.ui.app_fixtures import harness  # noqa: F401  (fixture re-export)
from tests.ui.conftest import loop, qasync_loop  # noqa: F401  (fixture re-export)
from training_studio.contract.models import JobStatus
from training_studio.ui.jobs import format as fmt
from training_studio.ui.jobs.model import JobColumn
from training_studio.ui.jobs.store import StreamState
from training_studio.ui.system.wiring import install_system_status

pytestmark = pytest.mark.timeout(400)

WAIT_MS = int(JOB_TIMEOUT_S * 1000)


def runs_on(panel, job_id: str, role=Qt.ItemDataRole.DisplayRole):
    row = panel.model.row_of(job_id)
    return None if row is None else panel.proxy.mapFromSource(panel.model.index(row, int(JobColumn.RUNS_ON))).data(role)


def test_the_window_shows_a_ray_job_live_with_its_node_and_the_cluster_in_the_status_bar(
        ray_server_factory, harness, qtbot, tmp_path):  # noqa: F811
    gate = tmp_path / "gate-open"
    srv = ray_server_factory("data", presets=presets(gate))
    with srv.client() as http:
        dataset = committed_dataset(http)

        store = harness.store(srv.url, srv.token, refresh_interval=3600.0, timeout=4.0)
        window = harness.window(store)
        install_system_status(window, store.client, store)
        panel = window.jobs_panel
        assert panel is not None
        seen: list[JobStatus] = []

        def note_status(*_args: object) -> None:
            job = store.model.job(job_id) if job_id else None
            if job is not None and (not seen or seen[-1] != job.status):
                seen.append(JobStatus(job.status))

        job_id = ""
        store.model.dataChanged.connect(note_status)
        store.model.rowsInserted.connect(note_status)
        store.start()
        qtbot.waitUntil(lambda: store.stream_state is StreamState.LIVE, timeout=30_000)
        refreshed_at = store.last_success_at

        job_id = create_job(http, dataset["id"], "gated", total_steps=TOTAL, name="on the cluster")["id"]
        qtbot.waitUntil(lambda: store.model.job(job_id) is not None, timeout=WAIT_MS)
        assert seen and seen[0] in (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING)

        # Running on the head, step by step, as the trainer prints (it waits at PAUSE_AT for the gate).
        qtbot.waitUntil(lambda: store.model.job(job_id).status is JobStatus.RUNNING
                        and (store.model.job(job_id).current_step or 0) >= PAUSE_AT - 1
                        and store.model.job(job_id).placement is not None
                        and store.model.job(job_id).placement.node is not None, timeout=WAIT_MS)
        placement = store.model.job(job_id).placement
        node = placement.node
        assert placement.executor == "ray" and node == job_status(http, job_id)["placement"]["node"]
        assert runs_on(panel, job_id) == fmt.placement_text(placement) == node
        tooltip = runs_on(panel, job_id, Qt.ItemDataRole.ToolTipRole)
        assert "Executor: Ray cluster" in tooltip and f"Node: {node}" in tooltip
        assert f"Cluster: {placement.address}" in tooltip and placement.address == srv_address(srv)

        # The status bar: the cluster first, then the server machine's own figures.
        button = window.system_status
        qtbot.waitUntil(lambda: button.isVisible() and button.text().startswith("Ray: 1 node · "), timeout=WAIT_MS)
        assert " CPU" in button.text() and "  |  CPU " in button.text()
        assert "GPU" not in button.text().split("  |  ")[0]  # the head has no GPUs: no GPU part
        cluster = button.store.info.cluster
        assert cluster.reachable and [n.node_id for n in cluster.nodes] == [node]  # the head's one node
        assert f"Ray cluster at {srv_address(srv)}: 1 node alive; Free: " in button.toolTip()

        gate.touch()
        qtbot.waitUntil(lambda: store.model.job(job_id).status is JobStatus.COMPLETED, timeout=WAIT_MS)
        done = store.model.job(job_id)
        assert done.current_step == TOTAL and done.progress == pytest.approx(100.0)
        assert runs_on(panel, job_id) == node  # where it ran
        assert seen[-2:] == [JobStatus.RUNNING, JobStatus.COMPLETED], seen
        assert store.last_success_at == refreshed_at  # no refresh ran: the event stream did all of it
        assert store.stream_state is StreamState.LIVE


def srv_address(srv) -> str:
    args = srv.extra_args
    return args[args.index("--ray-address") + 1]
