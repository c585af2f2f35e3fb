"""Glue between the jobs panel and the main window: the details pane's links and its View menu entry.

`wire_jobs_panel(window, panel)` is what the main window calls when it builds the Jobs tab: the Overview's
dataset and model links switch to the Datasets or Models tab and select that record (`reveal_record`), the
panel's "Job details" toggle joins the window's View menu, the panel's views stop when the window closes, and
"Train again…" / "Save as template…" on a job open the Train dialog or save a template (ui/datasets/train_again).
A tab built on first show may not have its list yet: the selection then waits for the record to arrive (up
to `REVEAL_WAIT_MS`), instead of failing silently.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer

__all__ = ["wire_jobs_panel", "reveal_record", "REVEAL_WAIT_MS"]

REVEAL_WAIT_MS = 15_000

# tab title -> the panel method that selects one of its records
_SELECTORS = {"Datasets": "select_dataset", "Models": "select_model"}


def reveal_record(window: Any, title: str, record_id: str) -> bool:
    """Switch `window` to the tab `title` and select `record_id` there, now or once its list has it.
    False when the window has no such tab."""
    if not window.show_panel(title):
        return False
    panel = window.panel(title)
    select = getattr(panel, _SELECTORS.get(title, ""), None)
    if select is None:
        return True
    if select(record_id):
        return True
    model = getattr(panel, "model", None)
    if model is None:
        return True
    # The list is still loading: select the record when it arrives, unless the user moved on.
    timer = QTimer(panel)
    timer.setSingleShot(True)
    signals = [model.rowsInserted, model.modelReset]

    def stop() -> None:
        timer.stop()
        for signal in signals:
            try:
                signal.disconnect(attempt)
            except (RuntimeError, TypeError):
                pass
        timer.deleteLater()

    def attempt(*_args: object) -> None:
        if select(record_id):
            stop()

    for signal in signals:
        signal.connect(attempt)
    timer.timeout.connect(stop)
    timer.start(REVEAL_WAIT_MS)
    return True


def wire_jobs_panel(window: Any, panel: Any) -> Any:
    """Connect a freshly built jobs panel to `window` (see the module docstring); returns the panel."""
    panel.dataset_requested.connect(lambda record_id: reveal_record(window, "Datasets", record_id))
    panel.model_requested.connect(lambda record_id: reveal_record(window, "Models", record_id))
    view_menu = getattr(window, "view_menu", None)
    if view_menu is not None:
        view_menu.addAction(panel.details_action)
    window.closing.connect(panel.shutdown)
    panel.train_again_requested.connect(lambda job: _train_again(window, job))
    panel.save_template_requested.connect(lambda job: _save_template(window, job))
    return panel


def _train_again(window: Any, job: Any) -> None:
    # Imported on use: the Train dialog stays out of start-up.
    from training_studio.ui.datasets.train_again import open_train_again

    open_train_again(window, job)


def _save_template(window: Any, job: Any) -> None:
    from training_studio.ui.datasets.train_again import save_job_as_template

    save_job_as_template(window, job)
