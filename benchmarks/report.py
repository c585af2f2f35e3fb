"""`python -m benchmarks.report RESULTS.jsonl`: the README's Performance table from a benchmark run's output.

This module owns turning the JSON lines that `python -m benchmarks` prints into a Markdown section: the
machine it ran on (CPU model, cores, memory, Python, Qt/PySide6 and OS versions) and one table row per
figure with its baseline and ratio, then each figure's notes. Save a run with
`python -m benchmarks > results.jsonl`, then paste what this prints into the README.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or cpu
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    try:
        import PySide6
        from PySide6.QtCore import qVersion

        qt = f"Qt {qVersion()} (PySide6 {PySide6.__version__})"
    except ImportError:
        qt = "Qt not installed"
    return (f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; {qt}; offscreen Qt platform")


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 1 else 3
    return f"{value:,.{digits}f} {unit}".strip()


def markdown(results: list[dict]) -> str:
    lines = ["| Figure | Value | Baseline | Baseline value | Ratio | Runs |", "|---|---|---|---|---|---|"]
    for item in results:
        ratio = item.get("ratio")
        lines.append(f"| {item['name']} | {_number(item.get('value'), item.get('unit', ''))} | {item.get('baseline', '')} "
                     f"| {_number(item.get('baseline_value'), item.get('unit', ''))} "
                     f"| {'—' if ratio is None else f'{ratio:.3g}×'} | {item.get('runs', '')} |")
    notes = [f"- **{item['name']}**: {item.get('notes', '')}" for item in results]
    return "\n".join(lines + ["", *notes])


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    results = [json.loads(line) for line in Path(argv[0]).read_text().splitlines() if line.strip()]
    print(f"Measured on: {machine()}.\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
