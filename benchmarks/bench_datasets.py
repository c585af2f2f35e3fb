"""Dataset workbench figures (issue 17) against the real `serve` subprocess (`--no-runner`), on a committed
dataset of 10,000 images (their rows and blob files written straight into the data dir before the server
starts; the commit, which materialises both layouts, goes through the API):

- dataset-captions/find-replace: `POST /api/datasets/{id}/captions/batch` replacing a word in all 10,000
  captions, from request to answer: applied, stored in one commit and both layouts rebuilt and swapped in.
  Each request is sent once any replaced layout folder the server removes in the background is gone (a
  person's edits are seconds apart). The server keeps the replaced generation as a spare and brings it up to
  date on the next rebuild (server/layouts.py); these are the edits after the first. Baseline: the same
  request as a dry run (only working out the changes). Goal: at most 1 s.
- dataset-captions/find-replace-first: the first such edit after a commit (of a further dataset of the
  same 10,000 stored files, three times), whose spare the server prepares in the background after the
  commit answers. Sent once that spare is ready (its folder appears, one rename), the wait for it counted
  from the commit's answer and given in the notes; a person takes that long to open the dialog and type.
  The notes also give the worst case, the first edit sent the moment the commit answers (after its dry run),
  which takes over the half-prepared spare and creates the rest of the files itself, and the commits' own
  times. Goal: at most 1 s, every run.
- dataset-captions/find-replace-back-to-back: the same requests sent one right after the other, so each
  competes with whatever background removal the previous one left for the disk (informational; same
  baseline).
- dataset-captions/buckets: `GET /api/datasets/{id}/buckets?resolution=1024&step=64&batch_size=4` over the
  10,000 stored sizes, from request to answer. Baseline: `GET /api/datasets/{id}/files` (the same 10,000
  rows listed). Goal: at most 100 ms.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import BenchServer, Result, goal_note, log, median, percentile
from tests.server.helpers import wait_spare_ready

SPARE_TIMEOUT_S = 300  # a 10,000 files' spare layout on a busy disk

WORDS = ("cat", "dog", "portrait", "outdoors", "studio", "red", "blue", "smiling", "sitting", "close-up")


def _seed(data_dir: Path, count: int) -> str:
    """A processing dataset of `count` images (tiny stand-in blob files, varied stored sizes); its id."""
    from training_studio.server.storage import Storage, now_text

    storage = Storage(data_dir)
    dataset = storage.create_dataset("bench captions", "image")
    storage.close()
    rng = random.Random(17)
    now = now_text()
    blobs, files = [], []
    for index in range(count):
        content = f"bench image {index}".encode()
        sha = hashlib.sha256(content).hexdigest()
        path = data_dir / "blobs" / sha[:2] / sha
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        width = rng.choice((512, 640, 768, 832, 1024, 1152, 1216, 1536, 2048, 3000))
        height = rng.choice((512, 640, 768, 832, 1024, 1152, 1216, 1536, 2048, 3000))
        blobs.append((sha, len(content), "image", ".png", width, height, now))
        caption = ", ".join(rng.sample(WORDS, 4)) + ", a photo of sks cat"
        files.append((dataset.id, sha, f"img{index:05d}.png", caption, now))
    with sqlite3.connect(data_dir / "studio.db") as conn:
        conn.executemany("INSERT INTO blobs (sha256, size, kind, ext, width, height, created_at)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", blobs)
        conn.executemany("INSERT INTO dataset_files (dataset_id, sha256, filename, caption, added_at)"
                         " VALUES (?, ?, ?, ?, ?)", files)
    return dataset.id


def _seed_copy(data_dir: Path, source_id: str) -> str:
    """A second processing dataset of the same stored files (no new blobs); its id."""
    from training_studio.server.storage import Storage

    storage = Storage(data_dir)
    dataset = storage.create_dataset("bench captions again", "image")
    storage.close()
    with sqlite3.connect(data_dir / "studio.db") as conn:
        conn.execute("INSERT INTO dataset_files (dataset_id, sha256, filename, caption, added_at)"
                     " SELECT ?, sha256, filename, caption, added_at FROM dataset_files WHERE dataset_id = ?",
                     (dataset.id, source_id))
    return dataset.id


def _commit(client: httpx.Client, dataset_id: str) -> float:
    started = time.perf_counter()
    client.post(f"/api/datasets/{dataset_id}/commit").raise_for_status()
    return time.perf_counter() - started


def run_dataset_captions(smoke: bool) -> list[Result]:
    count = 500 if smoke else 10_000
    runs = 2 if smoke else 10
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        # blob_path's layout must match what _seed writes: check it once
        from training_studio.server.storage import Storage

        probe = Storage(data_dir)
        assert probe.blob_path("ab" + "0" * 62).parent.name == "ab", "blob store layout changed"
        probe.close()
        log(f"dataset-captions: seeding {count:,} images")
        dataset_id = _seed(data_dir, count)
        first_runs = 1 if smoke else 3
        copies = [(_seed_copy(data_dir, dataset_id), _seed_copy(data_dir, dataset_id)) for _ in range(first_runs)]
        firsts, rushed_firsts, spare_waits, commits = [], [], [], []
        with BenchServer(data_dir, extra_args=["--no-runner"]) as server:
            headers = {"Authorization": f"Bearer {server.token}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=300) as client:
                _commit(client, dataset_id)  # warms the server and the disk caches; edited below
                _settled(data_dir)
                wait_spare_ready(data_dir, dataset_id, timeout=SPARE_TIMEOUT_S)
                for ready_id, rushed_id in copies:
                    commits.append(_commit(client, ready_id))
                    started = time.perf_counter()
                    wait_spare_ready(data_dir, ready_id, timeout=SPARE_TIMEOUT_S)
                    spare_waits.append(time.perf_counter() - started)
                    firsts.append(_find_replace(client, ready_id, count, 0, None)[2])
                    commits.append(_commit(client, rushed_id))
                    # the worst case: the first edit the moment the commit answers (dry run, then applied)
                    rushed_firsts.append(_find_replace(client, rushed_id, count, 0, None)[2])
                    for done in (ready_id, rushed_id):
                        client.delete(f"/api/datasets/{done}").raise_for_status()
                    _settled(data_dir)
                applied, dry, _ = _find_replace(client, dataset_id, count, runs, data_dir)
                rushed, _, _ = _find_replace(client, dataset_id, count, runs, None, first=runs + 1)
                buckets, listing = _buckets(client, dataset_id, count, runs * 3)
    value, base = median(applied) * 1000, median(dry) * 1000
    bucket_value, bucket_base = median(buckets) * 1000, median(listing) * 1000
    return [
        Result("dataset-captions/find-replace-first", median(firsts) * 1000, "ms", "the same request as a dry run",
               base, len(firsts), f"{count:,} captions changed by the first edit after a commit, sent once the "
               "spare the server prepares in the background was ready, "
               f"{', '.join(f'{wait:.1f}' for wait in spare_waits)} s after the commit answered (worst "
               f"{max(firsts) * 1000:.0f} ms); sent the moment the commit answered instead (other datasets): "
               f"{', '.join(f'{took * 1000:.0f}' for took in rushed_firsts)} ms; the commits took "
               f"{', '.join(f'{took:.1f}' for took in commits)} s; "
               + goal_note(max(firsts) <= 1, "≤ 1 s (every run)")),
        Result("dataset-captions/find-replace", value, "ms", "the same request as a dry run (changes worked out, "
               "nothing stored)", base, len(applied),
               f"{count:,} captions changed per request, one commit, both layouts rebuilt and swapped in; "
               f"p95 {percentile(applied, 0.95) * 1000:.0f} ms; edits after the first after the commit; "
               + goal_note(value <= 1000, "≤ 1 s")),
        Result("dataset-captions/find-replace-back-to-back", median(rushed) * 1000, "ms",
               "the same request as a dry run", base, len(rushed),
               "each request sent as soon as the previous answered, with whatever the server still does in the "
               f"background; p95 {percentile(rushed, 0.95) * 1000:.0f} ms"),
        Result("dataset-captions/buckets", bucket_value, "ms", f"GET the {count:,} files' list", bucket_base,
               len(buckets), f"resolution 1024, step 64, batch 4 over {count:,} stored sizes; "
               f"p95 {percentile(buckets, 0.95) * 1000:.1f} ms; " + goal_note(bucket_value <= 100, "≤ 100 ms")),
    ]


def _settled(data_dir: Path) -> None:
    """Wait until the server has removed every replaced layout folder (`datasets/.<id>.old-*`)."""
    deadline = time.monotonic() + 120
    while any(entry.name.startswith(".") and ".old-" in entry.name for entry in (data_dir / "datasets").iterdir()):
        if time.monotonic() > deadline:
            raise RuntimeError("the replaced layout folder was not removed within 120 s")
        time.sleep(0.05)


def _find_replace(client: httpx.Client, dataset_id: str, count: int, runs: int,
                  settle_in: Path | None, first: int = 0) -> tuple[list[float], list[float], float]:
    """(applied times, dry-run times, the warm-up run's applied time)."""
    applied: list[float] = []
    dry: list[float] = []
    warm_up = 0.0
    words = ("cat", "kitten")
    for run in range(runs + 1):  # the first run warms up
        if settle_in is not None:
            _settled(settle_in)
        turn = first + run  # the captions say "cat" before even turns, "kitten" before odd ones
        find, replace = words[turn % 2], words[(turn + 1) % 2]
        body = {"op": "replace", "find": f"sks {find}", "replace": f"sks {replace}", "files": "all"}
        started = time.perf_counter()
        response = client.post(f"/api/datasets/{dataset_id}/captions/batch", json={**body, "dry_run": True})
        took_dry = time.perf_counter() - started
        response.raise_for_status()
        assert response.json()["changed"] == count, response.json()["changed"]
        started = time.perf_counter()
        response = client.post(f"/api/datasets/{dataset_id}/captions/batch", json=body)
        took = time.perf_counter() - started
        response.raise_for_status()
        assert response.json()["changed"] == count
        if run:
            applied.append(took)
            dry.append(took_dry)
        else:
            warm_up = took
    return applied, dry, warm_up


def _buckets(client: httpx.Client, dataset_id: str, count: int, runs: int) -> tuple[list[float], list[float]]:
    buckets: list[float] = []
    listing: list[float] = []
    for run in range(runs + 1):
        started = time.perf_counter()
        response = client.get(f"/api/datasets/{dataset_id}/buckets",
                              params={"resolution": 1024, "step": 64, "batch_size": 4})
        took = time.perf_counter() - started
        response.raise_for_status()
        assert response.json()["image_count"] == count
        started = time.perf_counter()
        client.get(f"/api/datasets/{dataset_id}/files").raise_for_status()
        took_list = time.perf_counter() - started
        if run:
            buckets.append(took)
            listing.append(took_list)
    return buckets, listing
