"""The Train dialog: start a training job on one dataset, with a form built from the base model's schema.

`TrainDialog` asks for the job name, the base model (from `/api/training/base-models`), the total steps
and one field per entry of that base model's `params_schema` (`ParamsForm`): a spin box for numbers
(`QSpinBox` for int, a `QDoubleSpinBox` for float) bounded by the schema's min/max, stepping by its
`step` and showing its `unit` after the value; a `LogSpinBox` for a float with `log_scale` (learning
rates: the arrows walk 1, 2, 5, 10… or multiply by `step`, and values show as 1e-4, 2e-4…); a line
edit for text, a check box for booleans and a combo box for choices; each with its description as
tooltip. Every field is validated as the user types and again on Create; an invalid form never reaches
the server, and each problem is said next to its field. The server's own refusal (422, unknown base
model, dataset no longer active) is shown in the dialog's banner, and the dialog stays open with the
user's values. The default job name, "<dataset> · <base model>", gets a number when a job of that name
exists ("… 2", "… 3"): one in the Jobs list at once, and any the server knows (cleared from the list, older)
once the store's answer to a search for that name arrives, unless the user typed a name meanwhile. It never
calls HTTP: it asks the `DatasetStore` and listens to its signals. It is
opened with `open()` (never `exec()`, which would nest an event loop under asyncio).

The dialog usually opens before the base models have arrived, so the fields and the word-wrapped
description appear in a window that is already shown. A top-level window only grows to its layout's
minimum by itself, and that minimum ignores height-for-width (the wrapped description), so the rows were
squeezed below their size hints on the first open of a session (later opens had the answer cached and
were laid out before showing). The dialog therefore grows to its height-for-width whenever its content
changes (`_fit_height`).

Train again and templates (issue 16). Opened with `again=job`, the dialog is filled from that finished job:
its dataset (picked in a dataset combo listing the store's active datasets), base model, total steps,
parameters and the name "<name> (2)" (or (3)… past existing names). A template chosen in the "Template"
combo (from a `TemplateStore`) fills the same fields, the dataset only when the template names one that
exists. What cannot be carried over is said in the banner, never raised: a dataset or base model that no
longer exists (the user picks another), parameters today's schema no longer has (dropped) and values now
out of range (clamped). "Save as template…" asks a name (a QInputDialog opened with `open()`) and saves the
current settings; "Delete template" asks first (`ask_to_confirm`, the safe button the default).

When to start (issue 16). A collapsed "When to start" section (`ScheduleSection`) under the parameters
offers start now (the default), hold in queue, after another job (optionally only if it succeeds) and not
before a local date and time, sent as the create request's `held` / `after_job_id` + `after_condition` /
`not_before` (UTC). Its problems (no job chosen, a start time that has passed) stop Create like any other,
said in the section and in Create's tooltip; time is read again on Create, so a moment that passed while the
dialog stood open is refused there, never sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPalette, QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract.models import BaseModelInfo, Dataset, DatasetStatus, ParamSpec, ParamType, TrainingJob
from training_studio.ui.banner import Banner, BannerLevel
from training_studio.contract.templates import JobTemplate, JobTemplateSettings
from training_studio.ui.confirm import ask_to_confirm
from training_studio.ui.datasets.schedule_section import ScheduleSection
from training_studio.ui.datasets.store import DatasetStore
from training_studio.ui.datasets.template_store import TemplateStore

__all__ = ["TrainDialog", "ParamsForm", "FloatSpinBox", "LogSpinBox", "parse_param", "unique_job_name",
           "again_name", "format_number", "DEFAULT_TOTAL_STEPS", "MAX_TOTAL_STEPS"]

DEFAULT_TOTAL_STEPS = 200
MAX_TOTAL_STEPS = 10_000_000  # the contract's limit (CreateJobRequest)
MAX_NAME_LENGTH = 200
INT_LIMIT = 2**31 - 1  # QSpinBox holds a C int: wider schema bounds are narrowed to it
FLOAT_LIMIT = 1e15     # the bound of a float without min/max
LOG_LADDER = (1, 2, 5)  # the rungs of a log-scale control in each decade, without a factor as step
_PARTIAL_NUMBER = re.compile(r"[+-]?(\d*\.?\d*)([eE][+-]?\d*)?")


def unique_job_name(base: str, taken: Iterable[str], *, pattern: str = "{base} {number}",
                    always_number: bool = False) -> str:
    """`base`, or `pattern` filled with the smallest N ≥ 2 that no existing job uses (`always_number`:
    never `base` itself)."""
    used = {name.strip() for name in taken}
    if base not in used and not always_number:
        return base
    number = 2
    while pattern.format(base=base, number=number) in used:
        number += 1
    return pattern.format(base=base, number=number)


_AGAIN_SUFFIX = re.compile(r"^(.*\S)\s+\((\d+)\)$")


def again_name(name: str, taken: Iterable[str]) -> str:
    """The name of a job trained again from `name`: "<name> (2)", or (3)… past taken names; a name that
    already ends in "(N)" is numbered on ("run (2)" gives "run (3)", not "run (2) (2)")."""
    base = name.strip()
    match = _AGAIN_SUFFIX.match(base)
    if match is not None:
        base = match.group(1)
    base = base[:MAX_NAME_LENGTH - 8]
    return unique_job_name(base, [*taken, name.strip()], pattern="{base} ({number})", always_number=True)


def format_number(value: float, *, scientific: bool = False) -> str:
    """A float as people write it: 4, 0.5, 1e-4 (scientific: always mantissa-e-exponent, e.g. 2e-4)."""
    if value == 0:
        return "0"
    if scientific:
        exponent = math.floor(math.log10(abs(value)))
        mantissa = round(value / 10 ** exponent, 2)
        if abs(mantissa) >= 10:  # 9.999 rounded up
            mantissa, exponent = mantissa / 10, exponent + 1
        return f"{mantissa:.3g}e{exponent}"
    text = f"{value:.6g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text


def _ladder_value(value: float, steps: int) -> float:
    """`value` moved `steps` rungs along 1, 2, 5, 10, 20… (from an off-ladder value: to the next rung)."""
    for _ in range(abs(steps)):
        exponent = math.floor(math.log10(value))
        rungs = [float(f"{rung}e{e}") for e in (exponent - 1, exponent, exponent + 1) for rung in LOG_LADDER]
        if steps > 0:
            value = min(r for r in rungs if r > value * (1 + 1e-9))
        else:
            value = max(r for r in rungs if r < value * (1 - 1e-9))
    return value


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


class FloatSpinBox(QDoubleSpinBox):
    """A float spin box that keeps full precision (a plain QDoubleSpinBox rounds to its decimals, which
    would turn a 1e-6 learning rate into 0) and shows values as people write them (4, 0.5, 1e-4)."""

    scientific = False

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(30)  # rounding happens at 30 places: never visible, never in the way

    def _number_part(self, text: str) -> str:
        text = text.strip()
        if self.suffix().strip() and text.endswith(self.suffix().strip()):
            text = text[: -len(self.suffix().strip())]
        return text.strip()

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt's name)
        return format_number(value, scientific=self.scientific)

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(self._number_part(text))
        except ValueError:
            return self.value()

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt's name)
        # 0.1 + 0.2 is 0.30000000000000004: keep arrow results to 12 significant digits, as typed values are.
        target = float(f"{self.value() + steps * self.singleStep():.12g}")
        self.setValue(min(max(target, self.minimum()), self.maximum()))
        self.selectAll()

    def validate(self, text: str, pos: int) -> object:
        number = self._number_part(text)
        try:
            value = float(number)
        except ValueError:
            partial = _PARTIAL_NUMBER.fullmatch(number) is not None
            return (QValidator.State.Intermediate if partial else QValidator.State.Invalid), text, pos
        if not math.isfinite(value):
            return QValidator.State.Invalid, text, pos
        in_range = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if in_range else QValidator.State.Intermediate), text, pos


class LogSpinBox(FloatSpinBox):
    """A float spin box on a log scale: each arrow press multiplies or divides by `factor`, or walks the
    1, 2, 5, 10… ladder when there is none; values show in scientific form (1e-4, 2e-4, 5e-4)."""

    scientific = True

    def __init__(self, parent: QWidget | None = None, factor: float | None = None) -> None:
        super().__init__(parent)
        self.factor = factor if factor is not None and factor > 1 else None

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt's name)
        value = self.value()
        if steps == 0:
            return
        if value <= 0:
            target = self.minimum() if self.minimum() > 0 else 1e-6
        elif self.factor is not None:
            target = value * self.factor ** steps
        else:
            target = _ladder_value(value, steps)
        self.setValue(min(max(target, self.minimum()), self.maximum()))
        self.selectAll()


class _Field:
    """One row of the form: its editor, its error label, and how to read its value."""

    def __init__(self, spec: ParamSpec, editor: QWidget, error: QLabel) -> None:
        self.spec = spec
        self.editor = editor
        self.error = error

    def value(self) -> Any:
        editor = self.editor
        if isinstance(editor, QCheckBox):
            return editor.isChecked()
        if isinstance(editor, QComboBox):
            if editor.currentIndex() < 0:
                raise ValueError(f"{self.spec.name}: choose a value.")
            return editor.currentData()
        if isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            if not editor.hasAcceptableInput():
                # The text being typed is not (yet) a number in range; the spin box's value is stale.
                low, high = editor.minimum(), editor.maximum()
                kind = "a whole number" if isinstance(editor, QSpinBox) else "a number"
                raise ValueError(f"{self.spec.name} must be {kind} from {format_number(low)} to "
                                 f"{format_number(high)}.")
            if isinstance(editor, QSpinBox):
                return editor.value()
            return float(editor.value())
        assert isinstance(editor, QLineEdit)
        return parse_param(self.spec, editor.text())


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
            if not editor.toolTip():  # spin boxes already say their range there
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
        if spec.type is ParamType.INT:
            spin = QSpinBox(self)
            low = max(-INT_LIMIT - 1, math.ceil(spec.min)) if spec.min is not None else -INT_LIMIT - 1
            high = min(INT_LIMIT, math.floor(spec.max)) if spec.max is not None else INT_LIMIT
            spin.setRange(low, max(low, high))
            spin.setSingleStep(max(1, int(spec.step)) if spec.step and spec.step >= 1 else 1)
            self._finish_spin(spin, spec)
            if isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool):
                spin.setValue(int(spec.default))
            # the line edit's signal: the spin box's own textChanged is silent while the text is not a valid value
            spin.lineEdit().textChanged.connect(self.revalidate)
            return spin
        if spec.type is ParamType.FLOAT:
            log_scale = spec.log_scale and spec.min is not None and spec.min > 0
            box: FloatSpinBox = LogSpinBox(self, factor=spec.step) if log_scale else FloatSpinBox(self)
            low = spec.min if spec.min is not None else -FLOAT_LIMIT
            high = spec.max if spec.max is not None else FLOAT_LIMIT
            box.setRange(low, max(low, high))
            box.setSingleStep(spec.step if spec.step and spec.step > 0 else _guess_step(spec))
            self._finish_spin(box, spec)
            if isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool):
                box.setValue(float(spec.default))
            box.lineEdit().textChanged.connect(self.revalidate)
            return box
        if spec.type is ParamType.STR:
            edit = QLineEdit(self)
            if spec.default is not None:
                edit.setText(str(spec.default))
            edit.textChanged.connect(self.revalidate)
            return edit
        return None  # a type from a newer server: the server's default applies

    def _finish_spin(self, spin: QAbstractSpinBox, spec: ParamSpec) -> None:
        if spec.unit:
            spin.setSuffix(f" {spec.unit}")  # type: ignore[attr-defined]
        spin.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)
        spin.setAccelerated(True)
        low = format_number(spin.minimum())  # type: ignore[attr-defined]
        high = format_number(spin.maximum())  # type: ignore[attr-defined]
        unit = f" {spec.unit}" if spec.unit else ""
        spin.setToolTip(f"{spec.description}\nAllowed: {low} to {high}{unit}.".strip())

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


def _guess_step(spec: ParamSpec) -> float:
    """A float's arrow step when the schema gives none: a power of ten about a hundredth of its range,
    or of its default's size."""
    if spec.min is not None and spec.max is not None and spec.max > spec.min:
        span = spec.max - spec.min
    elif isinstance(spec.default, (int, float)) and spec.default:
        span = abs(float(spec.default)) * 10
    else:
        return 0.1
    return float(f"1e{math.floor(math.log10(span / 100))}")


class _Prefill:
    """Settings to put in the dialog once what they need has arrived (datasets, base models)."""

    def __init__(self, settings: JobTemplateSettings, source: str, *, dataset_required: bool) -> None:
        self.settings = settings
        self.source = source  # "“run”" or "template “fast”": how the banner names where they come from
        self.dataset_required = dataset_required  # train again: a missing dataset must be said and picked
        self.dataset_done = settings.dataset_id is None
        self.model_done = False


class TrainDialog(QDialog):
    """See the module docstring. `job_created(job_id)` fires once the server accepted the job."""

    job_created = Signal(str)

    def __init__(self, store: DatasetStore, dataset: Dataset | None, parent: QWidget | None = None, *,
                 taken_names: Callable[[], Iterable[str]] | None = None,
                 templates: TemplateStore | None = None, again: TrainingJob | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.templates = templates
        self.again = again
        self.dataset: Dataset | None = dataset
        # The names of the jobs that exist (the jobs store's), so the default name can avoid them.
        self._taken_names = taken_names
        self._default_name = ""  # the name this dialog proposed: replaced on a base model change unless edited
        # Names of the server's jobs like the proposed one (its history search, cleared jobs included), asked
        # per base name through the store; the default name avoids them too once they arrive.
        self._server_names: set[str] = set()
        self._asked_names: set[str] = set()
        self._name_base = ""  # the base of the proposed name
        self.created_job: TrainingJob | None = None
        self._base_models: list[BaseModelInfo] = []
        self._sending = False
        self._prefill: _Prefill | None = None
        self._notes: dict[str, list[str]] = {}  # what a prefill could not carry over, by part
        self._choose_dataset = again is not None  # a dataset combo instead of the fixed dataset line
        self._datasets_fresh = False  # the store's list was read by a refresh started after this dialog asked
        self._fresh_requested = False
        self._dataset_items: list[tuple[str, str]] = []  # what the dataset combo lists
        self.confirm_box: QWidget | None = None  # the open "Delete template?" box (tests answer it)
        self.name_dialog: QInputDialog | None = None  # the open "Save as template" name prompt
        self._height_before_schedule = 0  # the dialog's height when "When to start" was opened
        self.setObjectName("trainDialog")
        self.setMinimumWidth(460)

        layout = QVBoxLayout(self)
        self.template_row = QWidget(self)
        template_layout = QHBoxLayout(self.template_row)
        template_layout.setContentsMargins(0, 0, 0, 0)
        template_label = QLabel("&Template:", self.template_row)
        self.template_combo = QComboBox(self.template_row)
        self.template_combo.setAccessibleName("Template")
        self.template_combo.setToolTip("Fill the form from a template saved on this server")
        self.template_combo.addItem("None", None)
        template_label.setBuddy(self.template_combo)
        self.delete_template_button = QToolButton(self.template_row)
        self.delete_template_button.setText("Delete template")
        self.delete_template_button.setAccessibleName("Delete template")
        self.delete_template_button.setToolTip("Delete the chosen template from the server")
        self.delete_template_button.clicked.connect(self.confirm_delete_template)
        template_layout.addWidget(template_label)
        template_layout.addWidget(self.template_combo, 1)
        template_layout.addWidget(self.delete_template_button)
        self.template_row.setVisible(templates is not None)
        layout.addWidget(self.template_row)

        self.banner = Banner(self)
        self.banner.hide()
        layout.addWidget(self.banner)

        self.intro = QLabel(self)
        self.intro.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.intro)

        job_form = QFormLayout()
        self.dataset_combo = QComboBox(self)
        self.dataset_combo.setAccessibleName("Dataset")
        self.dataset_combo.setPlaceholderText("Loading datasets…")
        self.dataset_combo.currentIndexChanged.connect(self._on_dataset_chosen)
        self.dataset_label = QLabel("&Dataset:", self)
        self.dataset_label.setBuddy(self.dataset_combo)
        job_form.addRow(self.dataset_label, self.dataset_combo)
        self._job_form = job_form
        self.name_edit = QLineEdit(self)
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

        # When to start (issue 16): collapsed, so the usual "start now" costs one line.
        self.schedule = ScheduleSection(self)
        self.schedule.changed.connect(self._update_buttons)
        self.schedule.expanded_changed.connect(self._on_schedule_expanded)
        self.schedule.jobs_wanted.connect(store.request_followable_jobs)
        layout.addWidget(self.schedule)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.create_button = QPushButton("&Create job", self)
        self.create_button.setDefault(True)
        self.buttons.addButton(self.create_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.save_template_button = QPushButton("Save as te&mplate…", self)
        self.save_template_button.setAutoDefault(False)
        self.save_template_button.setToolTip("Save these settings under a name on the server")
        self.save_template_button.clicked.connect(self.ask_template_name)
        self.save_template_button.setVisible(templates is not None)
        self.buttons.addButton(self.save_template_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        store.base_models_loaded.connect(self._on_base_models_loaded)
        store.base_models_failed.connect(self._on_base_models_failed)
        store.job_created.connect(self._on_job_created)
        store.job_create_failed.connect(self._on_job_create_failed)
        store.followable_jobs_loaded.connect(self.schedule.set_jobs)
        store.followable_jobs_failed.connect(self.schedule.set_jobs_failed)
        store.datasets_changed.connect(self._on_datasets_changed)
        store.refresh_succeeded.connect(self._on_datasets_refreshed)
        store.job_names_found.connect(self._on_job_names_found)
        store.refresh_failed.connect(self._on_datasets_refresh_failed)
        if templates is not None:
            templates.templates_changed.connect(self._on_templates_changed)
            templates.templates_failed.connect(self._show_error)
            templates.template_saved.connect(self._on_template_saved)
            templates.template_save_failed.connect(self._show_error)
            templates.template_deleted.connect(self._on_template_deleted)
            templates.template_delete_failed.connect(self._show_error)
            self.template_combo.currentIndexChanged.connect(self._on_template_chosen)
        if again is not None:
            self._prefill = _Prefill(_settings_of_job(again), f"“{again.name}”", dataset_required=True)
        self._show_dataset()
        if again is not None:
            self._default_name = ""  # the job's name stays, whatever base model is chosen
            self._show_name(again_name(again.name, self._taken()))
        else:
            self._propose_name(None)
        self._update_template_buttons()
        self._update_buttons()
        if self._choose_dataset:
            self._on_datasets_changed()
            self._ask_fresh_list()  # the list may be stale or not loaded at all (lazy tab)
        if templates is not None:
            templates.request_templates()
        store.request_base_models()

    # state ------------------------------------------------------------------------------------------------
    def current_base_model(self) -> BaseModelInfo | None:
        index = self.base_model_combo.currentIndex()
        return self._base_models[index] if 0 <= index < len(self._base_models) else None

    def current_template(self) -> JobTemplate | None:
        template_id = self.template_combo.currentData()
        return self.templates.template(template_id) if self.templates is not None and template_id else None

    def current_settings(self) -> JobTemplateSettings:
        """What the form holds now, as template settings (only the parameters that are valid)."""
        params, _ = self.params_form.values()
        model = self.current_base_model()
        return JobTemplateSettings(dataset_id=self.dataset.id if self.dataset is not None else None,
                                   base_model=model.id if model is not None else None,
                                   total_steps=self.steps_spin.value(), params=params)

    def problems(self) -> list[str]:
        """Everything that stops Create, as sentences (empty when the job can be sent)."""
        found: list[str] = []
        if self.dataset is None:
            found.append("Choose a dataset.")
        if not self.name_edit.text().strip():
            found.append("Give the job a name.")
        model = self.current_base_model()
        if model is None:
            found.append("Choose a base model.")
        elif model.error:
            found.append(f"{model.name} cannot be used: {model.error}")
        if self.dataset is not None and self.dataset.status is not DatasetStatus.ACTIVE:
            found.append(f"The dataset is {self.dataset.status.value}; only an active dataset can be trained on.")
        _, params_problems = self.params_form.values()
        found.extend(params_problems.values())
        found.extend(self.schedule.problems())
        return found

    def _update_buttons(self, *args: object) -> None:
        self.create_button.setEnabled(not self._sending and not self.problems())
        self.create_button.setToolTip("\n".join(self.problems()))

    def _taken(self) -> list[str]:
        names = list(self._server_names)
        if self._taken_names is None:
            return names
        try:
            return names + list(self._taken_names())
        except Exception:  # a naming hint must never stop the dialog from opening
            return names

    def _propose_name(self, model: BaseModelInfo | None) -> None:
        """Put "<dataset> · <base model>" (numbered past existing jobs) in the name field, unless the user
        typed a name of their own."""
        current = self.name_edit.text()
        if current and current != self._default_name:
            return
        dataset_name = self.dataset.name if self.dataset is not None else "New job"
        base = f"{dataset_name} · {model.name}" if model is not None else f"{dataset_name} training"
        self._name_base = base = base[:MAX_NAME_LENGTH - 4]
        self._default_name = unique_job_name(base, self._taken())
        self._show_name(self._default_name)
        if base not in self._asked_names:  # the server's jobs of that name, cleared ones too (issue 15)
            self._asked_names.add(base)
            self.store.request_job_names(base)

    def _show_name(self, name: str) -> None:
        """A proposed name in the name field, scrolled to its start: a name longer than the field shows its
        dataset part (what tells one job from another), not the base model's tail."""
        self.name_edit.setText(name)
        self.name_edit.setCursorPosition(0)

    def _on_job_names_found(self, base: str, names: list[str]) -> None:
        """The server's jobs named like `base` arrived: the default name avoids them too, unless the user
        typed a name of their own meanwhile (or the proposal moved on to another base)."""
        if base not in self._asked_names:
            return  # another dialog's question
        self._server_names.update(names)
        current = self.name_edit.text()
        if base != self._name_base or (current and current != self._default_name):
            return
        proposed = unique_job_name(base, self._taken())
        if proposed != current:
            self._default_name = proposed
            self._show_name(proposed)

    def _show_dataset(self) -> None:
        """The title and the dataset line (or combo) for `self.dataset`."""
        dataset = self.dataset
        self._job_form.setRowVisible(self.dataset_combo, self._choose_dataset)
        if dataset is None:
            self.setWindowTitle("Train again" if self.again is not None else "Train")
        else:
            self.setWindowTitle(f"Train on “{dataset.name}”")
        if self._choose_dataset:
            # Train again: the banner says which job the settings come from ("Filled from …"), once.
            self.intro.setText("")
            self.intro.setVisible(False)
        elif dataset is not None:
            files = f"{dataset.image_count:,} file" + ("" if dataset.image_count == 1 else "s")
            self.intro.setText(f"Dataset: {dataset.name} ({files})")

    def _fit_height(self) -> None:
        # A top-level window grows by itself only to its layout's minimum, which ignores height-for-width
        # (the word-wrapped description): rows added to a shown dialog (base models arriving, error lines
        # under fields) would be squeezed below their size hints. Grow it once the layout has settled
        # (next event-loop pass).
        QTimer.singleShot(0, self._grow_to_hint)

    def _on_schedule_expanded(self, expanded: bool) -> None:
        if expanded:
            self._height_before_schedule = self.height()
            self._fit_height()
        else:
            QTimer.singleShot(0, self._shrink_after_schedule)

    def _shrink_after_schedule(self) -> None:
        """Give back the height the section took when it opened (never below what the content needs)."""
        layout = self.layout()
        layout.activate()
        wanted = max(self._height_before_schedule, layout.totalMinimumSize().height())
        if layout.hasHeightForWidth():
            wanted = max(wanted, layout.totalHeightForWidth(self.width()))
        if wanted < self.height():
            self.resize(self.width(), wanted)

    def _grow_to_hint(self) -> None:
        layout = self.layout()
        layout.activate()
        wanted = max(self.sizeHint().height(), layout.totalMinimumSize().height())
        if layout.hasHeightForWidth():
            wanted = max(wanted, layout.totalHeightForWidth(self.width()))
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
        assert base_model is not None and self.dataset is not None
        self._sending = True
        self.banner.show_message("Creating the job…", BannerLevel.INFO)
        self._update_buttons()
        self.store.create_job(name=self.name_edit.text().strip(), dataset_id=self.dataset.id,
                              base_model=base_model.id, total_steps=self.steps_spin.value(), params=params,
                              schedule=self.schedule.request_fields())
        return True

    def apply_template(self, template: JobTemplate) -> None:
        """Fill the form from `template` (the dataset only if it names one that exists and is active)."""
        self._notes = {}
        self._prefill = _Prefill(template.settings, f"template “{template.name}”", dataset_required=False)
        self._apply_prefill_dataset()
        self._apply_prefill_model()

    def ask_template_name(self) -> QInputDialog | None:
        """Ask the name to save the current settings under (non-blocking: the prompt is opened with `open()`)."""
        if self.templates is None:
            return None
        _, problems = self.params_form.values()
        if problems:
            self.banner.show_message("Fix the parameters before saving them as a template: "
                                     + " ".join(problems.values()), BannerLevel.ERROR)
            return None
        prompt = QInputDialog(self)
        prompt.setWindowTitle("Save as template")
        prompt.setLabelText("Template name (a template of the same name is replaced):")
        current = self.current_template()
        prompt.setTextValue(current.name if current is not None else self.name_edit.text().strip())
        prompt.setOkButtonText("Save template")
        line = prompt.findChild(QLineEdit)
        if line is not None:
            line.setMaxLength(MAX_NAME_LENGTH)
        settings = self.current_settings()

        def answered(result: int) -> None:
            name = prompt.textValue().strip()
            if result == QDialog.DialogCode.Accepted and name and self.templates is not None:
                self.banner.show_message(f"Saving the template “{name}”…", BannerLevel.INFO)
                self.templates.save(name, settings)
            self.name_dialog = None
            prompt.deleteLater()

        prompt.finished.connect(answered)
        self.name_dialog = prompt
        prompt.open()
        return prompt

    def confirm_delete_template(self) -> None:
        template = self.current_template()
        if template is None or self.templates is None:
            return
        templates = self.templates
        self.confirm_box = ask_to_confirm(
            self, "Delete template", f"Delete the template “{template.name}”?",
            "It is removed from the server for every client. Jobs started from it are not affected.",
            confirm="Delete template", keep="Keep it",
            on_confirm=lambda: templates.delete(template.id, template.name))

    # prefill (train again, templates) --------------------------------------------------------------------
    def _note(self, part: str, notes: list[str]) -> None:
        self._notes[part] = notes
        lines = [line for key in ("dataset", "model") for line in self._notes.get(key, [])]
        source = self._prefill.source if self._prefill is not None else "the saved settings"
        if lines:
            self.banner.show_message(f"Filled from {source}, with changes: " + " ".join(lines),
                                     BannerLevel.WARNING)
        else:
            self.banner.show_message(f"Filled from {source}.", BannerLevel.INFO)
        self._fit_height()

    def _apply_prefill_dataset(self) -> None:
        prefill = self._prefill
        if prefill is None or prefill.dataset_done:
            return
        wanted = prefill.settings.dataset_id
        found = self.store.dataset(wanted) if wanted else None
        if not self._datasets_fresh and (found is None or prefill.dataset_required):
            # The list we have may not be loaded or may be older than the change: decide after a fresh read.
            self._ask_fresh_list()
            return
        prefill.dataset_done = True
        if found is not None and found.status is DatasetStatus.ACTIVE:
            if self.dataset is None or self.dataset.id != found.id:
                if not self._choose_dataset:
                    self._choose_dataset = True
                    self._on_datasets_changed()
                self._select_dataset(found)
            self._note("dataset", [])
            return
        if not prefill.dataset_required:
            where = f"the dataset stays “{self.dataset.name}”" if self.dataset is not None else "choose a dataset"
            gone = "no longer exists" if found is None else f"is {found.status.value}"
            self._note("dataset", [f"Its dataset {gone}; {where}."])
            return
        if found is None:
            text = "The dataset of this job no longer exists; choose another dataset."
        else:
            text = f"The dataset “{found.name}” is {found.status.value}; choose an active dataset."
        if self.dataset is not None and self.dataset.id == wanted:
            self.dataset = None
            self._show_dataset()
            self.dataset_combo.setCurrentIndex(-1)
        self._note("dataset", [text])
        self._update_buttons()

    def _apply_prefill_model(self) -> None:
        prefill = self._prefill
        if prefill is None or prefill.model_done or not self._base_models:
            return
        prefill.model_done = True
        settings = prefill.settings
        notes: list[str] = []
        if settings.base_model:
            index = next((i for i, m in enumerate(self._base_models) if m.id == settings.base_model), None)
            if index is None:
                notes.append(f"The base model “{settings.base_model}” no longer exists on this server; "
                             f"choose another (the first usable one is chosen).")
            elif self._base_models[index].error:
                notes.append(f"The base model “{self._base_models[index].name}” cannot be used now: "
                             f"{self._base_models[index].error}; choose another.")
            elif index != self.base_model_combo.currentIndex():
                self.base_model_combo.setCurrentIndex(index)  # rebuilds the form with its schema
        if settings.total_steps is not None:
            steps = min(max(int(settings.total_steps), 1), MAX_TOTAL_STEPS)
            if steps != settings.total_steps:
                notes.append(f"Total steps {settings.total_steps:,} set to {steps:,}.")
            self.steps_spin.setValue(steps)
        notes += self._fill_params(settings.params)
        self._note("model", notes)
        self._update_buttons()

    def _fill_params(self, params: dict[str, Any]) -> list[str]:
        """Put `params` in the form; the sentences say what was dropped or changed."""
        notes: list[str] = []
        dropped = [name for name in params if name not in self.params_form.fields]
        if dropped:
            notes.append("Dropped parameters this base model no longer has: " + ", ".join(dropped) + ".")
        for name, value in params.items():
            field = self.params_form.fields.get(name)
            if field is not None:
                note = _set_editor(field, value)
                if note:
                    notes.append(note)
        self.params_form.revalidate()
        return notes

    # store answers --------------------------------------------------------------------------------------------
    def _on_datasets_changed(self) -> None:
        if self._choose_dataset:
            active = sorted((d for d in (self.store.model.record(i) for i in self.store.model.ids())
                             if d is not None and d.status is DatasetStatus.ACTIVE),
                            key=lambda d: d.name.casefold())
            chosen = self.dataset.id if self.dataset is not None else None
            items = [(d.id, f"{d.name} ({d.image_count:,} file{'' if d.image_count == 1 else 's'})")
                     for d in active]
            self.dataset_combo.blockSignals(True)
            if items != self._dataset_items:  # rebuilt only on a change: the list refreshes every few seconds
                self._dataset_items = items
                self.dataset_combo.clear()
                for dataset_id, text in items:
                    self.dataset_combo.addItem(text, dataset_id)
            self.dataset_combo.setCurrentIndex(self.dataset_combo.findData(chosen) if chosen else -1)
            placeholder = "Choose a dataset" if active else (
                "No active datasets on this server" if self.store.loaded_once else "Loading datasets…")
            self.dataset_combo.setPlaceholderText(placeholder)
            self.dataset_combo.blockSignals(False)
            if self.dataset is not None:
                fresh = self.store.dataset(self.dataset.id)
                if fresh is not None:
                    self.dataset = fresh
        self._apply_prefill_dataset()
        self._update_buttons()

    def _ask_fresh_list(self) -> None:
        """Have the store read the datasets anew: a refresh already in flight may have started before the
        change the dialog must see, so wait for it to end and start another."""
        if self._datasets_fresh or self._fresh_requested:
            return
        if self.store.is_refreshing:
            QTimer.singleShot(100, self._ask_fresh_list)
            return
        self._fresh_requested = True
        self.store.request_refresh()

    def _on_datasets_refreshed(self) -> None:
        if self._fresh_requested:
            self._datasets_fresh = True
        self._on_datasets_changed()

    def _on_datasets_refresh_failed(self, message: str) -> None:
        if self._fresh_requested and not self._datasets_fresh:
            self._fresh_requested = False  # asked again on the next look
            if self._prefill is not None and not self._prefill.dataset_done:
                self._note("dataset", [f"The datasets could not be loaded: {message}"])

    def _select_dataset(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.dataset_combo.blockSignals(True)
        self.dataset_combo.setCurrentIndex(self.dataset_combo.findData(dataset.id))
        self.dataset_combo.blockSignals(False)
        self._show_dataset()
        self._propose_name(self.current_base_model())
        self._update_buttons()

    def _on_dataset_chosen(self, index: int) -> None:
        dataset_id = self.dataset_combo.itemData(index) if index >= 0 else None
        dataset = self.store.dataset(dataset_id) if dataset_id else None
        if dataset is None:
            return
        self._select_dataset(dataset)
        if self._notes.get("dataset"):  # the user picked another: the warning is answered
            self._note("dataset", [])

    def _on_templates_changed(self, templates: list[JobTemplate]) -> None:
        chosen = self.template_combo.currentData()
        self.template_combo.blockSignals(True)
        self.template_combo.clear()
        self.template_combo.addItem("None", None)
        for template in templates:
            self.template_combo.addItem(template.name, template.id)
        self.template_combo.setCurrentIndex(max(0, self.template_combo.findData(chosen)) if chosen else 0)
        self.template_combo.blockSignals(False)
        self._update_template_buttons()

    def _on_template_chosen(self, index: int) -> None:
        self._update_template_buttons()
        template = self.current_template()
        if template is not None:
            self.apply_template(template)

    def _on_template_saved(self, template: JobTemplate, replaced: bool) -> None:
        verb = "Replaced" if replaced else "Saved"
        self.banner.show_message(f"{verb} template “{template.name}”.", BannerLevel.INFO)
        # Shown as chosen once the list is reloaded (without filling the form again: it holds these values).
        self.template_combo.blockSignals(True)
        if self.template_combo.findData(template.id) < 0:
            self.template_combo.addItem(template.name, template.id)
        self.template_combo.setCurrentIndex(self.template_combo.findData(template.id))
        self.template_combo.blockSignals(False)
        self._update_template_buttons()

    def _on_template_deleted(self, template_id: str, name: str) -> None:
        self.banner.show_message(f"Deleted template “{name}”.", BannerLevel.INFO)
        if self.template_combo.currentData() == template_id:
            self.template_combo.blockSignals(True)
            self.template_combo.setCurrentIndex(0)
            self.template_combo.blockSignals(False)
        self._update_template_buttons()

    def _update_template_buttons(self) -> None:
        self.delete_template_button.setEnabled(self.current_template() is not None)

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
        elif self._prefill is not None and not self._prefill.model_done:
            wanted = self._prefill.settings.base_model
            index = next((i for i, m in enumerate(models) if m.id == wanted and not m.error), index)
        self.base_model_combo.setCurrentIndex(index)
        self.base_model_combo.blockSignals(False)
        self._on_base_model_changed()
        self._apply_prefill_model()

    def _show_error(self, message: str) -> None:
        self.banner.show_message(message, BannerLevel.ERROR)

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
        self._propose_name(model)
        self._update_buttons()
        self._fit_height()

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


def _settings_of_job(job: TrainingJob) -> JobTemplateSettings:
    return JobTemplateSettings(dataset_id=job.dataset_id, base_model=job.base_model,
                               total_steps=job.total_steps, params=dict(job.params or {}))


def _set_editor(field: _Field, value: Any) -> str | None:
    """Put a saved `value` in one editor; a sentence when it had to be changed or could not be used."""
    spec, editor = field.spec, field.editor
    name = spec.name
    if isinstance(editor, QCheckBox):
        if not isinstance(value, bool):
            return f"{name}: {value!r} is not yes/no; the default is kept."
        editor.setChecked(value)
        return None
    if isinstance(editor, QComboBox):
        index = next((i for i, choice in enumerate(spec.choices or []) if choice == value), -1)
        if index < 0:
            return f"{name}: “{value}” is no longer a choice; the default is kept."
        editor.setCurrentIndex(index)
        return None
    if isinstance(editor, (QSpinBox, QDoubleSpinBox)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{name}: {value!r} is not a number; the default is kept."
        number: float = value
        if isinstance(editor, QSpinBox) and not float(number).is_integer():
            number = round(number)
        clamped = min(max(number, editor.minimum()), editor.maximum())
        if isinstance(editor, QSpinBox):
            editor.setValue(int(clamped))
        else:
            editor.setValue(float(clamped))
        if clamped != value:
            return (f"{name} {format_number(float(value))} is outside {format_number(editor.minimum())} to "
                    f"{format_number(editor.maximum())} now; set to {format_number(float(clamped))}.")
        return None
    if isinstance(editor, QLineEdit):
        editor.setText(str(value)[:10_000])
        return None
    return None
