"""Storage on its own (real SQLite files): schema versioning, thread safety, crash leftovers."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from training_studio.contract import format_timestamp, utc_now
from training_studio.server.storage import SCHEMA_VERSION, Storage, StorageError
from tests.server.helpers import png_bytes, sha256_of, stored_blobs, upload


def test_database_is_wal_with_a_schema_version(tmp_path):
    storage = Storage(tmp_path)
    try:
        assert storage.schema_version() == SCHEMA_VERSION
    finally:
        storage.close()
    conn = sqlite3.connect(tmp_path / "studio.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    Storage(tmp_path).close()  # reopening an up-to-date database migrates nothing and keeps working


def test_database_from_a_newer_version_is_refused(tmp_path):
    Storage(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "studio.db")
    conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="newer"):
        Storage(tmp_path)


def test_concurrent_writers_from_threads(tmp_path):
    storage = Storage(tmp_path)
    job = storage.create_job("j", None, "builtin-linear-vae", 4000, {})
    storage.set_job_status(job.id, "running")
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for step in range(offset, 4000, 4):
                storage.record_progress([(job.id, step + 1, 4000, 1.0, format_timestamp(utc_now()))])
                storage.get_job(job.id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert len(storage.metrics(job.id)) == 4000
    finally:
        storage.close()


def test_job_creation_times_are_strictly_increasing(tmp_path):
    storage = Storage(tmp_path)
    try:
        created = [storage.create_job(f"j{i}", None, None, 1, {}).created_at for i in range(50)]
        assert created == sorted(set(created))
    finally:
        storage.close()


def test_restart_sweeps_crash_leftovers(server):
    with server.client() as client:
        dataset = client.post("/api/datasets", json={"name": "d", "type": "image"}).json()
        data = png_bytes()
        assert upload(client, dataset["id"], data).status_code == 201
    server.kill()  # a crash: no clean shutdown
    (server.data_dir / "tmp" / "upload-123.part").write_bytes(b"half an upload")
    orphan = server.data_dir / "blobs" / "ab" / ("ab" + "0" * 62)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"nobody references me")
    half_built = server.data_dir / "datasets" / f".{dataset['id']}.building-1234"
    half_built.mkdir()
    server.start()  # the stale server.json from the killed server is replaced
    assert list((server.data_dir / "tmp").iterdir()) == []
    assert stored_blobs(server.data_dir) == {sha256_of(data)}
    assert not half_built.exists()
    with server.client() as client:
        assert len(client.get(f"/api/datasets/{dataset['id']}/files").json()) == 1


def test_a_start_takes_over_every_waiting_job_in_one_pass_keeping_the_queue(tmp_path):
    storage = Storage(tmp_path)
    try:
        first, second, third, done = (storage.create_job(name, None, "builtin-linear-vae", 10, {})
                                      for name in ("first", "second", "third", "done"))
        assert storage.enqueue_job(second.id).status == "queued"  # queued before: keeps its place
        storage.set_job_status(done.id, "cancelled")
        revision = storage.current_revision()
        heard: list = []
        storage.set_change_listener(heard.extend)
        accepted = storage.enqueue_jobs([first.id, second.id, third.id, done.id, "nope", first.id])
        assert accepted == [first.id, second.id, third.id]
        # Listeners hear each changed job once, in revision order, with its new state at that revision.
        assert [(change.id, change.revision, change.entity.status, change.entity.revision) for change in heard] == [
            (first.id, revision + 1, "queued", revision + 1), (third.id, revision + 2, "queued", revision + 2)]
        assert [storage.get_job(job.id).revision for job in (first, third)] == [revision + 1, revision + 2]
        assert [storage.get_job(job.id).status for job in (first, second, third, done)] == [
            "queued", "queued", "queued", "cancelled"]
        # The new ones join the end of the queue in the order given; the one queued before stays first.
        assert [row["id"] for row in storage.queue_rows([first.id, second.id, third.id])] == [
            second.id, first.id, third.id]
        assert storage.current_revision() == revision + 2  # one change each for first and third, none else
        assert storage.enqueue_jobs([first.id]) == [first.id]  # already queued: nothing changes
        assert storage.current_revision() == revision + 2
    finally:
        storage.close()
