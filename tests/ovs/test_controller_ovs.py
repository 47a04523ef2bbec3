"""The controller as a subprocess against real OVS userspace bridges and namespaces.

Each test builds the example fabric with :class:`segctl.testbed.Lab` (patch-port links
with the fabric's port numbers, one namespace per endpoint), starts
``segctl controller run`` on free ports, points the bridges at it, and judges by what
the switches hold (``ovs-ofctl dump-flows`` parsed into Flows, compared with the
compiled rules) and by live traffic (allowed pings pass, cross-tenant pings fail).
Waits poll with timeouts; the controller is stopped by its pid and must exit 0.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from segctl.openflow.ofctl import Flow, parse_flow, parse_flows
from segctl.testbed import Lab, LabSpec, SwitchSpec, ovs, probes
from segctl.testbed.intent_lab import free_port, lab_spec
from segctl.topology.network import Network, load_network

REPO = Path(__file__).resolve().parents[2]
LEAF_SPINE = REPO / "examples" / "leaf-spine.yaml"
TWO_TENANTS = REPO / "examples" / "two-tenants.yaml"
INTERNET = REPO / "examples" / "internet.yaml"

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

    def start(
        intent: Path,
        *,
        audit_interval: float = 0.0,
        extra: tuple[str, ...] = (),
        port: int | None = None,
        ready: str = "listening for OpenFlow",
    ) -> Controller:
        intent_copy = tmp_path / f"intent-{len(started)}.yaml"
        shutil.copy(intent, intent_copy)
        log_path = tmp_path / f"controller-{len(started)}.log"
        port = port or free_port()
        cmd = [
            sys.executable, "-m", "segctl.cli", "controller", "run",
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
            lambda: ready in ctl.log() or proc.poll() is not None,
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


def test_switches_connecting_while_the_intent_loads_are_admitted(
    lab_prefix: str, controller_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The listener is up before the intent is compiled and proved (that runs off the hub);
    a switch that connects meanwhile (a controller restart: switches retry at once) must get
    its rules once the intent is loaded, never "not in the fabric: drop-all"."""
    import yaml

    from segctl.controller.service import intent_document
    from segctl.topology.network import resolve
    from segctl.topology.synthetic import policy_pair

    network = resolve(policy_pair(8, 4, 1000, policies=10))  # loading and proving: seconds
    intent = tmp_path / "slow.yaml"
    intent.write_text(yaml.safe_dump(intent_document(network.intent), sort_keys=False))
    want = desired_tables(network)
    with Lab(lab_spec(network, lab_prefix, hosts=False)) as lab:
        # os-ken's OpenFlow listener is started before the service loads the intent: connect
        # the bridges as soon as it is instantiated, while the load (seconds) is running.
        ctl = controller_factory(intent, ready="OFPHandler")
        for name in [s.name for s in network.switches]:
            ovs.set_controller(lab.bridge(name), [f"tcp:127.0.0.1:{ctl.port}"])
            ovs.run(["ovs-vsctl", "set", "controller", lab.bridge(name), "max_backoff=1000"])
        wait_for(lambda: tables_match(lab, want), timeout=60, what="every switch to hold its rules")
        assert "not in the fabric" not in ctl.log(), ctl.log()[-3000:]
        assert "connected before the intent is loaded" in ctl.log(), "the race was not exercised"


def _strict_spec(flow: Flow) -> str:
    """An ``ovs-ofctl --strict del-flows`` spec for one flow (table, priority, match)."""
    from segctl.openflow.ofctl import format_match

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


def _announced(frame: bytes, mac: str) -> str | None:
    """The address a gratuitous ARP from ``mac`` announces (sender = target), else None."""
    gratuitous = frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x01" and frame[28:32] == frame[38:42]
    if len(frame) < 42 or not gratuitous or frame[22:28] != bytes.fromhex(mac.replace(":", "")):
        return None
    return ".".join(str(b) for b in frame[28:32])


def test_uplink_failover_moves_the_uplink_rules_to_the_standby(lab_prefix: str, controller_factory) -> None:  # type: ignore[no-untyped-def]
    """examples/internet.yaml: the uplink edge2:48 goes away (its port is deleted), the
    controller recompiles for the standby edge1:48, where a second "internet" host (the
    same router address) answers and hears the fabric's gratuitous ARP; when the port
    returns the rules go back to edge2, and the router there hears it."""
    import dataclasses

    from segctl.testbed.netns import add_address
    from segctl.topology.network import with_uplinks_down

    network = load_network(INTERNET)
    ext = network.external("internet")
    want = desired_tables(network)
    failed_over = desired_tables(with_uplinks_down(network, [(ext.switch, ext.port)]))
    assert want != failed_over
    spec = lab_spec(network, lab_prefix)
    router = next(h for h in spec.hosts if h.name == f"x{ext.index}")
    standby = dataclasses.replace(router, name="xs", switch="edge1", port=48)
    server = "203.0.113.5"  # an outside server, behind both uplinks
    ctl = controller_factory(INTERNET)
    with Lab(dataclasses.replace(spec, hosts=[*spec.hosts, standby])) as lab:
        for host in (router.name, standby.name):
            add_address(lab.namespace(host), lab.host_ifname, server, 32)
        ctl.connect(lab, [s.name for s in network.switches])
        wait_for(lambda: tables_match(lab, want), timeout=60, what="the initial push")
        app1 = lab.namespace("app1")
        assert probes.ping(app1, server, count=2), "app1 does not get out through edge2:48"
        edge2, uplink = lab.bridge("edge2"), lab.host_port(router.name)
        # the fabric announces its MAC out of the new active port (a gratuitous ARP)
        garp = f"arp and ether src {ext.mac}"
        with probes.Sniffer(lab.namespace(standby.name), lab.host_ifname, garp, timeout=15, count=1) as heard:
            ovs.run(["ovs-vsctl", "del-port", edge2, uplink])
            wait_for(
                lambda: tables_match(lab, failed_over),
                timeout=30,
                what=f"the failover to edge1:48\n{ctl.log()[-3000:]}",
            )
        assert [_announced(f, ext.mac) for f in heard.frames] == ["198.51.100.10"], heard.frames
        assert probes.ping(app1, server, count=2), "app1 does not get out through the standby"
        assert not probes.ping(lab.namespace("gweb2"), server, count=1), "the failover opened a way out"
        with probes.Sniffer(lab.namespace(router.name), lab.host_ifname, garp, timeout=15, count=1) as heard:
            ovs.add_port(edge2, uplink, ofport=48)
            wait_for(lambda: tables_match(lab, want), timeout=30, what="the uplink to return to edge2:48")
        assert [_announced(f, ext.mac) for f in heard.frames] == ["198.51.100.10"], heard.frames
        assert probes.ping(app1, server, count=2), "app1 does not get out through edge2:48 again"
    log = ctl.log()
    assert "uplink/internet/edge2:48: uplink.failover, active uplink now edge1:48" in log, log[-3000:]


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


# ------------------------------------------------------- the controller during a long proof


@dataclass
class ApiController:
    """A running ``segctl controller run --store DB --api ...`` subprocess and its token."""

    proc: subprocess.Popen[bytes]
    port: int
    api_port: int
    token: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def call(self, method: str, path: str, body: object = None, *, timeout: float = 120.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
        return raw.decode() if path == "/metrics" else json.loads(raw)

    def audit(self, action: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/v1/audit?action={action}&limit=1000")["entries"])


@pytest.fixture
def api_controller(tmp_path: Path) -> Iterator[ApiController]:
    """The controller with a store and the REST API (an admin token), no intent yet."""
    store, log_path = tmp_path / "segctl.db", tmp_path / "controller-api.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    cli = [sys.executable, "-m", "segctl.cli"]
    token = subprocess.run(
        [*cli, "token", "create", "--store", str(store), "--role", "admin", "--name", "test"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.splitlines()[0].strip()  # fmt: skip
    port, api_port = free_port(), free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*cli, "controller", "run", "--store", str(store), "--listen", f"127.0.0.1:{port}",
             "--api", f"127.0.0.1:{api_port}", "--audit-interval", "0"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    ctl = ApiController(proc, port, api_port, token, log_path)
    try:
        wait_for(
            lambda: "REST API on" in ctl.log() or proc.poll() is not None, timeout=60, what="the REST API"
        )
        assert proc.poll() is None, f"controller exited early:\n{ctl.log()[-4000:]}"
        yield ctl
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail(f"controller ignored SIGTERM:\n{ctl.log()[-4000:]}")
        assert proc.returncode == 0, f"controller exit {proc.returncode}:\n{ctl.log()[-4000:]}"


def _controller_connected(lab: Lab, switch: str) -> bool:
    """What OVS says of the bridge's controller connection (``is_connected``)."""
    return ovs.run(["ovs-vsctl", "get", "controller", lab.bridge(switch), "is_connected"]).strip() == "true"


def test_long_proof_does_not_freeze_the_controller(lab_prefix: str, api_controller: ApiController) -> None:
    """A change whose proof takes seconds: switches stay connected, the API keeps answering.

    The first intent is small (proof ~1 s); the change to the dense two-rack fabric with
    641 endpoints (two tenants of 160 + 160, a shared DNS) is proven from scratch (~9 s on
    the reference machine). The bridges' inactivity probe is 2 s: a hub frozen by the
    proof for more than ~4 s makes OVS drop the connection.
    """
    from segctl.controller.service import intent_document
    from segctl.topology.network import resolve
    from segctl.topology.schema import Intent
    from segctl.topology.synthetic import policy_pair, two_rack

    ctl = api_controller
    small = resolve(policy_pair(8, 4, 10))
    dense = json.dumps(two_rack(160).model_dump(mode="json", by_alias=True, exclude_none=True))
    renamed = dense.replace("rackA", "leafA").replace("rackB", "leafB")
    big = resolve(Intent.model_validate(json.loads(renamed)))
    names = [s.name for s in small.switches]
    assert [(s.name, s.dpid) for s in small.switches] == [(s.name, s.dpid) for s in big.switches]
    assert ctl.call("PUT", "/v1/intent", intent_document(small.intent))["status"] == "applied"
    with Lab(lab_spec(small, lab_prefix, hosts=False)) as lab:
        ctl_target = f"tcp:127.0.0.1:{ctl.port}"
        for name in names:
            ovs.set_controller(lab.bridge(name), [ctl_target])
            ovs.run(["ovs-vsctl", "set", "controller", lab.bridge(name), "inactivity_probe=2000"])
        wait_for(
            lambda: {e["object"] for e in ctl.audit("switch.resync")} >= {f"switch/{n}" for n in names},
            timeout=60,
            what="every switch to be resynced",
        )
        wait_for(
            lambda: all(_controller_connected(lab, n) for n in names), timeout=10, what="OVS: is_connected"
        )

        done: list[Any] = []

        def change() -> None:
            started = time.monotonic()
            try:
                done.append(ctl.call("PUT", "/v1/intent", intent_document(big.intent)))
            except BaseException as exc:  # reported by the main thread
                done.append(exc)
            done.append(time.monotonic() - started)

        worker = threading.Thread(target=change, daemon=True)
        worker.start()
        latencies: list[float] = []
        not_connected: set[str] = set()
        while worker.is_alive():
            started = time.monotonic()
            try:
                ctl.call("GET", "/metrics", timeout=20)
            finally:
                latencies.append(time.monotonic() - started)
            not_connected |= {n for n in names if not _controller_connected(lab, n)}
            time.sleep(0.2)
        worker.join()
        result, seconds = done
        assert not isinstance(result, BaseException), result
        proof = result["verification"]["seconds"]
        print(
            f"change applied in {seconds:.1f} s, proof {proof:.1f} s; "
            f"GET /metrics: {len(latencies)} answers, max {max(latencies):.3f} s"
        )
        assert result["status"] == "applied" and result["verification"]["verdict"] == "pass", result
        assert result["live_verdict"] == "pass", result
        assert proof > 5.0, f"the proof took {proof:.1f} s only: too short to test anything"
        # A frozen hub answers one GET after the whole proof; a free one answers all along.
        # (Not a speed test: the bound is a third of the proof, so a loaded machine passes.)
        assert len(latencies) >= 5, f"only {len(latencies)} GET /metrics answered during the change"
        assert max(latencies) < proof / 3, f"GET /metrics took up to {max(latencies):.2f} s during the proof"
        assert not ctl.audit("switch.disconnected"), ctl.log()[-3000:]
        assert not not_connected, f"OVS dropped the controller connection of {sorted(not_connected)}"
        assert all(_controller_connected(lab, n) for n in names)


def test_port_states_are_read_when_switches_reconnect(lab_prefix: str, api_controller: ApiController) -> None:
    """A fabric link that goes down, or comes back, while its switches are disconnected is
    seen when they reconnect (port descriptions), with no port-status message at all."""
    from segctl.controller.service import intent_document

    ctl = api_controller
    network = load_network(LEAF_SPINE)
    want = desired_tables(network)
    ends = ["leaf1", "spine1"]  # the link leaf1:1 <-> spine1:1: both ends go away
    link = "link/leaf1:1-spine1:1"
    assert ctl.call("PUT", "/v1/intent", intent_document(network.intent))["status"] == "applied"
    with Lab(lab_spec(network, lab_prefix, hosts=False)) as lab:
        target = f"tcp:127.0.0.1:{ctl.port}"
        for sw in network.switches:
            ovs.set_controller(lab.bridge(sw.name), [target])
        wait_for(lambda: tables_match(lab, want), timeout=60, what="the initial push")
        leaf1 = lab.bridge("leaf1")
        patch, peer = lab.patch_port("leaf1", 1), lab.patch_port("spine1", 1)

        def away_and_back(change: Callable[[], None]) -> None:
            gone = len(ctl.audit("switch.disconnected"))
            for name in ends:
                ovs.del_controller(lab.bridge(name))
            wait_for(
                lambda: len(ctl.audit("switch.disconnected")) >= gone + 2,
                timeout=30,
                what="the controller to see both switches go",
            )
            change()
            for name in ends:
                ovs.set_controller(lab.bridge(name), [target])

        # the link fails while both ends are away
        away_and_back(lambda: ovs.run(["ovs-vsctl", "del-port", leaf1, patch]))
        wait_for(
            lambda: any(e["object"] == link for e in ctl.audit("link.down")), timeout=30, what="link.down"
        )
        assert not any(getattr(a, "port", None) == 1 for f in live_flows(lab, "leaf1") for a in f.actions), (
            "leaf1 still forwards onto the failed link"
        )
        assert not tables_match(lab, want)
        assert ctl.call("POST", "/v1/verify")["live_verdict"] == "pass"

        # the link comes back while both ends are away
        away_and_back(lambda: ovs.add_port(leaf1, patch, ofport=1, type_="patch", options={"peer": peer}))
        wait_for(lambda: any(e["object"] == link for e in ctl.audit("link.up")), timeout=30, what="link.up")
        wait_for(lambda: tables_match(lab, want), timeout=30, what="the preferred paths to return")
        assert ctl.call("POST", "/v1/verify")["live_verdict"] == "pass"
        assert " is down (reason" not in ctl.log() and " is up (reason" not in ctl.log(), (
            "a port-status message was involved"
        )
        assert [e["object"] for e in ctl.audit("link.down")] == [link]
        assert [e["object"] for e in ctl.audit("link.up")] == [link]


def test_switches_connected_before_the_intent_names_them_are_taken_on(
    lab_prefix: str, api_controller: ApiController
) -> None:
    """An empty store; the bridges connect first (unknown dpids: drop-all), then the intent
    arrives. Each switch must get its rules and show as connected (it kept drop-all, showed
    ``connected: false`` and 100 % loss until the bridge reconnected)."""
    from segctl.controller.service import intent_document

    ctl = api_controller
    network = load_network(LEAF_SPINE)
    want = desired_tables(network)
    names = [s.name for s in network.switches]
    only_drop = {Flow(0, 0, 0, (), parse_flows("priority=0,actions=drop")[0].actions)}
    with Lab(lab_spec(network, lab_prefix)) as lab:
        for name in names:
            ovs.set_controller(lab.bridge(name), [f"tcp:127.0.0.1:{ctl.port}"])
        wait_for(lambda: all(live_flows(lab, n) == only_drop for n in names), timeout=30, what="drop-all")
        result = ctl.call("PUT", "/v1/intent", intent_document(network.intent))
        assert result["status"] == "applied"
        wait_for(lambda: tables_match(lab, want), timeout=60, what="every switch to be taken on")
        switches = ctl.call("GET", "/v1/switches")["switches"]
        assert all(s["connected"] for s in switches), switches
        wait_for(
            lambda: len(ctl.audit("switch.resync")) == len(names), timeout=30, what="one resync per switch"
        )
        assert ctl.call("POST", "/v1/verify")["live_verdict"] == "pass"
        assert reachable(lab, "web1", "10.1.2.10")
        assert "is in the intent now: taking it on" in ctl.log()


def _policy_samples(metrics: str, family: str) -> dict[tuple[str, str, str], int]:
    """``{(tenant, policy, verdict): value}`` of one family in a /metrics text."""
    import re

    out: dict[tuple[str, str, str], int] = {}
    pattern = re.compile(family + r'\{policy="([^"]*)",tenant="([^"]*)",verdict="([^"]*)"\} (\d+)')
    for policy, tenant, verdict, value in pattern.findall(metrics):
        out[(tenant, policy, verdict)] = int(value)
    return out


def test_policy_counters_count_real_packets(lab_prefix: str, api_controller: ApiController) -> None:
    """Five one-packet pings web1 -> app1 (a new ICMP connection each: ``ping -c 1`` picks a
    new id) are five packets decided by acme/web-to-app; pings web1 -> db1 (no grant) land
    on the default deny. Read from the switches' flow counters at a reconciliation."""
    from segctl.controller.service import intent_document

    ctl = api_controller
    network = load_network(LEAF_SPINE)
    want = desired_tables(network)
    web_to_app, default_deny = ("acme", "web-to-app", "allow"), ("", "default-deny", "deny")
    with Lab(lab_spec(network, lab_prefix)) as lab:
        for switch in network.switches:
            ovs.set_controller(lab.bridge(switch.name), [f"tcp:127.0.0.1:{ctl.port}"])
        assert ctl.call("PUT", "/v1/intent", intent_document(network.intent))["status"] == "applied"
        wait_for(lambda: tables_match(lab, want), timeout=60, what="every switch to hold its rules")
        assert reachable(lab, "web1", "10.1.2.10")  # warms ARP; counted before the baseline
        ctl.call("POST", "/v1/reconcile")
        before = ctl.call("GET", "/metrics")
        packets0 = _policy_samples(before, "segctl_policy_packets_total")
        bytes0 = _policy_samples(before, "segctl_policy_bytes_total")
        assert web_to_app in packets0 and default_deny in packets0, sorted(packets0)
        for _ in range(5):
            assert probes.ping(ns(lab, "web1"), "10.1.2.10", count=1, timeout=1.0)
        for _ in range(3):
            assert not probes.ping(ns(lab, "web1"), "10.1.3.10", count=1, timeout=0.5)
        ctl.call("POST", "/v1/reconcile")
        after = ctl.call("GET", "/metrics")
        packets1 = _policy_samples(after, "segctl_policy_packets_total")
        bytes1 = _policy_samples(after, "segctl_policy_bytes_total")
        assert packets1[web_to_app] - packets0[web_to_app] == 5, (packets0, packets1)
        assert bytes1[web_to_app] - bytes0[web_to_app] == 5 * 98  # ICMP echo: 14 + 20 + 8 + 56 bytes
        assert packets1[default_deny] - packets0[default_deny] >= 3
        app_to_db = ("acme", "app-to-db", "allow")
        assert packets1[app_to_db] == packets0[app_to_db]  # nobody opened app -> db


def _log_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_policy_log_one_line_per_logged_packet_under_the_meter(
    lab_prefix: str,
    controller_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """web-to-app logs and the default deny logs, at most 20 packets/s per switch: five
    single pings web1 -> app1 are five ``allow`` lines of acme/web-to-app (their replies and
    app-to-db are not logged); three pings web1 -> db1 are three ``deny`` lines; a 2 s UDP
    flood to db1 (every packet denied, so every packet reaches the logging rule) leaves at
    most what the controller meter lets through."""
    import yaml

    doc = yaml.safe_load(LEAF_SPINE.read_text())
    acme = next(t for t in doc["tenants"] if t["name"] == "acme")
    next(p for p in acme["policies"] if p["name"] == "web-to-app")["log"] = True
    doc["logging"] = {"default_deny": True, "pps": 20, "burst": 10}
    intent = tmp_path / "logged.yaml"
    intent.write_text(yaml.safe_dump(doc, sort_keys=False))
    log = tmp_path / "policy.log"
    network = load_network(intent)
    want = desired_tables(network)
    ctl = controller_factory(intent, audit_interval=1.0, extra=("--policy-log", str(log)))
    with Lab(lab_spec(network, lab_prefix)) as lab:
        ctl.connect(lab, [s.name for s in network.switches])
        wait_for(lambda: tables_match(lab, want), timeout=60, what="every switch to hold its rules")
        # an audit that ran while a switch was still waiting for its first push saw drift;
        # from here on every switch holds its rules (meters included)
        synced = len(ctl.log())
        for _ in range(5):
            assert probes.ping(ns(lab, "web1"), "10.1.2.10", count=1, timeout=1.0)
        wait_for(lambda: len(_log_lines(log)) >= 5, timeout=10, what="five allow lines")
        for _ in range(3):
            assert not probes.ping(ns(lab, "web1"), "10.1.3.10", count=1, timeout=0.5)
        time.sleep(1.0)
        lines = _log_lines(log)
        allowed = [r for r in lines if r["verdict"] == "allow"]
        denied = [r for r in lines if r["verdict"] == "deny"]
        assert [(r["tenant"], r["policy"]) for r in allowed] == [("acme", "web-to-app")] * 5, lines
        assert all((r["src"], r["dst"], r["icmp_type"]) == ("10.1.1.10", "10.1.2.10", 8) for r in allowed)
        assert all(r["switch"] == network.endpoint("acme", "web1").switch for r in lines)
        db_denials = [r for r in denied if r["dst"] == "10.1.3.10" and r["proto"] == "icmp"]
        assert len(db_denials) == 3 and all(r["policy"] == "default-deny" for r in db_denials), denied

        before = len(lines)
        flood = subprocess.run(
            ["ip", "netns", "exec", ns(lab, "web1"), sys.executable, "-m", "segctl.mininet_scenarios._agent",
             "flood", "10.1.3.10", "9", "2"],
            capture_output=True, text=True, timeout=60, check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        sent = json.loads(flood.stdout.strip().splitlines()[-1])["sent"]
        time.sleep(1.0)
        flood_lines = [r for r in _log_lines(log)[before:] if r.get("dport") == 9]
        print(f"flood: {sent} datagrams sent, {len(flood_lines)} logged")  # shown with -s
        assert sent > 500, flood.stdout
        bridge = lab.bridge(network.endpoint("acme", "web1").switch)
        assert 0 < len(flood_lines) <= 20 * 4 + 10, (sent, len(flood_lines), ovs.dump_meters(bridge))
        # the controller meter reads back equal to the desired one: the audits saw no drift
        assert "drift on" not in ctl.log()[synced:], ctl.log()[-3000:]
