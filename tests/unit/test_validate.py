"""Validation: one test per rule, checking the exact place and reason of each problem."""

from __future__ import annotations

import copy
import json
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.problems import problems

from segctl.errors import IntentError, Problem
from segctl.topology.load import check_file, intent_from_document, load_checked, load_intent_text
from segctl.topology.network import load_network, resolve
from segctl.topology.validate import VLAN_RANGE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BASE: dict[str, Any] = {
    "version": 1,
    "fabric": {
        "switches": [{"name": "s1", "dpid": 1}, {"name": "s2", "dpid": 2}],
        "links": ["s1:1 <-> s2:1"],
    },
    "tenants": [
        {
            "name": "acme",
            "segments": [
                {"name": "web", "cidr": "10.1.1.0/24", "gateway": "10.1.1.1"},
                {"name": "db", "cidr": "10.1.3.0/24", "gateway": "10.1.3.1"},
            ],
            "endpoints": [
                {
                    "name": "web1",
                    "segment": "web",
                    "mac": "02:00:00:00:01:01",
                    "ip": "10.1.1.10",
                    "attach": "s1:10",
                },
                {
                    "name": "web2",
                    "segment": "web",
                    "mac": "02:00:00:00:01:02",
                    "ip": "10.1.1.11",
                    "attach": "s2:10",
                },
                {
                    "name": "db1",
                    "segment": "db",
                    "mac": "02:00:00:00:01:03",
                    "ip": "10.1.3.10",
                    "attach": "s2:11",
                },
            ],
            "groups": [{"name": "webs", "members": ["web1", "web2"]}],
            "policies": [
                {
                    "name": "web-db",
                    "from": {"group": "webs"},
                    "to": {"endpoint": "db1"},
                    "services": [{"proto": "tcp", "port": 5432}],
                }
            ],
        },
        {
            "name": "infra",
            "segments": [{"name": "svc", "cidr": "10.9.0.0/24", "gateway": "10.9.0.1"}],
            "endpoints": [
                {
                    "name": "dns1",
                    "segment": "svc",
                    "mac": "02:00:00:00:09:01",
                    "ip": "10.9.0.53",
                    "attach": "s1:11",
                }
            ],
        },
    ],
    "shared_services": [
        {
            "name": "dns",
            "provider": {"tenant": "infra", "endpoints": ["dns1"]},
            "consumers": [{"tenant": "acme"}],
            "services": [{"proto": "udp", "port": 53}],
        }
    ],
}


def doc() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def acme(d: dict[str, Any]) -> dict[str, Any]:
    return d["tenants"][0]


def test_base_document_is_valid() -> None:
    assert problems(doc()) == []
    resolve(intent_from_document(doc()))


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    assert check_file(path)[1] == []
    load_network(path)


# --------------------------------------------------------------------------- shape


@pytest.mark.parametrize(
    ("where", "key", "location"),
    [
        ((), "tenant", "tenant"),
        (("fabric",), "link", "fabric.link"),
        (("tenants", 0), "segment", "tenants[acme].segment"),
        (("tenants", 0, "endpoints", 0), "adress", "tenants[acme].endpoints[web1].adress"),
        (("tenants", 0, "segments", 1), "stritc", "tenants[acme].segments[db].stritc"),
        (("tenants", 0, "policies", 0), "statefull", "tenants[acme].policies[web-db].statefull"),
        (("shared_services", 0, "provider"), "endpoint", "shared_services[dns].provider.endpoint"),
    ],
)
def test_unknown_key_is_never_ignored(where: tuple[Any, ...], key: str, location: str) -> None:
    d = doc()
    node: Any = d
    for step in where:
        node = node[step]
    node[key] = "x"
    assert problems(d) == [f"{location}: unknown key (not part of the intent format; check the spelling)"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mac", "zz", "'zz' is not a MAC address (expected aa:bb:cc:dd:ee:ff)"),
        (
            "mac",
            "03:00:00:00:00:01",
            "03:00:00:00:00:01 is a multicast MAC address; an endpoint needs a unicast one",
        ),
        ("mac", "00:00:00:00:00:00", "00:00:00:00:00:00 is not a usable MAC address"),
        ("ip", "10.1.1.300", "Input is not a valid IPv4 address (got '10.1.1.300')"),
        ("ip", 167837962, "167837962 is not an IP address (write it as text, e.g. 10.1.1.10)"),
        ("attach", "s1", "'s1' is not of the form switch:port"),
    ],
)
def test_invalid_endpoint_values(field: str, value: Any, message: str) -> None:
    d = doc()
    acme(d)["endpoints"][0][field] = value
    assert problems(d) == [f"tenants[acme].endpoints[web1].{field}: {message}"]


@pytest.mark.parametrize(
    ("attach", "message"),
    [
        ("s1:0", "Input should be greater than or equal to 1 (got 0)"),
        ("s1:65281", "Input should be less than or equal to 65280 (got 65281)"),
    ],
)
def test_invalid_port_numbers(attach: str, message: str) -> None:
    d = doc()
    acme(d)["endpoints"][0]["attach"] = attach
    assert problems(d) == [f"tenants[acme].endpoints[web1].attach.port: {message}"]


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("10.1.1.5/24", "10.1.1.5/24 has host bits set; did you mean 10.1.1.0/24?"),
        ("10.1.1.0/33", "'10.1.1.0/33' is not a valid CIDR"),
        ("10.1.1.0", "'10.1.1.0' is not a CIDR (expected address/prefix)"),
    ],
)
def test_invalid_cidr(cidr: str, message: str) -> None:
    d = doc()
    acme(d)["segments"][0]["cidr"] = cidr
    assert problems(d) == [f"tenants[acme].segments[web].cidr: {message}"]


V6_RULE = "a segment's cidr6 is a global unicast (2000::/3) or unique local (fc00::/7) prefix"
V4_RULE = "a segment's cidr is routable unicast address space"


def lab(segment: dict[str, Any]) -> dict[str, Any]:
    """The base document plus tenant ``lab`` with one segment ``s`` (no endpoints)."""
    d = doc()
    d["tenants"].append({"name": "lab", "segments": [{"name": "s", **segment}]})
    return d


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("0.0.0.0/0", "0.0.0.0/0 is wider than /8: a segment is one L2 domain (use a /8 or a longer prefix)"),
        (
            "10.0.0.0/7",
            "10.0.0.0/7 is wider than /8: a segment is one L2 domain (use a /8 or a longer prefix)",
        ),
        ("0.0.0.0/8", f"0.0.0.0/8 is 'this network' (0.0.0.0/8): {V4_RULE}"),
        ("127.0.0.0/8", f"127.0.0.0/8 is loopback (127.0.0.0/8): {V4_RULE}"),
        ("127.0.0.0/24", f"127.0.0.0/24 is loopback (127.0.0.0/8): {V4_RULE}"),
        ("169.254.1.0/24", f"169.254.1.0/24 is link-local (169.254.0.0/16): {V4_RULE}"),
        ("169.0.0.0/8", f"169.0.0.0/8 includes link-local 169.254.0.0/16: {V4_RULE}"),
        ("224.0.0.0/4", f"224.0.0.0/4 is multicast (224.0.0.0/4): {V4_RULE}"),
        ("239.1.1.0/24", f"239.1.1.0/24 is multicast (224.0.0.0/4): {V4_RULE}"),
        ("240.0.0.0/8", f"240.0.0.0/8 is reserved (240.0.0.0/4): {V4_RULE}"),
        ("255.255.255.255/32", f"255.255.255.255/32 is reserved (240.0.0.0/4): {V4_RULE}"),
    ],
)
def test_a_segment_cidr_is_routable_unicast_space(cidr: str, message: str) -> None:
    assert problems(lab({"cidr": cidr})) == [f"tenants[lab].segments[s].cidr: {message}"]


@pytest.mark.parametrize(
    "cidr", ["10.0.0.0/8", "100.64.0.0/10", "192.0.2.0/24", "203.0.113.8/29", "10.9.9.0/31", "10.9.9.9/32"]
)
def test_unicast_segment_cidrs_from_a_slash_8_to_a_host_are_valid(cidr: str) -> None:
    assert problems(lab({"cidr": cidr})) == []


@pytest.mark.parametrize(
    ("cidr6", "why"),
    [
        ("::/0", "is wider than /48: a segment is one link (use a /48 or a longer prefix, usually a /64)"),
        (
            "2000::/3",
            "is wider than /48: a segment is one link (use a /48 or a longer prefix, usually a /64)",
        ),
        (
            "fd00::/8",
            "is wider than /48: a segment is one link (use a /48 or a longer prefix, usually a /64)",
        ),
        ("ff00::/8", f"is multicast (ff00::/8): {V6_RULE}"),
        ("ff02::/64", f"is multicast (ff00::/8): {V6_RULE}"),
        ("fe80::/64", f"is link-local (fe80::/10): {V6_RULE}"),
        ("fec0::/64", f"is site-local, deprecated (fec0::/10): {V6_RULE}"),
        ("::1/128", f"is the loopback address (::1/128): {V6_RULE}"),
        ("::/128", f"is the unspecified address (::/128): {V6_RULE}"),
        ("::ffff:0:0/96", f"is IPv4-mapped (::ffff:0:0/96): {V6_RULE}"),
        ("::ffff:10.1.1.0/120", f"is IPv4-mapped (::ffff:0:0/96): {V6_RULE}"),
        ("100::/64", f"is reserved (neither 2000::/3 nor fc00::/7): {V6_RULE}"),
    ],
)
def test_a_segment_cidr6_is_a_global_or_unique_local_prefix(cidr6: str, why: str) -> None:
    # (the text of an IPv4-mapped prefix depends on the Python version: print it as it does)
    assert problems(lab({"cidr": "10.0.0.0/24", "cidr6": cidr6})) == [
        f"tenants[lab].segments[s].cidr6: {ip_network(cidr6)} {why}"
    ]


@pytest.mark.parametrize(
    "cidr6", ["2001:db8::/48", "2001:db8:1:2::/64", "fd00:1::/64", "fd00::/127", "fd00::9/128"]
)
def test_global_and_unique_local_cidr6_from_a_slash_48_to_a_host_are_valid(cidr6: str) -> None:
    assert problems(lab({"cidr": "10.0.0.0/24", "cidr6": cidr6})) == []


@pytest.mark.parametrize(
    ("gateway6", "why"),
    [
        ("ff02::1", "multicast"),
        ("::1", "the loopback address"),
        ("::", "the unspecified address"),
        ("::ffff:10.0.0.1", "IPv4-mapped"),
        ("fe80::1", "link-local"),
        ("fec0::1", "site-local, deprecated"),
    ],
)
def test_gateway6_is_a_global_unicast_address(gateway6: str, why: str) -> None:
    d = lab({"cidr": "10.0.0.0/24", "cidr6": "fd00::/64", "gateway6": gateway6})
    assert problems(d) == [
        f"tenants[lab].segments[s].gateway6: {ip_address(gateway6)} is {why}: a gateway6 is a global address"
    ]


def test_gateway6_inside_a_nonsensical_cidr6_is_refused_too() -> None:
    d = lab({"cidr": "10.0.0.0/24", "cidr6": "::/0", "gateway6": "::1"})
    assert problems(d) == [
        "tenants[lab].segments[s].cidr6: ::/0 is wider than /48: a segment is one link "
        "(use a /48 or a longer prefix, usually a /64)",
        "tenants[lab].segments[s].gateway6: ::1 is the loopback address: a gateway6 is a global address",
    ]
    d = lab({"cidr": "10.0.0.0/24", "cidr6": "ff00::/8", "gateway6": "ff02::1"})
    assert problems(d) == [
        f"tenants[lab].segments[s].cidr6: ff00::/8 is multicast (ff00::/8): {V6_RULE}",
        "tenants[lab].segments[s].gateway6: ff02::1 is multicast: a gateway6 is a global address",
    ]


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ({"proto": "tcp", "port": "90-80"}, ["services[0].port[0]: port range 90-80 is empty (start > end)"]),
        (
            {"proto": "tcp", "port": "http"},
            ["services[0].port: 'http' is not a port or a range like 8000-8080"],
        ),
        (
            {"proto": "tcp", "port": 70000},
            [
                "services[0].port[0].hi: Input should be less than or equal to 65535 (got 70000)",
                "services[0].port[0].lo: Input should be less than or equal to 65535 (got 70000)",
            ],
        ),
        (
            {"proto": "tcp", "port": []},
            ["services[0].port: an empty port list allows nothing; leave ports out to allow all"],
        ),
        ({"proto": "icmp", "port": 1}, ["services[0]: ports only apply to tcp or udp, not icmp"]),
        ({"proto": "tcp", "type": 8}, ["services[0]: type only applies to icmp or icmp6, not tcp"]),
        (
            {"proto": "any", "type": 8, "code": 0},
            ["services[0]: type only applies to icmp or icmp6, not any"],
        ),
        (
            {"proto": "icmp", "code": 4},
            ["services[0]: code 4 needs a type (an ICMP code only means something within its type)"],
        ),
        (
            {"proto": "icmp", "type": 256},
            ["services[0].type: Input should be less than or equal to 255 (got 256)"],
        ),
        (
            {"proto": "icmp", "type": 3, "code": -1},
            ["services[0].code: Input should be greater than or equal to 0 (got -1)"],
        ),
        ({"proto": "icmp", "type": True}, ["services[0].type: True is not a number (0-255)"]),
        (
            {"proto": "sctp"},
            ["services[0].proto: Input should be 'tcp', 'udp', 'icmp', 'icmp6' or 'any' (got 'sctp')"],
        ),
    ],
)
def test_invalid_services(service: dict[str, Any], expected: list[str]) -> None:
    d = doc()
    acme(d)["policies"][0]["services"] = [service]
    assert problems(d) == [f"tenants[acme].policies[web-db].{e}" for e in expected]


def test_invalid_vlan_and_dpid_and_link_text() -> None:
    d = doc()
    acme(d)["segments"][0]["vlan"] = 4095
    d["fabric"]["switches"][0]["dpid"] = "xyz"
    d["fabric"]["links"] = ["s1:1 - s2:1"]
    assert problems(d) == [
        "fabric.links[0]: 's1:1 - s2:1' is not of the form 'sw1:port <-> sw2:port'",
        "fabric.switches[s1].dpid: 'xyz' is not a datapath id",
        "tenants[acme].segments[web].vlan: Input should be less than or equal to 4094 (got 4095)",
    ]


# --------------------------------------------------------------------------- semantics


def test_ip_outside_segment_names_place_and_reason() -> None:
    d = doc()
    acme(d)["endpoints"][0]["ip"] = "10.1.9.4"
    assert problems(d) == ["tenants[acme].endpoints[web1].ip: 10.1.9.4 is outside segment web (10.1.1.0/24)"]


def test_link_local_addresses_are_link_local_unique_and_need_ipv6() -> None:
    d = doc()
    acme(d)["segments"][0]["cidr6"] = "fd01::/64"
    web1, web2 = acme(d)["endpoints"][:2]
    web1.update(ipv6="fd01::10", ipv6_link_local="fd01::99")
    web2["ipv6_link_local"] = "fe80::1"
    assert problems(d) == [
        "tenants[acme].endpoints[web1].ipv6_link_local: fd01::99 is not a link-local address (fe80::/64)",
        "tenants[acme].endpoints[web2].ipv6_link_local: needs ipv6 (IPv6 goes only between endpoints "
        "that declare one)",
    ]
    # a declared address may not be one another endpoint derives from its MAC (EUI-64)
    web2.update(ipv6="fd01::11", ipv6_link_local=None)
    web1["ipv6_link_local"] = "fe80::ff:fe00:102"
    assert web2["mac"] == "02:00:00:00:01:02"
    assert problems(d) == [
        "tenants[acme].endpoints[web2].mac: its link-local address fe80::ff:fe00:102 (from its MAC) "
        "is also the address of web1"
    ]
    web1["ipv6_link_local"] = "fe80::10%eth0"  # a zone index: no OpenFlow match could hold it
    assert problems(d) == [
        "tenants[acme].endpoints[web1].ipv6_link_local: fe80::10%eth0: an address with a zone index; "
        "write the address alone"
    ]
    web1["ipv6_link_local"] = "fe80::10"
    net = resolve(intent_from_document(d))
    a, b = net.endpoint("acme", "web1"), net.endpoint("acme", "web2")
    assert (str(a.ipv6_link_local), str(b.ipv6_link_local)) == ("fe80::10", "fe80::ff:fe00:102")
    db1 = net.endpoint("acme", "db1")
    assert db1.ipv6_link_local is None and db1.ipv6_sources == ()


def test_ip_on_network_broadcast_or_gateway() -> None:
    d = doc()
    acme(d)["endpoints"][0]["ip"] = "10.1.1.255"
    acme(d)["endpoints"][1]["ip"] = "10.1.1.1"
    assert problems(d) == [
        "tenants[acme].endpoints[web1].ip: 10.1.1.255 is the network or broadcast address of 10.1.1.0/24",
        "tenants[acme].endpoints[web2].ip: 10.1.1.1 is the gateway of segment web",
    ]


@pytest.mark.parametrize(
    ("kind", "index", "location", "message"),
    [
        ("segments", 0, "tenants[acme].segments[web]", "duplicate name in segments"),
        ("endpoints", 0, "tenants[acme].endpoints[web1]", "duplicate name in endpoints"),
        ("groups", 0, "tenants[acme].groups[webs]", "duplicate name in groups"),
        ("policies", 0, "tenants[acme].policies[web-db]", "duplicate name in policies"),
    ],
)
def test_duplicate_names_inside_a_tenant(kind: str, index: int, location: str, message: str) -> None:
    d = doc()
    item = copy.deepcopy(acme(d)[kind][index])
    if kind == "segments":
        item["cidr"], item["gateway"] = "10.1.7.0/24", "10.1.7.1"
    if kind == "endpoints":
        item.update(mac="02:00:00:00:01:99", ip="10.1.1.99", attach="s1:99")
    acme(d)[kind].append(item)
    assert f"{location}: {message}" in problems(d)
    if kind in ("groups", "policies"):
        assert problems(d) == [f"{location}: {message}"]


def test_duplicate_tenant_switch_shared_service_names() -> None:
    d = doc()
    d["tenants"].append({"name": "acme"})
    d["fabric"]["switches"].append({"name": "s1", "dpid": 9})
    d["shared_services"].append(copy.deepcopy(d["shared_services"][0]))
    found = problems(d)
    assert "tenants[acme]: duplicate tenant name" in found
    assert "fabric.switches[s1]: duplicate switch name" in found
    assert "shared_services[dns]: duplicate shared service name" in found


def test_duplicate_dpid_and_tenant_id() -> None:
    d = doc()
    d["fabric"]["switches"][1]["dpid"] = "0x1"
    d["tenants"][0]["id"] = 7
    d["tenants"][1]["id"] = 7
    assert problems(d) == [
        "fabric.switches[s1].dpid: datapath id 0x1 is used twice",
        "fabric.switches[s2].dpid: datapath id 0x1 is used twice",
        "tenants[acme].id: tenant id 7 is used twice",
        "tenants[infra].id: tenant id 7 is used twice",
    ]


def test_duplicate_mac_or_ip_inside_a_tenant() -> None:
    d = doc()
    acme(d)["endpoints"][1]["mac"] = "02:00:00:00:01:01"
    acme(d)["endpoints"][1]["ip"] = "10.1.1.10"
    assert problems(d) == [
        "tenants[acme].endpoints[web2].ip: 10.1.1.10 is also the address of web1",
        "tenants[acme].endpoints[web2].mac: 02:00:00:00:01:01 is also the MAC of web1",
    ]


def test_same_addresses_in_two_tenants_are_valid() -> None:
    d = doc()
    d["tenants"].append(copy.deepcopy(acme(d)))
    d["tenants"][-1]["name"] = "globex"
    for i, ep in enumerate(d["tenants"][-1]["endpoints"]):
        ep["attach"] = f"s2:{20 + i}"
        ep["mac"] = f"02:00:00:00:02:0{i}"
    assert problems(d) == []
    net = resolve(intent_from_document(d))
    assert net.endpoint("acme", "web1").ip == net.endpoint("globex", "web1").ip


def test_overlapping_segments_inside_one_tenant() -> None:
    d = doc()
    acme(d)["segments"][1]["cidr"] = "10.1.0.0/16"
    acme(d)["segments"][1]["gateway"] = "10.1.0.1"
    acme(d)["endpoints"][2]["ip"] = "10.1.3.10"
    assert problems(d) == ["tenants[acme].segments[web].cidr: 10.1.1.0/24 overlaps segment db (10.1.0.0/16)"]


def test_two_endpoints_on_one_port_even_across_tenants() -> None:
    d = doc()
    d["tenants"][1]["endpoints"][0]["attach"] = "s1:10"
    assert problems(d) == ["tenants[infra].endpoints[dns1].attach: port s1:10 is already bound to acme/web1"]


def test_endpoint_on_a_fabric_port() -> None:
    d = doc()
    acme(d)["endpoints"][0]["attach"] = "s2:1"
    assert problems(d) == ["tenants[acme].endpoints[web1].attach: port s2:1 is a fabric (inter-switch) port"]


def test_endpoint_on_unknown_switch() -> None:
    d = doc()
    acme(d)["endpoints"][0]["attach"] = "s9:1"
    assert problems(d) == ["tenants[acme].endpoints[web1].attach: unknown switch s9"]


def test_links_to_unknown_switches_reused_ports_and_loops() -> None:
    d = doc()
    d["fabric"]["links"] += ["s1:1 <-> s2:2", "s1:5 <-> s3:1", "s2:7 <-> s2:8"]
    assert problems(d) == [
        "fabric.links[1]: port s1:1 is already used by fabric.links[0] (s1:1 <-> s2:1)",
        "fabric.links[2]: s1:5 <-> s3:1: unknown switch s3",
        "fabric.links[3]: s2:7 <-> s2:8 joins switch s2 to itself",
    ]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: acme(d)["endpoints"][0].update(segment="app"),
            "tenants[acme].endpoints[web1].segment: unknown segment app",
        ),
        (
            lambda d: acme(d)["groups"][0]["members"].append("web9"),
            "tenants[acme].groups[webs].members: unknown endpoint web9",
        ),
        (
            lambda d: acme(d)["policies"][0].update({"from": {"group": "apps"}}),
            "tenants[acme].policies[web-db].from.group: unknown group apps",
        ),
        (
            lambda d: acme(d)["policies"][0].update(to={"endpoint": "db9"}),
            "tenants[acme].policies[web-db].to.endpoint: unknown endpoint db9",
        ),
        (
            lambda d: acme(d)["policies"][0].update(to={"segment": "app"}),
            "tenants[acme].policies[web-db].to.segment: unknown segment app",
        ),
        (
            lambda d: acme(d)["policies"][0].update(to={"endpoint": "dns1"}),
            "tenants[acme].policies[web-db].to.endpoint: unknown endpoint dns1 in tenant acme (tenant infra "
            "has one: a policy stays inside its tenant; cross-tenant traffic is declared in shared_services)",
        ),
        (
            lambda d: d["shared_services"][0]["provider"].update(tenant="nope"),
            "shared_services[dns].provider.tenant: unknown tenant nope",
        ),
        (
            lambda d: d["shared_services"][0]["provider"].update(endpoints=["dns9"]),
            "shared_services[dns].provider.endpoints: unknown endpoint dns9 in tenant infra",
        ),
        (
            lambda d: d["shared_services"][0]["provider"].update(endpoints=None, group="g"),
            "shared_services[dns].provider.group: unknown group g in tenant infra",
        ),
        (
            lambda d: d["shared_services"][0]["consumers"].append({"tenant": "nope"}),
            "shared_services[dns].consumers[1].tenant: unknown tenant nope",
        ),
        (
            lambda d: d["shared_services"][0]["consumers"][0].update(group="g"),
            "shared_services[dns].consumers[0].group: unknown group g in tenant acme",
        ),
        (
            lambda d: d["shared_services"][0]["consumers"].append({"tenant": "infra"}),
            "shared_services[dns].consumers[1].tenant: "
            "the provider's own tenant is not a consumer; use a policy",
        ),
    ],
    ids=[
        "segment",
        "member",
        "from-group",
        "to-endpoint",
        "to-segment",
        "other-tenant-endpoint",
        "provider-tenant",
        "provider-endpoint",
        "provider-group",
        "consumer-tenant",
        "consumer-group",
        "own-tenant",
    ],
)
def test_unknown_references(mutate: Any, expected: str) -> None:
    d = doc()
    mutate(d)
    assert problems(d) == [expected]


def test_a_provider_endpoint_listed_twice_is_refused() -> None:
    d = doc()
    d["shared_services"][0]["provider"]["endpoints"] = ["dns1", "dns1"]
    assert problems(d) == ["shared_services[dns].provider.endpoints: dns1 is listed twice"]
    d["shared_services"][0]["provider"]["tenant"] = "nope"  # reported with an unknown provider tenant too
    d["shared_services"][0]["consumers"].append({"tenant": "acme"})
    assert problems(d) == [
        "shared_services[dns].consumers[1]: tenant acme is listed twice (also consumers[0])",
        "shared_services[dns].provider.endpoints: dns1 is listed twice",
        "shared_services[dns].provider.tenant: unknown tenant nope",
    ]


def test_a_consumer_listed_twice_is_refused() -> None:
    d = doc()
    consumers = d["shared_services"][0]["consumers"]
    consumers += [
        {"tenant": "acme", "group": "webs"},
        {"tenant": "acme"},
        {"tenant": "acme", "group": "webs"},
    ]
    assert problems(d) == [
        "shared_services[dns].consumers[1]: tenant acme is already a consumer as a whole "
        "(consumers[0]); its group webs adds nothing",
        "shared_services[dns].consumers[2]: tenant acme is listed twice (also consumers[0])",
        "shared_services[dns].consumers[3]: tenant acme group webs is listed twice (also consumers[1])",
    ]


def test_two_groups_of_one_consumer_tenant_are_valid() -> None:
    d = doc()
    acme(d)["groups"].append({"name": "dbs", "members": ["db1"]})
    d["shared_services"][0]["consumers"] = [
        {"tenant": "acme", "group": "webs"},
        {"tenant": "acme", "group": "dbs"},
    ]
    assert problems(d) == []


def test_provider_and_consumer_address_spaces_must_not_overlap() -> None:
    d = doc()
    d["tenants"][1]["segments"][0].update(cidr="10.1.0.0/16", gateway="10.1.0.1")
    d["tenants"][1]["endpoints"][0]["ip"] = "10.1.9.53"
    assert problems(d) == [
        "shared_services[dns].consumers[0]: consumer segment acme/db (10.1.3.0/24) overlaps "
        "provider segment infra/svc (10.1.0.0/16); NAT is not supported",
        "shared_services[dns].consumers[0]: consumer segment acme/web (10.1.1.0/24) overlaps "
        "provider segment infra/svc (10.1.0.0/16); NAT is not supported",
    ]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (
            {"endpoint": "infra/dns1"},
            "tenants[acme].policies[web-db].to.endpoint: infra/dns1 is an endpoint of tenant infra: "
            "a policy stays inside its tenant; cross-tenant traffic is declared in shared_services",
        ),
        (
            {"endpoints": ["db1", "bank/db1"]},
            "tenants[acme].policies[web-db].to.endpoints: bank/db1 is an endpoint of tenant bank: "
            "a policy stays inside its tenant; cross-tenant traffic is declared in shared_services",
        ),
        (
            {"segment": "infra/svc"},
            "tenants[acme].policies[web-db].to.segment: infra/svc is a segment of tenant infra: "
            "a policy stays inside its tenant; cross-tenant traffic is declared in shared_services",
        ),
        (
            {"endpoint": "acme/db1"},
            "tenants[acme].policies[web-db].to.endpoint: acme/db1: a policy names its own tenant's "
            "objects without the prefix; write db1",
        ),
        (
            {"endpoints": ["db1", "db1"]},
            "tenants[acme].policies[web-db].to.endpoints: db1 is listed twice",
        ),
        (
            {"endpoints": ["db1", "db9"]},
            "tenants[acme].policies[web-db].to.endpoints: unknown endpoint db9",
        ),
    ],
    ids=[
        "other-tenant",
        "other-tenant-in-list",
        "other-segment",
        "own-prefix",
        "listed-twice",
        "unknown-in-list",
    ],
)
def test_selectors_naming_another_tenant_say_where_cross_tenant_traffic_goes(
    selector: dict[str, Any], expected: str
) -> None:
    d = doc()
    acme(d)["policies"][0]["to"] = selector
    assert problems(d) == [expected]


def test_selector_endpoints_list_selects_those_endpoints() -> None:
    d = doc()
    acme(d)["policies"][0].update({"from": {"endpoints": ["web2", "web1"]}, "to": {"endpoints": ["db1"]}})
    assert problems(d) == []
    network = resolve(intent_from_document(d))
    policy = network.policies("acme")[0]
    assert [ep.name for ep in network.select("acme", policy.from_)] == ["web1", "web2"]  # document order
    assert policy.from_.describe() == "endpoints web2,web1"
    d["tenants"][0]["policies"][0]["to"] = {"endpoints": []}
    assert problems(d) == [
        "tenants[acme].policies[web-db].to.endpoints: an empty endpoint list selects nothing"
    ]


def test_protocol_names_are_case_insensitive() -> None:
    d = doc()
    acme(d)["policies"][0]["services"] = [{"proto": "TCP", "port": 5432}, {"proto": "Icmp"}]
    assert problems(d) == []
    services = intent_from_document(d).tenants[0].policies[0].services
    assert [s.proto for s in services] == ["tcp", "icmp"]


def test_policy_across_segments_needs_their_gateways() -> None:
    d = doc()
    d["shared_services"] = []  # consumers need gateways too: keep to policies here
    del acme(d)["segments"][0]["gateway"]  # web, the sending side of web-db
    assert problems(d) == [
        "tenants[acme].policies[web-db]: segment web has no gateway, so web1 cannot reach db1 in segment db "
        "(traffic between segments is routed through the gateway); give segment web a gateway"
    ]
    d = doc()
    d["shared_services"] = []
    del acme(d)["segments"][1]["gateway"]  # db: the replies of the stateful policy need it
    assert problems(d) == [
        "tenants[acme].policies[web-db]: segment db has no gateway, so db1 cannot reply to web1 in "
        "segment web (replies are routed through the gateway); give segment db a gateway"
    ]
    acme(d)["policies"][0]["stateful"] = False  # no replies: the receiver never routes back
    assert problems(d) == []
    d = doc()
    for seg in acme(d)["segments"]:
        del seg["gateway"]
    d["shared_services"] = []
    acme(d)["policies"][0].update({"from": {"endpoint": "web1"}, "to": {"endpoint": "web2"}})  # one segment
    assert problems(d) == []


def test_shared_service_needs_gateways() -> None:
    d = doc()
    del d["tenants"][1]["segments"][0]["gateway"]
    assert problems(d) == [
        "shared_services[dns].provider: provider segment infra/svc has no gateway to route through"
    ]


def test_pinned_vlan_used_twice() -> None:
    d = doc()
    acme(d)["segments"][0]["vlan"] = 10
    d["tenants"][1]["segments"][0]["vlan"] = 10
    assert problems(d) == [
        "tenants[infra].segments[svc].vlan: VLAN 10 is already used by tenants[acme].segments[web].vlan"
    ]


def test_running_out_of_vlan_ids() -> None:
    per_tenant = 41
    n_tenants = len(VLAN_RANGE) // per_tenant + 1  # 4100 segments > 4093 VLAN ids
    d = {
        "fabric": {"switches": [{"name": "s1", "dpid": 1}]},
        "tenants": [
            {
                "name": f"t{t}",
                "segments": [{"name": f"g{s}", "cidr": f"10.0.{s}.0/24"} for s in range(per_tenant)],
            }
            for t in range(n_tenants)
        ],
    }
    count = per_tenant * n_tenants
    assert problems(d) == [f"tenants: {count} segments need fabric VLAN ids but only 4093 exist (2..4094)"]
    d["tenants"].pop()
    assert problems(d) == []
    vlans = [s.vlan for s in resolve(intent_from_document(d)).segments]
    assert len(set(vlans)) == len(vlans) and all(v in VLAN_RANGE for v in vlans)


def test_every_problem_is_reported_at_once() -> None:
    d = doc()
    acme(d)["endpoints"][0]["ip"] = "10.1.9.4"
    acme(d)["endpoints"][1]["mac"] = "02:00:00:00:01:03"  # db1's MAC
    acme(d)["endpoints"][2]["attach"] = "s1:1"
    acme(d)["groups"][0]["members"] = ["nobody"]
    acme(d)["policies"][0]["to"] = {"group": "dbs"}
    d["fabric"]["links"].append("s1:2 <-> s3:1")
    d["shared_services"][0]["consumers"].append({"tenant": "ghost"})
    assert problems(d) == [
        "fabric.links[1]: s1:2 <-> s3:1: unknown switch s3",
        "shared_services[dns].consumers[1].tenant: unknown tenant ghost",
        "tenants[acme].endpoints[db1].attach: port s1:1 is a fabric (inter-switch) port",
        "tenants[acme].endpoints[db1].mac: 02:00:00:00:01:03 is also the MAC of web2",
        "tenants[acme].endpoints[web1].ip: 10.1.9.4 is outside segment web (10.1.1.0/24)",
        "tenants[acme].groups[webs].members: unknown endpoint nobody",
        "tenants[acme].policies[web-db].to.group: unknown group dbs",
    ]


def test_every_shape_problem_is_reported_at_once() -> None:
    d = doc()
    acme(d)["endpoints"][0]["mac"] = "nope"
    acme(d)["endpoints"][1]["colour"] = "red"
    d["tenants"][1]["segments"][0]["cidr"] = "10.9.0.1/24"
    assert problems(d) == [
        "tenants[acme].endpoints[web1].mac: 'nope' is not a MAC address (expected aa:bb:cc:dd:ee:ff)",
        "tenants[acme].endpoints[web2].colour: "
        "unknown key (not part of the intent format; check the spelling)",
        "tenants[infra].segments[svc].cidr: 10.9.0.1/24 has host bits set; did you mean 10.9.0.0/24?",
    ]


# --------------------------------------------------------------------------- files


def test_yaml_syntax_error_gives_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nfabric:\n  switches: [\n    {name: s1, dpid: 1}\n  links: []\n")
    intent, found = check_file(path)
    assert intent is None
    assert len(found) == 1
    assert found[0].source == f"{path}:5"
    assert found[0].message.startswith("YAML syntax error")


def test_semantic_problems_carry_the_line_of_their_place(tmp_path: Path) -> None:
    d = doc()
    acme(d)["endpoints"][1]["ip"] = "10.1.9.4"
    path = tmp_path / "intent.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    _, found = check_file(path)
    lines = path.read_text().splitlines()
    assert [(p.location, p.message) for p in found] == [
        ("tenants[acme].endpoints[web2].ip", "10.1.9.4 is outside segment web (10.1.1.0/24)")
    ]
    line = int(found[0].source.rpartition(":")[2])
    assert lines[line - 1].strip() == "ip: 10.1.9.4"
    with pytest.raises(IntentError) as err:
        load_checked(path)
    assert err.value.problems == found


def test_shape_problems_carry_a_line(tmp_path: Path) -> None:
    d = doc()
    acme(d)["endpoints"][2]["adress"] = "x"
    path = tmp_path / "intent.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    _, found = check_file(path)
    line = int(found[0].source.rpartition(":")[2])
    assert path.read_text().splitlines()[line - 1].strip() == "adress: x"


def test_json_loads_and_json_errors_have_lines(tmp_path: Path) -> None:
    good = tmp_path / "intent.json"
    good.write_text(json.dumps(doc(), indent=2))
    net = load_network(good)
    assert [ep.name for ep in net.endpoints] == ["web1", "web2", "db1", "dns1"]
    d = doc()
    acme(d)["endpoints"][0]["ip"] = "10.1.9.4"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d, indent=2))
    _, found = check_file(bad)
    line = int(found[0].source.rpartition(":")[2])
    assert '"ip": "10.1.9.4"' in bad.read_text().splitlines()[line - 1]
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "version": 1,\n  "fabric": {\n}\n')
    _, found = check_file(broken)
    assert found[0].source == f"{broken}:5" and "JSON syntax error" in found[0].message


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert check_file(missing)[1] == [
        Problem("", "cannot read intent: No such file or directory", str(missing))
    ]
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    assert check_file(listing)[1] == [
        Problem("", "an intent is a mapping with fabric and tenants", str(listing))
    ]
    with pytest.raises(IntentError):
        load_intent_text("", source="empty.yaml")


def test_problems_sort_by_numeric_line() -> None:
    err = IntentError([Problem("b", "x", "f.yaml:10"), Problem("a", "y", "f.yaml:9"), Problem("c", "z", "")])
    assert [p.source for p in err.problems] == ["", "f.yaml:9", "f.yaml:10"]
