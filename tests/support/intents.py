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
