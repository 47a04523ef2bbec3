"""``segctl verify`` from the command line: one step from an intent, and the table sources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from segctl.cli import main

ROOT = Path(__file__).resolve().parents[2]
TWO = str(ROOT / "examples" / "two-tenants.yaml")


def test_verify_without_flows_or_live_compiles_in_memory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", TWO]) == 0
    out = capsys.readouterr().out
    assert "(compiled in memory)" in out and "all properties hold" in out
    assert main(["verify", TWO, "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["tables"] == "compiled in memory"


def test_one_step_verify_as_a_subprocess(tmp_path: Path) -> None:
    """The real entry point: no --flows, no --live, exit 0 and a report written."""
    proc = subprocess.run(
        [sys.executable, "-m", "segctl.cli", "verify", TWO, "--report", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "required" not in proc.stderr and "all properties hold" in proc.stdout
    assert (tmp_path / "r" / "report.html").is_file()


def test_bridge_prefix_needs_live(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", TWO, "--bridge-prefix", "sg"]) == 2
    assert "--bridge-prefix: only applies with --live" in capsys.readouterr().err
