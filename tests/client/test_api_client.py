"""ApiClient against real sockets: a scripted faulty server for every failure class."""

from __future__ import annotations

import asyncio
import socket
import time
from email.utils import formatdate

import pytest

from training_studio.client import (
    ApiClient,
    AuthFailed,
    BadResponse,
    CancelRejected,
    CannotConnect,
    Conflict,
    NotFound,
    RequestRejected,
    RequestTimedOut,
    ServerError,
)
from training_studio.contract.models import JobStatus
from tests.support.faulty_server import FaultyServer, Reply, job_json

JOBS = ("GET", "/api/training/jobs")


def run(coro_factory, url: str, token: str | None = "secret", timeout: float = 2.0):
    async def main():
        client = ApiClient(url, token, timeout=timeout)
        try:
            return await coro_factory(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_active_jobs_parse_and_send_token(faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("a"), job_json("b", status="queued", startedAt=None)])
    jobs = run(lambda c: c.list_active_jobs(), faulty.url)
    assert [j.id for j in jobs] == ["a", "b"]
    assert jobs[1].status is JobStatus.QUEUED
    method, path, query, headers = faulty.requests[-1]
    assert query == {"status": ["active"]}
    assert headers["Authorization"] == "Bearer secret"


def test_unknown_status_becomes_unknown_not_an_error(faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("a", status="paused-by-admin")])
    jobs = run(lambda c: c.list_active_jobs(), faulty.url)
    assert jobs[0].status is JobStatus.UNKNOWN


def test_500_is_server_error_with_servers_message(faulty):
    faulty.routes[JOBS] = Reply(500, {"error": {"code": "internal", "message": "database is locked"}})
    with pytest.raises(ServerError) as info:
        run(lambda c: c.list_active_jobs(), faulty.url)
    assert info.value.status_code == 500
    assert "database is locked" in info.value.message


def test_500_with_html_body_still_a_server_error(faulty):
    faulty.routes[JOBS] = Reply(502, b"<html>Bad gateway</html>")
    with pytest.raises(ServerError) as info:
        run(lambda c: c.list_active_jobs(), faulty.url)
    assert "502" in info.value.message


def test_malformed_json_is_bad_response(faulty):
    faulty.routes[JOBS] = Reply(200, b'[{"id": "a", "name": ')
    with pytest.raises(BadResponse) as info:
        run(lambda c: c.list_active_jobs(), faulty.url)
    assert "not JSON" in info.value.message


@pytest.mark.parametrize("body", [{"jobs": []}, [{"id": "a"}], [job_json("a", progress="lots")], b"\"text\""])
def test_wrong_shape_is_bad_response(faulty, body):
    faulty.routes[JOBS] = Reply(200, body)
    with pytest.raises(BadResponse) as info:
        run(lambda c: c.list_active_jobs(), faulty.url)
    assert "contract" in info.value.message


def test_slow_answer_times_out(faulty):
    faulty.routes[JOBS] = Reply(200, [], delay=2.0)
    with pytest.raises(RequestTimedOut):
        run(lambda c: c.list_active_jobs(), faulty.url, timeout=0.3)


def test_closed_port_cannot_connect():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CannotConnect) as info:
        run(lambda c: c.list_active_jobs(), f"http://127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in info.value.message


def test_not_connected_yet_is_cannot_connect():
    with pytest.raises(CannotConnect):
        run(lambda c: c.list_active_jobs(), "")


def test_status_codes_map_to_typed_errors(faulty):
    faulty.routes[("GET", "/api/training/status")] = Reply(404, {"error": {"code": "job_not_found",
                                                                         "message": "no job x"}})
    with pytest.raises(NotFound) as info:
        run(lambda c: c.job_status("x"), faulty.url)
    assert info.value.code == "job_not_found"

    faulty.routes[JOBS] = Reply(401, {"error": {"code": "unauthorized", "message": "bad token"}})
    with pytest.raises(AuthFailed) as auth:
        run(lambda c: c.list_active_jobs(), faulty.url)
    assert "token" in auth.value.message

    faulty.routes[("POST", "/api/training/jobs/j1/cancel")] = Reply(
        409, {"error": {"code": "job_finished", "message": "job j1 already completed"}})
    with pytest.raises(Conflict) as conflict:
        run(lambda c: c.cancel_job("j1"), faulty.url)
    assert conflict.value.code == "job_finished" and "already completed" in conflict.value.message

    faulty.routes[("POST", "/api/training/jobs")] = Reply(422, {"error": {"code": "validation_error",
                                                                        "message": "total_steps too big"}})
    with pytest.raises(RequestRejected) as rejected:
        run(lambda c: c.create_job(name="n", dataset_id="d", base_model="b", total_steps=1), faulty.url)
    assert rejected.value.status_code == 422


def test_cancel_success_false_is_a_failure(faulty):
    faulty.routes[("POST", "/api/training/jobs/j1/cancel")] = Reply(200, {"success": False})
    with pytest.raises(CancelRejected):
        run(lambda c: c.cancel_job("j1"), faulty.url)
    faulty.routes[("POST", "/api/training/jobs/j1/cancel")] = Reply(200, {"success": True})
    assert run(lambda c: c.cancel_job("j1"), faulty.url) is None
    faulty.routes[("POST", "/api/training/jobs/j1/cancel")] = Reply(200, {"ok": 1})
    with pytest.raises(BadResponse):
        run(lambda c: c.cancel_job("j1"), faulty.url)


def test_job_id_is_quoted_as_one_path_segment(faulty):
    faulty.routes[("POST", "/api/training/jobs/a%2Fb/cancel")] = Reply(200, {"success": True})
    run(lambda c: c.cancel_job("a/b"), faulty.url)
    assert faulty.requests[-1][1] == "/api/training/jobs/a%2Fb/cancel"


def test_clock_offset_from_date_header(faulty):
    faulty.date_header = formatdate(time.time() + 3600, usegmt=True)
    faulty.routes[JOBS] = Reply(200, [])

    async def fetch(client: ApiClient):
        assert client.clock_offset is None
        await client.list_active_jobs()
        return client.clock_offset

    offset = run(fetch, faulty.url)
    assert 3598 <= offset <= 3602


def test_set_connection_switches_server(faulty):
    other = FaultyServer().start()
    try:
        faulty.routes[JOBS] = Reply(200, [job_json("from-first")])
        other.routes[JOBS] = Reply(200, [job_json("from-second")])

        async def both(client: ApiClient):
            first = await client.list_active_jobs()
            client.set_connection(other.url + "/", "t2")
            second = await client.list_active_jobs()
            return first[0].id, second[0].id

        assert run(both, faulty.url) == ("from-first", "from-second")
        assert other.requests[-1][3]["Authorization"] == "Bearer t2"
    finally:
        other.stop()


def test_raw_active_list_is_the_decoded_json_and_parse_job_validates_one_item(faulty):
    items = [job_json("a"), job_json("b", status="paused-by-admin", extraField=[1, 2])]
    faulty.routes[JOBS] = Reply(200, items)
    raws = run(lambda c: c.list_active_jobs_raw(), faulty.url)
    assert raws == items
    assert faulty.requests[-1][2] == {"status": ["active"]}
    job = ApiClient.parse_job(raws[1], 1)
    assert job.id == "b" and job.status is JobStatus.UNKNOWN


@pytest.mark.parametrize("body", [{"jobs": []}, b"\"text\"", b"null"])
def test_raw_active_list_that_is_not_a_list_is_bad_response(faulty, body):
    faulty.routes[JOBS] = Reply(200, body)
    with pytest.raises(BadResponse) as raw:
        run(lambda c: c.list_active_jobs_raw(), faulty.url)
    with pytest.raises(BadResponse) as whole:
        run(lambda c: c.list_active_jobs(), faulty.url)
    assert raw.value.message == whole.value.message and "contract" in raw.value.message


@pytest.mark.parametrize("item", ["text", 5, None, [job_json("a")], {"id": "a"}, job_json("a", progress="lots"),
                                  job_json("a", id=["x"])])
def test_parse_job_reports_a_bad_item_as_the_whole_list_parse_does(faulty, item):
    faulty.routes[JOBS] = Reply(200, [job_json("ok"), item])
    with pytest.raises(BadResponse) as whole:
        run(lambda c: c.list_active_jobs(), faulty.url)
    with pytest.raises(BadResponse) as one:
        ApiClient.parse_job(item, 1)
    assert one.value.message == whole.value.message
    assert "(1" in one.value.message  # names the item's position


# -- the active list with revisions (live updates: `since` deltas) -------------------------------------------

def test_active_jobs_sends_since_and_reads_the_revision_header(faulty):
    faulty.routes[JOBS] = Reply(200, [job_json("a", revision=12, status="completed")],
                                headers={"X-Training-Studio-Revision": "15"})
    answer = run(lambda c: c.active_jobs(since=10), faulty.url)
    assert answer.revision == 15 and [item["id"] for item in answer.items] == ["a"]
    assert faulty.requests[-1][2] == {"status": ["active"], "since": ["10"]}
    assert ApiClient.parse_job(answer.items[0]).revision == 12


@pytest.mark.parametrize("header", [None, "", "abc", "-3", "1.5"])
def test_without_a_readable_revision_header_the_server_has_no_revisions(faulty, header):
    headers = {} if header is None else {"X-Training-Studio-Revision": header}
    faulty.routes[JOBS] = Reply(200, [job_json("a")], headers=headers)
    answer = run(lambda c: c.active_jobs(), faulty.url)
    assert answer.revision is None and len(answer.items) == 1
    assert faulty.requests[-1][2] == {"status": ["active"]}  # no since unless asked


def test_a_since_the_server_does_not_know_is_a_conflict_with_its_code(faulty):
    faulty.routes[JOBS] = Reply(409, {"error": {"code": "revision_unknown", "message": "revision 5 is too old"}})
    with pytest.raises(Conflict) as caught:
        run(lambda c: c.active_jobs(since=5), faulty.url)
    assert caught.value.code == "revision_unknown" and "too old" in caught.value.message


@pytest.mark.parametrize("body, words", [(b"[{oops", "not JSON"), ({"jobs": []}, "valid list")])
def test_a_bad_active_list_is_a_bad_response(faulty, body, words):
    faulty.routes[JOBS] = Reply(200, body, headers={"X-Training-Studio-Revision": "3"})
    with pytest.raises(BadResponse) as caught:
        run(lambda c: c.active_jobs(since=1), faulty.url)
    assert words in caught.value.message
