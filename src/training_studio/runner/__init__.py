"""The job runner: the queue, trainer subprocess supervision, progress parsing and presets.

`create_executor(storage, config)` is the server's hook: the embedded server asks this package for it
and, when present, runs jobs with a `JobRunner` (see job_runner.py) instead of leaving them pending.
No Qt, no HTTP here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training_studio.runner.job_runner import JobRunner


def create_executor(storage: Any, config: Any) -> "JobRunner":
    """The server's ExecutorFactory: a JobRunner configured from the serve options."""
    if getattr(config, "executor", "local") == "ray":  # issue 18: jobs run on a Ray cluster
        from training_studio.runner.ray_executor import ray_executor_factory

        return ray_executor_factory(storage, config)  # type: ignore[return-value]
    from training_studio.runner.job_runner import job_runner_factory

    return job_runner_factory(storage, config)


__all__ = ["create_executor"]
