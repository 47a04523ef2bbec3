"""SIGKILL the controller at each step of a change; the next one makes it whole or absent.

Real switches (OVS userspace bridges of the leaf-spine fabric) and the controller process
with a store. The first controller applies intent A, the switches connect and get it; then
change B (web1 moves from leaf1 to leaf2: four switches change) is sent, and the controller
kills itself at one step (``SEGCTL_TEST_CRASH_AT``, :mod:`segctl.controller.crashpoint`):
after compiling, after the gate, after recording the revision, in the middle of a bundle
(every add sent, no commit), after the push, after the live proof. A second controller
starts on the same store and OpenFlow port; the switches reconnect. Then:

* the switches hold exactly A (killed before the revision was recorded) or exactly B;
* the store's invariants hold (``support.invariants.check_store``: one audit entry per
  revision, written with it; its live outcome recorded, ``recovered`` after a crash);
* ``segctl audit verify`` says the chain is intact.
"""

from __future__ import annotations

import copy
import http.client
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.api_server import ApiServer, start_server, subprocess_env, wait_for
from support.invariants import check_store

from segctl.controller.crashpoint import ENV, STEPS
from segctl.controller.store import Database
from segctl.openflow.ofctl import Flow, parse_flow, parse_flows
from segctl.testbed import Lab, ovs
from segctl.testbed.intent_lab import lab_spec
from segctl.topology.load import intent_from_document
from segctl.topology.network import Network, resolve

REPO = Path(__file__).resolve().parents[2]
LEAF_SPINE = yaml.safe_load((REPO / "examples" / "leaf-spine.yaml").read_text())
pytestmark = pytest.mark.filterwarnings("ignore:Using fork:DeprecationWarning")


def moved() -> dict[str, Any]:
    doc = copy.deepcopy(LEAF_SPINE)
    doc["tenants"][0]["endpoints"][0]["attach"] = "leaf2:20"
    return doc


def desired(network: Network) -> dict[str, set[Flow]]:
    from segctl.flows.compiler import compile_network

    return {n: {parse_flow(r.to_ofctl()) for r in p.rules} for n, p in compile_network(network).items()}


def held(lab: Lab, names: list[str]) -> dict[str, set[Flow]]:
    return {n: set(parse_flows(ovs.dump_flows(lab.bridge(n)), source=n)) for n in names}


def revisions(server: ApiServer) -> list[dict[str, Any]]:
    return list(server.call("GET", "/v1/revisions", role="auditor").json()["revisions"])


def put_and_die(server: ApiServer, document: dict[str, Any]) -> None:
    """Send the change; the controller dies while handling it (no answer, or one before it dies)."""
    try:
        reply = server.call("PUT", "/v1/intent", document, timeout=120)
    except (ConnectionError, http.client.HTTPException):
        reply = None
    server.proc.wait(timeout=60)
    assert server.proc.returncode == -9, (server.proc.returncode, reply, server.log()[-2000:])


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_of_a_change(lab_prefix: str, tmp_path: Path, step: str) -> None:
    a, b = resolve(intent_from_document(LEAF_SPINE)), resolve(intent_from_document(moved()))
    want_a, want_b = desired(a), desired(b)
    names = [s.name for s in a.switches]
    applied = STEPS.index(step) >= STEPS.index("recorded")
    # the first change (A) passes each step once, with no switch connected (no bundle)
    nth = 1 if step == "bundle" else 2
    first = start_server(tmp_path, env={ENV: f"{step}@{nth}"}, name="first")
    try:
        assert first.call("PUT", "/v1/intent", LEAF_SPINE, timeout=120).status == 200
        with Lab(lab_spec(a, lab_prefix, hosts=False)) as lab:
            for name in names:
                ovs.set_controller(lab.bridge(name), [f"tcp:127.0.0.1:{first.of_port}"])
                ovs.run(["ovs-vsctl", "set", "controller", lab.bridge(name), "max_backoff=1000"])
            wait_for(lambda: held(lab, names) == want_a, timeout=60, what="A on every switch")
            wait_for(
                lambda: (
                    len(first.call("GET", "/v1/audit?action=switch.resync", role="auditor").json()["entries"])
                    == len(names)
                ),
                timeout=60,
                what="every resync",
            )
            put_and_die(first, moved())
            assert f"killing the controller at step {step}" in first.log()
            # where it died: the switches hold A until the push, B after it (a bundle never
            # committed leaves its switch as it was)
            assert held(lab, names) == (want_b if STEPS.index(step) >= STEPS.index("pushed") else want_a)

            second = start_server(
                tmp_path, store=first.store, tokens=first.tokens, of_port=first.of_port, name="second"
            )
            try:
                want = want_b if applied else want_a
                wait_for(lambda: held(lab, names) == want, timeout=60, what="the switches to be resynced")
                count = 2 if applied else 1
                wait_for(
                    lambda: [r["live_verdict"] for r in revisions(second)] == ["pass"] * count,
                    timeout=60,
                    what=f"{count} revision(s) proven live",
                )
                verify = subprocess.run(
                    [sys.executable, "-m", "segctl.cli", "audit", "verify", str(first.store)],
                    capture_output=True, text=True, env=subprocess_env(), check=False,
                )  # fmt: skip
                assert verify.returncode == 0, verify.stdout + verify.stderr
            finally:
                assert second.stop() == 0, second.log()[-3000:]
            db = Database(first.store)
            check_store(db)
            if applied:  # B's outcome was recorded by the second controller, as a recovery
                live = [
                    e.detail for e in _audit(db) if e.action == "intent.live" and e.detail["revision"] == 2
                ]
                assert live == [{"revision": 2, "live_verdict": "pass", "recovered": True}], live
            db.close()
            assert held(lab, names) == (want_b if applied else want_a)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
            first.proc.wait()


def _audit(db: Database) -> list[Any]:
    from segctl.controller.audit import AuditLog

    return AuditLog(db).entries(limit=100_000)
