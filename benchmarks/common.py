"""Shared pieces of the benchmarks: the result record, timing helpers, job data and server processes.

This module owns what every figure needs: `Result` (the one JSON object per line the runner prints),
`median`/`percentile`, synthetic training jobs that look like a busy server's (as wire models and as
rows written straight into a data dir's SQLite through `Storage`, in one transaction), and
`BenchServer`, the real `training-studio serve` subprocess on a temp data dir, discovered through the
server.json it writes, exactly as the GUI and the tests find it, and `isolate_app_dirs`, which gives every
benchmark process its own settings, log, data and XDG folders, never the user's. Nothing here imports Qt.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import random
import secrets
import signal
import sqlite3
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0
ACTIVE_STATUSES = ("pending", "queued", "running")
BENCH_CACHE_ENV = "TRAINING_STUDIO_BENCH_CACHE"  # where generated inputs (the photo set) are kept between runs
BENCH_HOME_ENV = "TRAINING_STUDIO_BENCH_HOME"  # the folder isolate_app_dirs made for this run


@dataclass
class Result:
    """One figure: `value` (median of `runs`) against `baseline_value`, measured in the same run.

    `ratio` is always value / baseline_value, whatever the unit: below 1 means smaller than the
    baseline (good for times and memory), above 1 means larger (good for throughput)."""

    name: str
    value: float | None
    unit: str
    baseline: str
    baseline_value: float | None
    runs: int
    notes: str = ""
    ratio: float | None = field(default=None)

    def __post_init__(self) -> None:
        if self.ratio is None and self.value is not None and self.baseline_value:
            self.ratio = self.value / self.baseline_value

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("value", "baseline_value", "ratio"):
            if isinstance(data[key], float):
                data[key] = round(data[key], 4) if math.isfinite(data[key]) else None
        ordered = {key: data[key] for key in
                   ("name", "value", "unit", "baseline", "baseline_value", "ratio", "runs", "notes")}
        return json.dumps(ordered, ensure_ascii=False)


def goal_note(met: bool, text: str) -> str:
    return f"goal {text}: {'met' if met else 'NOT met'}"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in 0..1) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


def log(message: str) -> None:
    """Progress text for the person running the benchmarks (stderr; stdout is JSON only)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- synthetic jobs ------------------------------------------------------------------------------------

def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def job_rows(count: int, *, running: int, statuses: Iterable[str] = ("queued",), seed: int = 1,
             now: datetime | None = None) -> list[dict[str, Any]]:
    """Wire-shaped (camelCase) job dicts, oldest first: the first `running` are running with progress,
    the others cycle through `statuses`. Creation times are strictly increasing, one second apart."""
    rng = random.Random(seed)
    now = now or datetime.now(timezone.utc)
    first = now - timedelta(seconds=count + 3600)
    status_cycle = list(statuses)
    rows: list[dict[str, Any]] = []
    for index in range(count):
        created = first + timedelta(seconds=index)
        total = rng.choice((500, 1000, 2000, 5000))
        row: dict[str, Any] = {
            "id": f"job-{seed}-{index:06d}", "name": f"LoRA run {index:05d} · {rng.choice(['portrait', 'landscape', 'product', 'style'])}",
            "status": "", "progress": 0.0, "currentStep": None, "totalSteps": total, "currentLoss": None,
            "startedAt": None, "createdAt": iso(created), "finishedAt": None, "datasetId": f"ds-{index % 7}",
            "baseModel": "builtin-tiny-diffusion", "params": {"learning_rate": 0.0001}, "error": None, "modelId": None,
        }
        if index < running:
            step = rng.randrange(1, total)
            row.update(status="running", currentStep=step, progress=round(100.0 * step / total, 2),
                       currentLoss=round(rng.uniform(0.02, 0.4), 5),
                       startedAt=iso(now - timedelta(seconds=rng.randrange(30, 7200))))
        else:
            row["status"] = status_cycle[index % len(status_cycle)]
            if row["status"] in ("completed", "failed", "cancelled"):
                step = total if row["status"] == "completed" else rng.randrange(1, total)
                started = created + timedelta(seconds=5)
                row.update(currentStep=step, progress=100.0 if row["status"] == "completed" else
                           round(100.0 * step / total, 2), currentLoss=round(rng.uniform(0.02, 0.4), 5),
                           startedAt=iso(started), finishedAt=iso(started + timedelta(seconds=600)),
                           error="the trainer failed" if row["status"] == "failed" else None)
        rows.append(row)
    return rows


def insert_job_rows(data_dir: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write jobs straight into a (stopped) server's database, in one transaction."""
    from training_studio.server.storage import Storage

    storage = Storage(data_dir)
    try:
        # One transaction for 100,000 rows: Storage's own create_job is one transaction per job.
        with storage._transaction() as conn:  # noqa: SLF001 (benchmark set-up only)
            conn.executemany(
                "INSERT INTO jobs (id, name, status, progress, current_step, total_steps, current_loss, started_at,"
                " created_at, finished_at, dataset_id, base_model, params, error) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r["id"], r["name"], r["status"], r["progress"], r["currentStep"], r["totalSteps"], r["currentLoss"],
                  r["startedAt"], r["createdAt"], r["finishedAt"], r["datasetId"], r["baseModel"],
                  json.dumps(r["params"]), r["error"]) for r in rows])
    finally:
        storage.close()


def mark_running(data_dir: Path, count: int) -> None:
    """Turn the oldest `count` jobs into running ones with progress (the server reads them per request)."""
    now = datetime.now(timezone.utc)
    conn = sqlite3.connect(data_dir / "studio.db", timeout=30)
    try:
        with conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM jobs ORDER BY created_at LIMIT ?", (count,))]
            conn.executemany(
                "UPDATE jobs SET status='running', started_at=?, current_step=?, progress=?, current_loss=? WHERE id=?",
                [(iso(now - timedelta(seconds=60 + i)), 100 + i, round((100 + i) / 10, 2) % 100, 0.1, job_id)
                 for i, job_id in enumerate(ids)])
    finally:
        conn.close()


# -- where benchmark processes keep their files --------------------------------------------------------

def bench_cache_dir(environ: MutableMapping[str, str] = os.environ) -> Path:
    """The benchmarks' own cache of generated inputs: $TRAINING_STUDIO_BENCH_CACHE, else under the user's
    cache dir (kept between runs on purpose: the photo set takes tens of seconds to make)."""
    base = environ.get(BENCH_CACHE_ENV) or os.path.join(
        environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "training-studio-benchmarks")
    return Path(base)


def isolate_app_dirs(environ: MutableMapping[str, str] = os.environ) -> Path:
    """Point every place the app reads or writes for its user at a temp folder of this run's own, in `environ`
    (by default this process's, so Qt in this process and every subprocess follow it), and return the folder.

    The app's settings (TRAINING_STUDIO_CONFIG_DIR; QSettings' native file under XDG_CONFIG_HOME otherwise),
    its log (TRAINING_STUDIO_LOG_DIR; platformdirs' user log dir under XDG_STATE_HOME otherwise), the
    default data dir (platformdirs, XDG_DATA_HOME) and caches (XDG_CACHE_HOME) all move, so a benchmark
    never reads the user's window layout or cleared-jobs marks and never writes into them. Idempotent: a
    process whose environment already names such a folder (a child of `python -m benchmarks`) keeps it.
    The folder is removed when the process that made it exits. The benchmarks' own input cache stays put
    (`bench_cache_dir`, resolved before XDG_CACHE_HOME moves)."""
    existing = environ.get(BENCH_HOME_ENV)
    if existing:
        return Path(existing)
    environ[BENCH_CACHE_ENV] = str(bench_cache_dir(environ))
    home = Path(tempfile.mkdtemp(prefix="training-studio-bench-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    for name, folder in (("TRAINING_STUDIO_CONFIG_DIR", "config"), ("TRAINING_STUDIO_LOG_DIR", "logs"),
                         ("XDG_CONFIG_HOME", "xdg-config"), ("XDG_STATE_HOME", "xdg-state"),
                         ("XDG_DATA_HOME", "xdg-data"), ("XDG_CACHE_HOME", "xdg-cache")):
        environ[name] = str(home / folder)
    environ[BENCH_HOME_ENV] = str(home)
    return home


# -- start-up conditions of GUI processes --------------------------------------------------------------

def compile_sources() -> None:
    """Write the bytecode of the app's package and of the benchmarks, as an installed or frozen app has it.

    This environment sets PYTHONDONTWRITEBYTECODE=1 and nothing under src/ is compiled, so without this
    every GUI process would recompile all of the app's modules (40-70 ms) on each start; the standard
    library and site-packages already hold their bytecode. Only the import system honours the variable,
    so compileall writes the files regardless."""
    import training_studio

    package = Path(training_studio.__file__).resolve().parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package), str(ROOT / "benchmarks")], check=True)


def gui_process_env(**extra: str) -> dict[str, str]:
    """The environment of a timed GUI process: offscreen, no stray server/token, this run's own app folders
    (`isolate_app_dirs`), and bytecode read from (and, for anything new, written to) __pycache__ as an
    installed app would."""
    isolate_app_dirs()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    for name in ("TRAINING_STUDIO_SERVER", "TRAINING_STUDIO_TOKEN", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    env.update(extra)
    return env


# -- the real server as a subprocess ---------------------------------------------------------------------

class BenchServer:
    """`training-studio serve` on a data dir, stopped with SIGTERM (its trainers with it)."""

    def __init__(self, data_dir: Path, *, extra_args: Sequence[str] = ()) -> None:
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.token = secrets.token_urlsafe(24)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> BenchServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        token_file = self.data_dir.parent / f"{self.data_dir.name}-token"
        token_file.write_text(self.token)
        token_file.chmod(0o600)
        (self.data_dir / "server.json").unlink(missing_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("TRAINING_STUDIO_TOKEN", None)
        log_file = open(self.data_dir.parent / f"{self.data_dir.name}-server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "training_studio", "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
             "--port", "0", "--token-file", str(token_file), *self.extra_args],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log_file.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        info = self.data_dir / "server.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode} (log beside {self.data_dir})")
            try:
                data = json.loads(info.read_text())
                if data.get("pid") == self.proc.pid:
                    self.url = str(data["url"]).rstrip("/")
                    if httpx.get(self.url + "/api/health", timeout=2).status_code == 200:
                        return
            except (OSError, ValueError, KeyError, httpx.HTTPError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not become healthy within {START_TIMEOUT_S:.0f} s")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        # Trainers outlive their server (runner/trainer_wrapper.py): end those this benchmark started.
        from tests.support.trainers import end_wrappers_under
        end_wrappers_under(self.data_dir)

    def __enter__(self) -> BenchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting for a parent that may never reap it."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def stop_server_of(data_dir: Path, timeout: float = 20.0) -> None:
    """SIGTERM the server announced in a data dir's server.json (one the GUI started), and wait for it."""
    try:
        pid = int(json.loads((Path(data_dir) / "server.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
