"""A pytest plugin that counts which servers the suite's tests really start, for the README's Tests section.

Not a test and not loaded by default: `.venv/bin/python -m pytest -p tests.support.census tests` runs the
suite as usual and ends with one line per kind, counted per collected test (each parametrized case counts).
It records, per test, what was started while the test or a fixture it uses was being set up or run (a
module-scoped fixture's server counts for every test that uses the fixture):

- real: the real server, as `tests.support.server.ServerProcess`, or any subprocess running
  `python -m training_studio` (the app, which starts its local server; `serve`) or `python -m benchmarks`
  (the benchmarks' own server processes);
- stand-in: a labelled fake on a real socket: `FaultyServer` / `SwitchableServer`
  (tests/support/faulty_server.py; the switchable one fronts a real server, which then counts as real too),
  `ScriptedEventServer` (sse_server.py), `SeedOnlyServer` (seed_server.py).

A test counts as "real" if it started the real server (whatever else it started), "stand-in only" if it
started only stand-ins, "none" otherwise. `TRAINING_STUDIO_CENSUS=path` also writes one JSON line per test.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from typing import Any

import pytest

_owners: list[Any] = []  # the test's node id, then the fixture definitions being set up
_by_test: dict[str, set[str]] = {}
_by_fixture: dict[int, set[str]] = {}
_results: list[set[str]] = []  # one per test run (schemathesis runs several under one node id)


def _record(kind: str) -> None:
    for owner in _owners:
        bucket = _by_test.setdefault(owner, set()) if isinstance(owner, str) else \
            _by_fixture.setdefault(id(owner), set())
        bucket.add(kind)


# Subcommands of `training-studio` that start no server: a trainer, its wrapper, the preset checker.
_NOT_A_SERVER = {"train", "train-wrapper", "presets"}


def _kind_of(argv: list[Any]) -> str | None:
    """"real" for `python -m training_studio [serve | GUI options]` and `python -m benchmarks`."""
    words = [a.decode() if isinstance(a, bytes) else os.fspath(a) for a in argv]
    if {"--help", "-h", "--version"} & set(words):
        return None  # prints and exits
    for position, word in enumerate(words[:-1]):
        if word == "-m" and words[position + 1] == "benchmarks":
            return "real"
        if word == "-m" and words[position + 1] == "training_studio":
            following = words[position + 2] if position + 2 < len(words) else ""
            return None if following in _NOT_A_SERVER else "real"
    if words and os.path.basename(words[0]) == "training-studio" and (words[1:2] or [""])[0] not in _NOT_A_SERVER:
        return "real"
    return None


def _patch_subprocesses() -> None:
    popen_init = subprocess.Popen.__init__

    def init(self: subprocess.Popen[Any], args: Any, *more: Any, **options: Any) -> None:
        argv = args.split() if isinstance(args, str) else [args] if isinstance(args, bytes) else list(args)
        kind = _kind_of(argv)
        if kind:
            _record(kind)
        popen_init(self, args, *more, **options)

    subprocess.Popen.__init__ = init  # type: ignore[method-assign]
    create_exec = asyncio.create_subprocess_exec

    async def exec_(program: Any, *args: Any, **options: Any) -> Any:
        kind = _kind_of([program, *args])
        if kind:
            _record(kind)
        return await create_exec(program, *args, **options)

    asyncio.create_subprocess_exec = exec_  # type: ignore[assignment]


def _count_starts(cls: type, kind: str) -> None:
    start = cls.start

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        _record(kind)
        return start(self, *args, **kwargs)

    cls.start = counted


def pytest_configure(config: pytest.Config) -> None:
    from tests.support import faulty_server, seed_server, sse_server
    from tests.support.server import ServerProcess

    _patch_subprocesses()
    _count_starts(ServerProcess, "real")
    for stand_in in (faulty_server.FaultyServer, faulty_server.SwitchableServer, sse_server.ScriptedEventServer,
                     seed_server.SeedOnlyServer):
        _count_starts(stand_in, "stand-in")


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any):
    _owners.append(fixturedef)
    try:
        yield
    finally:
        _owners.pop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    _owners.append(item.nodeid)
    try:
        yield
    finally:
        _owners.remove(item.nodeid)
        kinds = set(_by_test.get(item.nodeid, set()))
        for definitions in item._fixtureinfo.name2fixturedefs.values():  # noqa: SLF001 (pytest's own record)
            kinds |= _by_fixture.get(id(definitions[-1]), set())
        _results.append(kinds)
        target = os.environ.get("TRAINING_STUDIO_CENSUS")
        if target:
            with open(target, "a", encoding="utf-8") as out:
                out.write(json.dumps({"test": item.nodeid, "started": sorted(kinds)}) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    real = sum(1 for kinds in _results if "real" in kinds)
    stand_in = sum(1 for kinds in _results if kinds == {"stand-in"})
    none = sum(1 for kinds in _results if not kinds)
    both = sum(1 for kinds in _results if kinds == {"real", "stand-in"})
    terminalreporter.write_line(
        f"server census of {len(_results)} tests: {real} start the real server ({both} of them also a "
        f"labelled stand-in), {stand_in} only a labelled stand-in server, {none} start no server")
