"""Building the GUI's real parts for tests: an ApiClient, a JobStore (remote or local server) and
the MainWindow, closed and drained afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import shiboken6

from training_studio.client import ApiClient, LocalServerManager
from training_studio.ui.jobs.store import JobStore
from training_studio.ui.main_window import MainWindow


@dataclass
class Harness:
    loop: object
    qtbot: object
    clients: list[ApiClient] = field(default_factory=list)
    stores: list[JobStore] = field(default_factory=list)
    windows: list[MainWindow] = field(default_factory=list)
    managers: list[LocalServerManager] = field(default_factory=list)

    def store(self, url: str = "", token: str | None = None, *, data_dir: Path | None = None,
              refresh_interval: float = 0.3, timeout: float = 2.0,
              extra_server_args: tuple[str, ...] = ("--cancel-grace", "1")) -> JobStore:
        client = ApiClient(url, token, timeout=timeout)
        self.clients.append(client)
        local = None
        if data_dir is not None:
            local = LocalServerManager(data_dir, client.http, extra_args=extra_server_args,
                                       notify=lambda text: store.connection_note.emit(text))
            self.managers.append(local)
        store = JobStore(client, local=local, refresh_interval=refresh_interval)
        self.stores.append(store)
        return store

    def window(self, store: JobStore) -> MainWindow:
        window = MainWindow(store)
        self.qtbot.addWidget(window)
        self.windows.append(window)
        window.resize(1000, 640)
        window.show()
        return window

    def run(self, coro, timeout_ms: int = 20_000):
        task = self.loop.create_task(coro)
        self.qtbot.waitUntil(task.done, timeout=timeout_ms)
        return task.result()

    def close(self) -> None:
        for window in self.windows:
            # pytest-qt closes the windows it was given and deletes them at the next wait of a fixture's
            # teardown (a `run` that is not done at once): such a window has nothing left to close.
            if shiboken6.isValid(window):
                window.close()
        for store in self.stores:
            store.shutdown()
            self.run(store.wait_idle())
        for manager in self.managers:
            self.run(manager.stop(timeout=10))
        for client in self.clients:
            self.run(client.aclose())


@pytest.fixture
def harness(loop, qtbot):
    h = Harness(loop, qtbot)
    yield h
    h.close()


def sync_client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
