"""Durable state of the embedded server: one SQLite database (WAL) plus the data-dir file layout.

`Storage` owns `studio.db` under the data dir and the paths derived from it (content-addressed blobs,
materialised dataset layouts, job logs and outputs, thumbnails). It is the only code that runs SQL.
Every method is synchronous and thread-safe (one connection behind a re-entrant lock), because the
routes call it from the event loop and the job runner may call it from tasks and threads. Each
write is one transaction, so a failure never leaves a half-written row. The schema carries a version
number and `_MIGRATIONS` upgrades older databases in place; a database from a newer version is refused.
Folders and the database it creates are private (0700/0600) whatever the umask. It also keeps a space
reserve file in the data dir, given up only so that deleting a dataset can commit on a full disk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple

from training_studio.contract import (
    ACTIVE_STATUSES,
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
MAX_DETAIL_CHARS = 200  # a job's `detail`: one short line
DEFAULT_REPEATS = 10  # a dataset's kohya repeats unless set (issue 17); what the app has always used
LayoutName = Literal["kohya", "imagefolder"]
_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)
_ACTIVE = sorted(status.value for status in ACTIVE_STATUSES)
# Disk space set aside in the data dir and given up only so that a dataset delete can commit on a full
# disk (deleting 10,000 files writes about 6 MB of WAL); recreated once there is room again. The size can
# be changed through the environment (the test suite starts hundreds of servers and keeps it small).
RESERVE_NAME = "space-reserve.bin"
RESERVE_BYTES = 8 * 1024 * 1024
RESERVE_BYTES_ENV = "TRAINING_STUDIO_SPACE_RESERVE_BYTES"
# Everything the server creates in the data dir is private to the user, whatever the umask.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# Deletion tombstones kept for resuming clients; older ones are pruned and the horizon moves past them.
MAX_TOMBSTONES = 10_000
_IN_CHUNK = 500  # ids per `IN (…)` query: well under SQLite's bound-variable limit (999 before 3.32)
ChangeKind = Literal["job", "dataset", "model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One committed change that clients care about: the entity's state at `revision`, or None if deleted."""

    kind: ChangeKind
    id: str
    revision: int
    entity: TrainingJob | Dataset | TrainedModel | None


class StorageError(RuntimeError):
    """The database cannot be used (for example it was written by a newer version)."""


class DatasetInUse(RuntimeError):
    """A dataset cannot be deleted: active jobs use it (`job_names`: some of their names)."""

    def __init__(self, dataset_name: str, job_names: list[str]) -> None:
        super().__init__(f"dataset {dataset_name!r} is used by {', '.join(job_names)}")
        self.dataset_name = dataset_name
        self.job_names = job_names


class JobNotFinished(RuntimeError):
    """A job cannot be deleted: it is still pending, queued or running."""

    def __init__(self, job_id: str, name: str, status: str) -> None:
        super().__init__(f"job {job_id} is {status}")
        self.job_id, self.name, self.status = job_id, name, status


class DatasetUnavailable(RuntimeError):
    """A job cannot be created on this dataset: it is gone (`status` None) or not active."""

    def __init__(self, dataset_id: str, name: str | None, status: str | None) -> None:
        super().__init__(f"dataset {dataset_id!r} is {status or 'gone'}")
        self.dataset_id = dataset_id
        self.name = name
        self.status = status


class LayoutRow(NamedTuple):
    """One file of a dataset as its materialised layouts need it (issue 17)."""

    sha256: str
    ext: str
    caption: str
    validation: bool


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
    # version 2: revisions for live updates (server/events.py). One counter in studio_meta, started at a
    # random point in [2^40, 2^41) so a revision from another data dir is almost surely unknown here (below
    # the horizon or ahead of the counter) instead of silently meaning something else; rows that already
    # exist take the starting revision. Deletions leave tombstones so a resuming client learns of them.
    """
    CREATE TABLE studio_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO studio_meta (key, value) VALUES ('revision', (random() & 1099511627775) + 1099511627776);
    INSERT INTO studio_meta (key, value) SELECT 'revision_horizon', value FROM studio_meta WHERE key = 'revision';
    ALTER TABLE jobs ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE datasets ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE models ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    UPDATE jobs SET revision = (SELECT value FROM studio_meta WHERE key = 'revision');
    UPDATE datasets SET revision = (SELECT value FROM studio_meta WHERE key = 'revision');
    UPDATE models SET revision = (SELECT value FROM studio_meta WHERE key = 'revision');
    CREATE INDEX jobs_revision ON jobs(revision);
    CREATE INDEX datasets_revision ON datasets(revision);
    CREATE INDEX models_revision ON models(revision);
    CREATE TABLE deletions (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        PRIMARY KEY (kind, id)
    ) WITHOUT ROWID;
    CREATE INDEX deletions_revision ON deletions(revision);
    """,
    # version 3: what a running job is doing besides training steps (issue 13: a trainer's loading,
    # caching, download or sampling bar), or another status note; null when there is nothing to say.
    """
    ALTER TABLE jobs ADD COLUMN detail TEXT;
    """,
    # version 4: trainers outlive the server (runner/trainer_wrapper.py). Who a running job's wrapper is
    # (pid + process start time: a pid alone may be reused) and how far its output files were read and
    # appended to the job's log, so that a restarted server reads on exactly where it stopped.
    """
    ALTER TABLE jobs ADD COLUMN wrapper_pid INTEGER;
    ALTER TABLE jobs ADD COLUMN wrapper_start_time INTEGER;
    ALTER TABLE jobs ADD COLUMN stdout_offset INTEGER;
    ALTER TABLE jobs ADD COLUMN stderr_offset INTEGER;
    ALTER TABLE jobs ADD COLUMN log_offset INTEGER;
    """,
    # version 5: how a job trains, not only that it does (issue 14). A metric point's other scalars besides
    # the loss (JSON object of name -> number: lr, grad_norm, …; null when there are none), and the moment
    # the server expects the job to finish (ISO 8601 UTC, from the recent step rate; null while estimating).
    """
    ALTER TABLE metrics ADD COLUMN scalars TEXT;
    ALTER TABLE jobs ADD COLUMN eta_at TEXT;
    """,
    # version 6: history, queue control, templates, placement (issue 16). A queued job's place in the queue
    # (lower runs first; null = by creation), whether the user holds it back, an optional job it waits for
    # (and on which outcome: 'finished' or 'completed'), where it runs (JSON), and named job templates.
    """
    ALTER TABLE jobs ADD COLUMN queue_position REAL;
    ALTER TABLE jobs ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN after_job_id TEXT;
    ALTER TABLE jobs ADD COLUMN after_condition TEXT;
    ALTER TABLE jobs ADD COLUMN placement TEXT;
    CREATE INDEX jobs_name_nocase ON jobs(name COLLATE NOCASE, created_at);
    CREATE TABLE job_templates (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        settings TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # version 7: a queued job may wait for a set time before it starts (issue 16, advanced scheduling); and
    # one index per history order (HISTORY_ORDERS: the same expressions, then created_at), so a page in any
    # order walks an index and stops after `limit` rows instead of sorting 100,000.
    """
    ALTER TABLE jobs ADD COLUMN not_before TEXT;
    CREATE INDEX jobs_started_order ON jobs(COALESCE(started_at, ''), created_at);
    CREATE INDEX jobs_finished_order ON jobs(COALESCE(finished_at, ''), created_at);
    CREATE INDEX jobs_progress_order ON jobs(progress, created_at);
    CREATE INDEX jobs_loss_order ON jobs(COALESCE(current_loss, -1e308), created_at);
    """,
    # version 8: the dataset workbench (issue 17). A dataset's kohya repeats (null: the default,
    # layouts.KOHYA_REPEATS), which of its files are held out for validation, and a job's kind ('train' when
    # null, or 'caption': a captioning command run over a dataset).
    """
    ALTER TABLE datasets ADD COLUMN repeats INTEGER;
    ALTER TABLE dataset_files ADD COLUMN validation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN kind TEXT;
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)


# What the history can be sorted by: wire field name -> the SQL expression sorted on (NULLs as '' or -1 so
# keyset comparisons work; names without regard to case, through the jobs_name_nocase index).
HISTORY_ORDERS: dict[str, str] = {
    "createdAt": "created_at",
    "name": "name COLLATE NOCASE",
    "status": "status",
    "startedAt": "COALESCE(started_at, '')",
    "finishedAt": "COALESCE(finished_at, '')",
    "progress": "progress",
    "currentLoss": "COALESCE(current_loss, -1e308)",
}


# A name search matching fewer jobs than this goes through the trigram index; a commoner one walks the order.
RARE_NAME_MATCHES = 2000


def new_id() -> str:
    return uuid.uuid4().hex


def now_text() -> str:
    return format_timestamp(utc_now())


class Storage:
    """SQLite-backed store of jobs, metrics, datasets, blobs and models under one data dir."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        make_private_dir(self.data_dir)
        for sub in ("blobs", "datasets", "logs", "jobs", "thumbnails", "tmp"):
            make_private_dir(self.data_dir / sub)
        self.db_path = self.data_dir / "studio.db"
        # Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database's mode.
        _create_private_file(self.db_path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._last_job_created: datetime | None = None
        # Live updates: the changes of the transaction in progress, and who hears of them once committed.
        self._changes: list[Change] = []
        self._change_listener: Callable[[list[Change]], None] | None = None
        self._migrate()
        self._prune_tombstones()
        self._name_search = self._ensure_name_search()

    def _ensure_name_search(self) -> bool:
        """A trigram full-text index of job names (issue 16: the history's search over 100,000 jobs must not
        scan them all), kept by triggers. It is an optional extra, not a migration: an SQLite without FTS5's
        trigram tokenizer (before 3.34) keeps working with a plain LIKE scan. Built from the jobs table the
        first time (one pass; later starts find it there)."""
        statements = [
            "CREATE VIRTUAL TABLE jobs_name_fts USING fts5(name, content='jobs', content_rowid='rowid', "
            "tokenize='trigram')",
            "CREATE TRIGGER jobs_name_fts_insert AFTER INSERT ON jobs BEGIN "
            "INSERT INTO jobs_name_fts(rowid, name) VALUES (new.rowid, new.name); END",
            "CREATE TRIGGER jobs_name_fts_delete AFTER DELETE ON jobs BEGIN "
            "INSERT INTO jobs_name_fts(jobs_name_fts, rowid, name) VALUES ('delete', old.rowid, old.name); END",
            "CREATE TRIGGER jobs_name_fts_update AFTER UPDATE OF name ON jobs BEGIN "
            "INSERT INTO jobs_name_fts(jobs_name_fts, rowid, name) VALUES ('delete', old.rowid, old.name); "
            "INSERT INTO jobs_name_fts(rowid, name) VALUES (new.rowid, new.name); END",
            "INSERT INTO jobs_name_fts(jobs_name_fts) VALUES ('rebuild')",
        ]
        try:
            with self._transaction() as conn:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs_name_fts'").fetchone():
                    return True
                for statement in statements:
                    conn.execute(statement)
            return True
        except sqlite3.OperationalError as exc:  # no FTS5 or no trigram tokenizer in this SQLite
            log.info("job name search without an index (%s)", exc)
            return False

    # plumbing --------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._changes = []
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._changes = []
                # Also when COMMIT itself failed (disk full): the connection must not stay mid-transaction.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            changes, self._changes = self._changes, []
            # Still under the lock: listeners hear of commits in revision order, whatever thread wrote.
            if changes and self._change_listener is not None:
                try:
                    self._change_listener(changes)
                except Exception:  # a listener's bug must not turn a committed write into an error
                    log.exception("the change listener failed")

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

    # revisions (live updates) ------------------------------------------------------------------
    def set_change_listener(self, listener: Callable[[list[Change]], None] | None) -> None:
        """Call `listener(changes)` after each committed write that changed jobs, datasets or models.

        It runs in the writer's thread while the storage lock is still held (so calls arrive in revision
        order): it must be quick and must not call back into this storage.
        """
        with self._lock:
            self._change_listener = listener

    def _next_revision(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("UPDATE studio_meta SET value = value + 1 WHERE key = 'revision' RETURNING value").fetchone()
        return int(row[0])

    def _next_revisions(self, conn: sqlite3.Connection, count: int) -> range:
        """`count` consecutive revisions, taken in one statement."""
        row = conn.execute("UPDATE studio_meta SET value = value + ? WHERE key = 'revision' RETURNING value",
                           (count,)).fetchone()
        return range(int(row[0]) - count + 1, int(row[0]) + 1)

    def _note_changes(self, conn: sqlite3.Connection, kind: ChangeKind, stamped: list[tuple[str, int]]) -> None:
        """Inside a write's transaction, after rows were stamped with their (ascending) revisions: note their
        new states for listeners, as _changed does for one row."""
        if self._change_listener is None:
            return
        table = _TABLE_OF[kind]
        rows: dict[str, sqlite3.Row] = {}
        for start in range(0, len(stamped), _IN_CHUNK):
            chunk = [entity_id for entity_id, _ in stamped[start:start + _IN_CHUNK]]
            for row in conn.execute(f"SELECT * FROM {table} WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                rows[row["id"]] = row
        for entity_id, revision in stamped:
            row = rows.get(entity_id)
            if row is not None:
                self._changes.append(Change(kind, entity_id, revision, _FROM_ROW[kind](row)))

    def _changed(self, conn: sqlite3.Connection, kind: ChangeKind, entity_id: str) -> int:
        """Inside a write's transaction: stamp the changed row with the next revision, note it for listeners."""
        revision = self._next_revision(conn)
        table = _TABLE_OF[kind]
        conn.execute(f"UPDATE {table} SET revision = ? WHERE id = ?", (revision, entity_id))
        if self._change_listener is not None:
            row = conn.execute(f"SELECT * FROM {table} WHERE id = ?", (entity_id,)).fetchone()
            if row is not None:
                self._changes.append(Change(kind, entity_id, revision, _FROM_ROW[kind](row)))
        return revision

    def _deleted(self, conn: sqlite3.Connection, kind: ChangeKind, entity_id: str) -> int:
        """Inside a delete's transaction: leave a tombstone at the next revision, note it for listeners."""
        revision = self._next_revision(conn)
        conn.execute("INSERT OR REPLACE INTO deletions (kind, id, revision) VALUES (?, ?, ?)", (kind, entity_id, revision))
        if self._change_listener is not None:
            self._changes.append(Change(kind, entity_id, revision, None))
        return revision

    def current_revision(self) -> int:
        return int(self._query("SELECT value FROM studio_meta WHERE key = 'revision'")[0]["value"])

    def revision_horizon(self) -> int:
        """The oldest revision a client may resume from: changes after it are all still answerable."""
        return int(self._query("SELECT value FROM studio_meta WHERE key = 'revision_horizon'")[0]["value"])

    def revision_known(self, revision: int) -> bool:
        with self._lock:
            return self.revision_horizon() <= revision <= self.current_revision()

    def changes_since(self, revision: int, limit: int) -> tuple[int, list[Change]] | None:
        """(current revision, the latest state of every entity changed after `revision`, oldest change first),
        or None when more than `limit` entities changed (a full fetch is cheaper for the client then).
        The caller has checked `revision_known`."""
        with self._lock:
            current = self.current_revision()
            counts = self._conn.execute(
                "SELECT (SELECT COUNT(*) FROM jobs WHERE revision > ?1) + (SELECT COUNT(*) FROM datasets WHERE"
                " revision > ?1) + (SELECT COUNT(*) FROM models WHERE revision > ?1) + (SELECT COUNT(*) FROM"
                " deletions WHERE revision > ?1)", (revision,)).fetchone()
            if counts[0] > limit:
                return None
            changes: list[Change] = []
            for kind, table in _TABLE_OF.items():
                for row in self._conn.execute(f"SELECT * FROM {table} WHERE revision > ?", (revision,)):
                    changes.append(Change(kind, row["id"], row["revision"], _FROM_ROW[kind](row)))
            for row in self._conn.execute("SELECT kind, id, revision FROM deletions WHERE revision > ?", (revision,)):
                changes.append(Change(row["kind"], row["id"], row["revision"], None))
        changes.sort(key=lambda change: change.revision)
        return current, changes

    def jobs_changed_since(self, revision: int, limit: int = -1) -> list[TrainingJob]:
        """Jobs whose stored state changed after `revision`, whatever their status, oldest change first;
        at most `limit` of them (-1: all)."""
        rows = self._query("SELECT * FROM jobs WHERE revision > ? ORDER BY revision LIMIT ?", (revision, limit))
        return [_job_from_row(row) for row in rows]

    def _prune_tombstones(self) -> None:
        # Bounded table: past MAX_TOMBSTONES the oldest go, and resuming from before them becomes `reset`.
        with self._transaction() as conn:
            row = conn.execute("SELECT revision FROM deletions ORDER BY revision DESC LIMIT 1 OFFSET ?",
                               (MAX_TOMBSTONES,)).fetchone()
            if row is None:
                return
            conn.execute("DELETE FROM deletions WHERE revision <= ?", (row["revision"],))
            conn.execute("UPDATE studio_meta SET value = MAX(value, ?) WHERE key = 'revision_horizon'",
                         (row["revision"],))

    # space reserve ---------------------------------------------------------------------------
    @property
    def reserve_path(self) -> Path:
        return self.data_dir / RESERVE_NAME

    def ensure_reserve(self) -> bool:
        """Set `reserve_bytes()` of disk space aside (really allocated, so a full disk cannot take it), if not
        already; False when there is no room for it now. Blocking."""
        wanted = reserve_bytes()
        if wanted == 0:
            return True  # configured without a reserve
        try:
            if self.reserve_path.stat().st_size >= wanted:
                return True
        except FileNotFoundError:
            pass
        building = self.reserve_path.with_name(f".{RESERVE_NAME}.new")
        try:
            fd = os.open(building, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                # Incompressible bytes: a compressing filesystem must not store the reserve in a few blocks.
                block = os.urandom(min(wanted, 1024 * 1024))
                for start in range(0, wanted, len(block)):
                    handle.write(block[:wanted - start])
            os.replace(building, self.reserve_path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                building.unlink()
            log.warning("no room for the space reserve in %s (%s): deleting a dataset on a full disk may fail "
                        "until there is", self.data_dir, exc)
            return False
        return True

    def release_reserve(self) -> bool:
        """Give the reserved space back to the filesystem; False if there was no reserve."""
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            return False
        return True

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

    def model_dir(self, model_id: str) -> Path:
        """Where a model's files go when its training job is deleted (issue 16): `models/<model id>/`."""
        return self.data_dir / "models" / model_id

    def model_folder(self, model: TrainedModel) -> Path | None:
        """The folder holding a model's files: its own once its job was deleted, else its job's."""
        own = self.model_dir(model.id)
        if own.is_dir():
            return own
        if model.training_job_id:
            return self.job_output_dir(model.training_job_id)
        return None

    def model_samples_path(self, model: TrainedModel) -> Path | None:
        """Where a model's trainer leaves its sample sheet: samples.png beside the checkpoint."""
        folder = self.model_folder(model)
        if folder is not None:
            return folder / "samples.png"
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
                   params: dict[str, Any] | None, *, require_active_dataset: bool = False,
                   kind: str | None = None) -> TrainingJob:
        """Insert a pending job. With `require_active_dataset`, DatasetUnavailable unless its dataset exists
        and is active, checked in the same transaction as the insert: a concurrent `delete_dataset` either
        sees this job (and refuses) or has removed the dataset first (and this refuses)."""
        job_id = new_id()
        with self._transaction() as conn:
            if require_active_dataset and dataset_id is not None:
                row = conn.execute("SELECT name, status FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
                if row is None or row["status"] != "active":
                    raise DatasetUnavailable(dataset_id, row["name"] if row else None, row["status"] if row else None)
            created = self._next_job_timestamp()
            conn.execute(
                "INSERT INTO jobs (id, name, status, progress, total_steps, created_at, dataset_id, base_model, params,"
                " kind) VALUES (?, ?, 'pending', 0, ?, ?, ?, ?, ?, ?)",
                (job_id, name, total_steps, created, dataset_id, base_model,
                 json.dumps(params) if params is not None else None, kind),
            )
            self._changed(conn, "job", job_id)
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

    def job_ids_with_status(self, statuses: Iterable[str | JobStatus]) -> list[str]:
        """The ids of `jobs_with_status`, same order, without building the jobs (a server start at 1,000
        waiting jobs: about 2 ms instead of 30)."""
        wanted = [str(s) for s in statuses]
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        return [row["id"] for row in self._query(
            f"SELECT id FROM jobs WHERE status IN ({marks}) ORDER BY created_at ASC, rowid ASC", wanted)]

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

    def job_history(self, statuses: Iterable[str | JobStatus] | None, *, limit: int, order: str = "-createdAt",
                    before: str | None = None, after: str | None = None, query: str | None = None,
                    cursor: tuple[Any, str] | None = None) -> tuple[list[TrainingJob], tuple[Any, str] | None]:
        """One page of the history, sorted and filtered here so paging stays correct whatever the order.

        `order` is a wire field name (HISTORY_ORDERS), `-` first for descending; ties go by createdAt (distinct
        per job), so the page after the one ending at (key, createdAt) is exactly the rows beyond that pair
        (keyset paging: no OFFSET, so the 1,000th page costs what the first does). `before`/`after` bound
        createdAt (after < createdAt < before); `query` matches names containing it, case-insensitively.
        Returns the page and the cursor of its last row when more may follow."""
        descending = order.startswith("-")
        key = HISTORY_ORDERS[order.lstrip("-")]
        clauses: list[str] = []
        args: list[Any] = []
        if statuses is not None:
            wanted = [str(s) for s in statuses]
            if not wanted:
                return [], None
            # Finished jobs are most of a long history: then walking the order's index and skipping the
            # few rows of other statuses beats collecting all matches through the status index and
            # sorting them ("+status" keeps SQLite off that index). Only active statuses are rare enough
            # for the status index to win.
            walk_order = key != "status" and any(status in _TERMINAL for status in wanted)
            column = "+status" if walk_order else "status"
            clauses.append(f"{column} IN ({','.join('?' * len(wanted))})")
            args.extend(wanted)
        if before is not None:
            clauses.append("created_at < ?")
            args.append(before)
        if after is not None:
            clauses.append("created_at > ?")
            args.append(after)
        phrase = '"' + query.replace('"', '""') + '"' if query else ""
        if query and self._name_search and len(query) >= 3 and (not query.isascii() or self._rare_name(phrase)):
            # A trigram phrase is a substring match (any case, Unicode folded) answered by the index without
            # reading every name. For a text that many names contain, walking the order's index with LIKE
            # finds a page's worth sooner than collecting every match (below).
            clauses.append("rowid IN (SELECT rowid FROM jobs_name_fts WHERE jobs_name_fts MATCH ?)")
            args.append(phrase)
        elif query:
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append("name LIKE ? ESCAPE '\\'")
            args.append(f"%{escaped}%")
        if cursor is not None:
            clauses.append(f"({key}, created_at) {'<' if descending else '>'} (?, ?)")
            args.extend(cursor)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        direction = "DESC" if descending else "ASC"
        rows = self._query(f"SELECT *, {key} AS sort_key FROM jobs {where} "
                           f"ORDER BY {key} {direction}, created_at {direction} LIMIT ?", [*args, int(limit) + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = (rows[-1]["sort_key"], rows[-1]["created_at"]) if more and rows else None
        return [_job_from_row(row) for row in rows], next_cursor

    def _rare_name(self, phrase: str) -> bool:
        """Whether fewer than RARE_NAME_MATCHES names contain the phrase (the index stops counting there)."""
        rows = self._query("SELECT count(*) AS n FROM (SELECT 1 FROM jobs_name_fts WHERE jobs_name_fts MATCH ? "
                           "LIMIT ?)", (phrase, RARE_NAME_MATCHES))
        return rows[0]["n"] < RARE_NAME_MATCHES

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
            if status != "running":
                sets.append("eta_at = NULL")  # an ETA only exists while the job runs (issue 14)
            if status in _TERMINAL:
                sets.append("finished_at = ?")
                args.append(finished_at or now_text())
                sets.append("pid = NULL, pgid = NULL, detail = NULL")  # a phase note ends with the job
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
            self._changed(conn, "job", job_id)
        return self.get_job(job_id)

    def delete_job(self, job_id: str) -> TrainingJob | None:
        """Remove a finished job's row and metrics, leaving a tombstone (clients drop its row). None if
        unknown; JobNotFinished if it is pending, queued or running. Its files are the caller's business."""
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if row["status"] not in _TERMINAL:
                raise JobNotFinished(job_id, row["name"], row["status"])
            conn.execute("DELETE FROM metrics WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            self._deleted(conn, "job", job_id)
        return _job_from_row(row)

    # queue control (issue 16) ----------------------------------------------------------------
    def enqueue_job(self, job_id: str) -> TrainingJob | None:
        """pending → queued, at the end of the queue (a job queued before keeps its place: a restart does
        not reorder). None if the job is unknown or no longer pending/queued."""
        if not self.enqueue_jobs([job_id]):
            return None
        return self.get_job(job_id)

    def enqueue_jobs(self, job_ids: Iterable[str]) -> list[str]:
        """`enqueue_job` for many jobs in one transaction (a server start takes over every waiting job at
        once: one commit instead of one per job, about 0.3 s at 1,000 jobs). Returns the ids now waiting,
        in the order given."""
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return []
        accepted: list[str] = []
        with self._transaction() as conn:
            found: dict[str, sqlite3.Row] = {}
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start:start + _IN_CHUNK]
                for row in conn.execute("SELECT id, status, queue_position FROM jobs WHERE id IN "
                                        f"({','.join('?' * len(chunk))})", chunk):
                    found[row["id"]] = row
            last: int | None = None
            moved: list[tuple[int, str]] = []  # (queue position, id) of each job this call changes
            for job_id in ids:
                row = found.get(job_id)
                if row is None or row["status"] not in ("pending", "queued"):
                    continue
                accepted.append(job_id)
                if row["status"] == "queued" and row["queue_position"] is not None:
                    continue
                position = row["queue_position"]
                if position is None:
                    if last is None:
                        last = conn.execute("SELECT MAX(queue_position) AS last FROM jobs "
                                            "WHERE status IN ('pending', 'queued')").fetchone()["last"] or 0
                    last += 1
                    position = last
                moved.append((position, job_id))
            if moved:
                # One statement for all of them, each stamped with its own revision (what _changed does for
                # one): at a start with 1,000 waiting jobs, four statements per job were most of the time.
                revisions = self._next_revisions(conn, len(moved))
                conn.executemany("UPDATE jobs SET status = 'queued', queue_position = ?, revision = ? WHERE id = ?",
                                 [(position, revision, job_id)
                                  for (position, job_id), revision in zip(moved, revisions)])
                self._note_changes(conn, "job", [(job_id, revision)
                                                 for (_, job_id), revision in zip(moved, revisions)])
        return accepted

    def queue_rows(self, job_ids: Iterable[str]) -> list[sqlite3.Row]:
        """The waiting jobs among `job_ids` in run order (position, then creation), with what each waits
        for: `after_status` is the status of the job it waits for (None when that job is gone)."""
        ids = list(job_ids)
        if not ids:
            return []
        return self._query(
            "SELECT j.id, j.name, j.status, j.held, j.after_job_id, j.after_condition, j.not_before, "
            "a.status AS after_status, a.name AS after_name FROM jobs j LEFT JOIN jobs a ON a.id = j.after_job_id "
            f"WHERE j.id IN ({','.join('?' * len(ids))}) AND j.status IN ('pending', 'queued') "
            "ORDER BY j.queue_position IS NULL, j.queue_position, j.created_at", ids)

    def move_in_queue(self, job_id: str, *, to: str | None = None, before_job_id: str | None = None) -> bool:
        """Reorder the queue: `to` top/up/down/bottom, or just before another queued job (None = last).
        Every waiting job is renumbered 1..n in one transaction. False if the job is not waiting."""
        with self._transaction() as conn:
            order = [row["id"] for row in conn.execute(
                "SELECT id FROM jobs WHERE status IN ('pending', 'queued') "
                "ORDER BY queue_position IS NULL, queue_position, created_at")]
            if job_id not in order:
                return False
            index = order.index(job_id)
            order.pop(index)
            if to == "top":
                order.insert(0, job_id)
            elif to == "up":
                order.insert(max(0, index - 1), job_id)
            elif to == "down":
                order.insert(min(len(order), index + 1), job_id)
            elif to == "bottom":
                order.append(job_id)
            elif before_job_id is not None and before_job_id in order:
                order.insert(order.index(before_job_id), job_id)
            else:
                order.append(job_id)
            current = {row["id"]: row["queue_position"] for row in conn.execute(
                f"SELECT id, queue_position FROM jobs WHERE id IN ({','.join('?' * len(order))})", order)}
            for position, moved_id in enumerate(order, start=1):
                if current.get(moved_id) != position:
                    conn.execute("UPDATE jobs SET queue_position = ? WHERE id = ?", (position, moved_id))
                    self._changed(conn, "job", moved_id)
        return True

    def set_job_schedule(self, job_id: str, **fields: Any) -> TrainingJob | None:
        """Set any of held, after_job_id, after_condition, not_before on a waiting job; None if it is not
        waiting (running and finished jobs cannot be rescheduled)."""
        allowed = {"held", "after_job_id", "after_condition", "not_before"}
        assert set(fields) <= allowed, fields
        with self._transaction() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] not in ("pending", "queued"):
                return None
            if fields:
                sets = ", ".join(f"{name} = ?" for name in fields)
                values = [int(v) if isinstance(v, bool) else v for v in fields.values()]
                conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*values, job_id])
                self._changed(conn, "job", job_id)
        return self.get_job(job_id)

    def set_job_placement(self, job_id: str, placement: dict[str, Any] | None) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE jobs SET placement = ? WHERE id = ?",
                         (json.dumps(placement) if placement is not None else None, job_id))
            self._changed(conn, "job", job_id)

    def set_job_process(self, job_id: str, pid: int | None, pgid: int | None) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE jobs SET pid = ?, pgid = ? WHERE id = ?", (pid, pgid, job_id))

    def set_job_wrapper(self, job_id: str, pid: int, start_time: int | None, log_offset: int | None) -> None:
        """Record a running job's trainer wrapper, with its output not read yet (internal: no revision)."""
        with self._transaction() as conn:
            conn.execute("UPDATE jobs SET wrapper_pid = ?, wrapper_start_time = ?, stdout_offset = 0,"
                         " stderr_offset = 0, log_offset = ? WHERE id = ?", (pid, start_time, log_offset, job_id))

    def job_wrapper(self, job_id: str) -> tuple[int | None, int | None, int, int, int | None] | None:
        """(wrapper pid, its start time, stdout offset, stderr offset, log offset) of a job, or None when
        no wrapper was ever recorded for it."""
        rows = self._query("SELECT wrapper_pid, wrapper_start_time, stdout_offset, stderr_offset, log_offset"
                           " FROM jobs WHERE id = ?", (job_id,))
        if not rows or rows[0]["wrapper_pid"] is None:
            return None
        row = rows[0]
        return (row["wrapper_pid"], row["wrapper_start_time"], row["stdout_offset"] or 0,
                row["stderr_offset"] or 0, row["log_offset"])

    def save_output_offsets(self, job_id: str, stdout: int, stderr: int, log: int | None) -> None:
        """How far a job's trainer output has been read and recorded (internal: no revision)."""
        with self._transaction() as conn:
            conn.execute("UPDATE jobs SET stdout_offset = ?, stderr_offset = ?, log_offset = ? WHERE id = ?",
                         (int(stdout), int(stderr), log, job_id))

    def job_process(self, job_id: str) -> tuple[int | None, int | None] | None:
        rows = self._query("SELECT pid, pgid FROM jobs WHERE id = ?", (job_id,))
        if not rows or (rows[0]["pid"] is None and rows[0]["pgid"] is None):
            return None
        return rows[0]["pid"], rows[0]["pgid"]

    def record_progress(self, points: Sequence[tuple[Any, ...]],
                        etas: Mapping[str, str | None] | None = None) -> None:
        """Append metric points and move each job's live fields to its latest point, in one transaction.

        A point is (job_id, step, total_steps, loss, iso_time) or (..., iso_time, scalars) with scalars a
        dict name -> number (the trainer's other series: lr, grad_norm...) or None. Jobs already terminal
        keep their fields. The stored step and progress never go backwards (a late or repeated point cannot
        undo progress); the total changes only when a point states a different one (logged); a point without
        a loss never replaces the loss already stored for its step, nor one without scalars its scalars.
        `etas`: job id -> its new `eta_at` (ISO text, or None to clear it), written with the same update;
        a job not in it keeps its ETA.
        """
        if not points:
            return
        latest: dict[str, tuple[int, int | None, float | None]] = {}
        rows = []
        for point in points:
            job_id, step, total, loss, time = point[:5]
            step, loss = int(step), _finite_or_none(loss)
            rows.append((job_id, step, loss, time, _scalars_text(point[5] if len(point) > 5 else None)))
            before = latest.get(job_id)
            if before is not None:
                step = max(step, before[0])
                total = total or before[1]
                loss = loss if loss is not None else before[2]
            latest[job_id] = (step, total, loss)
        etas = dict(etas or {})
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO metrics (job_id, step, loss, time, scalars) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (job_id, step) DO UPDATE SET loss = COALESCE(excluded.loss, metrics.loss),"
                " scalars = COALESCE(excluded.scalars, metrics.scalars),"
                " time = CASE WHEN excluded.loss IS NOT NULL OR metrics.loss IS NULL THEN excluded.time"
                " ELSE metrics.time END"
                " WHERE excluded.loss IS NOT NULL OR metrics.loss IS NULL OR excluded.scalars IS NOT NULL",
                rows,
            )
            for job_id, (step, total, loss) in latest.items():
                row = conn.execute("SELECT status, current_step, total_steps, current_loss, progress FROM jobs"
                                   " WHERE id = ?", (job_id,)).fetchone()
                if row is None or row["status"] in _TERMINAL:
                    continue
                step = max(step, row["current_step"] or 0)
                total_steps = row["total_steps"]
                if total and total != total_steps:
                    log.info("job %s: the trainer counts %d steps, not %s: the job's total is now %d",
                             job_id, total, total_steps, total)
                    total_steps = total
                current_loss = loss if loss is not None else row["current_loss"]
                progress = 0.0
                if total_steps:
                    progress = min(100.0 * step / total_steps, PROGRESS_CAP_BEFORE_COMPLETION)
                progress = max(progress, row["progress"] or 0.0)
                sets = "current_step = ?, total_steps = ?, current_loss = ?, progress = ?"
                args: list[Any] = [step, total_steps, current_loss, max(0.0, progress)]
                if job_id in etas:
                    sets += ", eta_at = ?"
                    args.append(etas[job_id])
                conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*args, job_id])
                self._changed(conn, "job", job_id)

    def set_job_detail(self, job_id: str, detail: str | None) -> TrainingJob | None:
        """Set what a job is doing besides training steps ("loading image sizes 16/16") or another status
        note; None clears it. None (nothing written) if the job is unknown or terminal."""
        detail = " ".join(detail.split())[:MAX_DETAIL_CHARS] or None if detail else None
        with self._transaction() as conn:
            row = conn.execute("SELECT status, detail FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] in _TERMINAL:
                return None
            if row["detail"] != detail:
                conn.execute("UPDATE jobs SET detail = ? WHERE id = ?", (detail, job_id))
                self._changed(conn, "job", job_id)
        return self.get_job(job_id)

    def metrics(self, job_id: str, since_step: int = -1, stride: int = 1) -> list[MetricPoint]:
        """Points with step > since_step, ascending; every stride-th one plus always the latest."""
        return [MetricPoint.model_validate(point) for point in self.metrics_wire(job_id, since_step, stride)]

    def metrics_wire(self, job_id: str, since_step: int = -1, stride: int = 1) -> list[dict[str, Any]]:
        """`metrics()` as wire dicts: `{step, loss, time}` plus `scalars` only for a point that has some."""
        points: list[dict[str, Any]] = []
        for step, loss, time, scalars in self._metric_rows(job_id, since_step, stride):
            point: dict[str, Any] = {"step": step, "loss": loss, "time": time}
            parsed = _scalars_from_text(scalars) if scalars else None
            if parsed:
                point["scalars"] = parsed
            points.append(point)
        return points

    def metrics_json(self, job_id: str, since_step: int = -1, stride: int = 1) -> str:
        """`metrics_wire()` as the JSON text of the answer, built without parsing each point's stored
        series again (a job may have a million points): the stored text is JSON this class wrote itself
        (a flat object of finite numbers, see `_scalars_text`)."""
        parts = []
        for step, loss, time, scalars in self._metric_rows(job_id, since_step, stride):
            loss_text = "null" if loss is None else float.__repr__(float(loss))
            scalars_text = f',"scalars":{scalars}' if scalars and scalars.startswith("{") and scalars != "{}" else ""
            parts.append(f'{{"step":{int(step)},"loss":{loss_text},"time":{_json_text(time)}{scalars_text}}}')
        return "[" + ",".join(parts) + "]"

    def _metric_rows(self, job_id: str, since_step: int, stride: int) -> list[sqlite3.Row]:
        """(step, loss, time, scalars text) with step > since_step, ascending; every stride-th one plus
        always the latest."""
        stride = max(1, int(stride))
        if stride == 1:  # the common case (live updates): no window over the whole series
            rows = self._query("SELECT step, loss, time, scalars FROM metrics WHERE job_id = ? AND step > ?"
                               " ORDER BY step", (job_id, int(since_step)))
        else:
            # The steps alone come from the primary key's b-tree (no row reads); only the chosen rows are read
            # after that. A window function over every row cost ten times as much at 100,000 points.
            with self._lock:
                steps = [row[0] for row in self._conn.execute(
                    "SELECT step FROM metrics WHERE job_id = ? AND step > ? ORDER BY step", (job_id, int(since_step)))]
                chosen = steps[::stride]
                if steps and chosen[-1] != steps[-1]:
                    chosen.append(steps[-1])
                rows = []
                for start in range(0, len(chosen), 500):
                    part = chosen[start:start + 500]
                    rows.extend(self._conn.execute(
                        f"SELECT step, loss, time, scalars FROM metrics WHERE job_id = ? AND step IN "
                        f"({','.join('?' * len(part))}) ORDER BY step", (job_id, *part)))
        return rows

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
            self._changed(conn, "model", model_id)
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
            if conn.execute(f"UPDATE models SET {', '.join(sets)} WHERE id = ?", [*args, model_id]).rowcount:
                self._changed(conn, "model", model_id)
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
            self._deleted(conn, "model", model_id)
            orphaned_jobs = [job["id"] for job in conn.execute("SELECT id FROM jobs WHERE model_id = ?", (model_id,))]
            conn.execute("UPDATE jobs SET model_id = NULL WHERE model_id = ?", (model_id,))
            for job_id in orphaned_jobs:
                self._changed(conn, "job", job_id)  # their modelId is gone
        return _model_from_row(row)

    # job templates (issue 16) ----------------------------------------------------------------
    def save_template(self, name: str, settings: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create the template `name`, or replace the settings of the one already called that (names are
        unique without regard to case). Returns the stored row as a dict and whether it was created."""
        now = now_text()
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM job_templates WHERE name = ?", (name,)).fetchone()
            if row is None:
                template_id = new_id()
                conn.execute("INSERT INTO job_templates (id, name, settings, created_at, updated_at) "
                             "VALUES (?, ?, ?, ?, ?)", (template_id, name, json.dumps(settings), now, now))
                created = True
            else:
                template_id = row["id"]
                conn.execute("UPDATE job_templates SET name = ?, settings = ?, updated_at = ? WHERE id = ?",
                             (name, json.dumps(settings), now, template_id))
                created = False
            stored = conn.execute("SELECT * FROM job_templates WHERE id = ?", (template_id,)).fetchone()
        return _template_from_row(stored), created

    def list_templates(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM job_templates ORDER BY name COLLATE NOCASE")
        return [_template_from_row(row) for row in rows]

    def get_template(self, template_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM job_templates WHERE id = ?", (template_id,))
        return _template_from_row(rows[0]) if rows else None

    def delete_template(self, template_id: str) -> bool:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM job_templates WHERE id = ?", (template_id,)).rowcount > 0

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
            self._changed(conn, "dataset", dataset_id)
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
                cursor = conn.execute("UPDATE datasets SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                                      (status, error, now_text(), dataset_id))
            else:
                cursor = conn.execute("UPDATE datasets SET status = ?, error = ?, image_count = ?, updated_at = ?"
                                      " WHERE id = ?", (status, error, image_count, now_text(), dataset_id))
            if cursor.rowcount:
                self._changed(conn, "dataset", dataset_id)
        return self.get_dataset(dataset_id)

    def get_blob(self, sha256: str) -> BlobInfo | None:
        rows = self._query("SELECT * FROM blobs WHERE sha256 = ?", (sha256,))
        return _blob_from_row(rows[0]) if rows else None

    def dataset_files(self, dataset_id: str) -> list[DatasetFile]:
        rows = self._query(
            "SELECT f.sha256, f.filename, f.caption, f.validation, b.size, b.width, b.height FROM dataset_files f"
            " JOIN blobs b ON b.sha256 = f.sha256 WHERE f.dataset_id = ? ORDER BY f.position", (dataset_id,))
        return [_file_from_row(row) for row in rows]

    def dataset_file_entries(self, dataset_id: str) -> list[tuple[DatasetFile, BlobInfo]]:
        rows = self._query(
            "SELECT f.filename, f.caption, f.validation, b.* FROM dataset_files f JOIN blobs b ON b.sha256 = f.sha256"
            " WHERE f.dataset_id = ? ORDER BY f.position", (dataset_id,))
        return [(_file_from_row(row), _blob_from_row(row)) for row in rows]

    def get_dataset_file(self, dataset_id: str, sha256: str) -> DatasetFile | None:
        rows = self._query(
            "SELECT f.sha256, f.filename, f.caption, f.validation, b.size, b.width, b.height FROM dataset_files f"
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
        are gone too, the caller removes the files afterwards: rows go first, so an active dataset never
        lists a file that is missing), or None if the dataset is unknown.

        DatasetInUse, with nothing removed, while an active job uses the dataset; checked in the same
        transaction as the removal (see `create_job`). Deleting is the in-app way to free space, so on a
        full disk, where the transaction fails because the WAL must grow first, the space reserve is
        released and the transaction tried once more.
        """
        try:
            return self._delete_dataset_rows(dataset_id)
        except sqlite3.OperationalError as exc:
            if not _is_sqlite_disk_full(exc) or not self.release_reserve():
                raise
            log.warning("disk full while deleting dataset %s: released the space reserve, trying again", dataset_id)
        return self._delete_dataset_rows(dataset_id)

    def _delete_dataset_rows(self, dataset_id: str) -> list[str] | None:
        with self._transaction() as conn:
            row = conn.execute("SELECT name FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
            if row is None:
                return None
            users = conn.execute(
                f"SELECT name FROM jobs WHERE dataset_id = ? AND status IN ({','.join('?' * len(_ACTIVE))})"
                " ORDER BY created_at LIMIT 3", [dataset_id, *_ACTIVE]).fetchall()
            if users:
                raise DatasetInUse(row["name"], [user["name"] for user in users])
            hashes = [row["sha256"] for row in conn.execute(
                "SELECT sha256 FROM dataset_files WHERE dataset_id = ?", (dataset_id,))]
            conn.execute("DELETE FROM dataset_files WHERE dataset_id = ?", (dataset_id,))
            conn.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))
            self._deleted(conn, "dataset", dataset_id)
            orphans = []
            for sha in hashes:
                if conn.execute("SELECT 1 FROM dataset_files WHERE sha256 = ? LIMIT 1", (sha,)).fetchone() is None:
                    conn.execute("DELETE FROM blobs WHERE sha256 = ?", (sha,))
                    orphans.append(sha)
        return orphans

    # dataset workbench (issue 17) -----------------------------------------------------------------
    def dataset_captions(self, dataset_id: str) -> list[tuple[str, str]]:
        """(sha256, caption or "") of every file of a dataset, in dataset order: what a batch edit reads."""
        rows = self._query("SELECT sha256, caption FROM dataset_files WHERE dataset_id = ? ORDER BY position",
                           (dataset_id,))
        return [(row["sha256"], row["caption"] or "") for row in rows]

    def dataset_layout_rows(self, dataset_id: str) -> list[LayoutRow]:
        """What the layouts are built from (server/layouts.py), in dataset order; plain tuples, because a
        batch caption edit rebuilds 10,000 of them within its second."""
        rows = self._query("SELECT f.sha256, b.ext, f.caption, f.validation FROM dataset_files f"
                           " JOIN blobs b ON b.sha256 = f.sha256 WHERE f.dataset_id = ? ORDER BY f.position",
                           (dataset_id,))
        return [LayoutRow(row[0], row[1], row[2] or "", bool(row[3])) for row in rows]

    def dataset_sizes(self, dataset_id: str) -> list[tuple[str, int | None, int | None]]:
        """(sha256, width, height) of every file of a dataset, in dataset order (bucket statistics)."""
        rows = self._query("SELECT f.sha256, b.width, b.height FROM dataset_files f JOIN blobs b ON b.sha256 = f.sha256"
                           " WHERE f.dataset_id = ? ORDER BY f.position", (dataset_id,))
        return [(row[0], row[1], row[2]) for row in rows]

    def set_captions(self, dataset_id: str, captions: Mapping[str, str]) -> bool:
        """Set many captions in one transaction (all or none); False if the dataset is gone. Files of other
        datasets are untouched: the caller checked that every hash belongs to this one."""
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM datasets WHERE id = ?", (dataset_id,)).fetchone() is None:
                return False
            conn.executemany("UPDATE dataset_files SET caption = ? WHERE dataset_id = ? AND sha256 = ?",
                             [(caption, dataset_id, sha) for sha, caption in captions.items()])
            conn.execute("UPDATE datasets SET updated_at = ? WHERE id = ?", (now_text(), dataset_id))
            self._changed(conn, "dataset", dataset_id)
        return True

    def set_dataset_training_split(self, dataset_id: str, *, repeats: int | None = None,
                                   validation: Iterable[str] | None = None) -> Dataset | None:
        """Change a dataset's repeats and/or its validation files (the given hashes; the others train) in one
        transaction; None if the dataset is gone."""
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM datasets WHERE id = ?", (dataset_id,)).fetchone() is None:
                return None
            if repeats is not None:
                conn.execute("UPDATE datasets SET repeats = ? WHERE id = ?", (repeats, dataset_id))
            if validation is not None:
                conn.execute("UPDATE dataset_files SET validation = 0 WHERE dataset_id = ?", (dataset_id,))
                conn.executemany("UPDATE dataset_files SET validation = 1 WHERE dataset_id = ? AND sha256 = ?",
                                 [(dataset_id, sha) for sha in validation])
            conn.execute("UPDATE datasets SET updated_at = ? WHERE id = ?", (now_text(), dataset_id))
            self._changed(conn, "dataset", dataset_id)
        return self.get_dataset(dataset_id)

    def referenced_blobs(self) -> set[str]:
        return {row["sha256"] for row in self._query("SELECT sha256 FROM blobs")}

    def dataset_ids(self) -> set[str]:
        return {row["id"] for row in self._query("SELECT id FROM datasets")}


# files -----------------------------------------------------------------------------------------
def reserve_bytes() -> int:
    """The size of the space reserve: RESERVE_BYTES unless the environment says otherwise."""
    text = os.environ.get(RESERVE_BYTES_ENV, "").strip()
    return int(text) if text.isdigit() else RESERVE_BYTES


def make_private_dir(path: Path) -> None:
    """`mkdir -p` whose new folders are 0700 whatever the umask; folders that exist are left as they are."""
    missing: list[Path] = []
    current = Path(path)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, PRIVATE_DIR_MODE)


def _create_private_file(path: Path) -> None:
    """Create an empty 0600 file (whatever the umask) unless `path` exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, PRIVATE_FILE_MODE)


# row mapping -----------------------------------------------------------------------------------
def _is_sqlite_disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc).lower()


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


def _scalars_text(scalars: Mapping[str, Any] | None) -> str | None:
    """A point's other series as stored (JSON object text), only its finite numbers; None when none."""
    if not scalars:
        return None
    kept = {str(name): number for name, value in scalars.items()
            if (number := _finite_or_none(value)) is not None and not isinstance(value, bool)}
    return json.dumps(kept, separators=(",", ":")) if kept else None


def _json_text(value: str) -> str:
    return json.encoder.encode_basestring_ascii(value)  # type: ignore[attr-defined]


def _scalars_from_text(text: str) -> dict[str, float] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return {name: float(value) for name, value in data.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)} or None


def _job_from_row(row: sqlite3.Row) -> TrainingJob:
    # One dict per row: sqlite3.Row finds a column by name with a scan over the column names, and a job reads
    # some twenty-five of them (a list of 1,000 jobs paid about 5 ms for that alone).
    fields = dict(zip(row.keys(), row))
    params = json.loads(fields["params"]) if fields["params"] else None
    return TrainingJob(
        id=fields["id"], name=fields["name"], status=fields["status"], progress=fields["progress"] or 0.0,
        current_step=fields["current_step"], total_steps=fields["total_steps"], current_loss=fields["current_loss"],
        started_at=fields["started_at"], created_at=fields["created_at"], finished_at=fields["finished_at"],
        dataset_id=fields["dataset_id"], base_model=fields["base_model"], params=params, error=fields["error"],
        model_id=fields["model_id"], revision=fields.get("revision"), detail=fields.get("detail"),
        eta_at=fields.get("eta_at"), kind=fields.get("kind") or "train", **_queue_fields(fields),
    )


def _queue_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Queue control and placement (issue 16) of a job row's fields: the position only while the job waits."""
    if "held" not in fields:
        return {}
    waiting = fields["status"] in ("pending", "queued")
    position = fields["queue_position"]
    placement = json.loads(fields["placement"]) if fields["placement"] else None
    return {"queue_position": int(position) if waiting and position is not None else None,
            "held": bool(fields["held"]) and waiting, "after_job_id": fields["after_job_id"],
            "after_condition": fields["after_condition"], "placement": placement,
            "not_before": fields.get("not_before")}


def _template_from_row(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "settings": json.loads(row["settings"]),
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _revision_of(row: sqlite3.Row) -> int | None:
    return row["revision"] if "revision" in row.keys() else None


def _dataset_from_row(row: sqlite3.Row) -> Dataset:
    repeats = row["repeats"] if "repeats" in row.keys() else None
    return Dataset(id=row["id"], user_id=LOCAL_USER, name=row["name"], type=row["type"],
                   image_count=row["image_count"], status=row["status"], created_at=row["created_at"],
                   updated_at=row["updated_at"], error=row["error"], revision=_revision_of(row),
                   repeats=repeats if repeats is not None else DEFAULT_REPEATS)


def _model_from_row(row: sqlite3.Row) -> TrainedModel:
    return TrainedModel(id=row["id"], user_id=LOCAL_USER, name=row["name"], base_model=row["base_model"],
                        training_job_id=row["training_job_id"], status=row["status"], created_at=row["created_at"],
                        updated_at=row["updated_at"], size_bytes=row["size_bytes"], path=row["path"],
                        error=row["error"], revision=_revision_of(row))


_TABLE_OF: dict[ChangeKind, str] = {"job": "jobs", "dataset": "datasets", "model": "models"}
_FROM_ROW: dict[str, Callable[[sqlite3.Row], TrainingJob | Dataset | TrainedModel]] = {
    "job": _job_from_row, "dataset": _dataset_from_row, "model": _model_from_row}


def _blob_from_row(row: sqlite3.Row) -> BlobInfo:
    return BlobInfo(sha256=row["sha256"], size=row["size"], kind=row["kind"], ext=row["ext"], width=row["width"],
                    height=row["height"])


def _file_from_row(row: sqlite3.Row) -> DatasetFile:
    return DatasetFile(sha256=row["sha256"], filename=row["filename"], size=row["size"], width=row["width"],
                       height=row["height"], caption=row["caption"],
                       validation=bool(row["validation"]) if "validation" in row.keys() else False)
