"""Live traffic probes between Mininet hosts, and the observed reachability matrix.

A :class:`Probe` is one connection attempt ``src -> dst`` with ``icmp`` (ping),
``tcp``/``udp`` to a port (echo), or their IPv6 twins ``icmp6``, ``tcp6``, ``udp6``
(between endpoints where IPv6 applies, to the destination's global address). It
*succeeds* when the request reaches the destination and its reply comes back from that
very host (the echo server appends its identity: tenants may share addresses). So the
intent-level expectation of a probe is :func:`~segctl.topology.analysis.reply_allowed`
(with ``family=6`` for the IPv6 ones): a stateless grant opens the forward direction
only, and its probe is expected to fail.

The ``icmp`` probe is a ping: an echo request (ICMP type 8) answered by an echo reply, so
it is expected to succeed only where a stateful grant allows all ICMP or type 8. Grants of
other ICMP types are not probed live (nothing on the hosts answers them the way a ping is
answered); the verifier and ``segctl trace`` cover them.

Ports come from the intent: the bounds of every tcp/udp range any policy, shared
service or guardrail names, plus one port per protocol that no service allows (the denied probe).
A pair whose destination address also belongs to an endpoint of the source's own tenant
(or to the source) cannot be probed by address: the source's kernel would reach the
other owner. Such pairs are listed in :attr:`ProbePlan.unaddressable`; the attacker
scenario covers them with crafted frames.

With external networks, the upstream router's host of each (:class:`~segctl.mininet_scenarios.
network.OutsidePlan`, key ``("external:NAME", server address)``) takes part: every endpoint
probes the outside server (expected: the first egress policy of its tenant that takes the
packet allows it, statefully: :func:`~segctl.topology.outside.external_decision`), and
the outside probes each endpoint at its public address there, from the server address
(its floating IP, expected as the ingress policies say; or its tenant's SNAT address,
expected never to let anything in). The outside's echo server also tells the source
address it saw (:attr:`ProbeResult.seen`): the public source the endpoint left with.

Probes run in parallel: one echo server per host (all ports), one prober per source
host (all its probes concurrently), so a full matrix takes about one timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, Literal

from segctl.mininet_scenarios.network import MininetFabric, is_outside
from segctl.testbed.probes import ProbeError, Sniffer, send_raw_frame, spawn_in, stop_process, wait_ready
from segctl.topology.analysis import reply_allowed
from segctl.topology.network import EndpointInfo, Network
from segctl.topology.outside import (
    external_decision,
    outside_server,
    outside_server6,
    public_source,
    public_source6,
)

__all__ = [
    "ECHO6_REQUEST",
    "IPV6_PROBES",
    "Probe",
    "ProbePlan",
    "ProbeResult",
    "Servers",
    "addressable",
    "expected_outcome",
    "inject",
    "outside_keys",
    "plan_probes",
    "probe_address",
    "probe_ports",
    "run_probes",
]

Proto = Literal["icmp", "tcp", "udp", "icmp6", "tcp6", "udp6"]
#: The IPv6 probes (to the destination's global IPv6 address).
IPV6_PROBES = ("icmp6", "tcp6", "udp6")
#: ICMPv6 echo request: what an ``icmp6`` probe (ping -6) sends.
ECHO6_REQUEST = 128
EndpointKey = tuple[str, str]
_AGENT = [sys.executable, "-m", "segctl.mininet_scenarios._agent"]
#: Candidate ports for the "denied" probe: the first one no service of the intent allows.
_DENIED_CANDIDATES = (9, 7, 1, 4444, 31337, 60000)
_MAX_PORTS_PER_PROTO = 8
#: The ICMP type of a ping: grants of other ICMP types do not make an ``icmp`` probe succeed.
ECHO_REQUEST = 8


@dataclass(frozen=True, order=True)
class Probe:
    """One connection attempt from ``src`` to ``dst`` (endpoint keys)."""

    src: EndpointKey
    dst: EndpointKey
    proto: Proto
    port: int | None = None

    @property
    def service(self) -> str:
        """``icmp``, ``icmp6``, ``tcp/80``, ``udp/53``."""
        return self.proto if self.port is None else f"{self.proto}/{self.port}"

    def describe(self) -> str:
        return f"{self.src[0]}/{self.src[1]} -> {self.dst[0]}/{self.dst[1]} {self.service}"

    def to_json(self) -> dict[str, Any]:
        return {
            "src": "/".join(self.src),
            "dst": "/".join(self.dst),
            "proto": self.proto,
            "port": self.port,
        }


@dataclass(frozen=True)
class ProbeResult:
    """What a probe saw: success, which host answered, why it failed."""

    ok: bool
    peer: str = ""
    error: str = ""
    #: the source address the outside's server saw (its probes only)
    seen: str = ""


@dataclass(frozen=True)
class ProbePlan:
    """The probes of a run, the ports the servers listen on, and the skipped pairs."""

    probes: tuple[Probe, ...]
    tcp_ports: tuple[int, ...]
    udp_ports: tuple[int, ...]
    unaddressable: tuple[tuple[EndpointKey, EndpointKey], ...] = ()


def _service_ports(network: Network, proto: str) -> list[tuple[int, int]]:
    services = [s for t in network.intent.tenants for p in t.policies for s in p.services]
    services += [s for svc in network.intent.shared_services for s in svc.services]
    services += [s for rail in network.intent.guardrails for s in rail.services]
    return [(r.lo, r.hi) for s in services if s.proto == proto for r in s.ports or []]


def probe_ports(network: Network) -> dict[str, tuple[int, ...]]:
    """Ports to probe per protocol: range bounds the intent names + one denied port."""
    out: dict[str, tuple[int, ...]] = {}
    for proto in ("tcp", "udp"):
        ranges = _service_ports(network, proto)
        ports = sorted({p for lo, hi in ranges for p in (lo, hi)})[:_MAX_PORTS_PER_PROTO]
        denied = next((c for c in _DENIED_CANDIDATES if not any(lo <= c <= hi for lo, hi in ranges)), None)
        if denied is not None:
            ports.append(denied)
        out[proto] = tuple(sorted(set(ports)))
    return out


def addressable(network: Network, src: EndpointInfo, dst: EndpointInfo) -> bool:
    """Can ``src`` reach ``dst`` by its IPv4 address without hitting another owner?"""
    return not any(ep.ip == dst.ip for ep in network.tenant_endpoints(src.tenant) if ep.key != dst.key) and (
        src.ip != dst.ip
    )


def addressable6(src: EndpointInfo, dst: EndpointInfo, network: Network) -> bool:
    """Can ``src`` reach ``dst`` by its IPv6 address without hitting another owner (its
    own address, or one of its tenant's: tenants may reuse IPv6 addresses too)?"""
    if src.ipv6 is None or dst.ipv6 is None or src.ipv6 == dst.ipv6:
        return False
    return not any(ep.ipv6 == dst.ipv6 for ep in network.tenant_endpoints(src.tenant) if ep.key != dst.key)


def outside_keys(network: Network) -> list[EndpointKey]:
    """The probe key of each external network's outside host: ``("external:NAME", server)``."""
    return [(ext.qualified, str(outside_server(network, ext))) for ext in network.externals]


def _external(key: EndpointKey) -> str:
    return key[0].partition(":")[2]


def _outside_probes(network: Network, ports: Mapping[str, tuple[int, ...]]) -> list[Probe]:
    """Every endpoint to each outside server, and each outside server to every endpoint
    with a public address there (floating IP or its tenant's SNAT address)."""
    out: list[Probe] = []

    def each(src: EndpointKey, dst: EndpointKey, v6: bool = False) -> list[Probe]:
        names: tuple[Proto, Proto, Proto] = ("icmp6", "tcp6", "udp6") if v6 else ("icmp", "tcp", "udp")
        icmp, tcp, udp = names
        return [
            Probe(src, dst, icmp),
            *(Probe(src, dst, tcp, p) for p in ports["tcp"]),
            *(Probe(src, dst, udp, p) for p in ports["udp"]),
        ]

    for key in outside_keys(network):
        name = _external(key)
        v6 = outside_server6(network, network.external(name)) is not None
        for ep in network.endpoints:
            out += each(ep.key, key)
            if v6 and public_source6(network, ep, name) is not None:
                out += each(ep.key, key, v6=True)
        for ep in network.endpoints:
            if public_source(network, ep, name) is not None:
                out += each(key, ep.key)
            if v6 and public_source6(network, ep, name) is not None:
                out += each(key, ep.key, v6=True)
    return out


def plan_probes(
    network: Network,
    *,
    sources: Iterable[EndpointInfo] | None = None,
    destinations: Iterable[EndpointInfo] | None = None,
) -> ProbePlan:
    """All-pairs probes (``src != dst``): icmp and every probe port, and the same over IPv6
    where it applies (:func:`addressable6`); with external networks, the outside probes too
    (only for the full plan, without ``sources`` or ``destinations``)."""
    ports = probe_ports(network)
    srcs = list(network.endpoints if sources is None else sources)
    dsts = list(network.endpoints if destinations is None else destinations)
    probes: list[Probe] = []
    skipped: list[tuple[EndpointKey, EndpointKey]] = []
    for src in srcs:
        for dst in dsts:
            if src.key == dst.key:
                continue
            if addressable6(src, dst, network):
                probes.append(Probe(src.key, dst.key, "icmp6"))
                probes += [Probe(src.key, dst.key, "tcp6", p) for p in ports["tcp"]]
                probes += [Probe(src.key, dst.key, "udp6", p) for p in ports["udp"]]
            if not addressable(network, src, dst):
                skipped.append((src.key, dst.key))
                continue
            probes.append(Probe(src.key, dst.key, "icmp"))
            probes += [Probe(src.key, dst.key, "tcp", p) for p in ports["tcp"]]
            probes += [Probe(src.key, dst.key, "udp", p) for p in ports["udp"]]
    if sources is None and destinations is None:
        probes += _outside_probes(network, ports)
    return ProbePlan(tuple(probes), ports["tcp"], ports["udp"], tuple(skipped))


def probe_address(network: Network, probe: Probe) -> str:
    """The address ``probe`` is sent to: the outside server, an endpoint's public address
    (from the outside), or the endpoint's own address."""
    v6 = probe.proto in IPV6_PROBES
    if is_outside(probe.dst):
        return outside_address(network, probe.dst, v6)
    dst = network.endpoint(*probe.dst)
    if is_outside(probe.src):
        name = _external(probe.src)
        return str(public_source6(network, dst, name) if v6 else public_source(network, dst, name))
    return str(dst.ipv6) if v6 else str(dst.ip)


def outside_address(network: Network, key: EndpointKey, v6: bool) -> str:
    """The outside host's server address of a family (``key[1]`` is the IPv4 one)."""
    return str(outside_server6(network, network.external(_external(key)))) if v6 else key[1]


def _expected_outside(network: Network, probe: Probe) -> bool:
    """A probe to or from the outside: the deciding external policy allows it, statefully
    (its reply passes as the connection's); from the outside only to a floating IP."""
    outbound = is_outside(probe.dst)
    outside, ep_key = (probe.dst, probe.src) if outbound else (probe.src, probe.dst)
    ep = network.endpoint(*ep_key)
    v6 = probe.proto in IPV6_PROBES
    address = ip_address(outside_address(network, outside, v6))
    proto = "icmp6" if probe.proto == "icmp6" else probe.proto.removesuffix("6")
    icmp = {"icmp": ECHO_REQUEST, "icmp6": ECHO6_REQUEST}.get(probe.proto)
    decision = external_decision(
        network, ep, "out" if outbound else "in", address, proto, probe.port,
        external=_external(outside), icmp_type=icmp,
    )  # fmt: skip
    return decision is not None and decision.allow and decision.stateful


def expected_outcome(network: Network, probe: Probe) -> bool:
    """Should ``probe`` succeed according to the intent (request delivered and answered)?"""
    if is_outside(probe.src) or is_outside(probe.dst):
        return _expected_outside(network, probe)
    src, dst = network.endpoint(*probe.src), network.endpoint(*probe.dst)
    if probe.proto == "icmp6":
        return reply_allowed(network, src, dst, "icmp6", icmp_type=ECHO6_REQUEST, family=6)
    if probe.proto in IPV6_PROBES:
        return reply_allowed(network, src, dst, probe.proto[:-1], probe.port, family=6)
    if probe.proto == "icmp":  # ping: an echo request; its reply passes as the connection's
        return reply_allowed(network, src, dst, "icmp", icmp_type=ECHO_REQUEST)
    return reply_allowed(network, src, dst, probe.proto, probe.port)


# ----------------------------------------------------------------------------- running


@dataclass
class Servers:
    """Context manager: one echo server per host (all probe ports) for the block.

    Long-lived streams (the controller-crash scenario) use the same servers.
    """

    fabric: MininetFabric
    tcp_ports: Sequence[int]
    udp_ports: Sequence[int]
    hosts: Sequence[EndpointInfo] = ()
    _procs: list[subprocess.Popen[str]] = field(default_factory=list, repr=False)

    def __enter__(self) -> Servers:
        try:
            for ep in self.hosts or [h.endpoint for h in self.fabric.plan.hosts]:
                argv = [
                    *_AGENT,
                    "serve",
                    self.fabric.plan.host(ep).node,
                    "--tcp",
                    ",".join(map(str, self.tcp_ports)),
                    "--udp",
                    ",".join(map(str, self.udp_ports)),
                    *(["--v6"] if ep.ipv6 is not None else []),
                ]
                self._procs.append(spawn_in(self.fabric.netns(ep), argv))
            for o in self.fabric.plan.outsides if not self.hosts else ():
                argv = [*_AGENT, "serve", o.node, "--tcp", ",".join(map(str, self.tcp_ports)),
                        "--udp", ",".join(map(str, self.udp_ports)), "--tell-source",
                        *(["--v6"] if o.server6 is not None else [])]  # fmt: skip
                self._procs.append(spawn_in(o.netns, argv))
            for proc in self._procs:
                wait_ready(proc, 15.0, "echo server")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every server we started (by pid)."""
        for proc in self._procs:
            stop_process(proc)
        self._procs.clear()


def run_probes(
    fabric: MininetFabric, network: Network, probes: Sequence[Probe], *, timeout: float = 1.5
) -> dict[Probe, ProbeResult]:
    """Run ``probes`` (servers must be up): one concurrent prober per source host."""
    by_src: dict[EndpointKey, list[Probe]] = {}
    for probe in probes:
        by_src.setdefault(probe.src, []).append(probe)
    running: list[tuple[list[Probe], subprocess.Popen[str]]] = []
    results: dict[Probe, ProbeResult] = {}
    try:
        for src, mine in by_src.items():
            items = []
            for i, probe in enumerate(mine):
                address = probe_address(network, probe)
                item = {"id": i, "proto": probe.proto, "dst": address, "port": probe.port}
                if is_outside(src):  # from the server address, not the router's
                    item["src"] = outside_address(network, src, probe.proto in IPV6_PROBES)
                items.append(item)
            argv = [*_AGENT, "probe", f"{timeout:g}", json.dumps(items, separators=(",", ":"))]
            running.append((mine, spawn_in(fabric.netns(src), argv)))
        for mine, proc in running:
            out, err = proc.communicate(timeout=timeout * 4 + 30)
            if proc.returncode != 0:
                raise ProbeError(f"prober failed (exit {proc.returncode}): {err.strip()}")
            data = json.loads(out)
            for i, probe in enumerate(mine):
                results[probe] = _judge(fabric, probe, data[str(i)])
    finally:
        for _, proc in running:
            stop_process(proc)
    return results


def _judge(fabric: MininetFabric, probe: Probe, raw: Mapping[str, Any]) -> ProbeResult:
    """A reply from another host than the destination is not a success (and says so)."""
    peer, _, seen = str(raw.get("peer", "")).partition("@")
    if raw.get("ok") and probe.proto in ("tcp", "udp", "tcp6", "udp6"):
        want = fabric.plan.node(probe.dst).node
        if peer != want:
            return ProbeResult(False, peer, f"answered by {peer}, not {want}", seen)
    return ProbeResult(bool(raw.get("ok")), peer, str(raw.get("error", "")), seen)


# ---------------------------------------------------------------------- crafted frames


def inject(
    fabric: MininetFabric,
    sender: EndpointInfo | EndpointKey,
    frames: Sequence[bytes],
    watchers: Sequence[EndpointInfo],
    *,
    bpf: str = "",
    timeout: float | None = None,
) -> dict[EndpointKey, list[bytes]]:
    """Send raw ``frames`` from ``sender``'s interface (an endpoint, or an outside host by
    its key); return what each watcher captured.

    Each watcher captures with ``bpf`` on its interface while the frames are sent. The
    sniffers start one after the other (each waits until scapy is ready) and one sender
    process runs per frame, so the default capture time grows with both counts.
    """
    timeout = 3.0 + len(frames) + 3.0 * len(watchers) if timeout is None else timeout
    sniffers = [Sniffer(fabric.netns(w), fabric.ifname(w), bpf, timeout=timeout) for w in watchers]
    started: list[Sniffer] = []
    try:
        for s in sniffers:
            s.__enter__()
            started.append(s)
        for frame in frames:
            send_raw_frame(fabric.netns(sender), fabric.ifname(sender), frame)
    finally:
        for s in started:
            s.__exit__(None, None, None)
    return {w.key: list(s.frames) for w, s in zip(watchers, sniffers, strict=True)}
