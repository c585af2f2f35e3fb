"""The machine in the window (issue 16): the status bar's summary and the GPU list, against a real server
subprocess whose NVML is the labelled stand-in in tests/support/stand_in_nvml (two GPUs), and against
this machine's own server (no GPU: the summary shows CPU and memory, the details say why no GPU); with
`--executor ray` (issue 18) the cluster's part of the summary and its node list."""

from __future__ import annotations

import os
from pathlib import Path

from training_studio.contract import SystemInfo
from training_studio.ui.system.summary import cluster_summary, cluster_text, format_bytes, node_rows, status_summary
from training_studio.ui.system.widgets import SystemDetailsDialog
from training_studio.ui.system.wiring import install_system_status
from tests.support.server import ServerProcess
from tests.ui.app_fixtures import harness  # noqa: F401 (fixture)

STAND_IN = Path(__file__).resolve().parents[1] / "support" / "stand_in_nvml"


def _server(tmp_path: Path, **env: str) -> ServerProcess:
    return ServerProcess(tmp_path / "data", extra_args=["--no-runner"], env=env).start()


def test_status_bar_summarises_the_machine_and_the_details_list_every_gpu(tmp_path, harness, qtbot, qtmodeltester):
    path = os.pathsep.join(p for p in (str(STAND_IN), os.environ.get("PYTHONPATH", "")) if p)
    server = _server(tmp_path, PYTHONPATH=path)
    try:
        store = harness.store(server.url, server.token)
        window = harness.window(store)
        system = install_system_status(window, store.client, store)
        store.start()
        button = window.system_status
        qtbot.waitUntil(lambda: button.isVisible() and "GPU 0 37% 61°C" in button.text(), timeout=20_000)
        assert button.text().startswith("CPU ") and "GPU 1 0%" in button.text()
        assert "Stand-in GPU A (tests)" in button.toolTip()
        button.click()
        dialog = button.dialog
        assert dialog is not None and dialog.isVisible()
        qtbot.waitUntil(lambda: dialog.table.rowCount() == 2, timeout=10_000)
        qtmodeltester.check(dialog.table.model())
        assert dialog.table.item(0, 1).text() == "Stand-in GPU A (tests)"
        assert dialog.table.item(0, 3).text() == f"{format_bytes(3 * 2**30)} / {format_bytes(24 * 2**30)}"
        assert dialog.table.item(1, 4).text() == "—"  # no sensor on that board
        assert dialog.gpu_note.isHidden()
        dialog.close()
        assert system.info is not None and len(system.info.gpus) == 2
    finally:
        server.stop()


def test_without_a_gpu_the_details_say_why(tmp_path, harness, qtbot):
    server = _server(tmp_path)
    try:
        store = harness.store(server.url, server.token)
        window = harness.window(store)
        install_system_status(window, store.client, store)
        store.start()
        button = window.system_status
        qtbot.waitUntil(lambda: button.isVisible() and button.text().startswith("CPU "), timeout=20_000)
        assert "GPU" not in button.text()
        button.click()
        dialog = button.dialog
        qtbot.waitUntil(lambda: dialog.gpu_note.text() != "", timeout=10_000)
        assert dialog.table.rowCount() == 0
        if not Path("/proc/driver/nvidia").exists():
            assert "NVML" in dialog.gpu_note.text()
        dialog.close()
    finally:
        server.stop()


def _closed_port_address() -> str:
    import socket
    with socket.socket() as closed:  # nobody listens there once it is closed
        closed.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{closed.getsockname()[1]}"


def test_a_ray_server_whose_cluster_does_not_answer_shows_it_unreachable(tmp_path, harness, qtbot):
    """issue 18: a real server with --executor ray whose dashboard address nobody listens on."""
    address = _closed_port_address()
    server = ServerProcess(tmp_path / "data", extra_args=["--no-runner", "--executor", "ray", "--ray-address",
                                                          address]).start()
    try:
        store = harness.store(server.url, server.token)
        window = harness.window(store)
        install_system_status(window, store.client, store)
        store.start()
        button = window.system_status
        qtbot.waitUntil(lambda: button.isVisible() and button.text().startswith("Ray: unreachable  |  CPU "),
                        timeout=20_000)
        assert f"Ray cluster at {address}: unreachable (connection refused)" in button.toolTip()
        button.click()
        dialog = button.dialog
        qtbot.waitUntil(lambda: dialog.cluster_label.isVisible(), timeout=10_000)
        assert dialog.cluster_label.text() == f"Ray cluster at {address}: unreachable (connection refused)"
        assert dialog.node_table.isHidden()
        dialog.close()
    finally:
        server.stop()


def _cluster_info() -> SystemInfo:
    def node(node_id: str, address: str, head: bool, cpus: tuple, gpus: tuple) -> dict:
        return {"node_id": node_id * 7, "address": address, "head": head, "cpus_free": cpus[0],
                "cpus_total": cpus[1], "gpus_free": gpus[0], "gpus_total": gpus[1]}

    return SystemInfo.model_validate({
        "host": {"name": "studio", "cpu_count": 8, "cpu_percent": 12, "memory_total": 16 * 2**30,
                 "memory_used": 5 * 2**30},
        "gpus": [], "gpu_note": "NVML is not available", "sampled_at": "2026-12-04T21:00:00Z",
        "cluster": {"reachable": True, "address": "http://10.0.0.2:8265", "nodes_alive": 3, "nodes_dead": 1,
                    "nodes": [node("a3f9c2d1", "10.0.0.2", True, (3, 4), (0, 0)),
                              node("7be04411", "10.0.0.3", False, (4, 6), (0.5, 2)),
                              node("c0ffee12", "10.0.0.4", False, (5, 6), (1.5, 2))],
                    "cpus_free": 12, "cpus_total": 16, "gpus_free": 2, "gpus_total": 4}})


def test_the_cluster_summary_is_compact_and_leaves_out_what_it_does_not_know():
    info = _cluster_info()
    assert cluster_summary(info.cluster) == "Ray: 3 nodes · 12/16 CPU · 2/4 GPU free"
    assert status_summary(info) == "Ray: 3 nodes · 12/16 CPU · 2/4 GPU free  |  CPU 12% · RAM 5.0/16.0 GiB"
    one = info.cluster.model_copy(update={"nodes_alive": 1, "cpus_free": None, "cpus_total": 2.0,
                                          "gpus_free": 0.0, "gpus_total": 0.0})
    assert cluster_summary(one) == "Ray: 1 node · ?/2 CPU free"  # usage not reported yet; no GPU part
    assert cluster_text(info.cluster) == ("Ray cluster at http://10.0.0.2:8265: 3 nodes alive, 1 gone\n"
                                          "Free: 12/16 CPUs, 2/4 GPUs")
    assert node_rows(info.cluster.nodes) == [["a3f9c2d1", "10.0.0.2", "head", "3/4", "0/0"],
                                             ["7be04411", "10.0.0.3", "worker", "4/6", "0.5/2"],
                                             ["c0ffee12", "10.0.0.4", "worker", "5/6", "1.5/2"]]


def test_the_details_list_every_node_of_the_cluster(qtbot, qtmodeltester):
    dialog = SystemDetailsDialog()
    qtbot.addWidget(dialog)
    info = _cluster_info()
    dialog.show_info(info)
    dialog.show()
    assert dialog.cluster_label.isVisible() and dialog.node_table.isVisible()
    assert dialog.table.isHidden()  # no GPU on the server's own machine: the nodes get the room
    qtmodeltester.check(dialog.node_table.model())
    assert dialog.node_table.rowCount() == 3
    assert [dialog.node_table.item(row, 1).text() for row in range(3)] == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert dialog.node_table.item(1, 4).text() == "0.5/2"
    assert dialog.node_table.item(0, 0).toolTip() == info.cluster.nodes[0].node_id  # the whole id
    dialog.show_info(info.model_copy(update={"cluster": None}))  # a server that stopped being a Ray one
    assert dialog.cluster_label.isHidden() and dialog.node_table.isHidden() and dialog.table.isVisible()
