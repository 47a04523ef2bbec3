"""Scenario actions: attacks and faults run against the live network, each judged.

Every action records :class:`~segctl.mininet_scenarios.runner.Check` es and usually a
new matrix phase, so the report shows what the network did while under attack or fault.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from segctl.mininet_scenarios import controller_proc as ctl
from segctl.mininet_scenarios.network import LinkPlan, OutsidePlan, is_outside
from segctl.mininet_scenarios.probes import inject
from segctl.mininet_scenarios.runner import MatrixPhase, Run
from segctl.mininet_scenarios.scenarios.forgery import plan_attack
from segctl.testbed import ovs
from segctl.testbed.netns import exec_argv
from segctl.testbed.probes import sniffing
from segctl.topology.network import EndpointInfo, ExternalInfo, Network, with_uplinks_down

__all__ = [
    "attacker",
    "attacker_needs",
    "controller_crash",
    "controller_crash_needs",
    "flood",
    "flood_needs",
    "link_failure",
    "link_failure_needs",
    "redundant_links",
    "standby_uplink",
    "switch_restart",
    "uplink_failure",
    "uplink_failure_needs",
]

_AGENT = ["-m", "segctl.mininet_scenarios._agent"]
MARKER = b"SEGCTL-ATTACK"


def _agent(run: Run, ep: EndpointInfo, *args: str) -> subprocess.Popen[str]:
    import sys

    return subprocess.Popen(
        exec_argv(run.fabric.netns(ep), [sys.executable, *_AGENT, *args]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    try:
        data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"agent exit {proc.returncode}: {err.strip()[-200:]}"}
    return data


# ----------------------------------------------------------------------------- attacker


def attacker(run: Run) -> None:
    """One compromised endpoint sends forged and tagged frames; none may arrive anywhere.

    What is forged comes from :func:`~.forgery.plan_attack` (every forged value differs
    from the attacker's own binding); an allowed control packet proves the captures work.
    """
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import ARP, Dot1Q, Ether

    plan = plan_attack(run.network)
    me, target, victim = plan.attacker, plan.target, plan.victim
    others = [ep for ep in run.network.endpoints if ep.key != me.key]
    victim_vlan = run.network.segment(victim.tenant, victim.segment).vlan

    def udp(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, tag: str) -> Any:
        return (
            Ether(src=src_mac, dst=dst_mac)
            / IP(src=src_ip, dst=dst_ip)
            / UDP(sport=40000, dport=9)
            / (MARKER + tag.encode())
        )

    def tagged(*vlans: int, tag: str) -> Any:
        frame: Any = Ether(src=me.mac, dst=victim.mac)
        for vid in vlans:
            frame = frame / Dot1Q(vlan=vid)
        return (
            frame
            / IP(src=str(me.ip), dst=str(victim.ip))
            / UDP(sport=40000, dport=9)
            / (MARKER + tag.encode())
        )

    sha_name = (
        "forged ARP (sha of another tenant)" if plan.foreign else "forged ARP (sha of another endpoint)"
    )
    attacks: dict[str, Any] = {
        "forged source MAC": udp(plan.forged_mac, target.mac, str(me.ip), str(target.ip), "mac"),
        "forged source IP": udp(me.mac, target.mac, plan.forged_ip, str(target.ip), "ip"),
        "forged ARP (claims a peer's IP)": Ether(src=me.mac, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=2, hwsrc=me.mac, psrc=plan.claimed_ip, hwdst="ff:ff:ff:ff:ff:ff", pdst=plan.claimed_ip),
        sha_name: Ether(src=me.mac, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=plan.foreign_sha, psrc=str(me.ip), pdst=str(victim.ip)),
        "VLAN-tagged with the victim segment's VLAN": tagged(victim_vlan, tag="vlan"),
        "double-tagged (VLAN hopping)": tagged(1, victim_vlan, tag="qinq"),
        "to another tenant's gateway MAC": udp(
            me.mac, plan.victim_gateway_mac, str(me.ip), str(victim.ip), "gw"
        ),
        "to another tenant's endpoint MAC": udp(me.mac, victim.mac, str(me.ip), str(victim.ip), "ep"),
    }
    skipped = dict(plan.skipped)
    frames = {name: bytes(frame) for name, frame in attacks.items() if name not in skipped}
    control = b""
    if plan.control is not None:
        c = plan.control
        l4: Any = (
            ICMP(type=c.icmp_type, code=c.icmp_code)
            if c.proto == "icmp"
            else (TCP if c.proto == "tcp" else UDP)(sport=40000, dport=c.port)
        )
        ip = IP(src=str(me.ip), dst=str(c.receiver.ip))
        control = bytes(Ether(src=me.mac, dst=c.eth_dst) / ip / l4 / (MARKER + b"control"))
    captured = inject(
        run.fabric,
        me,
        [*frames.values(), *([control] if control else [])],
        others,
        bpf="udp or tcp or icmp or arp",
    )
    seen: dict[str, list[str]] = {name: [] for name in frames}
    for key, got in captured.items():
        for raw in got:
            for name, frame in frames.items():
                if _same_attack(frame, raw):
                    seen[name].append("/".join(key))
    for name in frames:
        where = ", ".join(sorted(set(seen[name])))
        detail = f"reached {where}" if where else f"sent by {me.qualified}, captured nowhere"
        run.check(f"attack dropped: {name}", not where, detail)
    for name, why in plan.skipped:
        run.check(f"attack not applicable: {name}", True, why)
    if plan.control is not None:
        c = plan.control
        delivered = any(MARKER + b"control" in raw for raw in captured.get(c.receiver.key, []))
        what = f"{me.qualified} -> {c.receiver.qualified} {c.proto}" + (f"/{c.port}" if c.port else "")
        run.check("control frame delivered (capture works)", delivered, what)
    run.matrix("after attack")


def attacker_needs(network: Network) -> str:
    """Why the attacker scenario cannot run on ``network`` ("" when it can)."""
    if len(network.endpoints) < 2:
        return "it needs at least two endpoints"
    if plan_attack(network).control is None:
        return "no endpoint may send anything to another, so no allowed frame proves the captures work"
    return ""


def _same_attack(frame: bytes, raw: bytes) -> bool:
    """Is the captured ``raw`` frame the attack ``frame`` (or what is left of it)?"""
    if frame[12:14] == b"\x08\x06":  # ARP: the same ARP payload
        return raw[12:14] == b"\x08\x06" and raw[14:42] == frame[14:42]
    return frame[frame.index(MARKER) :] in raw


# -------------------------------------------------------------------------------- flood


def flood(run: Run) -> None:
    """The first endpoint with a rate limit floods a same-segment peer; its meter caps it
    and every probe not involving it still agrees with the intent during the flood."""
    net = run.network
    found = _flooder(net)
    if found is None:
        run.check(
            "flood: an endpoint with a pps rate limit and a segment peer exists", False, "none in this intent"
        )
        return
    flooder, peer = found
    bridge = run.fabric.bridge(flooder.switch)
    seconds = 4.0
    before = _meter_packets(bridge)
    proc = _agent(run, flooder, "flood", str(peer.ip), "9", f"{seconds:g}")
    try:
        time.sleep(0.5)
        bystanders = tuple(p for p in run.probes.probes if flooder.key not in (p.src, p.dst))
        run.matrix("during flood (other endpoints)", bystanders)
        sent = _result(proc, seconds + 30).get("sent", 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    after = _meter_packets(bridge)
    dropped = after[1] - before[1]
    passed = (after[0] - before[0]) - dropped
    limit = (flooder.rate_pps or 0) * (seconds + 1) + (flooder.rate_burst or 0)
    run.check(
        "flood: meter drops the excess",
        dropped > 0 and passed <= limit * 1.5,
        f"sent {sent}, meter passed {passed}, dropped {dropped} (rate {flooder.rate_pps} pps)",
    )


def _flooder(network: Network) -> tuple[EndpointInfo, EndpointInfo] | None:
    """The first endpoint with a pps rate limit and a peer in its segment, and that peer."""
    for ep in network.endpoints:
        peers = [p for p in network.segment_endpoints(ep.tenant, ep.segment) if p.key != ep.key]
        if ep.rate_pps is not None and peers:
            return ep, peers[0]
    return None


def flood_needs(network: Network) -> str:
    """Why the flood scenario cannot run on ``network`` ("" when it can)."""
    if _flooder(network) is None:
        return "it needs an endpoint with rate_limit: {pps: N} and another endpoint in its segment"
    return ""


def _meter_packets(bridge: str) -> tuple[int, int]:
    """(packets seen, packets dropped by bands) summed over the bridge's meters."""
    text = ovs.run(["ovs-ofctl", "-O", "OpenFlow13", "meter-stats", bridge])
    seen = dropped = 0
    for line in text.splitlines():
        for part in line.replace(",", " ").split():
            if part.startswith("packet_in_count:"):
                seen += int(part.split(":")[1])
            elif part.startswith("packet_count:"):
                dropped += int(part.split(":")[1])
    return seen, dropped


# ----------------------------------------------------------------------------- faults


def _needs_controller(run: Run, what: str) -> bool:
    if run.controller is None:
        run.check(f"{what}: a controller is running", False, f"rules source is {run.result.rules_source}")
        return False
    return True


def redundant_links(network: Network) -> list[tuple[str, int, str, int]]:
    """The fabric links whose loss leaves every switch reachable (there is another path)."""
    import networkx as nx

    out = []
    for i, link in enumerate(network.links):
        graph: nx.MultiGraph = nx.MultiGraph()
        graph.add_nodes_from(s.name for s in network.switches)
        graph.add_edges_from((a, b) for j, (a, _, b, _) in enumerate(network.links) if j != i)
        if nx.is_connected(graph):
            out.append(link)
    return out


def link_failure_needs(network: Network) -> str:
    """Why the link-failure scenario cannot run on ``network`` ("" when it can)."""
    if not redundant_links(network):
        return (
            "it needs a fabric link with another path around it (losing any link here partitions the fabric)"
        )
    return ""


def link_failure(run: Run) -> None:
    """Take down the first fabric link that has another path around it; traffic reroutes and
    isolation holds; bring it back."""
    spare = redundant_links(run.network)
    if not spare:
        run.check("link failure: a fabric link with another path exists", False, "none in this intent")
        return
    if not _needs_controller(run, "link failure"):
        return
    link = next(lp for lp in run.fabric.plan.links if (lp.a, lp.a_port, lp.b, lp.b_port) in spare)
    run.fabric.set_link(link, up=False)
    run.down_links.add((link.a, link.a_port, link.b, link.b_port))
    # Converged = every switch holds the tables compiled without the link (both ends raise
    # port-status, other switches may need new paths): not merely "some table changed".
    name = f"link down {link}: every switch holds the tables compiled without the link"
    try:
        waited = run.wait_rules(timeout=30)
        run.check(name, True, f"after {waited:.1f} s")
    except ctl.ControllerError as exc:
        run.check(name, False, str(exc))
    run.matrix(f"link {link} down")
    _restore(run, link)


def _restore(run: Run, link: LinkPlan) -> None:
    run.fabric.set_link(link, up=True)
    run.down_links.discard((link.a, link.a_port, link.b, link.b_port))
    try:
        run.wait_rules(timeout=30)
        run.check(f"link up {link}: rules back to the full-fabric tables", True)
    except ctl.ControllerError as exc:
        run.check(f"link up {link}: rules back to the full-fabric tables", False, str(exc))


def standby_uplink(network: Network) -> ExternalInfo | None:
    """The first external network (document order) with a standby uplink."""
    return next((x for x in network.externals if x.standby), None)


def uplink_failure_needs(network: Network) -> str:
    """Why the uplink-failover scenario cannot run on ``network`` ("" when it can)."""
    if standby_uplink(network) is None:
        return "it needs an external network with a standby uplink (fabric.externals[].attach with 2+ ports)"
    return ""


def uplink_failure(run: Run) -> None:
    """Take the active uplink of the first external network with a standby down: the
    controller moves the uplink to the standby (every switch converges to the tables
    compiled with it active; the seconds from link down to converged are the failover
    time) and announces the fabric's MAC there with a gratuitous ARP (the router's bridge
    learns, so it must), the matrix with the outside agrees three ways again and the fabric
    reaches the router over the standby port only; then the link comes back and the uplink
    returns to the first port (the same again, over the first port)."""
    ext = standby_uplink(run.network)
    if ext is None:
        run.check("uplink failure: an external network with a standby uplink exists", False, "none")
        return
    if not _needs_controller(run, "uplink failure"):
        return
    outside = next(o for o in run.fabric.plan.outsides if o.external.name == ext.name)
    first = (ext.switch, ext.port)
    down = f"{ext.switch}:{ext.port}"
    now = with_uplinks_down(run.effective(), [first]).external(ext.name)
    standby = (now.switch, now.port)
    label = f"uplink {ext.name} {down} down"
    name = f"{label}: every switch holds the tables compiled with {now.switch}:{now.port} active"
    _move_uplink(run, outside, first, up=False, active=standby, label=label, name=name, what="failover")
    _matrix_over(run, outside, standby, f"uplink {down} down")
    label = f"uplink {ext.name} {down} up"
    name = f"{label}: rules back to the tables compiled with {down} active"
    _move_uplink(run, outside, first, up=True, active=first, label=label, name=name, what="failback")
    _matrix_over(run, outside, first, f"uplink {down} back")


def _move_uplink(
    run: Run,
    outside: OutsidePlan,
    uplink: tuple[str, int],
    *,
    up: bool,
    active: tuple[str, int],
    label: str,
    name: str,
    what: str,
) -> None:
    """Bring ``uplink`` down or up while the router captures ARP from the fabric on the link
    that becomes ``active``; check ``name``: every switch converges (the seconds from the link
    change to converged are the ``what`` time), and ``label``'s announcement: the fabric sent
    one gratuitous ARP from its MAC there (a learning upstream sends inbound traffic there
    at once)."""
    mac = outside.external.mac
    where = f"{active[0]}:{active[1]}"
    # on the bridge (always up: the router's end of a link coming back is down until then);
    # which link the announcement came over is the port the bridge learned the MAC on
    with sniffing([(outside.netns, outside.ifname, f"arp and ether src {mac}")], settle=0.5) as (frames,):
        run.fabric.set_uplink(outside, uplink, up=up)
        started = time.monotonic()
        if up:
            run.down_uplinks.discard(uplink)
        else:
            run.down_uplinks.add(uplink)
        try:
            run.wait_rules(timeout=30, max_delay=0.2)
            run.check(name, True, f"{what} in {time.monotonic() - started:.2f} s, link change to converged")
        except ctl.ControllerError as exc:
            run.check(name, False, str(exc))
    announced = gratuitous_arps(frames, mac)
    learned = learned_on(outside, mac)
    run.check(
        f"{label}: the fabric announced {mac} (gratuitous ARP), the router's bridge learned it on {where}",
        len(announced) == 1 and learned == [outside.uplink_ifname(active)],
        f"{len(announced)} gratuitous ARP from {mac}"
        + (f" for {', '.join(announced)}" if announced else "")
        + f"; the bridge sends to it over {', '.join(learned) or 'no port (floods)'}"
        + f" ({outside.uplink_ifname(active)} is the link to {where})",
    )


def learned_on(outside: OutsidePlan, mac: str) -> list[str]:
    """The ports of the router's bridge on which it learned ``mac`` (its FDB)."""
    argv = exec_argv(outside.netns, ["bridge", "-j", "fdb", "show", "br", outside.ifname])
    entries = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout or "[]")
    return sorted(e["ifname"] for e in entries if e.get("mac") == mac and e.get("state") != "permanent")


def gratuitous_arps(frames: list[bytes], mac: str) -> list[str]:
    """The addresses announced by the gratuitous ARPs among ``frames`` (Ethernet frames): ARP
    requests from ``mac`` whose sender and target address are the same."""
    sender = bytes.fromhex(mac.replace(":", ""))
    out = []
    for f in frames:
        arp = len(f) >= 42 and f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x01"
        if arp and f[22:28] == sender and f[28:32] == f[38:42]:
            out.append(".".join(str(b) for b in f[28:32]))
    return out


def _matrix_over(run: Run, outside: OutsidePlan, live: tuple[str, int], name: str) -> MatrixPhase:
    """Take matrix ``name`` while the router captures, on each of its uplinks that is up,
    what the fabric sends it (source: the external network's MAC); check that it all came
    over ``live`` (when the outside was reached at all) and nothing over another uplink."""
    mac = outside.external.mac
    ports = [u for u in outside.uplinks if u not in run.down_uplinks]  # nothing crosses a down one
    captures = [(outside.netns, outside.uplink_ifname(u), f"ether src {mac}") for u in ports]
    with sniffing(captures, settle=0.5) as frames:
        phase = run.matrix(name)
    got = {port: len(f) for port, f in zip(ports, frames, strict=True)}
    rows = [r for r in phase.rows if is_outside(r.probe.src) or is_outside(r.probe.dst)]
    answered, wanted = sum(r.observed for r in rows), sum(r.expected for r in rows)
    elsewhere = {port: n for port, n in got.items() if port != live}
    where = f"{live[0]}:{live[1]}"
    others = ", ".join(f"{n} over {s}:{p}" for (s, p), n in elsewhere.items())
    down = ", ".join(f"{s}:{p}" for s, p in outside.uplinks if (s, p) in run.down_uplinks)
    run.check(
        f"{name}: the fabric reached the outside over {where} only",
        (got.get(live, 0) > 0 or not wanted) and not any(elsewhere.values()),
        f"{answered} of {len(rows)} probes with {'/'.join(outside.key)} answered ({wanted} expected); "
        f"the router got {got.get(live, 0)} frames from {mac} over {where}"
        + (f", {others}" if others else "")
        + (f" ({down} down)" if down else ""),
    )
    return phase


def _stream_pair(network: Network) -> tuple[EndpointInfo, EndpointInfo, int] | None:
    """A stateful TCP connection the intent allows on a probed port: (client, server, port)."""
    from segctl.mininet_scenarios.probes import probe_ports
    from segctl.topology.analysis import reply_allowed

    for port in probe_ports(network)["tcp"]:
        for s in network.endpoints:
            for d in network.endpoints:
                if s.key != d.key and reply_allowed(network, s, d, "tcp", port):
                    return s, d, port
    return None


def controller_crash_needs(network: Network) -> str:
    """Why the controller-crash scenario cannot run on ``network`` ("" when it can)."""
    if _stream_pair(network) is None:
        return "it needs a TCP connection the intent allows (stateful), to stream through the crash"
    return ""


def controller_crash(run: Run) -> None:
    """kill -9 the controller during an allowed TCP stream: the stream keeps flowing on the
    installed rules, nothing new leaks, a restarted controller reconciles without a drop."""
    if not _needs_controller(run, "controller crash") or run.controller is None:
        return
    found = _stream_pair(run.network)
    if found is None:
        run.check("controller crash: an allowed TCP pair exists", False)
        return
    src, dst, port = found
    seconds = 8.0
    proc = _agent(run, src, "stream", str(dst.ip), str(port), f"{seconds:g}", "0.1")
    try:
        time.sleep(1.0)
        run.controller.crash()
        run.matrix("controller killed")
        restarted = time.monotonic()
        run.controller.start()
        # The switches still hold the compiled tables: equality alone would pass before the
        # restarted controller touched them. Its reconcile re-installs every flow.
        name = "controller restart: switches reconciled to the compiled tables"
        try:
            ctl.wait_reinstalled(run.bridges(), since=restarted, timeout=30)
            run.wait_rules(timeout=30)
            waited = time.monotonic() - restarted
            run.check(name, True, f"every flow re-installed by the new controller within {waited:.1f} s")
        except ctl.ControllerError as exc:
            run.check(name, False, str(exc))
        stats = _result(proc, seconds + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ok = not stats.get("error") and stats.get("sent", 0) > 10 and stats.get("sent") == stats.get("echoed")
    run.check(
        f"established stream {src.qualified} -> {dst.qualified} tcp/{port} survived crash and restart",
        bool(ok),
        json.dumps(stats),
    )
    run.matrix("after controller restart")


def switch_restart(run: Run) -> None:
    """A switch loses its flows and its controller connection; the controller resyncs it."""
    if not _needs_controller(run, "switch restart"):
        return
    switch = run.network.switches[-1].name
    run.fabric.restart_switch(switch)
    try:
        waited = run.wait_rules(timeout=30)
        run.check(f"switch {switch} restart: resynced", True, f"after {waited:.1f} s")
    except ctl.ControllerError as exc:
        run.check(f"switch {switch} restart: resynced", False, str(exc))
    run.matrix(f"after {switch} restart")
