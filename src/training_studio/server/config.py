"""Command-line options of `training-studio serve` and the resolved server configuration.

This module owns turning argv and the environment into one immutable `ServerConfig`: where the data
lives, which address to bind, which token guards the API and the upload/pixel/concurrency limits.
It refuses unsafe or contradictory settings here, before anything is bound or written, so that
`run_server` can report them as one clear sentence.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from training_studio.launcher import TOKEN_ENV  # the variable a server is handed its token in

DEFAULT_MAX_UPLOAD_BYTES = 200 * 1000 * 1000
DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_CONCURRENCY = 1
DEFAULT_CANCEL_GRACE_S = 10.0
# Slow clients (see connections.py): a request's headers must arrive within this time; an upload (or a
# download the client stops reading) may stall this long; connections beyond the cap make room or are refused.
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_MAX_CONNECTIONS = 256
DATA_DIR_ENV = "TRAINING_STUDIO_DATA_DIR"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})


class ConfigError(ValueError):
    """A serve option is unusable; the message says which one and why."""


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    host: str
    port: int
    token: str
    token_generated: bool
    allow_remote: bool
    max_upload_bytes: int
    max_pixels: int
    concurrency: int
    cancel_grace_s: float
    run_jobs: bool = True
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # GPUs the runner hands to jobs, one job per GPU through CUDA_VISIBLE_DEVICES (`--gpus 0,1`); None: it
    # does not assign GPUs (trainers see every GPU, as before).
    gpus: list[str] | None = None
    # Where jobs run (issue 18): "local" subprocesses, or "ray" (jobs submitted to the Ray cluster at
    # `ray_address` through its Jobs API, datasets and outputs in `shared_dir`, a folder every node sees;
    # without one, datasets travel with each job and outputs need the head on this machine).
    executor: str = "local"
    ray_address: str | None = None
    shared_dir: Path | None = None


def seconds_from_env(name: str, default: float, minimum: float, environ: dict[str, str] | None = None) -> float:
    """A duration tuned through the environment (the tests' knobs): `default` when unset, not a number
    (logged) or not finite, else at least `minimum`."""
    text = (os.environ if environ is None else environ).get(name, "").strip()
    try:
        seconds = float(text) if text else default
    except ValueError:
        logging.getLogger(__name__).warning("%s=%r is not a number; using %g", name, text, default)
        return default
    return max(minimum, seconds) if math.isfinite(seconds) else default


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("training-studio", appauthor=False))


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", dest="data_dir", default=None,
                        help=f"where jobs, datasets and models are stored (or {DATA_DIR_ENV}; "
                             "default: the user data directory)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; a non-loopback address needs --allow-remote)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0 = any free port; default 0)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback --host (the token then travels in clear text without TLS)")
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument("--token", default=None,
                        help=f"API token (visible in ps: prefer {TOKEN_ENV} or --token-file)")
    tokens.add_argument("--token-file", dest="token_file", default=None,
                        help="file holding the API token (should be readable only by you, 0600)")
    parser.add_argument("--max-upload-bytes", dest="max_upload_bytes", type=int, default=DEFAULT_MAX_UPLOAD_BYTES,
                        help=f"largest accepted dataset file, in bytes (default {DEFAULT_MAX_UPLOAD_BYTES})")
    parser.add_argument("--max-pixels", dest="max_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"largest accepted image, in pixels (default {DEFAULT_MAX_PIXELS})")
    parser.add_argument("--concurrency", type=int, default=None,
                        help=f"jobs that may run at the same time (default {DEFAULT_CONCURRENCY}, or the number of --gpus)")
    parser.add_argument("--cancel-grace", dest="cancel_grace", type=float, default=DEFAULT_CANCEL_GRACE_S,
                        help="seconds a cancelled trainer gets to exit before it is killed "
                             f"(default {DEFAULT_CANCEL_GRACE_S:g})")
    parser.add_argument("--header-timeout", dest="header_timeout", type=float, default=DEFAULT_HEADER_TIMEOUT_S,
                        help="seconds a client has to send a request's headers, counted from connecting or from "
                             f"the previous answer (default {DEFAULT_HEADER_TIMEOUT_S:g})")
    parser.add_argument("--body-timeout", dest="body_timeout", type=float, default=DEFAULT_BODY_TIMEOUT_S,
                        help="seconds an upload body (or a download) may make no progress before the connection "
                             f"is closed (default {DEFAULT_BODY_TIMEOUT_S:g})")
    parser.add_argument("--max-connections", dest="max_connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                        help="open connections at most (kept under half the descriptor limit; default "
                             f"{DEFAULT_MAX_CONNECTIONS})")
    parser.add_argument("--gpus", default=None, metavar="LIST",
                        help="GPUs to hand to jobs, e.g. 0,1: each running job gets its own through "
                             "CUDA_VISIBLE_DEVICES, and --concurrency defaults to their count (no NVML needed)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="where jobs run: local subprocesses (default) or a Ray cluster (needs the ray "
                             "extra: pip install 'training-studio[ray]')")
    parser.add_argument("--ray-address", dest="ray_address", default=None, metavar="URL",
                        help="with --executor ray: the Ray dashboard / Jobs API address, e.g. http://HOST:8265")
    parser.add_argument("--shared-dir", dest="shared_dir", default=None, metavar="PATH",
                        help="with --executor ray: a folder every node of the cluster sees at the same path "
                             "(e.g. NFS); datasets are copied there and jobs write their outputs there. "
                             "Without it a job's dataset travels with it (up to 100 MiB) and the Ray head "
                             "must run on this machine")
    parser.add_argument("--no-runner", dest="run_jobs", action="store_false",
                        help="accept and store jobs but never run them (they stay pending): for maintenance "
                             "and tests")


def is_loopback_host(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _read_token_file(path_text: str) -> str:
    path = Path(path_text).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc}") from exc
    token = text.strip()
    if not token:
        raise ConfigError(f"the token file {path} is empty")
    return token


def token_file_is_private(path_text: str) -> bool:
    """Whether a token file is unreadable by group and others (0600 or stricter)."""
    if os.name != "posix":
        return True
    try:
        mode = Path(path_text).expanduser().stat().st_mode
    except OSError:
        return True
    return not (mode & (stat.S_IRWXG | stat.S_IRWXO))


def resolve_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> ServerConfig:
    """Turn parsed serve options plus the environment into a checked ServerConfig."""
    env = dict(os.environ if environ is None else environ)
    data_dir_text = getattr(args, "data_dir", None) or env.get(DATA_DIR_ENV) or None
    data_dir = Path(data_dir_text).expanduser() if data_dir_text else default_data_dir()
    data_dir = data_dir.resolve()

    host = str(getattr(args, "host", "127.0.0.1") or "127.0.0.1")
    allow_remote = bool(getattr(args, "allow_remote", False))
    if not is_loopback_host(host) and not allow_remote:
        raise ConfigError(f"refusing to listen on the non-loopback address {host!r}: "
                          "pass --allow-remote if you really want other machines to reach this server")
    port = int(getattr(args, "port", 0) or 0)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, not {port}")

    token: str | None = getattr(args, "token", None)
    token_file = getattr(args, "token_file", None)
    if token is not None and not token.strip():
        raise ConfigError("--token is empty")
    if token_file:
        token = _read_token_file(token_file)
    if token is None and env.get(TOKEN_ENV, "").strip():
        token = env[TOKEN_ENV].strip()
    generated = token is None
    if token is None:
        token = secrets.token_urlsafe(32)

    max_upload = int(getattr(args, "max_upload_bytes", DEFAULT_MAX_UPLOAD_BYTES))
    if max_upload < 1:
        raise ConfigError("--max-upload-bytes must be at least 1")
    max_pixels = int(getattr(args, "max_pixels", DEFAULT_MAX_PIXELS))
    if max_pixels < 1:
        raise ConfigError("--max-pixels must be at least 1")
    gpus = parse_gpu_list(getattr(args, "gpus", None))
    concurrency_arg = getattr(args, "concurrency", None)
    if concurrency_arg is None:
        # One job per GPU unless told otherwise.
        concurrency = len(gpus) if gpus else DEFAULT_CONCURRENCY
    else:
        concurrency = int(concurrency_arg)
    if concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    grace = float(getattr(args, "cancel_grace", DEFAULT_CANCEL_GRACE_S))
    if not grace >= 0:
        raise ConfigError("--cancel-grace must be zero or more seconds")

    header_timeout = float(getattr(args, "header_timeout", DEFAULT_HEADER_TIMEOUT_S))
    body_timeout = float(getattr(args, "body_timeout", DEFAULT_BODY_TIMEOUT_S))
    for option, value in (("--header-timeout", header_timeout), ("--body-timeout", body_timeout)):
        if not 0 < value < float("inf"):
            raise ConfigError(f"{option} must be a positive number of seconds")
    max_connections = int(getattr(args, "max_connections", DEFAULT_MAX_CONNECTIONS))
    if max_connections < 8:
        raise ConfigError("--max-connections must be at least 8")

    executor, ray_address, shared_dir = _resolve_executor(args)

    return ServerConfig(data_dir=data_dir, host=host, port=port, token=token, token_generated=generated,
                        allow_remote=allow_remote, max_upload_bytes=max_upload, max_pixels=max_pixels,
                        concurrency=concurrency, cancel_grace_s=grace,
                        run_jobs=bool(getattr(args, "run_jobs", True)), header_timeout_s=header_timeout,
                        body_timeout_s=body_timeout, max_connections=max_connections, gpus=gpus,
                        executor=executor, ray_address=ray_address, shared_dir=shared_dir)


def _resolve_executor(args: argparse.Namespace) -> tuple[str, str | None, Path | None]:
    """`--executor`, `--ray-address`, `--shared-dir` checked together (issue 18)."""
    import importlib.util

    executor = str(getattr(args, "executor", None) or "local")
    address = getattr(args, "ray_address", None)
    shared_text = getattr(args, "shared_dir", None)
    if executor == "local":
        if address or shared_text:
            raise ConfigError("--ray-address and --shared-dir only apply with --executor ray")
        return executor, None, None
    if executor != "ray":
        raise ConfigError(f"--executor must be local or ray, not {executor!r}")
    try:
        ray_found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        ray_found = False
    if not ray_found:
        raise ConfigError("--executor ray needs the ray package: pip install 'training-studio[ray]'")
    if not address or not str(address).strip():
        raise ConfigError("--executor ray needs --ray-address, e.g. --ray-address http://HOST:8265")
    address = str(address).strip()
    if "://" not in address:
        address = f"http://{address}"
    if not shared_text:
        # issue 18: datasets then travel with each job (Ray's working_dir) and outputs need a head on this
        # machine; the Ray executor refuses a job it cannot bring back, saying so.
        return executor, address, None
    shared_dir = Path(shared_text).expanduser().resolve()
    if not shared_dir.is_dir():
        raise ConfigError(f"--shared-dir {shared_dir} is not an existing folder")
    return executor, address, shared_dir


def parse_gpu_list(text: str | None) -> list[str] | None:
    """`--gpus 0,1` → ["0", "1"]: indices or GPU UUIDs as CUDA_VISIBLE_DEVICES takes them, each once."""
    if text is None:
        return None
    items = [item.strip() for item in str(text).split(",")]
    if not text.strip() or any(not item for item in items):
        raise ConfigError(f"--gpus {text!r}: give GPU indices or UUIDs separated by commas, e.g. --gpus 0,1")
    for item in items:
        if not (item.isdigit() or item.startswith(("GPU-", "MIG-"))) or len(item) > 96:
            raise ConfigError(f"--gpus: {item!r} is neither a GPU index (0, 1, …) nor a GPU UUID (GPU-…)")
    if len(set(items)) != len(items):
        raise ConfigError(f"--gpus {text!r} names a GPU twice")
    return items
