"""The Train dialog's geometry and controls against a real server: its first show after the app starts
(base models not yet loaded when it opens) lays every field out at its size hint instead of squashing
them; parameters get spin boxes with the schema's bounds, step and unit, a log-scale control for learning
rates, and default job names never collide with existing jobs."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox, QWidget

from training_studio.contract.models import Dataset, ParamSpec, ParamType
from training_studio.ui.datasets.train_dialog import LogSpinBox, ParamsForm, TrainDialog, unique_job_name
from tests.ui.datasets_fixtures import (  # noqa: F401  (fixtures)
    api_client,
    dataset_store,
    http,
    make_dataset,
)
from tests.ui.jobs_helpers import make_job


def first_show(dataset_store, http, qtbot, dataset_id: str, *, first: bool = True, **kwargs) -> TrainDialog:
    """Open the dialog the way the app does on its first Train…: the store has no base models yet."""
    assert (dataset_store.base_models is None) is first
    dataset = Dataset.model_validate(http.get(f"/api/datasets/{dataset_id}").json())
    dialog = TrainDialog(dataset_store, dataset, **kwargs)
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.waitUntil(lambda: dialog.current_base_model() is not None, timeout=10_000)
    qtbot.waitUntil(lambda: all(f.editor.isVisible() for f in dialog.params_form.fields.values()), timeout=5_000)
    return dialog


def squashed(dialog: TrainDialog) -> list[str]:
    """Every visible field or label shorter than it asks to be, as 'name: height < hint'."""
    found = []
    widgets: list[QWidget] = [dialog.name_edit, dialog.base_model_combo, dialog.steps_spin]
    widgets += [field.editor for field in dialog.params_form.fields.values()]
    for widget in widgets:
        if widget.height() < widget.sizeHint().height():
            found.append(f"{widget.accessibleName()}: {widget.height()} < {widget.sizeHint().height()}")
    label = dialog.base_model_description
    if label.text() and label.height() < label.heightForWidth(label.width()):
        found.append(f"description: {label.height()} < {label.heightForWidth(label.width())}")
    return found


def assert_laid_out(qtbot, dialog: TrainDialog) -> None:
    """Wait (generously) for the layout to settle at full size; on failure say which fields are squashed."""
    try:
        qtbot.waitUntil(lambda: not squashed(dialog), timeout=5_000)
    except qtbot.TimeoutError:
        pass
    assert squashed(dialog) == [], f"dialog {dialog.width()}×{dialog.height()}"


def test_first_show_lays_every_field_out_at_its_size_hint(dataset_store, http, qtbot):
    dialog = first_show(dataset_store, http, qtbot, make_dataset(http, "first", images=1))
    assert_laid_out(qtbot, dialog)
    assert dialog.params_form.fields  # the schema's fields were there to measure
    assert dialog.height() >= dialog.minimumSizeHint().height()
    first_size = dialog.size()
    dialog.close()
    # the second show, from the store's cache, gets the same size
    second = first_show(dataset_store, http, qtbot, dialog.dataset.id, first=False)
    assert_laid_out(qtbot, second)
    assert second.size().height() == first_size.height()


def test_parameters_get_spin_boxes_with_bounds_step_and_unit(dataset_store, http, qtbot):
    dialog = first_show(dataset_store, http, qtbot, make_dataset(http, "spins", images=1))
    schema = {spec["name"]: spec for spec in http.get("/api/training/base-models").json()[0]["params_schema"]}
    resolution = dialog.params_form.fields["resolution"].editor
    assert isinstance(resolution, QSpinBox)
    assert (resolution.minimum(), resolution.maximum()) == (schema["resolution"]["min"], schema["resolution"]["max"])
    assert resolution.singleStep() == schema["resolution"]["step"]
    assert resolution.suffix() == f" {schema['resolution']['unit']}" == " px"
    assert resolution.value() == schema["resolution"]["default"]
    resolution.stepBy(1)
    assert resolution.value() == schema["resolution"]["default"] + schema["resolution"]["step"]

    rate = dialog.params_form.fields["learning_rate"].editor
    assert isinstance(rate, LogSpinBox) and isinstance(rate, QDoubleSpinBox)
    assert schema["learning_rate"]["log_scale"] is True
    assert rate.value() == pytest.approx(0.01) and rate.text() == "1e-2"
    rate.stepBy(1)
    assert rate.value() == pytest.approx(0.02) and rate.text() == "2e-2"
    rate.stepBy(-2)
    assert rate.value() == pytest.approx(0.005) and rate.text() == "5e-3"
    params, problems = dialog.params_form.values()
    assert problems == {} and params["learning_rate"] == pytest.approx(0.005)
    assert params["resolution"] == schema["resolution"]["default"] + schema["resolution"]["step"]


def test_log_scale_control_steps_along_one_two_five_and_stays_in_bounds(qtbot):
    form = ParamsForm()
    qtbot.addWidget(form)
    form.set_schema([ParamSpec(name="lr", type=ParamType.FLOAT, default=1e-4, min=1e-6, max=1e-3, log_scale=True)])
    box = form.fields["lr"].editor
    assert isinstance(box, LogSpinBox)
    seen = [box.text()]
    for _ in range(5):
        box.stepBy(1)
        seen.append(box.text())
    assert seen == ["1e-4", "2e-4", "5e-4", "1e-3", "1e-3", "1e-3"]  # the maximum holds
    box.lineEdit().setText("3e-4")
    box.interpretText()
    assert box.value() == pytest.approx(3e-4)
    box.stepBy(1)
    assert box.text() == "5e-4"  # from an off-ladder value to the next rung
    box.stepBy(-1)
    assert box.text() == "2e-4"
    box.setValue(1e-6)
    box.stepBy(-1)
    assert box.value() == pytest.approx(1e-6)  # the minimum holds
    # a factor given as step: each press multiplies or divides by it
    form.set_schema([ParamSpec(name="lr", type=ParamType.FLOAT, default=1e-4, min=1e-8, max=1.0, log_scale=True,
                               step=10)])
    box = form.fields["lr"].editor
    box.stepBy(2)
    assert box.value() == pytest.approx(1e-2)


def test_choices_are_a_combo_and_booleans_a_check_box(qtbot):
    form = ParamsForm()
    qtbot.addWidget(form)
    form.set_schema([
        ParamSpec(name="precision", type=ParamType.CHOICE, default="bf16", choices=["fp16", "bf16"]),
        ParamSpec(name="shuffle", type=ParamType.BOOL, default=True),
        ParamSpec(name="alpha", type=ParamType.FLOAT, default=4.0, min=0.0, max=256.0, step=0.5),
        ParamSpec(name="epochs", type=ParamType.INT, default=3, min=1, max=100, unit="epochs"),
    ])
    assert isinstance(form.fields["precision"].editor, QComboBox)
    assert isinstance(form.fields["shuffle"].editor, QCheckBox)
    alpha = form.fields["alpha"].editor
    assert isinstance(alpha, QDoubleSpinBox) and not isinstance(alpha, LogSpinBox)
    assert alpha.singleStep() == 0.5 and alpha.text() == "4"
    alpha.stepBy(3)
    assert alpha.value() == 5.5
    epochs = form.fields["epochs"].editor
    assert isinstance(epochs, QSpinBox) and epochs.suffix() == " epochs" and epochs.text() == "3 epochs"
    assert form.values() == ({"precision": "bf16", "shuffle": True, "alpha": 5.5, "epochs": 3}, {})


def test_default_job_names_are_unique(dataset_store, http, qtbot):
    assert unique_job_name("pets · Tiny", []) == "pets · Tiny"
    assert unique_job_name("pets · Tiny", ["pets · Tiny"]) == "pets · Tiny 2"
    assert unique_job_name("pets · Tiny", ["pets · Tiny", "pets · Tiny 2", "pets · Tiny 4"]) == "pets · Tiny 3"
    taken = ["names · Built-in linear VAE (CPU, no downloads)",
             "names · Built-in linear VAE (CPU, no downloads) 2"]
    dialog = first_show(dataset_store, http, qtbot, make_dataset(http, "names", images=1),
                        taken_names=lambda: taken)
    assert dialog.name_edit.text() == "names · Built-in linear VAE (CPU, no downloads) 3"
    dialog.name_edit.setText("my own name")
    dialog.base_model_combo.setCurrentIndex(0)
    dialog._on_base_model_changed()
    assert dialog.name_edit.text() == "my own name"  # a name the user typed is kept
    dialog.close()

    # A job the Jobs list no longer shows (finished and cleared) still holds its name on the server: the
    # dialog asks the server's history search and the default name avoids it too, once the answer is in.
    base = "names · Built-in linear VAE (CPU, no downloads)"
    dataset_id = make_dataset(http, "names", images=1)
    cleared = make_job(http, dataset_id, f"{base} 3", 2, resolution=8, batch_size=1)["id"]
    qtbot.waitUntil(lambda: http.get("/api/training/status", params={"job_id": cleared}).json()["status"]
                    in ("completed", "failed", "cancelled"), timeout=60_000)
    dialog = first_show(dataset_store, http, qtbot, dataset_id, first=False, taken_names=lambda: taken)
    qtbot.waitUntil(lambda: dialog.name_edit.text() == f"{base} 4", timeout=10_000)
    dialog.close()

    # ...but never over a name the user typed before the answer arrived.
    dialog = first_show(dataset_store, http, qtbot, dataset_id, first=False, taken_names=lambda: [])
    dialog.name_edit.setText("typed first")
    with qtbot.waitSignal(dataset_store.job_names_found, timeout=10_000,
                          check_params_cb=lambda text, names: text == base and f"{base} 3" in names):
        dataset_store.request_job_names(base)
    assert dialog.name_edit.text() == "typed first"
