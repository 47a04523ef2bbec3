"""Per-policy packet and byte counts, read from the switches' own flow counters (pure).

Every new connection is decided once, in the ``policy_src`` stage of the switch where
its source endpoint sits; the rule that decided it carries the cookie of the intent
object behind it (:mod:`segctl.openflow.cookies`). Summing the counters of those rules
by cookie gives, per tenant, policy and verdict, the packets the policy decided:

* grant rules: a policy (``tenant``, ``policy``; ``allow``, or ``deny`` for a deny
  policy), a shared service on its consumer's side (``shared:NAME``), a non-strict
  segment (``intra-segment:SEGMENT``), a guardrail (``guardrail:NAME``, tenant = the
  source tenant; ``deny`` also for the drop that closes a ``pass``);
* fabric-wide rules (``tenant=""``): ``default-deny`` (the stage's table-miss drop: a new
  connection no grant allows), ``ct-invalid`` (conntrack said invalid: dropped) and
  ``ct-established`` (packets of connections already allowed, passed by conntrack).

A stateful grant's counter therefore counts connections' first packets (the rest pass as
``ct-established``); a stateless grant counts every packet it lets through. The
``policy_dst`` stage repeats the decision at the destination and is not counted, so no
packet is counted twice. Conjunction clause rules only vote; their ``conj_id`` rule
decides and carries the counts.

>>> from segctl.openflow.ofctl import parse_flow
>>> miss = parse_flow("table=30,priority=0,cookie=0x1e00000000000000,actions=drop")
>>> policy_counts(None, {"leaf1": [(miss, 3, 180)]})
{PolicyKey(tenant='', policy='default-deny', verdict='deny'): (3, 180)}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from segctl.flows.pipeline import POLICY_SRC
from segctl.openflow.cookies import Kind, decode_cookie
from segctl.openflow.ofctl import Conjunction, Ct, Drop, Flow, GotoTable
from segctl.topology.network import Network

__all__ = ["Counts", "PolicyKey", "decision_of_cookie", "policy_counts", "sum_counts", "tier_of_cookie"]

#: ct_state bits of the fabric-wide rules, checked in this order.
_CT_NAMES = ((0x10, "ct-invalid"), (0x02, "ct-established"), (0x04, "ct-related"))


class PolicyKey(NamedTuple):
    """The labels of one per-policy counter."""

    tenant: str
    policy: str
    verdict: str  # allow or deny


Counts = dict[PolicyKey, tuple[int, int]]


def _verdict(flow: Flow) -> str:
    passes = any(isinstance(a, GotoTable | Ct) for a in flow.actions)
    return "allow" if passes and not any(isinstance(a, Drop) for a in flow.actions) else "deny"


def _fabric_name(flow: Flow) -> str | None:
    if flow.priority == 0:
        return "default-deny"
    state = flow.get("ct_state")
    if state is None:
        return None
    for bit, name in _CT_NAMES:
        if state.value & state.mask & bit:
            return name
    return None


def _key(flow: Flow, network: Network | None) -> PolicyKey | None:
    """Whose decision ``flow`` is, or None when it decides nothing we name."""
    try:
        _stage, kind, tenant_id, index = decode_cookie(flow.cookie)
    except ValueError:
        return None
    verdict = _verdict(flow)
    if kind in (Kind.PIPELINE, Kind.TENANT):
        name = _fabric_name(flow)
        return None if name is None else PolicyKey("", name, verdict)
    named = _grant_name(network, kind, tenant_id, index)
    return None if named is None else PolicyKey(*named, verdict)


def _grant_name(network: Network | None, kind: Kind, tenant_id: int, index: int) -> tuple[str, str] | None:
    """(tenant, policy label) of the grant a cookie names, or None."""
    if network is None:
        return None
    tenant = next((t.name for t in network.tenants if t.id == tenant_id), None)
    try:
        if kind is Kind.SHARED:
            return tenant or "", f"shared:{network.shared_services[index].name}"
        if kind is Kind.GUARDRAIL:
            return tenant or "", f"guardrail:{network.guardrails[index].name}"
        if tenant is None:
            return None
        doc = network.tenant_doc(tenant)
        if kind is Kind.POLICY:
            return tenant, doc.policies[index].name
        if kind is Kind.SEGMENT:
            return tenant, f"intra-segment:{doc.segments[index - 1].name}"
    except IndexError:
        return None  # a rule of another intent revision: its cookie names nothing now
    return None


def decision_of_cookie(network: Network | None, cookie: int) -> PolicyKey | None:
    """Which decision a logged packet's cookie stands for: a grant of ``policy_src``
    (``allow``) or its table-miss (``default-deny``); None for anything else."""
    try:
        stage, kind, tenant_id, index = decode_cookie(cookie)
    except ValueError:
        return None
    if stage != POLICY_SRC.id:
        return None
    if kind is Kind.PIPELINE:
        return PolicyKey("", "default-deny", "deny")
    named = _grant_name(network, kind, tenant_id, index)
    if named is None or network is None:
        return None
    return PolicyKey(*named, _intent_verdict(network, kind, named[0], index))


def _intent_verdict(network: Network, kind: Kind, tenant: str, index: int) -> str:
    """``allow``, or ``deny`` for a deny policy or guardrail (and a guardrail's ``pass``,
    whose own rule is the drop that closes what it handed over)."""
    if kind is Kind.POLICY:
        return "deny" if network.tenant_doc(tenant).policies[index].action == "deny" else "allow"
    if kind is Kind.GUARDRAIL:
        return "allow" if network.guardrails[index].action == "allow" else "deny"
    return "allow"


def tier_of_cookie(cookie: int) -> str:
    """``guardrail`` for a guardrail's rule, else ``tenant``."""
    try:
        return "guardrail" if decode_cookie(cookie)[1] is Kind.GUARDRAIL else "tenant"
    except ValueError:
        return "tenant"


def policy_counts(network: Network | None, dumps: Mapping[str, Iterable[tuple[Flow, int, int]]]) -> Counts:
    """Packets and bytes per :class:`PolicyKey`, summed over the switches' ``policy_src`` rules.

    ``dumps`` maps a switch to its flows with their (packets, bytes) counters, as
    :meth:`~segctl.controller.southbound.Southbound.dump_counted` returns them.
    """
    out: Counts = {}
    for counted in dumps.values():
        for flow, packets, nbytes in counted:
            if flow.table != POLICY_SRC.id or any(isinstance(a, Conjunction) for a in flow.actions):
                continue
            key = _key(flow, network)
            if key is not None:
                _add(out, key, packets, nbytes)
    return out


def sum_counts(parts: Iterable[Counts]) -> Counts:
    """Several switches' (or dumps') counts added up."""
    out: Counts = {}
    for part in parts:
        for key, (packets, nbytes) in part.items():
            _add(out, key, packets, nbytes)
    return out


def _add(out: Counts, key: PolicyKey, packets: int, nbytes: int) -> None:
    have = out.get(key, (0, 0))
    out[key] = (have[0] + packets, have[1] + nbytes)
