"""The Train dialog against a real server: the form built from the base model's params_schema, validation
that refuses bad values before anything is sent, the server's refusal shown, and a created job that runs."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from training_studio.contract.models import Dataset, ParamSpec, ParamType
from training_studio.runner.registry import BUILTIN_BASE_MODEL
from training_studio.ui.banner import BannerLevel
from training_studio.ui.datasets.train_dialog import ParamsForm, TrainDialog, parse_param
from tests.ui.datasets_fixtures import (  # noqa: F401  (fixtures)
    api_client,
    dataset_store,
    http,
    make_dataset,
    wait_status,
)


def open_dialog(dataset_store, http, qtbot, dataset_id: str) -> TrainDialog:
    dataset = Dataset.model_validate(http.get(f"/api/datasets/{dataset_id}").json())
    dialog = TrainDialog(dataset_store, dataset)
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.waitUntil(lambda: dialog.current_base_model() is not None, timeout=10_000)
    # Rows added to a shown form appear after one pass of the event loop (Qt queues their show).
    qtbot.waitUntil(lambda: all(f.editor.isVisible() for f in dialog.params_form.fields.values()), timeout=5_000)
    return dialog


def all_jobs(http) -> list[dict]:
    return http.get("/api/training/jobs", params={"status": "all"}).json()


def field(dialog: TrainDialog, name: str):
    return dialog.params_form.fields[name].editor


def test_form_is_built_from_the_base_models_params_schema(dataset_store, http, qtbot):
    dataset_id = make_dataset(http, "pets", images=2)
    dialog = open_dialog(dataset_store, http, qtbot, dataset_id)
    schema = http.get("/api/training/base-models").json()[0]["params_schema"]
    assert dialog.current_base_model().id == "builtin-linear-vae"
    assert list(dialog.params_form.fields) == [spec["name"] for spec in schema]
    for spec in schema:
        editor = field(dialog, spec["name"])
        assert isinstance(editor, QSpinBox if spec["type"] == "int" else QDoubleSpinBox)
        assert editor.value() == pytest.approx(spec["default"])
        assert (editor.minimum(), editor.maximum()) == pytest.approx((spec["min"], spec["max"]))
        assert spec["description"] in editor.toolTip()
        assert editor.accessibleName() == spec["name"]
    assert "Allowed: 8 to 64 px." in field(dialog, "resolution").toolTip()
    assert dialog.name_edit.text() == "pets · Built-in linear VAE (CPU, no downloads)"
    assert "“pets”" in dialog.windowTitle()
    assert dialog.create_button.isEnabled()
    assert dialog.problems() == []


@pytest.mark.parametrize(("name", "text", "problem"), [
    ("resolution", "65", "resolution must be a whole number from 8 to 64."),
    ("resolution", "7", "resolution must be a whole number from 8 to 64."),
    ("resolution", "12.5", "resolution must be a whole number from 8 to 64."),
    ("learning_rate", "2", "learning_rate must be a number from 1e-6 to 1."),
    ("learning_rate", "fast", "learning_rate must be a number from 1e-6 to 1."),
    ("learning_rate", "nan", "learning_rate must be a number from 1e-6 to 1."),
    ("batch_size", "", "batch_size must be a whole number from 1 to 1024."),
])
def test_out_of_range_values_are_refused_before_sending(dataset_store, http, qtbot, name, text, problem):
    dataset_id = make_dataset(http, "strict", images=1)
    dialog = open_dialog(dataset_store, http, qtbot, dataset_id)
    field(dialog, name).lineEdit().setText(text)  # typed, not yet corrected by the spin box
    error_label = dialog.params_form.fields[name].error
    assert error_label.isVisibleTo(dialog) and error_label.text() == problem
    assert not dialog.create_button.isEnabled()
    assert problem in dialog.create_button.toolTip()

    assert dialog.submit() is False  # Enter / a forced click still sends nothing
    assert dialog.banner.isVisibleTo(dialog) and problem in dialog.banner.text
    assert not dataset_store.is_creating_job
    assert all_jobs(http) == []

    default = BUILTIN_BASE_MODEL.params_schema[[s.name for s in BUILTIN_BASE_MODEL.params_schema].index(name)].default
    field(dialog, name).lineEdit().setText(str(default))
    assert not error_label.isVisibleTo(dialog)
    assert dialog.create_button.isEnabled()



def test_a_long_proposed_name_shows_its_start(dataset_store, http, qtbot):
    """A proposed name longer than its field is shown from its start (the dataset's name, what tells jobs
    apart), not scrolled to the base model's tail as setText alone leaves it."""
    dataset_id = make_dataset(http, "portraits of my grandmother's cats, studio light, 2024", images=1)
    dialog = open_dialog(dataset_store, http, qtbot, dataset_id)
    name = dialog.name_edit
    assert name.text().startswith("portraits of my grandmother's cats")
    assert name.fontMetrics().horizontalAdvance(name.text()) > name.width()  # it does not fit
    assert name.cursorPosition() == 0
    assert name.cursorRect().left() < name.width() // 4  # the view is at the start of the text

def test_an_empty_job_name_is_refused(dataset_store, http, qtbot):
    dialog = open_dialog(dataset_store, http, qtbot, make_dataset(http, "named", images=1))
    dialog.name_edit.setText("   ")
    assert not dialog.create_button.isEnabled()
    assert dialog.submit() is False
    assert "Give the job a name." in dialog.banner.text
    assert all_jobs(http) == []


def test_created_job_runs_on_the_server_with_the_chosen_values(dataset_store, http, qtbot):
    dataset_id = make_dataset(http, "runner", images=4)
    dialog = open_dialog(dataset_store, http, qtbot, dataset_id)
    dialog.name_edit.setText("quick run")
    dialog.steps_spin.setValue(6)
    field(dialog, "resolution").setValue(8)
    field(dialog, "batch_size").setValue(4)
    field(dialog, "learning_rate").setValue(0.05)
    with qtbot.waitSignal(dialog.job_created, timeout=10_000) as created:
        assert dialog.submit() is True
        assert not dialog.create_button.isEnabled()  # no double submit while in flight
    job_id = created.args[0]
    assert dialog.result() == TrainDialog.DialogCode.Accepted
    job = http.get("/api/training/status", params={"job_id": job_id}).json()
    assert job["name"] == "quick run" and job["datasetId"] == dataset_id and job["totalSteps"] == 6
    assert job["baseModel"] == "builtin-linear-vae"
    assert job["params"]["resolution"] == 8 and job["params"]["batch_size"] == 4
    assert job["params"]["learning_rate"] == pytest.approx(0.05)
    final = wait_status(http, job_id, {"completed", "failed", "cancelled"}, timeout=60)
    assert final["status"] == "completed", final


def test_the_servers_refusal_is_shown_and_the_dialog_keeps_the_values(dataset_store, http, qtbot):
    dataset_id = make_dataset(http, "vanishing", images=1)
    dialog = open_dialog(dataset_store, http, qtbot, dataset_id)
    dialog.name_edit.setText("never runs")
    assert http.delete(f"/api/datasets/{dataset_id}").status_code == 200  # gone behind the dialog's back
    with qtbot.waitSignal(dataset_store.job_create_failed, timeout=10_000) as failed:
        dialog.submit()
    assert "The job was not created" in failed.args[0] and "dataset" in failed.args[0].lower()
    assert dialog.isVisible()
    assert dialog.banner.level is BannerLevel.ERROR and failed.args[0] in dialog.banner.text
    assert dialog.name_edit.text() == "never runs"
    assert dialog.create_button.isEnabled()  # the user may fix and retry
    assert all_jobs(http) == []


def test_base_models_that_fail_to_load_are_reported_with_retry(dataset_store, server, http, qtbot):
    dataset = Dataset.model_validate(http.get(f"/api/datasets/{make_dataset(http, 'offline', images=1)}").json())
    server.stop()
    dialog = TrainDialog(dataset_store, dataset)
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.waitUntil(lambda: dialog.banner.isVisible(), timeout=15_000)
    assert "Could not load the base models" in dialog.banner.text
    assert dialog.banner.button("Retry") is not None
    assert not dialog.create_button.isEnabled()
    assert "Choose a base model." in dialog.problems()


def test_a_broken_preset_is_listed_greyed_out_with_its_reason(dataset_store, server, http, qtbot):
    # The server re-reads presets.toml when it changes: one usable preset, one whose program is missing.
    (server.data_dir / "presets.toml").write_text(
        '[[preset]]\nid = "gone"\nname = "Gone trainer"\ncommand = ["/no/such/accelerate", "launch"]\n'
        '[[preset]]\nid = "broken"\nname = "Broken"\ncommand = ["python3", "{nope}"]\n')
    dialog = open_dialog(dataset_store, http, qtbot, make_dataset(http, "presets", images=1))
    combo = dialog.base_model_combo
    names = [combo.itemText(i) for i in range(combo.count())]
    assert names == [BUILTIN_BASE_MODEL.name, "Gone trainer (unavailable)", "Broken (unavailable)"]
    items = [combo.model().item(i) for i in range(combo.count())]
    assert [item.isEnabled() for item in items] == [True, False, False]
    assert combo.itemData(1, Qt.ItemDataRole.ToolTipRole) == "Cannot be used: program '/no/such/accelerate' not found"
    assert combo.itemData(2, Qt.ItemDataRole.ToolTipRole) == \
        "Cannot be used: unknown placeholder '{nope}' in '{nope}'"
    assert dialog.current_base_model().id == BUILTIN_BASE_MODEL.id  # the usable one is chosen
    # were it selected anyway (the keyboard can reach it on some styles), Create stays off with the reason
    combo.setCurrentIndex(1)
    assert dialog.base_model_description.text() == "Cannot be used: program '/no/such/accelerate' not found"
    assert not dialog.create_button.isEnabled()
    assert "Gone trainer cannot be used: program '/no/such/accelerate' not found" in dialog.problems()


# -- the form alone, for the types the built-in model does not use ------------------------------------------------

SCHEMA = [
    ParamSpec(name="optimizer", type=ParamType.CHOICE, default="adam", choices=["sgd", "adam"], description="Which"),
    ParamSpec(name="shuffle", type=ParamType.BOOL, default=True, description="Shuffle"),
    ParamSpec(name="prompt", type=ParamType.STR, default="a photo", description="Prompt"),
    ParamSpec(name="scale", type=ParamType.FLOAT, default=0.5, min=0.0, max=1.0, description="Scale"),
    ParamSpec.model_validate({"name": "future", "type": "tensor", "default": None}),
]


def test_form_editors_follow_each_type_and_skip_unknown_ones(qtbot):
    form = ParamsForm()
    qtbot.addWidget(form)
    form.set_schema(SCHEMA)
    assert isinstance(form.fields["optimizer"].editor, QComboBox)
    assert isinstance(form.fields["shuffle"].editor, QCheckBox)
    assert isinstance(form.fields["prompt"].editor, QLineEdit)
    assert form.unsupported == ["future"]
    assert form.values() == ({"optimizer": "adam", "shuffle": True, "prompt": "a photo", "scale": 0.5}, {})
    form.fields["optimizer"].editor.setCurrentIndex(0)
    form.fields["shuffle"].editor.setChecked(False)
    form.fields["scale"].editor.lineEdit().setText("1.5")
    params, problems = form.values()
    assert params == {"optimizer": "sgd", "shuffle": False, "prompt": "a photo"}
    assert problems == {"scale": "scale must be a number from 0 to 1."}
    assert not form.is_valid


def test_parse_param_messages_name_the_field():
    spec = ParamSpec(name="steps", type=ParamType.INT, min=1, max=10)
    assert parse_param(spec, " 10 ") == 10
    with pytest.raises(ValueError, match="^steps must be at least 1.$"):
        parse_param(spec, "0")
    with pytest.raises(ValueError, match="^steps must be a whole number.$"):
        parse_param(spec, "1e3")
    text = ParamSpec(name="note", type=ParamType.STR)
    assert parse_param(text, "") == ""
    with pytest.raises(ValueError, match="too long"):
        parse_param(text, "x" * 10_001)
