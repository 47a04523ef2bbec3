"""Address rules of one segment: its prefixes and its gateways, each problem naming its place.

* ``cidr`` is routable unicast IPv4 space: a /8 or a longer prefix, neither inside nor
  including :data:`SPECIAL_IPV4` ("this network" 0.0.0.0/8, loopback, link-local,
  multicast, the reserved 240.0.0.0/4 with the broadcast address);
* ``cidr6`` is a /48 or a longer prefix inside global unicast 2000::/3 or unique local
  fc00::/7 (:data:`UNICAST_IPV6`), so none of :data:`SPECIAL_IPV6` (multicast, link-local,
  loopback, unspecified, IPv4-mapped...);
* ``gateway`` is inside ``cidr``, not its network or broadcast address (a /31 or /32 has
  neither);
* ``gateway6`` needs ``cidr6``; it is a global unicast address (not link-local, multicast,
  loopback, unspecified, IPv4-mapped or site-local), inside ``cidr6``, and not the
  subnet-router anycast address (the prefix itself, every router's).

Why the bounds: a segment is one L2 domain, and the compiled rules take its prefixes as its
own addresses (intra-segment traffic is committed by ``nw_dst``/``ipv6_dst`` inside them;
the gateway drops IPv6 routed back into its own prefix). A prefix wider than any link
(``0.0.0.0/0``, ``::/0``) would claim every other network as on-link, and addresses that
are never a host's unicast address (multicast, loopback, link-local) cannot be a segment's
or be routed by its gateway. The widest bounds keep every addressing plan seen in practice:
10.0.0.0/8 as one flat segment, a site's whole /48 (a link is usually a /64).
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Address, IPv6Network

from segctl.errors import Problem
from segctl.topology.schema import Segment

__all__ = [
    "SHORTEST_IPV4",
    "SHORTEST_IPV6",
    "SPECIAL_IPV4",
    "SPECIAL_IPV6",
    "UNICAST_IPV6",
    "check_segment",
]

#: The widest segment ``cidr``: a /8 (10.0.0.0/8 as one flat segment).
SHORTEST_IPV4 = 8
#: The widest segment ``cidr6``: a /48 (a site's whole allocation; a link is usually a /64).
SHORTEST_IPV6 = 48
#: IPv4 space no segment may be in or include (RFC 6890).
SPECIAL_IPV4: tuple[tuple[IPv4Network, str], ...] = (
    (IPv4Network("0.0.0.0/8"), "'this network'"),
    (IPv4Network("127.0.0.0/8"), "loopback"),
    (IPv4Network("169.254.0.0/16"), "link-local"),
    (IPv4Network("224.0.0.0/4"), "multicast"),
    (IPv4Network("240.0.0.0/4"), "reserved"),
)
#: Where a segment's ``cidr6`` must be: global unicast, unique local (RFC 4291, RFC 4193).
UNICAST_IPV6 = (IPv6Network("2000::/3"), IPv6Network("fc00::/7"))
#: IPv6 space outside :data:`UNICAST_IPV6` named in messages (the rest is "reserved").
SPECIAL_IPV6: tuple[tuple[IPv6Network, str], ...] = (
    (IPv6Network("::/128"), "the unspecified address"),
    (IPv6Network("::1/128"), "the loopback address"),
    (IPv6Network("::ffff:0:0/96"), "IPv4-mapped"),
    (IPv6Network("fe80::/10"), "link-local"),
    (IPv6Network("fec0::/10"), "site-local, deprecated"),
    (IPv6Network("ff00::/8"), "multicast"),
)
_CIDR_RULE = "a segment's cidr is routable unicast address space"
_CIDR6_RULE = "a segment's cidr6 is a global unicast (2000::/3) or unique local (fc00::/7) prefix"


def check_segment(where: str, seg: Segment) -> list[Problem]:
    """Every address problem of segment ``seg`` at ``where`` (``tenants[acme].segments[web]``)."""
    problems = [
        Problem(f"{where}.{field}", message)
        for field, message in (("cidr", _cidr_problem(seg.cidr)), ("cidr6", _cidr6_problem(seg.cidr6)))
        if message is not None
    ]
    if seg.gateway is not None:
        if seg.gateway not in seg.cidr:
            problems.append(Problem(f"{where}.gateway", f"{seg.gateway} is outside {seg.cidr}"))
        elif seg.cidr.prefixlen < 31 and seg.gateway in (
            seg.cidr.network_address,
            seg.cidr.broadcast_address,
        ):
            problems.append(Problem(f"{where}.gateway", f"{seg.gateway} is the network or broadcast address"))
    return problems + _check_gateway6(where, seg)


def _cidr_problem(cidr: IPv4Network) -> str | None:
    """Why ``cidr`` cannot be a segment's IPv4 prefix, or None."""
    for space, kind in SPECIAL_IPV4:
        if cidr.subnet_of(space):
            return f"{cidr} is {kind} ({space}): {_CIDR_RULE}"
    if cidr.prefixlen < SHORTEST_IPV4:
        return (
            f"{cidr} is wider than /{SHORTEST_IPV4}: a segment is one L2 domain "
            f"(use a /{SHORTEST_IPV4} or a longer prefix)"
        )
    for space, kind in SPECIAL_IPV4:
        if cidr.overlaps(space):
            return f"{cidr} includes {kind} {space}: {_CIDR_RULE}"
    return None


def _cidr6_problem(cidr6: IPv6Network | None) -> str | None:
    """Why ``cidr6`` cannot be a segment's IPv6 prefix, or None."""
    if cidr6 is None:
        return None
    for space, kind in SPECIAL_IPV6:
        if cidr6.subnet_of(space):
            return f"{cidr6} is {kind} ({space}): {_CIDR6_RULE}"
    if cidr6.prefixlen < SHORTEST_IPV6:
        return (
            f"{cidr6} is wider than /{SHORTEST_IPV6}: a segment is one link "
            f"(use a /{SHORTEST_IPV6} or a longer prefix, usually a /64)"
        )
    if not any(cidr6.subnet_of(space) for space in UNICAST_IPV6):
        return f"{cidr6} is reserved (neither {UNICAST_IPV6[0]} nor {UNICAST_IPV6[1]}): {_CIDR6_RULE}"
    return None


def _not_global6(address: IPv6Address) -> str | None:
    """What makes ``address`` no global unicast address, or None."""
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_loopback:
        return "the loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.ipv4_mapped is not None:
        return "IPv4-mapped"
    if address.is_site_local:
        return "site-local, deprecated"
    return None


def _check_gateway6(where: str, seg: Segment) -> list[Problem]:
    """A segment's ``gateway6``: global unicast (a link-local, multicast... address is no
    route target), in its ``cidr6``, not the subnet-router anycast address."""
    gw6 = seg.gateway6
    if gw6 is None:
        return []
    if seg.cidr6 is None:
        return [Problem(f"{where}.gateway6", f"{gw6} needs the segment's cidr6")]
    kind = _not_global6(gw6)
    if kind is not None:
        return [Problem(f"{where}.gateway6", f"{gw6} is {kind}: a gateway6 is a global address")]
    if gw6 not in seg.cidr6:
        return [Problem(f"{where}.gateway6", f"{gw6} is outside {seg.cidr6}")]
    if seg.cidr6.prefixlen < 127 and gw6 == seg.cidr6.network_address:
        return [Problem(f"{where}.gateway6", f"{gw6} is the subnet-router anycast address of {seg.cidr6}")]
    return []
