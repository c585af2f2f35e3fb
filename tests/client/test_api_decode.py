"""ApiClient's list decoding off the calling thread (issue 19): `decode_json_list` gives what `json.loads`
gives, and `active_jobs(decode_in_thread=True)` hands back the same answer (and its errors) as in place,
against a scripted server on a real socket."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from training_studio.client import ApiClient, BadResponse
from training_studio.client.api import DECODE_IN_THREAD_MIN_BYTES, decode_json_list
from tests.support.faulty_server import Reply, job_json

JOBS = ("GET", "/api/training/jobs")


def run(coro_factory, url: str):
    async def main():
        client = ApiClient(url, "secret", timeout=5.0)
        try:
            return await coro_factory(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


@pytest.mark.parametrize("text", [
    "[]", " [ ] ", "[1]", '[{"a": [1, {"b": null}]}, "x", 2.5, true]', '\n[\t{"id": "a"} ,\r\n {"id": "b"}\n]\n',
    '{"jobs": []}', '"text"', "3", "null", '[NaN, -Infinity]', '["\\u00e9\\ud83d\\ude00"]',
])
def test_decode_json_list_gives_what_json_loads_gives(text):
    for encoding in ("utf-8", "utf-16", "utf-8-sig"):
        body = text.encode(encoding)
        assert repr(decode_json_list(body)) == repr(json.loads(body))  # repr: NaN equals no NaN


@pytest.mark.parametrize("text", [
    "", "[", "[1,]", "[1 2]", "[,1]", "[1] x", "[1]]", "[{]", "[1,", '["unterminated]', "[] []", "\xff",
])
def test_decode_json_list_rejects_what_json_loads_rejects(text):
    body = text.encode("latin-1")
    with pytest.raises(ValueError):
        json.loads(body)
    with pytest.raises(ValueError):
        decode_json_list(body)


def big_list(count: int) -> list[dict]:
    items = [job_json(f"job-{n:04d}", name=f"a long enough name for job {n:04d}", revision=1000 + n)
             for n in range(count)]
    assert len(json.dumps(items)) >= DECODE_IN_THREAD_MIN_BYTES  # so the worker thread decodes it
    return items


def test_a_big_list_is_decoded_and_prepared_on_the_worker_thread(faulty):
    items = big_list(400)
    faulty.routes[JOBS] = Reply(200, items, headers={"X-Training-Studio-Revision": "77"})
    threads: list[str] = []

    def prepare(raws):
        threads.append(threading.current_thread().name)
        return [ApiClient.parse_job(raw, position) for position, raw in enumerate(raws)]

    answer = run(lambda c: c.active_jobs(decode_in_thread=True, prepare=prepare), faulty.url)
    assert answer.revision == 77 and answer.items == []  # the decoded items were freed on the worker thread
    assert [job.id for job in answer.prepared] == [item["id"] for item in items]
    assert threads and threads[0].startswith("api-decode") and threads[0] != threading.current_thread().name
    # Without `prepare`, the decoded items themselves.
    answer = run(lambda c: c.active_jobs(decode_in_thread=True), faulty.url)
    assert answer.items == items and answer.prepared is None

    # A small answer is decoded in place (handing it over would cost more), prepared all the same.
    faulty.routes[JOBS] = Reply(200, items[:2], headers={"X-Training-Studio-Revision": "78"})
    threads.clear()
    answer = run(lambda c: c.active_jobs(decode_in_thread=True, prepare=prepare), faulty.url)
    assert [job.id for job in answer.prepared] == ["job-0000", "job-0001"]
    assert threads == [threading.current_thread().name]


@pytest.mark.parametrize("body, words", [
    (b"[" + b'{"id": "x"},' * 10_000 + b"{oops]", "not JSON"),
    (json.dumps({"jobs": big_list(400)}).encode(), "valid list"),
])
def test_a_bad_big_list_is_the_same_bad_response_in_the_thread(faulty, body, words):
    faulty.routes[JOBS] = Reply(200, body)
    messages = []
    for in_thread in (True, False):
        with pytest.raises(BadResponse) as caught:
            run(lambda c: c.active_jobs(decode_in_thread=in_thread), faulty.url)
        messages.append(caught.value.message)
    assert words in messages[0] and messages[0] == messages[1]


def test_an_invalid_item_found_by_prepare_on_the_thread_comes_out_of_the_call(faulty):
    items = big_list(400)
    items[123] = {**items[123], "progress": "lots"}
    faulty.routes[JOBS] = Reply(200, items)

    def prepare(raws):
        return [ApiClient.parse_job(raw, position) for position, raw in enumerate(raws)]

    with pytest.raises(BadResponse) as caught:
        run(lambda c: c.active_jobs(decode_in_thread=True, prepare=prepare), faulty.url)
    assert "123.progress" in caught.value.message
