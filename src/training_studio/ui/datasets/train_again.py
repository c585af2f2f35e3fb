"""Train again and Save as template from any tab (issue 16): the entry points the History and Jobs tabs call.

`open_train_again(window, job)` shows the Datasets tab (building it if it was never shown: the Train
dialog belongs to it and its store knows the datasets) and opens the Train dialog filled from `job`.
`save_job_as_template(window, job)` asks a template name (a QInputDialog opened with `open()`, never
`exec()`) and saves the job's dataset, base model, steps and parameters through the app's `TemplateStore`;
the outcome is a passing notice of the window ("Saved template X" / "Replaced template X"). Both find the
app's `LibraryPanels` on the window (`window.library_panels`, set by `install_library_panels`) and return
None, saying nothing, when the window has none (a test window without the Datasets tab).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QDialog, QInputDialog, QLineEdit

from training_studio.contract.models import TrainingJob
from training_studio.contract.templates import JobTemplate, JobTemplateSettings
from training_studio.ui.datasets.train_dialog import MAX_NAME_LENGTH, TrainDialog
from training_studio.ui.notifications import post_notice

__all__ = ["open_train_again", "save_job_as_template", "job_settings"]


def job_settings(job: TrainingJob) -> JobTemplateSettings:
    """The settings a template keeps of `job`."""
    return JobTemplateSettings(dataset_id=job.dataset_id, base_model=job.base_model,
                               total_steps=job.total_steps, params=dict(job.params or {}))


def open_train_again(window: Any, job: TrainingJob) -> TrainDialog | None:
    """Switch to the Datasets tab and open the Train dialog filled from `job` (see the module docstring)."""
    library = getattr(window, "library_panels", None)
    panel = library.datasets_panel if library is not None else None  # builds a lazy tab
    if panel is None:
        return None
    window.tabs.setCurrentWidget(panel)
    return panel.open_train_again(job)


def save_job_as_template(window: Any, job: TrainingJob) -> QInputDialog | None:
    """Ask a name, then save `job`'s settings as a template on the server (see the module docstring)."""
    library = getattr(window, "library_panels", None)
    if library is None:
        return None
    templates = library.templates
    settings = job_settings(job)
    prompt = QInputDialog(window)
    prompt.setWindowTitle("Save as template")
    prompt.setLabelText(f"Save the settings of “{job.name}” as the template (a template of the same name "
                        f"is replaced):")
    prompt.setTextValue(job.name)
    prompt.setOkButtonText("Save template")
    line = prompt.findChild(QLineEdit)
    if line is not None:
        line.setMaxLength(MAX_NAME_LENGTH)

    def saved(template: JobTemplate, replaced: bool) -> None:
        if template.name.casefold() != prompt_name[0].casefold():
            return  # another save's answer
        done()
        post_notice(window, f"{'Replaced' if replaced else 'Saved'} template “{template.name}”.")

    def failed(message: str) -> None:
        done()
        post_notice(window, message, failed=True)

    def done() -> None:
        templates.template_saved.disconnect(saved)
        templates.template_save_failed.disconnect(failed)

    prompt_name = [""]

    def answered(result: int) -> None:
        name = prompt.textValue().strip()
        prompt.deleteLater()
        if result != QDialog.DialogCode.Accepted or not name:
            return
        prompt_name[0] = name
        templates.template_saved.connect(saved)
        templates.template_save_failed.connect(failed)
        templates.save(name, settings)

    prompt.finished.connect(answered)
    window.template_name_prompt = prompt  # tests answer it
    prompt.open()
    return prompt
