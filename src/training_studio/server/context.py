"""What every route needs, in one object hung on the FastAPI app: config, storage and job executor."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from training_studio.server.config import ServerConfig
from training_studio.server.executor import JobExecutor
from training_studio.server.storage import Storage


@dataclass
class ServerContext:
    config: ServerConfig
    storage: Storage
    executor: JobExecutor


def server_context(request: Request) -> ServerContext:
    return request.app.state.context
