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
                 "ipv6": "fd05::b", "attach": "s2:1"},
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
