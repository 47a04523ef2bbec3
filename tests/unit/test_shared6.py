"""Shared services in IPv6: between a consumer's and a provider's segments that both have a
``gateway6``, routed by global address, replies found by zone like IPv4 (consumers that
reuse addresses); validation, compiled routes, the proof on both engines, its mutations and
the trace."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from support.intents import SHARED6
from support.proving import ENGINES, compiled_texts, failing, intent_problems, prove_texts

from segctl.cli import main
from segctl.topology.analysis import allowed_grants, ipv6_applies, ipv6_routed
from segctl.topology.load import intent_from_document
from segctl.topology.network import Network, resolve


@pytest.fixture(scope="module")
def net() -> Network:
    return resolve(intent_from_document(copy.deepcopy(SHARED6)))


def test_ipv6_goes_to_a_shared_service_between_routed_segments(net: Network) -> None:
    ep = {e.qualified: e for e in net.endpoints}
    dns1, r1, b1, g1 = ep["infra/dns1"], ep["red/r1"], ep["blue/b1"], ep["green/g1"]
    assert ipv6_applies(r1, dns1) and ipv6_routed(r1, dns1) and ipv6_applies(dns1, b1)
    assert not ipv6_applies(g1, dns1)  # green/lan has no gateway6
    # what decides is the shared service: red and blue may not talk to each other
    assert ipv6_applies(r1, b1) and not allowed_grants(net, r1, b1, "udp", 53, family=6)
    assert allowed_grants(net, r1, dns1, "udp", 53, family=6) and allowed_grants(
        net, b1, dns1, "tcp", 53, family=6
    )
    assert allowed_grants(net, r1, dns1, "icmp6", icmp_type=128, family=6)
    assert not allowed_grants(net, g1, dns1, "udp", 53, family=6) and allowed_grants(net, g1, dns1, "udp", 53)
    assert not allowed_grants(net, b1, ep["infra/ntp1"], "udp", 123, family=6)  # ntp: red only


def test_overlapping_ipv6_prefixes_are_refused_only_where_ipv6_is_routed() -> None:
    doc = copy.deepcopy(SHARED6)
    doc["tenants"][1]["segments"][0].update(cidr6="fd09::/48", gateway6="fd09::1")  # red's app covers svc
    for ep in doc["tenants"][1]["endpoints"]:
        ep["ipv6"] = ep["ipv6"].replace("fd01:1::", "fd09::1:")
    assert intent_problems(doc) == [
        "shared_services[dns].consumers[0]: consumer segment red/app (fd09::/48) overlaps provider segment "
        "infra/svc (fd09::/64): IPv6 between them is routed (both have a gateway6) and NAT is not supported",
        "shared_services[ntp].consumers[0]: consumer segment red/app (fd09::/48) overlaps provider segment "
        "infra/svc (fd09::/64): IPv6 between them is routed (both have a gateway6) and NAT is not supported",
    ]
    del doc["tenants"][1]["segments"][0]["gateway6"]  # IPv6 stays inside red/app: no overlap to route
    assert intent_problems(doc) == []


def test_a_consumer_reaches_each_provider_ipv6_address_once() -> None:
    doc = copy.deepcopy(SHARED6)
    second = copy.deepcopy(doc["tenants"][0])
    second["name"] = "infra2"  # the same IPv4 and IPv6 addresses as infra
    doc["tenants"].append(second)
    doc["shared_services"].append(
        {"name": "dns2", "provider": {"tenant": "infra2", "endpoints": ["dns1"]},
         "consumers": [{"tenant": "red"}], "services": [{"proto": "udp", "port": 53}]}
    )  # fmt: skip
    for ep in second["endpoints"]:
        ep["mac"] = ep["mac"].replace("02:00:00:09", "02:00:00:19")
        ep["attach"] = ep["attach"].replace(":1", ":9")
    second["endpoints"][0]["ip"] = "10.9.0.54"  # a new IPv4 address, the same IPv6 one
    assert intent_problems(doc) == [
        "shared_services[dns2].consumers[0]: consumer segment red/app would reach two providers at fd09::53 "
        "(infra/dns1 in shared service dns, infra2/dns1 in dns2); a consumer must reach each address once"
    ]
    del second["segments"][0]["gateway6"]  # infra2 keeps its IPv6 inside: IPv4 only, no clash
    assert intent_problems(doc) == []


def test_the_gateway_routes_ipv6_to_providers_and_replies_by_zone(net: Network) -> None:
    s1 = compiled_texts(net)["s1"]
    # r1 (on s1) reaches dns1 and ntp1 by their global addresses, from its own
    routes = [r for r in s1 if r.startswith("table=40,priority=1000,") and "ipv6_src=fd01:1::11," in r]
    assert [r.split("ipv6_dst=")[1].split(",")[0] for r in routes] == ["fd09::53", "fd09::7b"]
    assert all("dec_ttl" in r and "metadata=0x1002/0xffffffff" in r for r in routes)
    assert not any("ipv6_src=fd03:1::11" in r for r in s1 if r.startswith("table=40,"))  # green: IPv4 only
    # dns1 (on s1) answers r1's address: red's zone first, then blue's (they share it)
    lookup = [r for r in s1 if r.startswith("table=40,priority=1500,") and "ipv6_dst=fd01:1::11," in r]
    assert len(lookup) == 1 and "ct(table=45,zone=2)" in lookup[0]
    demux = [r for r in s1 if r.startswith("table=45,") and "ipv6_dst=fd01:1::11," in r]
    assert sorted(r.split(",")[1] for r in demux) == ["priority=1000", "priority=1500", "priority=1500"]
    assert any("ct_zone=2" in r and "ct(table=45,zone=3)" in r for r in demux)


@pytest.mark.parametrize("engine", ENGINES)
def test_shared_ipv6_is_proved(net: Network, engine: str) -> None:
    report = prove_texts(net, compiled_texts(net), engine)
    assert report.ok, failing(report)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_missing_ipv6_provider_route_is_not_delivered(net: Network, engine: str) -> None:
    texts = compiled_texts(net)
    texts["s1"] = [r for r in texts["s1"] if not (r.startswith("table=40,") and "ipv6_dst=fd09::53," in r)]
    report = prove_texts(net, texts, engine)
    assert failing(report) == {"allowed-delivered"}
    found = {(cx.src, cx.dst) for cx in report.property("allowed-delivered").counterexamples}
    assert found == {("red/r1", "infra/dns1")}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_reply_not_found_by_zone_is_not_delivered(net: Network, engine: str) -> None:
    """Without table 45's IPv6 rules the providers' replies reach none of their consumers."""
    texts = compiled_texts(net)
    for name in texts:
        texts[name] = [r for r in texts[name] if not (r.startswith("table=45,") and ",ipv6," in r)]
    report = prove_texts(net, texts, engine)
    assert failing(report) == {"allowed-delivered"}
    found = {
        (cx.src, cx.dst, cx.message.split()[0]) for cx in report.property("allowed-delivered").counterexamples
    }
    assert found == {
        ("infra/dns1", "red/r1", "replies"),
        ("infra/dns1", "red/r2", "replies"),
        ("infra/dns1", "blue/b1", "replies"),
        ("infra/ntp1", "red/r1", "replies"),
        ("infra/ntp1", "red/r2", "replies"),
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_ipv6_of_a_consumer_without_gateway6_is_refused(net: Network, engine: str) -> None:
    """green/lan has no gateway6, so its DNS is IPv4 only: a compiler that let g1's IPv6 DNS
    query out (table 30, committed in green's zone) and routed it (table 40) is refused. The
    provider's switch still drops it (table 50 forwards no IPv6 of green's context), so the
    proof names the commit: a connection the intent never opens is in green's zone."""
    texts = compiled_texts(net)
    query = next(
        r for r in texts["s1"] if r.startswith("table=30,") and "nw_src=10.3.1.11,nw_dst=10.9.0.53,udp" in r
    )
    texts["s1"].append(
        query.replace(",udp,", ",udp6,").replace(
            "nw_src=10.3.1.11,nw_dst=10.9.0.53", "ipv6_src=fd03:1::11,ipv6_dst=fd09::53"
        )
    )
    route = next(
        r for r in texts["s1"] if r.startswith("table=40,priority=1000,") and "ipv6_src=fd01:1::11," in r
    )
    texts["s1"].append(
        route.replace("metadata=0x1002/", "metadata=0x1004/")
        .replace("dl_dst=02:5e:00:00:00:02", "dl_dst=02:5e:00:00:00:04")
        .replace("ipv6_src=fd01:1::11", "ipv6_src=fd03:1::11")
    )
    report = prove_texts(net, texts, engine)
    assert failing(report) == {"commit-safety"}
    cx = report.property("commit-safety").counterexamples[0]
    assert cx.src == "green/g1" and "fd09::53" in json.dumps(cx.to_json())


def test_trace_shows_a_shared_service_in_ipv6(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    intent = tmp_path / "shared6.json"
    intent.write_text(json.dumps(SHARED6))
    trace = ["trace", str(intent), "--to", "infra/dns1", "-6", "--proto", "udp", "--dport", "53"]
    assert main([*trace, "--from", "blue/b1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("packet blue/b1 (fd01:1::11) -> infra/dns1 (fd09::53) udp")
    assert "intent: allowed by shared-service dns" in out and "=> delivered to infra/dns1 (s1:1)" in out
    assert main([*trace, "--from", "blue/b1", "--reply"]) == 0
    out = capsys.readouterr().out
    # red's zone first (r1 has the same address), not there: blue's zone holds the connection
    assert "ct(table=45,zone=2)  [ct -> trk,new]" in out and "ct(table=45,zone=3)  [ct -> trk,est,rpl]" in out
    assert "=> delivered to blue/b1 (s2:3)" in out
    assert main([*trace, "--from", "green/g1"]) == 0
    out = capsys.readouterr().out
    assert "IPv6 is routed only between segments with a gateway6; segment green/lan has none" in out
    assert "delivered" not in out


def test_show_lists_the_segments_a_shared_service_routes_ipv6_to(net: Network) -> None:
    from segctl.topology.analysis import ipv6_segments

    where = {(t, s): [ep.name for ep in eps] for t, s, eps in ipv6_segments(net)}
    # blue/app has one endpoint and one segment: it is there for the shared DNS alone
    assert where == {
        ("infra", "svc"): ["dns1", "ntp1"],
        ("red", "app"): ["r1", "r2"],
        ("blue", "app"): ["b1"],
        ("green", "lan"): ["g1", "g2"],
    }
    doc = copy.deepcopy(SHARED6)
    doc["shared_services"] = []
    assert ("blue", "app") not in {(t, s) for t, s, _ in ipv6_segments(resolve(intent_from_document(doc)))}


def _many_providers() -> Network:
    """SHARED6 with red's consumers on s1 reaching three providers each: enough pairs that
    table 40 routes them by conjunction (one per provider) instead of direct flows."""
    doc = copy.deepcopy(SHARED6)
    infra, red = doc["tenants"][0], doc["tenants"][1]
    infra["endpoints"].append(
        {"name": "ldap1", "segment": "svc", "mac": "02:00:00:09:01:85", "ip": "10.9.0.89",
         "ipv6": "fd09::389", "attach": "s2:9"}
    )  # fmt: skip
    for i in (3, 4, 5):
        red["endpoints"].append(
            {"name": f"r{i}", "segment": "app", "mac": f"02:00:00:01:01:1{i}", "ip": f"10.1.1.2{i}",
             "ipv6": f"fd01:1::2{i}", "attach": f"s1:{i + 2}"}
        )  # fmt: skip
    doc["shared_services"][1]["provider"] = {"tenant": "infra", "endpoints": ["ntp1", "ldap1", "dns1"]}
    return resolve(intent_from_document(doc))


@pytest.mark.parametrize("engine", ENGINES)
def test_ipv6_provider_routes_by_conjunction_are_proved(engine: str) -> None:
    network = _many_providers()
    texts = compiled_texts(network)
    conj6 = [r for r in texts["s1"] if r.startswith("table=40,") and ",ipv6," in r and "conj" in r]
    # 4 consumers (one flow each), 3 providers (a clause and a conj_id flow each); IPv6's ids
    # follow IPv4's (providers in shared-service order dns1, ntp1, ldap1: 1..3, IPv6 4..6)
    assert len(conj6) == 4 + 2 * 3, conj6
    assert {r.split("conj_id=")[1].split(",")[0] for r in conj6 if "conj_id=" in r} == {"4", "5", "6"}
    assert prove_texts(network, texts, engine).ok
    texts["s1"] = [
        r for r in texts["s1"] if not (r.startswith("table=40,") and ",ipv6," in r and "conj_id=5," in r)
    ]
    report = prove_texts(network, texts, engine)
    assert failing(report) == {"allowed-delivered"}
    lost = {(cx.src, cx.dst) for cx in report.property("allowed-delivered").counterexamples}
    assert lost == {(f"red/r{i}", "infra/ntp1") for i in (1, 3, 4, 5)}  # conjunction 5: ntp1
