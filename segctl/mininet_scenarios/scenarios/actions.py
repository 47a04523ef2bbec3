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
from segctl.mininet_scenarios.network import LinkPlan
from segctl.mininet_scenarios.probes import inject
from segctl.mininet_scenarios.runner import Run
from segctl.testbed import ovs
from segctl.testbed.netns import exec_argv
from segctl.topology.network import EndpointInfo

__all__ = ["attacker", "controller_crash", "flood", "link_failure", "switch_restart"]

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

    The attacker is the first endpoint; a valid frame to a same-segment peer (if any) is the
    control that proves the capture works.
    """
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import ARP, Dot1Q, Ether

    net = run.network
    me = net.endpoints[0]
    others = [ep for ep in net.endpoints if ep.key != me.key]
    foreign = [ep for ep in others if ep.tenant != me.tenant]
    peer = next((ep for ep in others if ep.tenant == me.tenant and ep.segment == me.segment), None)
    victim = foreign[0] if foreign else others[0]
    victim_vlan = net.segment(victim.tenant, victim.segment).vlan
    victim_gw = net.tenant(victim.tenant).gateway_mac
    target = peer or victim

    def udp(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, tag: str) -> Any:
        return (
            Ether(src=src_mac, dst=dst_mac)
            / IP(src=src_ip, dst=dst_ip)
            / UDP(sport=40000, dport=9)
            / (MARKER + tag.encode())
        )

    attacks: dict[str, Any] = {
        "forged source MAC": udp(victim.mac, target.mac, str(me.ip), str(target.ip), "mac"),
        "forged source IP": udp(me.mac, target.mac, "10.250.250.250", str(target.ip), "ip"),
        "forged ARP (claims a peer's IP)": Ether(src=me.mac, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=2, hwsrc=me.mac, psrc=str(target.ip), hwdst="ff:ff:ff:ff:ff:ff", pdst=str(target.ip)),
        "forged ARP (sha of another tenant)": Ether(src=me.mac, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=victim.mac, psrc=str(me.ip), pdst=str(victim.ip)),
        "VLAN-tagged with the victim segment's VLAN": Ether(src=me.mac, dst=victim.mac)
        / Dot1Q(vlan=victim_vlan)
        / IP(src=str(me.ip), dst=str(victim.ip))
        / UDP(sport=40000, dport=9)
        / (MARKER + b"vlan"),
        "double-tagged (VLAN hopping)": Ether(src=me.mac, dst=victim.mac)
        / Dot1Q(vlan=1)
        / Dot1Q(vlan=victim_vlan)
        / IP(src=str(me.ip), dst=str(victim.ip))
        / UDP(sport=40000, dport=9)
        / (MARKER + b"qinq"),
        "to another tenant's gateway MAC": udp(me.mac, victim_gw, str(me.ip), str(victim.ip), "gw"),
        "to another tenant's endpoint MAC": udp(me.mac, victim.mac, str(me.ip), str(victim.ip), "ep"),
    }
    frames = {name: bytes(frame) for name, frame in attacks.items()}
    control = bytes(udp(me.mac, target.mac, str(me.ip), str(target.ip), "control")) if peer else b""
    captured = inject(
        run.fabric, me, [*frames.values(), *([control] if control else [])], others, bpf="udp or arp"
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
    if peer is not None:
        delivered = any(b"control" in raw for raw in captured.get(peer.key, []))
        run.check("control frame delivered (capture works)", delivered, f"{me.qualified} -> {peer.qualified}")
    run.matrix("after attack")


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
    flooder = next((ep for ep in net.endpoints if ep.rate_pps is not None), None)
    if flooder is None:
        run.check("flood: an endpoint with a pps rate limit exists", False, "none in this intent")
        return
    peer = next(ep for ep in net.segment_endpoints(flooder.tenant, flooder.segment) if ep.key != flooder.key)
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


def link_failure(run: Run) -> None:
    """Take down the first fabric link; traffic reroutes and isolation holds; bring it back."""
    if not run.fabric.plan.links or not _needs_controller(run, "link failure"):
        return
    link = run.fabric.plan.links[0]
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


def controller_crash(run: Run) -> None:
    """kill -9 the controller during an allowed TCP stream: the stream keeps flowing on the
    installed rules, nothing new leaks, a restarted controller reconciles without a drop."""
    if not _needs_controller(run, "controller crash") or run.controller is None:
        return
    from segctl.topology.analysis import reply_allowed

    net = run.network
    port = next((p for p in run.probes.tcp_ports), None)
    pair = next(
        (
            (s, d)
            for s in net.endpoints
            for d in net.endpoints
            if port is not None and s.key != d.key and reply_allowed(net, s, d, "tcp", port)
        ),
        None,
    )
    if pair is None or port is None:
        run.check("controller crash: an allowed TCP pair exists", False)
        return
    src, dst = pair
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
