"""Classic Ryu, for real: the controller's OVS tests run with ``SEGCTL_FRAMEWORK=ryu``.

``scripts/ryu-venv.sh`` builds ``.venv-ryu`` (Ryu 4.34 in place of os-ken; built once,
then reused while the script and pyproject.toml are unchanged), and the whole of
``tests/ovs/test_controller_ovs.py`` (initial push and isolation, unknown dpid, drift
repair, reconnects, a bad intent, lossless updates, link failure, OpenFlow over TLS, the
REST API under a long proof, port states; about 80 s) runs in it. Every controller those
tests start is a ``segctl controller run`` of that virtualenv, so the app, the bundles,
the request/reply service and the REST API all run on Ryu.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RYU_PYTHON = REPO / ".venv-ryu" / "bin" / "python"


@pytest.fixture(scope="module")
def ryu_python() -> Path:
    """The ``.venv-ryu`` interpreter, built (or found up to date) by ``scripts/ryu-venv.sh``."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "ryu-venv.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, f"scripts/ryu-venv.sh failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return RYU_PYTHON


def _env() -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))},
        "SEGCTL_FRAMEWORK": "ryu",
        "PYTHONPATH": str(REPO),
    }


def test_the_framework_seam_picks_ryu(ryu_python: Path) -> None:
    probe = (
        "import importlib.util, sys\n"
        "from segctl.controller import framework as f\n"
        "assert importlib.util.find_spec('os_ken') is None, 'os-ken must not be installed here'\n"
        "print(f.FRAMEWORK, f.RyuApp.__module__, f.OFCTL_SERVICE_APP)\n"
    )
    done = subprocess.run(
        [str(ryu_python), "-c", probe], capture_output=True, text=True, env=_env(), cwd=REPO, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ryu", "ryu.base.app_manager", "ryu.app.ofctl.service"]


def test_controller_ovs_tests_pass_on_classic_ryu(ryu_python: Path, ovs_available: None) -> None:
    done = subprocess.run(
        [str(ryu_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/ovs/test_controller_ovs.py"],
        capture_output=True, text=True, env=_env(), cwd=REPO, timeout=1200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"on Ryu:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]


def test_ryu_manager_loads_the_app_and_pushes_the_proven_rules(
    ryu_python: Path, lab_prefix: str, tmp_path: Path
) -> None:
    """The docs/controller.md recipe: ``SEGCTL_INTENT=FILE python -m segctl.cli.ryu_manager``
    (Ryu's own manager; the ``ryu-manager`` script cannot start on Python 3.11, see there)."""
    from segctl.flows.compiler import compile_network
    from segctl.openflow.ofctl import parse_flow, parse_flows
    from segctl.testbed import Lab, ovs
    from segctl.testbed.intent_lab import free_port, lab_spec
    from segctl.topology.network import load_network

    intent = REPO / "examples" / "two-tenants.yaml"
    network = load_network(intent)
    want = {parse_flow(r.to_ofctl()) for r in compile_network(network)["s1"].rules}
    port, log = free_port(), tmp_path / "ryu-manager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ryu_python), "-m", "segctl.cli.ryu_manager",
             "--ofp-tcp-listen-port", str(port), "--ofp-listen-host", "127.0.0.1"],
            stdout=out, stderr=subprocess.STDOUT, env={**_env(), "SEGCTL_INTENT": str(intent)}, cwd=tmp_path,
        )  # fmt: skip
    try:
        with Lab(lab_spec(network, lab_prefix)) as lab:
            _wait(lambda: "segctl app (ryu) serving" in log.read_text() or proc.poll() is not None, log)
            assert proc.poll() is None, log.read_text()[-4000:]
            ovs.set_controller(lab.bridge("s1"), [f"tcp:127.0.0.1:{port}"])
            _wait(lambda: set(parse_flows(ovs.dump_flows(lab.bridge("s1")))) == want, log)
        text = log.read_text()
        assert "loading app ryu.app.ofctl.service" in text and "Traceback" not in text, text[-4000:]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait(predicate: Callable[[], bool], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out; ryu-manager log:\n{log.read_text()[-4000:]}"
        time.sleep(0.2)
