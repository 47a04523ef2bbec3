"""The six verification properties (and those of external networks), as a registry the
checker loops over.

Inputs: a resolved :class:`~segctl.topology.network.Network` (the intent and the
topology), the expected relation of :mod:`segctl.topology.analysis`, and an engine's views
(:mod:`segctl.verifier.observe`) of three runs over the same flow tables:

* run **any**: every ``ct()`` lookup may return any state (``+trk`` and one of
  new/est/rel/inv, ``rpl`` free);
* run **new**: every ``ct()`` lookup returns ``+trk+new`` (a connection's first packet);
* run **replies**: the replies of a granted stateful connection, injected at the
  destination's port; a lookup in a zone where run new commits the connection's packets
  returns ``+trk+est+rpl``, in any other zone ``+trk+new``.

What each property quantifies over (a packet is *from* endpoint ``s`` when it is injected
at the edge port ``s`` is bound to; "origin" is the packet as injected):

1. ``isolation`` (runs any and new): a packet from ``s`` delivered to ``d`` of another
   tenant must be IPv4 (IPv6 never crosses tenants) between a declared shared-service
   pair (``s`` consumer and ``d`` provider, or the reverse for replies), in every
   conntrack state; and, when every lookup says new, only ``consumer -> provider`` on the
   shared service's services.
2. ``conformance`` (run new): a packet from ``s`` delivered to ``d`` of the same tenant is
   allowed by the intent: IPv4 from ``s``'s address to ``d``'s address on a service some
   grant allows, and IPv6 the same way where :func:`~segctl.topology.analysis.ipv6_applies`
   (both with ipv6: one segment, either address of each; or routed between segments
   with a ``gateway6``, global addresses only; never the router-only ICMPv6 messages,
   :data:`~segctl.topology.analysis.ROUTER_ONLY_ICMPV6`); ARP between two endpoints of one
   segment with ``arp_tpa`` = ``d``'s address, and IPv6 neighbour discovery between two
   IPv6 endpoints of one segment; to ``s`` itself only its ARP request for the gateway and
   its neighbour solicitation for the ``gateway6`` (answered by the gateway). Delivered
   IPv4 keeps its addresses (no NAT).
3. ``allowed-delivered`` (runs new and replies): for every granted ``(s, d, service)`` the
   whole header space of such packets is delivered to ``d``: untagged IPv4 with ``s``'s
   bound MAC and address, ``d``'s address, ``d``'s MAC (same segment) or the gateway MAC of
   ``s``'s tenant (routed; TTL >= 2), any source port, any other field; and for stateful
   grants the replies (``d -> s``, ports mirrored, ct est+rpl) are delivered to ``s``; the
   same in IPv6 where it applies (``d``'s global or link-local address; routed: the global
   addresses, from ``s``'s global address).
4. ``spoof-guard`` (run any): a packet delivered anywhere was sent with the source bound
   to its ingress port: untagged, ``eth_src`` the endpoint's MAC, and ARP with
   ``arp_sha``/``arp_spa`` bound, or IPv4 with ``ip_src`` bound, or IPv6 (endpoints with
   ``ipv6`` only) with ``ipv6_src`` its global or link-local address. Every other ethertype
   must never be delivered.
5. ``loop-free`` (runs any, new, replies): no packet at all loops or exhausts the step
   budget; no part of the allowed spaces of property 3 is black-holed (table miss, no
   output, unconnected port, controller, unsupported).
6. ``commit-safety`` (run new): every ``ct(commit)`` in zone ``z`` of a packet from ``s``
   commits only packets that a *stateful* grant ``s -> d`` allows, with ``d``'s address
   (IPv4, or IPv6 where it applies) as destination and ``z`` the zone of ``s``'s or
   ``d``'s tenant; or packets to an
   address that no endpoint able to answer in zone ``z`` owns (no reply can ever use the
   entry). Together with 2 this closes the loop for established traffic: "est" can only
   come from a committed, allowed connection.

A violation is one (source, destination, run) — or one (source, commit point), one
ingress for loops — never one engine path: the views are unions over paths, so the
report does not depend on how an engine split or merged them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from segctl.topology.network import Network
from segctl.verifier.checks import (
    Checked,
    Inputs,
    Violation,
    commit_safety,
    conformance,
    isolation,
    spoof_guard,
)
from segctl.verifier.delivery import allowed_delivered, loop_free
from segctl.verifier.outside import egress, exposure, external_delivered
from segctl.verifier.standby import standby_uplink

__all__ = [
    "OUTSIDE",
    "PROPERTIES",
    "REGISTRY",
    "SAFETY",
    "Property",
    "PropertyResult",
    "check_all",
    "registry_for",
]

#: A check: the inputs and the results already computed this call (by id) -> violations, counts.
Check = Callable[[Inputs, Mapping[str, "Partial"]], "Partial"]


@dataclass(frozen=True)
class Partial:
    """What a check found: its violations and its counts (and any side result by name)."""

    violations: tuple[Violation, ...]
    counts: Mapping[str, int]
    extra: Mapping[str, tuple[Violation, ...]] | None = None


@dataclass(frozen=True)
class Property:
    """One property: its identity and text, whether it is about safety (a violation lets
    something forbidden through: the controller's gate refuses such tables), what it checks,
    its check, and the inputs its result depends on (the runs and intent parts read)."""

    id: str
    title: str
    statement: str
    safety: bool
    description: str
    space: str
    check: Check
    reads: tuple[str, ...]


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


def _alone(check: Callable[[Inputs], tuple[Sequence[Violation], Mapping[str, int]]]) -> Check:
    """A property whose check reads the inputs only (not other properties' results)."""

    def run(inp: Inputs, _done: Mapping[str, Partial]) -> Partial:
        found, counts = check(inp)
        return Partial(tuple(found), counts)

    run.__name__ = f"_{check.__name__}"
    return run


def _allowed_delivered(inp: Inputs, _done: Mapping[str, Partial]) -> Partial:
    delivered, holes, counts = allowed_delivered(inp)
    return Partial(tuple(delivered), counts, {"holes": tuple(holes)})


def _loops(inp: Inputs, done: Mapping[str, Partial]) -> Partial:
    holes = (done["allowed-delivered"].extra or {}).get("holes", ())
    counts = {"edge ports": len(inp.injected), "granted pairs": len(inp.pairs)}
    return Partial((*loop_free(inp), *holes), counts)


#: Every property, in report order.
REGISTRY: tuple[Property, ...] = (
    Property(
        "isolation",
        "Tenant isolation",
        "Nothing from one tenant is delivered to another, except declared shared services.",
        True,
        "every packet delivered across tenants, injected at every edge port, in every conntrack "
        "state (and again with every lookup new)",
        "all headers × all ct states",
        _alone(isolation),
        ("any.delivered", "new.delivered", "shared services"),
    ),
    Property(
        "conformance",
        "Policy conformance",
        "Within a tenant, what is delivered (new connections) is a subset of what the intent allows.",
        True,
        "every packet delivered inside a tenant when every conntrack lookup says new",
        "all headers, ct_state=+trk+new at every lookup",
        _alone(conformance),
        ("new.delivered", "new.natted", "grants"),
    ),
    Property(
        "allowed-delivered",
        "Allowed traffic is delivered",
        "Every granted (source, destination, service) and its replies are delivered, all of it.",
        False,
        "for every granted (source, destination): new packets with the bound source, the "
        "destination address and MAC (or gateway MAC, TTL >= 2), any granted service; and "
        "replies of stateful grants",
        "granted services × bound addresses",
        _allowed_delivered,
        ("new.delivered", "new.holes", "new.commits", "replies", "grants"),
    ),
    Property(
        "spoof-guard",
        "Spoofed sources are never delivered",
        "A delivered packet always carries the MAC/IP (and ARP sha/spa) bound to its ingress port, untagged.",
        True,
        "every delivered packet of every edge port, in every conntrack state",
        "all headers × all ct states",
        _alone(spoof_guard),
        ("any.delivered",),
    ),
    Property(
        "loop-free",
        "No loops or black holes",
        "No packet loops; allowed traffic never ends in a table miss, a dead port or the controller.",
        False,
        "every packet of every edge port (loops); the allowed spaces (black holes)",
        "all headers × all ct states",
        _loops,
        ("any.holes", "new.holes", "replies", "grants"),
    ),
    Property(
        "commit-safety",
        "Commit safety",
        "Every ct(commit) commits only allowed (stateful) traffic, so 'established' is no side door.",
        True,
        "every ct(commit) met by a new packet of every edge port",
        "committed packets × zones",
        _alone(commit_safety),
        ("new.commits", "new.delivered", "grants", "zone owners"),
    ),
)
#: The properties of external networks (:mod:`segctl.verifier.outside`; the standby uplinks'
#: :mod:`segctl.verifier.standby`), checked after the six when the intent has ``fabric.externals``.
OUTSIDE: tuple[Property, ...] = (
    Property(
        "egress",
        "Egress is granted and translated",
        "What leaves through an uplink is what a policy toward that network allows, with the sender's "
        "floating IP or its tenant's SNAT address as source.",
        True,
        "every packet of every edge port delivered to an uplink (new connections; and in every "
        "conntrack state, its source as it leaves)",
        "all headers, the source after NAT",
        _alone(egress),
        ("new.delivered", "new.exits", "any.exits", "external policies"),
    ),
    Property(
        "exposure",
        "External exposure",
        "What the outside can open to an endpoint is IPv4 to its floating IP on what an ingress policy "
        "grants.",
        True,
        "every packet injected at every uplink, delivered to an endpoint with every lookup new",
        "all headers from the outside, ct_state=+trk+new at every lookup",
        _alone(exposure),
        ("new.delivered", "external policies", "floating IPs"),
    ),
    Property(
        "external-delivered",
        "Granted external traffic gets through",
        "Every granted egress leaves through its uplink, every granted ingress reaches its endpoint.",
        False,
        "for every external policy: its sources' packets to the whole outside peer on every granted "
        "service; the router's packets to the floating IP",
        "granted services × outside prefixes",
        _alone(external_delivered),
        ("new.delivered", "external policies"),
    ),
    Property(
        "standby-uplink",
        "Standby uplinks are silent",
        "Nothing the outside sends to a standby uplink gets into the fabric, and nothing is sent out of one.",
        True,
        "every packet injected at every standby uplink, in every conntrack state (and with every "
        "lookup new); every packet of every other ingress output to a standby uplink",
        "all headers × all ct states",
        _alone(standby_uplink),
        ("any.delivered", "any.holes", "any.commits", "new.delivered", "standby uplinks"),
    ),
)
#: (id, title, statement) of every property, in report order.
PROPERTIES: tuple[tuple[str, str, str], ...] = tuple((p.id, p.title, p.statement) for p in REGISTRY + OUTSIDE)
#: The properties whose violation lets something forbidden through.
SAFETY: frozenset[str] = frozenset(p.id for p in REGISTRY + OUTSIDE if p.safety)


def registry_for(network: Network) -> tuple[Property, ...]:
    """The properties a proof of ``network`` checks: the six, and those of external networks
    when it has some (a report without externals is what it was before they existed)."""
    return REGISTRY + OUTSIDE if network.externals else REGISTRY


def check_all(inp: Inputs, properties: Sequence[Property] = REGISTRY) -> list[PropertyResult]:
    """Every property of ``properties`` over ``inp``, in order."""
    done: dict[str, Partial] = {}
    out = []
    for prop in properties:
        part = done[prop.id] = prop.check(inp, done)
        checked = Checked(prop.description, prop.space, dict(part.counts))
        ordered = tuple(sorted(part.violations, key=lambda v: v.order))
        out.append(PropertyResult(prop.id, prop.title, prop.statement, checked, ordered))
    return out
