"""Builds the FastAPI application of the embedded server: routes, guards, error bodies, lifespan.

`create_app` wires one `ServerContext` (config, storage, executor) into the app. The executor comes
from `executor_factory(storage, config)` so the job runner can be plugged in without touching the
routes; without one, jobs stay pending (`PendingOnlyExecutor`). The lifespan starts the executor
(restart recovery) before the first request is served, then calls `on_started` (main.py writes
server.json there, so a client never discovers a server that is not ready), and shuts it down on exit.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from PIL import Image

from training_studio import __version__
from training_studio.server import routes_datasets, routes_health, routes_jobs, routes_models
from training_studio.server.auth import GuardMiddleware
from training_studio.server.config import ServerConfig
from training_studio.server.context import ServerContext
from training_studio.server.errors import install_error_handlers
from training_studio.server.executor import ExecutorFactory, pending_only_executor
from training_studio.server.files import sweep_temp_files
from training_studio.server.storage import Storage

log = logging.getLogger(__name__)


def create_app(config: ServerConfig, executor_factory: ExecutorFactory | None = None, *,
               storage: Storage | None = None, on_started: Callable[[], None] | None = None,
               on_stopping: Callable[[], None] | None = None) -> FastAPI:
    storage = storage or Storage(config.data_dir)
    executor = (executor_factory or pending_only_executor)(storage, config)
    # Pillow's bomb guard is process-wide; the server's limit is the one that matters here.
    Image.MAX_IMAGE_PIXELS = config.max_pixels

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sweep_temp_files(storage)
        await executor.start()
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            if on_stopping is not None:
                on_stopping()
            await executor.shutdown()

    app = FastAPI(title="Training Studio server", version=__version__, openapi_url="/api/openapi.json",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.context = ServerContext(config=config, storage=storage, executor=executor)
    install_error_handlers(app)
    for module in (routes_health, routes_jobs, routes_datasets, routes_models):
        app.include_router(module.router)
    app.add_middleware(GuardMiddleware, token=config.token, check_host=not config.allow_remote)
    return app
