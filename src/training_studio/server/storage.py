"""Durable state of the embedded server: one SQLite database (WAL) plus the data-dir file layout.

`Storage` owns `studio.db` under the data dir and the paths derived from it (content-addressed blobs,
materialised dataset layouts, job logs and outputs, thumbnails). It is the only code that runs SQL.
Every method is synchronous and thread-safe (one connection behind a re-entrant lock), because the
routes call it from the event loop and the job runner may call it from tasks and threads. Each
write is one transaction, so a failure never leaves a half-written row. The schema carries a version
number and `_MIGRATIONS` upgrades older databases in place; a database from a newer version is refused.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from training_studio.contract import (
    TERMINAL_STATUSES,
    Dataset,
    DatasetFile,
    JobStatus,
    MetricPoint,
    TrainedModel,
    TrainingJob,
    format_timestamp,
    parse_timestamp,
    utc_now,
)

LOCAL_USER = "local"
PROGRESS_CAP_BEFORE_COMPLETION = 99.9
LayoutName = Literal["kohya", "imagefolder"]
_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)


class StorageError(RuntimeError):
    """The database cannot be used (for example it was written by a newer version)."""


@dataclass(frozen=True)
class BlobInfo:
    """A stored file, once per content: the SHA-256 is its identity and its name on disk."""

    sha256: str
    size: int
    kind: str  # dataset type it was verified as: image, audio, video, text
    ext: str  # with the dot, e.g. ".png"
    width: int | None
    height: int | None


_MIGRATIONS: list[str] = [
    # version 1
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        progress REAL NOT NULL DEFAULT 0,
        current_step INTEGER,
        total_steps INTEGER,
        current_loss REAL,
        started_at TEXT,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        dataset_id TEXT,
        base_model TEXT,
        params TEXT,
        error TEXT,
        model_id TEXT,
        pid INTEGER,
        pgid INTEGER
    );
    CREATE INDEX jobs_status_created ON jobs(status, created_at);
    CREATE INDEX jobs_created ON jobs(created_at);
    CREATE TABLE metrics (
        job_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        loss REAL,
        time TEXT NOT NULL,
        PRIMARY KEY (job_id, step)
    ) WITHOUT ROWID;
    CREATE TABLE datasets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        image_count INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        error TEXT
    );
    CREATE TABLE blobs (
        sha256 TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        kind TEXT NOT NULL,
        ext TEXT NOT NULL,
        width INTEGER,
        height INTEGER,
        created_at TEXT NOT NULL
    );
    CREATE TABLE dataset_files (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        dataset_id TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL REFERENCES blobs(sha256),
        filename TEXT NOT NULL,
        caption TEXT,
        added_at TEXT NOT NULL,
        UNIQUE (dataset_id, sha256)
    );
    CREATE INDEX dataset_files_sha ON dataset_files(sha256);
    CREATE TABLE models (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        base_model TEXT NOT NULL,
        training_job_id TEXT,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        size_bytes INTEGER,
        path TEXT,
        error TEXT
    );
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)


def new_id() -> str:
    return uuid.uuid4().hex


def now_text() -> str:
    return format_timestamp(utc_now())


class Storage:
    """SQLite-backed store of jobs, metrics, datasets, blobs and models under one data dir."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("blobs", "datasets", "logs", "jobs", "thumbnails", "tmp"):
            (self.data_dir / sub).mkdir(exist_ok=True)
        self.db_path = self.data_dir / "studio.db"
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._last_job_created: datetime | None = None
        self._migrate()

    # plumbing --------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # Also when COMMIT itself failed (disk full): the connection must not stay mid-transaction.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _migrate(self) -> None:
        with self._transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            version = row["version"] if row else 0
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            if version > SCHEMA_VERSION:
                raise StorageError(f"{self.db_path} was written by a newer Training Studio (schema {version}, "
                                   f"this version knows {SCHEMA_VERSION}); upgrade the app or use another data dir")
            for number in range(version, SCHEMA_VERSION):
                # executescript would COMMIT our transaction; run the statements one by one instead.
                for statement in _split_sql(_MIGRATIONS[number]):
                    conn.execute(statement)
                conn.execute("UPDATE schema_version SET version = ?", (number + 1,))

    def schema_version(self) -> int:
        return int(self._query("SELECT version FROM schema_version")[0]["version"])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # paths -----------------------------------------------------------------------------------
    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    def blob_path(self, sha256: str) -> Path:
        return self.data_dir / "blobs" / sha256[:2] / sha256

    def thumbnail_path(self, sha256: str, size: int, ext: str) -> Path:
        return self.data_dir / "thumbnails" / sha256[:2] / f"{sha256}-{size}{ext}"

    def dataset_dir(self, dataset_id: str) -> Path:
        return self.data_dir / "datasets" / dataset_id

    def dataset_layout_dir(self, dataset_id: str, layout: LayoutName) -> Path:
        if layout not in ("kohya", "imagefolder"):
            raise ValueError(f"unknown dataset layout {layout!r}")
        return self.dataset_dir(dataset_id) / layout

    def job_log_path(self, job_id: str) -> Path:
        return self.data_dir / "logs" / f"{job_id}.log"

    def job_output_dir(self, job_id: str) -> Path:
        return self.data_dir / "jobs" / job_id

    def model_samples_path(self, model: TrainedModel) -> Path | None:
        """Where a model's trainer leaves its sample sheet: samples.png beside the checkpoint."""
        if model.training_job_id:
            return self.job_output_dir(model.training_job_id) / "samples.png"
        if model.path:
            return Path(model.path).parent / "samples.png"
        return None

    # jobs ------------------------------------------------------------------------------------
    def _next_job_timestamp(self) -> str:
        # Strictly increasing creation times make `before=<createdAt>` paging exact.
        now = utc_now()
        moment = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self._last_job_created is None:
            row = self._conn.execute("SELECT MAX(created_at) AS latest FROM jobs").fetchone()
            self._last_job_created = parse_timestamp(row["latest"]) if row and row["latest"] else None
        if self._last_job_created is not None and moment <= self._last_job_created:
            moment = self._last_job_created + timedelta(milliseconds=1)
        self._last_job_created = moment
        return format_timestamp(moment)

    def create_job(self, name: str, dataset_id: str | None, base_model: str | None, total_steps: int | None,
                   params: dict[str, Any] | None) -> TrainingJob:
        job_id = new_id()
        with self._transaction() as conn:
            created = self._next_job_timestamp()
            conn.execute(
                "INSERT INTO jobs (id, name, status, progress, total_steps, created_at, dataset_id, base_model, params)"
                " VALUES (?, ?, 'pending', 0, ?, ?, ?, ?, ?)",
                (job_id, name, total_steps, created, dataset_id, base_model,
                 json.dumps(params) if params is not None else None),
            )
        job = self.get_job(job_id)
        assert job is not None
        return job

    def get_job(self, job_id: str) -> TrainingJob | None:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job_from_row(rows[0]) if rows else None

    def jobs_with_status(self, statuses: Iterable[str | JobStatus]) -> list[TrainingJob]:
        """Jobs in any of `statuses`, oldest first."""
        wanted = [str(s) for s in statuses]
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        rows = self._query(f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at ASC, rowid ASC", wanted)
        return [_job_from_row(row) for row in rows]

    def list_jobs(self, statuses: Iterable[str | JobStatus] | None = None, limit: int = 100,
                  before: str | None = None) -> list[TrainingJob]:
        """History: newest first, at most `limit`, only jobs created strictly before `before` if given."""
        clauses: list[str] = []
        args: list[Any] = []
        if statuses is not None:
            wanted = [str(s) for s in statuses]
            if not wanted:
                return []
            clauses.append(f"status IN ({','.join('?' * len(wanted))})")
            args.extend(wanted)
        if before is not None:
            clauses.append("created_at < ?")
            args.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT * FROM jobs {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                           [*args, int(limit)])
        return [_job_from_row(row) for row in rows]

    def set_job_status(self, job_id: str, status: str | JobStatus, *, started_at: str | None = None,
                       finished_at: str | None = None, error: str | None = None, model_id: str | None = None,
                       progress: float | None = None) -> TrainingJob | None:
        """Move a job to `status`; None if the job is unknown or already terminal (terminal is final).

        Entering `running` stamps startedAt and a terminal state stamps finishedAt when not given;
        `completed` sets progress to 100.
        """
        status = str(JobStatus(str(status)))
        if status == JobStatus.UNKNOWN.value:
            raise ValueError("cannot store the status 'unknown'")
        with self._transaction() as conn:
            row = conn.execute("SELECT status, started_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] in _TERMINAL:
                return None
            sets = ["status = ?"]
            args: list[Any] = [status]
            if started_at is not None or (status == "running" and row["started_at"] is None):
                sets.append("started_at = ?")
                args.append(started_at or now_text())
            if status in _TERMINAL:
                sets.append("finished_at = ?")
                args.append(finished_at or now_text())
                sets.append("pid = NULL, pgid = NULL")
            elif finished_at is not None:
                sets.append("finished_at = ?")
                args.append(finished_at)
            if error is not None:
                sets.append("error = ?")
                args.append(error)
            if model_id is not None:
                sets.append("model_id = ?")
                args.append(model_id)
            if status == "completed":
                progress = 100.0
            if progress is not None:
                if status != "completed":
                    progress = min(float(progress), PROGRESS_CAP_BEFORE_COMPLETION)
                sets.append("progress = ?")
                args.append(max(0.0, progress))
            conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", [*args, job_id])
        return self.get_job(job_id)

    def set_job_process(self, job_id: str, pid: int | None, pgid: int | None) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE jobs SET pid = ?, pgid = ? WHERE id = ?", (pid, pgid, job_id))

    def job_process(self, job_id: str) -> tuple[int | None, int | None] | None:
        rows = self._query("SELECT pid, pgid FROM jobs WHERE id = ?", (job_id,))
        if not rows or (rows[0]["pid"] is None and rows[0]["pgid"] is None):
            return None
        return rows[0]["pid"], rows[0]["pgid"]

    def record_progress(self, points: Sequence[tuple[str, int, int | None, float | None, str]]) -> None:
        """Append metric points and move each job's live fields to its latest point, in one transaction.

        A point is (job_id, step, total_steps, loss, iso_time). Jobs already terminal keep their fields.
        """
        if not points:
            return
        latest: dict[str, tuple[int, int | None, float | None]] = {}
        for job_id, step, total, loss, _time in points:
            latest[job_id] = (int(step), total, loss)
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO metrics (job_id, step, loss, time) VALUES (?, ?, ?, ?)",
                [(job_id, int(step), _finite_or_none(loss), time) for job_id, step, _total, loss, time in points],
            )
            for job_id, (step, total, loss) in latest.items():
                row = conn.execute("SELECT status, total_steps, current_loss FROM jobs WHERE id = ?",
                                   (job_id,)).fetchone()
                if row is None or row["status"] in _TERMINAL:
                    continue
                total_steps = total if total else row["total_steps"]
                current_loss = _finite_or_none(loss)
                if current_loss is None:
                    current_loss = row["current_loss"]
                progress = 0.0
                if total_steps:
                    progress = min(100.0 * step / total_steps, PROGRESS_CAP_BEFORE_COMPLETION)
                conn.execute(
                    "UPDATE jobs SET current_step = ?, total_steps = ?, current_loss = ?, progress = ? WHERE id = ?",
                    (step, total_steps, current_loss, max(0.0, progress), job_id),
                )

    def metrics(self, job_id: str, since_step: int = -1, stride: int = 1) -> list[MetricPoint]:
        """Points with step > since_step, ascending; every stride-th one plus always the latest."""
        stride = max(1, int(stride))
        rows = self._query(
            "SELECT step, loss, time FROM ("
            " SELECT step, loss, time, ROW_NUMBER() OVER (ORDER BY step) - 1 AS rn, COUNT(*) OVER () AS n"
            " FROM metrics WHERE job_id = ? AND step > ?"
            ") WHERE rn % ? = 0 OR rn = n - 1 ORDER BY step",
            (job_id, int(since_step), stride),
        )
        return [MetricPoint(step=row["step"], loss=row["loss"], time=row["time"]) for row in rows]

    def jobs_using_dataset(self, dataset_id: str, statuses: Iterable[str | JobStatus]) -> list[TrainingJob]:
        wanted = [str(s) for s in statuses]
        marks = ",".join("?" * len(wanted))
        rows = self._query(f"SELECT * FROM jobs WHERE dataset_id = ? AND status IN ({marks}) ORDER BY created_at",
                           [dataset_id, *wanted])
        return [_job_from_row(row) for row in rows]

    # models ----------------------------------------------------------------------------------
    def create_model(self, name: str, base_model: str, training_job_id: str | None, status: str = "processing",
                     path: str | Path | None = None) -> TrainedModel:
        model_id = new_id()
        now = now_text()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO models (id, name, base_model, training_job_id, status, created_at, updated_at, path)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (model_id, name, base_model, training_job_id, str(status), now, now,
                 str(path) if path is not None else None),
            )
        model = self.get_model(model_id)
        assert model is not None
        return model

    def update_model(self, model_id: str, *, status: str | None = None, size_bytes: int | None = None,
                     path: str | Path | None = None, error: str | None = None) -> TrainedModel | None:
        sets = ["updated_at = ?"]
        args: list[Any] = [now_text()]
        for column, value in (("status", status), ("size_bytes", size_bytes), ("error", error)):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(str(value) if column == "status" else value)
        if path is not None:
            sets.append("path = ?")
            args.append(str(path))
        with self._transaction() as conn:
            conn.execute(f"UPDATE models SET {', '.join(sets)} WHERE id = ?", [*args, model_id])
        return self.get_model(model_id)

    def get_model(self, model_id: str) -> TrainedModel | None:
        rows = self._query("SELECT * FROM models WHERE id = ?", (model_id,))
        return _model_from_row(rows[0]) if rows else None

    def list_models(self) -> list[TrainedModel]:
        return [_model_from_row(row) for row in self._query("SELECT * FROM models ORDER BY created_at DESC, rowid DESC")]

    def delete_model(self, model_id: str) -> TrainedModel | None:
        """Remove the model's row; returns what was removed (its files are the caller's business)."""
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM models WHERE id = ?", (model_id,))
            conn.execute("UPDATE jobs SET model_id = NULL WHERE model_id = ?", (model_id,))
        return _model_from_row(row)

    # datasets --------------------------------------------------------------------------------
    def create_dataset(self, name: str, dataset_type: str) -> Dataset:
        dataset_id = new_id()
        now = now_text()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO datasets (id, name, type, status, image_count, created_at, updated_at)"
                " VALUES (?, ?, ?, 'processing', 0, ?, ?)",
                (dataset_id, name, dataset_type, now, now),
            )
        dataset = self.get_dataset(dataset_id)
        assert dataset is not None
        return dataset

    def get_dataset(self, dataset_id: str) -> Dataset | None:
        rows = self._query("SELECT * FROM datasets WHERE id = ?", (dataset_id,))
        return _dataset_from_row(rows[0]) if rows else None

    def list_datasets(self) -> list[Dataset]:
        rows = self._query("SELECT * FROM datasets ORDER BY created_at DESC, rowid DESC")
        return [_dataset_from_row(row) for row in rows]

    def set_dataset_status(self, dataset_id: str, status: str, *, image_count: int | None = None,
                           error: str | None = None) -> Dataset | None:
        with self._transaction() as conn:
            if image_count is None:
                conn.execute("UPDATE datasets SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                             (status, error, now_text(), dataset_id))
            else:
                conn.execute("UPDATE datasets SET status = ?, error = ?, image_count = ?, updated_at = ? WHERE id = ?",
                             (status, error, image_count, now_text(), dataset_id))
        return self.get_dataset(dataset_id)

    def touch_dataset(self, dataset_id: str) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE datasets SET updated_at = ? WHERE id = ?", (now_text(), dataset_id))

    def get_blob(self, sha256: str) -> BlobInfo | None:
        rows = self._query("SELECT * FROM blobs WHERE sha256 = ?", (sha256,))
        return _blob_from_row(rows[0]) if rows else None

    def dataset_files(self, dataset_id: str) -> list[DatasetFile]:
        rows = self._query(
            "SELECT f.sha256, f.filename, f.caption, b.size, b.width, b.height FROM dataset_files f"
            " JOIN blobs b ON b.sha256 = f.sha256 WHERE f.dataset_id = ? ORDER BY f.position", (dataset_id,))
        return [_file_from_row(row) for row in rows]

    def dataset_file_entries(self, dataset_id: str) -> list[tuple[DatasetFile, BlobInfo]]:
        rows = self._query(
            "SELECT f.filename, f.caption, b.* FROM dataset_files f JOIN blobs b ON b.sha256 = f.sha256"
            " WHERE f.dataset_id = ? ORDER BY f.position", (dataset_id,))
        return [(_file_from_row(row), _blob_from_row(row)) for row in rows]

    def get_dataset_file(self, dataset_id: str, sha256: str) -> DatasetFile | None:
        rows = self._query(
            "SELECT f.sha256, f.filename, f.caption, b.size, b.width, b.height FROM dataset_files f"
            " JOIN blobs b ON b.sha256 = f.sha256 WHERE f.dataset_id = ? AND f.sha256 = ?", (dataset_id, sha256))
        return _file_from_row(rows[0]) if rows else None

    def add_dataset_file(self, dataset_id: str, blob: BlobInfo, filename: str) -> tuple[DatasetFile, bool]:
        """Record `blob` (whose file is already in place) as part of a dataset.

        Returns the file and whether it was newly added (False: it was already in this dataset).
        Only a `processing` dataset accepts files; otherwise LookupError (unknown) or ValueError (state).
        """
        with self._transaction() as conn:
            row = conn.execute("SELECT status FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
            if row is None:
                raise LookupError(dataset_id)
            existing = conn.execute("SELECT 1 FROM dataset_files WHERE dataset_id = ? AND sha256 = ?",
                                    (dataset_id, blob.sha256)).fetchone()
            added = existing is None
            if added:
                if row["status"] != "processing":
                    raise ValueError(row["status"])
                conn.execute(
                    "INSERT OR IGNORE INTO blobs (sha256, size, kind, ext, width, height, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (blob.sha256, blob.size, blob.kind, blob.ext, blob.width, blob.height, now_text()))
                conn.execute("INSERT INTO dataset_files (dataset_id, sha256, filename, added_at) VALUES (?, ?, ?, ?)",
                             (dataset_id, blob.sha256, filename, now_text()))
                conn.execute("UPDATE datasets SET updated_at = ? WHERE id = ?", (now_text(), dataset_id))
        file = self.get_dataset_file(dataset_id, blob.sha256)
        assert file is not None
        return file, added

    def set_caption(self, dataset_id: str, sha256: str, caption: str) -> DatasetFile | None:
        with self._transaction() as conn:
            cursor = conn.execute("UPDATE dataset_files SET caption = ? WHERE dataset_id = ? AND sha256 = ?",
                                  (caption, dataset_id, sha256))
            if cursor.rowcount:
                conn.execute("UPDATE datasets SET updated_at = ? WHERE id = ?", (now_text(), dataset_id))
        return self.get_dataset_file(dataset_id, sha256)

    def delete_dataset(self, dataset_id: str) -> list[str] | None:
        """Remove a dataset's rows; returns the hashes no dataset references any more (their blob rows
        are gone too, the caller removes the files), or None if the dataset is unknown."""
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM datasets WHERE id = ?", (dataset_id,)).fetchone() is None:
                return None
            hashes = [row["sha256"] for row in conn.execute(
                "SELECT sha256 FROM dataset_files WHERE dataset_id = ?", (dataset_id,))]
            conn.execute("DELETE FROM dataset_files WHERE dataset_id = ?", (dataset_id,))
            conn.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))
            orphans = []
            for sha in hashes:
                if conn.execute("SELECT 1 FROM dataset_files WHERE sha256 = ? LIMIT 1", (sha,)).fetchone() is None:
                    conn.execute("DELETE FROM blobs WHERE sha256 = ?", (sha,))
                    orphans.append(sha)
        return orphans

    def referenced_blobs(self) -> set[str]:
        return {row["sha256"] for row in self._query("SELECT sha256 FROM blobs")}

    def dataset_ids(self) -> set[str]:
        return {row["id"] for row in self._query("SELECT id FROM datasets")}


# row mapping -----------------------------------------------------------------------------------
def _split_sql(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _job_from_row(row: sqlite3.Row) -> TrainingJob:
    params = json.loads(row["params"]) if row["params"] else None
    return TrainingJob(
        id=row["id"], name=row["name"], status=row["status"], progress=row["progress"] or 0.0,
        current_step=row["current_step"], total_steps=row["total_steps"], current_loss=row["current_loss"],
        started_at=row["started_at"], created_at=row["created_at"], finished_at=row["finished_at"],
        dataset_id=row["dataset_id"], base_model=row["base_model"], params=params, error=row["error"],
        model_id=row["model_id"],
    )


def _dataset_from_row(row: sqlite3.Row) -> Dataset:
    return Dataset(id=row["id"], user_id=LOCAL_USER, name=row["name"], type=row["type"],
                   image_count=row["image_count"], status=row["status"], created_at=row["created_at"],
                   updated_at=row["updated_at"], error=row["error"])


def _model_from_row(row: sqlite3.Row) -> TrainedModel:
    return TrainedModel(id=row["id"], user_id=LOCAL_USER, name=row["name"], base_model=row["base_model"],
                        training_job_id=row["training_job_id"], status=row["status"], created_at=row["created_at"],
                        updated_at=row["updated_at"], size_bytes=row["size_bytes"], path=row["path"],
                        error=row["error"])


def _blob_from_row(row: sqlite3.Row) -> BlobInfo:
    return BlobInfo(sha256=row["sha256"], size=row["size"], kind=row["kind"], ext=row["ext"], width=row["width"],
                    height=row["height"])


def _file_from_row(row: sqlite3.Row) -> DatasetFile:
    return DatasetFile(sha256=row["sha256"], filename=row["filename"], size=row["size"], width=row["width"],
                       height=row["height"], caption=row["caption"])
