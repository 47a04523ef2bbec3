"""Intents for what the examples lack."""

from __future__ import annotations

from typing import Any

EDGE_CASES: dict[str, Any] = {
    "fabric": {
        "switches": [{"name": "s1", "dpid": 7}, {"name": "s2", "dpid": 8}],
        "links": ["s1:20 <-> s2:20"],
    },
    "tenants": [
        {
            "name": "lab",
            "segments": [
                {"name": "lan", "cidr": "10.5.0.0/24", "cidr6": "fd05::/64", "gateway": "10.5.0.1"},
                {"name": "srv", "cidr": "10.6.0.0/24", "gateway": "10.6.0.1", "strict": True},
            ],
            "endpoints": [
                {"name": "a", "segment": "lan", "mac": "02:00:00:05:00:0a", "ip": "10.5.0.10",
                 "ipv6": "fd05::a", "attach": "s1:1"},
                {"name": "b", "segment": "lan", "mac": "02:00:00:05:00:0b", "ip": "10.5.0.11",
                 "ipv6": "fd05::b", "ipv6_link_local": "fe80::b", "attach": "s2:1"},
                {"name": "s", "segment": "srv", "mac": "02:00:00:06:00:0a", "ip": "10.6.0.10",
                 "attach": "s2:2"},
            ],
            "policies": [
                {"name": "a-to-s", "from": {"endpoint": "a"}, "to": {"endpoint": "s"},
                 "services": [{"proto": "udp", "port": 5353}], "stateful": False},
                {"name": "b-to-s", "from": {"endpoint": "b"}, "to": {"endpoint": "s"},
                 "services": [{"proto": "udp", "port": 5353}, {"proto": "icmp"}]},
            ],
        }
    ],
}  # fmt: skip


def set_users(users: int) -> dict[str, Any]:
    """One switch; an address set of 8 backends named by ``users`` policies, each from its
    own 4 clients (disjoint sources: the policies never meet one packet)."""
    eps = [{"name": f"b{i}", "segment": "lan", "mac": f"02:00:00:77:00:{i:02x}", "ip": f"10.7.0.{10 + i}",
            "attach": f"s1:{10 + i}"} for i in range(8)]  # fmt: skip
    policies = []
    for u in range(users):
        names = [f"c{u}x{i}" for i in range(4)]
        eps += [{"name": n, "segment": "lan", "mac": f"02:00:00:78:{u:02x}:{i:02x}",
                 "ip": f"10.7.{1 + u}.{10 + i}", "attach": f"s1:{100 + 10 * u + i}"}
                for i, n in enumerate(names)]  # fmt: skip
        policies.append({"name": f"p{u}", "from": {"endpoints": names}, "to": {"address_set": "backends"},
                         "service_sets": ["web"]})  # fmt: skip
    return {
        "fabric": {"switches": [{"name": "s1", "dpid": 1}]},
        "service_sets": [{"name": "web", "services": [{"proto": "tcp", "ports": [80, 443, 8080]}]}],
        "tenants": [{
            "name": "t", "segments": [{"name": "lan", "cidr": "10.7.0.0/16", "gateway": "10.7.255.254",
                                       "strict": True}],
            "endpoints": eps,
            "address_sets": [{"name": "backends", "cidrs": ["10.7.0.0/24"]}],
            "policies": policies,
        }],
    }  # fmt: skip


#: IPv6 routed by the distributed gateway: two segments with a gateway6 (front, and back,
#: strict), one without (legacy: its IPv6 stays inside it), on two switches.
ROUTED6: dict[str, Any] = {
    "fabric": {
        "switches": [{"name": "s1", "dpid": 11}, {"name": "s2", "dpid": 12}],
        "links": ["s1:20 <-> s2:20"],
    },
    "tenants": [
        {
            "name": "net6",
            "segments": [
                {"name": "front", "cidr": "10.7.1.0/24", "cidr6": "fd07:1::/64", "gateway": "10.7.1.1",
                 "gateway6": "fd07:1::1"},
                {"name": "back", "cidr": "10.7.2.0/24", "cidr6": "fd07:2::/64", "gateway": "10.7.2.1",
                 "gateway6": "fd07:2::1", "strict": True},
                {"name": "legacy", "cidr": "10.7.3.0/24", "cidr6": "fd07:3::/64", "gateway": "10.7.3.1"},
            ],
            "endpoints": [
                {"name": "f1", "segment": "front", "mac": "02:00:00:07:01:01", "ip": "10.7.1.11",
                 "ipv6": "fd07:1::11", "attach": "s1:1"},
                {"name": "f2", "segment": "front", "mac": "02:00:00:07:01:02", "ip": "10.7.1.12",
                 "ipv6": "fd07:1::12", "ipv6_link_local": "fe80::12", "attach": "s2:1"},
                {"name": "k1", "segment": "back", "mac": "02:00:00:07:02:01", "ip": "10.7.2.11",
                 "ipv6": "fd07:2::11", "attach": "s2:2"},
                {"name": "k2", "segment": "back", "mac": "02:00:00:07:02:02", "ip": "10.7.2.12",
                 "ipv6": "fd07:2::12", "attach": "s1:2"},
                {"name": "l1", "segment": "legacy", "mac": "02:00:00:07:03:01", "ip": "10.7.3.11",
                 "ipv6": "fd07:3::11", "attach": "s1:3"},
            ],
            "policies": [
                {"name": "front-to-back", "from": {"segment": "front"}, "to": {"segment": "back"},
                 "services": [{"proto": "tcp", "port": 8080}, {"proto": "icmp6", "type": 128}]},
                {"name": "legacy-to-back", "from": {"endpoint": "l1"}, "to": {"endpoint": "k1"},
                 "services": [{"proto": "tcp", "port": 8080}]},
                {"name": "back-to-front", "from": {"endpoint": "k2"}, "to": {"endpoint": "f1"},
                 "services": [{"proto": "udp", "port": 5353}], "stateful": False},
            ],
        }
    ],
}  # fmt: skip


#: Shared services in IPv6: red and blue (which reuse each other's IPv4 and IPv6 addresses)
#: consume infra's DNS and red its NTP, between segments with a gateway6 (both families);
#: green's segment has no gateway6, so its DNS stays IPv4.
SHARED6: dict[str, Any] = {
    "fabric": {
        "switches": [{"name": "s1", "dpid": 21}, {"name": "s2", "dpid": 22}],
        "links": ["s1:20 <-> s2:20"],
    },
    "tenants": [
        {
            "name": "infra",
            "segments": [
                {"name": "svc", "cidr": "10.9.0.0/24", "cidr6": "fd09::/64", "gateway": "10.9.0.1",
                 "gateway6": "fd09::1"},
            ],
            "endpoints": [
                {"name": "dns1", "segment": "svc", "mac": "02:00:00:09:00:35", "ip": "10.9.0.53",
                 "ipv6": "fd09::53", "attach": "s1:1"},
                {"name": "ntp1", "segment": "svc", "mac": "02:00:00:09:00:7b", "ip": "10.9.0.123",
                 "ipv6": "fd09::7b", "attach": "s2:1"},
            ],
        },
        {
            "name": "red",
            "segments": [
                {"name": "app", "cidr": "10.1.1.0/24", "cidr6": "fd01:1::/64", "gateway": "10.1.1.1",
                 "gateway6": "fd01:1::1"},
            ],
            "endpoints": [
                {"name": "r1", "segment": "app", "mac": "02:00:00:01:01:0b", "ip": "10.1.1.11",
                 "ipv6": "fd01:1::11", "attach": "s1:2"},
                {"name": "r2", "segment": "app", "mac": "02:00:00:01:01:0c", "ip": "10.1.1.12",
                 "ipv6": "fd01:1::12", "ipv6_link_local": "fe80::12", "attach": "s2:2"},
            ],
        },
        {
            "name": "blue",
            "segments": [
                {"name": "app", "cidr": "10.1.1.0/24", "cidr6": "fd01:1::/64", "gateway": "10.1.1.1",
                 "gateway6": "fd01:1::1"},
            ],
            "endpoints": [
                {"name": "b1", "segment": "app", "mac": "02:00:00:02:01:0b", "ip": "10.1.1.11",
                 "ipv6": "fd01:1::11", "attach": "s2:3"},
            ],
        },
        {
            "name": "green",
            "segments": [
                {"name": "lan", "cidr": "10.3.1.0/24", "cidr6": "fd03:1::/64", "gateway": "10.3.1.1"},
            ],
            "endpoints": [
                {"name": "g1", "segment": "lan", "mac": "02:00:00:03:01:0b", "ip": "10.3.1.11",
                 "ipv6": "fd03:1::11", "attach": "s1:3"},
                {"name": "g2", "segment": "lan", "mac": "02:00:00:03:01:0c", "ip": "10.3.1.12",
                 "ipv6": "fd03:1::12", "attach": "s2:4"},
            ],
        },
    ],
    "shared_services": [
        {"name": "dns", "provider": {"tenant": "infra", "endpoints": ["dns1"]},
         "consumers": [{"tenant": "red"}, {"tenant": "blue"}, {"tenant": "green"}],
         "services": [{"proto": "udp", "port": 53}, {"proto": "tcp", "port": 53},
                      {"proto": "icmp6", "type": 128}]},
        {"name": "ntp", "provider": {"tenant": "infra", "endpoints": ["ntp1"]},
         "consumers": [{"tenant": "red"}], "services": [{"proto": "udp", "port": 123}]},
    ],
}  # fmt: skip
