"""The Train dialog: start a training job on one dataset, with a form built from the base model's schema.

`TrainDialog` asks for the job name, the base model (from `/api/training/base-models`), the total steps
and one field per entry of that base model's `params_schema` (`ParamsForm`: a line edit for numbers and
text, a check box for booleans, a combo box for choices, each with its description as tooltip and range
as placeholder). Every field is validated as the user types and again on Create; an invalid form never
reaches the server, and each problem is said next to its field. The server's own refusal (422, unknown
base model, dataset no longer active) is shown in the dialog's banner, and the dialog stays open with the
user's values. It never calls HTTP: it asks the `DatasetStore` and listens to its signals. It is opened
with `open()` (never `exec()`, which would nest an event loop under asyncio).
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract.models import BaseModelInfo, Dataset, DatasetStatus, ParamSpec, ParamType, TrainingJob
from training_studio.ui.banner import Banner, BannerLevel
from training_studio.ui.datasets.store import DatasetStore

__all__ = ["TrainDialog", "ParamsForm", "parse_param", "DEFAULT_TOTAL_STEPS", "MAX_TOTAL_STEPS"]

DEFAULT_TOTAL_STEPS = 200
MAX_TOTAL_STEPS = 10_000_000  # the contract's limit (CreateJobRequest)
MAX_NAME_LENGTH = 200


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def parse_param(spec: ParamSpec, text: str) -> Any:
    """The value of one field typed as `text`, or ValueError with a sentence naming the field."""
    stripped = text.strip()
    if spec.type in (ParamType.INT, ParamType.FLOAT):
        if not stripped:
            raise ValueError(f"{spec.name} is required.")
        try:
            if spec.type is ParamType.INT:
                number: float = int(stripped.replace("_", ""))
            else:
                number = float(stripped)
        except ValueError:
            kind = "a whole number" if spec.type is ParamType.INT else "a number"
            raise ValueError(f"{spec.name} must be {kind}.") from None
        if not math.isfinite(number):
            raise ValueError(f"{spec.name} must be a finite number.")
        if spec.min is not None and number < spec.min:
            raise ValueError(f"{spec.name} must be at least {_number_text(spec.min)}.")
        if spec.max is not None and number > spec.max:
            raise ValueError(f"{spec.name} must be at most {_number_text(spec.max)}.")
        return number
    if spec.type is ParamType.STR:
        if len(text) > 10_000:
            raise ValueError(f"{spec.name} is too long (at most 10,000 characters).")
        return text
    raise ValueError(f"{spec.name} has a type this app cannot edit.")


class _Field:
    """One row of the form: its editor, its error label, and how to read its value."""

    def __init__(self, spec: ParamSpec, editor: QWidget, error: QLabel) -> None:
        self.spec = spec
        self.editor = editor
        self.error = error

    def value(self) -> Any:
        if isinstance(self.editor, QCheckBox):
            return self.editor.isChecked()
        if isinstance(self.editor, QComboBox):
            if self.editor.currentIndex() < 0:
                raise ValueError(f"{self.spec.name}: choose a value.")
            return self.editor.currentData()
        assert isinstance(self.editor, QLineEdit)
        return parse_param(self.spec, self.editor.text())


class ParamsForm(QWidget):
    """Editors for a `params_schema`; `values()` gives the params dict or the list of problems."""

    validity_changed = Signal(bool)
    problem_fields_changed = Signal()  # which fields show an error line changed (the form's height did)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QFormLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.fields: dict[str, _Field] = {}
        self.unsupported: list[str] = []
        self._valid = True
        self._problem_fields: frozenset[str] = frozenset()

    def set_schema(self, schema: list[ParamSpec]) -> None:
        while self._layout.rowCount():
            self._layout.removeRow(0)
        self.fields.clear()
        self.unsupported = []
        for spec in schema:
            editor = self._editor_for(spec)
            if editor is None:
                self.unsupported.append(spec.name)
                continue
            editor.setObjectName(f"param_{spec.name}")
            editor.setAccessibleName(spec.name)
            editor.setAccessibleDescription(spec.description)
            editor.setToolTip(spec.description)
            error = QLabel(self)
            error.setObjectName(f"param_{spec.name}_error")
            error.setTextFormat(Qt.TextFormat.PlainText)  # one short line: no word wrap, so rows never squeeze
            error.setStyleSheet(f"color: {self._error_colour()};")
            error.hide()
            container = QWidget(self)
            column = QVBoxLayout(container)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(2)
            column.addWidget(editor)
            column.addWidget(error)
            label = QLabel(f"{spec.name.replace('_', ' ').capitalize()}:", self)
            label.setBuddy(editor)
            label.setToolTip(spec.description)
            self._layout.addRow(label, container)
            self.fields[spec.name] = _Field(spec, editor, error)
        self.revalidate()

    def _error_colour(self) -> str:
        # Red that keeps at least 4.5:1 contrast on the light and on the dark window colour.
        return "#fca5a5" if self.palette().color(QPalette.ColorRole.Window).lightness() < 128 else "#b91c1c"

    def _editor_for(self, spec: ParamSpec) -> QWidget | None:
        if spec.type is ParamType.BOOL:
            box = QCheckBox(self)
            box.setChecked(bool(spec.default))
            box.toggled.connect(self.revalidate)
            return box
        if spec.type is ParamType.CHOICE:
            combo = QComboBox(self)
            for choice in spec.choices or []:
                combo.addItem(str(choice), choice)
            if spec.default in (spec.choices or []):
                combo.setCurrentIndex((spec.choices or []).index(spec.default))
            combo.currentIndexChanged.connect(self.revalidate)
            return combo
        if spec.type in (ParamType.INT, ParamType.FLOAT, ParamType.STR):
            edit = QLineEdit(self)
            if spec.default is not None:
                edit.setText(_number_text(spec.default) if isinstance(spec.default, (int, float))
                             and not isinstance(spec.default, bool) else str(spec.default))
            if spec.type is not ParamType.STR:
                low = _number_text(spec.min) if spec.min is not None else None
                high = _number_text(spec.max) if spec.max is not None else None
                if low is not None and high is not None:
                    edit.setPlaceholderText(f"{low} – {high}")
                    edit.setToolTip(f"{spec.description}\nAllowed: {low} to {high}.".strip())
            edit.textChanged.connect(self.revalidate)
            return edit
        return None  # a type from a newer server: the server's default applies

    def values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(params, problems by field name); send only when problems is empty."""
        params: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for name, field in self.fields.items():
            try:
                params[name] = field.value()
            except ValueError as error:
                problems[name] = str(error)
        return params, problems

    def revalidate(self, *args: object) -> bool:
        _, problems = self.values()
        for name, field in self.fields.items():
            message = problems.get(name)
            field.error.setText(message or "")
            field.error.setVisible(message is not None)
            field.editor.setProperty("invalid", message is not None)
        if frozenset(problems) != self._problem_fields:
            self._problem_fields = frozenset(problems)
            self.problem_fields_changed.emit()
        valid = not problems
        if valid != self._valid:
            self._valid = valid
            self.validity_changed.emit(valid)
        return valid

    @property
    def is_valid(self) -> bool:
        return self._valid


class TrainDialog(QDialog):
    """See the module docstring. `job_created(job_id)` fires once the server accepted the job."""

    job_created = Signal(str)

    def __init__(self, store: DatasetStore, dataset: Dataset, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.dataset = dataset
        self.created_job: TrainingJob | None = None
        self._base_models: list[BaseModelInfo] = []
        self._sending = False
        self.setObjectName("trainDialog")
        self.setWindowTitle(f"Train on “{dataset.name}”")
        self.setMinimumWidth(460)

        layout = QVBoxLayout(self)
        self.banner = Banner(self)
        self.banner.hide()
        layout.addWidget(self.banner)

        intro = QLabel(f"Dataset: {dataset.name} ({dataset.image_count:,} files)", self)
        intro.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(intro)

        job_form = QFormLayout()
        self.name_edit = QLineEdit(f"{dataset.name} training", self)
        self.name_edit.setMaxLength(MAX_NAME_LENGTH)
        self.name_edit.setAccessibleName("Job name")
        self.name_edit.textChanged.connect(self._update_buttons)
        job_form.addRow("Job &name:", self.name_edit)
        self.base_model_combo = QComboBox(self)
        self.base_model_combo.setAccessibleName("Base model")
        self.base_model_combo.setPlaceholderText("Loading base models…")
        self.base_model_combo.currentIndexChanged.connect(self._on_base_model_changed)
        job_form.addRow("&Base model:", self.base_model_combo)
        self.base_model_description = QLabel(self)
        self.base_model_description.setTextFormat(Qt.TextFormat.PlainText)
        self.base_model_description.setWordWrap(True)
        job_form.addRow("", self.base_model_description)
        self.steps_spin = QSpinBox(self)
        self.steps_spin.setRange(1, MAX_TOTAL_STEPS)
        self.steps_spin.setValue(DEFAULT_TOTAL_STEPS)
        self.steps_spin.setGroupSeparatorShown(True)
        self.steps_spin.setAccessibleName("Total steps")
        job_form.addRow("Total &steps:", self.steps_spin)
        layout.addLayout(job_form)

        self.params_group = QGroupBox("Parameters", self)
        group_layout = QVBoxLayout(self.params_group)
        self.params_form = ParamsForm(self.params_group)
        self.params_form.validity_changed.connect(self._update_buttons)
        self.params_form.problem_fields_changed.connect(self._fit_height)
        group_layout.addWidget(self.params_form)
        self.params_note = QLabel(self.params_group)
        self.params_note.setWordWrap(True)
        self.params_note.hide()
        group_layout.addWidget(self.params_note)
        layout.addWidget(self.params_group)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.create_button = QPushButton("&Create job", self)
        self.create_button.setDefault(True)
        self.buttons.addButton(self.create_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        store.base_models_loaded.connect(self._on_base_models_loaded)
        store.base_models_failed.connect(self._on_base_models_failed)
        store.job_created.connect(self._on_job_created)
        store.job_create_failed.connect(self._on_job_create_failed)
        self._update_buttons()
        store.request_base_models()

    # state ------------------------------------------------------------------------------------------------
    def current_base_model(self) -> BaseModelInfo | None:
        index = self.base_model_combo.currentIndex()
        return self._base_models[index] if 0 <= index < len(self._base_models) else None

    def problems(self) -> list[str]:
        """Everything that stops Create, as sentences (empty when the job can be sent)."""
        found: list[str] = []
        if not self.name_edit.text().strip():
            found.append("Give the job a name.")
        model = self.current_base_model()
        if model is None:
            found.append("Choose a base model.")
        elif model.error:
            found.append(f"{model.name} cannot be used: {model.error}")
        if self.dataset.status is not DatasetStatus.ACTIVE:
            found.append(f"The dataset is {self.dataset.status.value}; only an active dataset can be trained on.")
        _, params_problems = self.params_form.values()
        found.extend(params_problems.values())
        return found

    def _update_buttons(self, *args: object) -> None:
        self.create_button.setEnabled(not self._sending and not self.problems())
        self.create_button.setToolTip("\n".join(self.problems()))

    def _fit_height(self) -> None:
        # A top-level window with word-wrapped labels does not grow by itself when error lines appear
        # under fields; grow it once the layout has settled (next event-loop pass) so nothing is squeezed.
        QTimer.singleShot(0, self._grow_to_hint)

    def _grow_to_hint(self) -> None:
        wanted = self.layout().totalHeightForWidth(self.width()) if self.layout().hasHeightForWidth() \
            else self.sizeHint().height()
        if wanted > self.height():
            self.resize(self.width(), wanted)

    # intents ---------------------------------------------------------------------------------------------
    def submit(self) -> bool:
        """Validate everything, then hand the job to the store; False (and says why) when invalid."""
        if self._sending:
            return False
        self.params_form.revalidate()
        problems = self.problems()
        if problems:
            self.banner.show_message(" ".join(problems), BannerLevel.ERROR)
            self._update_buttons()
            return False
        params, _ = self.params_form.values()
        base_model = self.current_base_model()
        assert base_model is not None
        self._sending = True
        self.banner.show_message("Creating the job…", BannerLevel.INFO)
        self._update_buttons()
        self.store.create_job(name=self.name_edit.text().strip(), dataset_id=self.dataset.id,
                              base_model=base_model.id, total_steps=self.steps_spin.value(), params=params)
        return True

    # store answers --------------------------------------------------------------------------------------------
    def _on_base_models_loaded(self, models: list[BaseModelInfo]) -> None:
        previous = self.current_base_model()
        self._base_models = list(models)
        self.base_model_combo.blockSignals(True)
        self.base_model_combo.clear()
        for i, model in enumerate(models):
            self.base_model_combo.addItem(model.name if not model.error else f"{model.name} (unavailable)", model.id)
            if model.error:
                # A broken preset is listed greyed out with its reason, so the user learns what to fix.
                self.base_model_combo.setItemData(i, f"Cannot be used: {model.error}", Qt.ItemDataRole.ToolTipRole)
                item = self.base_model_combo.model().item(i)  # type: ignore[attr-defined]
                if item is not None:
                    item.setEnabled(False)
        self.base_model_combo.setPlaceholderText("No base models on this server" if not models else "")
        usable = [i for i, m in enumerate(models) if not m.error]
        index = usable[0] if usable else (0 if models else -1)
        if previous is not None:
            index = next((i for i, m in enumerate(models) if m.id == previous.id and not m.error), index)
        self.base_model_combo.setCurrentIndex(index)
        self.base_model_combo.blockSignals(False)
        self._on_base_model_changed()

    def _on_base_models_failed(self, message: str) -> None:
        self.banner.show_message(message, BannerLevel.ERROR, [("Retry", self.store.request_base_models)])
        self._update_buttons()

    def _on_base_model_changed(self, *args: object) -> None:
        model = self.current_base_model()
        description = model.description if model else ""
        if model is not None and model.error:
            description = f"Cannot be used: {model.error}"
        self.base_model_description.setText(description)
        self.params_form.set_schema(model.params_schema if model else [])
        self.params_group.setVisible(model is not None)
        if model is not None and not model.params_schema:
            self.params_note.setText("This base model has no parameters.")
            self.params_note.show()
        elif self.params_form.unsupported:
            self.params_note.setText("The server's defaults apply to: " + ", ".join(self.params_form.unsupported))
            self.params_note.show()
        else:
            self.params_note.hide()
        self._update_buttons()

    def _on_job_created(self, job: TrainingJob) -> None:
        if not self._sending:
            return  # another dialog's job
        self._sending = False
        self.created_job = job
        self.job_created.emit(job.id)
        self.accept()

    def _on_job_create_failed(self, message: str) -> None:
        if not self._sending:
            return
        self._sending = False
        self.banner.show_message(message, BannerLevel.ERROR)
        self._update_buttons()
