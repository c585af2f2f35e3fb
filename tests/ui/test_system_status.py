"""The machine in the window (issue 16): the status bar's summary and the GPU list, against a real server
subprocess whose NVML is the labelled stand-in in tests/support/stand_in_nvml (two GPUs), and against
this machine's own server (no GPU: the summary shows CPU and memory, the details say why no GPU)."""

from __future__ import annotations

import os
from pathlib import Path

from training_studio.ui.system.summary import format_bytes
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
