"""The Models panel's intermediate checkpoints against a real server: a model trained by the built-in trainer
with `checkpoint_every` lists the step checkpoints its run saved (the server's list, newest first), one is
saved through a QFileDialog opened with open() with the server's exact bytes and no `.part` left, a model
whose run saved none says so, and deselecting hides the section."""

from __future__ import annotations

import hashlib

import pytest

from training_studio.ui.downloads import PART_SUFFIX
from training_studio.ui.jobs.details.checkpoints_store import CheckpointRole
from training_studio.ui.models.panel import ModelsPanel
from tests.ui.datasets_fixtures import (  # noqa: F401  (fixtures)
    api_client,
    http,
    make_dataset,
    model_store,
    trained_model,
    wait_status,
)
from tests.ui.jobs_helpers import make_job

WAIT_MS = 30_000


@pytest.fixture
def panel(model_store, qtbot):
    widget = ModelsPanel(model_store)
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    return widget


def model_with_checkpoints(http, name: str, steps: int = 300, every: int = 100) -> dict:
    job = make_job(http, make_dataset(http, f"{name}-data", images=4), name, steps, resolution=8, batch_size=4,
                   checkpoint_every=every)
    final = wait_status(http, job["id"], {"completed", "failed", "cancelled"}, timeout=120)
    assert final["status"] == "completed", final
    models = [m for m in http.get("/api/models").json() if m["training_job_id"] == job["id"]]
    assert len(models) == 1, models
    return models[0]


@pytest.mark.timeout(300)
def test_a_models_intermediate_checkpoints_are_listed_and_save_the_servers_bytes(
        panel, model_store, http, qtbot, qtmodeltester, tmp_path):
    model = model_with_checkpoints(http, "stepwise")
    qtmodeltester.check(model_store.intermediate_model)
    qtbot.waitUntil(lambda: panel.model.row_of(model["id"]) is not None, timeout=WAIT_MS)
    assert panel.select_model(model["id"])
    listing = http.get(f"/api/models/{model['id']}/checkpoints").json()
    assert [c["step"] for c in listing] == [100, 200, 300]
    table = panel.intermediate_table
    qtbot.waitUntil(lambda: panel.intermediate_stack.currentWidget() is table, timeout=WAIT_MS)
    assert model_store.intermediate_model.names() == [c["name"] for c in reversed(listing)]
    assert panel.intermediate_section.isVisible()
    assert not panel.intermediate_save_button.isEnabled()  # nothing selected yet

    name = listing[1]["name"]
    assert table.select_name(name)
    assert panel.intermediate_save_button.isEnabled()
    folder = tmp_path / "saved"
    folder.mkdir()
    target = folder / "middle.npz"
    with qtbot.waitSignal(model_store.intermediate_saver.saved, timeout=WAIT_MS) as saved:
        panel.intermediate_save_button.click()
        dialog = panel.intermediate_dialog
        assert dialog is not None and dialog.isVisible()
        assert dialog.selectedFiles()[0].endswith("stepwise-step-000200.npz")
        dialog.selectFile(str(target))
        dialog.accept()
    assert saved.args == [name, str(target)]
    served = http.get(f"/api/models/{model['id']}/checkpoints/{name}")
    assert served.status_code == 200
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(served.content).digest()
    assert sorted(folder.iterdir()) == [target] and not any(p.name.endswith(PART_SUFFIX) for p in folder.iterdir())
    assert panel.intermediate_download.message.text() == f"Saved step-000200.npz to {target}."
    qtbot.waitUntil(panel.intermediate_save_button.isEnabled, timeout=WAIT_MS)
    assert table.model().index(table.model().row_of(name), 0).data(CheckpointRole.STEP) == 200

    # A model whose run saved none says so; nothing selected hides the section.
    plain = trained_model(http, "plain")
    qtbot.waitUntil(lambda: panel.model.row_of(plain["id"]) is not None, timeout=WAIT_MS)
    assert panel.select_model(plain["id"])
    qtbot.waitUntil(lambda: panel.intermediate_state.text() == "Its training run saved no intermediate checkpoints.",
                    timeout=WAIT_MS)
    assert panel.intermediate_stack.currentWidget() is panel.intermediate_state
    assert model_store.intermediate_model.rowCount() == 0 and not panel.intermediate_save_button.isEnabled()
    panel.table.clearSelection()
    qtbot.waitUntil(lambda: not panel.intermediate_section.isVisible(), timeout=WAIT_MS)
