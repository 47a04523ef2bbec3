"""The six verification properties, checked over the symbolic engine's outcomes.

Inputs: a resolved :class:`~segctl.topology.network.Network` (the intent and the
topology), the expected relation of :mod:`segctl.topology.analysis`, and three runs of
:class:`~segctl.flows.symbolic.Engine` over the same parsed tables:

* run **A** (any): every ``ct()`` lookup may return any state (``+trk`` and one of
  new/est/rel/inv, ``rpl`` free);
* run **N** (new): every ``ct()`` lookup returns ``+trk+new`` (a connection's first packet);
* run **E** (reply): the replies of a granted stateful connection, injected at the
  destination's port; a ``ct()`` lookup in a zone where run N committed the connection's
  packets returns ``+trk+est+rpl``, a lookup in any other zone ``+trk+new``.

What each property quantifies over (a packet is *from* endpoint ``s`` when it is injected
at the edge port ``s`` is bound to; "origin" is the packet as injected):

1. ``isolation`` (runs A and N): a packet from ``s`` delivered to ``d`` of another tenant
   must be IPv4 between a declared shared-service pair (``s`` consumer and ``d`` provider,
   or the reverse for replies), in every conntrack state; and, when every lookup says new,
   only ``consumer -> provider`` on the shared service's services.
2. ``conformance`` (run N): a packet from ``s`` delivered to ``d`` of the same tenant is
   allowed by the intent: IPv4 from ``s``'s address to ``d``'s address on a service some
   grant allows; ARP between two endpoints of one segment with ``arp_tpa`` = ``d``'s
   address; IPv6 when :func:`~segctl.topology.analysis.ipv6_allowed`; to ``s`` itself only
   the gateway's ARP reply. Delivered IPv4 keeps its addresses (no NAT).
3. ``allowed-delivered`` (runs N and E): for every granted ``(s, d, service)`` the whole
   header space of such packets is delivered to ``d``: untagged IPv4 with ``s``'s bound
   MAC and address, ``d``'s address, ``d``'s MAC (same segment) or the gateway MAC of
   ``s``'s tenant (routed; TTL >= 2), any source port, any other field; and for stateful
   grants the replies (``d -> s``, ports mirrored, ct est+rpl) are delivered to ``s``.
4. ``spoof-guard`` (run A): a packet delivered anywhere was sent with the source bound
   to its ingress port: untagged, ``eth_src`` the endpoint's MAC, and ARP with
   ``arp_sha``/``arp_spa`` bound, or IPv4 with ``ip_src`` bound, or IPv6 (endpoints with
   ``ipv6`` only) with ``ipv6_src`` bound. Every other ethertype must never be delivered.
5. ``loop-free`` (runs A, N, E): no packet at all loops or exhausts the step budget; no
   part of the allowed spaces of property 3 is black-holed (table miss, no output,
   unconnected port, controller, unsupported).
6. ``commit-safety`` (run N): every ``ct(commit)`` in zone ``z`` of a packet from ``s``
   commits only packets that a *stateful* grant ``s -> d`` allows, with ``d``'s address
   as destination and ``z`` the zone of ``s``'s or ``d``'s tenant; or packets to an
   address that no endpoint able to answer in zone ``z`` owns (no reply can ever use the
   entry). Together with 2 this closes the loop for established traffic: "est" can only
   come from a committed, allowed connection.

Each check returns a :class:`PropertyResult` with the header space it checked
(:class:`Checked`) and its :class:`Violation` s; a violation carries the offending origin
space and the outcome it was found in, from which :mod:`segctl.flows.counterexample`
builds one concrete packet and its trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from segctl.flows.headerspace import BDD, CT_EST, CT_NEW, CT_RPL, CT_TRK, HeaderSpace
from segctl.flows.ofctl import Flow
from segctl.flows.symbolic import (
    CONTROLLER,
    DELIVERED,
    LOOP,
    MISS,
    TRUNCATED,
    UNCONNECTED,
    UNSUPPORTED,
    CommitEvent,
    Engine,
    Outcome,
    Reachability,
    Topology,
)
from segctl.topology.analysis import (
    Grant,
    ServiceMatch,
    expected_reachability,
    ipv6_allowed,
    pair_grants,
)
from segctl.topology.network import EndpointInfo, Network

__all__ = [
    "PROPERTIES",
    "Checked",
    "PropertyResult",
    "Runs",
    "Spaces",
    "Violation",
    "check_all",
    "run_engines",
]

ETH_ARP, ETH_IP, ETH_IP6 = 0x0806, 0x0800, 0x86DD
_PROTO = {"tcp": 6, "udp": 17, "icmp": 1}

#: (id, title, one-line statement) of every property, in report order.
PROPERTIES: tuple[tuple[str, str, str], ...] = (
    (
        "isolation",
        "Tenant isolation",
        "Nothing from one tenant is delivered to another, except declared shared services.",
    ),
    (
        "conformance",
        "Policy conformance",
        "Within a tenant, what is delivered (new connections) is a subset of what the intent allows.",
    ),
    (
        "allowed-delivered",
        "Allowed traffic is delivered",
        "Every granted (source, destination, service) and its replies are delivered, all of it.",
    ),
    (
        "spoof-guard",
        "Spoofed sources are never delivered",
        "A delivered packet always carries the MAC/IP (and ARP sha/spa) bound to its ingress port, untagged.",
    ),
    (
        "loop-free",
        "No loops or black holes",
        "No packet loops; allowed traffic never ends in a table miss, a dead port or the controller.",
    ),
    (
        "commit-safety",
        "Commit safety",
        "Every ct(commit) commits only allowed (stateful) traffic, so 'established' is no side door.",
    ),
)

_BLACK_HOLES = {MISS, UNCONNECTED, CONTROLLER, UNSUPPORTED, TRUNCATED, LOOP}


@dataclass(frozen=True)
class Violation:
    """One violated instance of a property.

    ``space`` holds the offending packets as injected (origin, live variable names);
    ``outcome`` is the engine outcome they were found in (its hops are the trace);
    ``ct_mode`` says what every ``ct()`` lookup returned in that run: ``new``, ``est``
    (``+est+rpl``) or ``any``.
    """

    property: str
    message: str
    ingress: tuple[str, int]
    src: str | None
    dst: str | None
    ct_mode: str
    space: BDD = field(compare=False, repr=False)
    outcome: Outcome | None = field(default=None, compare=False, repr=False)
    commit: CommitEvent | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Checked:
    """What a property quantified over: a description, a header-space summary, counts."""

    description: str
    space: str
    counts: Mapping[str, int]


@dataclass(frozen=True)
class PropertyResult:
    id: str
    title: str
    statement: str
    checked: Checked
    violations: tuple[Violation, ...]

    @property
    def holds(self) -> bool:
        return not self.violations


@dataclass
class Runs:
    """The engine runs over one :class:`HeaderSpace` (see the module docstring)."""

    hs: HeaderSpace
    any: Reachability
    new: Reachability
    tables: Mapping[str, Sequence[Flow]]
    topology: Topology
    engine: Engine | None = None  # run A's engine: the others share its indexed tables
    _reply_engines: dict[frozenset[int], Engine] = field(default_factory=dict)
    _commits_by_ingress: dict[tuple[str, int], list[CommitEvent]] | None = None

    def new_commits(self, ingress: tuple[str, int]) -> list[CommitEvent]:
        """Run N's commit events of one ingress, in run order."""
        if self._commits_by_ingress is None:
            self._commits_by_ingress = {}
            for c in self.new.commits:
                self._commits_by_ingress.setdefault(c.ingress, []).append(c)
        return self._commits_by_ingress.get(ingress, [])

    def reply_engine(self, zones: frozenset[int]) -> Engine:
        """Run E for a connection committed in ``zones``: lookups there say ``+est+rpl``,
        lookups in any other zone say ``+new`` (no entry there)."""
        engine = self._reply_engines.get(zones)
        if engine is None:
            hs = self.hs
            in_zones = hs.false
            for z in zones:
                in_zones |= hs.eq("ct_zone", z)
            states = (in_zones & hs.eq("ct_state", CT_TRK | CT_EST | CT_RPL)) | (
                ~in_zones & hs.eq("ct_state", CT_TRK | CT_NEW)
            )
            if self.engine is not None:
                engine = self.engine.with_ct_states(states)
            else:
                engine = Engine(self.tables, self.topology, hs=hs, ct_states=states)
            self._reply_engines[zones] = engine
        return engine


def run_engines(
    network: Network,
    tables: Mapping[str, Sequence[Flow]],
    *,
    hs: HeaderSpace | None = None,
    progress: Callable[[str], None] | None = None,
) -> Runs:
    """Run the engine over every edge port twice: any conntrack state, and all-new."""
    hs = hs or HeaderSpace()
    topo = Topology.from_network(network)
    say = progress or (lambda _msg: None)
    say("symbolic reachability, every conntrack state")
    engine = Engine(tables, topo, hs=hs)
    run_any = engine.run()
    say("symbolic reachability, new connections")
    run_new = engine.with_ct_states(hs.eq("ct_state", CT_TRK | CT_NEW)).run()
    return Runs(hs, run_any, run_new, tables, topo, engine)


# ---------------------------------------------------------------------------- spaces


def _mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def _range(hs: HeaderSpace, name: str, lo: int, hi: int, width: int) -> BDD:
    """``lo <= field <= hi`` as a union of prefix blocks."""
    out = hs.false
    while lo <= hi:
        size = lo & -lo if lo else 1 << width
        while size > hi - lo + 1:
            size >>= 1
        mask = ((1 << width) - 1) ^ (size - 1)
        out |= hs.eq(name, lo, mask)
        lo += size
    return out


class Spaces:
    """Header spaces of the intent (origin packets, live names) over one :class:`HeaderSpace`."""

    def __init__(self, hs: HeaderSpace, network: Network) -> None:
        self.hs = hs
        self.net = network
        self._bound: dict[tuple[str, str], BDD] = {}

    def ip(self, field_name: str, addr: IPv4Address) -> BDD:
        return self.hs.eq(field_name, int(addr))

    def bound(self, ep: EndpointInfo) -> BDD:
        """Everything ``ep`` may send: untagged, its MAC, ARP/IPv4(/IPv6) with its addresses."""
        cached = self._bound.get(ep.key)
        if cached is not None:
            return cached
        hs = self.hs
        mac = _mac(ep.mac)
        arp = hs.eq("eth_type", ETH_ARP) & hs.eq("arp_sha", mac) & self.ip("ip_src", ep.ip)
        ipv4 = hs.eq("eth_type", ETH_IP) & self.ip("ip_src", ep.ip)
        out = arp | ipv4
        if ep.ipv6 is not None:
            out |= hs.eq("eth_type", ETH_IP6) & hs.eq("ipv6_src", int(IPv6Address(ep.ipv6)))
        out &= hs.eq("eth_src", mac) & hs.eq("vlan_present", 0) & hs.eq("vlan_vid", 0)
        self._bound[ep.key] = out
        return out

    def service(self, svc: ServiceMatch, *, reply: bool = False) -> BDD:
        """IPv4 packets of a service; ``reply`` mirrors the ports (source port in range)."""
        hs = self.hs
        out = hs.eq("eth_type", ETH_IP)
        if svc.proto == "any":
            return out
        out &= hs.eq("ip_proto", _PROTO[svc.proto])
        if svc.ports is None:
            return out
        port_field = "tp_src" if reply else "tp_dst"
        ports = hs.false
        for lo, hi in svc.ports:
            ports |= _range(hs, port_field, lo, hi, 16)
        return out & ports

    def grants(self, grants: Iterable[Grant], *, reply: bool = False) -> BDD:
        out = self.hs.false
        for g in grants:
            for svc in g.services:
                out |= self.service(svc, reply=reply)
        return out

    def routed(self, src: EndpointInfo, dst: EndpointInfo) -> bool:
        return src.tenant != dst.tenant or src.segment != dst.segment

    def first_hop(self, src: EndpointInfo, dst: EndpointInfo) -> BDD:
        """``eth_dst`` (and TTL) of a packet ``src`` sends to ``dst``: direct or via its gateway."""
        hs = self.hs
        if not self.routed(src, dst):
            return hs.eq("eth_dst", _mac(dst.mac))
        gw = _mac(self.net.tenant(src.tenant).gateway_mac)
        return hs.eq("eth_dst", gw) & ~(hs.eq("nw_ttl", 0) | hs.eq("nw_ttl", 1))

    def forward(self, src: EndpointInfo, dst: EndpointInfo, grants: Iterable[Grant]) -> BDD:
        """New packets ``src`` may send to ``dst`` (property 3's forward space)."""
        return self.bound(src) & self.first_hop(src, dst) & self.ip("ip_dst", dst.ip) & self.grants(grants)

    def reply(self, src: EndpointInfo, dst: EndpointInfo, grants: Iterable[Grant]) -> BDD:
        """Replies ``dst`` sends back to ``src`` on ``src``'s stateful grants."""
        stateful = [g for g in grants if g.stateful]
        if not stateful:
            return self.hs.false
        return (
            self.bound(dst)
            & self.first_hop(dst, src)
            & self.ip("ip_dst", src.ip)
            & self.grants(stateful, reply=True)
        )

    def allowed_new(self, src: EndpointInfo, dst: EndpointInfo) -> BDD:
        """Property 2: what may be delivered from ``src`` to ``dst`` (same tenant) as new."""
        hs = self.hs
        if src.key == dst.key:
            seg = self.net.segment(src.tenant, src.segment)
            if seg.gateway is None:
                return hs.false
            return hs.eq("eth_type", ETH_ARP) & hs.eq("arp_op", 1) & self.ip("ip_dst", seg.gateway)
        out = self.grants(pair_grants(self.net, src, dst)) & self.ip("ip_src", src.ip)
        out &= self.ip("ip_dst", dst.ip)
        if src.tenant == dst.tenant and src.segment == dst.segment:
            out |= hs.eq("eth_type", ETH_ARP) & self.ip("ip_dst", dst.ip)
        if ipv6_allowed(self.net, src, dst):
            out |= hs.eq("eth_type", ETH_IP6)
        return out

    def same_address(self, name: str) -> BDD:
        """Relation: the live ``name`` equals its ghost (the injected value)."""
        bdd = self.hs.bdd
        out = self.hs.true
        width = 32
        for i in range(width):
            out &= bdd.apply("equiv", bdd.var(f"{name}_{i}"), bdd.var(f"o.{name}_{i}"))
        return out


# ---------------------------------------------------------------------------- checks


def _endpoint_of(network: Network, qualified: str | None) -> EndpointInfo | None:
    if qualified is None:
        return None
    tenant, _, name = qualified.partition("/")
    return network.endpoint(tenant, name)


def _sources(network: Network) -> dict[tuple[str, int], EndpointInfo]:
    return {(ep.switch, ep.port): ep for ep in network.endpoints}


def _shared_pairs(network: Network) -> dict[tuple[tuple[str, str], tuple[str, str]], list[Grant]]:
    """Cross-tenant consumer->provider pairs and their shared-service grants."""
    out: dict[tuple[tuple[str, str], tuple[str, str]], list[Grant]] = {}
    for (s, d), grants in expected_reachability(network).items():
        if s[0] != d[0]:
            out[(s, d)] = [g for g in grants if g.kind == "shared-service"]
    return out


def _delivered(run: Reachability, ingress: tuple[str, int]) -> list[Outcome]:
    return [o for o in run.outcomes.get(ingress, []) if o.disposition.kind == DELIVERED]


def check_isolation(runs: Runs, network: Network, spaces: Spaces) -> PropertyResult:
    hs = runs.hs
    shared = _shared_pairs(network)
    violations: list[Violation] = []
    checked = 0
    for ingress, src in _sources(network).items():
        for mode, run in (("new", runs.new), ("any", runs.any)):
            for o in _delivered(run, ingress):
                dst = _endpoint_of(network, o.disposition.endpoint)
                if dst is None or dst.tenant == src.tenant:
                    continue
                checked += 1
                origin = hs.origin(o.relation)
                if mode == "new":
                    allowed = spaces.grants(shared.get((src.key, dst.key), []))
                elif (src.key, dst.key) in shared or (dst.key, src.key) in shared:
                    allowed = hs.eq("eth_type", ETH_IP)
                else:
                    allowed = hs.false
                bad = origin & ~allowed
                if hs.is_empty(bad):
                    continue
                if mode == "any" and any(
                    v.src == src.qualified and v.dst == dst.qualified for v in violations
                ):
                    continue  # already shown with every lookup new
                what = "new connection " if mode == "new" else ""
                violations.append(
                    Violation(
                        "isolation",
                        f"{what}traffic of tenant {src.tenant} ({src.qualified}) is "
                        f"delivered to tenant {dst.tenant} ({dst.qualified}) outside any shared service",
                        ingress,
                        src.qualified,
                        dst.qualified,
                        mode,
                        bad,
                        o,
                    )
                )
    desc = (
        "every packet delivered across tenants, injected at every edge port, in every conntrack "
        "state (and again with every lookup new)"
    )
    return _result(
        "isolation", desc, "all headers × all ct states", {"cross-tenant deliveries": checked}, violations
    )


def check_conformance(runs: Runs, network: Network, spaces: Spaces) -> PropertyResult:
    hs = runs.hs
    violations: list[Violation] = []
    checked = 0
    keep_ip = spaces.same_address("ip_src") & spaces.same_address("ip_dst")
    for ingress, src in _sources(network).items():
        for o in _delivered(runs.new, ingress):
            dst = _endpoint_of(network, o.disposition.endpoint)
            if dst is None or dst.tenant != src.tenant:
                continue
            checked += 1
            origin = hs.origin(o.relation)
            bad = origin & ~spaces.allowed_new(src, dst)
            if not hs.is_empty(bad):
                target = "itself" if src.key == dst.key else dst.qualified
                violations.append(
                    Violation(
                        "conformance",
                        f"{src.qualified} reaches {target} with traffic no grant allows",
                        ingress,
                        src.qualified,
                        dst.qualified,
                        "new",
                        bad,
                        o,
                    )
                )
                continue
            ipv4 = o.relation & hs.eq("eth_type", ETH_IP)
            nat = hs.origin(ipv4 & ~keep_ip)
            if not hs.is_empty(nat):
                violations.append(
                    Violation(
                        "conformance",
                        f"{src.qualified} -> {dst.qualified}: IPv4 addresses are "
                        "rewritten on the way (segctl does no NAT)",
                        ingress,
                        src.qualified,
                        dst.qualified,
                        "new",
                        nat,
                        o,
                    )
                )
    desc = "every packet delivered inside a tenant when every conntrack lookup says new"
    return _result(
        "conformance",
        desc,
        "all headers, ct_state=+trk+new at every lookup",
        {"intra-tenant deliveries": checked},
        violations,
    )


@dataclass
class _Allowed:
    src: EndpointInfo
    dst: EndpointInfo
    forward: BDD
    reply: BDD
    grants: tuple[Grant, ...]


def _allowed_spaces(network: Network, spaces: Spaces) -> list[_Allowed]:
    out = []
    for (s, d), grants in expected_reachability(network).items():
        src, dst = network.endpoint(*s), network.endpoint(*d)
        out.append(
            _Allowed(src, dst, spaces.forward(src, dst, grants), spaces.reply(src, dst, grants), grants)
        )
    return out


def _commit_zones(runs: Runs, a: _Allowed) -> frozenset[int]:
    """Zones in which the tables commit some of ``a``'s forward packets (all lookups new)."""
    hs = runs.hs
    ingress = (a.src.switch, a.src.port)
    return frozenset(
        c.zone for c in runs.new_commits(ingress) if not hs.is_empty(hs.origin(c.relation) & a.forward)
    )


def _cover(hs: HeaderSpace, outcomes: list[Outcome], wanted: BDD, endpoint: str) -> tuple[BDD, list[Outcome]]:
    """(part of ``wanted`` not delivered to ``endpoint``, outcomes that hold it)."""
    delivered = hs.false
    for o in outcomes:
        if o.disposition.kind == DELIVERED and o.disposition.endpoint == endpoint:
            delivered |= hs.origin(o.relation)
    missing = wanted & ~delivered
    if hs.is_empty(missing):
        return missing, []
    holders = [o for o in outcomes if not hs.is_empty(hs.origin(o.relation) & missing)]
    return missing, holders


def check_allowed_delivered(
    runs: Runs, network: Network, spaces: Spaces, allowed: list[_Allowed], replies: dict[int, list[Outcome]]
) -> PropertyResult:
    hs = runs.hs
    violations: list[Violation] = []
    for i, a in enumerate(allowed):
        ingress = (a.src.switch, a.src.port)
        missing, holders = _cover(hs, runs.new.outcomes.get(ingress, []), a.forward, a.dst.qualified)
        if not hs.is_empty(missing):
            o = holders[0] if holders else None
            violations.append(
                Violation(
                    "allowed-delivered",
                    f"granted traffic {a.src.qualified} -> {a.dst.qualified} "
                    f"({_grants_text(a.grants)}) is not all delivered",
                    ingress,
                    a.src.qualified,
                    a.dst.qualified,
                    "new",
                    missing,
                    o,
                )
            )
        if hs.is_empty(a.reply):
            continue
        back = (a.dst.switch, a.dst.port)
        missing, holders = _cover(hs, replies.get(i, []), a.reply, a.src.qualified)
        if not hs.is_empty(missing):
            o = holders[0] if holders else None
            violations.append(
                Violation(
                    "allowed-delivered",
                    f"replies {a.dst.qualified} -> {a.src.qualified} of a "
                    f"granted stateful connection are not all delivered",
                    back,
                    a.dst.qualified,
                    a.src.qualified,
                    "est",
                    missing,
                    o,
                )
            )
    stateful = sum(1 for a in allowed if not hs.is_empty(a.reply))
    desc = (
        "for every granted (source, destination): new packets with the bound source, the destination "
        "address and MAC (or gateway MAC, TTL >= 2), any granted service; and replies of stateful grants"
    )
    return _result(
        "allowed-delivered",
        desc,
        "granted services × bound addresses",
        {"granted pairs": len(allowed), "stateful reply spaces": stateful},
        violations,
    )


def check_spoof(runs: Runs, network: Network, spaces: Spaces) -> PropertyResult:
    hs = runs.hs
    violations: list[Violation] = []
    checked = 0
    for ingress, src in _sources(network).items():
        bound = spaces.bound(src)
        for o in _delivered(runs.any, ingress):
            checked += 1
            bad = hs.origin(o.relation) & ~bound
            if hs.is_empty(bad):
                continue
            violations.append(
                Violation(
                    "spoof-guard",
                    f"a packet from {src.qualified}'s port with a source not bound to it "
                    f"is delivered to {o.disposition.endpoint}",
                    ingress,
                    src.qualified,
                    o.disposition.endpoint,
                    "any",
                    bad,
                    o,
                )
            )
            break
    return _result(
        "spoof-guard",
        "every delivered packet of every edge port, in every conntrack state",
        "all headers × all ct states",
        {"edge ports": len(_sources(network)), "deliveries": checked},
        violations,
    )


def check_loops(
    runs: Runs, network: Network, allowed: list[_Allowed], replies: dict[int, list[Outcome]]
) -> PropertyResult:
    hs = runs.hs
    violations: list[Violation] = []
    sources = _sources(network)
    for ingress, outs in runs.any.outcomes.items():
        src = sources.get(ingress)
        for o in outs:
            if o.disposition.kind in (LOOP, TRUNCATED):
                violations.append(
                    Violation(
                        "loop-free",
                        f"packets from {ingress[0]}:{ingress[1]} {o.disposition}",
                        ingress,
                        src.qualified if src else None,
                        None,
                        "any",
                        hs.origin(o.relation),
                        o,
                    )
                )
                break
    for i, a in enumerate(allowed):
        for mode, outs, wanted, ingress in (
            (
                "new",
                runs.new.outcomes.get((a.src.switch, a.src.port), []),
                a.forward,
                (a.src.switch, a.src.port),
            ),
            ("est", replies.get(i, []), a.reply, (a.dst.switch, a.dst.port)),
        ):
            for o in outs:
                if o.disposition.kind not in _BLACK_HOLES:
                    continue
                bad = hs.origin(o.relation) & wanted
                if not hs.is_empty(bad):
                    violations.append(
                        Violation(
                            "loop-free",
                            f"allowed traffic {a.src.qualified} -> {a.dst.qualified}"
                            f"{' (replies)' if mode == 'est' else ''} ends {o.disposition}",
                            ingress,
                            a.src.qualified,
                            a.dst.qualified,
                            mode,
                            bad,
                            o,
                        )
                    )
                    break
    total = sum(len(v) for v in runs.any.outcomes.values())
    return _result(
        "loop-free",
        "every path of every packet (loops); the allowed spaces (black holes)",
        "all headers × all ct states",
        {"paths": total},
        violations,
    )


def _zone_owners(network: Network) -> dict[int, set[tuple[str, str]]]:
    """Per conntrack zone: endpoints whose packets may be tracked there (own tenant, shared peers)."""
    owners: dict[int, set[tuple[str, str]]] = {}
    for ep in network.endpoints:
        owners.setdefault(network.tenant(ep.tenant).id, set()).add(ep.key)
    for s, d in _shared_pairs(network):
        for a, b in ((s, d), (d, s)):
            owners.setdefault(network.tenant(a[0]).id, set()).add(b)
    return owners


def check_commits(runs: Runs, network: Network, spaces: Spaces) -> PropertyResult:
    hs = runs.hs
    violations: list[Violation] = []
    sources = _sources(network)
    owners = _zone_owners(network)
    reach = expected_reachability(network)
    by_source: dict[tuple[str, str], list[tuple[EndpointInfo, tuple[Grant, ...]]]] = {}
    for (s, d), grants in reach.items():
        by_source.setdefault(s, []).append((network.endpoint(*d), tuple(grants)))
    # (ok, repliers) depend only on the source and the zone: built once per pair, not per commit.
    unsafe: dict[tuple[tuple[str, str], int], BDD] = {}
    seen: set[tuple[tuple[str, int], str, int, int]] = set()
    for c in runs.new.commits:
        src = sources.get(c.ingress)
        if src is None:
            continue
        outside = unsafe.get((src.key, c.zone))
        if outside is None:
            ok = hs.false
            for dst, grants in by_source.get(src.key, []):
                zones = {network.tenant(src.tenant).id, network.tenant(dst.tenant).id}
                if c.zone in zones:
                    ok |= spaces.grants([g for g in grants if g.stateful]) & spaces.ip("ip_dst", dst.ip)
            repliers = hs.false
            for owner in owners.get(c.zone, set()):
                if owner != src.key:
                    repliers |= spaces.ip("ip_dst", network.endpoint(*owner).ip)
            outside = unsafe[(src.key, c.zone)] = ~ok & repliers
        committed = hs.origin(c.relation) & spaces.bound(src)
        bad = committed & outside
        if hs.is_empty(bad):
            continue
        key = (c.ingress, c.switch, c.table, c.zone)
        if key in seen:
            continue
        seen.add(key)
        # Prefer a packet that is also delivered: the commit and the leak in one trace.
        o = next(
            (o for o in _delivered(runs.new, c.ingress) if not hs.is_empty(hs.origin(o.relation) & bad)), None
        )
        if o is not None:
            bad &= hs.origin(o.relation)
        violations.append(
            Violation(
                "commit-safety",
                f"{c.switch} table {c.table} commits traffic of {src.qualified} in zone "
                f"{c.zone} that no stateful grant allows",
                c.ingress,
                src.qualified,
                o.disposition.endpoint if o else None,
                "new",
                bad,
                o,
                c,
            )
        )
    return _result(
        "commit-safety",
        "every ct(commit) met by a new packet of every edge port",
        "committed packets × zones",
        {"commit points": len(runs.new.commits)},
        violations,
    )


def _grants_text(grants: Iterable[Grant]) -> str:
    return "; ".join(g.describe() for g in grants)


def _result(
    pid: str, description: str, space: str, counts: Mapping[str, int], violations: list[Violation]
) -> PropertyResult:
    _, title, statement = next(p for p in PROPERTIES if p[0] == pid)
    return PropertyResult(pid, title, statement, Checked(description, space, dict(counts)), tuple(violations))


def check_all(
    runs: Runs, network: Network, *, progress: Callable[[str], None] | None = None
) -> list[PropertyResult]:
    """Check the six properties over ``runs``; results in :data:`PROPERTIES` order."""
    say = progress or (lambda _msg: None)
    spaces = Spaces(runs.hs, network)
    allowed = _allowed_spaces(network, spaces)
    say("replies of stateful grants")
    replies: dict[int, list[Outcome]] = {}
    for i, a in enumerate(allowed):
        if not runs.hs.is_empty(a.reply):
            zones = _commit_zones(runs, a)
            replies[i] = runs.reply_engine(zones).inject(a.dst.switch, a.dst.port, a.reply)
    say("checking properties")
    return [
        check_isolation(runs, network, spaces),
        check_conformance(runs, network, spaces),
        check_allowed_delivered(runs, network, spaces, allowed, replies),
        check_spoof(runs, network, spaces),
        check_loops(runs, network, allowed, replies),
        check_commits(runs, network, spaces),
    ]
