"""What a change pushes: the compiled tables, the per-switch diffs, the tables the gate proves.

Pure functions, run by :class:`~segctl.controller.service.ControllerService` through its
``offload`` (an OS thread under the controller's hub).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from segctl.controller.gate import Compiler, SwitchDiff, SwitchTables, flow_sort_key
from segctl.openflow.ofctl import Flow
from segctl.topology.network import Network

__all__ = ["compile_tables", "diff_summary", "diff_tables", "gate_tables", "plan_change", "sorted_tables"]


def _key(flow: Flow) -> tuple[int, int, object]:
    return (flow.table, flow.priority, flow.match)


def diff_tables(switch: str, old: SwitchTables, new: SwitchTables) -> SwitchDiff:
    """The change that turns ``old`` into ``new`` on one switch (deterministic order)."""
    add = sorted(new.flows - old.flows, key=flow_sort_key)
    readded = {_key(f) for f in add}
    remove = sorted((f for f in old.flows - new.flows if _key(f) not in readded), key=flow_sort_key)
    old_meters = {m.meter_id: m for m in old.meters}
    new_ids = {m.meter_id for m in new.meters}
    set_meters = sorted(m for m in new.meters if old_meters.get(m.meter_id) != m)
    remove_meters = sorted(i for i in old_meters if i not in new_ids)
    return SwitchDiff(switch, tuple(add), tuple(remove), tuple(set_meters), tuple(remove_meters))


def compile_tables(compiler: Compiler, network: Network) -> dict[str, SwitchTables]:
    """``compiler(network)`` as a plain dict."""
    return dict(compiler(network))


def sorted_tables(tables: Mapping[str, Iterable[Flow]]) -> dict[str, list[Flow]]:
    """Each switch's flows in :func:`~segctl.controller.gate.flow_sort_key` order (gate and live alike)."""
    return {name: sorted(flows, key=flow_sort_key) for name, flows in tables.items()}


def plan_change(
    compiler: Compiler, network: Network, old: Mapping[str, SwitchTables]
) -> tuple[dict[str, SwitchTables], list[SwitchDiff], dict[str, list[Flow]]]:
    """Compile ``network``; the per-switch diffs from ``old``; the tables sorted for the gate."""
    desired = compile_tables(compiler, network)
    empty = SwitchTables()
    diffs = [
        diff_tables(s, old.get(s, empty), desired.get(s, empty)) for s in sorted(set(desired) | set(old))
    ]
    return desired, [d for d in diffs if not d.empty], gate_tables(desired)


def gate_tables(desired: Mapping[str, SwitchTables]) -> dict[str, list[Flow]]:
    """The flows of compiled tables as the gate proves them: per switch, sorted."""
    return sorted_tables({s: t.flows for s, t in desired.items()})


def diff_summary(diffs: Sequence[SwitchDiff]) -> str:
    """One line for the audit log: how many switches and flows a change touches."""
    if not diffs:
        return "no flow changes"
    added = sum(len(d.add) for d in diffs)
    removed = sum(len(d.remove) for d in diffs)
    return f"{len(diffs)} switch(es): +{added} -{removed} flows"
