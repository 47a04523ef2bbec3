"""Hypothesis strategies for random *valid* intent documents (plain data, as a user writes them)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

__all__ = ["INTENT_EDITS", "LABELS", "intent_edits", "intents", "raw_services", "small_intents"]

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
    st.builds(
        lambda t, c: {"proto": "icmp", "type": t} | ({} if c is None else {"code": c}),
        st.sampled_from([0, 3, 8, 13]),
        st.one_of(st.none(), st.integers(0, 1)),
    ),
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
            # a consumer (tenant, group) at most once, and no group of a tenant consuming as a whole
            drawn = draw(
                st.lists(
                    st.tuples(st.sampled_from(others), st.sampled_from([None, "by-label", "by-name"])),
                    min_size=1,
                    max_size=3,
                    unique_by=lambda c: (c[0]["name"], c[1]),
                )
            )
            whole = {c["name"] for c, group in drawn if group is None}
            consumers = [
                {"tenant": c["name"], **({"group": group} if group is not None else {})}
                for c, group in drawn
                if group is None or c["name"] not in whole
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


def _fabric(draw: st.DrawFn) -> tuple[list[str], dict[str, Any]]:
    """1–3 switches in a line, a ring (three) or with a parallel link (two or more)."""
    n = draw(st.integers(1, 3))
    names = [f"s{i}" for i in range(1, n + 1)]
    links = [f"s{i}:1 <-> s{i + 1}:2" for i in range(1, n)]
    shape = draw(st.sampled_from(["line", "ring", "parallel"])) if n > 1 else "line"
    if shape == "ring" and n == 3:
        links.append("s3:3 <-> s1:3")
    elif shape == "parallel":
        links.append("s1:4 <-> s2:4")
    return names, {"switches": [{"name": s, "dpid": i} for i, s in enumerate(names, 1)], "links": links}


def _small_tenant(
    draw: st.DrawFn,
    t: int,
    plan: int,
    reuse_macs: bool,
    switches: list[str],
    ports: Any,
    room: int,
    ordered: bool = False,
) -> dict[str, Any]:
    """Tenant ``t`` on address plan ``plan`` (10.plan.s.0/24, fdPP:s::/64): tenants of one plan
    share addresses, and with ``reuse_macs`` MACs too. At most ``room`` endpoints."""
    n_segments = draw(st.integers(1, 2))
    gateway = n_segments > 1 or draw(st.integers(0, 3)) > 0  # a lone segment may have none
    segments = []
    for s in range(1, n_segments + 1):
        seg: dict[str, Any] = {"name": f"g{s}", "cidr": f"10.{plan}.{s}.0/24", "strict": draw(st.booleans())}
        if gateway:
            seg["gateway"] = f"10.{plan}.{s}.1"
        if draw(st.booleans()):
            seg["cidr6"] = f"fd{plan:02x}:{s}::/64"
        segments.append(seg)
    endpoints = []
    for e in range(1, draw(st.integers(0, min(3, room))) + 1):
        seg = draw(st.sampled_from(segments))
        s = int(seg["name"][1:])
        ep: dict[str, Any] = {
            "name": f"e{e}",
            "segment": seg["name"],
            "mac": f"02:00:00:{plan if reuse_macs else 0x80 + t:02x}:{s:02x}:{e:02x}",
            "ip": f"10.{plan}.{s}.{10 + e}",
            "attach": f"{draw(st.sampled_from(switches))}:{next(ports)}",
            "labels": {"role": draw(st.sampled_from(LABELS))},
        }
        if "cidr6" in seg and draw(st.booleans()):
            ep["ipv6"] = f"fd{plan:02x}:{s}::{10 + e:x}"
        if draw(st.integers(0, 7)) == 0:
            ep["rate_limit"] = {"pps": 100}
        endpoints.append(ep)
    names = [ep["name"] for ep in endpoints]
    groups = [
        {"name": "by-label", "labels": {"role": draw(st.sampled_from(LABELS))}},
        {"name": "by-name", "members": draw(st.lists(st.sampled_from(names), unique=True)) if names else []},
    ]

    def selector() -> dict[str, Any]:
        kinds = ["group", "segment", "labels"] + (["endpoint", "endpoints"] if names else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "endpoint":
            return {"endpoint": draw(st.sampled_from(names))}
        if kind == "endpoints":
            return {"endpoints": draw(st.lists(st.sampled_from(names), min_size=1, unique=True))}
        if kind == "group":
            return {"group": draw(st.sampled_from(["by-label", "by-name"]))}
        if kind == "segment":
            return {"segment": draw(st.sampled_from(segments))["name"]}
        return {"labels": {"role": draw(st.sampled_from(LABELS))}}

    policies = [
        {
            "name": f"p{i}",
            "from": selector(),
            "to": selector(),
            "services": draw(st.lists(raw_services, min_size=1, max_size=2)),
            "stateful": draw(st.booleans()),
            **(_order(draw) if ordered else {}),
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    return {
        "name": f"t{t}",
        "segments": segments,
        "endpoints": endpoints,
        "groups": groups,
        "policies": policies,
    }


def _order(draw: st.DrawFn) -> dict[str, Any]:
    """A tenant policy's action and priority (few priorities, so ties happen)."""
    return {
        "action": draw(st.sampled_from(["allow", "allow", "deny"])),
        "priority": draw(st.sampled_from([100, 500])),
    }


def _guardrails(draw: st.DrawFn, tenants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """0-3 guardrails over the tenants: peers by tenant, segment and/or CIDR, any action."""

    def peer() -> dict[str, Any]:
        out: dict[str, Any] = {}
        tenant = draw(st.sampled_from([None, *tenants]))
        if tenant is not None:
            out["tenant"] = tenant["name"]
        segments = tenant["segments"] if tenant is not None else tenants[0]["segments"]
        if draw(st.booleans()):
            seg = draw(st.sampled_from(segments))
            out["segment"] = seg["name"]
            if draw(st.booleans()):
                out["cidr"] = seg["cidr"].replace(".0/24", ".0/28")
        return out

    rails = []
    for i in range(draw(st.integers(0, 3))):
        rail = {
            "name": f"r{i}",
            "priority": draw(st.sampled_from([1, 5, 5, 9])),
            "action": draw(st.sampled_from(["allow", "deny", "pass"])),
            "from": peer(),
            "to": peer(),
            "services": draw(st.lists(raw_services, min_size=1, max_size=2)),
        }
        if draw(st.booleans()):
            rail["scope"] = "cross-segment"
        rails.append(rail)
    return rails


@st.composite
def small_intents(draw: st.DrawFn, max_endpoints: int = 8, ordered: bool = False) -> dict[str, Any]:
    """A small random *valid* intent for proofs (both engines finish in well under a second):
    1–3 switches (line, ring or parallel links), 1–3 tenants of which some may share an
    address plan (same CIDRs, IPs and possibly MACs), segments with or without gateway,
    IPv6 and strictness, up to ``max_endpoints`` endpoints in all, policies with protocols and
    ports (stateful or not) and shared services between tenants of different plans. With
    ``ordered``: deny policies, priorities and guardrails (allow, deny, pass) too."""
    switches, fabric = _fabric(draw)
    ports = iter(range(10, 10_000))
    n_tenants = draw(st.integers(1, 3))
    plans = [1] + [draw(st.integers(1, t)) for t in range(2, n_tenants + 1)]
    tenants: list[dict[str, Any]] = []
    room = max_endpoints
    for t, plan in enumerate(plans, 1):
        reuse = plan in plans[: t - 1] and draw(st.booleans())
        tenants.append(_small_tenant(draw, t, plan, reuse, switches, ports, room, ordered))
        room -= len(tenants[-1]["endpoints"])
    # Shared services need gateways on both sides and disjoint address plans (no NAT).
    routed = [(t, p) for t, p in zip(tenants, plans, strict=True) if "gateway" in t["segments"][0]]
    shared = []
    # a consumer reaches providers of one tenant per address plan (the addresses repeat)
    provider_of: dict[tuple[str, int], str] = {}
    for i in range(draw(st.integers(0, 2))):
        providers = [(t, p) for t, p in routed if t["endpoints"] and any(q != p for _, q in routed)]
        if not providers:
            break
        provider, plan = draw(st.sampled_from(providers))
        others = [
            t
            for t, q in routed
            if q != plan and provider_of.get((t["name"], plan), provider["name"]) == provider["name"]
        ]
        if not others:
            continue
        pnames = [ep["name"] for ep in provider["endpoints"]]
        chosen = (
            {"endpoints": draw(st.lists(st.sampled_from(pnames), min_size=1, unique=True))}
            if draw(st.booleans())
            else {"group": draw(st.sampled_from(["by-label", "by-name"]))}
        )
        consumers = [
            {"tenant": c["name"], **({"group": "by-label"} if draw(st.booleans()) else {})}
            for c in draw(
                st.lists(st.sampled_from(others), min_size=1, max_size=2, unique_by=lambda c: c["name"])
            )
        ]
        for c in consumers:
            provider_of[(c["tenant"], plan)] = provider["name"]
        shared.append(
            {
                "name": f"x{i}",
                "provider": {"tenant": provider["name"], **chosen},
                "consumers": consumers,
                "services": draw(st.lists(raw_services, min_size=1, max_size=2)),
            }
        )
    doc = {"version": 1, "fabric": fabric, "tenants": tenants, "shared_services": shared}
    if ordered:
        doc["guardrails"] = _guardrails(draw, tenants)
    return doc


#: Kinds of :func:`intent_edits`.
INTENT_EDITS = ("port", "stateful", "add-policy", "remove-policy", "move-endpoint", "remove-shared")
#: Kinds of :func:`intent_edits` ``(ordered=True)``: the above and the ordered rules' own.
ORDERED_EDITS = (*INTENT_EDITS, "guardrail-action", "guardrail-priority", "policy-action")


def _flip_port(draw: st.DrawFn, doc: dict[str, Any]) -> str | None:
    services = [
        (t["name"], p["name"], s)
        for t in doc["tenants"]
        for p in t["policies"]
        for s in p["services"]
        if s["proto"] in ("tcp", "udp")
    ]
    if not services:
        return None
    tenant, policy, service = draw(st.sampled_from(services))
    old = dict(service)
    service.pop("port", None)
    service["ports"] = [draw(st.integers(1, 40))]
    if draw(st.booleans()):
        service["proto"] = "udp" if service["proto"] == "tcp" else "tcp"
    return f"{tenant}/{policy}: service {old} -> {service}"


def _new_policy(draw: st.DrawFn, tenant: dict[str, Any]) -> dict[str, Any]:
    names = [ep["name"] for ep in tenant["endpoints"]]
    segment = tenant["segments"][0]["name"]

    def selector() -> dict[str, Any]:
        return draw(
            st.sampled_from(
                [
                    {"segment": segment},
                    {"group": "by-label"},
                    {"labels": {"role": draw(st.sampled_from(LABELS))}},
                ]
                + [{"endpoint": n} for n in names]
            )
        )

    return {
        "name": f"n{len(tenant['policies'])}x{draw(st.integers(0, 99))}",
        "from": selector(),
        "to": selector(),
        "services": draw(st.lists(raw_services, min_size=1, max_size=2)),
        "stateful": draw(st.booleans()),
    }


def _edit(draw: st.DrawFn, doc: dict[str, Any], kind: str) -> str | None:
    tenants = doc["tenants"]
    if kind == "port":
        return _flip_port(draw, doc)
    with_policies = [t for t in tenants if t["policies"]]
    if kind == "stateful" and with_policies:
        t = draw(st.sampled_from(with_policies))
        p = draw(st.sampled_from(t["policies"]))
        p["stateful"] = not p.get("stateful", True)
        return f"{t['name']}/{p['name']}: stateful {p['stateful']}"
    if kind == "remove-policy" and with_policies:
        t = draw(st.sampled_from(with_policies))
        p = t["policies"].pop(draw(st.integers(0, len(t["policies"]) - 1)))
        return f"{t['name']}: remove policy {p}"
    if kind == "add-policy" and tenants:
        t = draw(st.sampled_from(tenants))
        p = _new_policy(draw, t)
        if any(q["name"] == p["name"] for q in t["policies"]):
            return None
        t["policies"].append(p)
        return f"{t['name']}: add policy {p}"
    endpoints = [(t, ep) for t in tenants for ep in t["endpoints"]]
    if kind == "move-endpoint" and endpoints:
        t, ep = draw(st.sampled_from(endpoints))
        old = ep["attach"]
        switch = draw(st.sampled_from([s["name"] for s in doc["fabric"]["switches"]]))
        ep["attach"] = f"{switch}:{draw(st.integers(5000, 5100))}"
        return f"{t['name']}/{ep['name']}: attach {old} -> {ep['attach']}"
    if kind == "remove-shared" and doc.get("shared_services"):
        x = doc["shared_services"].pop(draw(st.integers(0, len(doc["shared_services"]) - 1)))
        return f"remove shared service {x['name']}"
    rails = doc.get("guardrails") or []
    if kind == "guardrail-action" and rails:
        g = draw(st.sampled_from(rails))
        g["action"] = draw(st.sampled_from([a for a in ("allow", "deny", "pass") if a != g["action"]]))
        return f"guardrail {g['name']}: action {g['action']}"
    if kind == "guardrail-priority" and rails:
        g = draw(st.sampled_from(rails))
        g["priority"] = draw(st.sampled_from([0, 5, 7, 20]))
        return f"guardrail {g['name']}: priority {g['priority']}"
    if kind == "policy-action" and with_policies:
        t = draw(st.sampled_from(with_policies))
        p = draw(st.sampled_from(t["policies"]))
        p["action"] = "allow" if p.get("action") == "deny" else "deny"
        return f"{t['name']}/{p['name']}: action {p['action']}"
    return None


@st.composite
def intent_edits(
    draw: st.DrawFn, doc: dict[str, Any], ordered: bool = False
) -> tuple[dict[str, Any], str | None]:
    """``doc`` (left unchanged) after one small edit of a kind in :data:`INTENT_EDITS` (with
    ``ordered``: :data:`ORDERED_EDITS`), and what it did (None: the drawn kind did not apply;
    the copy is unchanged). The result may be invalid (an endpoint moved onto a taken port,
    a guardrail allow between segments without gateways): check it."""
    out = copy.deepcopy(doc)
    return out, _edit(draw, out, draw(st.sampled_from(ORDERED_EDITS if ordered else INTENT_EDITS)))
