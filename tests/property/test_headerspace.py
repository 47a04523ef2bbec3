"""BDD header spaces: building, rewriting, projecting, picking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segctl.openflow.ofctl import LOCAL, parse_flow
from segctl.verifier.headerspace import (
    BACKEND,
    FIELDS,
    PACKET_FIELDS,
    PIPELINE_FIELDS,
    HeaderSpace,
)

HS = HeaderSpace()
#: A manager for tables that also rewrite IPv6 and neighbour-discovery headers (an NA responder).
HS6 = HeaderSpace(rewritable=[*HS.rewritable, "ipv6_src", "ipv6_dst", "icmpv6_type", "nd_tll", "nd_reserved",
                              "nd_options_type", "nd_target", "nd_sll"])  # fmt: skip
HEADER = [f for f in PACKET_FIELDS if f not in PIPELINE_FIELDS]


def test_backend_and_fixed_order() -> None:
    assert BACKEND == "cudd"
    assert HS.bdd.configure()["reordering"] is False
    order = sorted(HS.bdd.vars, key=HS.bdd.level_of_var)
    assert order[:2] == ["in_port_0", "in_port_1"]
    assert order.index("eth_src_0") + 1 == order.index("o.eth_src_0")  # ghost interleaved
    assert order.index("metadata_63") < order.index("reg0_0") < order.index("ct_state_0")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(PACKET_FIELDS)), st.data())
def test_eq_pick_round_trip(name: str, data: st.DataObject) -> None:
    width = FIELDS[name]
    value = data.draw(st.integers(0, (1 << width) - 1))
    mask = data.draw(st.integers(0, (1 << width) - 1))
    space = HS6.eq(name, value, mask)
    packet = HS6.pick(space)
    assert packet[name] & mask == value & mask
    assert set(packet) == set(PACKET_FIELDS)
    assert HS6.is_empty(space & ~HS6.eq(name, packet[name]) & HS6.eq(name, packet[name]))
    # A value outside the field is an empty space, never a silent truncation.
    assert HS6.is_empty(HS6.eq(name, 1 << width))


def test_match_maps_aliases_and_masks() -> None:
    flow = parse_flow("arp,arp_spa=10.0.0.0/24,arp_tpa=10.0.0.1,dl_vlan=5,actions=drop")
    space = HS.match(flow.match)
    packet = HS.pick(space)
    assert (
        packet["eth_type"] == 0x0806 and packet["ip_src"] >> 8 == 0x0A0000 and packet["ip_dst"] == 0x0A000001
    )
    assert packet["vlan_present"] == 1 and packet["vlan_vid"] == 5
    # 256 sources x 1 destination, everything else free.
    only = HS.forget(space, [f for f in FIELDS if f != "ip_src"])
    assert HS.bdd.count(only, nvars=32) == 256
    tcp = HS.match(parse_flow("tcp,tcp_dst=0x1f90/0xfff0,actions=drop").match)
    assert HS.bdd.count(HS.forget(tcp, [f for f in FIELDS if f != "tp_dst"]), nvars=16) == 16


def test_special_fields() -> None:
    assert HS.is_empty(HS.match(parse_flow("ip,ct_state=+snat,actions=drop").match))
    assert not HS.is_empty(HS.match(parse_flow("ip,ct_state=-snat+trk,actions=drop").match))
    local = HS.match(parse_flow("in_port=LOCAL,actions=drop").match)
    assert HS.pick(local)["in_port"] == 0xFFFE and LOCAL == 0xFFFFFFFE
    untagged = HS.match(parse_flow("vlan_tci=0,actions=drop").match)
    assert HS.pick(untagged)["vlan_present"] == 0
    with pytest.raises(ValueError, match="conj_id"):
        HS.match(parse_flow("conj_id=3,actions=drop").match)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([*HS6.rewritable, "reg3", "metadata"]), st.data())
def test_set_field_keeps_origin(name: str, data: st.DataObject) -> None:
    width = FIELDS[name]
    before = data.draw(st.integers(0, (1 << width) - 1))
    after = data.draw(st.integers(0, (1 << width) - 1))
    space = HS6.identity() & HS6.eq(name, before) & HS6.eq("eth_type", 0x86DD)
    rewritten = HS6.set_field(space, name, after)
    origin, now = HS6.pick_pair(rewritten)
    assert now[name] == after
    if name in HS6.rewritable:
        assert origin[name] == before
        assert HS6.origin(rewritten) == HS6.origin(space)
    assert HS6.final(rewritten) == HS6.final(HS6.forget(space, [name]) & HS6.eq(name, after))


def test_rewritable_fields_are_the_managers() -> None:
    assert "ipv6_src" not in HS.rewritable and "o.ipv6_src_0" not in HS.bdd.vars
    assert "ipv6_src" in HS6.rewritable and "icmp_type" in HS6.rewritable  # icmpv6_type is icmp_type
    order = sorted(HS6.bdd.vars, key=HS6.bdd.level_of_var)
    assert order.index("nd_tll_47") + 1 == order.index("o.nd_tll_47")  # ghost interleaved
    with pytest.raises(ValueError, match="not tracked"):
        HS.set_field(HS.true, "ipv6_dst", 1)  # its origin would be lost
    with pytest.raises(ValueError, match="not tracked"):
        HS.set_fields(HS.true, [("eth_src", 1), ("nd_tll", 2)])
    with pytest.raises(ValueError, match="not header fields"):
        HeaderSpace(rewritable=["metadata"])
    # the NA-only fields are declared only when asked for (or rewritable): 88 variables less
    assert "nd_reserved_0" not in HS.bdd.vars and HS.pick(HS.true)["nd_reserved"] == 0
    with pytest.raises(ValueError, match="not in this manager"):
        HS.eq("nd_options_type", 2)
    assert HS.forget(HS.eq("eth_type", 0x86DD), ["nd_tll", "eth_type"]) == HS.true
    assert "nd_options_type_7" in HeaderSpace(optional=["nd_options_type"]).bdd.vars


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_write_masked(old: int, value: int, mask: int) -> None:
    space = HS.eq("metadata", old)
    written = HS.write_masked(space, "metadata", value, mask)
    assert HS.pick(written)["metadata"] == (old & ~mask) | (value & mask)
    assert HS.bdd.count(HS.forget(written, [f for f in FIELDS if f != "metadata"]), nvars=64) == 1


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 255))
def test_dec_ttl(ttl: int) -> None:
    space = HS.injected(1) & HS.eq("nw_ttl", ttl)
    alive, expired = HS.dec_ttl(space)
    if ttl <= 1:
        assert HS.is_empty(alive) and expired == space
    else:
        assert HS.is_empty(expired)
        origin, now = HS.pick_pair(alive)
        assert (origin["nw_ttl"], now["nw_ttl"]) == (ttl, ttl - 1)


def test_dec_ttl_on_all_ttls_is_a_bijection() -> None:
    alive, expired = HS.dec_ttl(HS.true)
    ttl_only = HS.forget(alive, [f for f in FIELDS if f != "nw_ttl"])
    assert HS.bdd.count(ttl_only, nvars=8) == 254  # 1..254
    assert HS.is_empty(alive & HS.eq("nw_ttl", 255))
    assert HS.bdd.count(HS.forget(expired, [f for f in FIELDS if f != "nw_ttl"]), nvars=8) == 2


def test_reset_pipeline_and_restrict() -> None:
    space = HS.injected(3) & HS.eq("metadata", 0x1234) | HS.injected(3)
    space = HS.write_masked(space, "metadata", 0xFF, 0xFF) & HS.eq("eth_type", 0x0800)
    moved = HS.reset_pipeline(space, 9)
    packet = HS.pick(moved)
    assert (packet["in_port"], packet["metadata"], packet["eth_type"]) == (9, 0, 0x0800)
    one = {name: 0 for name in HEADER} | {"eth_type": 0x0800, "ip_src": 5}
    assert not HS.is_empty(HS.restrict(moved, one, ghost=True))
    assert HS.is_empty(HS.restrict(moved, one | {"eth_type": 0x86DD}, ghost=True))


def test_describe_and_empty_pick() -> None:
    assert HS.describe(HS.false) == "(empty)"
    assert HS.describe(HS.true) == "(all packets)"
    text = HS.describe(HS.eq("ip_dst", 0x0A010203) & HS.eq("tp_dst", 80, 0xFFF0))
    assert text == "ip_dst=10.1.2.3,tp_dst∈{16 values}"
    with pytest.raises(ValueError, match="empty"):
        HS.pick(HS.false)
