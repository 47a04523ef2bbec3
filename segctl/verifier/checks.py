"""The properties on an engine's views (:mod:`segctl.verifier.observe`): their inputs and
violation types, and properties 1, 2, 4 and 6 (isolation, conformance, spoof guard, commit
safety); 3 and 5 (delivery, loops) are in :mod:`segctl.verifier.delivery`.

Every check works per *destination* with tagged relations: the packets of all sources
delivered to one endpoint are one BDD whose tag says which ingress each came from, and the
intent side is built the same way (one tagged union per class of sources that share their
grants), so a property costs a few BDD operations per destination, not one per pair; the
sources that break it are read off the tags of the difference, and only they are looked at
one by one. What each property means is in :mod:`segctl.verifier.properties`.

The result is a function of the views as Boolean functions (not of how an engine walked
the tables), and every list comes out in a fixed order: sources in the intent's endpoint
order, destinations likewise, granted pairs in :func:`~segctl.topology.analysis.expected_reachability`
order, dispositions and commit points sorted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from segctl.topology.analysis import Grant, ipv6_addresses, ipv6_applies, ipv6_routed
from segctl.topology.network import EndpointInfo, Network
from segctl.topology.network import routed as is_routed
from segctl.topology.outside import ExternalGrant, external_grants
from segctl.verifier.expectations import Expectations
from segctl.verifier.headerspace import BDD, HeaderSpace
from segctl.verifier.observe import CommitPoint, ReplyRequest, RunView
from segctl.verifier.spaces import ETH_ARP, ETH_IP, ETH_IP6, Spaces
from segctl.verifier.symbolic import Disposition, standby_name

__all__ = [
    "Checked",
    "Inputs",
    "Pair",
    "Target",
    "Violation",
    "commit_safety",
    "conformance",
    "granted_pairs",
    "isolation",
    "spoof_guard",
]

SwitchPort = tuple[str, int]
EndpointKey = tuple[str, str]


@dataclass(frozen=True)
class Target:
    """What a counterexample's concrete trace must show.

    ``kind``: ``delivered`` (to ``endpoint``), ``missing`` (not delivered to ``endpoint``),
    ``hole`` (ends in ``disposition``), ``commit`` (passes the violation's commit point, and
    is delivered to ``endpoint`` when there is one).
    """

    kind: str
    endpoint: str | None = None
    disposition: Disposition | None = None


@dataclass(frozen=True)
class Violation:
    """One violated instance of a property, for one source (and destination).

    ``space`` holds the offending packets as injected at ``ingress`` (origin, live names);
    ``ct_mode`` says what every ``ct()`` lookup returned: ``new``, ``any``, or ``est`` (a
    reply: ``+est+rpl`` in ``zones``, ``+new`` elsewhere); ``commit`` is the commit point
    of a commit-safety violation.
    """

    property: str
    message: str
    ingress: SwitchPort
    src: str | None
    dst: str | None
    ct_mode: str
    space: BDD = field(compare=False, repr=False)
    target: Target = Target("delivered")
    zones: frozenset[int] = frozenset()
    commit: CommitPoint | None = None
    #: Where it comes in its property's list, the same in every partition of a proof.
    order: tuple[object, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Checked:
    """What a property quantified over: a description, a header-space summary, counts."""

    description: str
    space: str
    counts: Mapping[str, int]


@dataclass(frozen=True)
class Pair:
    """A granted (source, destination) pair, its grants, its place in the intent's order."""

    src: EndpointInfo
    dst: EndpointInfo
    grants: tuple[Grant, ...]
    index: int = 0

    @property
    def stateful(self) -> bool:
        return any(g.stateful for g in self.grants)


@dataclass
class Inputs:
    """What the checks read: the intent (network, expectations, spaces, over the engine's
    manager) and the engine's views; ``ingresses[i]`` is tag ``i`` of runs any and new."""

    hs: HeaderSpace
    network: Network
    spaces: Spaces
    exp: Expectations
    ingresses: Sequence[SwitchPort]
    any: RunView
    new: RunView
    pairs: list[Pair] = field(default_factory=list)
    requests: list[ReplyRequest] = field(default_factory=list)
    request_pairs: list[list[Pair]] = field(default_factory=list)  # per request, its pairs
    replies: RunView | None = None
    #: Run E's injections at the uplinks (:func:`segctl.verifier.outside.outside_reply_requests`),
    #: tagged after ``requests``: tag ``outside_offset + i`` is ``outside_requests[i]``.
    outside_requests: list[Any] = field(default_factory=list)
    outside_offset: int = 0
    #: The ingresses this proof (or partition of one) injects; None: every one.
    injected: Sequence[SwitchPort] = ()
    #: Per external network (name): what its sources may send out, tagged; built once per
    #: proof by :func:`segctl.verifier.outside.egress_allowed` (properties 7 and 9 read it).
    egress_allowed: dict[str, BDD] = field(default_factory=dict)
    _forward: dict[EndpointKey, BDD] = field(default_factory=dict)

    def __post_init__(self) -> None:
        by_port = {(ep.switch, ep.port): ep for ep in self.network.endpoints}
        # the endpoints' ingresses come first; the uplinks' and then the standby uplinks' (tags
        # after them) are the outside's
        self.sources: list[EndpointInfo] = [by_port[p] for p in self.ingresses if p in by_port]
        self.outside_tags = self.hs.tag_set(range(len(self.sources), len(self.ingresses)))
        self._endpoint_tags = ~self.outside_tags if len(self.sources) < len(self.ingresses) else None
        self.tag_of = {ep.key: i for i, ep in enumerate(self.sources)}
        if not self.injected:
            self.injected = list(self.ingresses)
        self.position = {ep.key: i for i, ep in enumerate(self.network.endpoints)}
        self._position = [self.position[ep.key] for ep in self.sources]  # tag -> endpoint order
        self._tenant_tags: dict[str, BDD] = {}

    @cached_property
    def ingress_names(self) -> list[str]:
        """Per tag of runs any and new, who sends there: the endpoint (``tenant/name``), the
        active uplink (``external:NAME``) or a standby uplink (:func:`standby_name`)."""
        names = {(ep.switch, ep.port): ep.qualified for ep in self.network.endpoints}
        for x in self.network.externals:
            names.update({p: standby_name(x.name, p) for p in x.standby})
        names.update({(x.switch, x.port): x.qualified for x in self.network.externals})
        return [names.get(p, f"{p[0]}:{p[1]}") for p in self.ingresses]

    @cached_property
    def outside_grants(self) -> list[ExternalGrant]:
        """The intent's policies toward and from external networks (:func:`external_grants`),
        once per proof."""
        return external_grants(self.network)

    def tenant_tags(self, tenant: str) -> BDD:
        """Packets tagged with the ingress of an endpoint of ``tenant``."""
        cached = self._tenant_tags.get(tenant)
        if cached is None:
            eps = self.network.tenant_endpoints(tenant)
            cached = self._tenant_tags[tenant] = self.hs.tag_set(self.tag_of[ep.key] for ep in eps)
        return cached

    def untag(self, space: BDD, ep: EndpointInfo) -> BDD:
        return self.hs.untag(space, self.tag_of[ep.key])

    def endpoints_of(self, space: BDD) -> list[EndpointInfo]:
        """The sources some packet of a tagged relation came from, in endpoint order."""
        count = len(self.sources)  # the uplinks' tags follow: not endpoints
        tags = sorted((t for t in self.hs.tags(space) if t < count), key=self._position.__getitem__)
        return [self.sources[t] for t in tags]

    def delivered(self, view: RunView, dst: EndpointInfo) -> BDD:
        """What endpoints delivered to ``dst`` (the outside's packets are the exposure
        property's, :mod:`segctl.verifier.outside`)."""
        got = view.delivered.get(dst.qualified, self.hs.false)
        return got if self._endpoint_tags is None else got & self._endpoint_tags

    def forward_tagged(self, dst: EndpointInfo) -> BDD:
        """∪ over the sources granted to ``dst``: tag ∧ forward space (built per class of
        sources with the same grants and first hop)."""
        cached = self._forward.get(dst.key)
        if cached is None:
            classes: dict[tuple[tuple[Grant, ...], bool, str, bool], list[EndpointInfo]] = {}
            for p in self.pairs_to(dst):
                routed = is_routed(p.src, dst)
                key = (p.grants, routed, p.src.tenant if routed else "", ipv6_applies(p.src, dst))
                classes.setdefault(key, []).append(p.src)
            sp, hs = self.spaces, self.hs
            parts = []
            for (grants, routed, _, ipv6), srcs in classes.items():
                routed6 = routed and ipv6  # routed IPv6: global addresses only
                source = sp.not_link_local_from(srcs) if routed6 else hs.true
                parts.append(
                    sp.bound_tagged(srcs)
                    & source
                    & sp.first_hop(srcs[0], dst)
                    & sp.grants(grants, ipv6=ipv6)
                    & sp.to_address(dst, ipv6, routed6=routed6)
                )
            cached = self._forward[dst.key] = hs.union(parts)
        return cached

    def pairs_to(self, dst: EndpointInfo) -> list[Pair]:
        if not hasattr(self, "_pairs_to"):
            index: dict[EndpointKey, list[Pair]] = {}
            for p in self.pairs:
                index.setdefault(p.dst.key, []).append(p)
            self._pairs_to = index
        return self._pairs_to.get(dst.key, [])


def granted_pairs(
    network: Network, exp: Expectations, sources: frozenset[EndpointKey] | None = None
) -> list[Pair]:
    """Every granted pair in expected-reachability order (``sources``: only theirs, each
    keeping its index in the whole order)."""
    out = []
    index = 0
    for src in network.endpoints:
        row = exp.rows.get(src.key, {})
        if sources is None or src.key in sources:
            out += [
                Pair(src, network.endpoint(*d), grants, index + i)
                for i, (d, grants) in enumerate(row.items())
            ]
        index += len(row)
    return out


# ---------------------------------------------------------------------------- 1. isolation


def isolation(inp: Inputs) -> tuple[list[Violation], Mapping[str, int]]:
    """Property 1 over runs new and any (:mod:`segctl.verifier.properties`)."""
    hs, net, sp, exp = inp.hs, inp.network, inp.spaces, inp.exp
    found: list[Violation] = []
    new_bad: set[tuple[EndpointKey, EndpointKey]] = set()
    crossings = 0
    for rank, (mode, view) in enumerate((("new", inp.new), ("any", inp.any))):
        for dst in net.endpoints:
            delivered = inp.delivered(view, dst)
            if hs.is_empty(delivered):
                continue
            cross = delivered & ~inp.tenant_tags(dst.tenant)
            if hs.is_empty(cross):
                continue
            crossings += len(hs.tags(cross))
            # sources with the same grants share one tag set: a consumer tenant's n sources
            # of a shared service cost one AND, not n ORs into a growing space
            by_grants: dict[tuple[tuple[Grant, ...] | None, bool], list[EndpointInfo]] = {}
            for src in inp.endpoints_of(cross):
                if mode == "new":
                    grants = exp.shared.get((src.key, dst.key))
                    if grants:
                        by_grants.setdefault((tuple(grants), ipv6_applies(src, dst)), []).append(src)
                elif (src.key, dst.key) in exp.declared or (dst.key, src.key) in exp.declared:
                    by_grants.setdefault((None, ipv6_applies(src, dst)), []).append(src)
            # across tenants IPv4, and IPv6 where both segments route it (never link-local)
            allowed = hs.union(
                sp.tag_set(srcs)
                & (hs.true if grants is None else sp.grants(grants, ipv6=ipv6))
                & _cross_tenant_families(inp, srcs, ipv6)
                for (grants, ipv6), srcs in by_grants.items()
            )
            bad = cross & ~allowed
            for src in inp.endpoints_of(bad):
                if mode == "any" and (src.key, dst.key) in new_bad:
                    continue  # already shown with every lookup new
                if mode == "new":
                    new_bad.add((src.key, dst.key))
                what = "new connection " if mode == "new" else ""
                message = (
                    f"{what}traffic of tenant {src.tenant} ({src.qualified}) is "
                    f"delivered to tenant {dst.tenant} ({dst.qualified}) outside any shared service"
                )
                v = Violation(
                    "isolation", message, (src.switch, src.port), src.qualified, dst.qualified, mode,
                    inp.untag(bad, src), Target("delivered", dst.qualified),
                    order=(inp.position[src.key], rank, inp.position[dst.key]),
                )  # fmt: skip
                found.append(v)
    return found, {"cross-tenant deliveries": crossings}


def _cross_tenant_families(inp: Inputs, sources: Sequence[EndpointInfo], ipv6: bool) -> BDD:
    """What may cross tenants from ``sources``: IPv4, and with ``ipv6`` (a shared service's
    routed pair, :func:`~segctl.topology.analysis.ipv6_applies`) IPv6 from a global address."""
    hs = inp.hs
    ipv4 = hs.oeq("eth_type", ETH_IP)
    if not ipv6:
        return ipv4
    return ipv4 | (hs.oeq("eth_type", ETH_IP6) & inp.spaces.not_link_local_from(sources))


# ---------------------------------------------------------------------------- 2. conformance


def _allowed_new_tagged(inp: Inputs, dst: EndpointInfo, sources: Sequence[EndpointInfo]) -> BDD:
    """∪ over ``sources`` (of ``dst``'s tenant): tag ∧ what may be delivered to ``dst`` as new."""
    hs, sp, exp = inp.hs, inp.spaces, inp.exp
    classes: dict[tuple[tuple[Grant, ...], bool, bool], list[EndpointInfo]] = {}
    same_seg: list[EndpointInfo] = []
    v6: list[EndpointInfo] = []  # neighbour discovery: IPv6 peers of one segment
    out = hs.false
    for src in sources:
        if src.key == dst.key:
            out |= hs.tag(inp.tag_of[src.key]) & sp.gateway_arp(src)
            continue
        ipv6, routed6 = ipv6_applies(src, dst), ipv6_routed(src, dst)
        grants = exp.rows.get(src.key, {}).get(dst.key, ())
        if grants:
            classes.setdefault((grants, ipv6, routed6), []).append(src)
        if src.segment == dst.segment:
            same_seg.append(src)
            if ipv6:
                v6.append(src)
    for (grants, ipv6, routed6), srcs in classes.items():
        sent = sp.src_ip_tagged(srcs) | (sp.ip6_tagged(srcs, "src", routed6=routed6) if ipv6 else hs.false)
        out |= sent & sp.grants(grants, ipv6=ipv6) & sp.to_address(dst, ipv6, routed6=routed6)
    if same_seg:
        out |= sp.tag_set(same_seg) & hs.oeq("eth_type", ETH_ARP) & sp.ip("ip_dst", dst.ip)
    if v6:
        out |= sp.tag_set(v6) & sp.neighbour_discovery()
    return out


def conformance(inp: Inputs) -> tuple[list[Violation], Mapping[str, int]]:
    """Property 2 over run new."""
    hs, net, sp = inp.hs, inp.network, inp.spaces
    found: list[Violation] = []
    inside = 0
    for dst in net.endpoints:
        same = inp.delivered(inp.new, dst) & inp.tenant_tags(dst.tenant)
        if hs.is_empty(same):
            continue
        sources = inp.endpoints_of(same)
        inside += len(sources)
        bad = same & ~_allowed_new_tagged(inp, dst, sources)
        bad_sources = inp.endpoints_of(bad)
        for src in bad_sources:
            target = "itself" if src.key == dst.key else dst.qualified
            message = f"{src.qualified} reaches {target} with traffic no grant allows"
            v = Violation(
                "conformance", message, (src.switch, src.port), src.qualified, dst.qualified, "new",
                inp.untag(bad, src), Target("delivered", dst.qualified),
                order=(inp.position[src.key], inp.position[dst.key]),
            )  # fmt: skip
            found.append(v)
        natted = inp.new.natted.get(dst.qualified, hs.false) & same & ~sp.tag_set(bad_sources)
        for src in inp.endpoints_of(natted):
            message = (
                f"{src.qualified} -> {dst.qualified}: IPv4 addresses are rewritten on the way "
                "(segctl does no NAT)"
            )
            v = Violation(
                "conformance", message, (src.switch, src.port), src.qualified, dst.qualified, "new",
                inp.untag(natted, src), Target("delivered", dst.qualified),
                order=(inp.position[src.key], inp.position[dst.key]),
            )  # fmt: skip
            found.append(v)
    return found, {"intra-tenant deliveries": inside}


# ---------------------------------------------------------------------------- 4. spoof-guard


def spoof_guard(inp: Inputs) -> tuple[list[Violation], Mapping[str, int]]:
    """Property 4 over run any: per source, the first destination (endpoint order) that
    receives a packet with a source not bound to its port."""
    hs, net, sp = inp.hs, inp.network, inp.spaces
    bound = sp.bound_tagged(inp.sources)
    first: dict[EndpointKey, Violation] = {}
    deliveries = 0
    for dst in net.endpoints:
        delivered = inp.delivered(inp.any, dst)
        if hs.is_empty(delivered):
            continue
        deliveries += len(hs.tags(delivered))
        bad = delivered & ~bound
        for src in inp.endpoints_of(bad):
            if src.key in first:
                continue
            message = (
                f"a packet from {src.qualified}'s port with a source not bound to it "
                f"is delivered to {dst.qualified}"
            )
            first[src.key] = Violation(
                "spoof-guard", message, (src.switch, src.port), src.qualified, dst.qualified, "any",
                inp.untag(bad, src), Target("delivered", dst.qualified),
            )  # fmt: skip
    ordered = [
        replace(first[ep.key], order=(inp.position[ep.key],)) for ep in net.endpoints if ep.key in first
    ]
    return ordered, {"edge ports": len(inp.injected), "deliveries": deliveries}


# ---------------------------------------------------------------------------- 6. commit-safety


#: What a source may commit in a zone: per tuple of stateful grants, the destination
#: addresses they cover (IPv4, and IPv6 where the pair may use it).
_CommitKey = tuple[tuple[tuple[Grant, ...], frozenset[IPv4Address], frozenset[IPv6Address]], ...]


def _grants_key(inp: Inputs, src: EndpointInfo, zone: int) -> _CommitKey:
    """What ``src`` may commit in ``zone``, as data: its stateful grants by the destination
    addresses they cover (destinations whose tenant, or whose source's tenant, owns ``zone``)."""
    net = inp.network
    src_zone = net.tenant(src.tenant).id
    by_grants: dict[tuple[Grant, ...], tuple[set[IPv4Address], set[IPv6Address]]] = {}
    for d, grants in inp.exp.rows.get(src.key, {}).items():
        dst = net.endpoint(*d)
        if zone not in (src_zone, net.tenant(dst.tenant).id):
            continue
        stateful = tuple(g for g in grants if g.stateful)
        if stateful:
            v4, v6 = by_grants.setdefault(stateful, (set(), set()))
            v4.add(dst.ip)
            if ipv6_applies(src, dst):
                v6.update(ipv6_addresses(dst, ipv6_routed(src, dst)))
    return tuple(sorted(((g, frozenset(v4), frozenset(v6)) for g, (v4, v6) in by_grants.items()), key=repr))


def commit_safety(inp: Inputs) -> tuple[list[Violation], Mapping[str, int]]:
    """Property 6 over run new's commits: per commit point, the committed packets of every
    source, bound to it, whose destination is an endpoint able to answer in the point's zone
    (its owners, not the source itself) and that no stateful grant of the source allows."""
    hs, net, sp = inp.hs, inp.network, inp.spaces
    oks: dict[object, BDD] = {}
    keys: dict[tuple[EndpointKey, int], _CommitKey] = {}
    found: list[Violation] = []
    points = 0
    ipv4, ipv6 = hs.oeq("eth_type", ETH_IP), hs.oeq("eth_type", ETH_IP6)
    for (switch, table, zone), committed in inp.new.sorted_commits():
        committers = inp.endpoints_of(committed)
        points += len(committers)
        owner_keys = inp.exp.owners.get(zone, frozenset())
        owners = [net.endpoint(*k) for k in owner_keys]
        owner_ips = [ep.ip for ep in owners]
        owner_ip6s = [a for ep in owners for a in ep.ipv6_sources]
        # addresses only one owner has (a source's own address, if so, is no replier)
        unique = {a for a, n in Counter([*owner_ips, *owner_ip6s]).items() if n == 1}
        repliers = ipv4 & sp.ip_set("ip_dst", owner_ips)
        if owner_ip6s:
            repliers |= ipv6 & sp.ip6_set("ipv6_dst", owner_ip6s)
        by_ok: dict[_CommitKey, list[EndpointInfo]] = {}
        selves, selves6 = [], []
        for src in committers:
            key = keys.get((src.key, zone))
            if key is None:  # a zone's commit points (one per switch) share their sources' keys
                key = keys[(src.key, zone)] = _grants_key(inp, src, zone)
            by_ok.setdefault(key, []).append(src)
            if src.key in owner_keys:  # it does not answer itself: its own address is no replier
                if src.ip in unique:
                    selves.append(src)
                if src.ipv6_sources and all(a in unique for a in src.ipv6_sources):
                    selves6.append(src)
        allowed = hs.false
        for key, srcs in by_ok.items():
            ok = oks.get(key)
            if ok is None:
                ok = oks[key] = hs.union(
                    sp.grants(g, ipv6=bool(v6))
                    & ((ipv4 & sp.ip_set("ip_dst", v4)) | (ipv6 & sp.ip6_set("ipv6_dst", v6)))
                    for g, v4, v6 in key
                )
            allowed |= ok & sp.tag_set(srcs)
        self_to = (ipv4 & sp.dst_ip_tagged(selves)) | sp.ip6_tagged(selves6, "dst")
        bad = committed & sp.bound_tagged(committers) & ~allowed & repliers & ~self_to
        for src in inp.endpoints_of(bad):
            mine = inp.untag(bad, src)
            reached = None
            for dst in net.endpoints:
                seen = inp.untag(inp.delivered(inp.new, dst), src) & mine
                if not hs.is_empty(seen):
                    mine, reached = seen, dst.qualified
                    break
            message = (
                f"{switch} table {table} commits traffic of {src.qualified} in zone "
                f"{zone} that no stateful grant allows"
            )
            v = Violation(
                "commit-safety", message, (src.switch, src.port), src.qualified, reached, "new",
                mine, Target("commit", reached), commit=(switch, table, zone),
                order=(inp.position[src.key], (switch, table, zone)),
            )  # fmt: skip
            found.append(v)
    return found, {"commit points": points}
