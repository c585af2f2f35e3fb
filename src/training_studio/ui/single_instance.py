"""One app per settings and data dir: a second launch hands its arguments to the running one and exits.

This module owns the rendezvous between launches. The key is the settings location (the
TRAINING_STUDIO_CONFIG_DIR override, or the platform's own), the local server's data dir (resolved) and
the server URL asked for (none: the local one); two launches with the same key are the same app. The
running app listens on a local socket named from a hash of that key (`make_instance_server`). A new
launch first tries to connect (`hand_over`): if something answers, it sends one JSON line `{"version": 1, "paths": [...]}` (absolute paths, resolved against the
new launch's working directory), waits for `ok`, and exits with status 0; the running app raises and
activates its window and opens the import window with those paths. If nothing answers (no app, or a
socket file left by one that crashed), the launch becomes the running app.

On Unix the socket is a file under XDG_RUNTIME_DIR (or the temp dir), readable and writable by this
user only, and both ends are plain Python sockets (the listener watched by a QSocketNotifier): the
handover attempt is made before Qt is even loaded, so a first launch pays nothing for it, and the bundle
needs no QtNetwork. On Windows the name is a named pipe, served by QLocalServer (when QtNetwork is
there). `--new-instance`, TRAINING_STUDIO_NEW_INSTANCE=1 and `--screenshot` runs (tests, benchmarks,
smoke runs) neither hand over nor listen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["instance_name", "wants_new_instance", "absolute_paths", "hand_over", "make_instance_server",
           "HANDOVER_TIMEOUT_S", "MAX_MESSAGE_BYTES"]

log = logging.getLogger("training_studio.ui.single_instance")

HANDOVER_TIMEOUT_S = 5.0  # a running app answers at once; a hung one must not hold the new launch forever
MAX_MESSAGE_BYTES = 1 << 20  # one launch's paths; anything longer is not ours
PROTOCOL_VERSION = 1


def wants_new_instance(args: Any, environ: Mapping[str, str]) -> bool:
    """True when this launch must neither hand over nor listen (its own window whatever runs)."""
    if getattr(args, "new_instance", False) or getattr(args, "screenshot", None):
        return True
    return environ.get("TRAINING_STUDIO_NEW_INSTANCE", "").strip().lower() in ("1", "true", "yes", "on")


def instance_name(data_dir: Path, server_url: str | None, environ: Mapping[str, str]) -> str:
    """The local socket's name (Windows) or path (Unix) for this settings location, data dir and server."""
    config = environ.get("TRAINING_STUDIO_CONFIG_DIR")
    config_key = str(Path(config).expanduser().resolve()) if config else "native-settings"
    key = "\0".join([config_key, str(Path(data_dir).expanduser().resolve()), server_url or "local"])
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    if sys.platform.startswith("win"):
        return f"training-studio-{os.environ.get('USERNAME', 'user')}-{digest}"
    runtime = environ.get("XDG_RUNTIME_DIR")
    folder = runtime if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK) else \
        tempfile.gettempdir()
    return os.path.join(folder, f"training-studio-{os.getuid()}-{digest}.sock")


def absolute_paths(paths: Iterable[str], cwd: str | None = None) -> list[str]:
    """Command-line paths made absolute against `cwd` (file:// URLs, as some launchers pass, decoded)."""
    base = cwd or os.getcwd()
    result = []
    for raw in paths:
        if raw.startswith("file://"):
            parts = urlsplit(raw)
            if parts.netloc not in ("", "localhost"):
                continue  # a file on another machine cannot be read from here
            raw = unquote(parts.path)
        result.append(os.path.normpath(os.path.join(base, os.path.expanduser(raw))))
    return result


def hand_over(name: str, paths: list[str], timeout: float = HANDOVER_TIMEOUT_S) -> bool:
    """Give `paths` to the app listening on `name`; True when it took them (this launch should exit)."""
    message = (json.dumps({"version": PROTOCOL_VERSION, "paths": paths}) + "\n").encode("utf-8", "surrogateescape")
    if sys.platform.startswith("win"):
        return _hand_over_qt(name, message, timeout)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(name)
            conn.sendall(message)
            answer = b""
            while not answer.endswith(b"\n") and len(answer) < 64:
                chunk = conn.recv(64)
                if not chunk:
                    break
                answer += chunk
    except (FileNotFoundError, ConnectionRefusedError):
        return False  # nobody runs, or a crashed app left its socket file: become the running app
    except OSError as error:
        log.warning("could not reach the running Training Studio at %s: %s", name, error)
        return False
    return answer.strip() == b"ok"


def _hand_over_qt(name: str, message: bytes, timeout: float) -> bool:
    from PySide6.QtNetwork import QLocalSocket

    conn = QLocalSocket()
    conn.connectToServer(name)
    if not conn.waitForConnected(int(timeout * 1000)):
        return False
    conn.write(message)
    conn.waitForBytesWritten(int(timeout * 1000))
    answer = b""
    while not answer.endswith(b"\n") and conn.waitForReadyRead(int(timeout * 1000)):
        answer += bytes(conn.readAll().data())
    conn.disconnectFromServer()
    return answer.strip() == b"ok"


def parse_handover(line: bytes) -> list[str] | None:
    """The paths of one handover line, or None when it is not one of ours."""
    try:
        message = json.loads(line.decode("utf-8", "surrogateescape"))
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("paths"), list):
        return None
    return [str(path) for path in message["paths"]]


def _make_server_class() -> type:
    """The listener class, built on first use so that importing this module does not load Qt.

    On Unix it is a Python socket watched by QSocketNotifier (QtCore only: the bundle has no QtNetwork,
    and nothing more is loaded at start-up); on Windows a QLocalServer (named pipe)."""
    from PySide6.QtCore import QObject, QSocketNotifier, Signal

    class _InstanceServer(QObject):
        """Listens for later launches; `handover(paths)` fires for each one that reached it."""

        handover = Signal(list)

        def __init__(self, name: str, parent: QObject | None = None) -> None:
            super().__init__(parent)
            self.name = name
            self._listener: socket.socket | None = None
            self._notifiers: dict[int, QSocketNotifier] = {}
            self._connections: dict[int, tuple[socket.socket, bytearray]] = {}
            self._qt_server: Any = None

        # listening ---------------------------------------------------------------------------------------
        def listen(self) -> bool:
            """Start listening; a socket file left by a crashed app is replaced. False if impossible."""
            try:
                listening = self._listen_qt() if sys.platform.startswith("win") else self._listen_unix()
            except (OSError, ImportError) as error:
                log.warning("single instance: cannot listen on %s (%s); later launches open their own window",
                            self.name, error)
                return False
            if listening:
                log.info("single instance: listening on %s", self.name)
            return listening

        def _listen_unix(self) -> bool:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(self.name)
            except OSError:
                if hand_over_answers(self.name):
                    listener.close()
                    return False  # another app got there first: it is the running one
                os.unlink(self.name)  # nobody answers on it: a crashed app's leftover
                listener.bind(self.name)
                log.info("single instance: replaced a stale socket at %s", self.name)
            os.chmod(self.name, 0o600)  # this user's only (before listen(): nobody can connect yet)
            listener.listen(8)
            listener.setblocking(False)
            self._listener = listener
            self._watch(listener.fileno(), self._accept)
            return True

        def _listen_qt(self) -> bool:
            from PySide6.QtNetwork import QLocalServer

            server = QLocalServer(self)
            server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
            if not server.listen(self.name):
                QLocalServer.removeServer(self.name)
                if not server.listen(self.name):
                    raise OSError(server.errorString())
            server.newConnection.connect(lambda: self._on_qt_connection(server))
            self._qt_server = server
            return True

        def close(self) -> None:
            for fd in list(self._notifiers):
                self._release_notifier(fd)
            for conn, _ in self._connections.values():
                conn.close()
            self._connections.clear()
            if self._listener is not None:
                self._listener.close()
                self._listener = None
                try:
                    os.unlink(self.name)
                except OSError:
                    pass
            if self._qt_server is not None:
                self._qt_server.close()

        # Unix connections --------------------------------------------------------------------------------
        def _watch(self, fd: int, callback: Any) -> None:
            notifier = QSocketNotifier(fd, QSocketNotifier.Type.Read, self)
            notifier.activated.connect(lambda *_: callback(fd))
            self._notifiers[fd] = notifier

        def _release_notifier(self, fd: int) -> None:
            notifier = self._notifiers.pop(fd, None)
            if notifier is not None:
                notifier.setEnabled(False)
                # The slot (a lambda holding this object) would keep a cycle alive until a garbage collection
                # deletes the Qt objects at some random later moment: cut it now.
                notifier.activated.disconnect()
                notifier.deleteLater()

        def _unwatch(self, fd: int) -> None:
            self._release_notifier(fd)
            entry = self._connections.pop(fd, None)
            if entry is not None:
                entry[0].close()

        def _accept(self, _fd: int) -> None:
            if self._listener is None:
                return
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                log.warning("single instance: accept failed: %s", error)
                return
            conn.setblocking(False)
            self._connections[conn.fileno()] = (conn, bytearray())
            self._watch(conn.fileno(), self._read)

        def _read(self, fd: int) -> None:
            entry = self._connections.get(fd)
            if entry is None:
                return
            conn, buffer = entry
            try:
                chunk = conn.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._unwatch(fd)
                return
            buffer.extend(chunk)
            if len(buffer) > MAX_MESSAGE_BYTES:
                log.warning("single instance: dropped an over-long message")
                self._unwatch(fd)
                return
            if b"\n" not in buffer:
                return
            paths = parse_handover(bytes(buffer).split(b"\n", 1)[0])
            if paths is None:
                log.warning("single instance: dropped a message that is not a handover")
            else:
                try:
                    conn.setblocking(True)
                    conn.settimeout(1.0)
                    conn.sendall(b"ok\n")
                except OSError as error:
                    log.warning("single instance: could not answer a handover: %s", error)
            self._unwatch(fd)
            if paths is not None:
                self.handover.emit(paths)

        # Windows connections ----------------------------------------------------------------------------
        def _on_qt_connection(self, server: Any) -> None:
            while server.hasPendingConnections():
                conn = server.nextPendingConnection()
                buffer = bytearray()

                def ready(conn: Any = conn, buffer: bytearray = buffer) -> None:
                    buffer.extend(bytes(conn.readAll().data()))
                    if len(buffer) > MAX_MESSAGE_BYTES:
                        conn.abort()
                        return
                    if b"\n" not in buffer:
                        return
                    paths = parse_handover(bytes(buffer).split(b"\n", 1)[0])
                    if paths is None:
                        conn.abort()
                        return
                    conn.write(b"ok\n")
                    conn.flush()
                    conn.disconnectFromServer()
                    self.handover.emit(paths)

                conn.readyRead.connect(ready)
                conn.disconnected.connect(conn.deleteLater)

    return _InstanceServer


def hand_over_answers(name: str) -> bool:
    """Whether something listens on the Unix socket `name` (without handing anything over)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect(name)
            return True
    except OSError:
        return False


def make_instance_server(name: str, parent: Any = None) -> Any:
    """The running app's listener: a QObject with `listen()`, `close()` and the `handover(paths)` signal.
    Its class is made on first use, so that importing this module does not load Qt."""
    global _SERVER_CLASS
    if _SERVER_CLASS is None:
        _SERVER_CLASS = _make_server_class()
    return _SERVER_CLASS(name, parent)


_SERVER_CLASS: type | None = None
