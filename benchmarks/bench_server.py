"""Figure 6: the embedded server's history list with 100,000 jobs, and /status under 50 concurrent pollers.

This module owns the server-side latency figures, measured over real HTTP against the real `serve`
subprocess (started with `--no-runner`, so nothing else runs). The jobs are written straight into the data
dir's SQLite in one transaction before the server starts (mostly finished jobs, as a long-lived install
accumulates, plus a few hundred active ones).
- server-list: median latency of `GET /api/training/jobs?status=all&limit=1000` with 100,000 jobs stored;
  baseline: the same request against a server holding 1,000 jobs (so the ratio is what the big table costs).
- status-p99: 50 closed-loop pollers (each sends its next `GET /api/training/status?job_id=…` as soon as the
  previous answer arrives), each on its own keep-alive connection; baseline: the p99 of `GET /api/health` under
  the same 50 pollers (no auth, no database: the framework's floor at that concurrency).
- status-rate / health-rate (issue 19): the throughput of those same pollers, in requests per second
  (requests answered over the wall time from the first to the last). status-rate's baseline is health-rate;
  health-rate's baseline is the same pollers against a third server on an empty data dir that runs on
  asyncio's own event loop (TRAINING_STUDIO_EVENT_LOOP=asyncio) instead of uvloop: what the loop is worth.
The pollers run in this process on the same two cores as the server, so they also slow it down a little.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import BenchServer, Result, insert_job_rows, job_rows, log, median, percentile

LIST_PATH = "/api/training/jobs"
LIST_PARAMS = {"status": "all", "limit": "1000"}


def _history(count: int) -> list[dict]:
    active = min(300, count // 10)
    rows = job_rows(count, running=0, statuses=("completed", "completed", "failed", "cancelled", "completed"), seed=5)
    for row in rows[-active:]:  # the newest few are still waiting
        row.update(status="queued", progress=0.0, currentStep=None, currentLoss=None, startedAt=None, finishedAt=None,
                   error=None)
    return rows


def _list_latencies(servers: list[BenchServer], runs: int) -> tuple[list[list[float]], int]:
    """Sequential list requests, alternating between the servers so that both see the same machine load;
    also the answer size of the first server."""
    clients = [httpx.Client(base_url=server.url, headers=server.headers, timeout=60) for server in servers]
    try:
        sizes = []
        for client in clients:
            for _ in range(2):  # warm-up: connection, SQLite page cache
                response = client.get(LIST_PATH, params=LIST_PARAMS)
                response.raise_for_status()
            sizes.append(len(response.content))
        samples: list[list[float]] = [[] for _ in clients]
        for _ in range(runs):
            for client, sink in zip(clients, samples):
                started = time.perf_counter()
                response = client.get(LIST_PATH, params=LIST_PARAMS)
                response.raise_for_status()
                sink.append(time.perf_counter() - started)
        return samples, sizes[0]
    finally:
        for client in clients:
            client.close()


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One keep-alive HTTP/1.1 GET on an open connection; returns the status code (body read and dropped)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _pollers(server: BenchServer, paths: list[str], pollers: int, per_poller: int) -> tuple[list[float], float]:
    """Latencies of `pollers` closed-loop clients, each on its own keep-alive connection.

    The pollers speak minimal HTTP/1.1 over asyncio streams rather than httpx: measured here, httpx's
    client-side cost per request (about 2-7 ms with 50 connections in one process) would otherwise be
    the figure, since the clients share the machine's two cores with the server."""
    host, port = server.url.split("//", 1)[1].rsplit(":", 1)
    rng = random.Random(11)
    latencies: list[float] = []
    errors: list[str] = []
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(pollers)]

    def request(path: str) -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {server.token}\r\n"
                "\r\n").encode()

    async def poll(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(per_poller):
            path = rng.choice(paths)
            started = time.perf_counter()
            status = await _get(reader, writer, request(path))
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(f"{path} -> {status}")

    try:
        await asyncio.gather(*(_get(reader, writer, request(paths[0])) for reader, writer in connections))
        began = time.perf_counter()
        await asyncio.gather(*(poll(reader, writer) for reader, writer in connections))
        elapsed = time.perf_counter() - began
    finally:
        for _reader, writer in connections:
            writer.close()
    if errors:
        raise RuntimeError(f"{len(errors)} poller requests failed, e.g. {errors[0]}")
    return latencies, len(latencies) / elapsed


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc; 0 where there is none)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_server_list(smoke: bool) -> list[Result]:
    big = 5_000 if smoke else 100_000
    small = 1_000
    runs = 2 if smoke else 31
    pollers = 50
    per_poller = 2 if smoke else 40
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        insert_job_rows(root / "big", _history(big))
        insert_job_rows(root / "small", _history(small))
        log(f"server-list: {big:,} + {small:,} jobs written in {time.perf_counter() - started:.1f} s")
        with contextlib.ExitStack() as servers:
            os.environ["TRAINING_STUDIO_EVENT_LOOP"] = "asyncio"  # only the third server's (read at its start)
            try:
                asyncio_server = servers.enter_context(BenchServer(root / "empty", extra_args=["--no-runner"]))
            finally:
                os.environ.pop("TRAINING_STUDIO_EVENT_LOOP", None)
            small_server = servers.enter_context(BenchServer(root / "small", extra_args=["--no-runner"]))
            server = servers.enter_context(BenchServer(root / "big", extra_args=["--no-runner"]))
            (big_samples, small_samples), body_size = _list_latencies([server, small_server], runs)
            with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as client:
                ids = [job["id"] for job in client.get(LIST_PATH, params=LIST_PARAMS).json()]
            status_paths = [f"/api/training/status?job_id={job_id}" for job_id in ids]
            log(f"server-list: {pollers} pollers × {per_poller} requests, /status then /health")
            status_latencies: list[float] = []
            health_latencies: list[float] = []
            rates: dict[str, list[float]] = {"status": [], "health": [], "asyncio": []}
            # Server CPU per request: steadier than a rate on a machine shared with other work.
            cpu_per_request: dict[str, list[float]] = {"status": [], "health": [], "asyncio": []}
            asyncio_latencies: list[float] = []
            for _ in range(3):  # alternate, so all three see the same machine load
                for key, target, paths, sink in (("status", server, status_paths, status_latencies),
                                                 ("health", server, ["/api/health"], health_latencies),
                                                 ("asyncio", asyncio_server, ["/api/health"], asyncio_latencies)):
                    cpu_before = _cpu_seconds(target.proc.pid) if target.proc is not None else 0.0
                    latencies, rate = asyncio.run(_pollers(target, paths, pollers, max(1, per_poller // 2)))
                    if target.proc is not None:
                        cpu_per_request[key].append((_cpu_seconds(target.proc.pid) - cpu_before) / len(latencies))
                    sink.extend(latencies)
                    rates[key].append(rate)
            status_rate, health_rate = median(rates["status"]), median(rates["health"])
            asyncio_rate = median(rates["asyncio"])
            cpu_us = {key: median(values) * 1e6 if values else float("nan") for key, values in cpu_per_request.items()}
    status_p99 = percentile(status_latencies, 0.99) * 1000
    health_p99 = percentile(health_latencies, 0.99) * 1000
    return [
        Result("server-list/history-1000", median(big_samples) * 1000, "ms",
               f"the same request with {small:,} jobs stored", median(small_samples) * 1000, len(big_samples),
               f"GET /api/training/jobs?status=all&limit=1000 with {big:,} jobs stored ({body_size / 1e6:.2f} MB answer), "
               "sequential requests on one keep-alive connection, alternating with the baseline server's"),
        Result("server-list/status-p99", status_p99, "ms", f"p99 of GET /api/health under the same {pollers} pollers",
               health_p99, len(status_latencies),
               f"{pollers} closed-loop pollers (one keep-alive connection each) of GET /api/training/status with "
               f"{big:,} jobs stored; "
               f"median {median(status_latencies) * 1000:.1f} ms, {status_rate:,.0f} req/s "
               f"(health: {health_rate:,.0f} req/s); runs = requests"),
        Result("server-list/status-rate", status_rate, "req/s", f"GET /api/health under the same {pollers} pollers",
               health_rate, len(rates["status"]),
               f"{pollers} closed-loop pollers (one keep-alive connection each) of GET /api/training/status?job_id=… "
               f"(random jobs of {big:,} stored), requests answered per second of wall time; runs = rounds of "
               f"{pollers * max(1, per_poller // 2):,} requests, alternating with the health rounds; server CPU "
               f"{cpu_us['status']:.0f} µs per request (health: {cpu_us['health']:.0f} µs)"),
        Result("server-list/health-rate", health_rate, "req/s",
               f"the same {pollers} pollers against a server on asyncio's own event loop", asyncio_rate,
               len(rates["health"]),
               f"{pollers} closed-loop pollers of GET /api/health (no auth, no database), requests answered per "
               f"second of wall time; the baseline server differs only in its event loop "
               f"(TRAINING_STUDIO_EVENT_LOOP=asyncio; p99 {percentile(asyncio_latencies, 0.99) * 1000:.0f} ms there); "
               f"server CPU {cpu_us['health']:.0f} µs per request against {cpu_us['asyncio']:.0f} µs there"),
    ]
