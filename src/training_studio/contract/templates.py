"""Job templates (issue 16): a job's settings saved under a name on the server, so every client can start a
new job from them. snake_case on the wire like the other extensions; `settings` has the fields of a
CreateJobRequest except the job's own name, all optional (a template may leave the dataset open)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["JobTemplate", "JobTemplateSettings", "SaveJobTemplateRequest"]


class _TemplateModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class JobTemplateSettings(_TemplateModel):
    dataset_id: str | None = Field(default=None, max_length=200)
    base_model: str | None = Field(default=None, max_length=200)
    total_steps: int | None = Field(default=None, ge=1, le=10_000_000)
    params: dict[str, Any] = Field(default_factory=dict)


class SaveJobTemplateRequest(_TemplateModel):
    name: str = Field(min_length=1, max_length=200)
    settings: JobTemplateSettings


class JobTemplate(_TemplateModel):
    id: str
    name: str
    settings: JobTemplateSettings
    created_at: str
    updated_at: str
