"""Speed figures of Training Studio, each measured side by side with a baseline: `python -m benchmarks`.

The package owns the benchmarks only (see `__main__` for the runner and one `bench_*` module per figure);
nothing in the app imports it, and the test suite runs it only as `python -m benchmarks --smoke`.
"""
