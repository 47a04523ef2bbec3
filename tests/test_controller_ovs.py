"""The controller as a subprocess against real OVS userspace bridges and namespaces.

Each test builds the example fabric with :class:`segctl.testbed.Lab` (patch-port links
with the fabric's port numbers, one namespace per endpoint), starts
``segctl controller run`` on free ports, points the bridges at it, and judges by what
the switches hold (``ovs-ofctl dump-flows`` parsed into Flows, compared with the
compiled rules) and by live traffic (allowed pings pass, cross-tenant pings fail).
Waits poll with timeouts; the controller is stopped by its pid and must exit 0.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from segctl.flows.ofctl import Flow, parse_flow, parse_flows
from segctl.testbed import Lab, LabSpec, SwitchSpec, ovs, probes
from segctl.testbed.intent_lab import free_port, lab_spec
from segctl.topology.network import Network, load_network

REPO = Path(__file__).resolve().parents[1]
LEAF_SPINE = REPO / "examples" / "leaf-spine.yaml"
TWO_TENANTS = REPO / "examples" / "two-tenants.yaml"

# os-ken (imported in-process by other tests) loads eventlet, which warns on every fork;
# our subprocesses fork+exec at once.
pytestmark = pytest.mark.filterwarnings("ignore:Using fork:DeprecationWarning")


# ----------------------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def desired_tables(network: Network) -> dict[str, set[Flow]]:
    """What the controller must push: every compiled rule, as ``parse_flow(rule.to_ofctl())``."""
    from segctl.flows.compiler import compile_network

    programs = compile_network(network)
    return {name: {parse_flow(r.to_ofctl()) for r in p.rules} for name, p in programs.items()}


def live_flows(lab: Lab, switch: str) -> set[Flow]:
    return set(parse_flows(ovs.dump_flows(lab.bridge(switch)), source=switch))


def tables_match(lab: Lab, want: dict[str, set[Flow]]) -> bool:
    return all(live_flows(lab, sw) == flows for sw, flows in want.items())


@dataclass
class Controller:
    """A running ``segctl controller run`` subprocess."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    intent_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connect(self, lab: Lab, switches: list[str]) -> None:
        for sw in switches:
            ovs.set_controller(lab.bridge(sw), [f"tcp:127.0.0.1:{self.port}"])

    def reload(self, intent_text: str) -> None:
        """Write a new intent file and ask the controller to apply it (SIGHUP)."""
        marker = self.log().count("reload of")
        self.intent_path.write_text(intent_text)
        self.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.log().count("reload of") > marker, timeout=60, what="the reload to finish")


@pytest.fixture
def controller_factory(tmp_path: Path) -> Iterator[Callable[..., Controller]]:
    started: list[Controller] = []

    def start(intent: Path, *, audit_interval: float = 0.0, extra: tuple[str, ...] = ()) -> Controller:
        intent_copy = tmp_path / f"intent-{len(started)}.yaml"
        shutil.copy(intent, intent_copy)
        log_path = tmp_path / f"controller-{len(started)}.log"
        port = free_port()
        cmd = [
            sys.executable, "-m", "segctl.controller.cli", "controller", "run",
            "--intent", str(intent_copy), "--listen", f"127.0.0.1:{port}", "--no-api",
            "--audit-interval", str(audit_interval), *extra,
        ]  # fmt: skip
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                },
            )
        ctl = Controller(proc, port, log_path, intent_copy)
        started.append(ctl)
        wait_for(
            lambda: "listening for OpenFlow" in ctl.log() or proc.poll() is not None,
            timeout=60,
            what="the controller to listen",
        )
        assert proc.poll() is None, f"controller exited early:\n{ctl.log()[-4000:]}"
        return ctl

    try:
        yield start
    finally:
        for ctl in started:
            if ctl.proc.poll() is None:
                ctl.proc.terminate()
                try:
                    ctl.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    ctl.proc.kill()
                    ctl.proc.wait()
                    pytest.fail(f"controller ignored SIGTERM:\n{ctl.log()[-4000:]}")
            assert ctl.proc.returncode == 0, f"controller exit {ctl.proc.returncode}:\n{ctl.log()[-4000:]}"


def ns(lab: Lab, host: str) -> str:
    return lab.namespace(host)


def reachable(lab: Lab, src: str, dst_ip: str) -> bool:
    return probes.ping(ns(lab, src), dst_ip, count=2, timeout=1.0)


# ------------------------------------------------------------------------------- tests


def test_initial_push_on_connect_and_isolation(lab_prefix: str, controller_factory) -> None:  # type: ignore[no-untyped-def]
    network = load_network(LEAF_SPINE)
    want = desired_tables(network)
    ctl = controller_factory(LEAF_SPINE)
    with Lab(lab_spec(network, lab_prefix)) as lab:
        ctl.connect(lab, [s.name for s in network.switches])
        wait_for(lambda: tables_match(lab, want), timeout=60, what="every switch to hold its rules")
        assert " failed" not in ctl.log(), ctl.log()[-3000:]
        # allowed inside a tenant (web -> app icmp is declared), across the fabric
        assert reachable(lab, "web1", "10.1.2.10")
        # tenants are isolated although globex reuses acme's addresses
        assert not reachable(lab, "gweb1", "10.1.1.11")
        assert not reachable(lab, "web1", "10.1.1.20")


def test_unknown_dpid_gets_drop_all(lab_prefix: str, controller_factory) -> None:  # type: ignore[no-untyped-def]
    ctl = controller_factory(TWO_TENANTS)
    spec = LabSpec(lab_prefix, [SwitchSpec("rogue", 0x5E6C00DEAD)])
    with Lab(spec) as lab:
        ovs.add_flows(lab.bridge("rogue"), ["table=0,priority=5,actions=drop"], bundle=False)
        ctl.connect(lab, ["rogue"])
        only_drop = {Flow(0, 0, 0, (), parse_flows("priority=0,actions=drop")[0].actions)}
        wait_for(lambda: live_flows(lab, "rogue") == only_drop, timeout=30, what="the drop-all rule")
        wait_for(lambda: "not in the fabric" in ctl.log(), timeout=5, what="the warning")


def test_drift_is_detected_and_repaired(lab_prefix: str, controller_factory) -> None:  # type: ignore[no-untyped-def]
    network = load_network(TWO_TENANTS)
    want = desired_tables(network)
    ctl = controller_factory(TWO_TENANTS, audit_interval=1.0)
    with Lab(lab_spec(network, lab_prefix)) as lab:
        ctl.connect(lab, ["s1"])
        wait_for(lambda: tables_match(lab, want), timeout=60, what="the initial push")
        bridge = lab.bridge("s1")
        victim = sorted(want["s1"], key=lambda f: (f.table, -f.priority, f.text))[0]
        # behind the controller's back: a rogue flow that would bridge the tenants, and a deletion
        ovs.add_flows(bridge, ["table=0,priority=65000,in_port=1,actions=output:3"], bundle=False)
        ovs.run(["ovs-ofctl", "-O", ovs.OF_VERSION, "--strict", "del-flows", bridge, _strict_spec(victim)])
        assert not tables_match(lab, want)
        wait_for(lambda: tables_match(lab, want), timeout=30, what="the audit to repair the drift")
        assert "drift" in ctl.log().lower()
        assert reachable(lab, "r1", "10.0.0.12")


def _strict_spec(flow: Flow) -> str:
    """An ``ovs-ofctl --strict del-flows`` spec for one flow (table, priority, match)."""
    from segctl.flows.ofctl import format_match

    match = format_match(flow.match)
    return f"table={flow.table},priority={flow.priority}" + (f",{match}" if match else "")


def test_switch_with_empty_tables_is_resynced_on_reconnect(lab_prefix: str, controller_factory) -> None:  # type: ignore[no-untyped-def]
    network = load_network(TWO_TENANTS)
    want = desired_tables(network)
    ctl = controller_factory(TWO_TENANTS, audit_interval=0)  # no audit: the reconnect must repair
    with Lab(lab_spec(network, lab_prefix)) as lab:
        ctl.connect(lab, ["s1"])
        wait_for(lambda: tables_match(lab, want), timeout=60, what="the initial push")
        bridge = lab.bridge("s1")
        # a switch restart: the connection drops and the tables come back empty
        ovs.del_controller(bridge)
        ovs.del_flows(bridge)
        assert live_flows(lab, "s1") == set()
        ctl.connect(lab, ["s1"])
        wait_for(lambda: tables_match(lab, want), timeout=30, what="the resync after reconnect")
        assert reachable(lab, "r1", "10.0.0.12")


def test_bad_intent_pushes_nothing(lab_prefix: str, controller_factory) -> None:  # type: ignore[no-untyped-def]
    network = load_network(TWO_TENANTS)
    want = desired_tables(network)
    ctl = controller_factory(TWO_TENANTS)
    with Lab(lab_spec(network, lab_prefix)) as lab:
        ctl.connect(lab, ["s1"])
        wait_for(lambda: tables_match(lab, want), timeout=60, what="the initial push")
        bad = TWO_TENANTS.read_text().replace("ip: 10.0.0.12", "ip: 10.9.9.12", 1)  # outside its segment
        ctl.reload(bad)
        assert "rejected, nothing pushed" in ctl.log()
        assert "10.9.9.12" in ctl.log()
        assert tables_match(lab, want)
        assert reachable(lab, "r1", "10.0.0.12")


def test_update_keeps_unaffected_traffic_lossless(lab_prefix: str, controller_factory) -> None:  # type: ignore[no-untyped-def]
    network = load_network(TWO_TENANTS)
    ctl = controller_factory(TWO_TENANTS)
    # the change: blue gets a strict segment with a policy; red is untouched
    changed = TWO_TENANTS.read_text().replace(
        "      - {name: lan, cidr: 10.0.0.0/24, gateway: 10.0.0.1}\n    endpoints:\n      - {name: b1",
        "      - {name: lan, cidr: 10.0.0.0/24, gateway: 10.0.0.1, strict: true}\n"
        "    endpoints:\n      - {name: b1",
    )
    assert changed != TWO_TENANTS.read_text()
    changed_path = ctl.intent_path.with_name("changed.yaml")
    changed_path.write_text(changed)
    new_want = desired_tables(load_network(changed_path))
    with Lab(lab_spec(network, lab_prefix)) as lab:
        ctl.connect(lab, ["s1"])
        wait_for(lambda: tables_match(lab, desired_tables(network)), timeout=60, what="the initial push")
        assert reachable(lab, "r1", "10.0.0.12")
        assert reachable(lab, "b1", "10.0.0.12")
        ping = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns(lab, "r1"),
                "ping",
                "-n",
                "-q",
                "-i",
                "0.02",
                "-c",
                "250",
                "10.0.0.12",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            time.sleep(0.5)  # let the ping stream run before the change
            ctl.reload(changed)
            out, _ = ping.communicate(timeout=30)
        finally:
            if ping.poll() is None:
                ping.kill()
                ping.wait()
        assert tables_match(lab, new_want), "the update did not reach the switch"
        assert " 0% packet loss" in out, out
        assert not reachable(lab, "b1", "10.0.0.12"), "strict segment still lets b1 reach b2"


def test_fabric_link_failure_reroutes_and_isolation_holds(lab_prefix: str, controller_factory) -> None:  # type: ignore[no-untyped-def]
    network = load_network(LEAF_SPINE)
    want = desired_tables(network)
    ctl = controller_factory(LEAF_SPINE)
    with Lab(lab_spec(network, lab_prefix)) as lab:
        ctl.connect(lab, [s.name for s in network.switches])
        wait_for(lambda: tables_match(lab, want), timeout=60, what="the initial push")
        assert reachable(lab, "web1", "10.1.2.10")  # leaf1 -> leaf2, preferred path via spine1
        leaf1 = lab.bridge("leaf1")
        before = live_flows(lab, "leaf1")
        # the link leaf1:1 <-> spine1:1 fails: its patch port goes away (OVS sends no port
        # status for `ovs-ofctl mod-port ... down`, but it does for a deleted port)
        patch, peer = lab.patch_port("leaf1", 1), lab.patch_port("spine1", 1)
        ovs.run(["ovs-vsctl", "del-port", leaf1, patch])
        wait_for(
            lambda: live_flows(lab, "leaf1") != before, timeout=30, what=f"the reroute\n{ctl.log()[-3000:]}"
        )
        assert not any(getattr(a, "port", None) == 1 for f in live_flows(lab, "leaf1") for a in f.actions), (
            "leaf1 still forwards onto the failed link"
        )
        assert reachable(lab, "web1", "10.1.2.10"), "traffic did not move to spine2"
        assert not reachable(lab, "gweb1", "10.1.1.11"), "isolation broke after the reroute"
        ovs.add_port(leaf1, patch, ofport=1, type_="patch", options={"peer": peer})
        wait_for(lambda: tables_match(lab, want), timeout=30, what="the preferred paths to return")
        assert reachable(lab, "web1", "10.1.2.10")


def test_openflow_over_tls(lab_prefix: str, controller_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With --key/--cert/--ca-cert the controller speaks TLS only and still pushes on connect."""
    from segctl.controller.tls import make_pki

    pki = make_pki(tmp_path / "pki")
    network = load_network(TWO_TENANTS)
    want = desired_tables(network)
    ctl = controller_factory(
        TWO_TENANTS,
        extra=("--key", str(pki.controller_key), "--cert", str(pki.controller_cert),
               "--ca-cert", str(pki.ca_cert)),
    )  # fmt: skip
    assert "listening for OpenFlow on tls:" in ctl.log()
    previous = ovs.run(["ovs-vsctl", "get-ssl"]).strip()
    try:
        ovs.run(["ovs-vsctl", "set-ssl", str(pki.switch_key), str(pki.switch_cert), str(pki.ca_cert)])
        with Lab(lab_spec(network, lab_prefix)) as lab:
            ovs.set_controller(lab.bridge("s1"), [f"ssl:127.0.0.1:{ctl.port}"])
            wait_for(lambda: tables_match(lab, want), timeout=60, what="the push over TLS")
            assert reachable(lab, "r1", "10.0.0.12")
    finally:
        _restore_ssl(previous)


def _restore_ssl(previous: str) -> None:
    """Put back the OVS SSL settings that ``ovs-vsctl get-ssl`` printed before the test."""
    fields = dict(line.split(": ", 1) for line in previous.splitlines() if ": " in line)
    key, cert, ca = fields.get("Private key"), fields.get("Certificate"), fields.get("CA Certificate")
    if key and cert and ca:
        ovs.run(["ovs-vsctl", "set-ssl", key.strip(), cert.strip(), ca.strip()])
    else:
        ovs.run(["ovs-vsctl", "del-ssl"])
