"""Which routers the server loads before its first answer, and the rest loaded just after (issue 19).

A starting server is on the app's cold-start path: the window waits for `/api/health`, then for the active
jobs list, and asks nothing else before its first rows are painted. Importing the other routers (datasets,
models, job outputs, system, templates) and registering their routes cost about 45 ms of the 420 ms a start
took here, so `create_app` includes only health, jobs and the event stream (what a starting window asks for,
and the stream it opens next) and hands the rest (`DEFERRED`) to `DeferredRouters`, which
imports them in a worker thread shortly after the server has started (`BACKGROUND_DELAY_S`) and includes
them on the event loop's thread.

No request ever sees a route missing: `DeferredRoutesGate` holds every request that no loaded route fully
matches (another router's path, a 405 or a 404 to be) until the rest is in, and the OpenAPI document loads it
first (`load_now`). Routes keep the order they had in one list: the deferred routers come after the first
ones, and no path of theirs is also a path of those.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import time
from collections.abc import Sequence
from types import ModuleType

from fastapi import FastAPI
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from training_studio.server.config import seconds_from_env

# Each module's `router`, included in this order after the ones create_app includes.
DEFERRED = ("training_studio.server.routes_datasets", "training_studio.server.routes_models",
            "training_studio.server.routes_outputs", "training_studio.server.routes_system",
            "training_studio.server.routes_templates")
# After the start, the rest loads this much later unless a request needs it sooner: by then a window that
# started with the server has painted its first rows, and the import does not compete with its requests.
BACKGROUND_DELAY_S = 1.0
# Another delay (seconds) for the background load; the tests hold it back to see requests bring the rest in.
DELAY_ENV = "TRAINING_STUDIO_DEFERRED_ROUTES_DELAY_S"

log = logging.getLogger(__name__)


def background_delay_from_env(environ: dict[str, str] | None = None) -> float:
    return seconds_from_env(DELAY_ENV, BACKGROUND_DELAY_S, 0.0, environ)


def import_routers(names: Sequence[str]) -> list[ModuleType]:
    return [importlib.import_module(name) for name in names]


class DeferredRouters:
    """The routers of `names`, imported once (on whichever thread asks first) and included once."""

    def __init__(self, app: FastAPI, names: Sequence[str] = DEFERRED) -> None:
        self._app = app
        self._names = tuple(names)
        self._lock = threading.Lock()  # load_now may run on another thread (an OpenAPI document built off-loop)
        self._included = False
        self._importing: asyncio.Future[list[ModuleType]] | None = None
        self._background: asyncio.TimerHandle | None = None
        self._asked_at: float | None = None  # when the import began, and what began it: for the log line
        self._asked_by = "on request"

    @property
    def included(self) -> bool:
        return self._included

    def load_now(self) -> None:
        """Import (if not done yet) and include the routers, blocking the calling thread meanwhile."""
        with self._lock:
            if self._included:
                return
            asked_at = self._asked_at if self._asked_at is not None else time.monotonic()
            for module in import_routers(self._names):
                self._app.include_router(module.router)
            self._included = True
            log.info("deferred routers loaded %s in %.0f ms", self._asked_by, (time.monotonic() - asked_at) * 1000)

    async def ensure_loaded(self) -> None:
        """Import in a worker thread (one import, however many requests wait), then include."""
        if self._included:
            return
        if self._importing is None:
            self._begin_import("on request")
        await asyncio.shield(self._importing)
        self.load_now()  # the modules are imported by now: this only includes them

    def load_soon(self) -> None:
        """From the lifespan, once the server answers: load the rest DELAY_ENV's seconds later, else
        BACKGROUND_DELAY_S."""
        self._background = asyncio.get_running_loop().call_later(background_delay_from_env(), self._start_background)

    def _begin_import(self, asked_by: str) -> None:
        self._asked_at, self._asked_by = time.monotonic(), asked_by
        self._importing = asyncio.ensure_future(asyncio.to_thread(import_routers, self._names))

    def _start_background(self) -> None:
        if not self._included and self._importing is None:
            self._begin_import("in the background")
            assert self._importing is not None
            self._importing.add_done_callback(self._include_after_import)

    def _include_after_import(self, importing: asyncio.Future[list[ModuleType]]) -> None:
        if importing.cancelled():
            return
        error = importing.exception()
        if error is not None:  # a request that needs them gets the error then (a 500, logged again)
            log.error("the deferred routers could not be imported", exc_info=error)
            return
        self.load_now()

    def cancel(self) -> None:
        if self._background is not None:
            self._background.cancel()


class DeferredRoutesGate:
    """ASGI middleware: until the deferred routers are in, a request that no loaded route fully matches (and
    the OpenAPI document) waits for them instead of being routed without them."""

    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI, deferred: DeferredRouters) -> None:
        self.app = app
        self._fastapi_app = fastapi_app
        self._deferred = deferred

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._deferred.included and scope["type"] == "http" and self._needs_the_rest(scope):
            await self._deferred.ensure_loaded()
        await self.app(scope, receive, send)

    def _needs_the_rest(self, scope: Scope) -> bool:
        if scope.get("path") == self._fastapi_app.openapi_url:
            return True
        return not any(route.matches(scope)[0] is Match.FULL for route in self._fastapi_app.router.routes)
