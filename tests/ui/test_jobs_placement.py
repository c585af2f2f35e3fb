"""Where a job runs in the Jobs tab (issue 16): the "Runs on" column (narrow, elided, the whole placement in its
tooltip, hideable from the header's menu) and the Overview's "Runs on" / "Ran on" row. Real server, real
built-in trainer jobs, real HTTP; the placement is the one the server records when a job starts."""

from __future__ import annotations

import socket

from PySide6.QtCore import QSettings, Qt

from training_studio.contract.models import JobStatus
from training_studio.ui.jobs import format as fmt
from training_studio.ui.jobs.model import JobColumn
from training_studio.ui.jobs.panel import JobsPanel
from training_studio.ui.settings import AppSettings
from tests.support.jobs import job_status
from tests.ui.app_fixtures import sync_client
from tests.ui.jobs_helpers import make_dataset, make_job

LONG = 1_000_000
WAIT_MS = 90_000


def _cell(panel, job_id: str, role=Qt.ItemDataRole.DisplayRole):
    row = panel.model.row_of(job_id)
    return panel.proxy.mapFromSource(panel.model.index(row, int(JobColumn.RUNS_ON))).data(role)


def test_runs_on_column_and_overview_show_where_a_job_runs(harness, qtbot, qtmodeltester, server_factory, tmp_path):
    server = server_factory(extra_args=["--concurrency", "1", "--cancel-grace", "1"])
    http = sync_client(server.url, server.token)
    dataset = make_dataset(http)
    first = make_job(http, dataset, "on this machine", LONG)["id"]
    second = make_job(http, dataset, "waiting its turn", LONG)["id"]
    store = harness.store(server.url, server.token)
    panel = JobsPanel(store, settings=AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)))
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.show()
    qtbot.waitExposed(panel)
    store.start()
    qtbot.waitUntil(lambda: store.model.job(first) is not None and store.model.job(first).placement is not None
                    and store.model.job(second) is not None, timeout=WAIT_MS)

    # The server's own record of where it runs, shown as the shared short text, the full one in the tooltip.
    placement = job_status(http, first)["placement"]
    assert placement["executor"] == "local" and placement["host"] == socket.gethostname()
    assert _cell(panel, first) == fmt.placement_text(store.model.job(first).placement) == socket.gethostname()
    tooltip = _cell(panel, first, Qt.ItemDataRole.ToolTipRole)
    assert f"Host: {socket.gethostname()}" in tooltip and "GPU: none (CPU)" in tooltip
    assert _cell(panel, first, Qt.ItemDataRole.AccessibleTextRole) == f"runs on {socket.gethostname()}"
    # Not started yet: no place yet.
    assert store.model.job(second).status in (JobStatus.QUEUED, JobStatus.PENDING)
    assert _cell(panel, second) == fmt.NO_VALUE
    assert "Not placed yet" in _cell(panel, second, Qt.ItemDataRole.ToolTipRole)
    header = panel.table.horizontalHeader()
    assert panel.proxy.headerData(int(JobColumn.RUNS_ON), Qt.Orientation.Horizontal) == "Runs on"
    assert not header.isSectionHidden(int(JobColumn.RUNS_ON))
    assert 48 <= header.sectionSize(int(JobColumn.RUNS_ON)) <= 160  # narrow; the text elides

    # The Overview: "Runs on" while it runs, "not yet" while it waits, "Ran on" once it ended.
    assert panel.select_job(first)
    panel.set_details_visible(True)
    overview = panel.details.overview
    qtbot.waitUntil(lambda: overview.value_text("placement") == socket.gethostname(), timeout=10_000)
    assert overview.caption_text("placement") == "Runs on:" and overview.is_row_visible("placement")
    assert f"Host: {socket.gethostname()}" in overview.placement_value.toolTip()
    assert panel.select_job(second)
    qtbot.waitUntil(lambda: overview.value_text("name") == "waiting its turn", timeout=10_000)
    assert overview.value_text("placement").startswith("not yet")
    assert panel.select_job(first)
    http.post(f"/api/training/jobs/{first}/cancel").raise_for_status()
    qtbot.waitUntil(lambda: store.model.job(first).status is JobStatus.CANCELLED, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: overview.caption_text("placement") == "Ran on:", timeout=10_000)
    assert overview.value_text("placement") == socket.gethostname()
    # The second job starts in the freed slot: its row gets a place through the live events.
    qtbot.waitUntil(lambda: _cell(panel, second) == socket.gethostname(), timeout=WAIT_MS)

    # The header's menu hides and shows the column; the CSV export follows what is shown.
    menu = panel.columns_menu()
    titles = [action.text() for action in menu.actions()]
    assert titles == ["Status", "Progress", "Step", "Loss", "Elapsed", "ETA", "Runs on"]
    runs_on = next(action for action in menu.actions() if action.text() == "Runs on")
    assert runs_on.isChecked()
    runs_on.trigger()
    assert header.isSectionHidden(int(JobColumn.RUNS_ON))
    assert panel.table_as_csv().splitlines()[0] == "Name,Status,Progress,Step,Loss,Elapsed,ETA"
    menu.close()
    panel.columns_menu().actions()[-1].trigger()
    assert not header.isSectionHidden(int(JobColumn.RUNS_ON))
    assert panel.table_as_csv().splitlines()[0].endswith(",ETA,Runs on")

    qtmodeltester.check(store.model)
    qtmodeltester.check(panel.proxy)
    http.post(f"/api/training/jobs/{second}/cancel")
    panel.shutdown()
    http.close()
