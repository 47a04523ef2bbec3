"""bench/guardrails.py at its smallest sizes, so the benchmark cannot rot: both cases verify
clean, the ordered case compiles its extra rules and narrows the relation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_measures_both_cases() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "guardrails.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [r["n"] for r in doc["rows"]] == [3, 6]
    for row in doc["rows"]:
        base, ordered = row["baseline"], row["ordered"]
        assert base["endpoints"] == ordered["endpoints"] == 4 * row["n"] + 1
        assert ordered["flows"] > base["flows"]  # the guardrail band and the deny policies
        assert ordered["pairs"] < base["pairs"]  # not-b0 takes every A -> b0 pair away
    assert doc["exponent"]["baseline"] is not None and doc["exponent"]["ordered"] is not None
