"""Guardrails and ordered rules: schema, the semantics (one decision per packet), the
compiled band (deny, allow, pass hand-over) and the verifier agreeing with both."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from segctl.errors import CompileError, IntentError
from segctl.flows import guardrails as guardrails_module
from segctl.flows.compiler import compile_network
from segctl.flows.guardrails import intersect_match, ordered_grants
from segctl.openflow.ofctl import parse_flows
from segctl.topology.analysis import ServiceMatch, allowed_grants, expected_reachability
from segctl.topology.network import Network, resolve
from segctl.topology.ordered import ServiceSpace, packet_decision, packet_space
from segctl.topology.schema import Intent
from segctl.verifier.report import VerificationReport
from segctl.verifier.verify import verify

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "guardrails.yaml"


def _doc() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def _net(doc: dict[str, Any]) -> Network:
    return resolve(Intent.model_validate(doc))


def _ports(net: Network, src: str, dst: str, proto: str = "tcp") -> set[int]:
    """The destination ports (of a few probes) the intent lets ``src`` open to ``dst``."""
    a, b = net.find_endpoint(src), net.find_endpoint(dst)
    return {p for p in (22, 53, 80, 5432, 8080) if allowed_grants(net, a, b, proto, p)}


def _report(net: Network) -> VerificationReport:
    tables = {n: parse_flows(p.flows_text(), source=n) for n, p in compile_network(net).items()}
    return verify(net, tables)


def _verdicts(net: Network) -> dict[str, bool]:
    return {r.id: r.holds for r in _report(net).properties}


# ------------------------------------------------------------------ schema and validation


def test_guardrail_keys_validate_and_bad_references_name_their_place() -> None:
    doc = _doc()
    doc["guardrails"][0]["from"]["tenant"] = "nope"
    doc["guardrails"][1]["to"] = {"segment": "nowhere"}
    doc["guardrails"].append(dict(doc["guardrails"][2]))
    with pytest.raises(IntentError) as err:
        _net(doc)
    text = str(err.value)
    assert "guardrails[ops-ssh-to-tenant].from" in text and "unknown tenant nope" in text
    assert "guardrails[no-ssh-across-segments].to" in text and "unknown segment nowhere" in text
    assert "guardrails[web-never-db]" in text and "duplicate guardrail name" in text


def test_a_peer_may_name_an_address_set_of_its_tenant() -> None:
    doc = _doc()
    doc["guardrails"][3]["to"] = {"tenant": "corp", "address_set": "backends"}  # ops-may-ping: app1, db1
    net = _net(doc)
    ops = net.find_endpoint("corp/ops1")
    pinged = {d.name for d in net.endpoints if allowed_grants(net, ops, d, "icmp", icmp_type=8)}
    assert pinged == {"app1", "db1"}
    doc["guardrails"][3]["to"] = {"address_set": "backends"}
    doc["guardrails"][2]["from"] = {"tenant": "corp", "address_set": "nope"}
    with pytest.raises(IntentError) as err:
        _net(doc)
    assert "guardrails[ops-may-ping].to: address set backends needs a tenant" in str(err.value)
    assert "guardrails[web-never-db].from: unknown address set nope of tenant corp" in str(err.value)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"action": "reject"}, "action"),
        ({"priority": 1000}, "priority"),
        ({"priority": True}, "priority"),
        ({"scope": "sideways"}, "scope"),
        ({"services": [], "service_sets": []}, "at least one service"),
    ],
)
def test_guardrail_shape_errors(change: dict[str, Any], words: str) -> None:
    doc = _doc()
    doc["guardrails"][0].update(change)
    with pytest.raises(Exception, match=words):
        Intent.model_validate(doc)


def test_policy_action_and_priority_default_to_allow_500() -> None:
    net = _net(_doc())
    pol = net.policies("corp")[0]
    assert (pol.action, pol.priority) == ("allow", 500)
    with pytest.raises(Exception, match="action"):
        doc = _doc()
        doc["tenants"][1]["policies"][0]["action"] = "pass"  # pass is a guardrail's
        Intent.model_validate(doc)


# ------------------------------------------------------------------ service space arithmetic


def test_service_space_is_exact_set_arithmetic() -> None:
    every = ServiceSpace.everything()
    ssh = ServiceSpace.of([ServiceMatch("tcp", ((22, 22),))])
    echo = ServiceSpace.of([ServiceMatch("icmp", None, 8)])
    assert (every - ssh) | ssh == every
    assert not ((every - ssh) & ssh)
    assert [m.describe() for m in (ServiceSpace.of([ServiceMatch("icmp")]) - echo).matches()][:2] == [
        "icmp/type=0",
        "icmp/type=1",
    ]
    unreachable = ServiceSpace.of([ServiceMatch("icmp", None, 3)])
    port = ServiceSpace.of([ServiceMatch("icmp", None, 3, 4)])
    left = (unreachable - port).matches()
    assert ServiceMatch("icmp", None, 3, 4) not in left and len(left) == 255
    assert ServiceSpace.of(left) | port == unreachable
    assert (
        every - ServiceSpace.of([ServiceMatch("tcp"), ServiceMatch("udp"), ServiceMatch("icmp")])
    ).matches() == (ServiceMatch("icmp6"), ServiceMatch("other"))
    assert (
        every - ServiceSpace.of([ServiceMatch(p) for p in ("tcp", "udp", "icmp", "icmp6")])  # type: ignore[arg-type]
    ).matches() == (ServiceMatch("other"),)
    assert ServiceMatch("other").matches("47", None) and not ServiceMatch("other").matches("tcp", 22)
    assert not ServiceMatch("other").matches("icmp6", None)
    echo6 = ServiceSpace.of([ServiceMatch("icmp6", None, 128)])
    assert not (echo6 & echo) and (echo6 | echo) - echo == echo6  # ICMPv6 types are not ICMP's


def test_intersect_match_of_masked_ports() -> None:
    block = (("proto", "tcp"), ("tcp_dst", "0x1f40/0xfff0"))  # 8000-8015
    assert intersect_match(block, (("proto", "tcp"), ("tcp_dst", "8020"))) is None
    assert intersect_match(block, (("proto", "ip"),)) == block
    assert (
        intersect_match((("proto", "icmp"), ("icmp_type", "8")), (("proto", "icmp"), ("icmp_type", "0")))
        is None
    )


# ------------------------------------------------------------------ the semantics


def test_guardrails_narrow_and_widen_as_documented() -> None:
    net = _net(_doc())
    # no-ssh-across-segments (guardrail deny) takes 22 from web-to-backends
    assert _ports(net, "corp/web1", "corp/app1") == {8080}
    # web-never-db denies everything web-to-backends opened to db1
    assert _ports(net, "corp/web1", "corp/db1") == set()
    assert ("corp", "db1") not in {d for (s, d) in expected_reachability(net) if s == ("corp", "web1")}
    # a deny policy at priority 100 beats app-to-db (priority 500) for db2 only
    assert _ports(net, "corp/app1", "corp/db1") == {5432}
    assert _ports(net, "corp/app1", "corp/db2") == set()
    # ops: pass hands ssh to the tenant's ops-ssh, which the later deny never sees
    assert _ports(net, "corp/ops1", "corp/web1") == {22}
    # a guardrail allow admits what no tenant policy does (inside the tenant)
    ops, web = net.find_endpoint("corp/ops1"), net.find_endpoint("corp/web1")
    assert [g.kind for g in allowed_grants(net, ops, web, "icmp", icmp_type=8)] == ["guardrail"]
    # a cross-tenant deny narrows the shared service
    assert _ports(net, "lab/l1", "infra/dns1") == set() and _ports(net, "lab/l1", "infra/dns1", "udp") == {53}
    assert _ports(net, "corp/web1", "infra/dns1") == {53}


def test_deny_beats_allow_at_equal_priority_and_lower_priority_goes_first() -> None:
    doc = _doc()
    doc["guardrails"] = []
    pols = doc["tenants"][1]["policies"]
    pols[2]["priority"] = 500  # app-not-replica: same priority as app-to-db
    net = _net(doc)
    assert _ports(net, "corp/app1", "corp/db2") == {22}
    pols[2]["priority"] = 501  # now after app-to-db: the allow decides first
    net = _net(doc)
    assert _ports(net, "corp/app1", "corp/db2") == {22, 5432}


def test_pass_copies_past_the_band_stop_at_the_guardrail_that_overflows() -> None:
    """Each pass overlapped by a later guardrail copies the tenant tier under it; the build
    stops at the first guardrail whose copies take a domain past what the band can rank,
    names it, and never narrows the remaining passes (hostile admin intents stay cheap)."""
    doc = _doc()
    passes = [{**doc["guardrails"][0], "name": f"pass-{i:03d}", "priority": 5} for i in range(300)]
    doc["guardrails"] = passes + doc["guardrails"][1:]
    net = _net(doc)
    seen: list[str] = []
    real = guardrails_module._Narrowing.__init__

    def counting(self: Any, rail: Any) -> None:
        seen.append(rail.name)
        real(self, rail)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(guardrails_module._Narrowing, "__init__", counting)
        with pytest.raises(CompileError) as caught:
            ordered_grants(net)
    message = str(caught.value)
    assert message.startswith("guardrail pass-"), message
    assert "copies of the tenant rules it passes to" in message
    assert "policy_src domain of tenant corp" in message and "399 priorities" in message
    stopped_at = message.split()[1].rstrip(":")
    assert seen[-1] == f"guardrail {stopped_at}" and len(seen) < len(passes)
    # the same passes under the limit compile: the budget refuses nothing it could rank
    doc["guardrails"] = passes[:50] + doc["guardrails"][len(passes) :]
    assert any(g.name == "guardrail pass-049" for g in ordered_grants(_net(doc)))


def test_a_guardrail_allow_never_crosses_tenants() -> None:
    doc = _doc()
    doc["guardrails"] = [
        {"name": "open", "priority": 1, "action": "allow", "services": [{"proto": "any"}]},
    ]
    net = _net(doc)
    reach = expected_reachability(net)
    assert not [pair for pair in reach if pair[0][0] != pair[1][0] and pair[1][0] != "infra"]
    assert _ports(net, "lab/l1", "infra/dns1", "udp") == {53}
    assert _ports(net, "lab/l1", "infra/dns1") == {53}  # the shared service, not the guardrail
    assert _verdicts(net) == dict.fromkeys(_verdicts(net), True)


def test_packet_decision_names_rule_and_tier() -> None:
    net = _net(_doc())
    web, app, db2 = (net.find_endpoint(n) for n in ("corp/web1", "corp/app1", "corp/db2"))
    assert packet_decision(net, web, app, packet_space("tcp", 22)) == (
        "deny by guardrail no-ssh-across-segments (guardrail tier)"
    )
    assert (
        packet_decision(net, app, db2, packet_space("tcp", 5432))
        == "deny by policy app-not-replica (tenant tier)"
    )
    assert packet_decision(net, web, app, packet_space("udp", 9)).startswith("default deny")


# ------------------------------------------------------------------ the compiled band


def test_example_compiles_to_rules_the_verifier_proves() -> None:
    net = _net(_doc())
    assert all(_verdicts(net).values())


def test_the_verifier_refuses_rules_compiled_without_the_guardrails() -> None:
    """The proof follows the ordered semantics: the tenant tier's rules alone (the same intent
    compiled without its guardrails) let through what the guardrails deny."""
    net = _net(_doc())
    tenant_tier = compile_network(_net({**_doc(), "guardrails": []}))
    report = verify(net, {n: parse_flows(p.flows_text(), source=n) for n, p in tenant_tier.items()})
    failed = {r.id for r in report.properties if not r.holds}
    assert {"isolation", "conformance", "allowed-delivered"} <= failed
    texts = [v.message for r in report.properties for v in r.counterexamples]
    assert any("the intent decides: deny by guardrail lab-dns-udp-only (guardrail tier)" in t for t in texts)


def test_pass_without_a_later_overlap_compiles_to_nothing() -> None:
    doc = _doc()
    doc["guardrails"] = [g for g in doc["guardrails"] if g["name"] == "ops-ssh-to-tenant"]
    net = _net(doc)
    assert [g for g in ordered_grants(net) if g.band == "guardrail"] == []
    with_later = _net(_doc())
    names = [g.name for g in ordered_grants(with_later) if g.band == "guardrail"]
    # handed over: ops-ssh narrowed to the pass, then the drop closing the pass
    assert names[:2] == ["policy corp/ops-ssh", "guardrail ops-ssh-to-tenant"]


def test_deny_rules_drop_and_logged_ones_go_to_the_controller() -> None:
    net = _net(_doc())
    flows = "".join(p.flows_text() for p in compile_network(net).values())
    src_lines = [line for line in flows.splitlines() if "table=30," in line and "tcp_dst=5432" in line]
    app_to_db2 = [line for line in src_lines if "nw_dst=10.20.3.11" in line and "nw_src=10.20.2.10" in line]
    # the deny (priority 100) sits above app-to-db's allow (priority 500) in the tenant band
    first, *rest = sorted(app_to_db2, key=lambda line: -int(line.split("priority=")[1].split(",")[0]))
    assert first.endswith("actions=CONTROLLER:128") and rest and "ct(commit" in rest[0]
    dst = [
        line
        for line in flows.splitlines()
        if "table=70," in line and "nw_dst=10.20.3.11" in line and "tcp_dst=5432" in line
    ]
    first = max(dst, key=lambda line: int(line.split("priority=")[1].split(",")[0]))
    assert first.endswith("actions=drop")


@pytest.mark.parametrize("mutation", ["flip-actions", "reverse-priorities", "drop-scope"])
def test_variants_still_verify(mutation: str) -> None:
    """Other orders and actions of the same rules: compiler and analysis agree on each."""
    doc = copy.deepcopy(_doc())
    rails = doc["guardrails"]
    if mutation == "flip-actions":
        for g in rails:
            g["action"] = {"deny": "allow", "allow": "pass", "pass": "deny"}[g["action"]]
    elif mutation == "reverse-priorities":
        for g in rails:
            g["priority"] = 100 - g["priority"]
    else:
        for g in rails:
            g.pop("scope", None)
    net = _net(doc)
    assert all(_verdicts(net).values()), mutation


# ------------------------------------------------------------------ the Mininet scenario's choice


def test_scenario_picks_a_logged_guardrail_denial_of_a_tenant_allowed_ping() -> None:
    from segctl.mininet_scenarios.scenarios import SCENARIOS, intent_path
    from segctl.mininet_scenarios.scenarios.guardrails import guardrail_logging_needs, logged_denial
    from segctl.topology.network import load_network

    net = load_network(SCENARIOS["guardrails"].intent)
    src, dst, rail = logged_denial(net) or (None, None, None)
    assert (src and src.qualified, dst and dst.qualified, rail and rail.name) == (
        "bank/f1",
        "bank/c1",
        "front-never-core",
    )
    assert guardrail_logging_needs(net) == ""
    assert "log: true" in guardrail_logging_needs(load_network(intent_path("leaf-spine.yaml")))
    unlogged = _doc()
    for g in unlogged["guardrails"]:
        g["log"] = False
    assert logged_denial(_net(unlogged)) is None


def test_guardrails_count_in_the_controllers_cost_limits() -> None:
    from segctl.controller.intake import intent_cost

    doc = _doc()
    with_rails, without = Intent.model_validate(doc), Intent.model_validate({**doc, "guardrails": []})
    assert intent_cost(with_rails).policies == intent_cost(without).policies + 5
    assert intent_cost(with_rails).ports > intent_cost(without).ports
    assert intent_cost(with_rails, "corp") == intent_cost(without, "corp")  # a tenant's share: its own


def test_a_pairs_grants_depend_only_on_its_own_rules() -> None:
    """A deny policy in one tenant makes the intent ordered; the other tenants' pairs keep the
    grants they had (an intra-segment pair with a policy inside it still lists both): the
    incremental verifier re-proves only the changed tenant and must find the same rows."""
    doc = _doc()
    doc["guardrails"] = []
    for t in doc["tenants"]:
        t["policies"] = [p for p in t.get("policies", []) if p.get("action") != "deny"]
    doc["tenants"][2]["policies"] = [
        {"name": "lan", "from": {"segment": "lan"}, "to": {"segment": "lan"}, "services": [{"proto": "tcp"}]}
    ]
    plain = _net(doc)
    doc["tenants"][1]["policies"][0]["action"] = "deny"
    ordered = _net(doc)
    lab = {k: v for k, v in expected_reachability(plain).items() if k[0][0] == "lab"}
    assert lab == {k: v for k, v in expected_reachability(ordered).items() if k[0][0] == "lab"}
    assert [g.kind for g in lab[(("lab", "l1"), ("lab", "l2"))]] == ["intra-segment", "policy"]


def test_a_shared_service_a_guardrail_denies_whole_still_verifies() -> None:
    """Found by the long agreement profile: a guardrail denying all of a shared service's
    services for a pair left the compiled reply route for the declared pair; the isolation
    check in any conntrack state now reads the declared pairs (no connection of theirs can be
    committed: the new-connection check and commit safety hold that)."""
    doc = _doc()
    doc["guardrails"] = [
        {"name": "no-dns", "priority": 1, "action": "deny", "from": {"tenant": "lab"},
         "services": [{"proto": "udp", "port": 53}, {"proto": "tcp", "port": 53}]},
    ]  # fmt: skip
    net = _net(doc)
    assert not [pair for pair in expected_reachability(net) if pair[0][0] == "lab" and pair[1][0] == "infra"]
    assert all(_verdicts(net).values())


def test_the_first_priority_decides_replies_too() -> None:
    """Found by the long agreement profile: a stateless allow at priority 100 and a stateful
    allow at 500 of the same packets. The compiler puts the stateless one first (no commit),
    so the intent means no replies; at one priority the allows add up (replies pass)."""
    from segctl.topology.analysis import reply_allowed

    doc = _doc()
    doc["guardrails"] = []
    doc["tenants"][1]["policies"] = [
        {"name": "stateful", "from": {"segment": "web"}, "to": {"segment": "app"},
         "services": [{"proto": "tcp", "port": 8080}]},
        {"name": "stateless", "priority": 100, "stateful": False, "from": {"segment": "web"},
         "to": {"segment": "app"}, "services": [{"proto": "tcp", "port": 8080}]},
    ]  # fmt: skip
    for priority, replies in ((100, False), (500, True)):
        doc["tenants"][1]["policies"][1]["priority"] = priority
        net = _net(doc)
        web, app = net.find_endpoint("corp/web1"), net.find_endpoint("corp/app1")
        assert reply_allowed(net, web, app, "tcp", 8080) is replies
        assert all(_verdicts(net).values())


def test_guardrails_decide_ipv6_inside_a_segment() -> None:
    """Where IPv6 goes (one segment, both ends with ipv6) a guardrail deny takes it exactly
    as IPv4, above the intra-segment allow: the compiled tables carry its IPv6 drop, the
    proof holds, IPv6 tcp/22 is denied and tcp/80 passes."""
    seg = {"name": "lan", "cidr": "10.0.0.0/24", "cidr6": "fd00::/64", "gateway": "10.0.0.1"}
    eps = [
        {"name": n, "segment": "lan", "mac": f"02:00:00:00:00:0{i}", "ip": f"10.0.0.1{i}",
         "ipv6": f"fd00::{i}", "attach": f"s1:{i}"}
        for i, n in enumerate(["a", "b"], start=1)
    ]  # fmt: skip
    rail = {"name": "no-ssh", "priority": 5, "action": "deny", "services": [{"proto": "tcp", "port": 22}]}
    net = _net(
        {
            "fabric": {"switches": [{"name": "s1", "dpid": 1}]},
            "tenants": [{"name": "t", "segments": [seg], "endpoints": eps}],
            "guardrails": [rail],
        }
    )
    a, b = net.endpoint("t", "a"), net.endpoint("t", "b")
    assert allowed_grants(net, a, b, "tcp", 22, family=6) == allowed_grants(net, a, b, "tcp", 22) == ()
    assert [g.kind for g in allowed_grants(net, a, b, "tcp", 80, family=6)] == ["intra-segment"]
    text = compile_network(net)["s1"].flows_text()
    assert "tcp6" in text and "tcp_dst=22" in text
    assert _report(net).ok
