"""The intent document: tenants, segments, endpoints, policies and shared services.

These pydantic models check the *shape* of an intent (types, formats, unknown keys).
Cross-references and address rules are checked by :mod:`segctl.topology.validate`,
and :func:`segctl.topology.network.resolve` turns a valid intent into the frozen
model every other part of segctl works from.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network, summarize_address_range
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from segctl.topology.schema_services import PortRange, Service, ServiceSet, _services_given
from segctl.topology.schema_types import (
    _LINK_TEXT,
    _SWITCH_PORT_TEXT,
    MAX_EXCEPT,
    MAX_OF_PORT,
    Dpid,
    MacAddress,
    Name,
    SelectorName,
    _not_bool,
    _or_text,
    _Strict,
)

__all__ = [
    "DEFAULT_POLICY_PRIORITY",
    "AddressSet",
    "Endpoint",
    "External",
    "ExternalRouter",
    "Fabric",
    "Group",
    "Guardrail",
    "GuardrailPeer",
    "Intent",
    "Link",
    "Logging",
    "Policy",
    "PortRange",
    "RateLimit",
    "Segment",
    "Selector",
    "Service",
    "ServiceSet",
    "SharedService",
    "SharedServiceConsumer",
    "SharedServiceProvider",
    "Switch",
    "SwitchPort",
    "Tenant",
]


class SwitchPort(_Strict):
    """An attachment point ``switch:port`` (OpenFlow port number)."""

    model_config = ConfigDict(json_schema_extra=_or_text(_SWITCH_PORT_TEXT, "leaf1:10"))

    switch: Name
    port: int = Field(ge=1, le=MAX_OF_PORT)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            name, sep, port = value.rpartition(":")
            if not sep or not name or not port.strip().isdigit():
                raise ValueError(f"{value!r} is not of the form switch:port")
            return {"switch": name.strip(), "port": int(port)}
        return value

    def __str__(self) -> str:
        return f"{self.switch}:{self.port}"


class Switch(_Strict):
    """An OpenFlow switch of the fabric, known by its datapath id."""

    name: Name
    dpid: Dpid


class Link(_Strict):
    """A fabric link between two switch ports, written ``leaf1:1 <-> spine1:1``."""

    model_config = ConfigDict(json_schema_extra=_or_text(_LINK_TEXT, "leaf1:1 <-> spine1:1"))

    a: SwitchPort
    b: SwitchPort

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            left, sep, right = value.partition("<->")
            if not sep:
                raise ValueError(f"{value!r} is not of the form 'sw1:port <-> sw2:port'")
            return {"a": left.strip(), "b": right.strip()}
        return value

    def __str__(self) -> str:
        return f"{self.a} <-> {self.b}"


class ExternalRouter(_Strict):
    """The upstream router on an external network's link: where traffic to the outside goes."""

    ip: IPv4Address
    #: Its IPv6 address on the link (in the external network's ``cidr6``): IPv6 to the
    #: outside goes to it, from the endpoints' own global addresses (no translation).
    ip6: IPv6Address | None = None
    mac: MacAddress

    @field_validator("ip", "ip6", mode="before")
    @classmethod
    def _ip_text(cls, value: Any) -> Any:
        return _address_text(value)


class External(_Strict):
    """An external network (the internet, a provider network) reached through an uplink
    port. ``cidr`` is the public range on the uplink link: tenants' ``snat`` addresses and
    endpoints' ``floating_ip`` come from it; ``mac`` is the fabric's own MAC on the link."""

    name: Name
    attach: list[SwitchPort] = Field(min_length=1)
    router: ExternalRouter
    cidr: IPv4Network
    #: The IPv6 prefix of the uplink link (with ``router.ip6``): IPv6 goes out routed.
    cidr6: IPv6Network | None = None
    mac: MacAddress | None = None

    @field_validator("cidr", "cidr6", mode="before")
    @classmethod
    def _strict_cidr(cls, value: Any) -> Any:
        return _cidr_text(value)


class Fabric(_Strict):
    """The switches, the links between them and the external networks they reach."""

    switches: list[Switch] = Field(min_length=1)
    links: list[Link] = Field(default_factory=list)
    externals: list[External] = Field(default_factory=list)


class Segment(_Strict):
    """A tenant's subnet / L2 domain."""

    name: Name
    cidr: IPv4Network
    cidr6: IPv6Network | None = None
    gateway: IPv4Address | None = None
    #: The distributed gateway's IPv6 address (in ``cidr6``): IPv6 is routed to and from the
    #: segment's endpoints through it.
    gateway6: IPv6Address | None = None
    strict: bool = False
    vlan: int | None = Field(default=None, ge=2, le=4094)

    @field_validator("cidr", "cidr6", mode="before")
    @classmethod
    def _strict_cidr(cls, value: Any) -> Any:
        return _cidr_text(value)

    @field_validator("gateway", "gateway6", mode="before")
    @classmethod
    def _gateway_text(cls, value: Any) -> Any:
        return _address_text(value)


def _cidr_text(value: Any) -> Any:
    """A CIDR written as text with no host bits set (``10.1.1.0/24``), or None."""
    if value is None:
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a CIDR (write it as text, e.g. 10.1.1.0/24)")
    if "/" not in value:
        raise ValueError(f"{value!r} is not a CIDR (expected address/prefix)")
    if "%" in value:  # Python takes "fe80::%eth0/64"; a match has no zone
        raise ValueError(f"{value}: a prefix with a zone index; write the prefix alone")
    try:
        ip_network(value, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            # ip_network("10.1.1.5/24") raises; say what was probably meant.
            meant = ip_network(value, strict=False)
            raise ValueError(f"{value} has host bits set; did you mean {meant}?") from None
        raise ValueError(f"{value!r} is not a valid CIDR") from None
    return value


def _address_text(value: Any) -> Any:
    # pydantic takes 167837962 as 10.1.1.10; in an intent file an integer address is a mistake.
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{value!r} is not an IP address (write it as text, e.g. 10.1.1.10)")
    # Python takes "fe80::1%eth0" (a zone index); OpenFlow matches have no zone, so the
    # rules would not load.
    if isinstance(value, str) and "%" in value:
        raise ValueError(f"{value}: an address with a zone index; write the address alone")
    return value


class RateLimit(_Strict):
    """A per-endpoint meter (anti-DDoS): packets/s or kbit/s, with an optional burst."""

    pps: int | None = Field(default=None, ge=1, le=10_000_000)
    kbps: int | None = Field(default=None, ge=1, le=100_000_000)
    burst: int | None = Field(default=None, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _one_unit(self) -> RateLimit:
        if (self.pps is None) == (self.kbps is None):
            raise ValueError("give exactly one of pps or kbps")
        return self


class Endpoint(_Strict):
    """A workload NIC bound to one switch port."""

    name: Name
    segment: Name
    mac: MacAddress
    ip: IPv4Address
    ipv6: IPv6Address | None = None
    #: The link-local source the endpoint also sends from; default: the EUI-64 address of
    #: its MAC (what Linux derives by default). Only with ``ipv6``.
    ipv6_link_local: IPv6Address | None = None
    attach: SwitchPort
    #: A public address of an external network's ``cidr``, translated 1:1 to ``ip``: the
    #: endpoint's own source to the outside, and where the outside may reach it (policies
    #: with a ``from: {external: ...}`` peer say on what).
    floating_ip: IPv4Address | None = None

    @field_validator("ip", "ipv6", "ipv6_link_local", "floating_ip", mode="before")
    @classmethod
    def _ip_text(cls, value: Any) -> Any:
        return _address_text(value)

    labels: dict[Annotated[str, Field(min_length=1, max_length=63)], str] = Field(default_factory=dict)
    rate_limit: RateLimit | None = None

    @property
    def link_local(self) -> IPv6Address | None:
        """The link-local address bound to the port: declared, or :func:`eui64_link_local` of
        the MAC; ``None`` without ``ipv6``."""
        if self.ipv6 is None:
            return None
        return self.ipv6_link_local or eui64_link_local(self.mac)


def eui64_link_local(mac: str) -> IPv6Address:
    """``fe80::/64`` with the modified EUI-64 interface identifier of ``mac`` (RFC 4291 app. A).

    >>> eui64_link_local("02:00:00:14:01:01")
    IPv6Address('fe80::ff:fe14:101')
    """
    octets = bytes.fromhex(mac.replace(":", ""))
    ident = bytes([octets[0] ^ 0x02, *octets[1:3], 0xFF, 0xFE, *octets[3:]])
    return IPv6Address(b"\xfe\x80" + bytes(6) + ident)


class Group(_Strict):
    """Endpoints selected by labels (all must match) or by name."""

    name: Name
    labels: dict[str, str] | None = None
    members: list[Name] | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> Group:
        if (self.labels is None) == (self.members is None):
            raise ValueError("a group selects by exactly one of labels or members")
        return self


def _not_empty(value: Any) -> Any:
    if isinstance(value, list) and not value:
        raise ValueError("an empty endpoint list selects nothing")
    return value


class Selector(_Strict):
    """One of: an endpoint, a list of endpoints, a group, a segment, or labels (all must match).

    Names are of the policy's own tenant; validation rejects a ``tenant/`` prefix.
    """

    endpoint: SelectorName | None = None
    endpoints: Annotated[list[SelectorName], BeforeValidator(_not_empty), Field(min_length=1)] | None = None
    group: SelectorName | None = None
    segment: SelectorName | None = None
    address_set: SelectorName | None = None
    labels: dict[str, str] | None = None
    #: An external network (``fabric.externals``): the peer is the outside, narrowed to
    #: ``cidr`` (default: every IPv4 address; an IPv6 prefix makes an IPv6 peer) minus
    #: ``except`` (prefixes of the same family).
    external: Name | None = None
    cidr: Annotated[IPv4Network | IPv6Network, BeforeValidator(_cidr_text)] | None = None
    #: At most :data:`MAX_EXCEPT` prefixes: cidr minus except is split into disjoint prefixes
    #: (up to 32 per excluded one), each a flow (and 3,000 of them took minutes to validate).
    except_: list[Annotated[IPv4Network | IPv6Network, BeforeValidator(_cidr_text)]] | None = Field(
        default=None,
        max_length=MAX_EXCEPT,
        validation_alias=AliasChoices("except", "except_"),
        serialization_alias="except",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Selector:
        kinds = ("endpoint", "endpoints", "group", "segment", "address_set", "labels", "external")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a selector names exactly one of endpoint, endpoints, group, segment, address_set, labels, "
                "external"
            )
        if self.external is None and (self.cidr is not None or self.except_ is not None):
            raise ValueError("cidr and except narrow an external peer: they need external")
        other = [str(p) for p in self.except_ or [] if p.version != self.family]
        if other:
            raise ValueError(f"except {', '.join(other)}: not of the peer's family (IPv{self.family})")
        return self

    @property
    def family(self) -> int:
        """An external peer's family: 6 when its ``cidr`` is an IPv6 prefix, else 4."""
        return 6 if self.cidr is not None and self.cidr.version == 6 else 4

    @property
    def outside(self) -> list[IPv4Network | IPv6Network]:
        """An external peer's addresses: ``cidr`` (default 0.0.0.0/0) minus ``except``, as
        the fewest disjoint prefixes, sorted (empty when ``except`` covers it all)."""
        return external_prefixes(self.cidr, self.except_ or [])

    def names(self) -> list[tuple[str, str]]:
        """``(kind, name)`` of every object the selector names (``endpoints`` counts as endpoint)."""
        out = [("endpoint", n) for n in ([self.endpoint] if self.endpoint else []) + (self.endpoints or [])]
        out += [
            (k, getattr(self, k)) for k in ("group", "segment", "address_set") if getattr(self, k) is not None
        ]
        return out

    def describe(self) -> str:
        if self.external is not None:
            text = f"external {self.external} {self.cidr or ANY_IPV4}"
            return text + (" except " + ",".join(map(str, self.except_)) if self.except_ else "")
        if self.labels is not None:
            return "labels " + ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        if self.endpoints is not None:
            return "endpoints " + ",".join(self.endpoints)
        for kind in ("endpoint", "group", "segment", "address_set"):
            value = getattr(self, kind)
            if value is not None:
                return f"{kind.replace('_', ' ')} {value}"
        return "nothing"


ANY_IPV4 = IPv4Network("0.0.0.0/0")


def external_prefixes(
    cidr: IPv4Network | IPv6Network | None, excluded: Sequence[IPv4Network | IPv6Network]
) -> list[IPv4Network | IPv6Network]:
    """``cidr`` (default every IPv4 address) minus ``excluded`` (of its family): the fewest
    disjoint prefixes, sorted (one sweep over the cuts in address order; each gap between
    them is summarized).

    >>> [str(n) for n in external_prefixes(None, [IPv4Network("0.0.0.0/1")])]
    ['128.0.0.0/1']
    >>> [str(n) for n in external_prefixes(IPv6Network("2000::/3"), [IPv6Network("2001:db8::/32")])][:2]
    ['2000::/16', '2001::/21']
    """
    whole = cidr or ANY_IPV4
    address = IPv6Address if whole.version == 6 else IPv4Address
    free, last = int(whole.network_address), int(whole.broadcast_address)  # free: first address left
    out: list[IPv4Network | IPv6Network] = []
    for cut in sorted(c for c in excluded if c.version == whole.version):
        if free > last:
            break
        low = int(cut.network_address)
        if low > free:
            out += summarize_address_range(address(free), address(min(low - 1, last)))
        free = max(free, int(cut.broadcast_address) + 1)
    if free <= last:
        out += summarize_address_range(address(free), address(last))
    return out


class AddressSet(_Strict):
    """A named set of a tenant's endpoints: by name, by CIDR (the endpoints whose address
    is inside), or both. Selectors name it as ``{address_set: NAME}``."""

    name: Name
    endpoints: list[Name] | None = None
    cidrs: list[Annotated[IPv4Network | IPv6Network, BeforeValidator(_cidr_text)]] | None = None

    @model_validator(mode="after")
    def _something(self) -> AddressSet:
        if not self.endpoints and not self.cidrs:
            raise ValueError("an address set names endpoints, cidrs or both")
        return self


#: Rule priorities: lower numbers are evaluated first (0 first, 999 last).
Priority = Annotated[int, Field(ge=0, le=999), BeforeValidator(_not_bool)]
#: Priority of a tenant policy that does not give one.
DEFAULT_POLICY_PRIORITY = 500


class Policy(_Strict):
    """A rule inside one tenant: ``allow`` (the default) or ``deny``. Policies are evaluated
    by ``priority`` (lower first; at one priority a deny beats an allow); a connection no
    policy allows is denied."""

    name: Name
    from_: Selector = Field(validation_alias=AliasChoices("from", "from_"), serialization_alias="from")
    to: Selector
    services: list[Service] = Field(default_factory=list)
    service_sets: list[Name] = Field(default_factory=list)
    action: Literal["allow", "deny"] = "allow"
    priority: Priority = DEFAULT_POLICY_PRIORITY
    stateful: bool = True
    log: bool = False

    @model_validator(mode="after")
    def _some_service(self) -> Policy:
        _services_given("policy", self.services, self.service_sets)
        return self


class Tenant(_Strict):
    """An isolated tenant: its segments, endpoints, groups, address sets and policies."""

    name: Name
    id: int | None = Field(default=None, ge=1, le=4095)
    gateway_mac: MacAddress | None = None
    segments: list[Segment] = Field(default_factory=list)
    endpoints: list[Endpoint] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)
    address_sets: list[AddressSet] = Field(default_factory=list)
    policies: list[Policy] = Field(default_factory=list)
    #: Per external network (by name), the public address the tenant's endpoints without a
    #: ``floating_ip`` share as their source to the outside (conntrack source NAT).
    snat: dict[Name, Annotated[IPv4Address, BeforeValidator(_address_text)]] = Field(default_factory=dict)


class SharedServiceProvider(_Strict):
    """The endpoints that offer a shared service, all in one tenant."""

    tenant: Name
    endpoints: list[Name] | None = None
    group: Name | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> SharedServiceProvider:
        if (self.endpoints is None) == (self.group is None):
            raise ValueError("a provider names exactly one of endpoints or group")
        return self


class SharedServiceConsumer(_Strict):
    """A consumer tenant, optionally narrowed to one of its groups."""

    tenant: Name
    group: Name | None = None


class SharedService(_Strict):
    """The only traffic that may cross tenants: consumers to provider endpoints."""

    name: Name
    provider: SharedServiceProvider
    consumers: list[SharedServiceConsumer] = Field(min_length=1)
    services: list[Service] = Field(default_factory=list)
    service_sets: list[Name] = Field(default_factory=list)
    log: bool = False

    @model_validator(mode="after")
    def _some_service(self) -> SharedService:
        _services_given("shared service", self.services, self.service_sets)
        return self


class GuardrailPeer(_Strict):
    """The endpoints one side of a guardrail selects: every endpoint, narrowed by any of
    ``tenant``, ``segment`` (by name, in every tenant that has one so named), ``cidr``
    (endpoints whose address is inside: IPv4, or the global IPv6 address for an IPv6
    prefix; addresses may repeat across tenants) and
    ``address_set`` (one of ``tenant``'s address sets)."""

    tenant: Name | None = None
    segment: Name | None = None
    cidr: Annotated[IPv4Network | IPv6Network, BeforeValidator(_cidr_text)] | None = None
    address_set: Name | None = None  # one of ``tenant``'s address sets (needs ``tenant``)

    def describe(self) -> str:
        keys = ("tenant", "segment", "cidr", "address_set")
        parts = [f"{k.replace('_', ' ')} {getattr(self, k)}" for k in keys if getattr(self, k) is not None]
        return ", ".join(parts) or "any endpoint"


class Guardrail(_Strict):
    """An admin-owned rule evaluated before every tenant policy (the guardrail tier).

    ``deny`` drops, ``allow`` admits (inside one tenant only: a guardrail never opens
    traffic between tenants), ``pass`` hands the connection over to the tenant tier.
    Guardrails are evaluated by ``priority`` (lower first; at one priority deny, then
    allow, then pass); ``scope: cross-segment`` limits one to pairs in different segments.
    """

    name: Name
    priority: Priority
    action: Literal["allow", "deny", "pass"]
    from_: GuardrailPeer = Field(
        default_factory=GuardrailPeer,
        validation_alias=AliasChoices("from", "from_"),
        serialization_alias="from",
    )
    to: GuardrailPeer = Field(default_factory=GuardrailPeer)
    scope: Literal["any", "cross-segment"] = "any"
    services: list[Service] = Field(default_factory=list)
    service_sets: list[Name] = Field(default_factory=list)
    log: bool = False

    @model_validator(mode="after")
    def _some_service(self) -> Guardrail:
        _services_given("guardrail", self.services, self.service_sets)
        return self


class Logging(_Strict):
    """Where decisions are logged: policies and shared services say ``log: true``; this
    adds the default deny and sets the per-switch rate of packets sent to the controller."""

    default_deny: bool = False
    pps: int = Field(default=100, ge=1, le=100_000)
    burst: int | None = Field(default=None, ge=1, le=1_000_000)


class Intent(_Strict):
    """A whole intent document."""

    version: Literal[1] = 1
    fabric: Fabric
    service_sets: list[ServiceSet] = Field(default_factory=list)
    logging: Logging = Field(default_factory=Logging)
    guardrails: list[Guardrail] = Field(default_factory=list)
    tenants: list[Tenant] = Field(default_factory=list)
    shared_services: list[SharedService] = Field(default_factory=list)
