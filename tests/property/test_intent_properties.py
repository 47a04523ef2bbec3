"""Property tests of intent loading: valid intents round-trip; corrupted ones give IntentError only."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.documents import at as _at
from support.documents import places as _places

from segctl.errors import IntentError
from segctl.topology.load import load_intent_text
from segctl.topology.network import resolve
from segctl.topology.schema import Intent

Doc = dict[str, Any]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_SERVICES = st.sampled_from(
    [
        {"proto": "tcp", "port": 80},
        {"proto": "tcp", "ports": ["8000-8080", 443]},
        {"proto": "udp", "port": "53"},
        {"proto": "udp", "ports": [{"lo": 1000, "hi": 2000}]},
        {"proto": "icmp"},
        {"proto": "any"},
        {"proto": "TCP", "port": 22},  # protocol names are case-insensitive
    ]
)
_DPID_FORMS = st.sampled_from(["int", "hex", "colon"])
_LABELS = st.dictionaries(st.sampled_from(["role", "tier", "env"]), st.sampled_from(["web", "db", "yes"]))


def _dpid(number: int, form: str) -> int | str:
    if form == "int":
        return number
    if form == "hex":
        return f"{number:#x}"
    return ":".join(f"{number:016x}"[i : i + 2] for i in range(0, 16, 2))


@st.composite
def valid_intents(draw: st.DrawFn) -> Doc:
    """A random intent document that passes every check (small: at most 3 switches, 3 tenants)."""
    n_switches = draw(st.integers(1, 3))
    switches = [{"name": f"s{i}", "dpid": _dpid(i, draw(_DPID_FORMS))} for i in range(1, n_switches + 1)]
    links = [f"s{i}:1 <-> s{i + 1}:2" for i in range(1, n_switches)]
    shared = draw(st.booleans())
    next_port = iter(range(10, 1000))
    vlans = iter(draw(st.permutations(range(2, 40))))
    tenants: list[Doc] = []
    for t in range(draw(st.integers(0, 3))):
        tenant: Doc = {"name": f"t{t}", "segments": [], "endpoints": []}
        if draw(st.booleans()):
            tenant["id"] = 10 + t
        if draw(st.booleans()):
            tenant["gateway_mac"] = f"02:ff:00:00:00:{t:02x}"
        base = draw(st.integers(0, 1))  # two tenants may well share address space
        for s in range(draw(st.integers(1 if shared else 0, 3))):
            prefix = draw(st.sampled_from([24, 26, 28]))
            segment: Doc = {"name": f"seg{s}", "cidr": f"10.{base}.{s}.0/{prefix}"}
            if shared or draw(st.booleans()):
                segment["gateway"] = f"10.{base}.{s}.1"
            if draw(st.booleans()):
                segment["strict"] = draw(st.booleans())
            if draw(st.booleans()):
                segment["vlan"] = next(vlans)
            with_v6 = draw(st.booleans())
            if with_v6:
                segment["cidr6"] = f"fd00:{t}:{s}::/64"
            tenant["segments"].append(segment)
            for e in range(draw(st.integers(0, 3))):
                endpoint: Doc = {
                    "name": f"e{t}{s}{e}",
                    "segment": f"seg{s}",
                    "mac": f"02:00:00:{t:02x}:{s:02x}:{e:02x}",
                    "ip": f"10.{base}.{s}.{2 + e}",
                    "attach": f"s{draw(st.integers(1, n_switches))}:{next(next_port)}",
                }
                if with_v6 and draw(st.booleans()):
                    endpoint["ipv6"] = f"fd00:{t}:{s}::{e + 2:x}"
                labels = draw(_LABELS)
                if labels:
                    endpoint["labels"] = labels
                if draw(st.integers(0, 4)) == 0:
                    endpoint["rate_limit"] = draw(
                        st.sampled_from([{"pps": 1000}, {"kbps": 5000, "burst": 100}])
                    )
                tenant["endpoints"].append(endpoint)
        endpoints = [ep["name"] for ep in tenant["endpoints"]]
        groups: list[Doc] = []
        if draw(st.booleans()):
            groups.append({"name": "by-label", "labels": draw(_LABELS)})
        if endpoints and draw(st.booleans()):
            groups.append({"name": "by-name", "members": draw(st.lists(st.sampled_from(endpoints)))})
        if groups:
            tenant["groups"] = groups
        selectors: list[Doc] = [{"labels": {"role": "web"}}]
        selectors += [{"endpoint": name} for name in endpoints]
        if endpoints:
            chosen = draw(st.lists(st.sampled_from(endpoints), min_size=1, unique=True))
            selectors.append({"endpoints": chosen})
        selectors += [{"group": g["name"]} for g in groups]
        selectors += [{"segment": seg["name"]} for seg in tenant["segments"]]
        policies = []
        for p in range(draw(st.integers(0, 2))):
            policy: Doc = {
                "name": f"p{p}",
                "from": draw(st.sampled_from(selectors)),
                "to": draw(st.sampled_from(selectors)),
                "services": draw(st.lists(_SERVICES, min_size=1, max_size=2)),
            }
            if draw(st.booleans()):
                policy["stateful"] = draw(st.booleans())
            policies.append(policy)
        if policies:
            tenant["policies"] = policies
            # A policy between segments routes through their gateways (a missing one is invalid).
            for s_index, seg in enumerate(tenant["segments"]):
                seg.setdefault("gateway", f"10.{base}.{s_index}.1")
        tenants.append(tenant)
    doc: Doc = {"version": 1, "fabric": {"switches": switches, "links": links}, "tenants": tenants}
    if shared and tenants:
        # The provider lives apart (172.16/24), so no consumer overlaps it.
        tenants.append(
            {
                "name": "infra",
                "segments": [{"name": "svc", "cidr": "172.16.0.0/24", "gateway": "172.16.0.1"}],
                "endpoints": [
                    {"name": "dns1", "segment": "svc", "mac": "02:00:00:99:00:01", "ip": "172.16.0.53",
                     "attach": f"s1:{next(next_port)}", "labels": {"role": "dns"}}
                ],
                "groups": [{"name": "dns", "labels": {"role": "dns"}}],
            }
        )  # fmt: skip
        consumers: list[Doc] = []
        for tenant in draw(
            st.lists(st.sampled_from(tenants[:-1]), min_size=1, unique_by=lambda x: x["name"])
        ):
            consumer: Doc = {"tenant": tenant["name"]}
            if tenant.get("groups") and draw(st.booleans()):
                consumer["group"] = draw(st.sampled_from(tenant["groups"]))["name"]
            consumers.append(consumer)
        provider = draw(
            st.sampled_from([{"tenant": "infra", "endpoints": ["dns1"]}, {"tenant": "infra", "group": "dns"}])
        )
        services = [{"proto": "udp", "port": 53}]
        doc["shared_services"] = [
            {"name": "dns", "provider": provider, "consumers": consumers, "services": services}
        ]
    return doc


def _dump(intent: Intent) -> str:
    return yaml.safe_dump(intent.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)


@SETTINGS
@given(valid_intents())
def test_random_valid_intents_validate(doc: Doc) -> None:
    network = resolve(load_intent_text(yaml.safe_dump(doc, sort_keys=False)))
    assert len(network.endpoints) == sum(len(t["endpoints"]) for t in doc["tenants"])


@SETTINGS
@given(valid_intents())
def test_dump_then_load_is_unchanged(doc: Doc) -> None:
    intent = Intent.model_validate(doc)
    again = load_intent_text(_dump(intent))
    assert again == intent
    assert _dump(again) == _dump(intent)


# --- corruptions -----------------------------------------------------------------------------

_GARBAGE: list[Any] = [None, True, -1, 0, 2**70, -(2**70), 3.5, "", "garbage ☃: [x", [], {}, [None], {"x": 1}]


@st.composite
def corrupted_intents(draw: st.DrawFn) -> Any:
    """A valid intent with one to three random corruptions applied."""
    doc: Any = copy.deepcopy(draw(valid_intents()))
    garbage = st.sampled_from(_GARBAGE).map(copy.deepcopy)  # never mutate the shared samples
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_places(doc)))
        kind = draw(st.sampled_from(["delete", "unknown-key", "replace", "duplicate"]))
        if not path:
            doc = draw(garbage) if kind == "replace" else doc
            continue
        parent, key = _at(doc, path[:-1]), path[-1]
        if kind == "delete":
            del parent[key]
        elif kind == "unknown-key":
            node = parent[key]
            if isinstance(node, dict):
                node[draw(st.sampled_from(["nmae", "extra", "x-y"]))] = draw(garbage)
            else:
                parent[key] = {"bogus": node}
        elif kind == "replace":
            parent[key] = draw(garbage)
        elif isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            parent[key] = [parent[key], copy.deepcopy(parent[key])]
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_intents())
def test_corruptions_give_intent_errors_never_tracebacks(doc: Any) -> None:
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    try:
        resolve(load_intent_text(text))
    except IntentError as exc:
        assert exc.problems
        assert all(str(problem) for problem in exc.problems)
