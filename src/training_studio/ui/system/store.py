"""The machine's figures for the window: `SystemStore` asks `/api/system` with every jobs refresh (at most
every few seconds), keeps the last answer and says when it changed. A server without the endpoint (older
than issue 16) is asked once and then left alone: `unsupported` tells the status bar to hide the summary."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal

from training_studio.client import ApiClient, ApiError, NotFound
from training_studio.contract import SystemInfo
from training_studio.ui.tasks import TaskSet

__all__ = ["SystemStore", "MIN_INTERVAL_S"]

MIN_INTERVAL_S = 3.0


class SystemStore(QObject):
    updated = Signal(object)  # SystemInfo
    unsupported = Signal()  # the server has no /api/system
    failed = Signal(str)

    def __init__(self, client: ApiClient, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.info: SystemInfo | None = None
        self._supported = True
        self._in_flight = False
        self._last_asked = 0.0
        self._shut_down = False
        self._tasks = TaskSet("system store", self._on_task_failed)

    def request_refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._shut_down or self._in_flight or (not force and (not self._supported or now - self._last_asked < MIN_INTERVAL_S)):
            return
        self._last_asked = now
        self._in_flight = True
        self._tasks.spawn(self._refresh())

    def server_changed(self) -> None:
        """Another server (or the same one restarted, maybe upgraded): ask again, even if it said no."""
        self._supported = True
        self.info = None
        self.request_refresh(force=True)

    async def _refresh(self) -> None:
        try:
            info = await self.client.system()
        except NotFound:
            self._supported = False
            self.unsupported.emit()
            return
        except ApiError as error:
            self.failed.emit(error.message)
            return
        finally:
            self._in_flight = False
        self.info = info
        self.updated.emit(info)

    def _on_task_failed(self, error: BaseException) -> None:
        if not self._shut_down:
            self.failed.emit(str(error))

    def shutdown(self) -> None:
        self._shut_down = True
        self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        await self._tasks.wait_idle()
