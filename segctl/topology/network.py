"""The resolved network: a valid intent with every id, VLAN and MAC decided.

:func:`resolve` is the single place where automatic values are chosen (tenant ids,
fabric VLAN ids, gateway MACs), deterministically from the document. Everything
downstream (topology graph, compiler, verifier, analysis) reads a :class:`Network`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import TypeVar

from segctl.errors import IntentError, Problem
from segctl.topology.load import load_checked
from segctl.topology.schema import (
    Guardrail,
    GuardrailPeer,
    Intent,
    Policy,
    Selector,
    Service,
    SharedService,
    Tenant,
)
from segctl.topology.sets import address_in, expand_service_sets, in_address_set
from segctl.topology.validate import VLAN_RANGE, check_intent

__all__ = [
    "MIN_ROUTED_TTL",
    "EndpointInfo",
    "ExternalInfo",
    "Network",
    "SegmentInfo",
    "SwitchInfo",
    "TenantInfo",
    "first_hop_mac",
    "load_network",
    "per_network",
    "resolve",
    "routed",
]

#: The distributed gateway decrements the TTL of what it routes and drops TTL 0 and 1.
MIN_ROUTED_TTL = 2

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class SwitchInfo:
    name: str
    dpid: int


@dataclass(frozen=True)
class TenantInfo:
    """A tenant with its numeric id (also its conntrack zone) and gateway MAC."""

    name: str
    id: int
    gateway_mac: str
    #: (external network, public address) the tenant's endpoints without a floating IP
    #: share as their source there (``snat`` of the intent), in the externals' order.
    snat: tuple[tuple[str, IPv4Address], ...] = ()

    def snat_address(self, external: str) -> IPv4Address | None:
        return dict(self.snat).get(external)


@dataclass(frozen=True)
class ExternalInfo:
    """An external network: its active uplink port (``switch``, ``port``), the upstream
    router, the public range on the link and the fabric's MAC there; ``index`` is 1-based
    in document order. ``attach`` is every declared uplink port in order (redundancy:
    active/standby, the first one that is up is active, see :func:`with_uplinks_down`)."""

    name: str
    index: int
    switch: str
    port: int
    router_ip: IPv4Address
    router_mac: str
    cidr: IPv4Network
    mac: str
    #: IPv6 on the link (both or neither): the router's address and the link's prefix.
    router_ip6: IPv6Address | None = None
    cidr6: IPv6Network | None = None
    attach: tuple[tuple[str, int], ...] = ()

    @property
    def qualified(self) -> str:
        """Its name where an endpoint's ``tenant/name`` would stand (views, reports)."""
        return f"external:{self.name}"

    @property
    def standby(self) -> tuple[tuple[str, int], ...]:
        """The declared uplink ports other than the active one: they get no rules, so the
        fabric neither admits nor sends anything there."""
        return tuple(p for p in self.attach if p != (self.switch, self.port))


@dataclass(frozen=True)
class SegmentInfo:
    """A segment with its per-tenant index (1-based) and fabric VLAN id."""

    tenant: str
    name: str
    index: int
    cidr: IPv4Network
    cidr6: IPv6Network | None
    gateway: IPv4Address | None
    strict: bool
    vlan: int
    #: The distributed gateway's IPv6 address: IPv6 is routed to and from the segment.
    gateway6: IPv6Address | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.name)


@dataclass(frozen=True)
class EndpointInfo:
    """An endpoint, its tenant and segment, and the switch port it is bound to."""

    tenant: str
    segment: str
    name: str
    mac: str
    ip: IPv4Address
    ipv6: IPv6Address | None
    switch: str
    port: int
    labels: tuple[tuple[str, str], ...]
    rate_pps: int | None = None
    rate_kbps: int | None = None
    rate_burst: int | None = None
    #: Its link-local address (declared, or the EUI-64 one of its MAC); set when ``ipv6`` is.
    ipv6_link_local: IPv6Address | None = None
    #: Its segment's ``gateway6`` when it has ``ipv6`` too: its IPv6 is routed through it.
    ipv6_gateway: IPv6Address | None = None
    #: Its public 1:1 address and the external network whose range holds it.
    floating_ip: IPv4Address | None = None
    floating_external: str | None = None

    @property
    def ipv6_sources(self) -> tuple[IPv6Address, ...]:
        """The IPv6 addresses bound to its port: global, then link-local (none without ipv6)."""
        return tuple(a for a in (self.ipv6, self.ipv6_link_local) if a is not None)

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.name)

    @property
    def qualified(self) -> str:
        return f"{self.tenant}/{self.name}"

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class Network:
    """A valid intent, resolved. Lists keep document order; lookups are by key."""

    intent: Intent
    switches: tuple[SwitchInfo, ...]
    links: tuple[tuple[str, int, str, int], ...]
    tenants: tuple[TenantInfo, ...]
    segments: tuple[SegmentInfo, ...]
    endpoints: tuple[EndpointInfo, ...]
    externals: tuple[ExternalInfo, ...] = ()
    _tenant_by_name: dict[str, TenantInfo] = field(repr=False, compare=False, default_factory=dict)
    _segment_by_key: dict[tuple[str, str], SegmentInfo] = field(
        repr=False, compare=False, default_factory=dict
    )
    _endpoint_by_key: dict[tuple[str, str], EndpointInfo] = field(
        repr=False, compare=False, default_factory=dict
    )
    # endpoints by tenant and by (tenant, segment), document order (filled by resolve)
    _endpoints_by_tenant: dict[str, tuple[EndpointInfo, ...]] = field(
        repr=False, compare=False, default_factory=dict
    )
    _endpoints_by_segment: dict[tuple[str, str], tuple[EndpointInfo, ...]] = field(
        repr=False, compare=False, default_factory=dict
    )

    def tenant(self, name: str) -> TenantInfo:
        return self._tenant_by_name[name]

    def segment(self, tenant: str, name: str) -> SegmentInfo:
        return self._segment_by_key[(tenant, name)]

    def endpoint(self, tenant: str, name: str) -> EndpointInfo:
        return self._endpoint_by_key[(tenant, name)]

    def external(self, name: str) -> ExternalInfo:
        return next(x for x in self.externals if x.name == name)

    def tenant_doc(self, name: str) -> Tenant:
        return next(t for t in self.intent.tenants if t.name == name)

    def tenant_endpoints(self, tenant: str) -> list[EndpointInfo]:
        if self._endpoints_by_tenant or not self.endpoints:
            return list(self._endpoints_by_tenant.get(tenant, ()))
        return [ep for ep in self.endpoints if ep.tenant == tenant]

    def segment_endpoints(self, tenant: str, segment: str) -> list[EndpointInfo]:
        if self._endpoints_by_segment or not self.endpoints:
            return list(self._endpoints_by_segment.get((tenant, segment), ()))
        return [ep for ep in self.endpoints if ep.tenant == tenant and ep.segment == segment]

    def policies(self, tenant: str) -> list[Policy]:
        return list(self.tenant_doc(tenant).policies)

    @property
    def shared_services(self) -> list[SharedService]:
        return list(self.intent.shared_services)

    @property
    def guardrails(self) -> list[Guardrail]:
        return list(self.intent.guardrails)

    def peer_select(self, peer: GuardrailPeer) -> list[EndpointInfo]:
        """The endpoints one side of a guardrail selects, in document order."""
        eps = self.endpoints if peer.tenant is None else self.tenant_endpoints(peer.tenant)
        out = [
            ep
            for ep in eps
            if peer.segment in (None, ep.segment)
            and (peer.cidr is None or address_in(peer.cidr, ep.ip, ep.ipv6))
        ]
        if peer.address_set is not None and peer.tenant is not None:
            chosen = {ep.key for ep in self.select(peer.tenant, Selector(address_set=peer.address_set))}
            out = [ep for ep in out if ep.key in chosen]
        return out

    def find_endpoint(self, ref: str) -> EndpointInfo:
        """Find ``tenant/name`` or a name unique across tenants; raise IntentError otherwise."""
        if "/" in ref:
            tenant, _, name = ref.partition("/")
            found = [ep for ep in self.endpoints if ep.tenant == tenant and ep.name == name]
        else:
            found = [ep for ep in self.endpoints if ep.name == ref]
        if len(found) == 1:
            return found[0]
        reason = "no such endpoint" if not found else "ambiguous; write tenant/endpoint"
        raise IntentError([Problem("", f"endpoint {ref}: {reason}")])

    def select(self, tenant: str, selector: Selector) -> list[EndpointInfo]:
        """The endpoints of ``tenant`` that a policy selector picks, in document order (none
        for an external peer: it is outside the fabric)."""
        if selector.external is not None:
            return []
        eps = self.tenant_endpoints(tenant)
        if selector.endpoint is not None:
            return [ep for ep in eps if ep.name == selector.endpoint]
        if selector.endpoints is not None:
            return [ep for ep in eps if ep.name in selector.endpoints]
        if selector.segment is not None:
            return [ep for ep in eps if ep.segment == selector.segment]
        if selector.group is not None:
            return self.group_members(tenant, selector.group)
        if selector.address_set is not None:
            aset = next(a for a in self.tenant_doc(tenant).address_sets if a.name == selector.address_set)
            return [ep for ep in eps if in_address_set(aset, ep.name, ep.ip, ep.ipv6)]
        labels = selector.labels or {}
        return [ep for ep in eps if all(ep.label_dict().get(k) == v for k, v in labels.items())]

    def group_members(self, tenant: str, group: str) -> list[EndpointInfo]:
        doc = next(g for g in self.tenant_doc(tenant).groups if g.name == group)
        eps = self.tenant_endpoints(tenant)
        if doc.members is not None:
            return [ep for ep in eps if ep.name in doc.members]
        labels = doc.labels or {}
        return [ep for ep in eps if all(ep.label_dict().get(k) == v for k, v in labels.items())]

    def shared_providers(self, svc: SharedService) -> list[EndpointInfo]:
        tenant = svc.provider.tenant
        if svc.provider.endpoints is not None:
            return [ep for ep in self.tenant_endpoints(tenant) if ep.name in svc.provider.endpoints]
        return self.group_members(tenant, svc.provider.group or "")

    def shared_consumers(self, svc: SharedService) -> list[EndpointInfo]:
        out: list[EndpointInfo] = []
        for consumer in svc.consumers:
            if consumer.group is None:
                out += self.tenant_endpoints(consumer.tenant)
            else:
                out += self.group_members(consumer.tenant, consumer.group)
        return out


def routed(src: EndpointInfo, dst: EndpointInfo | None) -> bool:
    """Does a packet from ``src`` to ``dst`` go through ``src``'s tenant gateway? Always,
    unless both are in one segment of one tenant (``dst`` None: an address no endpoint owns)."""
    return dst is None or dst.tenant != src.tenant or dst.segment != src.segment


def first_hop_mac(network: Network, src: EndpointInfo, dst: EndpointInfo | None) -> str:
    """The ``eth_dst`` of a packet ``src`` sends to ``dst``: ``dst``'s MAC within a segment,
    else the gateway MAC of ``src``'s tenant; a routed packet needs a TTL of at least
    :data:`MIN_ROUTED_TTL`. The one statement of the first-hop rule: the verifier's header
    spaces, ``segctl trace`` and the scenarios' predictions all ask it.

    Within a tenant, segments never overlap, so "the same segment" is also "on-link" for a
    host's kernel. Across tenants a host whose subnet overlaps another tenant's (tenants may
    reuse addresses) would ARP for the peer directly, but ARP is answered only inside the
    segment, so no host learns another tenant's MAC: the routed form is the frame it can send.
    """
    if dst is not None and not routed(src, dst):
        return dst.mac
    return network.tenant(src.tenant).gateway_mac


def default_gateway_mac(tenant_id: int) -> str:
    """A locally administered unicast MAC per tenant: ``02:5e:00:00:TT:TT``."""
    return f"02:5e:00:00:{(tenant_id >> 8) & 0xFF:02x}:{tenant_id & 0xFF:02x}"


def default_external_mac(index: int) -> str:
    """The fabric's MAC on the uplink of the ``index``-th external network: ``02:5e:ff:00:II:II``."""
    return f"02:5e:ff:00:{(index >> 8) & 0xFF:02x}:{index & 0xFF:02x}"


def _holder(externals: tuple[ExternalInfo, ...], address: IPv4Address | None) -> str | None:
    """The external network whose public range holds ``address`` (validation makes it one)."""
    if address is None:
        return None
    return next((x.name for x in externals if address in x.cidr), None)


def with_uplinks_down(network: Network, down: Iterable[tuple[str, int]]) -> Network:
    """``network`` with each external network's active uplink moved to its first declared
    port not in ``down`` (``switch``, ``port``); when all are down, the first stays active
    (nothing passes anyway, and the rules stay where they were declared)."""
    gone = set(down)
    externals = []
    for x in network.externals:
        ports = x.attach or ((x.switch, x.port),)
        switch, port = next((p for p in ports if p not in gone), ports[0])
        externals.append(x if (switch, port) == (x.switch, x.port) else replace(x, switch=switch, port=port))
    if all(a is b for a, b in zip(externals, network.externals, strict=True)):
        return network
    return replace(network, externals=tuple(externals))


def resolve(intent: Intent) -> Network:
    """Check ``intent`` and decide its automatic values. Raises :class:`IntentError`."""
    check_intent(intent)
    intent = expand_service_sets(intent)
    taken_ids = {t.id for t in intent.tenants if t.id is not None}
    free_ids = (i for i in range(1, 4096) if i not in taken_ids)
    tenants: list[TenantInfo] = []
    for t in intent.tenants:
        tid = t.id if t.id is not None else next(free_ids)
        snat = tuple((x.name, t.snat[x.name]) for x in intent.fabric.externals if x.name in t.snat)
        tenants.append(TenantInfo(t.name, tid, t.gateway_mac or default_gateway_mac(tid), snat))
    externals = tuple(
        ExternalInfo(
            x.name, i, x.attach[0].switch, x.attach[0].port, x.router.ip, x.router.mac, x.cidr,
            x.mac or default_external_mac(i), x.router.ip6, x.cidr6,
            tuple((a.switch, a.port) for a in x.attach),
        )
        for i, x in enumerate(intent.fabric.externals, start=1)
    )  # fmt: skip

    taken_vlans = {s.vlan for t in intent.tenants for s in t.segments if s.vlan is not None}
    # Auto ids start at 100 so small hand-picked ids stay free; then wrap to the low ones.
    order = [*range(100, VLAN_RANGE.stop), *range(VLAN_RANGE.start, 100)]
    free_vlans = (v for v in order if v not in taken_vlans)
    segments: list[SegmentInfo] = []
    for t in intent.tenants:
        for index, s in enumerate(t.segments, start=1):
            vlan = s.vlan if s.vlan is not None else next(free_vlans)
            segments.append(
                SegmentInfo(t.name, s.name, index, s.cidr, s.cidr6, s.gateway, s.strict, vlan, s.gateway6)
            )

    gateway6 = {seg.key: seg.gateway6 for seg in segments}
    endpoints = [
        EndpointInfo(
            tenant=t.name,
            segment=ep.segment,
            name=ep.name,
            mac=ep.mac,
            ip=ep.ip,
            ipv6=ep.ipv6,
            switch=ep.attach.switch,
            port=ep.attach.port,
            labels=tuple(sorted(ep.labels.items())),
            rate_pps=ep.rate_limit.pps if ep.rate_limit else None,
            rate_kbps=ep.rate_limit.kbps if ep.rate_limit else None,
            rate_burst=ep.rate_limit.burst if ep.rate_limit else None,
            ipv6_link_local=ep.link_local,
            ipv6_gateway=gateway6[(t.name, ep.segment)] if ep.ipv6 is not None else None,
            floating_ip=ep.floating_ip,
            floating_external=_holder(externals, ep.floating_ip),
        )
        for t in intent.tenants
        for ep in t.endpoints
    ]
    return Network(
        intent=intent,
        switches=tuple(SwitchInfo(s.name, s.dpid) for s in intent.fabric.switches),
        links=tuple((k.a.switch, k.a.port, k.b.switch, k.b.port) for k in intent.fabric.links),
        tenants=tuple(tenants),
        segments=tuple(segments),
        endpoints=tuple(endpoints),
        externals=externals,
        _tenant_by_name={t.name: t for t in tenants},
        _segment_by_key={s.key: s for s in segments},
        _endpoint_by_key={e.key: e for e in endpoints},
        _endpoints_by_tenant=_group_by(endpoints, lambda e: e.tenant),
        _endpoints_by_segment=_group_by(endpoints, lambda e: (e.tenant, e.segment)),
    )


def _group_by(
    endpoints: list[EndpointInfo], key: Callable[[EndpointInfo], K]
) -> dict[K, tuple[EndpointInfo, ...]]:
    groups: dict[K, list[EndpointInfo]] = {}
    for ep in endpoints:
        groups.setdefault(key(ep), []).append(ep)
    return {k: tuple(v) for k, v in groups.items()}


def load_network(path: str | Path) -> Network:
    """Load, validate and resolve an intent file. Raises :class:`IntentError`."""
    return resolve(load_checked(path))


def services_text(services: list[Service]) -> str:
    return ", ".join(s.describe() for s in services)


def per_network(cache: dict[int, V], network: Network, build: Callable[[Network], V]) -> V:
    """``build(network)`` once per network object, remembered in ``cache`` while the object
    lives (what several renderings or pairs of one network ask again)."""
    key = id(network)
    hit = cache.get(key)
    if hit is None:
        hit = cache[key] = build(network)
        weakref.finalize(network, cache.pop, key, None)
    return hit
