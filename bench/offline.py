"""Offline measurements (no switch needed): flow economy and compile at scale.

Each function runs inside its own worker process (see ``bench/run.py``) and returns a
plain dict; the parent turns it into a table row.
"""

from __future__ import annotations

import time
from typing import Any

from segctl.flows.compiler import compile_network
from segctl.flows.pipeline import POLICY_DST, POLICY_SRC
from segctl.openflow.cookies import Kind, decode_cookie
from segctl.topology.network import resolve
from segctl.topology.synthetic import policy_pair, synthetic_intent

__all__ = ["compile_scale", "flow_economy"]


def flow_economy(a: int, b: int, p: int) -> dict[str, Any]:
    """Policy flows on each leaf for one A → B policy over P ports, and the leaf totals.

    The A leaf holds the ``policy_src`` side of the policy, the B leaf its
    ``policy_dst`` side; the figure is the larger of the two (flows *per switch*).
    """
    network = resolve(policy_pair(a, b, p))
    programs = compile_network(network)
    per_leaf: dict[str, int] = {}
    totals: dict[str, int] = {}
    for leaf, table in (("leafA", POLICY_SRC.id), ("leafB", POLICY_DST.id)):
        rules = programs[leaf].rules
        per_leaf[leaf] = sum(
            1 for r in rules if r.table == table and decode_cookie(r.cookie)[1] is Kind.POLICY
        )
        totals[leaf] = len(rules)
    return {
        "a": a,
        "b": b,
        "p": p,
        "policy_flows": max(per_leaf.values()),
        "policy_flows_by_leaf": per_leaf,
        "leaf_totals": totals,
        "naive": a * b * p,
    }


def compile_scale(k: int, tenants: int, endpoints: int) -> dict[str, Any]:
    """Seconds to compile a synthetic fat-tree intent, its flow count, and the baseline.

    Baseline: generating, validating and resolving the same intent (everything the
    compiler's input costs), timed in the same process just before the compile.
    """
    t0 = time.perf_counter()
    intent = synthetic_intent(k=k, tenants=tenants, endpoints=endpoints)
    network = resolve(intent)
    t1 = time.perf_counter()
    programs = compile_network(network)
    t2 = time.perf_counter()
    flows = [len(p.rules) for p in programs.values()]
    return {
        "k": k,
        "tenants": tenants,
        "endpoints": endpoints,
        "switches": len(programs),
        "resolve_s": t1 - t0,
        "compile_s": t2 - t1,
        "flows": sum(flows),
        "max_flows_per_switch": max(flows),
    }
