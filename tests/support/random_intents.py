"""Hypothesis strategies for random *valid* intent documents (plain data, as a user writes them)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["LABELS", "intents", "raw_services"]

port_items = st.one_of(
    st.integers(1, 40),
    st.tuples(st.integers(1, 40), st.integers(0, 10)).map(lambda t: f"{t[0]}-{min(t[0] + t[1], 65535)}"),
)
raw_services = st.one_of(
    st.builds(
        lambda p, ports: {"proto": p, "ports": ports},
        st.sampled_from(["tcp", "udp"]),
        st.lists(port_items, min_size=1, max_size=4),
    ),
    st.builds(lambda p: {"proto": p}, st.sampled_from(["tcp", "udp", "icmp", "any"])),
)


LABELS = ["a", "b", "c"]


@st.composite
def intents(draw: st.DrawFn, max_shared: int = 2) -> dict[str, Any]:
    """A random *valid* intent document as plain data (up to ``max_shared`` shared services)."""
    n_switches = draw(st.integers(1, 3))
    switches = [{"name": f"s{i}", "dpid": i} for i in range(1, n_switches + 1)]
    links = [f"s{i}:1 <-> s{i + 1}:2" for i in range(1, n_switches)]
    port = iter(range(10, 10_000))
    tenants: list[dict[str, Any]] = []
    n_tenants = draw(st.integers(1, 3))
    for t in range(1, n_tenants + 1):
        n_segments = draw(st.integers(1, 3))
        segments = [
            {
                "name": f"g{s}",
                "cidr": f"10.{t}.{s}.0/24",
                "gateway": f"10.{t}.{s}.1",
                "strict": draw(st.booleans()),
            }
            for s in range(1, n_segments + 1)
        ]
        n_eps = draw(st.integers(0, 5))
        endpoints = []
        for e in range(1, n_eps + 1):
            s = draw(st.integers(1, n_segments))
            endpoints.append(
                {
                    "name": f"e{e}",
                    "segment": f"g{s}",
                    "mac": f"02:00:00:00:{t:02x}:{e:02x}",
                    "ip": f"10.{t}.{s}.{10 + e}",
                    "attach": f"s{draw(st.integers(1, n_switches))}:{next(port)}",
                    "labels": {"role": draw(st.sampled_from(LABELS))},
                }
            )
        names = [ep["name"] for ep in endpoints]
        groups = [{"name": "by-label", "labels": {"role": draw(st.sampled_from(LABELS))}}]
        groups.append(
            {
                "name": "by-name",
                "members": draw(st.lists(st.sampled_from(names), unique=True)) if names else [],
            }
        )

        def selector(names: list[str] = names, n_segments: int = n_segments) -> dict[str, Any]:
            kinds = ["group", "segment", "labels"] + (["endpoint"] if names else [])
            kind = draw(st.sampled_from(kinds))
            if kind == "endpoint":
                return {"endpoint": draw(st.sampled_from(names))}
            if kind == "group":
                return {"group": draw(st.sampled_from(["by-label", "by-name"]))}
            if kind == "segment":
                return {"segment": f"g{draw(st.integers(1, n_segments))}"}
            return {"labels": {"role": draw(st.sampled_from(LABELS))}}

        policies = [
            {
                "name": f"p{i}",
                "from": selector(),
                "to": selector(),
                "services": draw(st.lists(raw_services, min_size=1, max_size=3)),
                "stateful": draw(st.booleans()),
            }
            for i in range(draw(st.integers(0, 3)))
        ]
        tenants.append(
            {
                "name": f"t{t}",
                "segments": segments,
                "endpoints": endpoints,
                "groups": groups,
                "policies": policies,
            }
        )
    shared = []
    if n_tenants > 1:
        for i in range(draw(st.integers(0, max_shared))):
            provider = draw(st.sampled_from(tenants))
            pnames = [ep["name"] for ep in provider["endpoints"]]
            if not pnames:
                continue
            others = [t for t in tenants if t is not provider]
            consumers = [
                {
                    "tenant": c["name"],
                    **(
                        {"group": draw(st.sampled_from(["by-label", "by-name"]))}
                        if draw(st.booleans())
                        else {}
                    ),
                }
                for c in draw(st.lists(st.sampled_from(others), min_size=1, max_size=3))
            ]
            shared.append(
                {
                    "name": f"x{i}",
                    "provider": {
                        "tenant": provider["name"],
                        "endpoints": draw(st.lists(st.sampled_from(pnames), min_size=1, unique=True)),
                    },
                    "consumers": consumers,
                    "services": draw(st.lists(raw_services, min_size=1, max_size=3)),
                }
            )
    return {
        "version": 1,
        "fabric": {"switches": switches, "links": links},
        "tenants": tenants,
        "shared_services": shared,
    }
