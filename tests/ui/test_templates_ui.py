"""Job templates in the GUI (issue 16) against a real server: saved from the Train dialog (a second save of the
same name replaces it and says so), listed in a new dialog's Template combo, applied to the form (dataset
included when it exists), deleted after a confirmation whose safe answer keeps it; and saved from a finished
job in the History tab and in the Jobs tab."""

from __future__ import annotations

import pytest

from training_studio.contract.models import Dataset, TrainingJob
from training_studio.ui.banner import BannerLevel
from training_studio.ui.datasets.template_store import TemplateStore
from training_studio.ui.datasets.train_dialog import TrainDialog
from training_studio.ui.datasets.wiring import install_library_panels
from training_studio.ui.datasets.train_again import save_job_as_template
from training_studio.ui.history.wiring import install_history_panel
from tests.ui.datasets_fixtures import (  # noqa: F401  (fixtures)
    api_client,
    dataset_store,
    http,
    make_dataset,
    make_job,
    wait_status,
)


@pytest.fixture
def template_store(api_client, harness):
    store = TemplateStore(api_client)
    yield store
    store.shutdown()
    harness.run(store.wait_idle())


def open_dialog(dataset_store, template_store, http, qtbot, dataset_id: str) -> TrainDialog:
    dataset = Dataset.model_validate(http.get(f"/api/datasets/{dataset_id}").json())
    dialog = TrainDialog(dataset_store, dataset, templates=template_store)
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.waitUntil(lambda: dialog.current_base_model() is not None and template_store.templates is not None,
                    timeout=10_000)
    return dialog


def field(dialog: TrainDialog, name: str):
    return dialog.params_form.fields[name].editor


def templates_on_server(http) -> list[dict]:
    response = http.get("/api/training/templates")
    response.raise_for_status()
    return response.json()


def save_through_prompt(dialog: TrainDialog, qtbot, name: str, expected_banner: str) -> None:
    prompt = dialog.ask_template_name()
    assert prompt is not None and prompt.isVisible()
    prompt.setTextValue(name)
    prompt.accept()
    qtbot.waitUntil(lambda: expected_banner in dialog.banner.text, timeout=10_000)


def test_templates_round_trip_through_the_dialog(dataset_store, template_store, http, qtbot):
    first_id = make_dataset(http, "first", images=2)
    second_id = make_dataset(http, "second", images=2)
    dialog = open_dialog(dataset_store, template_store, http, qtbot, first_id)
    assert dialog.template_row.isVisibleTo(dialog) and dialog.template_combo.currentText() == "None"
    assert not dialog.delete_template_button.isEnabled()
    dialog.steps_spin.setValue(9)
    field(dialog, "resolution").setValue(16)
    field(dialog, "learning_rate").setValue(0.05)
    save_through_prompt(dialog, qtbot, "fast small", "Saved template “fast small”.")
    dialog.steps_spin.setValue(12)
    save_through_prompt(dialog, qtbot, "FAST small", "Replaced template “FAST small”.")
    saved = templates_on_server(http)
    assert len(saved) == 1
    assert saved[0]["settings"]["total_steps"] == 12 and saved[0]["settings"]["dataset_id"] == first_id
    assert saved[0]["settings"]["base_model"] == "builtin-linear-vae"
    assert saved[0]["settings"]["params"]["resolution"] == 16
    dialog.reject()

    # A new dialog, on another dataset, lists it; choosing it fills the form, dataset included.
    second = open_dialog(dataset_store, template_store, http, qtbot, second_id)
    combo = second.template_combo
    # (the store's cached list shows at once, the server's answer right after)
    qtbot.waitUntil(lambda: [combo.itemText(i) for i in range(combo.count())] == ["None", saved[0]["name"]],
                    timeout=10_000)
    assert second.steps_spin.value() != 12
    combo.setCurrentIndex(1)
    qtbot.waitUntil(lambda: second.dataset is not None and second.dataset.id == first_id, timeout=10_000)
    assert second.steps_spin.value() == 12 and field(second, "resolution").value() == 16
    assert field(second, "learning_rate").value() == pytest.approx(0.05)
    assert second.dataset_combo.isVisibleTo(second) and second.dataset_combo.currentData() == first_id
    assert second.banner.level is BannerLevel.INFO and "Filled from template" in second.banner.text
    assert second.problems() == []

    # Delete asks first; the safe answer (the default) keeps it.
    assert second.delete_template_button.isEnabled()
    second.delete_template_button.click()
    box = second.confirm_box
    assert box is not None and box.defaultButton() is box.keep_button
    assert box.confirm_button.text() == "Delete template"
    box.keep_button.click()
    assert len(templates_on_server(http)) == 1
    second.delete_template_button.click()
    second.confirm_box.confirm_button.click()
    qtbot.waitUntil(lambda: "Deleted template" in second.banner.text and combo.count() == 1, timeout=10_000)
    assert templates_on_server(http) == [] and combo.currentText() == "None"


def test_a_template_whose_dataset_is_gone_keeps_the_dialogs_dataset(dataset_store, template_store, http, qtbot):
    kept_id = make_dataset(http, "kept", images=2)
    gone_id = make_dataset(http, "gone", images=1)
    response = http.post("/api/training/templates", json={"name": "orphan", "settings": {
        "dataset_id": gone_id, "base_model": "builtin-linear-vae", "total_steps": 33,
        "params": {"batch_size": 3}}})
    assert response.status_code == 201
    assert http.delete(f"/api/datasets/{gone_id}").status_code == 200
    dialog = open_dialog(dataset_store, template_store, http, qtbot, kept_id)
    qtbot.waitUntil(lambda: dialog.template_combo.count() == 2, timeout=10_000)
    dialog.template_combo.setCurrentIndex(1)
    qtbot.waitUntil(lambda: "Its dataset no longer exists" in dialog.banner.text, timeout=10_000)
    assert "the dataset stays “kept”" in dialog.banner.text
    assert dialog.dataset.id == kept_id and dialog.steps_spin.value() == 33
    assert field(dialog, "batch_size").value() == 3 and dialog.problems() == []


def test_history_saves_a_finished_job_as_a_template(harness, server, http, qtbot):
    dataset_id = make_dataset(http, "history", images=2)
    job = make_job(http, dataset_id, "keeper", 4, resolution=8, batch_size=4)
    finished = TrainingJob.model_validate(wait_status(http, job["id"], {"completed", "failed"}, timeout=60))
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    library = install_library_panels(window, store.client, store, lazy=True)
    install_history_panel(window, store.client, store, on_save_template=lambda j: save_job_as_template(window, j))
    store.start()
    history = window.panel("History")
    window.tabs.setCurrentWidget(history)
    qtbot.waitUntil(lambda: history.select_job(finished.id), timeout=15_000)
    assert history.save_template_action.isVisible() and history.save_template_action.isEnabled()
    assert not history.train_again_action.isVisible()  # no handler given

    history.save_template_action.trigger()
    prompt = window.template_name_prompt
    assert prompt.isVisible() and prompt.textValue() == "keeper"
    prompt.setTextValue("keeper settings")
    prompt.accept()
    qtbot.waitUntil(lambda: len(templates_on_server(http)) == 1, timeout=10_000)
    template = templates_on_server(http)[0]
    assert template["name"] == "keeper settings"
    assert template["settings"] == {"dataset_id": dataset_id, "base_model": finished.base_model,
                                    "total_steps": 4, "params": finished.params}
    window.close()
    harness.run(library.wait_idle())


def test_jobs_tab_saves_a_finished_job_as_a_template(harness, server, http, qtbot):
    dataset_id = make_dataset(http, "jobs tab", images=2)
    job = make_job(http, dataset_id, "jobs tab keeper", 4, resolution=16, batch_size=2)
    finished = TrainingJob.model_validate(wait_status(http, job["id"], {"completed", "failed"}, timeout=60))
    assert finished.status.value == "completed"
    store = harness.store(server.url, server.token)
    window = harness.window(store)
    library = install_library_panels(window, store.client, store, lazy=True)
    store.start()
    jobs = window.jobs_panel
    qtbot.waitUntil(lambda: jobs.select_job(finished.id), timeout=15_000)
    assert jobs.save_template_action.isEnabled()

    jobs.save_template_action.trigger()
    prompt = window.template_name_prompt
    assert prompt.isVisible() and prompt.textValue() == "jobs tab keeper"
    prompt.setTextValue("from the jobs tab")
    prompt.accept()
    qtbot.waitUntil(lambda: len(templates_on_server(http)) == 1, timeout=10_000)
    template = templates_on_server(http)[0]
    assert template["name"] == "from the jobs tab"
    assert template["settings"] == {"dataset_id": dataset_id, "base_model": finished.base_model,
                                    "total_steps": 4, "params": finished.params}
    qtbot.waitUntil(lambda: any(notice.text == "Saved template “from the jobs tab”."
                                for notice in window.notices.notices), timeout=10_000)  # the window says so
    window.close()
    harness.run(library.wait_idle())

