"""External networks in the intent: one test per refusal of ``validate_external`` (the exact
place and reason), and ``examples/internet.yaml`` resolved."""

from __future__ import annotations

import copy
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from support.problems import problems

from segctl.topology.load import check_file, intent_from_document
from segctl.topology.network import ExternalInfo, load_network, resolve
from segctl.topology.validate_external import MAX_EXTERNALS, MAX_SEGMENTS_WITH_EXTERNALS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROUTER_MAC = "02:00:5e:00:01:01"


def _ep(name: str, segment: str, mac: int, ip: str, attach: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "segment": segment, "mac": f"02:00:00:00:00:{mac:02x}", "ip": ip, "attach": attach,
            **extra}  # fmt: skip


BASE: dict[str, Any] = {
    "fabric": {
        "switches": [{"name": "s1", "dpid": 1}, {"name": "s2", "dpid": 2}],
        "links": ["s1:1 <-> s2:1"],
        "externals": [
            {
                "name": "internet",
                "attach": ["s2:48"],
                "router": {"ip": "198.51.100.1", "mac": ROUTER_MAC},
                "cidr": "198.51.100.0/24",
            }
        ],
    },
    "tenants": [
        {
            "name": "acme",
            "snat": {"internet": "198.51.100.10"},
            "segments": [
                {"name": "web", "cidr": "10.0.1.0/24", "gateway": "10.0.1.1"},
                {"name": "app", "cidr": "10.0.2.0/24", "gateway": "10.0.2.1"},
            ],
            "endpoints": [
                _ep("web1", "web", 1, "10.0.1.10", "s1:10", floating_ip="198.51.100.20"),
                _ep("app1", "app", 2, "10.0.2.10", "s1:11"),
                _ep("app2", "app", 3, "10.0.2.11", "s2:11"),
            ],
            "policies": [
                {
                    "name": "updates",
                    "from": {"segment": "app"},
                    "to": {"external": "internet", "except": ["10.0.0.0/8", "192.168.0.0/16"]},
                    "services": [{"proto": "tcp", "port": 443}],
                },
                {
                    "name": "public-web",
                    "from": {"external": "internet", "except": ["10.0.0.0/8"]},
                    "to": {"endpoint": "web1"},
                    "services": [{"proto": "tcp", "ports": [80, 443]}],
                },
            ],
        },
        {
            "name": "globex",
            "snat": {"internet": "198.51.100.11"},
            "segments": [{"name": "web", "cidr": "10.0.1.0/24", "gateway": "10.0.1.1"}],
            "endpoints": [
                _ep("gweb1", "web", 4, "10.0.1.10", "s1:12"),
                _ep("gweb2", "web", 5, "10.0.1.11", "s2:12"),
            ],
            "policies": [
                {
                    "name": "out",
                    "from": {"segment": "web"},
                    "to": {"external": "internet", "cidr": "203.0.113.0/24"},
                    "services": [{"proto": "tcp", "port": 80}],
                }
            ],
        },
    ],
}


def doc() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def internet(d: dict[str, Any]) -> dict[str, Any]:
    return d["fabric"]["externals"][0]


def acme(d: dict[str, Any]) -> dict[str, Any]:
    return d["tenants"][0]


def policy(d: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for t in d["tenants"] for p in t["policies"] if p["name"] == name)


def test_base_document_is_valid_and_resolves() -> None:
    assert problems(doc()) == []
    net = resolve(intent_from_document(doc()))
    assert [x.name for x in net.externals] == ["internet"]
    assert net.endpoint("acme", "web1").floating_external == "internet"


# --------------------------------------------------------------------- the example


def test_the_example_is_valid_and_resolves() -> None:
    path = EXAMPLES / "internet.yaml"
    assert check_file(path)[1] == []
    net = load_network(path)
    assert net.externals == (
        ExternalInfo(
            name="internet",
            index=1,
            switch="edge2",
            port=48,
            router_ip=IPv4Address("198.51.100.1"),
            router_mac=ROUTER_MAC,
            cidr=IPv4Network("198.51.100.0/24"),
            mac="02:5e:ff:00:00:01",
            attach=(("edge2", 48), ("edge1", 48)),
        ),
    )
    assert net.externals[0].standby == (("edge1", 48),)
    assert net.external("internet") is net.externals[0]
    assert net.tenant("acme").snat == (("internet", IPv4Address("198.51.100.10")),)
    assert net.tenant("globex").snat_address("internet") == IPv4Address("198.51.100.11")
    assert net.tenant("acme").snat_address("elsewhere") is None
    floating = {ep.qualified: (ep.floating_ip, ep.floating_external) for ep in net.endpoints}
    assert floating == {
        "acme/web1": (IPv4Address("198.51.100.20"), "internet"),
        "acme/app1": (None, None),
        "acme/app2": (None, None),
        "globex/gweb1": (None, None),
        "globex/gweb2": (None, None),
    }
    updates = next(p for p in net.policies("acme") if p.name == "updates")
    assert net.select("acme", updates.to) == []  # the outside is no endpoint
    assert [ep.name for ep in net.select("acme", updates.from_)] == ["app1", "app2"]


# --------------------------------------------------------------------- fabric.externals


def test_external_names_are_unique() -> None:
    d = doc()
    twin = copy.deepcopy(internet(d))
    twin.update(attach=["s2:49"], cidr="203.0.113.0/24", router={"ip": "203.0.113.1", "mac": ROUTER_MAC})
    d["fabric"]["externals"].append(twin)
    assert problems(d) == ["fabric.externals[internet]: duplicate external network name"]


def test_at_most_sixteen_external_networks() -> None:
    d = doc()
    d["fabric"]["externals"] += [
        {"name": f"x{i}", "attach": [f"s2:{100 + i}"], "cidr": f"192.0.{i}.0/24",
         "router": {"ip": f"192.0.{i}.1", "mac": ROUTER_MAC}}
        for i in range(MAX_EXTERNALS)
    ]  # fmt: skip
    assert problems(d) == ["fabric.externals: 17 external networks: at most 16 are supported"]
    d["fabric"]["externals"].pop()
    assert problems(d) == []


def test_tenant_id_4095_is_reserved_with_externals() -> None:
    d = doc()
    d["tenants"][0]["id"] = 4095
    assert problems(d) == [
        "tenants[acme].id: tenant id 4095 is reserved when the fabric has external networks: the pipeline "
        "marks what comes from the outside with it; give the tenant another id"
    ]
    del d["fabric"]["externals"]
    for tenant in d["tenants"]:
        tenant.pop("snat", None)
        tenant["policies"] = [p for p in tenant.get("policies", []) if "external" not in str(p)]
        for ep in tenant["endpoints"]:
            ep.pop("floating_ip", None)
    assert problems(d) == []  # without external networks the id is a tenant's like any other


def test_redundant_uplink_ports_are_distinct_free_edge_ports() -> None:
    d = doc()
    internet(d)["attach"] = ["s2:48", "s1:48"]
    assert problems(d) == []
    internet(d)["attach"] = ["s2:48", "s1:48", "s2:48", "s1:10", "s9:1"]
    assert problems(d) == [
        "fabric.externals[internet].attach: 5 uplink ports: at most 4 (one active, the rest standby)",
        "fabric.externals[internet].attach[2]: port s2:48 is listed twice",
        "fabric.externals[internet].attach[3]: port s1:10 is already bound to acme/web1",
        "fabric.externals[internet].attach[4]: unknown switch s9",
    ]


def test_an_external_needs_an_attach_port() -> None:
    d = doc()
    internet(d)["attach"] = []
    assert problems(d) == [
        "fabric.externals[internet].attach: List should have at least 1 item after validation, not 0"
    ]


@pytest.mark.parametrize(
    ("attach", "message"),
    [
        ("s9:48", "unknown switch s9"),
        ("s1:10", "port s1:10 is already bound to acme/web1"),
        ("s2:1", "port s2:1 is a fabric (inter-switch) port"),
    ],
)
def test_the_uplink_port_is_free(attach: str, message: str) -> None:
    d = doc()
    internet(d)["attach"] = [attach]
    assert problems(d) == [f"fabric.externals[internet].attach[0]: {message}"]


def test_the_uplink_port_is_not_another_externals() -> None:
    d = doc()
    d["fabric"]["externals"].append(
        {"name": "transit", "attach": ["s2:48"], "cidr": "203.0.113.0/24",
         "router": {"ip": "203.0.113.1", "mac": ROUTER_MAC}}
    )  # fmt: skip
    assert problems(d) == [
        "fabric.externals[transit].attach[0]: port s2:48 is already the uplink of external network internet"
    ]


@pytest.mark.parametrize(
    ("ip", "message"),
    [
        ("203.0.113.1", "203.0.113.1 is outside the network's cidr 198.51.100.0/24"),
        ("198.51.100.0", "198.51.100.0 is the network or broadcast address of 198.51.100.0/24"),
        ("198.51.100.255", "198.51.100.255 is the network or broadcast address of 198.51.100.0/24"),
    ],
)
def test_the_router_address_is_a_host_of_the_cidr(ip: str, message: str) -> None:
    d = doc()
    internet(d)["router"]["ip"] = ip
    assert problems(d) == [f"fabric.externals[internet].router.ip: {message}"]


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff"])
def test_the_router_mac_is_unicast(mac: str) -> None:
    d = doc()
    internet(d)["router"]["mac"] = mac
    assert problems(d) == [
        f"fabric.externals[internet].router.mac: {mac} is a multicast MAC address; "
        "an endpoint needs a unicast one"
    ]


def test_the_fabric_mac_is_unicast() -> None:
    d = doc()
    internet(d)["mac"] = "ff:ff:ff:ff:ff:ff"
    assert problems(d) == ["fabric.externals[internet].mac: ff:ff:ff:ff:ff:ff is a multicast MAC address; "
                           "an endpoint needs a unicast one"]  # fmt: skip


@pytest.mark.parametrize(
    ("mac", "owner"),
    [
        (ROUTER_MAC, "the router's MAC (router.mac)"),
        ("02:aa:00:00:00:01", "the gateway MAC of tenant acme"),
        ("02:00:00:00:00:04", "the MAC of endpoint globex/gweb1"),
    ],
)
def test_the_fabric_mac_is_its_own(mac: str, owner: str) -> None:
    d = doc()
    acme(d)["gateway_mac"] = "02:aa:00:00:00:01"
    internet(d)["mac"] = mac
    assert problems(d) == [
        f"fabric.externals[internet].mac: {mac} is also {owner}: the fabric needs its own MAC on the uplink"
    ]


def test_the_public_range_is_outside_every_tenant() -> None:
    d = doc()
    d["tenants"][1]["segments"][0]["cidr"] = "198.51.100.0/25"
    d["tenants"][1]["segments"][0]["gateway"] = "198.51.100.1"
    for ep, ip in zip(d["tenants"][1]["endpoints"], ("198.51.100.12", "198.51.100.13"), strict=True):
        ep["ip"] = ip
    d["tenants"][1]["policies"] = []
    assert problems(d) == [
        "fabric.externals[internet].cidr: 198.51.100.0/24 overlaps segment globex/web (198.51.100.0/25): "
        "the public range of an external network is outside every tenant"
    ]


# --------------------------------------------------------------------- snat


def test_snat_names_an_external_network() -> None:
    d = doc()
    acme(d)["snat"] = {"internte": "198.51.100.10"}
    assert "tenants[acme].snat.internte: unknown external network internte (external networks: internet)" in (
        problems(d)
    )
    d = doc()
    d["fabric"]["externals"] = []
    for t in d["tenants"]:
        t["policies"] = []
    acme(d)["endpoints"][0].pop("floating_ip")
    d["tenants"][1].pop("snat")
    assert problems(d) == [
        "tenants[acme].snat.internet: unknown external network internet "
        "(external networks: none: declare it in fabric.externals)"
    ]


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("203.0.113.10", "203.0.113.10 is outside external network internet (198.51.100.0/24)"),
        ("198.51.100.0", "198.51.100.0 is the network or broadcast address of 198.51.100.0/24"),
        ("198.51.100.255", "198.51.100.255 is the network or broadcast address of 198.51.100.0/24"),
        ("198.51.100.1", "198.51.100.1 is the router address of external network internet"),
    ],
)
def test_a_snat_address_is_a_public_address_of_its_network(address: str, message: str) -> None:
    d = doc()
    acme(d)["snat"] = {"internet": address}
    assert problems(d) == [f"tenants[acme].snat.internet: {message}"]


def test_snat_addresses_are_unique_across_tenants() -> None:
    d = doc()
    d["tenants"][1]["snat"] = {"internet": "198.51.100.10"}
    assert problems(d) == [
        "tenants[globex].snat.internet: 198.51.100.10 is also the snat address of tenant acme: each tenant "
        "needs its own (replies find their tenant by it)"
    ]


# --------------------------------------------------------------------- floating_ip

WEB1_FIP = "tenants[acme].endpoints[web1].floating_ip"
UPDATES = "tenants[acme].policies[updates]"
PUBLIC_WEB = "tenants[acme].policies[public-web]"


def test_a_floating_ip_is_inside_an_external_network() -> None:
    d = doc()
    acme(d)["endpoints"][0]["floating_ip"] = "203.0.113.20"
    assert problems(d)[0] == (
        f"{WEB1_FIP}: no external network holds 203.0.113.20, the floating IP of acme/web1 "
        "(external networks: internet 198.51.100.0/24)"
    )
    assert problems(d)[1].startswith(f"{PUBLIC_WEB}: web1 has no floating IP on external network internet")


def test_a_floating_ip_is_inside_one_external_network_only() -> None:
    d = doc()
    d["fabric"]["externals"].append(
        {"name": "wide", "attach": ["s1:48"], "cidr": "198.51.0.0/16",
         "router": {"ip": "198.51.0.1", "mac": ROUTER_MAC}}
    )  # fmt: skip
    assert problems(d) == [
        f"{WEB1_FIP}: 198.51.100.20 is inside several external networks (internet 198.51.100.0/24, "
        "wide 198.51.0.0/16); it must be in one"
    ]


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("198.51.100.0", "198.51.100.0 is the network or broadcast address of 198.51.100.0/24"),
        ("198.51.100.255", "198.51.100.255 is the network or broadcast address of 198.51.100.0/24"),
        ("198.51.100.1", "198.51.100.1 is the router address of external network internet"),
        ("198.51.100.11", "198.51.100.11 is the snat address of tenant globex"),
    ],
)
def test_a_floating_ip_is_a_free_public_address(address: str, message: str) -> None:
    d = doc()
    acme(d)["endpoints"][0]["floating_ip"] = address
    assert problems(d) == [f"{WEB1_FIP}: {message}"]


def test_floating_ips_are_unique_across_endpoints() -> None:
    d = doc()
    d["tenants"][1]["endpoints"][0]["floating_ip"] = "198.51.100.20"
    assert problems(d) == [
        "tenants[globex].endpoints[gweb1].floating_ip: 198.51.100.20 is also the floating IP of acme/web1"
    ]


# --------------------------------------------------------------------- policy peers


def test_an_external_peer_names_an_external_network() -> None:
    d = doc()
    policy(d, "updates")["to"]["external"] = "internte"
    assert problems(d) == [
        f"{UPDATES}.to.external: unknown external network internte (external networks: internet)"
    ]


def test_a_policy_has_one_external_side_at_most() -> None:
    d = doc()
    policy(d, "updates")["from"] = {"external": "internet"}
    assert problems(d) == [
        f"{UPDATES}: from and to are both external networks: a policy has one side inside its tenant"
    ]


@pytest.mark.parametrize("key", ["cidr", "except"])
def test_cidr_and_except_need_external(key: str) -> None:
    d = doc()
    policy(d, "updates")["from"] = {"segment": "app", key: "10.0.0.0/8" if key == "cidr" else ["10.0.0.0/8"]}
    assert problems(d) == [f"{UPDATES}.from: cidr and except narrow an external peer: they need external"]


def test_an_except_prefix_lies_inside_the_cidr() -> None:
    d = doc()
    policy(d, "updates")["to"] = {
        "external": "internet",
        "cidr": "203.0.113.0/24",
        "except": ["192.0.2.0/24"],
    }
    assert problems(d) == [
        f"{UPDATES}.to.except[0]: 192.0.2.0/24 is outside 203.0.113.0/24: it excludes nothing"
    ]
    policy(d, "updates")["to"]["except"] = ["203.0.113.128/25", "203.0.0.0/16"]
    assert problems(d) == [
        f"{UPDATES}.to.except[1]: 203.0.0.0/16 is wider than 203.0.113.0/24: give a prefix inside it"
    ]


def test_an_external_peer_is_not_empty() -> None:
    d = doc()
    policy(d, "updates")["to"] = {"external": "internet", "cidr": "203.0.113.0/24",
                                  "except": ["203.0.113.0/25", "203.0.113.128/25"]}  # fmt: skip
    assert problems(d) == [f"{UPDATES}.to: except covers all of 203.0.113.0/24: the peer has no address left"]


def test_an_external_peer_leaves_out_the_tenants_segments() -> None:
    d = doc()
    policy(d, "updates")["to"] = {"external": "internet", "except": ["10.0.1.0/24"]}
    assert problems(d) == [
        f"{UPDATES}.to: external internet 0.0.0.0/0 except 10.0.1.0/24 includes segment app (10.0.2.0/24) of "
        "tenant acme: add 10.0.2.0/24 to except (an external peer is outside the tenant)"
    ]
    policy(d, "updates")["to"] = {"external": "internet", "cidr": "10.0.2.128/25"}
    assert problems(d) == [
        f"{UPDATES}.to: external internet 10.0.2.128/25 includes segment app (10.0.2.0/24) of tenant acme: "
        "narrow cidr to leave out 10.0.2.0/24 (an external peer is outside the tenant)"
    ]
    policy(d, "public-web")["from"] = {"external": "internet"}
    assert len(problems(d)) == 3  # the ingress peer too, for web and app


def test_another_tenants_addresses_are_outside() -> None:
    d = doc()
    policy(d, "out")["to"] = {"external": "internet", "cidr": "10.0.2.0/24"}  # acme's app, not globex's
    assert problems(d) == []


def test_an_egress_grant_needs_a_way_out() -> None:
    d = doc()
    acme(d).pop("snat")
    assert problems(d) == [
        f"{UPDATES}: app1, app2 have no way out to external network internet: give tenant acme a snat "
        "address there (snat: {internet: ADDRESS}) or each a floating_ip in 198.51.100.0/24"
    ]
    policy(d, "updates")["from"] = {"endpoint": "app1"}
    assert problems(d) == [
        f"{UPDATES}: app1 has no way out to external network internet: give tenant acme a snat address "
        "there (snat: {internet: ADDRESS}) or it a floating_ip in 198.51.100.0/24"
    ]


def test_floating_ips_are_a_way_out_without_snat() -> None:
    d = doc()
    acme(d).pop("snat")
    policy(d, "updates")["from"] = {"endpoint": "web1"}
    assert problems(d) == []
    d["fabric"]["externals"].append(
        {"name": "transit", "attach": ["s1:48"], "cidr": "203.0.113.0/24",
         "router": {"ip": "203.0.113.1", "mac": ROUTER_MAC}}
    )  # fmt: skip
    policy(d, "updates")["to"]["external"] = "transit"  # web1's floating IP is on internet
    # (public-web's peer, the whole internet, would share addresses with updates' on transit)
    acme(d)["policies"] = [p for p in acme(d)["policies"] if p["name"] != "public-web"]
    assert problems(d) == [
        f"{UPDATES}: web1 has no way out to external network transit: give tenant acme a snat address "
        "there (snat: {transit: ADDRESS}) or it a floating_ip in 203.0.113.0/24"
    ]


def test_an_ingress_grant_reaches_floating_ips_only() -> None:
    d = doc()
    policy(d, "public-web")["to"] = {"segment": "app"}
    assert problems(d) == [
        f"{PUBLIC_WEB}: app1, app2 have no floating IP on external network internet: the outside reaches an "
        "endpoint only through its floating IP; give each a floating_ip in 198.51.100.0/24"
    ]


def test_a_deny_to_or_from_the_outside_needs_no_way_out() -> None:
    d = doc()
    acme(d).pop("snat")
    for name in ("updates", "public-web"):
        policy(d, name)["action"] = "deny"
    policy(d, "public-web")["to"] = {"segment": "app"}
    assert problems(d) == []
    policy(d, "updates")["to"]["except"] = ["10.0.1.0/24"]  # the peer rules hold for a deny too
    assert len(problems(d)) == 1


def test_the_outside_is_routed_through_the_gateway() -> None:
    d = doc()
    acme(d)["segments"][1].pop("gateway")
    assert problems(d) == [
        f"{UPDATES}: segment app has no gateway, so app1 cannot exchange traffic with external network "
        "internet (it is routed through the gateway); give segment app a gateway"
    ]


def test_an_unknown_inside_selector_is_reported_once() -> None:
    d = doc()
    policy(d, "updates")["from"] = {"group": "apps"}
    assert problems(d) == [f"{UPDATES}.from.group: unknown group apps"]


# --------------------------------------------------------------------- segment contexts


def test_external_networks_leave_a_tenant_239_segments() -> None:
    d = doc()
    segments = [{"name": f"g{i}", "cidr": f"10.1.{i}.0/24"} for i in range(MAX_SEGMENTS_WITH_EXTERNALS - 2)]
    acme(d)["segments"] += segments
    assert problems(d) == []
    acme(d)["segments"].append({"name": "one-more", "cidr": "10.2.0.0/24"})
    assert problems(d) == [
        "tenants[acme].segments: 240 segments: with external networks a tenant has at most 239 (the pipeline "
        "reserves 16 of its 255 segment contexts for external transit)"
    ]
    d["fabric"]["externals"] = []
    d["tenants"] = [acme(d)]
    acme(d)["policies"], acme(d)["snat"] = [], {}
    acme(d)["endpoints"][0].pop("floating_ip")
    assert problems(d) == []


def test_problems_carry_the_line_of_their_place(tmp_path: Path) -> None:
    text = (EXAMPLES / "internet.yaml").read_text().replace("snat: {internet: 198.51.100.11}",
                                                            "snat: {internet: 198.51.100.10}")  # fmt: skip
    path = tmp_path / "internet.yaml"
    path.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "198.51.100.10}" in s and i > 20)
    assert [str(p) for p in check_file(path)[1]] == [
        f"{path}:{line}: tenants[globex].snat.internet: 198.51.100.10 is also the snat address of tenant "
        "acme: each tenant needs its own (replies find their tenant by it)"
    ]


def test_an_except_list_is_bounded() -> None:
    """3,000 excluded prefixes took minutes to validate (each splits the peer in up to 32):
    more than MAX_EXCEPT is refused by the schema, naming the place."""
    from segctl.topology.schema import MAX_EXCEPT

    d = doc()
    peer = policy(d, "updates")["to"]
    peer["except"] = ["10.0.0.0/8"] + [f"1.{i // 256}.{i % 256}.7/32" for i in range(MAX_EXCEPT)]
    [problem] = problems(d)
    assert problem.startswith("tenants[acme].policies[updates].to.except: List should have at most 64 items")
    peer["except"].pop()
    assert problems(d) == []


# --------------------------------------------------------------------- IPv6 toward the outside


def ipv6(d: dict[str, Any]) -> dict[str, Any]:
    """The base with IPv6: on the uplink, in acme/app (routed, fd00:2::/64) and globex/web
    (fd00:1::/64, not routed), and acme's app segment out over IPv6 on TCP 443."""
    internet(d)["router"]["ip6"] = "2001:db8:ff::1"
    internet(d)["cidr6"] = "2001:db8:ff::/64"
    app = acme(d)["segments"][1]
    app.update(cidr6="fd00:2::/64", gateway6="fd00:2::1")
    acme(d)["endpoints"][1]["ipv6"] = "fd00:2::10"
    acme(d)["endpoints"][2]["ipv6"] = "fd00:2::11"
    d["tenants"][1]["segments"][0]["cidr6"] = "fd00:1::/64"
    acme(d)["policies"].append(
        {"name": "updates6", "from": {"segment": "app"}, "to": {"external": "internet", "cidr": "2000::/3"},
         "services": [{"proto": "tcp", "port": 443}]}
    )  # fmt: skip
    return d


def test_an_ipv6_document_is_valid_and_resolves() -> None:
    d = ipv6(doc())
    assert problems(d) == []
    net = resolve(intent_from_document(d))
    ext = net.external("internet")
    assert (str(ext.router_ip6), str(ext.cidr6)) == ("2001:db8:ff::1", "2001:db8:ff::/64")
    from segctl.topology.outside import external_grants, public_source6

    (grant,) = [g for g in external_grants(net) if g.name == "policy acme/updates6"]
    assert grant.family == 6 and [str(p) for p in grant.outside] == ["2000::/3"]
    assert str(public_source6(net, net.endpoint("acme", "app1"), "internet")) == "fd00:2::10"
    assert public_source6(net, net.endpoint("acme", "web1"), "internet") is None  # no ipv6


@pytest.mark.parametrize(
    ("field", "missing"), [("ip6", "cidr6"), ("cidr6", "router.ip6")], ids=["no-cidr6", "no-router-ip6"]
)
def test_ipv6_on_the_uplink_needs_both_fields(field: str, missing: str) -> None:
    d = ipv6(doc())
    if field == "ip6":
        del internet(d)["cidr6"]
    else:
        del internet(d)["router"]["ip6"]
    given = "router.ip6" if field == "ip6" else "cidr6"
    want = f"{given} is given: IPv6 on the uplink needs both router.ip6 and cidr6"
    assert f"fabric.externals[internet].{missing}: {want}" in problems(d)


@pytest.mark.parametrize(
    ("ip6", "message"),
    [
        ("2001:db8:fe::1", "2001:db8:fe::1 is outside the network's cidr6 2001:db8:ff::/64"),
        ("2001:db8:ff::", "2001:db8:ff:: is the subnet-router anycast address of 2001:db8:ff::/64"),
    ],
)
def test_the_router_ipv6_address_is_on_the_link(ip6: str, message: str) -> None:
    d = ipv6(doc())
    internet(d)["router"]["ip6"] = ip6
    assert problems(d) == [f"fabric.externals[internet].router.ip6: {message}"]


def test_the_uplink_ipv6_prefix_is_outside_every_tenant() -> None:
    d = ipv6(doc())
    internet(d)["cidr6"], internet(d)["router"]["ip6"] = "fd00::/16", "fd00:ff::1"
    want = "fd00::/16 overlaps segment acme/app (fd00:2::/64): the uplink's link is outside every tenant"
    assert f"fabric.externals[internet].cidr6: {want}" in problems(d)


def test_an_ipv6_peer_needs_ipv6_on_the_uplink() -> None:
    d = ipv6(doc())
    del internet(d)["cidr6"], internet(d)["router"]["ip6"]
    assert problems(d) == [
        "tenants[acme].policies[updates6].to.cidr: 2000::/3 is IPv6, and external network internet has no "
        "IPv6 (give it router.ip6 and cidr6)"
    ]


def test_except_is_of_the_peers_family() -> None:
    d = ipv6(doc())
    policy(d, "updates6")["to"]["except"] = ["10.0.0.0/8"]
    assert problems(d) == [
        "tenants[acme].policies[updates6].to: except 10.0.0.0/8: not of the peer's family (IPv6)"
    ]


def test_an_ipv6_peer_stays_outside_the_tenants_prefixes() -> None:
    d = ipv6(doc())
    policy(d, "updates6")["to"]["cidr"] = "fd00::/8"
    assert problems(d) == [
        "tenants[acme].policies[updates6].to: external internet fd00::/8 includes segment app "
        "(fd00:2::/64) of tenant acme: add fd00:2::/64 to except (an external peer is outside the tenant)"
    ]


def test_ipv6_with_the_outside_needs_routed_endpoints() -> None:
    d = ipv6(doc())
    del acme(d)["segments"][1]["gateway6"]
    assert problems(d) == [
        "tenants[acme].policies[updates6]: app1, app2 have no routed IPv6 address: IPv6 with external "
        "network internet goes from and to an endpoint's own global address, routed by its segment's "
        "gateway6; give each an ipv6 in a segment with a gateway6"
    ]


def test_ipv6_with_the_outside_needs_prefixes_of_the_tenants_own() -> None:
    d = ipv6(doc())
    d["tenants"][1]["segments"][0]["cidr6"] = "fd00:2::/64"  # globex reuses acme/app's prefix
    assert problems(d) == [
        "tenants[acme].policies[updates6]: segment app (fd00:2::/64) overlaps segment globex/web "
        "(fd00:2::/64): IPv6 from external network internet is routed by destination, so a tenant "
        "reaching it over IPv6 needs prefixes of its own"
    ]


def test_a_deny_toward_the_outside_over_ipv6_needs_nothing_more() -> None:
    d = ipv6(doc())
    del acme(d)["segments"][1]["gateway6"]
    policy(d, "updates6")["action"] = "deny"
    assert problems(d) == []


def test_a_tenant_routes_an_outside_address_toward_one_external_network() -> None:
    """A second external network whose peer overlaps another's in one tenant: the gateway's
    longest prefix would send part of the first policy's traffic to the second network."""
    d = doc()
    d["fabric"]["externals"].append(
        {"name": "partner", "attach": ["s1:48"], "router": {"ip": "192.0.2.1", "mac": "02:00:5e:00:02:01"},
         "cidr": "192.0.2.0/24"}
    )  # fmt: skip
    acme(d)["snat"]["partner"] = "192.0.2.10"
    acme(d)["policies"].append(
        {"name": "to-partner", "from": {"segment": "app"},
         "to": {"external": "partner", "cidr": "203.0.113.0/24"}, "services": [{"proto": "tcp", "port": 22}]}
    )  # fmt: skip
    assert problems(d) == [
        "tenants[acme].policies[to-partner].to: external partner 203.0.113.0/24 shares addresses with "
        "policy updates (external internet 0.0.0.0/0 except 10.0.0.0/8,192.168.0.0/16): tenant acme routes "
        "an outside address toward one external network; narrow one of them with except"
    ]
    policy(d, "updates")["to"]["except"].append("203.0.113.0/24")
    policy(d, "public-web")["from"]["except"].append("203.0.113.0/24")
    assert problems(d) == []


def test_an_ipv6_peer_leaves_out_the_link_local_prefix() -> None:
    """::/0 holds every endpoint's link-local address: the gateway would route a packet for a
    neighbour's link-local address out of the uplink (the verifier's egress property caught
    exactly that on a peer of ::/0 before this rule)."""
    d = ipv6(doc())
    policy(d, "updates6")["to"].update({"cidr": "::/0", "except": ["fd00::/8"]})
    assert problems(d) == [
        "tenants[acme].policies[updates6].to: external internet ::/0 except fd00::/8 includes the link-local "
        "prefix fe80::/10, where the tenant's endpoints have addresses too: add fe80::/10 to except (an "
        "external peer is outside the tenant)"
    ]
    policy(d, "updates6")["to"]["except"].append("fe80::/10")
    assert problems(d) == []
