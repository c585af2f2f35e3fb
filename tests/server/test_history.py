"""History over HTTP against a real server subprocess: 5,000 stored jobs paged with every filter, the name
search and each sort order (keyset cursors), the date range, and bad parameters answered 422.

The jobs are SEEDED by writing the data dir's database through the server's own Storage before the server
starts (creating 5,000 jobs over HTTP would make this test slow without testing anything more here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from training_studio.contract import TrainingJob
from training_studio.server.storage import Storage
from tests.support.server import ServerProcess

JOBS = 5000
STATUSES = ["completed", "failed", "cancelled", "completed", "cancelled"]


@pytest.fixture(scope="module")
def history_server(tmp_path_factory) -> Iterator[tuple[ServerProcess, list[TrainingJob]]]:
    data_dir = Path(tmp_path_factory.mktemp("history")) / "data"
    storage = Storage(data_dir)
    names = ["Portrait LoRA", "portrait lora v2", "Landscape", "100%_done", "Ünïcode run"]
    for index in range(JOBS):
        job = storage.create_job(f"{names[index % len(names)]} #{index}", None, "builtin-tiny", 10, None)
        status = STATUSES[index % len(STATUSES)]
        storage.set_job_status(job.id, "running", started_at=job.created_at)
        storage.set_job_status(job.id, status)
    jobs = [storage.get_job(job.id) for job in storage.list_jobs(None, limit=JOBS)]
    storage.close()
    server = ServerProcess(data_dir, extra_args=["--no-runner"]).start()
    try:
        yield server, jobs
    finally:
        server.stop()


def _pages(server: ServerProcess, params: dict[str, str], limit: int = 700) -> list[dict]:
    """Every page of a history query, following the next-cursor header until it stops."""
    found: list[dict] = []
    cursor = None
    with server.client() as client:
        for _ in range(JOBS // limit + 5):
            query = {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
            response = client.get("/api/training/jobs", params=query)
            assert response.status_code == 200, response.text
            found.extend(response.json())
            cursor = response.headers.get("X-Training-Studio-Next-Cursor")
            if cursor is None:
                return found
    raise AssertionError("the cursor never ended")


def test_paging_all_jobs_newest_first_neither_skips_nor_repeats(history_server):
    server, jobs = history_server
    found = _pages(server, {"status": "all", "order": "-createdAt"})
    assert [job["id"] for job in found] == [job.id for job in jobs]  # list_jobs: newest first


@pytest.mark.parametrize("status", ["completed", "failed,cancelled", "cancelled"])
def test_paging_with_a_status_filter(history_server, status):
    server, jobs = history_server
    wanted = set(status.split(","))
    found = _pages(server, {"status": status, "order": "-createdAt"})
    assert [job["id"] for job in found] == [job.id for job in jobs if job.status.value in wanted]


def test_search_is_case_insensitive_and_takes_like_wildcards_literally(history_server):
    server, jobs = history_server
    found = _pages(server, {"status": "all", "q": "PORTRAIT"})
    assert {job["id"] for job in found} == {job.id for job in jobs if "portrait" in job.name.lower()}
    assert len(found) == 2 * JOBS // 5
    percent = _pages(server, {"status": "all", "q": "100%_"})
    assert {job["id"] for job in percent} == {job.id for job in jobs if "100%_" in job.name}
    assert _pages(server, {"status": "all", "q": "0_d"}) == []  # "_" is a character, not a wildcard


@pytest.mark.parametrize("order", ["name", "-name", "status", "-status", "finishedAt", "-startedAt"])
def test_paging_in_each_order_matches_a_full_sort(history_server, order):
    server, jobs = history_server
    found = _pages(server, {"status": "all", "order": order}, limit=999)
    assert len(found) == JOBS and len({job["id"] for job in found}) == JOBS
    field = {"name": "name", "status": "status", "finishedAt": "finishedAt", "startedAt": "startedAt"}[order.lstrip("-")]

    def key(job: dict) -> tuple:
        value = job[field] or ""
        return (value.lower() if field == "name" else value, job["createdAt"])

    assert [key(job) for job in found] == sorted((key(job) for job in found), reverse=order.startswith("-"))


def test_date_range_and_search_together(history_server):
    server, jobs = history_server
    newest_first = jobs
    after, before = newest_first[3000].created_at, newest_first[1000].created_at
    found = _pages(server, {"status": "all", "after": after, "before": before, "q": "landscape"})
    expected = [job.id for job in newest_first[1001:3000] if "landscape" in job.name.lower()]
    assert [job["id"] for job in found] == expected and expected


@pytest.mark.parametrize("params, message", [
    ({"status": "all", "order": "size"}, "order: Input should be 'createdAt', '-createdAt'"),
    ({"status": "all", "cursor": "not-a-cursor"}, "cursor: not of the form <createdAt>~<key>"),
    ({"status": "all", "after": "yesterday"}, "after: 'yesterday' is not an ISO 8601 timestamp"),
])
def test_bad_history_parameters_are_422_with_the_reason(history_server, params, message):
    server, _ = history_server
    with server.client() as client:
        response = client.get("/api/training/jobs", params=params)
    assert response.status_code == 422
    assert message in response.text


def test_a_cursor_is_a_readable_position(history_server):
    server, jobs = history_server
    with server.client() as client:
        first = client.get("/api/training/jobs", params={"status": "all", "order": "name", "limit": "10"})
        cursor = first.headers["X-Training-Studio-Next-Cursor"]
        last = first.json()[-1]
        assert cursor == f"{last['createdAt']}~{last['name']}"
