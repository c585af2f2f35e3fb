"""`python -m benchmarks`: run every figure, one JSON object per line on stdout, a table on stderr.

This module owns the command line and the run order. Each figure runs in its own fresh Python process
(`python -m benchmarks --child NAME`), so Qt, asyncio and memory state never leak from one figure into the
next (all of them use one set of settings, log and XDG folders made for the run, never the user's:
`common.isolate_app_dirs`); the parent collects the children's JSON lines, re-prints them on stdout as they arrive and ends with
a human-readable table on stderr. `--smoke` runs each figure once at a small size (the test suite calls it
so the benchmarks keep working); `--only NAME` (repeatable, or comma-separated) picks figures by name.
A figure that fails prints one line with a null value and the reason, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

from benchmarks.common import ROOT, Result, isolate_app_dirs

# name -> (module, function); the order is the order.
FIGURES: dict[str, tuple[str, str]] = {
    "refresh-apply": ("benchmarks.bench_model", "run_refresh_apply"),
    "elapsed-tick": ("benchmarks.bench_model", "run_elapsed_tick"),
    "first-paint": ("benchmarks.bench_first_paint", "run_first_paint"),
    "update-latency": ("benchmarks.bench_update_latency", "run_update_latency"),
    "import-throughput": ("benchmarks.bench_import", "run_import_throughput"),
    "server-list": ("benchmarks.bench_server", "run_server_list"),
    "memory": ("benchmarks.bench_memory", "run_memory"),
    "runner-throughput": ("benchmarks.bench_runner", "run_runner_throughput"),
    "hostile-uploads": ("benchmarks.bench_hostile", "run_hostile_uploads"),
    "live-latency": ("benchmarks.bench_live", "run_live_latency"),
    "live-storm": ("benchmarks.bench_live", "run_live_storm"),
    "live-resync": ("benchmarks.bench_live", "run_live_resync"),
    "details-chart": ("benchmarks.bench_details", "run_details_chart"),
    "details-logs": ("benchmarks.bench_details_logs", "run_details_logs"),
    "history": ("benchmarks.bench_history", "run_history"),
    "ray": ("benchmarks.bench_ray", "run_ray"),
    "dataset-captions": ("benchmarks.bench_datasets", "run_dataset_captions"),
}
CHILD_TIMEOUT_S = {"smoke": 120, "full": 1800}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="each figure once, at a small size")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only these figures (repeatable or comma-separated): {', '.join(FIGURES)}")
    parser.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _selected(only: list[str]) -> list[str]:
    wanted = [name.strip() for item in only for name in item.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in FIGURES]
    if unknown:
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    return [name for name in FIGURES if not wanted or name in wanted]


def _run_child(name: str, smoke: bool) -> int:
    module_name, function_name = FIGURES[name]
    function: Callable[[bool], list[Result]] = getattr(importlib.import_module(module_name), function_name)
    for result in function(smoke):
        print(result.to_json(), flush=True)
    return 0


def _failure(name: str, reason: str) -> Result:
    return Result(name, None, "", "", None, 0, f"failed: {reason}")


def _table(results: list[dict]) -> str:
    header = ("figure", "value", "baseline", "ratio", "runs")
    lines = []
    for item in results:
        unit = item.get("unit") or ""

        def show(value: float | None) -> str:
            if value is None:
                return "—"
            digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 1 else 3
            return f"{value:,.{digits}f} {unit}".strip()

        ratio = item.get("ratio")
        lines.append((item["name"], show(item.get("value")), show(item.get("baseline_value")),
                      "—" if ratio is None else f"{ratio:.3g}×", str(item.get("runs", ""))))
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(header)),
           "  ".join("-" * width for width in widths)]
    out += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in lines]
    notes = [f"- {item['name']}: baseline = {item.get('baseline')}; {item.get('notes')}" for item in results]
    return "\n".join(out + ["", *notes])


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    isolate_app_dirs()  # before any figure runs: this process and every child use the run's own folders
    if args.child:
        return _run_child(args.child, args.smoke)

    names = _selected(args.only)
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    collected: list[dict] = []
    failed = False
    for name in names:
        started = time.perf_counter()
        print(f"[bench] {name}{' (smoke)' if args.smoke else ''}…", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "benchmarks", "--child", name] + (["--smoke"] if args.smoke else [])
        lines: list[str] = []
        try:
            proc = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=None, text=True,
                                  timeout=CHILD_TIMEOUT_S["smoke" if args.smoke else "full"])
            lines = [line for line in proc.stdout.splitlines() if line.strip()]
            reason = None if proc.returncode == 0 else f"exit code {proc.returncode}"
        except subprocess.TimeoutExpired:
            reason = "timed out"
        results = []
        for line in lines:
            try:
                results.append(json.loads(line))
            except ValueError:
                print(f"[bench] {name}: not JSON: {line}", file=sys.stderr)
        if reason is not None or not results:
            failed = True
            results.append(json.loads(_failure(name, reason or "printed no result").to_json()))
        for item in results:
            print(json.dumps(item, ensure_ascii=False), flush=True)
        collected.extend(results)
        print(f"[bench] {name} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    print("\n" + _table(collected), file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
