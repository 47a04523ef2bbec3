"""Reusable sets: service sets and address sets mean exactly what they stand for.

The strongest check: an intent written with sets compiles to the same rules, and proves
to the same verdicts, as the same intent with every set written out by hand.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from support.intents import set_users

from segctl.controller.intake import intent_cost
from segctl.errors import IntentError
from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import parse_flows
from segctl.topology.load import intent_from_document
from segctl.topology.network import resolve
from segctl.topology.validate import validate_intent
from segctl.verifier.verify import verify

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reusable-sets.yaml"


def _example() -> dict[str, Any]:
    return dict(yaml.safe_load(EXAMPLE.read_text()))


def _written_out() -> dict[str, Any]:
    """The example with every set replaced by what it stands for."""
    d = _example()
    shop = next(t for t in d["tenants"] if t["name"] == "shop")
    fe_to_api, api_to_db = shop["policies"]
    fe_to_api.update(
        {
            "from": {"endpoints": ["fe1", "fe2", "lb1"]},
            "to": {"endpoint": "api1"},
            "services": [
                {"proto": "icmp"},
                {"proto": "tcp", "ports": [80, 443]},
                {"proto": "tcp", "port": 8080},
            ],
        }
    )
    del fe_to_api["service_sets"]
    api_to_db.update({"from": {"endpoint": "api1"}, "services": [{"proto": "tcp", "port": 5432}]})
    del api_to_db["service_sets"]
    del shop["address_sets"]
    d["shared_services"][0]["services"] = [{"proto": "udp", "port": 123}]
    del d["shared_services"][0]["service_sets"]
    del d["service_sets"]
    return d


def _rules(d: dict[str, Any]) -> dict[str, list[str]]:
    programs = compile_network(resolve(intent_from_document(d)))
    return {name: sorted(r.to_ofctl() for r in p.rules) for name, p in programs.items()}


def _problems(d: dict[str, Any]) -> list[str]:
    try:
        intent = intent_from_document(d)
    except IntentError as exc:
        return [f"{p.location}: {p.message}" for p in exc.problems]
    return sorted(f"{p.location}: {p.message}" for p in validate_intent(intent))


def test_sets_compile_to_the_rules_written_out_by_hand() -> None:
    assert _rules(_example()) == _rules(_written_out())


def test_sets_prove_to_the_same_verdicts() -> None:
    def verdicts(d: dict[str, Any]) -> list[tuple[str, Any]]:
        network = resolve(intent_from_document(d))
        tables = {
            name: parse_flows(p.flows_text(), source=name) for name, p in compile_network(network).items()
        }
        report = verify(network, tables)
        return [(p.id, dict(p.counts), p.violation_count) for p in report.properties]

    with_sets = verdicts(_example())
    assert with_sets == verdicts(_written_out())
    assert all(violations == 0 for *_, violations in with_sets)


def test_a_cidr_selects_the_tenants_endpoints_inside_it_and_names_add_to_it() -> None:
    network = resolve(intent_from_document(_example()))
    from segctl.topology.schema import Selector

    picked = network.select("shop", Selector(address_set="frontends"))
    assert [ep.name for ep in picked] == ["fe1", "fe2", "lb1"]  # 10.3.1.0/25 + lb1 (10.3.1.200)
    # lab reuses shop's addresses (10.3.1.10, .11): an address set never leaves its tenant
    assert all(ep.tenant == "shop" for ep in picked)


def test_service_sets_are_written_into_services_once() -> None:
    d = _example()
    shop = next(t for t in d["tenants"] if t["name"] == "shop")
    shop["policies"][0]["services"].append({"proto": "tcp", "port": 8080})  # also in the web set
    policy = resolve(intent_from_document(d)).policies("shop")[0]
    assert [s.describe() for s in policy.services] == ["icmp", "tcp/8080", "tcp/80,443"]
    assert policy.service_sets == ["web"]


def test_cost_limits_count_the_ports_a_set_brings() -> None:
    with_sets, written = intent_from_document(_example()), intent_from_document(_written_out())
    assert intent_cost(with_sets) == intent_cost(written)
    assert intent_cost(with_sets).ports > 0


def test_problems_name_the_place() -> None:
    d = _example()
    shop = next(t for t in d["tenants"] if t["name"] == "shop")
    shop["policies"][0]["service_sets"] = ["web", "webz", "web"]
    shop["policies"][1]["from"] = {"address_set": "apis"}
    shop["address_sets"].append({"name": "far", "cidrs": ["192.168.0.0/16"], "endpoints": ["ghost"]})
    shop["address_sets"].append({"name": "api", "endpoints": ["api1"]})
    d["service_sets"].append({"name": "db", "services": [{"proto": "udp", "port": 1}]})
    d["shared_services"][0]["service_sets"] = ["clock"]
    assert _problems(d) == [
        "service_sets[db]: duplicate service set name",
        "shared_services[ntp].service_sets: unknown service set clock",
        "tenants[shop].address_sets[api]: duplicate name in address_sets",
        "tenants[shop].address_sets[far].cidrs: 192.168.0.0/16 meets none of tenant shop's segments: "
        "it would select nothing (an address set names the tenant's own endpoints)",
        "tenants[shop].address_sets[far].endpoints: unknown endpoint ghost in tenant shop",
        "tenants[shop].policies[api-to-db].from.address_set: unknown address_set apis",
        "tenants[shop].policies[fe-to-api].service_sets: unknown service set webz",
        "tenants[shop].policies[fe-to-api].service_sets: web is listed twice",
    ]


def test_shape_errors_of_sets() -> None:
    d = _example()
    shop = next(t for t in d["tenants"] if t["name"] == "shop")
    shop["address_sets"][0] = {"name": "frontends"}
    shop["policies"][1].pop("service_sets")
    shop["address_sets"][1]["cidrs"] = ["10.3.2.5/24"]
    found = _problems(d)
    assert any("an address set names endpoints, cidrs or both" in p for p in found), found
    assert any("a policy allows at least one service" in p for p in found), found
    assert any("10.3.2.5/24 has host bits set; did you mean 10.3.2.0/24?" in p for p in found), found


def test_an_address_set_of_another_tenant_is_refused_with_the_reason() -> None:
    d = copy.deepcopy(_example())
    lab = next(t for t in d["tenants"] if t["name"] == "lab")
    lab["policies"] = [
        {
            "name": "x",
            "from": {"endpoint": "l1"},
            "to": {"address_set": "api"},
            "services": [{"proto": "icmp"}],
        }
    ]
    assert _problems(d) == [
        "tenants[lab].policies[x].to.address_set: unknown address_set api in tenant lab (tenant shop has "
        "one: a policy stays inside its tenant; cross-tenant traffic is declared in shared_services)"
    ]


def test_a_set_named_by_several_rules_is_compiled_once_per_priority() -> None:
    """Rules that never meet one packet share a priority, so the set's clause flows are one
    flow per member carrying every rule's conjunction(): flows grow by each rule's own sources,
    not by the set again per use."""

    def policy_src(users: int) -> list[str]:
        net = resolve(intent_from_document(set_users(users)))
        flows = compile_network(net)["s1"].flows_text()
        assert verify(net, {"s1": parse_flows(flows, source="s1")}).ok
        return [x for x in flows.splitlines() if x.startswith("table=30,") and "conjunction(" in x]

    one, three = policy_src(1), policy_src(3)
    members = [line for line in three if "nw_dst=10.7.0." in line]
    assert len(members) == 8  # the set's 8 backends: once, not 3 times
    assert all(line.count("conjunction(") == 3 for line in members)
    services = [line for line in three if "tcp_dst=" in line]
    assert len(services) == 3 and all(line.count("conjunction(") == 3 for line in services)
    # each extra use adds its 4 sources (clause 1) and nothing for the set or the services
    assert len(three) - len(one) == 2 * 4


DUAL = EXAMPLE.parent / "dual-stack.yaml"


def test_ipv6_prefixes_select_endpoints_by_their_ipv6_address() -> None:
    """An address set's IPv6 prefix takes the endpoints whose global ipv6 is inside, as a
    guardrail peer's ``cidr`` does; one that meets no segment's cidr6 is refused."""
    d = dict(yaml.safe_load(DUAL.read_text()))
    acme = next(t for t in d["tenants"] if t["name"] == "acme")
    acme["address_sets"] = [{"name": "db6", "cidrs": ["fd00:1:2::/64"]}]
    acme["policies"][1]["from"] = {"address_set": "db6"}  # db-replica: db1 and db2 now
    d["guardrails"] = [
        {"name": "no-db-ssh", "priority": 1, "action": "deny", "to": {"cidr": "fd00:1:2::/64"},
         "services": [{"proto": "tcp", "port": 22}]},
    ]  # fmt: skip
    net = resolve(intent_from_document(d))
    chosen = [ep.name for ep in net.select("acme", net.tenant_doc("acme").policies[1].from_)]
    assert chosen == ["db1", "db2"]
    assert [ep.qualified for ep in net.peer_select(net.guardrails[0].to)] == ["acme/db1", "acme/db2"]
    tables = {sw: parse_flows(p.flows_text()) for sw, p in compile_network(net).items()}
    assert verify(net, tables).ok
    acme["address_sets"].append({"name": "nowhere", "cidrs": ["fd00:9::/64"]})
    assert _problems(d) == [
        "tenants[acme].address_sets[nowhere].cidrs: fd00:9::/64 meets none of tenant acme's segments: "
        "it would select nothing (an address set names the tenant's own endpoints)"
    ]
    # a zone index (Python's parser takes it; no match can hold it), in a set and a peer
    acme["address_sets"][-1]["cidrs"] = ["fe80::%eth0/64"]
    d["guardrails"][0]["to"] = {"cidr": "fd00:1:2::%2/64"}
    assert _problems(d) == [
        "guardrails[no-db-ssh].to.cidr: fd00:1:2::%2/64: a prefix with a zone index; write the prefix alone",
        "tenants[acme].address_sets[nowhere].cidrs[0]: fe80::%eth0/64: a prefix with a zone index; "
        "write the prefix alone",
    ]
