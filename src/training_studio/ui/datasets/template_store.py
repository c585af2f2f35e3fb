"""The job templates of one server (issue 16), for the Train dialog and the History tab.

`TemplateStore` is the one object that calls the template endpoints (`GET/POST /api/training/templates`,
`DELETE /api/training/templates/{id}`); widgets call `request_templates`/`save`/`delete` and listen to its
signals. The server replaces a template of the same name (any case) on save; the store reads the list just
before saving so it can say "Replaced template X" rather than "Saved". Every server error ends in a signal
with the server's own sentence.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Signal

from training_studio.client import ApiClient, ApiError, NotFound
from training_studio.contract.templates import JobTemplate, JobTemplateSettings
from training_studio.ui.tasks import TaskSet

__all__ = ["TemplateStore"]

log = logging.getLogger(__name__)


class TemplateStore(QObject):
    """See the module docstring. `templates` is the last list read (None before the first answer)."""

    templates_changed = Signal(list)        # list[JobTemplate], by name
    templates_failed = Signal(str)          # human message
    template_saved = Signal(object, bool)   # JobTemplate, whether it replaced one of the same name
    template_save_failed = Signal(str)
    template_deleted = Signal(str, str)     # template id, name
    template_delete_failed = Signal(str)

    def __init__(self, client: ApiClient, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.templates: list[JobTemplate] | None = None
        self._shut_down = False
        self._tasks = TaskSet("TemplateStore", lambda error: self.templates_failed.emit(
            f"Unexpected error with the templates: {error} (details in the log)."))

    # queries ---------------------------------------------------------------------------------------------
    def template(self, template_id: str) -> JobTemplate | None:
        return next((t for t in self.templates or [] if t.id == template_id), None)

    # intents ---------------------------------------------------------------------------------------------
    def request_templates(self) -> None:
        """Emit the cached list at once (if any), then the server's."""
        if self.templates is not None:
            self.templates_changed.emit(list(self.templates))
        if not self._shut_down:
            self._tasks.spawn(self.load())

    def save(self, name: str, settings: JobTemplateSettings | dict[str, Any]) -> None:
        if not self._shut_down:
            self._tasks.spawn(self.save_template(name, settings))

    def delete(self, template_id: str, name: str) -> None:
        if not self._shut_down:
            self._tasks.spawn(self.delete_template(template_id, name))

    def shutdown(self) -> None:
        self._shut_down = True
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()

    # operations (coroutines; tests may await them) ---------------------------------------------------------
    async def load(self) -> list[JobTemplate] | None:
        try:
            templates = await self.client.list_templates()
        except ApiError as error:
            self.templates_failed.emit(f"Could not load the templates: {error.message}")
            return None
        self.templates = templates
        self.templates_changed.emit(list(templates))
        return templates

    async def save_template(self, name: str, settings: JobTemplateSettings | dict[str, Any]) -> JobTemplate | None:
        name = name.strip()
        if not name:
            self.template_save_failed.emit("The template was not saved: give it a name.")
            return None
        try:
            existing = await self.client.list_templates()
            replaced = any(t.name.casefold() == name.casefold() for t in existing)
            template = await self.client.save_template(name, settings)
        except ApiError as error:
            self.template_save_failed.emit(f"The template was not saved: {error.message}")
            return None
        except ValueError as error:  # settings the contract refuses (e.g. steps out of range)
            self.template_save_failed.emit(f"The template was not saved: {error}")
            return None
        self.template_saved.emit(template, replaced)
        await self.load()
        return template

    async def delete_template(self, template_id: str, name: str) -> bool:
        try:
            await self.client.delete_template(template_id)
        except NotFound:
            pass  # already gone: what the user wanted
        except ApiError as error:
            self.template_delete_failed.emit(f"Could not delete the template “{name}”: {error.message}")
            return False
        self.template_deleted.emit(template_id, name)
        await self.load()
        return True
