"""Shared checks of the reliability tests: what a data dir must look like after any crash or fault.

`assert_data_dir_consistent` states the crash-safety contract in one place: the SQLite database passes
`PRAGMA integrity_check`; no dataset is `active` with a missing stored file or layout file; every blob
file on disk is referenced and every referenced blob is on disk; no upload temp file is left; no job is
`running` without a live trainer. Read from the files themselves, not through the server's code.
The job and process helpers live in tests/support and are re-exported here for the reliability tests.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
from PIL import Image

from tests.support import jobs
from tests.support.jobs import finished, job_status, wait_job
from tests.support.processes import pid_alive
from tests.support.server import ServerProcess
from training_studio.runner.registry import BUILTIN_BASE_MODEL_ID

__all__ = ["assert_data_dir_consistent", "create_job", "db_rows", "finished", "integrity_check", "job_status",
           "noise_png", "pid_alive", "quiet_server", "wait_job"]


def integrity_check(db_path: Path) -> str:
    connection = sqlite3.connect(db_path, timeout=30)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


def db_rows(db_path: Path, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    connection = sqlite3.connect(db_path, timeout=30)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def assert_data_dir_consistent(data_dir: Path) -> None:
    db = data_dir / "studio.db"
    assert integrity_check(db) == "ok"
    referenced = {row["sha256"] for row in db_rows(db, "SELECT sha256 FROM blobs")}
    on_disk = {path.name for path in (data_dir / "blobs").glob("*/*")}
    assert on_disk == referenced, f"orphan blobs {on_disk - referenced}, missing blobs {referenced - on_disk}"
    for dataset in db_rows(db, "SELECT id, image_count FROM datasets WHERE status = 'active'"):
        files = db_rows(db, "SELECT f.sha256, b.ext FROM dataset_files f JOIN blobs b ON b.sha256 = f.sha256 "
                            "WHERE f.dataset_id = ?", (dataset["id"],))
        assert len(files) == dataset["image_count"] > 0
        imagefolder = data_dir / "datasets" / dataset["id"] / "imagefolder"
        assert (imagefolder / "metadata.jsonl").is_file(), f"active dataset {dataset['id']} has no layout"
        listed = [json.loads(line)["file_name"] for line in
                  (imagefolder / "metadata.jsonl").read_text().splitlines()]
        assert sorted(listed) == sorted(f"{row['sha256']}{row['ext']}" for row in files)
        for row in files:
            assert (imagefolder / f"{row['sha256']}{row['ext']}").is_file()
            kohya = list((data_dir / "datasets" / dataset["id"] / "kohya").glob(f"*/{row['sha256']}{row['ext']}"))
            assert len(kohya) == 1
    assert list((data_dir / "tmp").iterdir()) == [], "upload temp files were left behind"
    assert [p for p in (data_dir / "datasets").iterdir() if p.name.startswith(".")] == [], \
        "half-built dataset layouts were left behind"
    for job in db_rows(db, "SELECT id, pid, pgid FROM jobs WHERE status = 'running'"):
        assert job["pid"] and pid_alive(job["pid"]), f"job {job['id']} is running without a trainer"


def quiet_server(data_dir: Path, never_logged: Iterable[str]) -> Iterator[ServerProcess]:
    """Body of a module fixture: one real server without a runner; after the module, none of the
    `never_logged` texts (the catch-all error handlers' marks) may be in its log."""
    server = ServerProcess(data_dir, extra_args=["--no-runner"]).start()
    yield server
    server.stop()
    log = (server.data_dir / "logs" / "server.log").read_text(errors="replace")
    assert not any(text in log for text in never_logged), log[-3000:]


def noise_png(side: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((side, side), 40 + seed).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def create_job(client: httpx.Client, dataset_id: str, total_steps: int, name: str = "job", **params) -> dict:
    """A job of the built-in trainer (the one that really trains), its params as keywords."""
    return jobs.create_job(client, dataset_id, BUILTIN_BASE_MODEL_ID, total_steps, params, name)
