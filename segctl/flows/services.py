"""Service matches: a grant's services as OpenFlow match pairs, and their algebra.

:func:`service_matches` turns intent services into family-neutral matches (``ip`` any,
``tcp``/``udp`` both families, ``icmp`` ICMPv4, ``icmp6`` ICMPv6); :func:`family_match`
gives one of them as the match of one IP family when a rule is emitted. The policy
compiler (:mod:`segctl.flows.policy`) ranks grants by :func:`service_spans` (which
services can meet, linear in the services) and the guardrail band narrows them with
:func:`intersect_match`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from segctl.topology.grants import Ranges, intersect_ranges, merge_ranges
from segctl.topology.schema import Service

__all__ = [
    "Match",
    "Spans",
    "family_match",
    "intersect_match",
    "port_range_masks",
    "service_matches",
    "service_spans",
    "spans_meet",
]

#: One OpenFlow match as (field, value text) pairs; ``proto`` is a shorthand (``tcp``...).
Match = tuple[tuple[str, str], ...]


def port_range_masks(lo: int, hi: int) -> list[tuple[int, int]]:
    """Cover ``lo..hi`` with the fewest ``value/mask`` pairs (16-bit ports).

    >>> port_range_masks(8080, 8080), port_range_masks(8000, 8015)
    ([(8080, 65535)], [(8000, 65520)])
    """
    out: list[tuple[int, int]] = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, 0xFFFF & ~(size - 1)))
        lo += size
    return out


def service_matches(services: Iterable[Service]) -> tuple[Match, ...]:
    """The match pairs of each service (deduplicated, in first-seen order; an ICMP match that
    another one covers, such as ``icmp,icmp_type=8`` next to ``icmp``, is left out).

    The matches are family-neutral: ``ip`` (any), ``tcp`` and ``udp`` stand for both IPv4
    and IPv6, ``icmp`` for ICMPv4 and ``icmp6`` for ICMPv6; :func:`family_match` turns one
    into the OVS match of one family when a rule is emitted."""
    out: dict[Match, None] = {}
    for svc in services:
        if svc.proto == "any":
            out[(("proto", "ip"),)] = None
        elif svc.proto in ("icmp", "icmp6"):
            out[_icmp_match(svc)] = None
        elif svc.ports is None:
            out[(("proto", svc.proto),)] = None
        else:
            field = f"{svc.proto}_dst"
            for r in svc.ports:
                for value, mask in port_range_masks(r.lo, r.hi):
                    text = str(value) if mask == 0xFFFF else f"{value:#x}/{mask:#x}"
                    out[(("proto", svc.proto), (field, text))] = None
    # an ICMP match's fields come in a fixed order (proto, type, code), so what covers it is
    # one of its proper prefixes: a set lookup each (a hostile intent may list every type/code)
    return tuple(m for m in out if not (m[0][1] in _ICMP and any(m[:k] in out for k in range(1, len(m)))))


_ICMP = ("icmp", "icmp6")
#: A family-neutral service match's protocol in each family (None: not in that family).
_FAMILY_PROTO: dict[int, dict[str, str | None]] = {
    4: {"ip": "ip", "tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmp6": None},
    6: {"ip": "ipv6", "tcp": "tcp6", "udp": "udp6", "icmp": None, "icmp6": "icmp6"},
}


def family_match(match: Match, family: int) -> Match | None:
    """A family-neutral service match (:func:`service_matches`) as the OVS match of one IP
    family, or None when the service has no packet in it (``icmp`` in IPv6, ``icmp6`` in IPv4).

    >>> family_match((("proto", "tcp"), ("tcp_dst", "22")), 6)
    (('proto', 'tcp6'), ('tcp_dst', '22'))
    >>> family_match((("proto", "icmp6"), ("icmp_type", "128")), 4) is None
    True
    """
    fields = dict(match)
    proto = _FAMILY_PROTO[family][fields.get("proto", "ip")]
    if proto is None:
        return None
    return (("proto", proto), *((k, v) for k, v in match if k != "proto"))


def _icmp_match(svc: Service) -> Match:
    """``icmp``, or ``icmp,icmp_type=N[,icmp_code=M]`` for a service with a type (and code);
    ``icmp6`` alike."""
    pairs: list[tuple[str, str]] = [("proto", svc.proto)]
    if svc.type is not None:
        pairs.append(("icmp_type", str(svc.type)))
    if svc.code is not None:
        pairs.append(("icmp_code", str(svc.code)))
    return tuple(pairs)


#: Per protocol (``tcp``, ``udp``: destination ports; ``icmp``, ``icmp6``: type << 8 | code)
#: the merged ranges a grant's service matches take; ``None`` for every IP packet.
Spans = dict[str, Ranges] | None


def _span(name: str, text: str, width: int) -> tuple[int, int]:
    value, mask = _value_mask(text, width)
    full = (1 << width) - 1
    low = ~mask & full
    if low & (low + 1):  # not a prefix block: take the whole field (an over-approximation)
        return (0, full)
    return (value & mask, (value & mask) | low)


def service_spans(services: Sequence[Match]) -> Spans:
    """The ranges ``services`` take per protocol, merged (linear in the services), so two
    grants' services meet iff some protocol's ranges do: no pairwise match comparison.

    >>> block = (("proto", "tcp"), ("tcp_dst", "0x1f40/0xfff0"))
    >>> service_spans((block, (("proto", "icmp"), ("icmp_type", "8"))))
    {'tcp': ((8000, 8015),), 'icmp': ((2048, 2303),)}
    """
    out: dict[str, list[tuple[int, int]]] = {}
    for match in services:
        fields = dict(match)
        proto = fields.get("proto", "ip")
        if proto == "ip":
            return None
        if proto in ("tcp", "udp"):
            port = fields.get(f"{proto}_dst")
            out.setdefault(proto, []).append((0, 0xFFFF) if port is None else _span(proto, port, 16))
        else:  # icmp, icmp6: type << 8 | code
            icmp_type, code = fields.get("icmp_type"), fields.get("icmp_code")
            if icmp_type is None:
                span = (0, 0xFFFF)
            else:
                base = int(icmp_type) << 8
                span = (base, base | 0xFF) if code is None else (base | int(code), base | int(code))
            out.setdefault(proto, []).append(span)
    return {proto: merge_ranges(ranges) for proto, ranges in out.items()}


def spans_meet(a: Spans, b: Spans) -> bool:
    if a is None or b is None:
        return (a is None or bool(a)) and (b is None or bool(b))
    return any(intersect_ranges(ranges, b[proto]) for proto, ranges in a.items() if proto in b)


def _value_mask(text: str, width: int) -> tuple[int, int]:
    value, _, mask = text.partition("/")
    return int(value, 0), int(mask, 0) if mask else (1 << width) - 1


def intersect_match(a: Match, b: Match) -> Match | None:
    """The packets both service matches take, as one match; ``None`` when they are disjoint.

    >>> intersect_match((("proto", "ip"),), (("proto", "tcp"), ("tcp_dst", "22")))
    (('proto', 'tcp'), ('tcp_dst', '22'))
    >>> block = (("proto", "tcp"), ("tcp_dst", "0x1f40/0xfff0"))  # 8000-8015
    >>> intersect_match(block, (("proto", "tcp"), ("tcp_dst", "8008")))
    (('proto', 'tcp'), ('tcp_dst', '8008'))
    >>> intersect_match(block, (("proto", "tcp"), ("tcp_dst", "8080"))) is None
    True
    >>> intersect_match((("proto", "tcp"),), (("proto", "udp"),)) is None
    True
    """
    fields: dict[str, tuple[int, int]] = {}
    proto = "ip"
    for name, text in (*a, *b):
        if name == "proto":
            if text != "ip" and proto not in ("ip", text):
                return None
            proto = text if text != "ip" else proto
            continue
        width = 16 if name.endswith("_dst") else 8
        value, mask = _value_mask(text, width)
        if name in fields:
            old_value, old_mask = fields[name]
            if (old_value ^ value) & old_mask & mask:
                return None
            value, mask = (old_value & old_mask) | (value & mask), old_mask | mask
        fields[name] = (value & mask, mask)
    out = [("proto", proto)]
    for name, (value, mask) in fields.items():
        full = (1 << (16 if name.endswith("_dst") else 8)) - 1
        out.append((name, str(value) if mask == full else f"{value:#x}/{mask:#x}"))
    return tuple(out)
