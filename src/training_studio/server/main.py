"""`training-studio serve`: run the embedded server in the foreground until SIGTERM/SIGINT.

This module owns the process-level life of a server: the data-dir lock (one server per data dir, and
a second one is told which server holds it), logging to a file (a frozen windowed app has no
stdout), binding the socket ourselves so port 0 gives a known ephemeral port, the discovery file
`server.json` {url, token, pid, version} (0600, written atomically once the app is ready, removed on a
clean exit), uvicorn's settings (our h11 protocol with the slow-client timeouts and connection cap of
connections.py; uvloop's event loop where installed) and a clean shutdown on signals (event streams end
first, see app.begin_shutdown).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import logging.handlers
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from training_studio import __version__
from training_studio.atomicfile import write_atomically
from training_studio.server.config import ConfigError, ServerConfig, resolve_config, token_file_is_private
from training_studio.server.executor import ExecutorFactory

log = logging.getLogger("training_studio.server")

SERVER_INFO_NAME = "server.json"
LOCK_NAME = "server.lock"


class DataDirLocked(RuntimeError):
    """Another server process holds the data dir."""


def _stderr(message: str) -> None:
    if sys.stderr is not None:
        try:
            print(f"training-studio serve: {message}", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass


def server_info_path(data_dir: Path) -> Path:
    return data_dir / SERVER_INFO_NAME


def read_server_info(data_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(server_info_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class DataDirLock:
    """An exclusive, process-lifetime lock on `<data dir>/server.lock` (released by the OS if we die)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._handle: IO[bytes] | None = None

    def acquire(self) -> None:
        """Take the lock; DataDirLocked if another process holds it, OSError if it cannot be taken at all."""
        handle = open(self.path, "a+b")
        try:
            if os.name == "posix":
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:  # pragma: no cover - Windows
                import msvcrt

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except BlockingIOError as exc:
            handle.close()
            raise DataDirLocked(str(exc)) from exc
        except OSError as exc:
            handle.close()
            if os.name != "posix" and exc.errno in (13, 36):  # msvcrt: EACCES / EDEADLOCK mean "held"
                raise DataDirLocked(str(exc)) from exc
            raise
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the flock
            self._handle = None


def _locked_message(data_dir: Path) -> str:
    info = read_server_info(data_dir) or {}
    if info.get("pid") or info.get("url"):
        return (f"another Training Studio server (pid {info.get('pid', '?')}, {info.get('url', 'url unknown')}) "
                f"is already using the data dir {data_dir}; stop it or use another --data-dir")
    return (f"another Training Studio server is already using the data dir {data_dir} (it is still starting "
            "or did not publish server.json); stop it or use another --data-dir")


def _setup_logging(data_dir: Path) -> None:
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    file_handler = logging.handlers.RotatingFileHandler(log_dir / "server.log", maxBytes=5_000_000, backupCount=3,
                                                        encoding="utf-8")
    file_handler.setFormatter(formatter)
    root.addHandler(file_handler)
    if sys.stderr is not None:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(formatter)
        console.setLevel(logging.WARNING)
        root.addHandler(console)


def _bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # proto=IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it every keep-alive answer waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _url_for(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = host.strip("[]")
    if shown in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def run_server(args: argparse.Namespace) -> int:
    """Run the server until a signal; returns the process exit code."""
    try:
        config = resolve_config(args)
    except ConfigError as exc:
        _stderr(str(exc))
        return 2
    # Whatever umask the server was started with, every file and folder it (or a trainer it starts) creates
    # in the data dir is the user's alone: uploads, the database, logs and checkpoints are private data.
    os.umask(0o077)
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _stderr(f"cannot create the data dir {config.data_dir}: {exc}")
        return 2

    lock = DataDirLock(config.data_dir)
    try:
        lock.acquire()
    except DataDirLocked:
        _stderr(_locked_message(config.data_dir))
        return 3
    except OSError as exc:
        _stderr(f"cannot lock the data dir {config.data_dir}: {exc}")
        return 2
    try:
        return _run_locked(config, getattr(args, "token_file", None))
    finally:
        lock.release()


def _run_locked(config: ServerConfig, token_file: str | None) -> int:
    _setup_logging(config.data_dir)
    if config.allow_remote:
        log.warning("listening on %s with --allow-remote: the token travels in clear text unless a TLS proxy "
                    "is in front of this server", config.host)
    if token_file and not token_file_is_private(token_file):
        log.warning("the token file %s is readable by other users; chmod 600 it", token_file)

    try:
        sock = _bind_socket(config.host, config.port)
    except OSError as exc:
        _stderr(f"cannot listen on {config.host}:{config.port}: {exc}")
        return 2
    url = _url_for(sock, config.host)
    info_path = server_info_path(config.data_dir)

    def publish() -> None:
        payload = {"url": url, "token": config.token, "pid": os.getpid(), "version": __version__}
        write_atomically(info_path, json.dumps(payload).encode("utf-8"), mode=0o600)
        log.info("Training Studio server %s listening on %s (data dir %s)", __version__, url, config.data_dir)

    def unpublish() -> None:
        info = read_server_info(config.data_dir)
        if info is not None and info.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                info_path.unlink()

    import uvicorn

    _without_pydantic_v1()
    from training_studio.server.app import begin_shutdown, create_app
    from training_studio.server.connections import ConnectionLimits, guarded_protocol_class
    from training_studio.server.images import image_work
    from training_studio.server.storage import Storage, StorageError

    try:
        storage = Storage(config.data_dir)
    except (StorageError, OSError) as exc:
        sock.close()
        _stderr(f"cannot open the database in {config.data_dir}: {exc}")
        return 2
    # The runner package provides the real executor; without it (or with --no-runner) jobs stay pending.
    executor_factory = _runner_executor_factory() if config.run_jobs else None
    app = create_app(config, executor_factory, storage=storage, on_started=publish, on_stopping=unpublish)
    # Our h11 protocol adds header/body timeouts and a connection cap (connections.py); no websockets.
    protocol = guarded_protocol_class(ConnectionLimits(header_timeout_s=config.header_timeout_s,
                                                       body_timeout_s=config.body_timeout_s,
                                                       max_connections=config.max_connections))
    uvicorn_config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", http=protocol,
                                    ws="none", timeout_graceful_shutdown=5, server_header=False)

    class StudioServer(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # Event streams never finish by themselves: end them before uvicorn waits for open connections.
            begin_shutdown(app)
            await super().shutdown(sockets)

    server = StudioServer(uvicorn_config)
    events = app.state.context.events
    if events is not None:
        events.set_transport_finder(lambda scope: _connection_transport(server, scope))

    # uvicorn re-raises the captured signal after shutdown with the handlers found at start: make those
    # harmless so our cleanup below still runs and the exit code is 0 for a requested stop.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            runner.run(server.serve(sockets=[sock]))
    except SystemExit as exc:  # uvicorn exits this way when the lifespan startup failed
        log.error("the server failed to start (exit %s)", exc.code)
        return 1
    finally:
        unpublish()
        image_work.shutdown()  # queued image checks are dropped, not run, on the way out
        with contextlib.suppress(OSError):
            sock.close()
        storage.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        _stderr("the server failed to start; see logs/server.log in the data dir")
        return 1
    return 0


def _without_pydantic_v1() -> None:
    """Make `pydantic.v1` unimportable in this process, unless something has imported it already. FastAPI
    imports it while registering each route only to check that no annotation is a pydantic v1 model (and
    handles the ImportError of a pydantic without it as "none is"): about 15-25 ms of a 330 ms start on the
    cold-start path (issue 19). Nothing of ours uses pydantic v1. `None` in sys.modules is Python's own
    way of saying a module is not there."""
    sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (issue 19: a cheaper loop and transports for every request;
    measured in benchmarks/bench_server.py), else asyncio's own (None). TRAINING_STUDIO_EVENT_LOOP=asyncio
    chooses asyncio's even then (a comparison, or a platform where uvloop misbehaves)."""
    if os.environ.get("TRAINING_STUDIO_EVENT_LOOP", "").strip().lower() == "asyncio" or os.name != "posix":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _connection_transport(server: Any, scope: dict[str, Any]) -> asyncio.Transport | None:
    """The transport of the connection serving `scope`, for the event streams: they cap its send buffer and
    drop it at once when its client stops reading (closing it politely would wait for that client). Reaches
    into uvicorn's connection set; None if the connection is not found there."""
    for protocol in list(getattr(getattr(server, "server_state", None), "connections", ())):
        cycle = getattr(protocol, "cycle", None)
        transport = getattr(protocol, "transport", None)
        if cycle is None or transport is None:
            continue
        theirs = getattr(cycle, "scope", None)
        if theirs is scope or (theirs is not None and theirs.get("client") == scope.get("client")
                               and theirs.get("path") == scope.get("path")):
            return transport
    return None


def _runner_executor_factory() -> ExecutorFactory | None:
    """The job runner's executor factory if the runner package provides one, else None."""
    import training_studio.runner as runner_package

    return getattr(runner_package, "create_executor", None)
