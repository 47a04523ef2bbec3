"""ovs-ofctl text parser: normalization, errors, format/parse identity, real-OVS round trip."""

from __future__ import annotations

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
        ("ip,actions=ct(commit,nat)", "nat"),
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
        st.builds(SetField, st.sampled_from(["eth_src", "eth_dst", "arp_sha"]), st.integers(0, 2**48 - 1)),
        st.builds(SetField, st.sampled_from(["reg1", "arp_tpa", "arp_op"]), st.integers(0, 0xFFFF)),
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


def test_vocabulary_parses_and_formats_back() -> None:
    parsed = parse_flows(VOCABULARY)
    assert len(parsed) == len(VOCABULARY.splitlines())
    assert [parse_flow(format_flow(f)) for f in parsed] == parsed


# -------------------------------------------------------------------- real OVS
