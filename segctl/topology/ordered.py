"""Ordered rules: guardrails, tenant allow/deny by priority, and what each rule decides.

The semantics, written once (``docs/intent.md`` "Guardrails and ordered rules"); the
compiler (:mod:`segctl.flows.policy`) orders its rules with the keys defined here and the
intent analysis (:mod:`segctl.topology.analysis`) computes the expected relation with
:func:`decide` (this module sits below it: it knows the grants vocabulary of
:mod:`segctl.topology.grants`, not the analysis). A NEW IPv4 connection from ``src`` to
``dst`` (two different endpoints) is decided by the first rule that matches it:

1. **Guardrail tier** — the guardrails selecting the pair, in :func:`guardrail_order`
   (priority, lower first; at one priority deny, then allow, then pass; then document
   order). ``deny`` drops; ``allow`` admits; ``pass`` hands the connection to the tenant
   tier. A guardrail ``allow`` never crosses tenants: for a pair of two tenants it is
   ignored, so only shared services ever open traffic between tenants.
2. **Tenant tier** — inside one tenant: the intra-segment allow of a non-strict segment
   first, then the tenant's policies in :func:`policy_order` (priority; at one priority
   every deny before every allow; allows of one priority add up). Between tenants: the
   shared services whose consumers and providers hold the pair.
3. Nothing matched: denied.

Decisions are exact over packets: :class:`ServiceSpace` is the set of IPv4 packets a list
of services matches (TCP and UDP destination ports, ICMP type and code, and every other IP
protocol), with union, intersection and difference, so what an allow *decides* — its
services minus what earlier rules took — is again a list of services
(:meth:`ServiceSpace.matches`).

>>> from segctl.topology.grants import ServiceMatch
>>> web = ServiceSpace.of([ServiceMatch("tcp", ((1, 1023),))])
>>> ssh = ServiceSpace.of([ServiceMatch("tcp", ((22, 22),))])
>>> [m.describe() for m in (web - ssh).matches()]
['tcp/1-21,23-1023']
>>> [m.describe() for m in (ServiceSpace.everything() - ssh).matches()]
['icmp', 'other', 'tcp/0-21,23-65535', 'udp']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from segctl.topology.grants import (
    ALL_IP,
    Grant,
    GrantKind,
    Ranges,
    ServiceMatch,
    icmp_span,
    intersect_ranges,
    merge_ranges,
    minus_ranges,
    normalize_services,
)
from segctl.topology.network import EndpointInfo, Network, per_network
from segctl.topology.schema import Guardrail, Policy

__all__ = [
    "ACTION_ORDER",
    "Decider",
    "RuleRef",
    "ServiceSpace",
    "decide",
    "deciding_rule",
    "guardrail_applies",
    "guardrail_order",
    "is_ordered",
    "packet_decision",
    "packet_space",
    "policy_order",
]

Tier = Literal["guardrail", "tenant"]
Action = Literal["allow", "deny", "pass"]

#: At one priority, deny is evaluated before allow, allow before pass.
ACTION_ORDER: dict[str, int] = {"deny": 0, "allow": 1, "pass": 2}

# the packet dimensions: tcp/udp destination port, icmp and icmp6 (type << 8 | code), other
# protocols; tcp, udp and other hold both families (which a pair may use is decided apart)
_FULL: dict[str, tuple[int, int]] = {
    "tcp": (0, 0xFFFF),
    "udp": (0, 0xFFFF),
    "icmp": (0, 0xFFFF),
    "icmp6": (0, 0xFFFF),
    "other": (0, 0),
}


@dataclass(frozen=True)
class ServiceSpace:
    """A set of IP packets as services match them: per dimension, sorted disjoint intervals."""

    parts: tuple[tuple[str, Ranges], ...]

    @classmethod
    def _make(cls, parts: dict[str, Ranges]) -> ServiceSpace:
        return cls(tuple((k, parts[k]) for k in sorted(parts) if parts[k]))

    @classmethod
    def everything(cls) -> ServiceSpace:
        return cls._make({k: (r,) for k, r in _FULL.items()})

    @classmethod
    def nothing(cls) -> ServiceSpace:
        return cls(())

    @classmethod
    def of(cls, services: Iterable[ServiceMatch]) -> ServiceSpace:
        """The packets any of ``services`` matches."""
        parts: dict[str, list[tuple[int, int]]] = {}
        for svc in services:
            if svc.proto == "any":
                return cls.everything()
            if svc.proto in ("icmp", "icmp6") and svc.icmp_type is not None:
                parts.setdefault(svc.proto, []).append(icmp_span(svc))
            elif svc.proto in ("tcp", "udp") and svc.ports is not None:
                parts.setdefault(svc.proto, []).extend(svc.ports)
            else:
                parts.setdefault(svc.proto, []).append(_FULL[svc.proto])
        return cls._make({k: merge_ranges(v) for k, v in parts.items()})

    def _dict(self) -> dict[str, Ranges]:
        return dict(self.parts)

    def __bool__(self) -> bool:
        return bool(self.parts)

    def __or__(self, other: ServiceSpace) -> ServiceSpace:
        a, b = self._dict(), other._dict()
        return self._make({k: merge_ranges(a.get(k, ()) + b.get(k, ())) for k in a.keys() | b.keys()})

    def __and__(self, other: ServiceSpace) -> ServiceSpace:
        a, b = self._dict(), other._dict()
        return self._make({k: intersect_ranges(a[k], b[k]) for k in a.keys() & b.keys()})

    def __sub__(self, other: ServiceSpace) -> ServiceSpace:
        b = other._dict()
        return self._make({k: minus_ranges(v, b.get(k, ())) for k, v in self.parts})

    def matches(self) -> tuple[ServiceMatch, ...]:
        """The space as sorted service matches (``any`` when it is every IP packet)."""
        if self == ServiceSpace.everything():
            return ALL_IP
        out: list[ServiceMatch] = []
        for proto, spans in self.parts:
            if spans == (_FULL[proto],):
                out.append(ServiceMatch(proto))  # type: ignore[arg-type]
            elif proto in ("icmp", "icmp6"):
                out += _icmp_matches(spans, proto)
            else:
                out.append(ServiceMatch(proto, spans))  # type: ignore[arg-type]
        return tuple(sorted(out))


def _icmp_matches(spans: Ranges, proto: str = "icmp") -> list[ServiceMatch]:
    """ICMP (``icmp`` or ``icmp6``) intervals as whole types and single (type, code) matches."""
    out: list[ServiceMatch] = []
    for lo, hi in spans:
        value = lo
        while value <= hi:
            icmp_type, code = value >> 8, value & 0xFF
            if code == 0 and (value | 0xFF) <= hi:
                out.append(ServiceMatch(proto, None, icmp_type))  # type: ignore[arg-type]
                value += 0x100
            else:
                out.append(ServiceMatch(proto, None, icmp_type, code))  # type: ignore[arg-type]
                value += 1
    return out


# ---------------------------------------------------------------- rules of a pair


@dataclass(frozen=True)
class RuleRef:
    """One rule that may decide a connection, as :func:`decide` evaluates it.

    ``order`` sorts rules of one tier into evaluation order; rules of one ``level`` (a
    tenant-tier priority) are evaluated together, so allows of one priority add up.
    """

    tier: Tier
    kind: GrantKind
    name: str
    action: Action
    order: tuple[int, int, int]
    services: tuple[ServiceMatch, ...]
    stateful: bool

    @property
    def level(self) -> tuple[int, int]:
        return self.order[:1] + ((0,) if self.tier == "tenant" else self.order[1:2])

    def describe(self) -> str:
        return f"{self.action} by {self.kind} {self.name} ({self.tier} tier)"

    def space(self) -> ServiceSpace:
        return ServiceSpace.of(self.services)


def guardrail_order(rail: Guardrail, index: int) -> tuple[int, int, int]:
    """Evaluation order of a guardrail: priority, then deny < allow < pass, then document order."""
    return (rail.priority, ACTION_ORDER[rail.action], index)


def policy_order(policy: Policy, index: int) -> tuple[int, int, int]:
    """Evaluation order of a tenant policy: priority, then deny before allow, then document order."""
    return (policy.priority, ACTION_ORDER[policy.action], index)


def is_ordered(network: Network) -> bool:
    """Does the intent use ordered rules: a guardrail, a deny policy, or a tenant whose
    policies have more than one priority? Without them every rule is an allow of one level,
    and the relation is the union of the grants."""
    return bool(network.intent.guardrails) or any(
        any(p.action == "deny" for p in t.policies) or len({p.priority for p in t.policies}) > 1
        for t in network.intent.tenants
    )


#: Deciders by network object (:meth:`Decider.of`).
_DECIDERS: dict[int, Decider] = {}


def guardrail_applies(rail: Guardrail, src: EndpointInfo, dst: EndpointInfo) -> bool:
    """Is (src, dst) a pair of ``rail``'s scope (both sides aside)? Cross-tenant allows never apply."""
    if rail.action == "allow" and src.tenant != dst.tenant:
        return False
    return rail.scope == "any" or (src.tenant, src.segment) != (dst.tenant, dst.segment)


class Decider:
    """The rules of one intent, built once, and the decisions of pairs (cached by rule list).

    :meth:`of` gives the one decider of a network object (a trace, a counterexample or a
    scenario asking about one pair after another does not build the rules again)."""

    @classmethod
    def of(cls, network: Network) -> Decider:
        """The decider of ``network``, remembered while the network object lives."""
        return per_network(_DECIDERS, network, cls)

    def __init__(self, network: Network) -> None:
        self.net = network
        self.rails = [
            (
                rail,
                RuleRef("guardrail", "guardrail", rail.name, rail.action, guardrail_order(rail, i),
                        normalize_services(rail.services), True),
                {ep.key for ep in network.peer_select(rail.from_)},
                {ep.key for ep in network.peer_select(rail.to)},
            )
            for i, rail in enumerate(network.guardrails)
        ]  # fmt: skip
        self.policies: dict[str, list[tuple[RuleRef, set[tuple[str, str]], set[tuple[str, str]]]]] = {}
        for tenant in network.tenants:
            self.policies[tenant.name] = [
                (
                    RuleRef("tenant", "policy", pol.name, pol.action, policy_order(pol, i),
                            normalize_services(pol.services), pol.stateful),
                    {ep.key for ep in network.select(tenant.name, pol.from_)},
                    {ep.key for ep in network.select(tenant.name, pol.to)},
                )
                for i, pol in enumerate(network.policies(tenant.name))
            ]  # fmt: skip
        self.shared = [
            (
                RuleRef("tenant", "shared-service", svc.name, "allow", (0, 1, i),
                        normalize_services(svc.services), True),
                {ep.key for ep in network.shared_consumers(svc)},
                {ep.key for ep in network.shared_providers(svc)},
            )
            for i, svc in enumerate(network.shared_services)
        ]  # fmt: skip
        self._decided: dict[tuple[RuleRef, ...], tuple[Grant, ...]] = {}

    def rules(self, src: EndpointInfo, dst: EndpointInfo) -> tuple[RuleRef, ...]:
        """Every rule selecting the pair, guardrails then the tenant tier, in evaluation order."""
        if src.key == dst.key:
            return ()
        rails = sorted(
            (ref for rail, ref, froms, tos in self.rails
             if src.key in froms and dst.key in tos and guardrail_applies(rail, src, dst)),
            key=lambda r: r.order,
        )  # fmt: skip
        tier: list[RuleRef] = []
        if src.tenant == dst.tenant:
            seg = self.net.segment(src.tenant, src.segment)
            if src.segment == dst.segment and not seg.strict:
                tier.append(RuleRef("tenant", "intra-segment", seg.name, "allow", (-1, 1, 0), ALL_IP, True))
            tier += sorted(
                (ref for ref, froms, tos in self.policies[src.tenant] if src.key in froms and dst.key in tos),
                key=lambda r: r.order,
            )
        else:
            tier += [ref for ref, froms, tos in self.shared if src.key in froms and dst.key in tos]
        return (*rails, *tier)

    def grants(self, src: EndpointInfo, dst: EndpointInfo) -> tuple[Grant, ...]:
        """What each allow decides for the pair (empty when everything is denied)."""
        rules = self.rules(src, dst)
        out = self._decided.get(rules)
        if out is None:
            out = self._decided[rules] = decide(rules)
        return out


_KIND_RANK = {"guardrail": 0, "intra-segment": 1, "policy": 2, "shared-service": 3}


def decide(rules: Sequence[RuleRef]) -> tuple[Grant, ...]:
    """The allows of ``rules`` (evaluation order) narrowed to what each decides; an allow that
    decides nothing is left out. Guardrails decide one by one; the tenant tier by levels.

    When the rules are tenant-tier allows of one priority (and the intra-segment allow), the
    order decides nothing: the grants add up, each with all its services, listed by kind
    then document order (as an intent without ordered rules lists them), so a pair's grants
    never depend on other pairs' rules."""
    levels = {rule.order[0] for rule in rules if rule.kind == "policy"}
    if len(levels) <= 1 and all(rule.action == "allow" and rule.tier == "tenant" for rule in rules):
        union: list[Grant] = []
        for rule in sorted(rules, key=lambda r: (_KIND_RANK[r.kind], r.order[2])):
            grant = Grant(rule.kind, rule.name, rule.services, rule.stateful)
            if grant not in union:
                union.append(grant)
        return tuple(union)
    out: list[Grant] = []
    remaining, passed = ServiceSpace.everything(), ServiceSpace.nothing()
    tenant: list[RuleRef] = []
    for rule in rules:
        if rule.tier == "tenant":
            tenant.append(rule)
            continue
        hit = remaining & rule.space()
        if not hit:
            continue
        if rule.action == "allow":
            out.append(Grant(rule.kind, rule.name, hit.matches(), rule.stateful))
        elif rule.action == "pass":
            passed = passed | hit
        remaining = remaining - hit
    remaining = remaining | passed
    index = 0
    while index < len(tenant) and remaining:
        level = tenant[index].level
        same = []
        while index < len(tenant) and tenant[index].level == level:
            same.append(tenant[index])
            index += 1
        for rule in same:
            if rule.action == "deny":
                remaining = remaining - rule.space()
        taken = ServiceSpace.nothing()
        for rule in same:
            if rule.action == "allow":
                hit = remaining & rule.space()
                if hit:
                    out.append(Grant(rule.kind, rule.name, hit.matches(), rule.stateful))
                    taken = taken | hit
        remaining = remaining - taken
    return tuple(out)


def deciding_rule(rules: Sequence[RuleRef], service: ServiceSpace) -> RuleRef | None:
    """The rule that decides a packet (``service``: the space of that one packet), or ``None``
    when no rule matches it (the default deny)."""
    passing = False
    for rule in rules:
        if rule.tier == "guardrail" and passing:
            continue
        if rule.space() & service:
            if rule.action == "pass":
                passing = True
                continue
            return rule
    return None


def packet_space(
    proto: str, dst_port: int | None = None, icmp_type: int | None = None, icmp_code: int | None = None
) -> ServiceSpace:
    """The space of one packet (``proto`` normalized: tcp, udp, icmp, icmp6 or a number)."""
    if proto in ("tcp", "udp"):
        port = 0 if dst_port is None else dst_port
        return ServiceSpace.of([ServiceMatch(proto, ((port, port),))])  # type: ignore[arg-type]
    if proto in ("icmp", "icmp6"):
        return ServiceSpace.of([ServiceMatch(proto, None, icmp_type or 0, icmp_code or 0)])  # type: ignore[arg-type]
    return ServiceSpace.of([ServiceMatch("other")])


def packet_decision(network: Network, src: EndpointInfo, dst: EndpointInfo, packet: ServiceSpace) -> str:
    """Which rule decides a NEW packet from ``src`` to ``dst``, in words (``allow by policy
    web (tenant tier)``, ``deny by guardrail no-ssh (guardrail tier)``, ``default deny``)."""
    rule = deciding_rule(Decider.of(network).rules(src, dst), packet)
    return "default deny (no rule matches)" if rule is None else rule.describe()
