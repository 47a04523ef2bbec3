"""segctl benchmarks (run bench/run.py)."""
