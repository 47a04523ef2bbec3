"""bench/verify.py at its smallest sizes, so the benchmark cannot rot: it runs, both engines
side by side, the curve's exponent is computed, the reference budget skips what it must, and
the incremental rows carry the verifier's Stats."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from segctl.verifier.incremental import Stats

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "verify.py"


def _bench() -> ModuleType:
    """bench/verify.py as a module (bench/ is not a package on the test path)."""
    if "bench_verify" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_verify", SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_verify"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["bench_verify"]


def _run(*args: str) -> dict[str, Any]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--output", "json", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


@pytest.fixture(scope="module")
def quick() -> dict[str, Any]:
    # Reference at 9 and 13 endpoints (~0.7 and ~1.5 s of CPU) and on the k=4 T=3 fat-tree
    # (~2-2.5 s: a 2 s budget stopped it on a busy machine); 81 endpoints is predicted at
    # ~100 s, far over 6 s (its fitted exponent would have to fall under 0.8 for it not to be).
    return _run("--sizes", "2,3,20", "--reference-budget", "6")


def _measured(result: dict[str, Any]) -> None:
    assert result["ok"] is True and result["failed"] == []
    assert result["proof_s"] > 0 and result["peak_rss_mib"] > result["rss_before_proof_mib"] / 2 > 0
    assert result["flows"] > 0 and result["compile_s"] >= 0 and result["work"]
    assert "checking properties" in result["phases"]
    assert sum(result["phases"].values()) == pytest.approx(result["proof_s"], rel=0.05, abs=0.01)


def test_dense_curve_has_both_engines_and_the_exponent(quick: dict[str, Any]) -> None:
    assert quick["schema"] == "segctl-bench-verify" and quick["schema_version"] == 1
    assert {"machine", "options", "dense", "growth", "fat_tree", "incremental", "goals", "seconds"} <= set(
        quick
    )
    dense = quick["dense"]
    assert [r["endpoints"] for r in dense] == [9, 13, 81]
    for row in dense:
        _measured(row["wavefront"])
        assert row["wavefront"]["engine"] == "wavefront"
    for row in dense[:2]:
        _measured(row["reference"])
        assert row["reference"]["engine"] == "reference"
    assert dense[2]["reference"]["skipped"].startswith("skipped (extrapolated: ~")
    assert dense[2]["reference"]["extrapolated_s"] > 2
    wavefront, reference = quick["growth"]["wavefront"], quick["growth"]["reference"]
    assert len(wavefront["ratios"]) == 2 and isinstance(wavefront["exponent"], float)
    assert len(reference["ratios"]) == 1 and isinstance(reference["exponent"], float)


def test_fat_tree_and_incremental_rows(quick: dict[str, Any]) -> None:
    (fat,) = quick["fat_tree"]
    assert fat["name"] == "k=4 T=3 N=12" and fat["endpoints"] == 14
    _measured(fat["wavefront"])
    _measured(fat["reference"])
    rows = quick["incremental"]
    assert [r["name"] for r in rows] == ["two-rack n=2", "two-rack n=3", "two-rack n=20", "k=4 T=3 N=12"]
    fields = {f.name for f in dataclasses.fields(Stats)}
    for row in rows:
        assert row["ok"] and row["changed_ok"] and row["flows_changed"] > 0
        assert row["ratio"] == pytest.approx(row["full_s"] / row["incremental_s"])
        assert {step: set(st) for step, st in row["stats"].items()} == dict.fromkeys(
            ("full", "change", "unchanged"), fields
        )
        assert [row["stats"][s]["mode"] for s in ("full", "change", "unchanged")] == [
            "full", "incremental", "unchanged",
        ]  # fmt: skip
        assert row["stats"]["change"]["reproven"] < row["stats"]["change"]["parts"]


def test_goals_and_tables(quick: dict[str, Any]) -> None:
    goals = {g["goal"]: g for g in quick["goals"]}
    assert goals["dense two-rack, 161 endpoints"]["met"] is None  # not in --sizes
    assert goals["fat-tree k=8 T=100 N=2000"]["measured"] == "not run (needs --big)"
    growth = goals["growth per doubling of endpoints over 9/13/81"]
    assert growth["met"] in (True, False) and "exponent" in growth["measured"]
    bench = _bench()
    text = bench.render(quick)
    for title in ("Dense two-rack curve", "Growth", "Fat-tree rows", "Incremental", "Goals"):
        assert title in text
    assert "two-rack n=20" in text and "skipped (extrapolated: ~" in text
    assert "| case | endpoints |" in bench.render(quick, markdown=True)


def test_growth_fits_a_power_law() -> None:
    bench = _bench()
    fit = bench.growth([(10, 1.0), (20, 4.0), (40, 16.0)])
    assert fit["ratios"] == [4.0, 4.0]
    assert fit["exponent"] == pytest.approx(2.0) and fit["per_doubling"] == pytest.approx(4.0)
    assert bench.extrapolate(fit, 80) == pytest.approx(64.0)
    assert bench.growth([(10, 1.0)])["exponent"] is None


@pytest.mark.slow
def test_a_reference_over_its_budget_is_stopped_and_larger_sizes_skipped() -> None:
    doc = _run("--sizes", "6,8", "--reference-budget", "1")
    first, second = (r["reference"] for r in doc["dense"])
    assert first["error"].startswith("over the CPU budget: stopped after")
    assert first["peak_rss_mib"] > 0 and first["process_cpu_s"] > 0.5  # the kernel stops it near 1 s
    assert second == {"skipped": "skipped (25 endpoints went over the budget of 1 s)"}
    assert "proof_s" in doc["dense"][1]["wavefront"]
