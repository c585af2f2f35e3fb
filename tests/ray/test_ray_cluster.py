"""`GET /api/system`'s `cluster` with `serve --executor ray` (issue 18), against the real local Ray head:
its node, CPUs and GPUs total and free (a running job holds one CPU), the node a job's driver runs on in
its placement, and a dashboard that stops answering reported as unreachable, never as an error."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.ray.test_ray_executor import JOB_TIMEOUT_S, PAUSE_AT, TOTAL, presets
from tests.server.helpers import committed_dataset
from tests.support.jobs import create_job, finished, wait_job
from training_studio.contract import ClusterInfo, SystemInfo

pytestmark = pytest.mark.timeout(400)


def this_machines_addresses() -> set[str]:
    """The IPv4 addresses of this machine's interfaces: the local head's node reports one of them (which one
    is Ray's choice: loopback, or the machine's own address on some hosts)."""
    import socket

    import psutil

    return {entry.address for entries in psutil.net_if_addrs().values() for entry in entries
            if entry.family == socket.AF_INET}


def system(client: httpx.Client) -> SystemInfo:
    response = client.get("/api/system")
    assert response.status_code == 200, response.text
    return SystemInfo.model_validate(response.json())


def wait_cluster(client: httpx.Client, predicate, timeout: float = JOB_TIMEOUT_S) -> ClusterInfo:
    """Poll /api/system until its cluster satisfies `predicate` (Ray reports usage every few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        cluster = system(client).cluster
        assert cluster is not None
        if predicate(cluster):
            return cluster
        if time.monotonic() > deadline:
            raise AssertionError(f"the cluster never became as expected: {cluster}")
        time.sleep(0.5)


def test_system_reports_the_clusters_node_and_free_cpus_and_the_node_a_job_runs_on(ray_server_factory, tmp_path):
    gate = tmp_path / "gate-open"
    srv = ray_server_factory("data", presets=presets(gate))
    with srv.client() as client:
        # A head that just started lists no node for a moment, and its usage a little later.
        idle = wait_cluster(client, lambda c: c.reachable and c.nodes_alive >= 1 and c.cpus_free is not None
                            and c.cpus_free == c.cpus_total)
        assert idle.address == srv_address(srv) and idle.error is None
        assert idle.nodes_alive == 1 and len(idle.nodes) == 1
        [node] = idle.nodes
        assert node.head and node.address in this_machines_addresses() and len(node.node_id) >= 40
        assert (node.cpus_total, node.gpus_total, node.gpus_free) == (2.0, 0.0, 0.0)  # the head: 2 CPUs, no GPU
        assert (idle.cpus_total, idle.gpus_total, idle.gpus_free) == (2.0, 0.0, 0.0)

        dataset = committed_dataset(client)
        job = create_job(client, dataset["id"], "gated", total_steps=TOTAL)
        running = wait_job(client, job["id"], lambda j: (j["currentStep"] or 0) >= PAUSE_AT - 1,
                           timeout=JOB_TIMEOUT_S)
        assert running["placement"]["node"] == node.node_id and running["placement"]["host"] == node.address
        busy = wait_cluster(client, lambda c: c.reachable and c.cpus_free == c.cpus_total - 1)
        assert busy.nodes[0].cpus_free == 1.0  # the trainer's one CPU (entrypoint_num_cpus)
        gate.touch()
        done = wait_job(client, job["id"], finished, timeout=JOB_TIMEOUT_S)
        assert done["status"] == "completed", done
        wait_cluster(client, lambda c: c.reachable and c.cpus_free == c.cpus_total)


def test_a_dashboard_that_stops_answering_makes_the_cluster_unreachable_not_the_endpoint(ray_server_factory,
                                                                                        ray_head):
    srv = ray_server_factory("data")
    with srv.client() as client:
        wait_cluster(client, lambda c: c.reachable)
        dashboard = ray_head.dashboard_pid()
        os.kill(dashboard, signal.SIGSTOP)
        try:
            stalled = wait_cluster(client, lambda c: not c.reachable)
            assert stalled.error and stalled.error.startswith("no answer from "), stalled
            assert stalled.nodes == [] and stalled.cpus_free is None
            assert system(client).host.cpu_count >= 1  # the machine's figures are still there
        finally:
            os.kill(dashboard, signal.SIGCONT)
        wait_cluster(client, lambda c: c.reachable and c.nodes_alive == 1)


def srv_address(srv) -> str:
    args = srv.extra_args
    return args[args.index("--ray-address") + 1]


def _node(node_id: str, ip: str, *, head: bool = False, state: str = "ALIVE", **resources: float) -> dict:
    return {"node_id": node_id, "node_ip": ip, "is_head_node": head, "state": state,
            "resources_total": {"memory": 1e10, f"node:{ip}": 1.0, **resources}}


def _answers(nodes: list[dict], usage: dict | None) -> tuple[dict, dict]:
    """The dashboard's two answers in Ray 2.x's shapes (as recorded from the test head)."""
    nodes_answer = {"result": True, "data": {"result": {"total": len(nodes), "result": nodes}}}
    report = {"usage": {}} if usage is None else {"usage": {}, "usageByNode": usage}
    return nodes_answer, {"result": True, "data": {"clusterStatus": {"loadMetricsReport": report}}}


def test_cluster_figures_from_the_dashboards_answers_sum_alive_nodes_and_leave_unknown_usage_unknown():
    from training_studio.runner.ray_cluster import cluster_from_answers

    nodes = [_node("w1", "10.0.0.3", CPU=6.0, GPU=2.0), _node("hd", "10.0.0.2", head=True, CPU=4.0),
             _node("w2", "10.0.0.4", CPU=6.0, GPU=2.0), _node("gone", "10.0.0.9", state="DEAD", CPU=8.0)]
    usage = {"hd": {"CPU": [1.0, 4.0], "memory": [0.0, 1e10]},  # no GPU on the head: Ray leaves it out
             "w1": {"CPU": [2.0, 6.0], "GPU": [1.5, 2.0]},
             "w2": {"CPU": [1.0, 6.0], "GPU": [0.5, 2.0]}}
    cluster = cluster_from_answers(*_answers(nodes, usage), address="http://10.0.0.2:8265")
    assert cluster.reachable and cluster.address == "http://10.0.0.2:8265"
    assert (cluster.nodes_alive, cluster.nodes_dead) == (3, 1)
    assert [(n.node_id, n.address, n.head) for n in cluster.nodes] == [
        ("hd", "10.0.0.2", True), ("w1", "10.0.0.3", False), ("w2", "10.0.0.4", False)]
    assert [(n.cpus_free, n.cpus_total, n.gpus_free, n.gpus_total) for n in cluster.nodes] == [
        (3.0, 4.0, 0.0, 0.0), (4.0, 6.0, 0.5, 2.0), (5.0, 6.0, 1.5, 2.0)]
    assert (cluster.cpus_free, cluster.cpus_total, cluster.gpus_free, cluster.gpus_total) == (12.0, 16.0, 2.0, 4.0)

    # a node whose usage Ray has not reported yet: its free figures, and the cluster's, are unknown
    partly = cluster_from_answers(*_answers(nodes, {"hd": usage["hd"]}))
    assert partly.nodes[0].cpus_free == 3.0 and partly.nodes[1].cpus_free is None
    assert partly.cpus_free is None and partly.cpus_total == 16.0
    assert cluster_from_answers(*_answers(nodes, None)).gpus_free is None


def test_dashboard_answers_of_another_shape_are_refused_not_guessed():
    from training_studio.runner.ray_cluster import cluster_from_answers

    for broken in ({}, {"data": {"result": {"result": "nodes"}}}, [], None):
        with pytest.raises(ValueError):
            cluster_from_answers(broken, {})
