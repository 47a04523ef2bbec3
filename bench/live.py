"""Live measurements that need the whole controller (REST API, verifier, live re-verify).

update latency, convergence after a switch restart and hitless updates all run
``segctl controller run`` as a subprocess on free ports. Until the controller can
start with a verifier, each returns an ``error`` naming exactly why it did not run;
a figure is never made up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.push import free_port

__all__ = ["convergence", "hitless", "start_controller", "update"]

REPO = Path(__file__).resolve().parents[1]
LEAF_SPINE = REPO / "examples" / "leaf-spine.yaml"


def start_controller(
    intent: Path, log: Path, *, timeout: float = 30.0
) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start ``segctl controller run`` on free ports; wait for its API; raise RuntimeError if it exits."""
    of_port, api_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "segctl.controller.cli", "controller", "run", "--intent", str(intent),
           "--listen", f"127.0.0.1:{of_port}", "--api", f"127.0.0.1:{api_port}",
           "--audit-interval", "0"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"exit {proc.returncode}"
            raise RuntimeError(f"segctl controller run exited {proc.returncode}: {reason}")
        if "REST API on" in log.read_text(errors="replace"):
            return proc, of_port, api_port
        time.sleep(0.1)
    stop_controller(proc)
    raise RuntimeError(f"segctl controller run did not serve its API within {timeout:g} s")


def stop_controller(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the controller we started (by its pid), then SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _needs_controller(what: str) -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="segctl-bench-") as tmp:
        try:
            proc, _, _ = start_controller(LEAF_SPINE, Path(tmp) / "controller.log")
        except RuntimeError as exc:
            return {"error": f"blocked: {exc}"}
        stop_controller(proc)
    return {"error": f"blocked: the controller starts, but the {what} measurement is not written yet"}


def update(updates: int = 20) -> dict[str, Any]:
    """p50/p95 of one-policy REST updates until pushed and live re-verified (leaf-spine)."""
    return _needs_controller("update-latency")


def convergence(rules: int = 10_000) -> dict[str, Any]:
    """Seconds from a restarted switch with empty tables to resynced and re-verified."""
    return _needs_controller("convergence")


def hitless(updates: int = 20) -> dict[str, Any]:
    """Pings lost between unaffected endpoints during policy updates (vs a run without)."""
    return _needs_controller("hitless")
