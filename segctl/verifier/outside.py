"""The properties of external networks, on the engine's views (checked only when the
intent has ``fabric.externals``; :func:`segctl.verifier.properties.registry_for`):

7. ``egress`` (runs new and any): what leaves through an uplink was sent by an endpoint
   (its bound MAC and address, to its tenant's gateway, TTL >= 2) to an outside address and
   service one of its tenant's policies toward that external network allows (deny policies
   and priorities as the tenant tier orders them), and it leaves with the sender's public
   source: its floating IP on that network, else its tenant's SNAT address there (never a
   private address, never another tenant's); IPv6 with the sender's own global address.
8. ``exposure`` (run new): what the outside can open to an endpoint, entering at an uplink,
   is IPv4 to the endpoint's floating IP, or IPv6 to its own routed global address, from an
   outside address and on a service that an ingress policy (``from: {external: ...}``) of
   its tenant grants it.
9. ``external-delivered`` (run new): every granted egress (from each source, to the whole
   outside peer, every granted service) leaves through the uplink, and every granted ingress
   (the router's packets to the floating IP) reaches its endpoint.

Property 10 (``standby-uplink``, the standby uplinks) is :mod:`segctl.verifier.standby`; these
three read the active uplinks only (a standby port's tag is in :attr:`Inputs.outside_tags`).

The outside is an open world: the verifier injects every packet at an uplink and takes
whatever leaves through one as gone. Replies coming back in are conntrack's (run any
delivers them; their shape is property 7's business on the way out).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from segctl.openflow.ofctl import mac_int
from segctl.topology.network import MIN_ROUTED_TTL, EndpointInfo, ExternalInfo
from segctl.topology.outside import ExternalGrant, public_source, public_source6
from segctl.verifier.checks import Inputs, Target, Violation
from segctl.verifier.headerspace import BDD, HeaderSpace
from segctl.verifier.observe import ReplyRequest
from segctl.verifier.spaces import ETH_IP, ETH_IP6

__all__ = ["ExternalGrant", "egress", "egress_allowed", "exposure", "external_delivered"]


def _prefixes(hs: HeaderSpace, side: str, prefixes: Iterable[IPv4Network | IPv6Network]) -> BDD:
    """``ip_SIDE`` / ``ipv6_SIDE`` (by each prefix's family) in one of ``prefixes``."""
    return hs.union(
        hs.oeq(("ipv6_" if p.version == 6 else "ip_") + side, int(p.network_address), int(p.netmask))
        for p in prefixes
    )


def _peer(inp: Inputs, g: ExternalGrant, side: str, *, reply: bool = False) -> BDD:
    """A grant's outside side (its prefixes as ``side``) and services, in its family."""
    if g.family == 6:
        services = inp.hs.union(inp.spaces.service(s, ipv6=True, reply=reply) for s in g.services)
        return _prefixes(inp.hs, side, g.outside) & services & inp.hs.oeq("eth_type", ETH_IP6)
    services = inp.hs.union(inp.spaces.service(s, ipv6=False, reply=reply) for s in g.services)
    return _prefixes(inp.hs, side, g.outside) & services


def _ordered(grants: Iterable[ExternalGrant], space: Mapping[ExternalGrant, BDD], hs: HeaderSpace) -> BDD:
    """What ``grants`` (one tenant's, precedence order) allow together: each allow minus the
    denies before it."""
    allowed, blocked = hs.false, hs.false
    for g in grants:
        if g.allow:
            allowed |= space[g] & ~blocked
        else:
            blocked |= space[g]
    return allowed


def _routable(hs: HeaderSpace) -> BDD:
    """A TTL a router forwards (at least :data:`MIN_ROUTED_TTL`: one decrement leaves it alive)."""
    out = hs.true
    for ttl in range(MIN_ROUTED_TTL):
        out &= ~hs.oeq("nw_ttl", ttl)
    return out


def _routed(inp: Inputs, tenant: str) -> BDD:
    """What a tenant's endpoint sends through its gateway: to the gateway MAC, TTL (hop
    limit) >= 2; IPv4, or IPv6 (the grants say from which source)."""
    hs = inp.hs
    gateway = hs.oeq("eth_dst", mac_int(inp.network.tenant(tenant).gateway_mac))
    return (hs.oeq("eth_type", ETH_IP) | hs.oeq("eth_type", ETH_IP6)) & gateway & _routable(hs)


def _senders(inp: Inputs, g: ExternalGrant, ext: ExternalInfo) -> BDD:
    """Tagged: what a grant's endpoints send as themselves (IPv6: from their routed global
    address only; an endpoint without one has no IPv6 way out)."""
    sp, hs = inp.spaces, inp.hs
    if g.family == 4:
        return sp.bound_tagged(g.endpoints)
    parts = []
    for ep in g.endpoints:
        own = public_source6(inp.network, ep, ext.name)
        if own is not None:
            parts.append(hs.tag(inp.tag_of[ep.key]) & sp.bound(ep) & hs.oeq("ipv6_src", int(own)))
    return hs.union(parts)


def egress_allowed(inp: Inputs, ext: ExternalInfo) -> BDD:
    """Tagged: per source, what it may send out to ``ext`` (as sent); built once per proof
    (:attr:`Inputs.egress_allowed`)."""
    cached = inp.egress_allowed.get(ext.name)
    if cached is None:
        cached = inp.egress_allowed[ext.name] = _egress_allowed(inp, ext)
    return cached


def _egress_allowed(inp: Inputs, ext: ExternalInfo) -> BDD:
    hs = inp.hs
    mine = [g for g in inp.outside_grants if g.external == ext.name and g.direction == "out"]
    parts = []
    for tenant in sorted({g.tenant for g in mine}):
        ordered = [g for g in mine if g.tenant == tenant]
        space = {g: _senders(inp, g, ext) & _peer(inp, g, "dst") for g in ordered}
        parts.append(_ordered(ordered, space, hs) & _routed(inp, tenant))
    return hs.union(parts)


def _public_source(inp: Inputs, ext: ExternalInfo, sources: Iterable[EndpointInfo]) -> BDD:
    """Tagged, live source: the address each source may leave ``ext`` with (IPv4: its
    floating IP or SNAT address; IPv6: its own global address)."""
    hs = inp.hs
    parts = []
    for ep in sources:
        address = public_source(inp.network, ep, ext.name)
        if address is not None:
            parts.append(
                hs.tag(inp.tag_of[ep.key]) & hs.oeq("eth_type", ETH_IP) & hs.eq("ip_src", int(address))
            )
        own = public_source6(inp.network, ep, ext.name)
        if own is not None:
            parts.append(
                hs.tag(inp.tag_of[ep.key]) & hs.oeq("eth_type", ETH_IP6) & hs.eq("ipv6_src", int(own))
            )
    return hs.union(parts)


def _counted_here(inp: Inputs) -> int:
    """The external networks, counted by the proof (or part) that injects the outside, so
    that the counts of a partitioned proof add up to the whole one's."""
    injected = set(inp.injected)
    return sum((x.switch, x.port) in injected for x in inp.network.externals)


def _uplink_tag(inp: Inputs, ext: ExternalInfo) -> int | None:
    port = (ext.switch, ext.port)
    return inp.ingresses.index(port) if port in inp.ingresses else None


def egress(inp: Inputs) -> tuple[list[Violation], Mapping[str, int]]:
    """Property 7."""
    hs, net = inp.hs, inp.network
    found: list[Violation] = []
    sent = 0
    for ext in net.externals:
        allowed = egress_allowed(inp, ext)
        seen: set[tuple[str, str]] = set()
        for mode, view in (("new", inp.new), ("any", inp.any)):
            left = view.delivered.get(ext.qualified, hs.false) & ~inp.outside_tags
            if hs.is_empty(left):
                continue
            sources = inp.endpoints_of(left)
            sent += len(sources) if mode == "new" else 0
            bad = left & ~allowed if mode == "new" else hs.false
            for src in inp.endpoints_of(bad):
                seen.add(("granted", src.qualified))
                message = f"{src.qualified} sends to external {ext.name} traffic no policy allows"
                found.append(_violation("egress", message, inp, src, ext, mode, inp.untag(bad, src), 0))
            exits = view.exits.get(ext.qualified, hs.false) & ~inp.outside_tags
            leak = hs.sent(exits & ~_public_source(inp, ext, sources)) & ~bad
            for src in inp.endpoints_of(leak):
                if ("leak", src.qualified) in seen:
                    continue
                seen.add(("leak", src.qualified))
                space = inp.untag(leak, src)
                packet = hs.pick(hs.untag(exits & ~_public_source(inp, ext, [src]), inp.tag_of[src.key]))
                address: IPv4Address | IPv6Address = (
                    IPv6Address(packet["ipv6_src"])
                    if packet.get("eth_type") == ETH_IP6
                    else IPv4Address(packet["ip_src"])
                )
                message = (
                    f"{src.qualified} leaves through external {ext.name} with source {address}, not its "
                    "floating IP or its tenant's SNAT address"
                )
                found.append(_violation("egress", message, inp, src, ext, mode, space, 1))
    return found, {"external networks": _counted_here(inp), "sources seen leaving": sent}


def exposure(inp: Inputs) -> tuple[list[Violation], Mapping[str, int]]:
    """Property 8."""
    hs, net = inp.hs, inp.network
    found: list[Violation] = []
    reached = 0
    for ext in net.externals:
        tag = _uplink_tag(inp, ext)
        if tag is None:
            continue
        label = hs.tag(tag)
        for dst in net.endpoints:
            got = inp.new.delivered.get(dst.qualified, hs.false) & label
            if hs.is_empty(got):
                continue
            reached += 1
            bad = hs.untag(got & ~_ingress_allowed(inp, ext, dst), tag)
            if hs.is_empty(bad):
                continue
            message = (
                f"the outside ({ext.name}) can open connections to {dst.qualified} that no policy grants"
            )
            found.append(
                Violation(
                    "exposure", message, (ext.switch, ext.port), ext.qualified, dst.qualified, "new", bad,
                    Target("delivered", dst.qualified), order=(2, ext.index, inp.position[dst.key]),
                )
            )  # fmt: skip
    return found, {"external networks": _counted_here(inp), "endpoints reached from outside": reached}


def _ingress_allowed(inp: Inputs, ext: ExternalInfo, dst: EndpointInfo) -> BDD:
    """Untagged: what the outside may send ``dst`` through ``ext`` (as sent): IPv4 to its
    floating IP there, IPv6 to its own routed global address."""
    hs = inp.hs
    to: dict[int, BDD] = {4: hs.false, 6: hs.false}
    if dst.floating_ip is not None and dst.floating_external == ext.name:
        to[4] = hs.oeq("eth_type", ETH_IP) & hs.oeq("ip_dst", int(dst.floating_ip))
    own = public_source6(inp.network, dst, ext.name)
    if own is not None:
        to[6] = hs.oeq("eth_type", ETH_IP6) & hs.oeq("ipv6_dst", int(own))
    mine = [
        g for g in inp.outside_grants
        if g.tenant == dst.tenant and g.external == ext.name and g.direction == "in" and dst in g.endpoints
    ]  # fmt: skip
    space = {g: _peer(inp, g, "src") & to[g.family] for g in mine}
    return _ordered(mine, space, hs)


def external_delivered(inp: Inputs) -> tuple[list[Violation], Mapping[str, int]]:
    """Property 9."""
    hs, net = inp.hs, inp.network
    found: list[Violation] = []
    checked = 0
    injected = {p for p in inp.injected}
    for ext in net.externals:
        allowed = egress_allowed(inp, ext)
        left: BDD = inp.new.delivered.get(ext.qualified, hs.false)
        senders = (g for g in inp.outside_grants if g.external == ext.name and g.direction == "out")
        for src in dict.fromkeys(ep for g in senders for ep in g.endpoints):
            if (src.switch, src.port) not in injected:
                continue
            checked += 1
            mine = hs.tag(inp.tag_of[src.key])
            missing = hs.untag((allowed & mine) & ~left, inp.tag_of[src.key])
            if not hs.is_empty(missing):
                message = f"granted traffic {src.qualified} -> external {ext.name} does not all leave"
                found.append(
                    Violation(
                        "external-delivered", message, (src.switch, src.port), src.qualified, ext.qualified,
                        "new", missing, Target("missing", ext.qualified),
                        order=(0, inp.position[src.key], ext.index),
                    )
                )  # fmt: skip
        tag = _uplink_tag(inp, ext)
        if tag is None or (ext.switch, ext.port) not in injected:
            continue
        router = _from_router(inp, ext)
        for dst in net.endpoints:
            expected = _ingress_allowed(inp, ext, dst) & router
            if hs.is_empty(expected):
                continue
            checked += 1
            got = hs.untag(inp.new.delivered.get(dst.qualified, hs.false) & hs.tag(tag), tag)
            missing = expected & ~got
            if not hs.is_empty(missing):
                message = (
                    f"granted traffic from the outside ({ext.name}) to {dst.qualified} does not all arrive"
                )
                found.append(
                    Violation(
                        "external-delivered", message, (ext.switch, ext.port), ext.qualified, dst.qualified,
                        "new", missing, Target("missing", dst.qualified),
                        order=(1, ext.index, inp.position[dst.key]),
                    )
                )  # fmt: skip
    replies = inp.replies
    for r, item in enumerate(inp.outside_requests):
        if replies is None:
            break
        checked += 1
        tag = inp.outside_offset + r
        receiver = item.external.qualified if item.outbound else item.src.qualified
        got = hs.untag(replies.delivered.get(receiver, hs.false) & hs.tag(tag), tag)
        missing = item.request.space & ~got
        if hs.is_empty(missing):
            continue
        if item.outbound:
            message = (
                f"replies of {item.src.qualified} to the connections the outside ({item.external.name}) "
                "may open to it do not all leave"
            )
            ingress, sender = (item.src.switch, item.src.port), item.src.qualified
        else:
            message = (
                f"replies from the outside ({item.external.name}) to {item.src.qualified}'s granted "
                "connections are not all delivered"
            )
            ingress, sender = (item.external.switch, item.external.port), item.external.qualified
        found.append(
            Violation(
                "external-delivered", message, ingress, sender, receiver, "est", missing,
                Target("missing", receiver), item.request.zones,
                order=(3 if item.outbound else 2, inp.position[item.src.key], item.external.index),
            )
        )  # fmt: skip
    return found, {"granted directions": checked}


@dataclass(frozen=True)
class OutsideReplies:
    """Run E's injection: at an uplink, the outside's replies to ``src``'s granted egress; or
    (``outbound``) at ``src``, its replies to the connections the outside may open to it."""

    request: ReplyRequest
    src: EndpointInfo
    external: ExternalInfo
    outbound: bool = False


def outside_reply_requests(inp: Inputs) -> list[OutsideReplies]:
    """Per source of a stateful egress grant (injected in this proof), the replies the outside
    sends back: from the peer's addresses, on the grant's services mirrored, to the public
    source the sender leaves with, from the router; lookups in the zones where run N
    committed the source's packets say est+rpl (its tenant zone at the source, its NAT zone
    at the uplink)."""
    hs, net = inp.hs, inp.network
    injected = set(inp.injected)
    out: list[OutsideReplies] = []
    commits = inp.new.sorted_commits()
    # the sources each commit holds, read once (not one conjunction per source and commit)
    committed_tags = [(z, set(hs.tags(committed))) for (_, _, z), committed in commits]
    for ext in net.externals:
        # the outside's replies to a source's connections: in the part that injects the
        # source (its commits are there), whether or not that part injects the uplink
        replies: dict[EndpointInfo, BDD] = {}
        for g in inp.outside_grants:
            if g.external != ext.name or g.direction != "out" or not g.allow or not g.stateful:
                continue
            back = _peer(inp, g, "src", reply=True)
            for ep in g.endpoints:
                if (ep.switch, ep.port) in injected:
                    replies[ep] = replies.get(ep, hs.false) | back
        for ep, back in replies.items():
            public, own = public_source(net, ep, ext.name), public_source6(net, ep, ext.name)
            to = hs.false
            if public is not None:
                to |= back & hs.oeq("eth_type", ETH_IP) & hs.oeq("ip_dst", int(public))
            if own is not None:
                to |= back & hs.oeq("eth_type", ETH_IP6) & hs.oeq("ipv6_dst", int(own))
            if hs.is_empty(to):
                continue
            tag = inp.tag_of[ep.key]
            zones = frozenset(z for z, tags in committed_tags if tag in tags)
            out.append(
                OutsideReplies(
                    ReplyRequest((ext.switch, ext.port), _from_router(inp, ext), to, zones), ep, ext
                )
            )
        out += _ingress_replies(inp, ext, commits)
    return out


def _ingress_replies(
    inp: Inputs, ext: ExternalInfo, commits: list[tuple[tuple[str, int, int], BDD]]
) -> list[OutsideReplies]:
    """Per endpoint a stateful ingress grant opens, its replies to the outside: from its
    bound addresses through its gateway, to the peer's addresses on the grant's services
    mirrored; lookups say est+rpl in the zones where run N committed the outside's packets
    to its public address (its floating IP, or its own IPv6 address). Built in the proof (or
    part) that injects the uplink, where those commits are, for every endpoint."""
    hs, net = inp.hs, inp.network
    uplink = _uplink_tag(inp, ext)
    if uplink is None or (ext.switch, ext.port) not in set(inp.injected):
        return []
    from_outside = hs.tag(uplink)
    out = []
    for dst in net.endpoints:
        mine = [
            g for g in inp.outside_grants
            if (g.tenant, g.external, g.direction) == (dst.tenant, ext.name, "in") and dst in g.endpoints
            and g.allow and g.stateful
        ]  # fmt: skip
        to = hs.false
        addressed = hs.false
        if dst.floating_ip is not None and dst.floating_external == ext.name:
            to |= hs.union(_peer(inp, g, "dst", reply=True) for g in mine if g.family == 4)
            addressed |= hs.oeq("eth_type", ETH_IP) & hs.oeq("ip_dst", int(dst.floating_ip))
        own = public_source6(net, dst, ext.name)
        if own is not None:
            to |= hs.union(_peer(inp, g, "dst", reply=True) for g in mine if g.family == 6)
            addressed |= hs.oeq("eth_type", ETH_IP6) & hs.oeq("ipv6_dst", int(own))
        if hs.is_empty(to):
            continue
        zones = frozenset(
            z for (_, _, z), committed in commits if not hs.is_empty(committed & from_outside & addressed)
        )
        sender = inp.spaces.bound(dst) & _routed(inp, dst.tenant)
        if own is not None:  # its IPv6 replies are from its own global address
            sender &= ~hs.oeq("eth_type", ETH_IP6) | hs.oeq("ipv6_src", int(own))
        out.append(
            OutsideReplies(ReplyRequest((dst.switch, dst.port), sender, to, zones), dst, ext, outbound=True)
        )
    return out


def _from_router(inp: Inputs, ext: ExternalInfo) -> BDD:
    """What the upstream router sends in: its MAC to the fabric's, untagged, TTL >= 2."""
    hs = inp.hs
    return (
        hs.oeq("eth_src", mac_int(ext.router_mac)) & hs.oeq("eth_dst", mac_int(ext.mac))
        & hs.oeq("vlan_present", 0) & hs.oeq("vlan_vid", 0) & _routable(hs)
    )  # fmt: skip


def _violation(
    prop: str,
    message: str,
    inp: Inputs,
    src: EndpointInfo,
    ext: ExternalInfo,
    mode: str,
    space: BDD,
    kind: int,
) -> Violation:
    return Violation(
        prop, message, (src.switch, src.port), src.qualified, ext.qualified, mode, space,
        Target("delivered", ext.qualified), order=(kind, inp.position[src.key], ext.index),
    )  # fmt: skip
