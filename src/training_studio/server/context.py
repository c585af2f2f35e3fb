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


async def server_context(request: Request) -> ServerContext:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop on every request that
    # uses it (and, for a starting server's first one, about 10 ms of loading anyio's thread support).
    return request.app.state.context
