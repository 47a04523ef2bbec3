"""Deterministic synthetic intents for benchmarks and scale tests.

Pure functions: the same arguments give the same :class:`~segctl.topology.schema.Intent`,
and every intent produced here passes :func:`segctl.topology.validate.validate_intent`.

:func:`fat_tree` builds a k-ary fat-tree fabric (k²/4 core switches, and k/2
aggregation plus k/2 edge switches in each of k pods: k = 16 gives 64 + 128 + 128 =
320 switches). Edge switch ports ``1..k/2`` go up to the aggregation layer; hosts attach
from :data:`HOST_PORT_BASE` upward (a synthetic fabric is not limited to k/2 hosts per
edge switch, so 10,000 endpoints fit on 128 edge switches).

:func:`synthetic_intent` fills such a fabric with ``tenants`` workload tenants sharing
one address plan (overlapping CIDRs on purpose: isolation never rests on addresses),
``endpoints`` workload endpoints spread round-robin over the edge switches, label groups
``tier=web|app|db``, chained policies ``web → app → db`` over ``services`` TCP ports, and
one shared service (DNS in a provider tenant ``shared`` consumed by every tenant).

:func:`two_rack` is the dense case of the verifier's benchmark (many sources per rack, each
reaching a whole rack). :func:`policy_pair` is the flow-economy case: one policy from a group
of ``a`` endpoints on one edge switch to a group of ``b`` endpoints on another, over ``p`` TCP ports.

Examples
--------
>>> from segctl.topology.network import resolve
>>> net = resolve(synthetic_intent(k=4, tenants=3, endpoints=12))
>>> len(net.switches), len(net.tenants), len(net.endpoints)
(20, 4, 14)
>>> net = resolve(policy_pair(10, 10, 5))
>>> len(net.select("t", net.intent.tenants[0].policies[0].from_))
10
"""

from __future__ import annotations

from typing import Any

from segctl.topology.schema import Intent

__all__ = [
    "HOST_PORT_BASE",
    "PROVIDER_TENANT",
    "TIERS",
    "fat_tree",
    "fat_tree_counts",
    "policy_pair",
    "synthetic_intent",
    "two_rack",
]

#: First OpenFlow port number used for host (endpoint) attachments on an edge switch.
HOST_PORT_BASE = 100
#: Name of the shared-service provider tenant added by :func:`synthetic_intent`.
PROVIDER_TENANT = "shared"
#: Label values of the ``tier`` label, assigned round-robin within each tenant.
TIERS = ("web", "app", "db")
#: First TCP port of the generated policy services (``services`` consecutive ports).
SERVICE_PORT_BASE = 8000
_MAX_ENDPOINTS_PER_SEGMENT = 256 * 240


def fat_tree_counts(k: int) -> tuple[int, int, int]:
    """The (core, aggregation, edge) switch counts of a k-ary fat-tree.

    >>> fat_tree_counts(16)
    (64, 128, 128)
    """
    _check_k(k)
    return k * k // 4, k * k // 2, k * k // 2


def fat_tree(k: int) -> dict[str, Any]:
    """The ``fabric`` section of a k-ary fat-tree: switches (unique dpids) and links.

    Switch names are ``core<i>``, ``agg<pod>-<i>`` and ``edge<pod>-<i>``; dpids encode
    the layer in bits 16-23 (1 core, 2 aggregation, 3 edge). Port numbering: edge
    ``edge<p>-<j>:<1+i>`` ↔ ``agg<p>-<i>:<1+j>``; aggregation ``agg<p>-<i>:<k/2+1+m>``
    ↔ ``core<i·k/2+m>:<1+p>``.
    """
    _check_k(k)
    half = k // 2
    switches: list[dict[str, Any]] = []
    links: list[str] = []
    for c in range(k * k // 4):
        switches.append({"name": f"core{c}", "dpid": (1 << 16) | c})
    for p in range(k):
        for i in range(half):
            switches.append({"name": f"agg{p}-{i}", "dpid": (2 << 16) | (p << 8) | i})
        for j in range(half):
            switches.append({"name": f"edge{p}-{j}", "dpid": (3 << 16) | (p << 8) | j})
    for p in range(k):
        for j in range(half):
            for i in range(half):
                links.append(f"edge{p}-{j}:{1 + i} <-> agg{p}-{i}:{1 + j}")
        for i in range(half):
            for m in range(half):
                links.append(f"agg{p}-{i}:{half + 1 + m} <-> core{i * half + m}:{1 + p}")
    return {"switches": switches, "links": links}


def _edge_switches(k: int) -> list[str]:
    return [f"edge{p}-{j}" for p in range(k) for j in range(k // 2)]


def _endpoint_mac(tenant: int, index: int) -> str:
    # 02:TT:TT:NN:NN:NN, locally administered unicast; never 02:5e:00:00:.. (gateway MACs)
    return (
        f"02:{(tenant >> 8) & 0xFF:02x}:{tenant & 0xFF:02x}:"
        f"{(index >> 16) & 0xFF:02x}:{(index >> 8) & 0xFF:02x}:{index & 0xFF:02x}"
    )


def _host_ip(segment: int, index: int) -> str:
    # Segment s is 10.s.0.0/16 (gateway 10.s.255.254); host n is 10.s.(n div 240).(10 + n mod 240)
    return f"10.{segment}.{index // 240}.{10 + index % 240}"


def synthetic_intent(
    *,
    k: int = 4,
    tenants: int = 10,
    endpoints: int = 100,
    segments: int = 2,
    services: int = 5,
    providers: int = 2,
    shared: bool = True,
) -> Intent:
    """A valid intent on a k-ary fat-tree; see the module docstring for its shape.

    ``endpoints`` workload endpoints are divided as evenly as possible over ``tenants``
    (the first tenants get one more), and within a tenant round-robin over its
    ``segments`` and the three tiers. Global endpoint number ``g`` attaches to edge
    switch ``g mod E`` at port ``HOST_PORT_BASE + g div E`` (E edge switches), so every
    tenant spans many switches. With ``shared`` a tenant ``shared`` adds ``providers``
    DNS endpoints (one per edge switch, from the last one backwards) consumed by every
    workload tenant on udp/53 and tcp/53.
    """
    _check_k(k)
    if tenants < 1 or endpoints < 0 or not 1 <= segments <= 200 or not 1 <= services <= 1000:
        raise ValueError("need tenants >= 1, endpoints >= 0, 1 <= segments <= 200, 1 <= services <= 1000")
    if tenants + (1 if shared else 0) > 4095:
        raise ValueError("at most 4095 tenants (conntrack zones)")
    if shared and providers < 1:
        raise ValueError("a shared service needs at least one provider endpoint")
    edges = _edge_switches(k)
    per_tenant = [endpoints // tenants + (1 if t < endpoints % tenants else 0) for t in range(tenants)]
    if max(per_tenant) > _MAX_ENDPOINTS_PER_SEGMENT * segments:
        raise ValueError("too many endpoints per tenant for the address plan")
    services_doc = [{"proto": "tcp", "port": SERVICE_PORT_BASE + i} for i in range(services)]
    tenant_docs: list[dict[str, Any]] = []
    g = 0
    for t, count in enumerate(per_tenant):
        eps: list[dict[str, Any]] = []
        for n in range(count):
            seg = n % segments
            eps.append(
                {
                    "name": f"ep{n}",
                    "segment": f"seg{seg}",
                    "mac": _endpoint_mac(t + 1, n),
                    "ip": _host_ip(seg, n // segments),
                    "attach": {"switch": edges[g % len(edges)], "port": HOST_PORT_BASE + g // len(edges)},
                    "labels": {"tier": TIERS[n % len(TIERS)]},
                }
            )
            g += 1
        tenant_docs.append(
            {
                "name": f"t{t + 1:04d}",
                "segments": [
                    {"name": f"seg{s}", "cidr": f"10.{s}.0.0/16", "gateway": f"10.{s}.255.254"}
                    for s in range(segments)
                ],
                "endpoints": eps,
                "groups": [{"name": tier, "labels": {"tier": tier}} for tier in TIERS],
                "policies": [
                    {"name": "web-to-app", "from": {"group": "web"}, "to": {"group": "app"},
                     "services": services_doc},
                    {"name": "app-to-db", "from": {"group": "app"}, "to": {"group": "db"},
                     "services": services_doc},
                ],
            }
        )  # fmt: skip
    doc: dict[str, Any] = {"version": 1, "fabric": fat_tree(k), "tenants": tenant_docs}
    if shared:
        if providers > 200 or HOST_PORT_BASE - 1 - (providers - 1) // len(edges) <= k // 2:
            raise ValueError("too many provider endpoints for the address and port plan")
        dns = [
            {
                "name": f"dns{i}",
                "segment": "svc",
                "mac": _endpoint_mac(tenants + 1, i),
                "ip": f"172.16.0.{10 + i}",
                "attach": {
                    "switch": edges[-1 - i % len(edges)],
                    "port": HOST_PORT_BASE - 1 - i // len(edges),
                },
            }
            for i in range(providers)
        ]
        tenant_docs.append(
            {
                "name": PROVIDER_TENANT,
                "segments": [{"name": "svc", "cidr": "172.16.0.0/24", "gateway": "172.16.0.1"}],
                "endpoints": dns,
            }
        )
        doc["shared_services"] = [
            {
                "name": "dns",
                "provider": {"tenant": PROVIDER_TENANT, "endpoints": [d["name"] for d in dns]},
                "consumers": [{"tenant": t["name"]} for t in tenant_docs[:-1]],
                "services": [{"proto": "udp", "port": 53}, {"proto": "tcp", "port": 53}],
            }
        ]
    return Intent.model_validate(doc)


def policy_pair(a: int, b: int, p: int, *, policies: int = 1) -> Intent:
    """One tenant, one policy: group ``A`` (``a`` endpoints on ``leafA``) → group ``B``
    (``b`` endpoints on ``leafB``) over ``p`` TCP ports, on a two-leaf, one-spine fabric.

    The segment is strict, so the policy is the only thing that lets A reach B; each
    leaf holds one side of the policy (``policy_src`` on leafA, ``policy_dst`` on leafB).

    ``policies`` > 1 adds more A → B policies, each over its own ``p`` ports (policy
    ``i`` gets ports ``SERVICE_PORT_BASE + i·p ..``): many rules per leaf for few
    endpoints, which keeps a full verification of the fabric cheap (its cost grows with
    the endpoints far more than with the rules).

    >>> from segctl.flows.compiler import compile_network
    >>> from segctl.topology.network import resolve
    >>> programs = compile_network(resolve(policy_pair(4, 2, 100, policies=3)))
    >>> {name: len(program.rules) for name, program in sorted(programs.items())}
    {'leafA': 390, 'leafB': 374, 'spine': 27}
    """
    if not (1 <= a <= 20000 and 1 <= b <= 20000 and 1 <= p <= 1000):
        raise ValueError("need 1 <= a, b <= 20000 and 1 <= p <= 1000")
    if policies < 1 or SERVICE_PORT_BASE + policies * p > 65536:
        raise ValueError(f"need policies >= 1 and at most {65536 - SERVICE_PORT_BASE} ports in all")
    fabric = {
        "switches": [
            {"name": "spine", "dpid": 1},
            {"name": "leafA", "dpid": 2},
            {"name": "leafB", "dpid": 3},
        ],
        "links": ["leafA:1 <-> spine:1", "leafB:1 <-> spine:2"],
    }
    eps: list[dict[str, Any]] = []
    for side, count, leaf in (("a", a, "leafA"), ("b", b, "leafB")):
        offset = 0 if side == "a" else a
        for n in range(count):
            index = offset + n
            eps.append(
                {
                    "name": f"{side}{n}",
                    "segment": "lan",
                    "mac": _endpoint_mac(1, index),
                    "ip": _host_ip(0, index),
                    "attach": {"switch": leaf, "port": HOST_PORT_BASE + n},
                    "labels": {"side": side},
                }
            )
    tenant = {
        "name": "t",
        "segments": [{"name": "lan", "cidr": "10.0.0.0/16", "gateway": "10.0.255.254", "strict": True}],
        "endpoints": eps,
        "groups": [{"name": "A", "labels": {"side": "a"}}, {"name": "B", "labels": {"side": "b"}}],
        "policies": [
            {
                "name": "a-to-b" if n == 0 else f"a-to-b-{n}",
                "from": {"group": "A"},
                "to": {"group": "B"},
                "services": [{"proto": "tcp", "port": SERVICE_PORT_BASE + n * p + i} for i in range(p)],
            }
            for n in range(policies)
        ],
    }
    return Intent.model_validate({"version": 1, "fabric": fabric, "tenants": [tenant]})


def two_rack(
    n: int,
    *,
    tenants: int = 2,
    services: int = 5,
    ipv6: bool = False,
    routed: bool = False,
    shared6: bool = False,
    external: bool = False,
) -> Intent:
    """The dense two-rack case: one spine, two racks (leaves); ``tenants`` tenants with the
    same addresses, each with one strict segment where group ``A`` (``n`` endpoints on rack A)
    reaches group ``B`` (``n`` endpoints on rack B) over ``services`` TCP ports, and a shared
    DNS on the spine consumed by every tenant. ``tenants·2n + 1`` endpoints: n = 20, 40, 80,
    160 give 81, 161, 321, 641. With ``ipv6`` every rack endpoint also has an IPv6 address
    (``fd00::/64``, reused across tenants like the IPv4 ones): the segment's policy then
    carries both families (dual stack). With ``routed`` rack B's endpoints are in a second
    strict segment (``10.1.0.0/16``, ``fd01::/64``) and both segments have a ``gateway`` and a
    ``gateway6``: the policy is routed, in both families with ``ipv6``. With ``shared6`` (and
    ``ipv6`` and ``routed``) the DNS is dual stack behind a ``gateway6`` too: the shared
    service carries IPv6 to every consumer, whose tenants share their addresses. With
    ``external`` the spine has an uplink to an external network: each tenant leaves through
    its own SNAT address, group ``A`` may open TCP 443 to every outside address but
    ``10.0.0.0/8`` and ``172.16.0.0/12``, and endpoint ``b0`` has a floating IP open on TCP 80
    (at most 90 tenants); with ``ipv6`` and ``routed`` too, the uplink has IPv6, each tenant's
    prefixes become its own (``fdTT:S::/64``: the outside routes to them) and the same two
    policies exist over IPv6 toward ``2001:db8::/32``.

    Every source reaches a whole rack of destinations, so the granted pairs grow with the
    square of the endpoints: what a verifier that works per (source, destination) pays for.

    >>> from segctl.topology.network import resolve
    >>> len(resolve(two_rack(20)).endpoints)
    81
    """
    if not (1 <= n <= 10_000 and 1 <= tenants <= 200 and 1 <= services <= 1000):
        raise ValueError("need 1 <= n <= 10000, 1 <= tenants <= 200, 1 <= services <= 1000")
    fabric = {
        "switches": [
            {"name": "spine", "dpid": 1},
            {"name": "rackA", "dpid": 2},
            {"name": "rackB", "dpid": 3},
        ],
        "links": ["rackA:1 <-> spine:1", "rackB:1 <-> spine:2"],
    }
    docs = [_two_rack_tenant(t, n, services, ipv6, routed) for t in range(tenants)]
    if external:
        _add_external(fabric, docs, n, ipv6=ipv6 and routed)
    dns = {
        "name": "dns",
        "segment": "svc",
        "mac": _endpoint_mac(tenants + 1, 0),
        "ip": "172.16.0.10",
        "attach": {"switch": "spine", "port": HOST_PORT_BASE},
    }
    svc: dict[str, Any] = {"name": "svc", "cidr": "172.16.0.0/24", "gateway": "172.16.0.1"}
    if shared6:
        if not (ipv6 and routed):
            raise ValueError("two_rack: shared6 needs ipv6 and routed (consumer segments with a gateway6)")
        svc.update(cidr6="fd16::/64", gateway6="fd16::1")
        dns["ipv6"] = "fd16::10"
    docs.append({"name": PROVIDER_TENANT, "segments": [svc], "endpoints": [dns]})
    doc: dict[str, Any] = {
        "version": 1,
        "fabric": fabric,
        "tenants": docs,
        "shared_services": [
            {
                "name": "dns",
                "provider": {"tenant": PROVIDER_TENANT, "endpoints": ["dns"]},
                "consumers": [{"tenant": d["name"]} for d in docs[:-1]],
                "services": [{"proto": "udp", "port": 53}, {"proto": "tcp", "port": 53}],
            }
        ],
    }
    return Intent.model_validate(doc)


def _add_external(fabric: dict[str, Any], docs: list[dict[str, Any]], n: int, *, ipv6: bool = False) -> None:
    """:func:`two_rack`'s uplink on the spine, each tenant's SNAT address, egress policy and
    (the first 90 tenants) floating IP on ``b0`` with its ingress policy; with ``ipv6`` (routed
    dual stack) the same over IPv6 from each tenant's own prefixes."""
    if len(docs) > 90:
        raise ValueError("two_rack: external takes at most 90 tenants (one /24 of public addresses)")
    router: dict[str, Any] = {"ip": "198.51.100.1", "mac": "02:00:5e:00:01:01"}
    fabric["externals"] = [
        {"name": "internet", "attach": ["spine:3"], "cidr": "198.51.100.0/24", "router": router}
    ]
    if ipv6:
        router["ip6"] = "2001:db8:ff::1"
        fabric["externals"][0]["cidr6"] = "2001:db8:ff::/64"
        for t, tenant in enumerate(docs):
            _own_prefixes(tenant, t)
            outside6 = {"external": "internet", "cidr": "2001:db8::/32", "except": ["2001:db8:ff::/64"]}
            tenant["policies"] += _out_and_in(outside6, "6")
    outside = {"external": "internet", "except": ["10.0.0.0/8", "172.16.0.0/12"]}
    for t, tenant in enumerate(docs):
        tenant["snat"] = {"internet": f"198.51.100.{2 + t}"}
        tenant["endpoints"][n]["floating_ip"] = f"198.51.100.{160 + t}"  # b0
        tenant["policies"] += _out_and_in(outside, "")


def _out_and_in(outside: dict[str, Any], suffix: str) -> list[dict[str, Any]]:
    """Group ``A`` out to ``outside`` on TCP 443, and ``outside`` in to ``b0`` on TCP 80."""
    return [
        {
            "name": f"out{suffix}",
            "from": {"group": "A"},
            "to": outside,
            "services": [{"proto": "tcp", "port": 443}],
        },
        {
            "name": f"in{suffix}",
            "from": outside,
            "to": {"endpoint": "b0"},
            "services": [{"proto": "tcp", "port": 80}],
        },
    ]


def _own_prefixes(tenant: dict[str, Any], t: int) -> None:
    """Tenant ``t``'s IPv6 prefixes made its own: ``fd0S::`` becomes ``fdTT:S::`` (TT = t + 1)."""
    for s in (0, 1):
        old, new = f"fd0{s}::", f"fd{t + 1:02x}:{s}::"
        for seg in tenant["segments"]:
            for key in ("cidr6", "gateway6"):
                if isinstance(seg.get(key), str) and seg[key].startswith(old):
                    seg[key] = new + seg[key][len(old) :]
        for ep in tenant["endpoints"]:
            if isinstance(ep.get("ipv6"), str) and ep["ipv6"].startswith(old):
                ep["ipv6"] = new + ep["ipv6"][len(old) :]


def _two_rack_tenant(t: int, n: int, services: int, ipv6: bool, routed: bool) -> dict[str, Any]:
    """Tenant ``t + 1`` of :func:`two_rack`: its racks' endpoints, segment(s) and policy."""
    eps = []
    for side, leaf in (("a", "rackA"), ("b", "rackB")):
        second = routed and side == "b"
        for i in range(n):
            index = i if side == "a" else n + i
            eps.append(
                {
                    "name": f"{side}{i}",
                    "segment": "lanb" if second else "lan",
                    "mac": _endpoint_mac(t + 1, index),
                    "ip": _host_ip(1 if second else 0, index),
                    **({"ipv6": f"fd0{int(second)}::{index + 1:x}"} if ipv6 else {}),
                    "attach": {"switch": leaf, "port": HOST_PORT_BASE + t * n + i},
                    "labels": {"side": side},
                }
            )
    return {
        "name": f"t{t + 1}",
        "segments": [
            {
                "name": name,
                "cidr": f"10.{s}.0.0/16",
                "gateway": f"10.{s}.255.254",
                "strict": True,
                **({"cidr6": f"fd0{s}::/64"} if ipv6 else {}),
                **({"gateway6": f"fd0{s}::ffff"} if ipv6 and routed else {}),
            }
            for s, name in enumerate(["lan", "lanb"] if routed else ["lan"])
        ],
        "endpoints": eps,
        "groups": [{"name": "A", "labels": {"side": "a"}}, {"name": "B", "labels": {"side": "b"}}],
        "policies": [
            {
                "name": "a-to-b",
                "from": {"group": "A"},
                "to": {"group": "B"},
                "services": [{"proto": "tcp", "port": SERVICE_PORT_BASE + i} for i in range(services)],
            }
        ],
    }


def _check_k(k: int) -> None:
    if k < 2 or k % 2:
        raise ValueError(f"fat-tree k must be an even number >= 2, not {k}")
