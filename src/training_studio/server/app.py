"""Builds the FastAPI application of the embedded server: routes, guards, error bodies, lifespan.

`create_app` wires one `ServerContext` (config, storage, executor) into the app. The executor comes
from `executor_factory(storage, config)` so the job runner can be plugged in without touching the
routes; without one, jobs stay pending (`PendingOnlyExecutor`). The lifespan starts the executor
(restart recovery) before the first request is served, then calls `on_started` (main.py writes
server.json there, so a client never discovers a server that is not ready), and shuts it down on exit;
at start it also sets the disk-space reserve aside (storage.ensure_reserve) and connects storage's
change listener to the live-update hub (events.py), which `begin_shutdown` closes first thing on exit. Once
started it checks every committed dataset's layouts against the database in the background (a crash between
a change's commit and its layout swap leaves them stale: dataset_ops.bring_all_layouts_in_line), so the first
answer never waits for it, and then prepares the spare layouts of datasets that have none. Only the routers a
starting window asks for are loaded before the first answer; the others load just after, and a request for one
of them waits for that (route_loading.py). A 405 answer's
`Allow` names every method of the path, and the OpenAPI document carries the routes' own input checks
(openapi_doc.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Match

from training_studio import __version__
from training_studio.server import routes_events, routes_health, routes_jobs
from training_studio.server.auth import GuardMiddleware
from training_studio.server.config import ServerConfig
from training_studio.server.context import ServerContext
from training_studio.server.errors import error_response, install_error_handlers
from training_studio.server.events import EventHub, heartbeat_from_env, queue_limit_from_env, send_buffer_from_env
from training_studio.server.executor import ExecutorFactory, pending_only_executor
from training_studio.server.files import sweep_temp_files
from training_studio.server.images import set_max_image_pixels
from training_studio.server.route_loading import DeferredRouters, DeferredRoutesGate
from training_studio.server.openapi_doc import describe_server_checks
from training_studio.server.storage import Storage

log = logging.getLogger(__name__)

# A desktop app that starts its server wants its first screens answered first; a job given a dataset meanwhile
# checks that dataset's layouts itself.
LAYOUTS_CHECK_DELAY_S = 2.0


def create_app(config: ServerConfig, executor_factory: ExecutorFactory | None = None, *,
               storage: Storage | None = None, on_started: Callable[[], None] | None = None,
               on_stopping: Callable[[], None] | None = None) -> FastAPI:
    storage = storage or Storage(config.data_dir)
    executor = (executor_factory or pending_only_executor)(storage, config)
    events = EventHub(queue_limit=queue_limit_from_env(), send_buffer=send_buffer_from_env(),
                      heartbeat_s=heartbeat_from_env())
    # Pillow's bomb guard is process-wide; the server's limit is the one that matters here.
    set_max_image_pixels(config.max_pixels)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sweep_temp_files(storage)
        reserve = asyncio.create_task(asyncio.to_thread(storage.ensure_reserve))
        # Live updates first: what the executor's restart recovery changes is already news.
        events.start(asyncio.get_running_loop(), storage.current_revision())
        storage.set_change_listener(events.publish_threadsafe)
        runner_started = asyncio.create_task(executor.start())
        await asyncio.sleep(0)  # the runner's first step hands its recovery to a worker thread
        # Meanwhile (that work is mostly SQLite's and the disk's, outside the GIL), the routing state FastAPI
        # otherwise builds on a router's first request, for the jobs routes a starting app waits for: about
        # 20 ms of the jobs list's first answer. (The other routers build theirs when first asked.)
        prepare_routes(_app, routes_jobs.router)
        await reserve
        await runner_started
        if on_started is not None:
            on_started()
        deferred.load_soon()
        layouts_check = asyncio.create_task(_check_layouts_later(storage), name="layouts-check")
        try:
            yield
        finally:
            deferred.cancel()
            layouts_check.cancel()
            if on_stopping is not None:
                on_stopping()
            events.close()  # normally done already by begin_shutdown
            await executor.shutdown()
            storage.set_change_listener(None)

    app = FastAPI(title="Training Studio server", version=__version__, openapi_url="/api/openapi.json",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.context = ServerContext(config=config, storage=storage, executor=executor, events=events)
    install_error_handlers(app)
    for module in (routes_health, routes_jobs, routes_events):  # the rest: route_loading.DEFERRED
        app.include_router(module.router)
    deferred = DeferredRouters(app)  # the other routers, loaded once the server answers (route_loading.py)
    app.add_exception_handler(405, _method_not_allowed)
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            deferred.load_now()
            app.openapi_schema = describe_server_checks(generate_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # Added first, so it runs after the guard: only authorised requests can make the server load the rest early.
    app.add_middleware(DeferredRoutesGate, fastapi_app=app, deferred=deferred)
    app.add_middleware(GuardMiddleware, token=config.token, check_host=not config.allow_remote)
    return app


async def _check_layouts_later(storage: Storage) -> None:
    """dataset_ops.bring_all_layouts_in_line, LAYOUTS_CHECK_DELAY_S after the start, then the spares missing
    (dataset_ops.prepare_missing_spares). The dataset operations are imported only then: they are not on the
    path to the first answer (route_loading.py)."""
    await asyncio.sleep(LAYOUTS_CHECK_DELAY_S)
    from training_studio.server import dataset_ops

    await dataset_ops.bring_all_layouts_in_line(storage)
    await dataset_ops.prepare_missing_spares(storage)


def begin_shutdown(app: FastAPI) -> None:
    """The server starts to stop: end every event stream now. The ASGI server calls this before it waits for
    open connections to finish (uvicorn runs the lifespan's shutdown only after that wait)."""
    events = getattr(app.state.context, "events", None)
    if events is not None:
        events.close()


_HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


def prepare_routes(app: FastAPI, router: APIRouter) -> None:
    """Build FastAPI's routing state for `router` now rather than on its first request (FastAPI 0.16x builds
    it lazily, under its own lock; with an older FastAPI there is nothing to build and nothing happens). The
    routers included before it are built too: a request is matched against those first."""
    for route in app.router.routes:
        build = getattr(route, "effective_candidates", None)
        if callable(build):
            build()
        if getattr(route, "original_router", None) is router:
            return


async def _method_not_allowed(request: Request, _exc: Exception) -> JSONResponse:
    """405 with an `Allow` header naming every method of the path: Starlette's own names only the methods
    of the first route that matched the path (GET for /api/datasets/{id}, which also takes DELETE)."""
    # Asked of the router itself, one method at a time, so included routers are searched as routing does.
    allowed = [method for method in _HTTP_METHODS
               if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
                      for route in request.app.router.routes)]
    allow = ", ".join(allowed)
    return error_response(405, "method_not_allowed",
                          f"{request.method} is not allowed on {request.url.path}; use {allow or 'another path'}.",
                          headers={"Allow": allow})
