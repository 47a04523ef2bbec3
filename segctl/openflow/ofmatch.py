"""Match fields of :mod:`segctl.openflow.ofctl`: vocabulary, values and normalization.

The field vocabulary (:data:`FIELD_WIDTHS`), the normalized match term
(:class:`FieldMatch`), the parsing and formatting of field values, and the
normalization of the match tokens of one flow line (aliases, shorthands,
prerequisites) follow the rules in the :mod:`segctl.openflow.ofctl` docstring;
import these names from there.

The parse of one match term is memoized (a bounded LRU cache): the same tokens
(``in_port=1``, ``dl_dst=...``, ``metadata=0x1001/0xffffffff``) repeat tens of
thousands of times in a large network's flow tables and :class:`FieldMatch` is
immutable, so equal terms share one object. Errors are never cached.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "CONTROLLER",
    "ETH_ARP",
    "ETH_IP",
    "ETH_IPV6",
    "FIELD_WIDTHS",
    "IN_PORT",
    "IP_PROTO_ICMPV6",
    "LOCAL",
    "FieldMatch",
    "format_match",
    "format_value",
    "mac_int",
    "mac_text",
    "set_field_prerequisite",
    "shorthand",
]

#: Reserved OpenFlow 1.3 port numbers (32-bit).
IN_PORT = 0xFFFFFFF8
CONTROLLER = 0xFFFFFFFD
LOCAL = 0xFFFFFFFE
_PORT_NAMES = {"IN_PORT": IN_PORT, "LOCAL": LOCAL}

#: Bit width of every normalized match field.
FIELD_WIDTHS: dict[str, int] = {
    "in_port": 32,
    "metadata": 64,
    **{f"reg{i}": 32 for i in range(8)},
    "conj_id": 32,
    "ct_state": 8,
    "ct_zone": 16,
    "eth_src": 48,
    "eth_dst": 48,
    "eth_type": 16,
    "vlan_tci": 16,
    "ip_proto": 8,
    "ip_src": 32,
    "ip_dst": 32,
    "nw_ttl": 8,
    "tcp_src": 16,
    "tcp_dst": 16,
    "udp_src": 16,
    "udp_dst": 16,
    "icmp_type": 8,
    "icmp_code": 8,
    "icmpv6_type": 8,
    "icmpv6_code": 8,
    "arp_op": 16,
    "arp_spa": 32,
    "arp_tpa": 32,
    "arp_sha": 48,
    "arp_tha": 48,
    "ipv6_src": 128,
    "ipv6_dst": 128,
    "nd_target": 128,
    "nd_sll": 48,
    "nd_tll": 48,
    "nd_reserved": 32,
    "nd_options_type": 8,
}
_FIELD_ORDER = {name: i for i, name in enumerate(FIELD_WIDTHS)}
_MAC_FIELDS = {"eth_src", "eth_dst", "arp_sha", "arp_tha", "nd_sll", "nd_tll"}
_IP4_FIELDS = {"ip_src", "ip_dst", "arp_spa", "arp_tpa"}
_IP6_FIELDS = {"ipv6_src", "ipv6_dst", "nd_target"}
_DEC_FIELDS = {"in_port", "ip_proto", "nw_ttl", "icmp_type", "icmp_code", "icmpv6_type", "icmpv6_code",
               "arp_op", "tcp_src", "tcp_dst", "udp_src", "udp_dst", "conj_id", "ct_zone", "nd_reserved",
               "nd_options_type"}  # fmt: skip

ETH_IP, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
#: ICMPv6's IP protocol number (the ``icmp6`` shorthand's).
IP_PROTO_ICMPV6 = 58
_SHORTHANDS: dict[str, tuple[int, int | None]] = {
    "ip": (ETH_IP, None),
    "ipv4": (ETH_IP, None),
    "arp": (ETH_ARP, None),
    "ipv6": (ETH_IPV6, None),
    "tcp": (ETH_IP, 6),
    "udp": (ETH_IP, 17),
    "icmp": (ETH_IP, 1),
    "tcp6": (ETH_IPV6, 6),
    "udp6": (ETH_IPV6, 17),
    "icmp6": (ETH_IPV6, IP_PROTO_ICMPV6),
}
_SHORTHAND_BY_KEY = {v: k for k, v in _SHORTHANDS.items() if k != "ipv4"}


def shorthand(eth_type: int, ip_proto: int | None = None) -> str | None:
    """The ofctl shorthand of an ethertype and IP protocol (``(0x86dd, 58)`` → ``icmp6``), or
    None when it has none."""
    return _SHORTHAND_BY_KEY.get((eth_type, ip_proto))


_SIMPLE_ALIASES = {
    "dl_src": "eth_src",
    "dl_dst": "eth_dst",
    "dl_type": "eth_type",
    "ipv6_src": "ipv6_src",
    "ipv6_dst": "ipv6_dst",
    "nd_target": "nd_target",
    "nd_sll": "nd_sll",
}
#: Fields OVS matches exactly only (a mask is an error, as in ``ovs-ofctl``).
_EXACT_FIELDS = {"in_port", "conj_id", "ct_zone", "eth_type", "ip_proto", "nw_ttl", "icmp_type", "icmp_code",
                 "icmpv6_type", "icmpv6_code", "arp_op", "nd_reserved", "nd_options_type"}  # fmt: skip
_PLAIN_FIELDS = {"ct_state", "ct_zone", "metadata", "conj_id", "in_port", "eth_src", "eth_dst"} | {
    f"reg{i}" for i in range(8)
}
_CT_BITS = {"new": 0x01, "est": 0x02, "rel": 0x04, "rpl": 0x08, "inv": 0x10, "trk": 0x20, "snat": 0x40,
            "dnat": 0x80}  # fmt: skip
_CT_ORDER = ("trk", "new", "est", "rel", "rpl", "inv", "snat", "dnat")

_MAC_RE = re.compile(r"[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){5}")
_PORT_RE = re.compile(r"\d+|0x[0-9a-fA-F]+")
_REG_RE = re.compile(r"reg[0-7]")
_CT_FLAG_RE = re.compile(r"([+-])([a-z]+)")
_CT_TOKEN_RE = re.compile(r"[+-][a-z]+")
#: Bound of each memo (entries); a k=8 fat tree with 2,000 endpoints needs ~25,000 terms.
_CACHE_SIZE = 1 << 16


@dataclass(frozen=True, order=True)
class FieldMatch:
    """One normalized match term: ``packet[field] & mask == value``."""

    field: str
    value: int
    mask: int


class _Unsupported(Exception):
    """Internal: a token outside the modelled vocabulary."""


# ---------------------------------------------------------------------------- values


def _full(name: str) -> int:
    return (1 << FIELD_WIDTHS[name]) - 1


def _int(text: str) -> int:
    return int(text, 0) if text[:2].lower() == "0x" else int(text, 10)


@lru_cache(maxsize=_CACHE_SIZE)
def mac_int(text: str) -> int:
    """A MAC address as an integer: six ``:``-separated groups of 1-2 hex digits
    (``ValueError`` otherwise). The one parser of MAC text in segctl.

    >>> hex(mac_int("02:5e:00:00:00:01")), mac_int("2:5E:0:0:0:1") == mac_int("02:5e:00:00:00:01")
    ('0x25e0000000001', True)
    """
    if not _MAC_RE.fullmatch(text):
        raise ValueError(f"bad MAC address {text!r}")
    return int("".join(p.zfill(2) for p in text.split(":")), 16)


def mac_text(value: int) -> str:
    """A 48-bit integer as MAC text, lower case, two digits a group: the inverse of :func:`mac_int`.

    >>> mac_text(0x025E00000001)
    '02:5e:00:00:00:01'
    """
    return ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -8, -8))


def _parse_value(name: str, text: str) -> tuple[int, int]:
    """Parse ``value[/mask]`` of field ``name`` into (value, mask)."""
    full = _full(name)
    raw, slash, mask_text = text.partition("/")
    if name in _MAC_FIELDS:
        value = mac_int(raw)
        mask = mac_int(mask_text) if slash else full
    elif name in _IP4_FIELDS or name in _IP6_FIELDS:
        cls = ipaddress.IPv4Address if name in _IP4_FIELDS else ipaddress.IPv6Address
        bits = 32 if name in _IP4_FIELDS else 128
        value = int(cls(raw))
        if not slash:
            mask = full
        elif mask_text.isdigit():
            n = int(mask_text)
            if n > bits:
                raise ValueError(f"prefix length {n} too long")
            mask = full ^ ((1 << (bits - n)) - 1)
        else:
            mask = int(cls(mask_text))
    else:
        value = _int(raw)
        mask = _int(mask_text) if slash else full
    if value > full or mask > full or value < 0 or mask < 0:
        raise ValueError(f"{text} does not fit in {FIELD_WIDTHS[name]} bits")
    return value & mask, mask


def _ct_state(text: str) -> tuple[int, int]:
    if not text.startswith(("+", "-")):
        value, mask = (_int(p) for p in text.split("/")) if "/" in text else (_int(text), 0xFF)
        return value & mask, mask
    value = mask = 0
    for sign, flag in _CT_FLAG_RE.findall(text):
        if flag not in _CT_BITS or "".join(_CT_TOKEN_RE.findall(text)) != text:
            raise ValueError(f"bad ct_state {text!r}")
        mask |= _CT_BITS[flag]
        value |= _CT_BITS[flag] if sign == "+" else 0
    return value, mask


def format_value(name: str, value: int, mask: int) -> str:
    """The ``ovs-ofctl`` text of one match term (``value[/mask]``)."""
    full = _full(name)
    if name == "ct_state":
        if mask & ~0x3F or value & ~mask:
            return f"{value:#x}/{mask:#x}"
        flags = "".join(("+" if value & _CT_BITS[f] else "-") + f for f in _CT_ORDER if mask & _CT_BITS[f])
        return flags or "0/0"
    if name in _MAC_FIELDS:
        return mac_text(value) if mask == full else f"{mac_text(value)}/{mac_text(mask)}"
    if name in _IP4_FIELDS or name in _IP6_FIELDS:
        cls = ipaddress.IPv4Address if name in _IP4_FIELDS else ipaddress.IPv6Address
        bits = 32 if name in _IP4_FIELDS else 128
        if mask == full:
            return str(cls(value))
        inverted = full ^ mask
        if inverted & (inverted + 1) == 0:  # a prefix mask
            return f"{cls(value)}/{bits - inverted.bit_length()}"
        return f"{cls(value)}/{cls(mask)}"
    if mask == full:
        return str(value) if name in _DEC_FIELDS else f"{value:#x}"
    return f"{value:#x}/{mask:#x}"


def format_match(match: Iterable[FieldMatch]) -> str:
    """Canonical match text, e.g. ``eth_type=0x0800,ip_proto=6,tcp_dst=80``."""
    out = []
    for term in match:
        if term.field == "eth_type" and term.mask == 0xFFFF:
            out.append(f"eth_type={term.value:#06x}")
        elif term.field == "in_port" and term.value in (IN_PORT, LOCAL):
            out.append(f"in_port={'LOCAL' if term.value == LOCAL else 'IN_PORT'}")
        elif term.field == "vlan_tci":
            out.append(f"vlan_tci={term.value:#06x}/{term.mask:#06x}")
        else:
            out.append(f"{term.field}={format_value(term.field, term.value, term.mask)}")
    return ",".join(out)


# ------------------------------------------------------------------- normalization

_SHORTHAND_TERMS: dict[str, tuple[FieldMatch, ...]] = {
    key: (FieldMatch("eth_type", eth, 0xFFFF),)
    + (() if proto is None else (FieldMatch("ip_proto", proto, 0xFF),))
    for key, (eth, proto) in _SHORTHANDS.items()
}


def normalize_match(raw: list[tuple[str, str | None]]) -> tuple[FieldMatch, ...]:
    """The sorted, normalized match of a flow's ``(key, value)`` tokens (``None``: a shorthand).

    Raises ``ValueError``/``KeyError`` for malformed tokens, ``_Unsupported`` for
    tokens outside the vocabulary (the first bad token in the order of the passes).
    """
    terms: dict[str, FieldMatch] = {}
    # Pass 1: shorthands and dl_type/nw_proto decide the protocol context.
    for key, value in raw:
        if value is None:
            if key not in _SHORTHANDS:
                raise _Unsupported(f"match token {key!r}")
            for term in _SHORTHAND_TERMS[key]:
                _put(terms, term)
        elif key == "dl_type" or key == "eth_type":
            _put(terms, _term("eth_type", key, value))
    eth_term = terms.get("eth_type")
    eth = eth_term.value if eth_term is not None else None
    for key, value in raw:
        if (key == "nw_proto" or key == "ip_proto") and value is not None:
            _put(terms, _term("arp_op" if eth == ETH_ARP else "ip_proto", key, value))
    proto_term = terms.get("ip_proto")
    proto = proto_term.value if proto_term is not None else None

    for key, value in raw:
        if value is None or key in ("dl_type", "eth_type", "nw_proto", "ip_proto"):
            continue
        _put(terms, _context_term(key, value, eth, proto))
    if proto == IP_PROTO_ICMPV6 and eth == ETH_IPV6:
        values = {name: t.value for name, t in terms.items()}
        for name in _ND_TYPES.keys() & terms.keys():
            if not _is_nd(values, _ND_TYPES[name]):
                raise ValueError(f"{name} needs {_nd_text(name)} (prerequisites not met)")
    return tuple([terms[name] for name in sorted(terms, key=_FIELD_ORDER.__getitem__) if terms[name].mask])


def _put(terms: dict[str, FieldMatch], term: FieldMatch) -> None:
    old = terms.setdefault(term.field, term)
    if old is not term and (old.value, old.mask) != (term.value, term.mask):
        raise ValueError(f"{term.field} given twice with different values")


@lru_cache(maxsize=_CACHE_SIZE)
def _context_term(key: str, value: str, eth: int | None, proto: int | None) -> FieldMatch:
    """The term of token ``key=value`` given the flow's eth_type and ip_proto (memoized)."""
    return _term(_field_name(key, eth, proto), key, value)


@lru_cache(maxsize=_CACHE_SIZE)
def _term(name: str, key: str, value: str) -> FieldMatch:
    """The term of normalized field ``name`` written as ``key=value`` (memoized)."""
    if name == "vlan_tci":
        v, m = _vlan(key, value)
    elif name == "ct_state":
        v, m = _ct_state(value)
    elif name == "in_port":
        v, m = _PORT_NAMES[value] if value in _PORT_NAMES else _port_number(value), _full(name)
    else:
        v, m = _parse_value(name, value)
    if name in _EXACT_FIELDS and m != _full(name):
        raise ValueError(f"{name} cannot be masked")
    return FieldMatch(name, v, m)


def _port_number(text: str) -> int:
    if not _PORT_RE.fullmatch(text):
        raise _Unsupported(f"port name {text!r} (dump with port numbers, without --names)")
    return _int(text)


def _field_name(key: str, eth: int | None, proto: int | None) -> str:
    if key in ("nw_src", "ip_src", "nw_dst", "ip_dst"):
        if eth == ETH_ARP:
            return "arp_spa" if key.endswith("src") else "arp_tpa"
        if eth != ETH_IP:
            raise ValueError(f"{key} needs ip or arp (prerequisites not met)")
        return "ip_src" if key.endswith("src") else "ip_dst"
    if key in ("tp_src", "tp_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst"):
        kind = {6: "tcp", 17: "udp"}.get(proto or -1)
        if kind is None or eth not in (ETH_IP, ETH_IPV6) or (key[:3] in ("tcp", "udp") and key[:3] != kind):
            raise ValueError(f"{key} needs tcp or udp (prerequisites not met)")
        return f"{kind}_{key[-3:]}"
    if key in ("icmp_type", "icmp_code", "icmpv6_type", "icmpv6_code"):
        suffix = key.rpartition("_")[2]
        if eth == ETH_IP and proto == 1 and not key.startswith("icmpv6"):
            return f"icmp_{suffix}"
        if eth == ETH_IPV6 and proto == 58:
            return f"icmpv6_{suffix}"
        raise ValueError(f"{key} needs icmp or icmp6 (prerequisites not met)")
    if key in ("dl_vlan", "vlan_vid", "vlan_tci"):
        return "vlan_tci"
    if key in ("nw_ttl", "ip_ttl"):
        if eth not in (ETH_IP, ETH_IPV6):
            raise ValueError(f"{key} needs ip (prerequisites not met)")
        return "nw_ttl"
    if key.startswith("arp_") and key in FIELD_WIDTHS:
        if eth != ETH_ARP:
            raise ValueError(f"{key} needs arp (prerequisites not met)")
        return key
    if key in ("ipv6_src", "ipv6_dst"):
        if eth != ETH_IPV6:
            raise ValueError(f"{key} needs ipv6 (prerequisites not met)")
        return key
    if key in _ND_TYPES:
        if eth != ETH_IPV6 or proto != IP_PROTO_ICMPV6:
            raise ValueError(f"{key} needs icmp6 (prerequisites not met)")
        return key
    name = _SIMPLE_ALIASES.get(key, key)
    if name in (
        "ct_state",
        "ct_zone",
        "metadata",
        "conj_id",
        "in_port",
        "eth_src",
        "eth_dst",
    ) or _REG_RE.fullmatch(name):
        return name
    raise _Unsupported(f"match field {key!r}")


#: The ICMPv6 types a flow must match to match or set each neighbour-discovery field: ND
#: (solicitation or advertisement, code 0), ND solicit (``nd_sll``), ND advert (``nd_tll``);
#: ``ovs-fields(7)``. OVS drops such a match term without them (and refuses such a
#: ``set_field``); the parser refuses both, as it refuses ``tp_dst`` without ``tcp``/``udp``.
_ND_TYPES: dict[str, tuple[int, ...]] = {
    "nd_target": (135, 136),
    "nd_sll": (135,),
    "nd_tll": (136,),
    "nd_reserved": (135, 136),
    "nd_options_type": (135, 136),
}


def _is_nd(values: dict[str, int], types: tuple[int, ...]) -> bool:
    """OVS's ``is_nd``: ICMPv6 of one of ``types`` and code 0, read off the match's values (a
    field not matched reads 0, as in OVS's check)."""
    return values.get("icmpv6_type") in types and values.get("icmpv6_code", 0) == 0


def _nd_text(name: str) -> str:
    return f"icmp6 with icmp_type={' or '.join(map(str, _ND_TYPES[name]))} and icmp_code=0"


def set_field_prerequisite(name: str, match: Iterable[FieldMatch]) -> str | None:
    """What ``match`` lacks for ``set_field:…->name`` (None: nothing). OVS checks an action's
    prerequisites against the flow's *match*, not against the packet as earlier actions left
    it, and refuses the flow (``OFPBAC_MATCH_INCONSISTENT``): ``set_field:136->icmpv6_type``
    does not make ``nd_tll`` settable on a flow matching ``icmp_type=135``.

    >>> m = normalize_match([("icmp6", None), ("icmp_type", "135")])
    >>> set_field_prerequisite("nd_target", m), set_field_prerequisite("nd_tll", m)
    (None, 'icmp6 with icmp_type=136 and icmp_code=0')
    """
    values = {t.field: t.value for t in match}
    eth, proto = values.get("eth_type"), values.get("ip_proto")
    if name.startswith("arp_"):
        return None if eth == ETH_ARP else "arp"
    if name in ("ipv6_src", "ipv6_dst"):
        return None if eth == ETH_IPV6 else "ipv6"
    if name in ("icmp_type", "icmp_code"):
        return None if (eth, proto) == (ETH_IP, 1) else "icmp"
    if name in ("icmpv6_type", "icmpv6_code"):
        return None if (eth, proto) == (ETH_IPV6, IP_PROTO_ICMPV6) else "icmp6"
    if name in _ND_TYPES:
        ok = (eth, proto) == (ETH_IPV6, IP_PROTO_ICMPV6) and _is_nd(values, _ND_TYPES[name])
        return None if ok else _nd_text(name)
    return None


def _vlan(key: str, text: str) -> tuple[int, int]:
    """dl_vlan / vlan_vid / vlan_tci to (value, mask) over the present bit and VID."""
    if key == "dl_vlan":
        vid = _int(text)
        if vid == 0xFFFF:
            return 0, 0x1FFF
        if vid > 0xFFF:
            raise ValueError(f"dl_vlan {text} out of range")
        return 0x1000 | vid, 0x1FFF
    raw, slash, mask_text = text.partition("/")
    value = _int(raw)
    mask = _int(mask_text) if slash else (0x1FFF if key == "vlan_vid" else 0xFFFF)
    if key == "vlan_vid" and (value > 0x1FFF or mask > 0x1FFF):
        raise ValueError(f"vlan_vid {text} out of range")
    if value > 0xFFFF or mask > 0xFFFF:
        raise ValueError(f"vlan_tci {text} out of range")
    value &= mask
    if mask & 0xE000:
        # PCP matched: only "no VLAN" (present bit required 0, PCP 0) is modelled.
        if mask & 0x1000 and not value & 0x1000 and not value & 0xE000:
            mask &= 0x1FFF
        else:
            raise _Unsupported(f"vlan PCP match {key}={text}")
    if mask & 0x1000 and not value & 0x1000:
        return 0, 0x1FFF  # no VLAN: OVS matches tci == 0
    return value, mask
