"""ovs-ofctl text parser: normalization, errors, format/parse identity, real-OVS round trip."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.vocabulary import PARSER_VOCABULARY as VOCABULARY

from segctl.errors import FlowSyntaxError, UnsupportedFlowError
from segctl.openflow.ofctl import (
    FIELD_WIDTHS,
    IN_PORT,
    LOCAL,
    Conjunction,
    Controller,
    Ct,
    DecTtl,
    Drop,
    FieldMatch,
    Flow,
    GotoTable,
    Meter,
    Nat,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    WriteMetadata,
    format_flow,
    parse_flow,
    parse_flows,
)

#: The whole vocabulary the compiler uses, in add-flows syntax (OVS accepts every line).


def _counter(flows: list[Flow]) -> Counter[Flow]:
    return Counter(flows)


# ------------------------------------------------------------------ normalization


def test_aliases_unify() -> None:
    a = parse_flow("table=1,priority=5,dl_type=0x0800,nw_proto=6,tp_dst=80,nw_src=10.0.0.0/24,actions=drop")
    b = parse_flow("table=1, priority=5,tcp,ip_src=10.0.0.0/255.255.255.0,tcp_dst=80 actions=drop")
    assert a == b
    assert a.get("tcp_dst") == FieldMatch("tcp_dst", 80, 0xFFFF)
    assert a.get("ip_src") == FieldMatch("ip_src", 0x0A000000, 0xFFFFFF00)
    assert a.get("tp_dst") is None


def test_protocol_decides_port_and_address_fields() -> None:
    udp = parse_flow("udp,tp_src=53,actions=drop")
    assert udp.get("udp_src") == FieldMatch("udp_src", 53, 0xFFFF) and udp.get("tcp_src") is None
    arp = parse_flow("dl_type=0x0806,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_proto=2,actions=drop")
    assert [m.field for m in arp.match] == ["eth_type", "arp_op", "arp_spa", "arp_tpa"]
    icmp6 = parse_flow("icmp6,icmp_type=135,actions=drop")
    assert icmp6.get("icmpv6_type") == FieldMatch("icmpv6_type", 135, 0xFF)


def test_vlan_forms() -> None:
    def vlan(text: str) -> FieldMatch | None:
        return parse_flow(f"{text},actions=drop").get("vlan_tci")

    assert vlan("dl_vlan=101") == vlan("vlan_vid=0x1065") == FieldMatch("vlan_tci", 0x1065, 0x1FFF)
    assert (
        vlan("dl_vlan=0xffff")
        == vlan("vlan_tci=0")
        == vlan("vlan_vid=0")
        == FieldMatch("vlan_tci", 0, 0x1FFF)
    )
    assert vlan("vlan_vid=0x1000/0x1000") == FieldMatch("vlan_tci", 0x1000, 0x1000)
    with pytest.raises(UnsupportedFlowError, match="PCP"):
        vlan("vlan_tci=0x3064")


def test_actions_typed_and_ordered() -> None:
    f = parse_flow(
        "table=3,ip,actions=goto_table:9,write_metadata:0x5/0xf,meter:2,dec_ttl,strip_vlan,"
        "mod_vlan_vid:7,ct(table=4,commit,zone=0x10),conjunction(0x20,2/3),output:in_port"
    )
    assert f.actions == (
        Meter(2),
        DecTtl(),
        PopVlan(),
        PushVlan(0x8100),
        SetField("vlan_vid", 7),
        Ct(commit=True, zone=16, table=4),
        Conjunction(32, 2, 3),
        Output(IN_PORT),
        WriteMetadata(5, 0xF),
        GotoTable(9),
    )
    assert parse_flow("actions=").actions == parse_flow("actions=drop").actions == (Drop(),)
    assert parse_flow("actions=output:CONTROLLER").actions == (Controller(65535),)
    assert parse_flow("actions=LOCAL").actions == (Output(LOCAL),)


def test_dump_lines_with_stats_and_headers() -> None:
    text = (
        "OFPST_FLOW reply (OF1.3) (xid=0x2):\n"
        " cookie=0x2a, duration=11.131s, table=7, n_packets=3, n_bytes=180, idle_timeout=30, "
        "reset_counts priority=13,ipv6 actions=drop\n"
        "\n# a comment\n"
        "NXST_FLOW reply (xid=0x4):\n"
        " table=7, priority=12,ip actions=output:1\n"
    )
    flows = parse_flows(text)
    assert [(f.table, f.priority, f.cookie, f.line) for f in flows] == [(7, 13, 0x2A, 2), (7, 12, 0, 6)]


@pytest.mark.parametrize(
    ("line", "token"),
    [
        ("tcp,tcp_flags=+syn,actions=drop", "tcp_flags"),
        ("ip,nw_tos=0,actions=drop", "nw_tos"),
        ("actions=resubmit(,3)", "resubmit"),
        ("actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]", "move"),
        ("actions=load:0x1->NXM_NX_REG2[0..7]", "load"),
        ("ip,actions=ct(commit,exec(set_field:1->ct_mark))", "exec"),
        ("actions=set_field:0x1/0xff->reg2", "set_field"),
        ("actions=set_field:10.0.0.1->ip_src", "ip_src"),
        ("in_port=eth0,actions=drop", "eth0"),
        ("actions=output:eth0", "eth0"),
        ("actions=push_vlan:0x88a8", "push_vlan"),
        ("frobnicate,actions=drop", "frobnicate"),
    ],
)
def test_unsupported_is_an_error_naming_line_and_token(line: str, token: str) -> None:
    with pytest.raises(UnsupportedFlowError) as info:
        parse_flows(f"table=0,actions=drop\n{line}\n", source="s1")
    assert "s1:2" in str(info.value) and token in str(info.value)


@pytest.mark.parametrize(
    "line",
    [
        "priority=1,ip",  # no actions
        "ip,actions=ct(commit,nat(src=10.0.0.1,frobnicate),table=1)",
        "ip,actions=ct(zone=1,nat(src=10.0.0.1),table=1)",  # a range needs commit (OVS)
        "actions=ct(zone=1,nat,table=1)",  # nat needs ip or ipv6 in the match (OVS)
        "ip,actions=ct(commit,nat(src=[fd00::1]),table=1)",  # family of the match
        "ip,actions=ct(commit,nat(src=10.0.0.9-10.0.0.1),table=1)",
        "ip,actions=ct(commit,nat(src=10.0.0.1,hash,random),table=1)",
        "ip,actions=ct(commit,nat(src=10.0.0.1:0),table=1)",
        "ip,actions=ct(commit,nat,nat,table=1)",
        "ip,actions=ct(commit,nat(random),table=1)",
        "tp_dst=80,actions=drop",  # prerequisites
        "ip,nw_src=10.0.0.300,actions=drop",
        "dl_src=02:00:00:00:00,actions=drop",
        "actions=drop,output:1",
        "actions=conjunction(1,3/2)",
        "actions=ct(commit",
        "priority=70000,actions=drop",
        "ip,nw_src=10.0.0.1,ip_src=10.0.0.2,actions=drop",
        "actions=set_field:100->vlan_vid",
        "conj_id=0x1/0x1,actions=drop",
        "ip,actions=goto_table:1,goto_table:2",
        # OVS's prerequisites of neighbour discovery and of set_field (ovs-ofctl refuses the
        # set_field ones with OFPBAC_MATCH_INCONSISTENT and drops the match ones)
        "icmp6,nd_target=fd00::1,actions=drop",  # ND: icmp_type 135 or 136
        "icmp6,icmp_type=135,icmp_code=1,nd_reserved=5,actions=drop",  # ND: code 0
        "icmp6,icmp_type=135,nd_tll=02:00:00:00:00:01,actions=drop",  # nd_tll: an advertisement
        "icmp6,icmp_type=136,nd_sll=02:00:00:00:00:01,actions=drop",  # nd_sll: a solicitation
        "icmp6,icmp_type=136,nd_reserved=0xe0000000/0xe0000000,actions=drop",  # not maskable
        "icmp6,icmp_type=136,nd_options_type=256,actions=drop",
        "icmp6,icmp_type=135,actions=set_field:2->nd_options_type,set_field:02:5e:00:00:00:01->nd_tll,IN_PORT",
        "icmp6,icmp_type=128,actions=set_field:0->nd_reserved,IN_PORT",
        "icmp6,icmp_type=135,actions=set_field:136->icmp_type,IN_PORT",  # ICMPv4's field
        "ipv6,actions=set_field:136->icmpv6_type,IN_PORT",
        "ip,actions=set_field:fd00::1->ipv6_src,IN_PORT",
        "ip,actions=set_field:2->arp_op,IN_PORT",
        "icmp6,icmp_type=135,actions=set_field:0x100->nd_options_type,IN_PORT",
    ],
)
def test_malformed_is_a_syntax_error_with_line(line: str) -> None:
    with pytest.raises(FlowSyntaxError, match=r"^f\.txt:3: "):
        parse_flows(f"\n# x\n{line}\n", source="f.txt")


# ------------------------------------------------------------ format / parse identity


def _terms() -> st.SearchStrategy[dict[str, tuple[int, int]]]:
    def term(name: str) -> st.SearchStrategy[tuple[int, int]]:
        width = FIELD_WIDTHS[name]
        return st.tuples(st.integers(0, (1 << width) - 1), st.integers(1, (1 << width) - 1)).map(
            lambda vm: (vm[0] & vm[1], vm[1])
        )

    def exact(name: str) -> st.SearchStrategy[tuple[int, int]]:
        full = (1 << FIELD_WIDTHS[name]) - 1
        return st.integers(0, full).map(lambda v: (v, full))

    common = {n: term(n) for n in ["metadata", "reg0", "reg5", "eth_src", "eth_dst"]}
    return st.fixed_dictionaries(
        {}, optional={**common, "conj_id": exact("conj_id"), "ct_zone": exact("ct_zone")}
    )


def _settable(proto: str, icmp6_type: int | None) -> list[str]:
    """Header fields a flow of ``proto`` (and ICMPv6 type) may ``set_field`` (OVS's prerequisites)."""
    out = {"arp": ["arp_sha", "arp_tpa", "arp_op"], "icmp": ["icmp_type", "icmp_code"]}.get(proto, [])
    if proto in ("ipv6", "icmp6"):
        out += ["ipv6_src", "ipv6_dst"]
    if proto == "icmp6":
        out += ["icmpv6_type", "icmpv6_code"]
    if icmp6_type in (135, 136):
        out += ["nd_target", "nd_reserved", "nd_options_type", "nd_sll" if icmp6_type == 135 else "nd_tll"]
    return out or ["eth_src"]


@st.composite
def flows(draw: st.DrawFn) -> Flow:
    terms = draw(_terms())
    proto = draw(st.sampled_from(["none", "ip", "tcp", "udp", "icmp", "arp", "ipv6", "icmp6"]))
    eth = {
        "ip": 0x800,
        "tcp": 0x800,
        "udp": 0x800,
        "icmp": 0x800,
        "arp": 0x806,
        "ipv6": 0x86DD,
        "icmp6": 0x86DD,
    }
    if proto in eth:
        terms["eth_type"] = (eth[proto], 0xFFFF)
    ip_num = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58}
    if proto in ip_num:
        terms["ip_proto"] = (ip_num[proto], 0xFF)
    prefix = st.integers(0, 32).map(lambda n: (0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF)
    addr = st.tuples(st.integers(0, 2**32 - 1), prefix).filter(lambda vm: vm[1] != 0)
    if proto in ("ip", "tcp", "udp", "icmp") and draw(st.booleans()):
        terms["ip_src"] = (lambda vm: (vm[0] & vm[1], vm[1]))(draw(addr))
    if proto in ("tcp", "udp"):
        port = draw(st.integers(0, 0xFFFF))
        terms[f"{proto}_dst"] = (port, 0xFFFF)
    if proto == "arp":
        terms["arp_op"] = (draw(st.integers(1, 2)), 0xFFFF)
        terms["arp_tpa"] = (draw(st.integers(0, 2**32 - 1)), 0xFFFFFFFF)
    icmp6_type = draw(st.sampled_from([None, 128, 135, 136])) if proto == "icmp6" else None
    if icmp6_type is not None:
        terms["icmpv6_type"] = (icmp6_type, 0xFF)
        if icmp6_type == 136 and draw(st.booleans()):
            terms["nd_tll"] = (draw(st.integers(0, 2**48 - 1)), (1 << 48) - 1)
            terms["nd_options_type"] = (2, 0xFF)
    if draw(st.booleans()):
        terms["ct_state"] = draw(st.sampled_from([(0x21, 0x21), (0x22, 0x33), (0, 0x20), (0x30, 0x30)]))
    if draw(st.booleans()):
        terms["vlan_tci"] = draw(st.sampled_from([(0, 0x1FFF), (0x1000, 0x1000), (0x1065, 0x1FFF)]))
    match = tuple(
        sorted(
            (FieldMatch(k, v, m) for k, (v, m) in terms.items()),
            key=lambda t: list(FIELD_WIDTHS).index(t.field),
        )
    )
    applied = st.one_of(
        st.builds(Output, st.one_of(st.integers(1, 0xFF00), st.sampled_from([IN_PORT, LOCAL]))),
        st.builds(Controller, st.integers(0, 65535)),
        st.just(DecTtl()),
        st.just(PopVlan()),
        st.tuples(st.just(PushVlan()), st.builds(SetField, st.just("vlan_vid"), st.integers(0, 4095))),
        st.builds(SetField, st.sampled_from(["eth_src", "eth_dst"]), st.integers(0, 2**48 - 1)),
        st.builds(SetField, st.just("reg1"), st.integers(0, 0xFFFF)),
        st.builds(SetField, st.sampled_from(_settable(proto, icmp6_type)), st.integers(0, 0xFF)),
        st.builds(Ct, st.booleans(), st.integers(0, 0xFFFF), st.one_of(st.none(), st.integers(0, 254))),
        st.builds(Conjunction, st.integers(0, 2**32 - 1), st.just(1), st.integers(2, 8)),
    )
    actions: list[object] = []
    for item in draw(st.lists(applied, max_size=4)):
        actions.extend(item if isinstance(item, tuple) else [item])
    if draw(st.booleans()):
        actions.insert(0, Meter(draw(st.integers(1, 100))))
    if draw(st.booleans()):
        actions.append(
            WriteMetadata(
                *(lambda v, m: (v & m, m))(draw(st.integers(0, 2**64 - 1)), draw(st.integers(1, 2**64 - 1)))
            )
        )
    if draw(st.booleans()):
        actions.append(GotoTable(draw(st.integers(0, 254))))
    return Flow(
        table=draw(st.integers(0, 254)),
        priority=draw(st.integers(0, 65535)),
        cookie=draw(st.integers(0, 2**64 - 1)),
        match=match,
        actions=tuple(actions) or (Drop(),),  # type: ignore[arg-type]
    )


@settings(max_examples=300, deadline=None)
@given(flows())
def test_format_then_parse_is_identity(flow: Flow) -> None:
    text = format_flow(flow)
    assert parse_flow(text) == flow, text
    assert format_flow(parse_flow(text)) == text


#: A gateway's neighbour-advertisement responder rule (add-flows text) and how
#: ``ovs-ofctl -O OpenFlow13`` 3.1 prints it back (``parse-flow``; ``dump-flows`` prints the
#: same match and actions): ``icmp_type`` for the ICMPv6 match, ``set_field:…->icmpv6_type``,
#: ``nd_reserved`` in decimal.
NA_RESPONDER = (
    "table=10,priority=200,in_port=1,metadata=0x1001/0xffffffff,icmp6,icmp_type=135,ipv6_src=fd00:1:1::11,"
    "nd_target=fd00:1:1::1,actions=set_field:02:00:00:00:01:11->eth_dst,set_field:02:5e:00:00:00:01->eth_src,"
    "set_field:fd00:1:1::1->ipv6_src,set_field:fd00:1:1::11->ipv6_dst,set_field:136->icmpv6_type,"
    "set_field:0xe0000000->nd_reserved,set_field:2->nd_options_type,goto_table:80"
)
NA_RESPONDER_DUMP = (
    " cookie=0x0, duration=3.101s, table=10, n_packets=0, n_bytes=0, priority=200,icmp6,"
    "metadata=0x1001/0xffffffff,in_port=1,ipv6_src=fd00:1:1::11,icmp_type=135,nd_target=fd00:1:1::1 "
    "actions=set_field:02:00:00:00:01:11->eth_dst,"
    "set_field:02:5e:00:00:00:01->eth_src,set_field:fd00:1:1::1->ipv6_src,set_field:fd00:1:1::11->ipv6_dst,"
    "set_field:136->icmpv6_type,set_field:3758096384->nd_reserved,set_field:2->nd_options_type,goto_table:80"
)
NA_ADVERT_DUMP = (
    "table=3, priority=7,icmp6,icmp_type=136,nd_tll=02:5e:00:00:00:01,nd_reserved=3758096384,"
    "nd_options_type=2 "
    "actions=set_field:02:5e:00:00:00:09->nd_tll,set_field:0->nd_options_type,set_field:fd00::9->nd_target,"
    "set_field:0->icmpv6_code,output:1"
)


def test_neighbour_advertisement_fields_round_trip() -> None:
    flow = parse_flow(NA_RESPONDER)
    assert parse_flow(NA_RESPONDER_DUMP) == flow
    assert parse_flow(format_flow(flow)) == flow
    v6 = int(ipaddress.IPv6Address("fd00:1:1::1"))
    assert flow.actions[2:] == (
        SetField("ipv6_src", v6),
        SetField("ipv6_dst", v6 + 0x10),
        SetField("icmpv6_type", 136),
        SetField("nd_reserved", 0xE0000000),
        SetField("nd_options_type", 2),
        GotoTable(80),
    )
    assert "set_field:3758096384->nd_reserved" in format_flow(flow)  # decimal, as OVS prints it
    advert = parse_flow(NA_ADVERT_DUMP)
    assert [(t.field, t.value) for t in advert.match][-3:] == [
        ("nd_tll", 0x025E00000001),
        ("nd_reserved", 0xE0000000),
        ("nd_options_type", 2),
    ]
    assert advert.actions[0] == SetField("nd_tll", 0x025E00000009)
    assert parse_flow(format_flow(advert)) == advert
    assert "nd_tll=02:5e:00:00:00:01,nd_reserved=3758096384,nd_options_type=2" in format_flow(advert)


def test_ct_nat_forms() -> None:
    """``nat`` inside ``ct()``: ranges of either family, ports, flags in the order OVS prints them."""
    snat = parse_flow("ip,actions=ct(commit,zone=7,nat(src=198.51.100.7-198.51.100.9:1024-65535),table=3)")
    assert snat.actions == (Ct(True, 7, 3, Nat("src", 4, 0xC6336407, 0xC6336409, 1024, 65535)),)
    assert parse_flow("ip,actions=ct(zone=7,nat,table=3)").actions == (Ct(False, 7, 3, Nat()),)
    dnat = parse_flow("tcp,actions=ct(commit,nat(dst=10.0.0.2:80,random,persistent),table=3)")
    assert dnat.actions[0].nat == Nat("dst", 4, 0x0A000002, 0x0A000002, 80, 80, ("persistent", "random"))
    v6 = parse_flow("ipv6,actions=ct(commit,nat(src=2001:db8::1),table=3)").actions[0].nat
    assert (v6.family, v6.low, v6.port_low) == (6, int(ipaddress.IPv6Address("2001:db8::1")), None)
    for flow in (snat, dnat):
        assert parse_flow(format_flow(flow)) == flow
    assert "nat(dst=10.0.0.2:80,persistent,random)" in format_flow(dnat)
    assert format_flow(snat).endswith(
        "ct(commit,table=3,zone=7,nat(src=198.51.100.7-198.51.100.9:1024-65535))"
    )


def test_vocabulary_parses_and_formats_back() -> None:
    parsed = parse_flows(VOCABULARY)
    assert len(parsed) == len(VOCABULARY.splitlines())
    assert [parse_flow(format_flow(f)) for f in parsed] == parsed


# -------------------------------------------------------------------- real OVS
