"""The GUI against a misbehaving or vanishing server: the fault matrix of the jobs monitor.

Every case runs the real MainWindow and JobStore against a real `training-studio serve` process over
real sockets, usually through `SwitchableServer` (one socket the test flips healthy → fault →
healthy). For each fault the test checks the same four promises: the GUI thread never stalls over
1 s (a 50 ms probe timer), the banner names the problem in words, the last good rows stay on
screen, and the first refresh after the server is healthy again succeeds, so recovery needs no
click and comes within one refresh interval. Nothing may reach sys.excepthook or the asyncio
loop's exception handler, and no error may be logged by the app.

The refresh interval is 2 s here (5 s in the app) and the client timeout 1.6 s (4 s in the app):
the same ratio, so a timed-out request still ends before the next refresh is due. The local-server
token case uses the app's real 5 s. The GUI fixtures (the session's qasync loop, the harness, the
stall probe) are imported from tests/ui, as pytest does not share conftest fixtures between sibling
directories.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable

import pytest
from PySide6.QtCore import Qt

from tests.reliability.conftest import UNEXPECTED_ERROR_MARKERS
from tests.support.faulty_server import SwitchableServer
from tests.support.server import ServerProcess
from tests.ui.app_fixtures import harness, sync_client  # noqa: F401  (fixture re-export)
from tests.ui.conftest import loop, qasync_loop, stall_probe  # noqa: F401  (fixture re-export)
from tests.ui.jobs_helpers import make_dataset, make_job
from training_studio.client import read_server_info
from training_studio.contract.models import JobStatus
from training_studio.ui.jobs.model import JobColumn, JobRole

REFRESH_S = 2.0
CLIENT_TIMEOUT_S = 1.6
# How long one refresh interval may take to show its effect: the interval, one request, and slack
# for a machine shared with other test runs. A bound on a wait, not a speed assertion.
ONE_INTERVAL_MS = int((REFRESH_S + CLIENT_TIMEOUT_S + 3.0) * 1000)
STALL_LIMIT_S = 1.0
REFUSED = "Nothing answers at that address (connection refused): is the server running?"


# -- helpers ------------------------------------------------------------------------------------


class ExceptionWatch:
    """Collects exceptions that would otherwise only be printed: those reaching sys.excepthook (an
    asyncSlot's, a Qt virtual's) and those the asyncio loop hands to its exception handler (a task's
    exception never retrieved, a failing callback). pytest-qt fails on the first kind already; the
    second kind it never sees."""

    def __init__(self, event_loop) -> None:
        self.loop = event_loop
        self.seen: list[str] = []

    def __enter__(self) -> "ExceptionWatch":
        self._previous_hook = sys.excepthook
        self._previous_handler = self.loop.get_exception_handler()

        def hook(kind, value, traceback) -> None:
            self.seen.append(f"sys.excepthook: {kind.__name__}: {value}")
            self._previous_hook(kind, value, traceback)

        sys.excepthook = hook
        self.loop.set_exception_handler(lambda _loop, context: self.seen.append(
            f"asyncio: {context.get('message')} {context.get('exception')!r}"))
        return self

    def __exit__(self, *exc_info) -> None:
        sys.excepthook = self._previous_hook
        self.loop.set_exception_handler(self._previous_handler)


class Failures:
    """Every refresh_failed the store emits, with the moment its refresh started, and the moment of
    the last connection_restored."""

    def __init__(self, store) -> None:
        self.items: list[tuple[str, str]] = []
        self.started: list[float] = []  # when the refresh that failed began (time.monotonic())
        self.restored_at: float | None = None
        self._refresh_began = 0.0
        store.refreshing_changed.connect(self._on_refreshing)
        store.refresh_failed.connect(self._on_failed)
        store.connection_restored.connect(self._on_restored)

    def _on_refreshing(self, refreshing: bool) -> None:
        if refreshing:
            self._refresh_began = time.monotonic()

    def _on_failed(self, kind: str, message: str) -> None:
        self.items.append((kind, message))
        self.started.append(self._refresh_began)

    def _on_restored(self) -> None:
        self.restored_at = time.monotonic()

    def begun_after(self, moment: float) -> list[tuple[str, str]]:
        return [item for item, began in zip(self.items, self.started) if began > moment]

    def __len__(self) -> int:
        return len(self.items)


def rows(store) -> list:
    """The jobs the model shows, in row order (TrainingJob objects, compared by value)."""
    return [store.model.job_at(row) for row in range(store.model.rowCount())]


def row_ids(store) -> list[str]:
    return [job.id for job in rows(store)]


def app_errors(caplog) -> list[str]:
    return [f"{record.name}: {record.getMessage()}" for record in caplog.records
            if record.levelno >= logging.ERROR and record.name.startswith("training_studio")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def in_thread(qtbot, work: Callable[[], object], timeout_ms: int = 40_000) -> None:
    """Run blocking test set-up (starting a server process) off the GUI thread, so the stall probe
    measures the app, not the test."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # handed to the test thread below
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=timeout_ms)
    if errors:
        raise errors[0]


def recover_within_one_interval(qtbot, store, window, failures: Failures, heal: Callable[[], None]) -> None:
    """Heal the server and check the app comes back by itself: no refresh that began after the
    server was healthy again failed, and the connection is restored within one refresh interval
    (the backoff after failures is capped at the interval). A refresh already on its way when the
    server healed may still fail; `heal` runs between two refreshes where it can."""
    qtbot.waitUntil(lambda: not store.is_refreshing, timeout=ONE_INTERVAL_MS)
    failures.restored_at = None
    heal()
    healed_at = time.monotonic()
    qtbot.waitUntil(lambda: failures.restored_at is not None, timeout=ONE_INTERVAL_MS)
    assert failures.begun_after(healed_at) == []
    assert store.last_failure is None
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=2000)


def start_gui(harness, qtbot, url: str, token: str | None, **store_args):
    store = harness.store(url, token, refresh_interval=REFRESH_S, timeout=CLIENT_TIMEOUT_S, **store_args)
    window = harness.window(store)
    return store, window, Failures(store)


# -- a real server with jobs that stay active without using the CPU ------------------------------


def populate(server: ServerProcess) -> list[str]:
    with sync_client(server.url, server.token) as http:
        dataset = make_dataset(http, images=2)
        return [make_job(http, dataset, name, 100)["id"] for name in ("first run", "second run")]


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """One server for the proxied matrix; --no-runner keeps its jobs pending (active) for good."""
    server = ServerProcess(tmp_path_factory.mktemp("gui-faults") / "data", extra_args=["--no-runner"]).start()
    server.job_ids = populate(server)
    yield server
    server.stop(timeout=10)
    # Outside tmp_path, so the directory's autouse check does not see this server's log: check it here.
    for log in server.data_dir.glob("logs/server.log*"):
        text = log.read_text(errors="replace")
        assert not any(marker in text for marker in UNEXPECTED_ERROR_MARKERS), text[-3000:]


@pytest.fixture
def proxy(real_server):
    switchable = SwitchableServer(real_server.url).start()
    yield switchable
    switchable.stop()


# -- the matrix over one switchable socket ----------------------------------------------------------


@pytest.mark.parametrize("fault, kind, words", [
    ("http_500", "server_error", "The server failed with HTTP 500: database disk image is malformed."),
    ("slow", "unreachable", "did not answer in time"),
    ("malformed_json", "bad_response", "with something that is not JSON"),
    ("wrong_shape", "bad_response", "does not match the contract"),
    ("refused", "unreachable", "Nothing answers at that address (connection refused): is the server running?"),
])
def test_a_fault_is_shown_keeps_the_last_good_data_and_heals_by_itself(
        harness, qtbot, loop, stall_probe, caplog, proxy, real_server, fault, kind, words):
    store, window, failures = start_gui(harness, qtbot, proxy.url, real_server.token)
    with ExceptionWatch(loop) as watch:
        store.start()
        qtbot.waitUntil(lambda: row_ids(store) == real_server.job_ids, timeout=10_000)
        last_good = rows(store)
        stall_probe.reset()

        if fault == "refused":
            proxy.go_offline()
        else:
            proxy.mode = fault
        qtbot.waitUntil(window.banner.isVisible, timeout=ONE_INTERVAL_MS)
        assert failures.items[0][0] == kind
        assert words in window.banner.text
        assert "Showing the last good data, updated" in window.banner.text
        assert "Retrying automatically." in window.banner.text
        assert window.banner.button("Retry now") is not None
        # It keeps retrying (backoff capped at the interval) and keeps what it had all along.
        qtbot.waitUntil(lambda: len(failures) >= 3, timeout=3 * ONE_INTERVAL_MS)
        assert {failed_kind for failed_kind, _ in failures.items} == {kind}
        assert rows(store) == last_good
        assert window.banner.isVisible()

        def heal() -> None:
            if fault == "refused":
                proxy.go_online()
            else:
                proxy.mode = "healthy"

        recover_within_one_interval(qtbot, store, window, failures, heal)
        assert row_ids(store) == real_server.job_ids
        assert stall_probe.longest_gap < STALL_LIMIT_S
    assert watch.seen == []
    assert app_errors(caplog) == []


def test_unknown_statuses_and_extra_fields_show_neutrally_without_an_error(
        harness, qtbot, loop, stall_probe, caplog, proxy, real_server):
    store, window, failures = start_gui(harness, qtbot, proxy.url, real_server.token)
    model = store.model
    with ExceptionWatch(loop) as watch:
        store.start()
        qtbot.waitUntil(lambda: row_ids(store) == real_server.job_ids, timeout=10_000)
        stall_probe.reset()

        proxy.mode = "unknown_status"
        qtbot.waitUntil(lambda: all(job.status is JobStatus.UNKNOWN for job in rows(store)), timeout=ONE_INTERVAL_MS)
        for row in range(model.rowCount()):
            assert model.index(row, int(JobColumn.STATUS)).data(JobRole.DISPLAY_STATUS) == "Unknown"
            assert model.index(row, int(JobColumn.NAME)).data(Qt.ItemDataRole.DisplayRole) in (
                "first run", "second run")
        window.jobs_panel.select_job(real_server.job_ids[0])
        assert not window.jobs_panel.cancel_action.isEnabled()  # no action on a state we do not know
        refreshes = proxy.count("/api/training/jobs", "unknown_status")
        qtbot.waitUntil(lambda: proxy.count("/api/training/jobs", "unknown_status") >= refreshes + 2,
                        timeout=2 * ONE_INTERVAL_MS)
        assert failures.items == [] and not window.banner.isVisible()

        qtbot.waitUntil(lambda: not store.is_refreshing, timeout=ONE_INTERVAL_MS)
        proxy.mode = "healthy"
        qtbot.waitUntil(lambda: all(job.status is JobStatus.PENDING for job in rows(store)), timeout=ONE_INTERVAL_MS)
        assert failures.items == []
        assert stall_probe.longest_gap < STALL_LIMIT_S
    assert watch.seen == []
    assert app_errors(caplog) == []


def test_a_host_name_that_does_not_resolve_is_reported_then_a_good_address_just_works(
        harness, qtbot, loop, stall_probe, caplog, real_server):
    bad_url = "http://no-such-host.invalid:1"
    store, window, failures = start_gui(harness, qtbot, bad_url, real_server.token)
    with ExceptionWatch(loop) as watch:
        store.start()
        qtbot.waitUntil(window.banner.isVisible, timeout=ONE_INTERVAL_MS)
        assert failures.items[0] == ("unreachable", f"Cannot connect to the server at {bad_url}. The host name "
                                                    f"“no-such-host.invalid” was not found: check the address.")
        assert "No data loaded yet." in window.banner.text
        assert "unreachable" in window.server_label.text()
        qtbot.waitUntil(lambda: len(failures) >= 3, timeout=3 * ONE_INTERVAL_MS)
        assert store.model.rowCount() == 0

        # The user gives the right address (what the Connect dialog does): the next refresh uses it.
        recover_within_one_interval(qtbot, store, window, failures,
                                    lambda: store.client.set_connection(real_server.url, real_server.token))
        assert row_ids(store) == real_server.job_ids
        assert real_server.url in window.server_label.text()
        assert stall_probe.longest_gap < STALL_LIMIT_S
    assert watch.seen == []
    assert app_errors(caplog) == []


# -- faults of the server process itself --------------------------------------------------------


def test_server_not_running_at_start_then_started(harness, qtbot, loop, stall_probe, caplog, tmp_path):
    port = free_port()
    server = ServerProcess(tmp_path / "late", extra_args=["--no-runner", "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    store, window, failures = start_gui(harness, qtbot, url, server.token)
    try:
        with ExceptionWatch(loop) as watch:
            store.start()
            qtbot.waitUntil(window.banner.isVisible, timeout=ONE_INTERVAL_MS)
            assert failures.items[0] == ("unreachable", f"Cannot connect to the server at {url}. {REFUSED}")
            assert "No data loaded yet." in window.banner.text and "Retrying automatically." in window.banner.text

            recover_within_one_interval(qtbot, store, window, failures, lambda: in_thread(qtbot, server.start))
            job_ids: list[str] = []
            in_thread(qtbot, lambda: job_ids.extend(populate(server)))
            qtbot.waitUntil(lambda: row_ids(store) == job_ids, timeout=ONE_INTERVAL_MS)
            assert stall_probe.longest_gap < STALL_LIMIT_S
        assert watch.seen == []
        assert app_errors(caplog) == []
    finally:
        server.stop(timeout=10)


def test_server_killed_with_sigkill_then_restarted(harness, qtbot, loop, stall_probe, caplog, tmp_path):
    port = free_port()
    server = ServerProcess(tmp_path / "victim", extra_args=["--no-runner", "--port", str(port)]).start()
    try:
        job_ids = populate(server)
        store, window, failures = start_gui(harness, qtbot, server.url, server.token)
        with ExceptionWatch(loop) as watch:
            store.start()
            qtbot.waitUntil(lambda: row_ids(store) == job_ids, timeout=10_000)
            last_good = rows(store)
            stall_probe.reset()

            server.kill()
            qtbot.waitUntil(window.banner.isVisible, timeout=ONE_INTERVAL_MS)
            assert failures.items[0] == ("unreachable", f"Cannot connect to the server at {server.url}. {REFUSED}")
            assert "Showing the last good data" in window.banner.text
            assert rows(store) == last_good

            # Same data dir, port and token.
            recover_within_one_interval(qtbot, store, window, failures, lambda: in_thread(qtbot, server.start))
            assert row_ids(store) == job_ids  # the jobs survived the crash on disk
            assert stall_probe.longest_gap < STALL_LIMIT_S
        assert watch.seen == []
        assert app_errors(caplog) == []
    finally:
        server.stop(timeout=10)


def test_token_change_on_a_remote_server_heals_once_the_new_token_is_given(
        harness, qtbot, loop, stall_probe, caplog, server_factory):
    server = server_factory(extra_args=["--no-runner"])
    job_ids = populate(server)
    proxy = SwitchableServer(server.url).start()
    try:
        store, window, failures = start_gui(harness, qtbot, proxy.url, server.token)
        with ExceptionWatch(loop) as watch:
            store.start()
            qtbot.waitUntil(lambda: row_ids(store) == job_ids, timeout=10_000)
            last_good = rows(store)
            stall_probe.reset()

            # The operator restarts the server with a new token; the proxy keeps the app's URL stable.
            server.token = "rotated-" + server.token
            in_thread(qtbot, server.restart)
            proxy.set_upstream(server.url)
            # (While it restarted the app may have reported it unreachable: true at the time.)
            qtbot.waitUntil(lambda: bool(failures.items) and failures.items[-1][0] == "auth" and
                            window.banner.isVisible(), timeout=ONE_INTERVAL_MS)
            assert "rejected the access token (401)" in window.banner.text
            assert "Check the token" in window.banner.text
            assert window.banner.button("Reconnect") is not None
            assert "token rejected" in window.server_label.text()
            assert rows(store) == last_good

            recover_within_one_interval(qtbot, store, window, failures,
                                        lambda: store.client.set_connection(proxy.url, server.token))
            assert row_ids(store) == job_ids
            assert stall_probe.longest_gap < STALL_LIMIT_S
        assert watch.seen == []
        assert app_errors(caplog) == []
    finally:
        proxy.stop()


def test_local_server_restarted_with_a_new_token_is_followed_through_server_json(
        harness, qtbot, loop, stall_probe, caplog, tmp_path):
    data_dir = tmp_path / "local"
    # The real interval here: the replacement server must come up between two refreshes (else the
    # app would, rightly, start its own), and "within one refresh interval" is then the real one.
    store = harness.store(data_dir=data_dir, refresh_interval=5.0, timeout=4.0,
                          extra_server_args=("--no-runner",))
    window = harness.window(store)
    failures = Failures(store)
    messages: list[str] = []
    store.server_message.connect(messages.append)
    store.connection_note.connect(messages.append)  # remarks about the server went there (issue 15)
    with ExceptionWatch(loop) as watch:
        store.start()
        qtbot.waitUntil(lambda: store.connected and not store.is_refreshing, timeout=30_000)
        first = read_server_info(data_dir)
        job_ids = populate(_Address(first.url, first.token))
        qtbot.waitUntil(lambda: row_ids(store) == job_ids, timeout=15_000)
        stall_probe.reset()

        # Right after a refresh ends (its signal, not a poll of is_refreshing: a refresh while live
        # updates flow is one quick request that a poll can miss).
        qtbot.waitSignal(store.refreshing_changed, timeout=10_000,
                         check_params_cb=lambda refreshing: not refreshing).wait()
        port = int(first.url.rsplit(":", 1)[1])
        replacement = ServerProcess(data_dir, token="new-token-" + first.token[:8],
                                    extra_args=["--no-runner", "--port", str(port)])

        def swap() -> None:
            os.kill(first.pid, signal.SIGKILL)
            replacement.start()

        try:
            in_thread(qtbot, swap)
            assert read_server_info(data_dir).token == replacement.token
            with qtbot.waitSignal(store.jobs_changed, timeout=int((5.0 + 4.0 + 3.0) * 1000)):
                pass
            assert store.client.token == replacement.token  # re-read from server.json after the 401
            assert store.client.base_url == first.url
            # Not through the connection-lost path (which says "Reconnected to the local server…"):
            # the same URL answered 401, and the token was re-read without bothering the user.
            assert messages == []
            assert failures.items == [] and not window.banner.isVisible()
            assert row_ids(store) == job_ids
            assert stall_probe.longest_gap < STALL_LIMIT_S
        finally:
            store.shutdown()
            harness.run(store.wait_idle())
            replacement.stop(timeout=10)
    assert watch.seen == []
    assert app_errors(caplog) == []


class _Address:
    """Enough of a ServerProcess for `populate`: where a server is and its token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token


def test_the_exception_watch_sees_what_pytest_qt_does_not(qtbot, loop):
    """The check every case above relies on: a task's exception nobody retrieved, and an exception
    reaching sys.excepthook, both end up in `seen`."""
    import gc

    async def broken() -> None:
        raise RuntimeError("lost in a task")

    # (pytest-qt's own hook is outermost during every test; capture_exceptions stands in for it here.)
    with qtbot.capture_exceptions() as captured, ExceptionWatch(loop) as watch:
        task = loop.create_task(broken())
        qtbot.waitUntil(task.done, timeout=5000)
        del task
        gc.collect()
        sys.excepthook(ValueError, ValueError("in a slot"), None)
    assert any("lost in a task" in seen for seen in watch.seen)
    assert any("ValueError: in a slot" in seen for seen in watch.seen)
    assert len(captured) == 1  # and pytest-qt still gets its copy
