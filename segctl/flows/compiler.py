"""The compiler: a resolved :class:`~segctl.topology.network.Network` → rules per switch.

Pure (no I/O) and deterministic: the same network gives byte-identical output. The
pipeline it targets is :mod:`segctl.flows.pipeline` (documented in ``docs/pipeline.md``).

One compilation plans its contexts once (:class:`~segctl.flows.plan.CompilePlan`); each
switch then gets the rules of every stage, in pipeline order: :mod:`~segctl.flows.edge`
(tables 0, 10, 80), :mod:`~segctl.flows.stateful` (20, 30, 60, 70),
:mod:`~segctl.flows.routing` (40, 45, 50) and the grants of :mod:`~segctl.flows.policy`.
Rules that share (table, priority, match) are merged or refused (:func:`_finish`).

>>> from segctl.topology.network import load_network
>>> programs = compile_network(load_network("examples/two-tenants.yaml"))  # doctest: +SKIP
>>> sorted(programs)  # doctest: +SKIP
['s1']
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from segctl.errors import CompileError
from segctl.flows.conjunctions import check_conjunctions
from segctl.flows.edge import arp_stage, classify_stage, egress_stage
from segctl.flows.external import (
    external_classify,
    external_forward,
    external_routes,
    nat_in_stage,
    nat_out_stage,
    uplink_in_stage,
    uplink_out_stage,
)
from segctl.flows.meters import MeterSpec, endpoint_meter
from segctl.flows.pipeline import (
    CT_DST,
    CT_SRC,
    EGRESS,
    POLICY_DST,
    POLICY_SRC,
    ROUTE,
)
from segctl.flows.plan import CompilePlan
from segctl.flows.policy import grant_rules
from segctl.flows.routing import forward_stage, route_stage, shared_reply_stage
from segctl.flows.rules import Rule, rules_text
from segctl.flows.stateful import ct_stage, policy_stage
from segctl.openflow.ofctl import Conjunction
from segctl.topology.network import Network

__all__ = ["SwitchProgram", "compile_network"]


@dataclass(frozen=True)
class SwitchProgram:
    """Everything one switch gets: its rules (sorted) and meters."""

    switch: str
    dpid: int
    rules: tuple[Rule, ...]
    meters: tuple[MeterSpec, ...]

    def flows_text(self) -> str:
        """The ``ovs-ofctl add-flows`` file of this switch."""
        return rules_text(self.rules)

    def meters_text(self) -> str:
        """One ``ovs-ofctl add-meter`` argument per line (load before the flows)."""
        return "".join(m.to_ofctl() + "\n" for m in self.meters)


def _sort_key(rule: Rule) -> tuple[int, int, str]:
    # (table, priority, match) is unique after _finish, so the actions never break a tie
    return (rule.table, -rule.priority, rule.match_text())


def _switch_program(plan: CompilePlan, name: str, dpid: int) -> SwitchProgram:
    """Every stage's rules and the meters of switch ``name``."""
    local = [ep for ep in plan.net.endpoints if ep.switch == name]
    meters: dict[str, int] = {}
    meter_specs: list[MeterSpec] = []
    for ep in local:
        spec = endpoint_meter(len(meter_specs) + 1, ep)
        if spec is not None:
            meters[ep.name] = spec.id
            meter_specs.append(spec)
    tenants = sorted({ep.tenant for ep in local}, key=plan.tid.__getitem__)
    segments = sorted({plan.seg(ep) for ep in local}, key=lambda s: s.vlan)
    dst_tenants = sorted(
        {dst_key[0] for (_, dst_key), port in plan.forward.get(name, {}).items() if port == 0},
        key=plan.tid.__getitem__,
    )
    rules = [
        *classify_stage(plan, name, local, meters),
        *external_classify(plan.externals, name),
        *arp_stage(plan, local),
        *ct_stage(plan, CT_SRC.id, POLICY_SRC.id, tenants),
        *policy_stage(plan, POLICY_SRC.id, ROUTE.id, segments),
        *route_stage(plan, name, local),
        *external_routes(plan.externals, tenants, plan.gw_mac),
        *shared_reply_stage(plan, local),
        *nat_in_stage(plan.externals, name, plan.ep_cookie),
        *uplink_in_stage(plan.externals, name, plan.net, plan.ep_cookie),
        *forward_stage(plan, name),
        *external_forward(plan.externals, name, plan.net),
        *nat_out_stage(plan.externals, name, plan.net, plan.ep_cookie),
        *uplink_out_stage(plan.externals, name),
        *ct_stage(plan, CT_DST.id, POLICY_DST.id, dst_tenants),
        *policy_stage(plan, POLICY_DST.id, EGRESS.id, segments),
        *egress_stage(plan, local),
    ]
    for grant in plan.grants_at.get(name, ()):
        rules += grant_rules(grant, name, lambda ep: plan.seg(ep).index, cache=plan.grant_cache)
    if plan.log_meter is not None:
        meter_specs.append(plan.log_meter)
    return SwitchProgram(name, dpid, _finish(name, rules), tuple(meter_specs))


def _finish(switch: str, rules: list[Rule]) -> tuple[Rule, ...]:
    """Deduplicate; merge conjunction clause flows that share (table, priority, match) into
    one flow with every ``conjunction()`` action (a set used by grants of one priority);
    refuse two other different rules with one (table, priority, match); sort."""
    by_key: dict[tuple[int, int, str], Rule] = {}  # the match text identifies the match (and hashes once)
    for rule in rules:
        key = (rule.table, rule.priority, rule.match_text())
        seen = by_key.setdefault(key, rule)
        if seen is rule or seen == rule:
            continue
        if _clause_only(seen) and _clause_only(rule):
            both = (*seen.actions, *rule.actions)
            clauses: list[Conjunction] = [a for a in both if isinstance(a, Conjunction)]
            merged = sorted(set(clauses), key=lambda a: (a.id, a.clause))
            by_key[key] = replace(seen, actions=tuple(merged))
        else:
            raise CompileError(
                f"switch {switch}: two rules share table {rule.table} priority {rule.priority} match "
                f"{rule.match_text()!r}: {seen.actions_text()} vs {rule.actions_text()}"
            )
    check_conjunctions(by_key.values(), switch=switch)
    return tuple(sorted(by_key.values(), key=_sort_key))


def _clause_only(rule: Rule) -> bool:
    return all(isinstance(a, Conjunction) for a in rule.actions)


def compile_network(network: Network) -> dict[str, SwitchProgram]:
    """Compile every switch of ``network``; keys in fabric (document) order.

    Raises :class:`~segctl.errors.CompileError` when no safe rule set exists
    (metadata overflow, too many policies, overlapping conjunctions).
    """
    plan = CompilePlan(network)
    return {sw.name: _switch_program(plan, sw.name, sw.dpid) for sw in network.switches}
