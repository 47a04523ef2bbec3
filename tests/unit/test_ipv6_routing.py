"""IPv6 routed by the distributed gateway: ``gateway6``, the gateway's neighbour advertisement,
host routes, and the properties over routed pairs (both engines)."""

from __future__ import annotations

import copy

import pytest
from support.intents import ROUTED6
from support.proving import ENGINES, compiled_texts, failing, intent_problems, prove_texts

from segctl.topology.analysis import allowed_grants, ipv6_addresses, ipv6_applies, ipv6_routed
from segctl.topology.load import intent_from_document
from segctl.topology.network import Network, resolve


@pytest.fixture(scope="module")
def net() -> Network:
    return resolve(intent_from_document(copy.deepcopy(ROUTED6)))


# ---------------------------------------------------------------------------- intent


def test_gateway6_is_validated() -> None:
    doc = copy.deepcopy(ROUTED6)
    front, back, legacy = doc["tenants"][0]["segments"]
    front["gateway6"] = "fd07:9::1"
    back["gateway6"] = "fd07:2::"
    legacy["gateway6"] = "fe80::1"
    assert intent_problems(doc) == [
        "tenants[net6].segments[back].gateway6: fd07:2:: is the subnet-router anycast address of fd07:2::/64",
        "tenants[net6].segments[front].gateway6: fd07:9::1 is outside fd07:1::/64",
        "tenants[net6].segments[legacy].gateway6: fe80::1 is link-local: a gateway6 is a global address",
    ]
    doc = copy.deepcopy(ROUTED6)
    del doc["tenants"][0]["segments"][2]["cidr6"]
    doc["tenants"][0]["segments"][2]["gateway6"] = "fd07:3::1"
    doc["tenants"][0]["endpoints"][4].pop("ipv6")
    doc["tenants"][0]["endpoints"][0]["ipv6"] = "fd07:1::1"  # f1 takes front's gateway6
    assert intent_problems(doc) == [
        "tenants[net6].endpoints[f1].ipv6: fd07:1::1 is the gateway6 of segment front",
        "tenants[net6].segments[legacy].gateway6: fd07:3::1 needs the segment's cidr6",
    ]


def test_ipv6_is_routed_between_segments_with_a_gateway6(net: Network) -> None:
    f1, f2, k1, _, l1 = net.endpoints
    assert ipv6_applies(f1, k1) and ipv6_routed(f1, k1) and ipv6_routed(k1, f1)
    assert ipv6_applies(f1, f2) and not ipv6_routed(f1, f2)
    assert not ipv6_applies(l1, k1) and not ipv6_applies(k1, l1)  # legacy has no gateway6
    # routed: the global address only; in the segment, link-local too
    assert ipv6_addresses(f2, True) == (f2.ipv6,)
    assert ipv6_addresses(f2, False) == (f2.ipv6, f2.ipv6_link_local)
    assert [g.name for g in allowed_grants(net, f1, k1, "tcp", 8080, family=6)] == ["front-to-back"]
    assert allowed_grants(net, l1, k1, "tcp", 8080, family=6) == ()
    assert [g.name for g in allowed_grants(net, l1, k1, "tcp", 8080)] == ["legacy-to-back"]


# ---------------------------------------------------------------------------- compiled rules


def test_the_gateway_answers_a_solicitation_for_gateway6(net: Network) -> None:
    """Table 10 turns f2's solicitation for fd07:1::1 (from either of its addresses) into the
    gateway's advertisement; table 80 writes the target link-layer address (OVS refuses
    ``nd_tll`` in a rule matching a solicitation) and sends it back out of f2's port."""
    s2 = compiled_texts(net)["s2"]
    gw_mac = net.tenant("net6").gateway_mac
    for source in ("fd07:1::12", "fe80::12"):
        (na,) = [
            r for r in s2
            if r.startswith("table=10,") and f"ipv6_src={source}," in r and "nd_target=fd07:1::1" in r
        ]  # fmt: skip
        assert "in_port=1," in na and "icmp_type=135" in na
        actions = na.split("actions=")[1]
        for write in (
            "set_field:02:00:00:07:01:02->eth_dst",
            f"set_field:{gw_mac}->eth_src",
            "set_field:fd07:1::1->ipv6_src",
            f"set_field:{source}->ipv6_dst",
            "set_field:136->icmpv6_type",
            "set_field:2->nd_options_type",
        ):
            assert write in actions, (write, na)
        assert "nd_reserved" in actions and "nd_tll" not in actions and actions.endswith("goto_table:80")
        (back,) = [
            r for r in s2
            if r.startswith("table=80,") and "icmp_type=136" in r and f"ipv6_dst={source}," in r
            and "ipv6_src=fd07:1::1" in r
        ]  # fmt: skip
        assert back.endswith(f"actions=set_field:{gw_mac}->nd_tll,IN_PORT") and "in_port=1," in back


def test_routes_drops_and_no_route_from_a_segment_without_gateway6(net: Network) -> None:
    s1 = [r for r in compiled_texts(net)["s1"] if r.startswith("table=40,") and "ipv6" in r]
    routes = [r for r in s1 if "dec_ttl" in r]
    assert sorted(r.split("ipv6_dst=")[1].split(",")[0] for r in routes) == [
        "fd07:1::11", "fd07:1::12", "fd07:2::11", "fd07:2::12",
    ]  # fmt: skip
    drops = [r for r in s1 if r.endswith("actions=drop")]
    assert any("ipv6_src=fe80::/10" in r for r in drops)  # link-local never routed
    assert any("nw_ttl=1" in r for r in drops) and any("nw_ttl=0" in r for r in drops)
    legacy = net.segment("net6", "legacy")
    legacy_meta = f"metadata={(net.tenant('net6').id) | legacy.index << 12:#x}/0xffffffff"
    (no_route,) = [r for r in drops if legacy_meta in r]
    assert "ipv6_dst" not in no_route  # every IPv6 packet legacy sends to the gateway


# ---------------------------------------------------------------------------- the proof


@pytest.mark.parametrize("engine", ENGINES)
def test_routed_ipv6_is_proved(net: Network, engine: str) -> None:
    report = prove_texts(net, compiled_texts(net), engine)
    assert report.ok, [cx.message for p in report.properties for cx in p.counterexamples]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_missing_ipv6_host_route_is_not_delivered(net: Network, engine: str) -> None:
    texts = compiled_texts(net)
    for name in texts:
        texts[name] = [
            r for r in texts[name] if not (r.startswith("table=40,") and "ipv6_dst=fd07:2::11," in r)
        ]
    report = prove_texts(net, texts, engine)
    assert failing(report) == {"allowed-delivered"}
    found = {(cx.src, cx.dst) for cx in report.property("allowed-delivered").counterexamples}
    assert found == {("net6/f1", "net6/k1"), ("net6/f2", "net6/k1")}


@pytest.mark.parametrize("engine", ENGINES)
def test_an_intra_segment_commit_that_takes_routed_packets_breaks_commit_safety(
    net: Network, engine: str
) -> None:
    """front's intra-segment IPv6 commit matches its own sources: without that, k2's
    stateless udp/5353 to f1, routed in, would be committed (f1 could then answer)."""
    texts = compiled_texts(net)
    texts["s1"] = [
        r.replace("ipv6_src=fd07:1::/64,", "") if r.startswith("table=70,priority=3500") else r
        for r in texts["s1"]
    ]
    report = prove_texts(net, texts, engine)
    assert failing(report) == {"commit-safety"}
    cx = report.property("commit-safety").counterexamples[0]
    assert (cx.src, cx.packet["ipv6_dst"], cx.packet["tp_dst"]) == ("net6/k2", "fd07:1::11", "5353")


@pytest.mark.parametrize("engine", ENGINES)
def test_an_advertisement_sent_to_another_port_breaks_conformance(net: Network, engine: str) -> None:
    """The gateway's advertisement goes back to the soliciting port only: sent out of k2's
    port instead (s1 port 2), k2 receives f1's solicitation turned into an advertisement."""
    texts = compiled_texts(net)
    texts["s1"] = [
        r.replace("->nd_tll,IN_PORT", "->nd_tll,output:2")
        if r.startswith("table=80,") and "in_port=1," in r and "icmp_type=136" in r
        else r
        for r in texts["s1"]
    ]
    report = prove_texts(net, texts, engine)
    assert "conformance" in failing(report)
    found = {(cx.src, cx.delivered_to) for cx in report.property("conformance").counterexamples}
    assert ("net6/f1", "net6/k2") in found


@pytest.mark.parametrize("engine", ENGINES)
def test_guardrails_and_deny_policies_decide_routed_ipv6(engine: str) -> None:
    """A guardrail deny (tcp/8080 front -> back) and a tenant deny policy (ICMPv6 echo f2 ->
    k2) take their packets out of routed IPv6 as out of IPv4; what they leave still flows,
    and the switches do exactly that (the proof holds)."""
    doc = copy.deepcopy(ROUTED6)
    doc["guardrails"] = [
        {"name": "no-8080-to-back", "priority": 1, "action": "deny",
         "from": {"tenant": "net6", "segment": "front"}, "to": {"tenant": "net6", "segment": "back"},
         "services": [{"proto": "tcp", "port": 8080}]},
    ]  # fmt: skip
    doc["tenants"][0]["policies"].append(
        {"name": "deny-f2-echo6", "action": "deny", "priority": 10, "from": {"endpoint": "f2"},
         "to": {"endpoint": "k2"}, "services": [{"proto": "icmp6", "type": 128}]}
    )  # fmt: skip
    net = resolve(intent_from_document(doc))
    f1, f2, k1, k2, _ = net.endpoints
    assert allowed_grants(net, f1, k1, "tcp", 8080, family=6) == ()
    assert allowed_grants(net, f2, k2, "icmp6", icmp_type=128, family=6) == ()
    echo = allowed_grants(net, f1, k2, "icmp6", icmp_type=128, family=6)
    assert [g.name for g in echo] == ["front-to-back"]
    report = prove_texts(net, compiled_texts(net), engine)
    assert report.ok, [cx.message for p in report.properties for cx in p.counterexamples]
