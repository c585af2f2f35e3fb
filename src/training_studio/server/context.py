"""What every route needs, in one object hung on the FastAPI app: config, storage, job executor and the
live-update hub."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from training_studio.server.config import ServerConfig
from training_studio.server.events import EventHub
from training_studio.server.executor import JobExecutor
from training_studio.server.storage import Storage


@dataclass
class ServerContext:
    config: ServerConfig
    storage: Storage
    executor: JobExecutor
    events: EventHub | None = None


def server_context(request: Request) -> ServerContext:
    return request.app.state.context
