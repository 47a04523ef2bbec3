"""Expected reachability: hand-computed cases on the examples, and properties on random intents.

The property tests compare :mod:`segctl.topology.analysis` with a brute-force
reimplementation that reads the raw intent *document* (plain dicts), so a bug in the
resolved model's selectors cannot hide in both.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.random_intents import LABELS, intents, raw_services

from segctl.topology.analysis import (
    Grant,
    ServiceMatch,
    allowed_grants,
    expected_reachability,
    grant_symbol,
    ipv6_applies,
    normalize_proto,
    normalize_services,
    pair_grants,
    reachability_matrix,
    reply_allowed,
)
from segctl.topology.network import Network, load_network, resolve
from segctl.topology.schema import Intent, Service

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def pairs(reach: dict[Any, tuple[Grant, ...]]) -> set[tuple[str, str]]:
    return {(f"{s[0]}/{s[1]}", f"{d[0]}/{d[1]}") for s, d in reach}


# --------------------------------------------------------------------------- examples


@pytest.fixture(scope="module")
def leaf_spine() -> Network:
    return load_network(EXAMPLES / "leaf-spine.yaml")


def test_leaf_spine_pairs_are_exactly_the_hand_computed_ones(leaf_spine: Network) -> None:
    acme_and_globex = [
        "acme/web1",
        "acme/web2",
        "acme/app1",
        "acme/app2",
        "acme/db1",
        "globex/gweb1",
        "globex/gweb2",
    ]
    expected = {
        ("acme/web1", "acme/web2"),
        ("acme/web2", "acme/web1"),
        ("globex/gweb1", "globex/gweb2"),
        ("globex/gweb2", "globex/gweb1"),
        ("acme/web1", "acme/app1"),
        ("acme/web1", "acme/app2"),
        ("acme/web2", "acme/app1"),
        ("acme/web2", "acme/app2"),
        ("acme/app1", "acme/db1"),
        ("acme/app2", "acme/db1"),
        *((c, "infra/dns1") for c in acme_and_globex),
    }
    reach = expected_reachability(leaf_spine)
    assert pairs(reach) == expected
    web = ServiceMatch("any", None)
    assert reach[(("acme", "web1"), ("acme", "web2"))] == (Grant("intra-segment", "web", (web,), True),)
    assert reach[(("acme", "web1"), ("acme", "app1"))] == (
        Grant("policy", "web-to-app", (ServiceMatch("icmp"), ServiceMatch("tcp", ((8080, 8080),))), True),
    )
    assert reach[(("globex", "gweb2"), ("infra", "dns1"))] == (
        Grant(
            "shared-service",
            "dns",
            (ServiceMatch("tcp", ((53, 53),)), ServiceMatch("udp", ((53, 53),))),
            True,
        ),
    )


@pytest.mark.parametrize(
    ("src", "dst", "proto", "port", "kinds"),
    [
        ("acme/web1", "acme/app1", "tcp", 8080, ["policy"]),
        ("acme/web1", "acme/app1", "6", 8080, ["policy"]),
        ("acme/web1", "acme/app1", "tcp", 8081, []),
        ("acme/web1", "acme/app1", "udp", 8080, []),
        ("acme/web1", "acme/app1", "icmp", None, ["policy"]),
        ("acme/web1", "acme/app1", "47", None, []),
        ("acme/app1", "acme/web1", "tcp", 8080, []),  # a policy is one-way
        ("acme/app1", "acme/app2", "tcp", 8080, []),  # strict segment, no policy between apps
        ("acme/app1", "acme/app2", "icmp", None, []),
        ("acme/app1", "acme/db1", "tcp", 5432, ["policy"]),
        ("acme/app1", "acme/db1", "tcp", None, []),  # a port-restricted service needs a port
        ("acme/web1", "acme/db1", "tcp", 5432, []),  # no web -> db policy
        ("acme/web1", "acme/web2", "udp", 9, ["intra-segment"]),
        ("acme/web1", "acme/web2", "47", None, ["intra-segment"]),
        ("acme/web1", "acme/web1", "tcp", 80, []),  # never to itself
        ("acme/web1", "globex/gweb1", "icmp", None, []),  # overlapping addresses, other tenant
        ("globex/gweb1", "acme/web1", "tcp", 80, []),
        ("acme/web1", "infra/dns1", "udp", 53, ["shared-service"]),
        ("globex/gweb2", "infra/dns1", "tcp", 53, ["shared-service"]),
        ("acme/web1", "infra/dns1", "icmp", None, []),
        ("acme/web1", "infra/dns1", "udp", 54, []),
        ("infra/dns1", "acme/web1", "udp", 53, []),  # the provider never opens connections
    ],
)
def test_leaf_spine_concrete_queries(
    leaf_spine: Network, src: str, dst: str, proto: str, port: int | None, kinds: list[str]
) -> None:
    s, d = leaf_spine.find_endpoint(src), leaf_spine.find_endpoint(dst)
    assert [g.kind for g in allowed_grants(leaf_spine, s, d, proto, port)] == kinds
    assert reply_allowed(leaf_spine, s, d, proto, port) == bool(kinds)  # every grant here is stateful


def test_leaf_spine_matrix(leaf_spine: Network) -> None:
    rows = {ep.qualified: "".join(row) for ep, row in reachability_matrix(leaf_spine)}
    assert rows["acme/web1"] == "·SPP···X"
    assert rows["acme/app1"] == "····P··X"
    assert rows["globex/gweb2"] == "·····S·X"
    assert rows["infra/dns1"] == "········"


def test_two_tenants_same_addresses_stay_apart() -> None:
    net = load_network(EXAMPLES / "two-tenants.yaml")
    assert pairs(expected_reachability(net)) == {
        ("red/r1", "red/r2"),
        ("red/r2", "red/r1"),
        ("blue/b1", "blue/b2"),
        ("blue/b2", "blue/b1"),
    }
    r1, b1 = net.find_endpoint("red/r1"), net.find_endpoint("blue/b1")
    assert r1.ip == b1.ip
    assert allowed_grants(net, r1, b1, "icmp") == ()


def _small(policy: dict[str, Any] | None = None, *, strict: bool = False, ipv6: bool = True) -> Network:
    seg: dict[str, Any] = {"name": "lan", "cidr": "10.0.0.0/24", "gateway": "10.0.0.1", "strict": strict}
    if ipv6:
        seg["cidr6"] = "fd00::/64"
    eps = [
        {
            "name": n,
            "segment": "lan",
            "mac": f"02:00:00:00:00:0{i}",
            "ip": f"10.0.0.1{i}",
            "attach": f"s1:{i}",
            **({"ipv6": f"fd00::{i}"} if ipv6 and n != "c" else {}),
        }
        for i, n in enumerate(["a", "b", "c"], start=1)
    ]
    tenant: dict[str, Any] = {"name": "t", "segments": [seg], "endpoints": eps}
    if policy:
        tenant["policies"] = [policy]
    return resolve(
        Intent.model_validate({"fabric": {"switches": [{"name": "s1", "dpid": 1}]}, "tenants": [tenant]})
    )


def test_stateless_policy_has_no_reply_grant() -> None:
    net = _small(
        {
            "name": "p",
            "from": {"endpoint": "a"},
            "to": {"endpoint": "b"},
            "services": [{"proto": "udp", "port": "5000-5010"}],
            "stateful": False,
        },
        strict=True,
    )
    a, b = net.endpoint("t", "a"), net.endpoint("t", "b")
    assert [g.name for g in allowed_grants(net, a, b, "udp", 5005)] == ["p"]
    assert not reply_allowed(net, a, b, "udp", 5005)
    assert allowed_grants(net, b, a, "udp", 5005) == ()
    assert allowed_grants(net, a, b, "udp", 5011) == ()


def test_policy_inside_non_strict_segment_adds_a_second_grant() -> None:
    net = _small(
        {
            "name": "p",
            "from": {"endpoint": "a"},
            "to": {"endpoint": "b"},
            "services": [{"proto": "tcp", "port": 22}],
        }
    )
    a, b = net.endpoint("t", "a"), net.endpoint("t", "b")
    assert [g.kind for g in allowed_grants(net, a, b, "tcp", 22)] == ["intra-segment", "policy"]
    assert [g.kind for g in allowed_grants(net, a, b, "tcp", 23)] == ["intra-segment"]
    assert grant_symbol(expected_reachability(net)[(a.key, b.key)]) == "SP"


def test_ipv6_goes_between_ipv6_endpoints_of_one_segment_under_their_grants() -> None:
    net = _small()
    a, b, c = (net.endpoint("t", n) for n in "abc")
    assert ipv6_applies(a, b) and ipv6_applies(b, a)
    assert not ipv6_applies(a, a)
    assert not ipv6_applies(a, c)  # c has no ipv6
    # non-strict: the intra-segment grant carries every IPv6 packet but router-only ones
    assert [g.kind for g in allowed_grants(net, a, b, "udp", 53, family=6)] == ["intra-segment"]
    assert allowed_grants(net, a, b, "icmp6", icmp_type=134, family=6) == ()
    assert allowed_grants(net, a, c, "udp", 53, family=6) == ()
    assert [g.kind for g in allowed_grants(net, a, c, "udp", 53)] == ["intra-segment"]
    strict = _small(
        {
            "name": "p",
            "from": {"endpoint": "a"},
            "to": {"endpoint": "b"},
            "services": [{"proto": "tcp", "port": 22}, {"proto": "icmp6", "type": 128}],
        },
        strict=True,
    )
    a, b = strict.endpoint("t", "a"), strict.endpoint("t", "b")
    assert ipv6_applies(a, b)  # strict or not: neighbour discovery, and grants carry IPv6
    assert [g.name for g in allowed_grants(strict, a, b, "tcp", 22, family=6)] == ["p"]
    assert [g.name for g in allowed_grants(strict, a, b, "icmp6", icmp_type=128, family=6)] == ["p"]
    assert allowed_grants(strict, a, b, "icmp", icmp_type=8, family=6) == ()  # icmp is ICMPv4
    assert allowed_grants(strict, a, b, "icmp6", icmp_type=128) == ()  # and icmp6 ICMPv6
    assert reply_allowed(strict, a, b, "icmp6", icmp_type=128, family=6)
    assert allowed_grants(strict, b, a, "tcp", 22, family=6) == ()


# --------------------------------------------------------------------------- services


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        ([{"proto": "tcp", "ports": [80, "81-90", 100]}], (ServiceMatch("tcp", ((80, 90), (100, 100))),)),
        (
            [{"proto": "tcp", "port": "1-10"}, {"proto": "tcp", "port": "5-20"}],
            (ServiceMatch("tcp", ((1, 20),)),),
        ),
        ([{"proto": "tcp", "port": 80}, {"proto": "tcp"}], (ServiceMatch("tcp", None),)),
        ([{"proto": "udp", "port": 53}, {"proto": "any"}], (ServiceMatch("any", None),)),
        ([{"proto": "icmp"}, {"proto": "icmp"}], (ServiceMatch("icmp", None),)),
        (
            [{"proto": "udp", "port": 53}, {"proto": "tcp", "port": 53}, {"proto": "icmp"}],
            (ServiceMatch("icmp"), ServiceMatch("tcp", ((53, 53),)), ServiceMatch("udp", ((53, 53),))),
        ),
    ],
)
def test_normalize_services(services: list[dict[str, Any]], expected: tuple[ServiceMatch, ...]) -> None:
    assert normalize_services(Service.model_validate(s) for s in services) == expected


def test_normalize_proto() -> None:
    assert [normalize_proto(p) for p in ("TCP", "6", "17", "1", "udp", "47")] == [
        "tcp",
        "tcp",
        "udp",
        "icmp",
        "udp",
        "47",
    ]


def _raw_service_allows(
    service: dict[str, Any], proto: str, port: int | None, icmp: tuple[int | None, int | None] = (None, None)
) -> bool:
    """Straight from the document: does one service allow this packet (ICMP: of type and code ``icmp``)?"""
    if service["proto"] == "any":
        return True
    if service["proto"] != proto:
        return False
    for key, value in zip(("type", "code"), icmp, strict=True):
        if key in service and service[key] != value:
            return False
    ports = service.get("ports")
    if ports is None:
        return True
    if port is None:
        return False
    for item in ports if isinstance(ports, list) else [ports]:
        if isinstance(item, int):
            lo = hi = item
        else:
            lo_text, _, hi_text = str(item).partition("-")
            lo, hi = int(lo_text), int(hi_text or lo_text)
        if lo <= port <= hi:
            return True
    return False


PROBES = [("icmp", None), ("47", None), ("tcp", None), ("udp", None)] + [
    (p, n) for p in ("tcp", "udp") for n in range(0, 52)
]
#: ICMP (type, code) probes: unknown type, and the types and codes random services use (and more).
ICMP_PROBES = [(None, None), *((t, c) for t in (0, 3, 8, 13, 14) for c in (None, 0, 1, 2))]


@given(st.lists(raw_services, min_size=1, max_size=5))
def test_normalized_services_allow_exactly_what_the_raw_services_allow(
    services: list[dict[str, Any]],
) -> None:
    grant = Grant("policy", "p", normalize_services(Service.model_validate(s) for s in services), True)
    for proto, port in PROBES:
        expected = any(_raw_service_allows(s, proto, port) for s in services)
        assert grant.allows(proto, port) == expected, (proto, port)
    for icmp_type, icmp_code in ICMP_PROBES:
        expected = any(_raw_service_allows(s, "icmp", None, (icmp_type, icmp_code)) for s in services)
        assert grant.allows("icmp", None, icmp_type=icmp_type, icmp_code=icmp_code) == expected, (
            icmp_type,
            icmp_code,
        )
    for match in grant.services:  # normalized form: sorted, merged, non-adjacent ranges
        if match.ports is not None:
            assert all(a[1] + 1 < b[0] for a, b in zip(match.ports, match.ports[1:], strict=False))
            assert all(lo <= hi for lo, hi in match.ports)


# --------------------------------------------------------------------------- random intents


def _brute_force(
    doc: dict[str, Any],
) -> dict[tuple[str, str], list[tuple[str, str, list[dict[str, Any]], bool]]]:
    """Grants per (tenant/src, tenant/dst), computed from the raw document with plain loops."""

    def eps_of(tenant: dict[str, Any]) -> list[dict[str, Any]]:
        return list(tenant["endpoints"])

    def group(tenant: dict[str, Any], name: str) -> list[dict[str, Any]]:
        g = next(g for g in tenant["groups"] if g["name"] == name)
        if "members" in g:
            return [ep for ep in eps_of(tenant) if ep["name"] in g["members"]]
        return [ep for ep in eps_of(tenant) if all(ep["labels"].get(k) == v for k, v in g["labels"].items())]

    def select(tenant: dict[str, Any], sel: dict[str, Any]) -> list[dict[str, Any]]:
        if "endpoint" in sel:
            return [ep for ep in eps_of(tenant) if ep["name"] == sel["endpoint"]]
        if "segment" in sel:
            return [ep for ep in eps_of(tenant) if ep["segment"] == sel["segment"]]
        if "group" in sel:
            return group(tenant, sel["group"])
        return [
            ep for ep in eps_of(tenant) if all(ep["labels"].get(k) == v for k, v in sel["labels"].items())
        ]

    out: dict[tuple[str, str], list[tuple[str, str, list[dict[str, Any]], bool]]] = {}
    everyone = [(t, ep) for t in doc["tenants"] for ep in t["endpoints"]]
    for ts, s in everyone:
        for td, d in everyone:
            key = (f"{ts['name']}/{s['name']}", f"{td['name']}/{d['name']}")
            grants: list[tuple[str, str, list[dict[str, Any]], bool]] = []
            if key[0] == key[1]:
                continue
            if ts is td and s["segment"] == d["segment"]:
                seg = next(g for g in ts["segments"] if g["name"] == s["segment"])
                if not seg["strict"]:
                    grants.append(("intra-segment", seg["name"], [{"proto": "any"}], True))
            if ts is td:
                for p in ts["policies"]:
                    if s in select(ts, p["from"]) and d in select(ts, p["to"]):
                        grants.append(("policy", p["name"], p["services"], p["stateful"]))
            for x in doc["shared_services"]:
                if td["name"] != x["provider"]["tenant"] or d["name"] not in x["provider"]["endpoints"]:
                    continue
                for c in x["consumers"]:
                    consumes = c["tenant"] == ts["name"] and ("group" not in c or s in group(ts, c["group"]))
                    grant = ("shared-service", x["name"], x["services"], True)
                    if consumes and grant not in grants:
                        grants.append(grant)
            if grants:
                out[key] = grants
    return out


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _keyed(reach: dict[Any, tuple[Grant, ...]]) -> dict[tuple[str, str], tuple[Grant, ...]]:
    return {(f"{s[0]}/{s[1]}", f"{d[0]}/{d[1]}"): g for (s, d), g in reach.items()}


@SETTINGS
@given(intents())
def test_brute_force_reimplementation_agrees(doc: dict[str, Any]) -> None:
    net = resolve(Intent.model_validate(doc))
    reach = _keyed(expected_reachability(net))
    brute = _brute_force(doc)
    assert set(reach) == set(brute)
    for key, raw in brute.items():
        assert [(g.kind, g.name, g.stateful) for g in reach[key]] == [(k, n, st_) for k, n, _, st_ in raw]
        src, dst = (net.find_endpoint(k) for k in key)
        for proto, port in [*PROBES[:4], ("tcp", 1), ("udp", 40), ("tcp", 41), ("udp", 17)]:
            raw_allowed = [
                k for k, _, services, _ in raw if any(_raw_service_allows(s, proto, port) for s in services)
            ]
            assert [g.kind for g in allowed_grants(net, src, dst, proto, port)] == raw_allowed
            raw_reply = any(
                stf
                for _, _, services, stf in raw
                if any(_raw_service_allows(s, proto, port) for s in services)
            )
            assert reply_allowed(net, src, dst, proto, port) == raw_reply


@SETTINGS
@given(intents())
def test_invariants_on_random_intents(doc: dict[str, Any]) -> None:
    net = resolve(Intent.model_validate(doc))
    reach = expected_reachability(net)
    for (src_key, dst_key), grants in reach.items():
        src, dst = net.endpoint(*src_key), net.endpoint(*dst_key)
        assert grants, "only pairs with at least one grant"
        assert src_key != dst_key
        assert len(set(grants)) == len(grants)
        assert pair_grants(net, src, dst) == grants
        for g in grants:
            if src.tenant != dst.tenant:
                assert g.kind == "shared-service"  # the only cross-tenant grant
            if g.kind == "shared-service":
                assert src.tenant != dst.tenant and g.stateful
            if g.kind == "intra-segment":
                assert src.segment == dst.segment and src.tenant == dst.tenant
                assert not net.segment(src.tenant, src.segment).strict
                assert grants[0] == g  # intra-segment first
                assert reach[(dst_key, src_key)][0] == g  # symmetric
        if (
            src.tenant == dst.tenant
            and src.segment == dst.segment
            and net.segment(src.tenant, src.segment).strict
        ):
            assert {g.kind for g in grants} == {"policy"}
    # every pair not in the relation has no grant at all
    for src in net.endpoints:
        for dst in net.endpoints:
            if (src.key, dst.key) not in reach:
                assert pair_grants(net, src, dst) == ()
                assert allowed_grants(net, src, dst, "tcp", 1) == ()
    # the matrix shows exactly the relation
    for src, row in reachability_matrix(net, reach):
        for dst, cell in zip(net.endpoints, row, strict=True):
            assert (cell == "·") == ((src.key, dst.key) not in reach)


@SETTINGS
@given(intents(), st.data())
def test_adding_a_policy_never_removes_a_grant(doc: dict[str, Any], data: st.DataObject) -> None:
    before = expected_reachability(resolve(Intent.model_validate(doc)))
    bigger = copy.deepcopy(doc)
    tenant = data.draw(st.sampled_from(bigger["tenants"]))
    segs = [s["name"] for s in tenant["segments"]]
    tenant["policies"].append(
        {
            "name": "added",
            "from": {"segment": data.draw(st.sampled_from(segs))},
            "to": {"labels": {"role": data.draw(st.sampled_from(LABELS))}},
            "services": data.draw(st.lists(raw_services, min_size=1, max_size=2)),
            "stateful": data.draw(st.booleans()),
        }
    )
    after = expected_reachability(resolve(Intent.model_validate(bigger)))
    for pair, grants in before.items():
        assert set(grants) <= set(after[pair])
    for pair in set(after) - set(before):
        assert [g.name for g in after[pair]] == ["added"]
        assert pair[0][0] == pair[1][0] == tenant["name"]


@SETTINGS
@given(intents())
def test_making_a_segment_strict_only_removes_intra_segment_grants(doc: dict[str, Any]) -> None:
    loose = copy.deepcopy(doc)
    for tenant in loose["tenants"]:
        for seg in tenant["segments"]:
            seg["strict"] = False
    strict = copy.deepcopy(loose)
    for tenant in strict["tenants"]:
        for seg in tenant["segments"]:
            seg["strict"] = True
    loose_reach = expected_reachability(resolve(Intent.model_validate(loose)))
    strict_reach = expected_reachability(resolve(Intent.model_validate(strict)))
    for pair, grants in loose_reach.items():
        kept = tuple(g for g in grants if g.kind != "intra-segment")
        assert strict_reach.get(pair, ()) == kept
    assert set(strict_reach) <= set(loose_reach)
