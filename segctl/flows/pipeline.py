"""The segctl OpenFlow 1.3 pipeline: fixed tables, their fields, priority bands, metadata.

Every number here is part of the data-plane contract (the verifier, traces, golden
files and ``docs/pipeline.md`` rely on it) and never shifts when a feature is unused:
tables are spaced by 10 so that new stages fit in between.

Each :class:`Table` declares the match fields and action kinds its rules may use;
:meth:`Table.check` rejects anything else (Faucet ``valve_table`` style), so a compiler
bug surfaces as a :class:`~segctl.errors.CompileError` instead of a surprising flow.

Metadata layout (64 bits, only the low 32 used)::

    bits  0-11  TENANT   tenant id of the current context (= conntrack zone)
    bits 12-19  SEGMENT  segment index (1-based, per tenant) of the current context
    bits 20-31  ORIGIN   consumer tenant id of cross-tenant (shared service) traffic, else 0

Registers are not used. Conntrack zone of a tenant = its tenant id.
"""

from __future__ import annotations

from dataclasses import dataclass

from segctl.errors import CompileError

__all__ = [
    "ARP",
    "CLASSIFY",
    "CONTROLLER_METER",
    "CT_DST",
    "CT_SRC",
    "EGRESS",
    "FORWARD",
    "LOG_MAX_LEN",
    "MAX_SEGMENT_INDEX",
    "META_ORIGIN_MASK",
    "META_ORIGIN_SHIFT",
    "META_SEGMENT_MASK",
    "META_SEGMENT_SHIFT",
    "META_TENANT_MASK",
    "META_WRITE_MASK",
    "NAT_IN",
    "NAT_OUT",
    "ND_OPTION_TLL",
    "POLICY_DST",
    "POLICY_SRC",
    "PRIO_CONTROL",
    "PRIO_CT_ESTABLISHED",
    "PRIO_CT_INVALID",
    "PRIO_DEFAULT",
    "PRIO_DENY_SPECIFIC",
    "PRIO_ENDPOINT",
    "PRIO_EXTERNAL_ROUTE",
    "PRIO_GUARD",
    "PRIO_GUARDRAIL_BOTTOM",
    "PRIO_GUARDRAIL_TOP",
    "PRIO_INTRA_SEGMENT",
    "PRIO_PASS",
    "PRIO_POLICY_BOTTOM",
    "PRIO_POLICY_TOP",
    "PRIO_RESPONDER",
    "PRIO_SPECIFIC",
    "ROUTE",
    "SHARED_REPLY",
    "TABLES",
    "UPLINK_IN",
    "UPLINK_OUT",
    "Table",
    "metadata_value",
    "table_by_id",
]

# ------------------------------------------------------------------ metadata layout
META_TENANT_MASK = 0x0000_0FFF
META_SEGMENT_SHIFT = 12
META_SEGMENT_MASK = 0x000F_F000
META_ORIGIN_SHIFT = 20
META_ORIGIN_MASK = 0xFFF0_0000
#: Mask used by every write_metadata: the whole context (tenant, segment, origin).
META_WRITE_MASK = 0xFFFF_FFFF
MAX_SEGMENT_INDEX = 0xFF


def metadata_value(tenant: int, segment: int = 0, origin: int = 0) -> int:
    """The metadata word for a context; raises CompileError when a part does not fit."""
    if not 0 <= tenant <= META_TENANT_MASK or not 0 <= origin <= META_TENANT_MASK:
        raise CompileError(f"tenant id {tenant}/{origin} does not fit the 12-bit metadata field")
    if not 0 <= segment <= MAX_SEGMENT_INDEX:
        raise CompileError(f"segment index {segment} does not fit the 8-bit metadata field (max 255)")
    return tenant | (segment << META_SEGMENT_SHIFT) | (origin << META_ORIGIN_SHIFT)


# ------------------------------------------------------------------ priority bands
#: Explicit table-miss rule of every table (drop, or goto for pass-through tables).
#: The ND option an advertisement carries: the target link-layer address (the gateway's
#: advertisements in a segment and the fabric's on an uplink).
ND_OPTION_TLL = 2
PRIO_DEFAULT = 0

#: OpenFlow's controller meter (OFPM_CONTROLLER): rate-limits every packet a switch sends
#: to its controller; logged decisions are sent under it.
CONTROLLER_METER = 0xFFFFFFFE
#: Bytes of a logged packet sent to the controller (headers up to L4, with a VLAN tag).
LOG_MAX_LEN = 128
#: Generic pass-through of a stage (route: frames not sent to a gateway go on).
PRIO_PASS = 10
#: Generic rules of a stage (per tenant / per segment).
PRIO_GUARD = 100
#: Routes to an external network: PRIO_EXTERNAL_ROUTE + prefix length (longest prefix
#: first), between the gateway's unknown-destination drop and the host routes.
PRIO_EXTERNAL_ROUTE = 200
#: Per-endpoint rules (spoof guard, ARP delivery, forwarding, egress delivery).
PRIO_ENDPOINT = 1000
#: Specific exceptions above per-endpoint rules (gateway ARP reply, routes).
PRIO_SPECIFIC = 1500
#: Specific denials above everything of a stage (self traffic, TTL expiry, hairpin).
PRIO_DENY_SPECIFIC = 2500
#: The gateway ARP reply leaving through egress (above the self-traffic drop).
PRIO_RESPONDER = 2600
#: Policy tables: +inv drop, then established/related pass, then intra-segment allow,
#: then one priority per policy conjunction (PRIO_POLICY_TOP downwards).
PRIO_CT_INVALID = 4000
PRIO_CT_ESTABLISHED = 3900
#: Guardrails (and the tenant rules a ``pass`` hands over to, copied under it): one
#: priority per rule and context domain, from PRIO_GUARDRAIL_TOP downwards, above the
#: intra-segment allow and every tenant policy.
PRIO_GUARDRAIL_TOP = 3899
PRIO_GUARDRAIL_BOTTOM = 3501
PRIO_INTRA_SEGMENT = 3500
PRIO_POLICY_TOP = 3000
PRIO_POLICY_BOTTOM = 1001
#: Rules that send to the controller carry a meter, except policy_src's logged decisions
#: (capped by the switch's controller meter, :data:`CONTROLLER_METER`).
PRIO_CONTROL = 5000


# ------------------------------------------------------------------ tables
_COMMON_MATCH = frozenset({"proto"})


@dataclass(frozen=True)
class Table:
    """One pipeline stage: its number, name, and the fields / actions it may use."""

    id: int
    name: str
    purpose: str
    match_fields: frozenset[str]
    actions: frozenset[str]
    miss: str

    def check(self, match_fields: set[str], action_kinds: set[str], where: str) -> None:
        """Raise CompileError if a rule uses a field or action this table does not declare."""
        extra = match_fields - self.match_fields - _COMMON_MATCH
        if extra:
            raise CompileError(f"{where}: table {self.id} ({self.name}) may not match {sorted(extra)}")
        bad = action_kinds - self.actions
        if bad:
            raise CompileError(f"{where}: table {self.id} ({self.name}) may not use actions {sorted(bad)}")


def _t(id_: int, name: str, purpose: str, match: str, actions: str, miss: str) -> Table:
    return Table(id_, name, purpose, frozenset(match.split()), frozenset(actions.split()), miss)


CLASSIFY = _t(
    0, "classify",
    "spoof guard on edge ports (bound MAC/IP/ARP, untagged; RA guard), VLAN admission on "
    "fabric ports, the uplink of an external network (IPv4 and ARP to its public range, IPv6 "
    "and neighbour solicitations to endpoints reached over IPv6); sets the tenant/segment "
    "context in metadata",
    "in_port dl_src vlan_tci nw_src nw_dst arp_op arp_sha arp_spa arp_tpa ipv6_src ipv6_dst icmp_type "
    "nd_target",
    "meter write_metadata pop_vlan goto_table drop",
    "drop",
)  # fmt: skip
ARP = _t(
    10, "arp",
    "ARP/ND from edge ports: the gateway IP (and gateway6, by a neighbour advertisement) is "
    "answered with the tenant gateway MAC, other requests and replies (neighbour solicitations "
    "and advertisements) are made unicast to the owner inside the segment; other IPv6 goes to "
    "ct_src",
    "in_port metadata arp_op arp_tpa nd_target icmp_type ipv6_src ipv6_dst",
    "set_field goto_table drop",
    "drop",
)  # fmt: skip
CT_SRC = _t(
    20, "ct_src",
    "IPv4 and IPv6 from edge ports enter conntrack in the source tenant's zone",
    "metadata",
    "ct drop",
    "drop",
)  # fmt: skip
POLICY_SRC = _t(
    30, "policy_src",
    "policy at the source endpoint: +inv drops, established/related pass, new and allowed "
    "connections are committed (stateful) or passed (stateless); default drop. Logged "
    "decisions also send the packet's head to the controller (under the controller meter)",
    "metadata ct_state nw_src nw_dst tcp_dst udp_dst icmp_type icmp_code ipv6_src ipv6_dst conj_id",
    "ct conjunction goto_table drop controller",
    "drop",
)  # fmt: skip
ROUTE = _t(
    40, "route",
    "distributed gateway: frames to the tenant gateway MAC are routed to the destination "
    "endpoint (MAC rewrite, TTL or hop limit decrement, new context); other frames pass to "
    "forward",
    "metadata ct_state dl_dst nw_src nw_dst nw_ttl ipv6_src ipv6_dst conj_id",
    "set_field dec_ttl write_metadata goto_table ct conjunction drop",
    "drop",
)  # fmt: skip
SHARED_REPLY = _t(
    45, "shared_reply",
    "replies of shared services: find the consumer tenant whose zone holds the connection "
    "(consumer address spaces may overlap) and route the reply to it, IPv4 or IPv6",
    "ct_zone ct_state nw_src nw_dst ipv6_src ipv6_dst",
    "set_field dec_ttl write_metadata goto_table ct drop",
    "drop",
)  # fmt: skip
NAT_IN = _t(
    46, "nat_in",
    "from an uplink: the router's ARP for a public address answered; a floating IP "
    "translated to its endpoint (DNAT committed in the tenant's NAT zone), an SNAT address "
    "looked up with nat (a reply is translated back); IPv6 to an endpoint looked up in its "
    "tenant's NAT zone, the router's solicitation for it turned into an advertisement",
    "metadata nw_dst arp_op arp_sha arp_tpa ipv6_dst dl_src icmp_type nd_target",
    "ct set_field output goto_table drop",
    "drop",
)  # fmt: skip
UPLINK_IN = _t(
    47, "uplink_in",
    "from an uplink, after NAT: a destination that is now a tenant's endpoint (by NAT zone) "
    "is routed to its context (IPv6 by its own address); the fabric's advertisements get "
    "their link-layer address and go back out",
    "metadata ct_zone ct_state nw_dst ipv6_dst icmp_type nd_target",
    "set_field dec_ttl write_metadata goto_table output drop",
    "drop",
)  # fmt: skip
FORWARD = _t(
    50, "forward",
    "per context and destination MAC: local delivery (to ct_dst or egress) or push the "
    "segment VLAN and output on the shortest path's fabric port; a transit context toward its "
    "uplink (nat_out at the uplink's switch)",
    "metadata dl_src dl_dst",
    "push_vlan set_field output write_metadata goto_table drop",
    "drop",
)  # fmt: skip
NAT_OUT = _t(
    52, "nat_out",
    "toward an uplink: the source becomes the endpoint's floating IP or the tenant's SNAT "
    "address (conntrack NAT in the tenant's NAT zone); IPv6 keeps its own source (tracked)",
    "metadata nw_src ipv6_src",
    "ct drop",
    "drop",
)  # fmt: skip
UPLINK_OUT = _t(
    53, "uplink_out",
    "translated packets (public source, tracked) leave to the upstream router; IPv6 from "
    "an endpoint's own global address",
    "metadata ct_state nw_src ipv6_src",
    "set_field output drop",
    "drop",
)  # fmt: skip
CT_DST = _t(
    60, "ct_dst",
    "IPv4 and IPv6 for a local endpoint enter conntrack in the destination tenant's zone; "
    "neighbour discovery from a segment peer goes straight to egress",
    "metadata icmp_type",
    "ct goto_table drop",
    "drop",
)  # fmt: skip
POLICY_DST = _t(
    70, "policy_dst",
    "policy at the destination endpoint, same shape as policy_src",
    "metadata ct_state nw_src nw_dst tcp_dst udp_dst icmp_type icmp_code ipv6_src ipv6_dst conj_id",
    "ct conjunction goto_table drop",
    "drop",
)  # fmt: skip
EGRESS = _t(
    80, "egress",
    "egress guard: output to an edge port only when the context is the endpoint's tenant and "
    "segment and the frame is addressed to it (MAC and IP / ARP target); self traffic drops, "
    "but the gateway's ARP reply and neighbour advertisement (its nd_tll written here) go back",
    "in_port metadata dl_dst nw_dst arp_op arp_sha arp_spa arp_tpa ipv6_src ipv6_dst nd_target icmp_type",
    "set_field output drop",
    "drop",
)  # fmt: skip

#: Every table, in pipeline order.
TABLES: tuple[Table, ...] = (
    CLASSIFY, ARP, CT_SRC, POLICY_SRC, ROUTE, SHARED_REPLY, NAT_IN, UPLINK_IN, FORWARD, NAT_OUT, UPLINK_OUT,
    CT_DST, POLICY_DST, EGRESS,
)  # fmt: skip
_BY_ID = {t.id: t for t in TABLES}


def table_by_id(table: int) -> Table:
    """The :class:`Table` numbered ``table``; CompileError for an unknown number."""
    try:
        return _BY_ID[table]
    except KeyError:
        raise CompileError(f"table {table} is not a segctl pipeline table") from None
