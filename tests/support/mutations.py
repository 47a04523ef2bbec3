"""Seven ways to open a leak in the compiled leaf-spine flows (each names the property that must catch it)."""

from __future__ import annotations

import re
from collections.abc import Callable

WEB1_MAC, WEB2_IP, APP1_IP = "02:00:00:01:01:0a", "10.1.1.11", "10.1.2.10"


Flows = dict[str, list[str]]


def _edit(flows: Flows, switch: str, pred: Callable[[str], bool], fn: Callable[[str], str]) -> None:
    lines = flows[switch]
    hits = [i for i, line in enumerate(lines) if pred(line)]
    assert hits, f"mutation found nothing to change on {switch}"
    for i in hits:
        lines[i] = fn(lines[i])


def drop_egress_guard(flows: Flows) -> None:
    """web1's forward and egress delivery keyed by MAC only: the tenant guard is gone."""
    _edit(
        flows,
        "leaf1",
        lambda s: bool(re.match(r"table=(50|80),priority=1000,", s)) and f"ip,dl_dst={WEB1_MAC}," in s,
        lambda s: re.sub(r",metadata=0x[0-9a-f]+/0x[0-9a-f]+|,nw_dst=10\.1\.1\.10", "", s),
    )


def drop_spoof_guard(flows: Flows) -> None:
    """web1's IPv4 spoof-guard rule no longer binds the source address."""
    _edit(
        flows,
        "leaf1",
        lambda s: s.startswith("table=0,") and "in_port=10,ip," in s,
        lambda s: s.replace(",nw_src=10.1.1.10", ""),
    )


def widen_match(flows: Flows) -> None:
    """leaf2's established-pass rules lose their +est: every tracked packet passes."""
    _edit(
        flows,
        "leaf2",
        lambda s: "ct_state=+est+trk" in s,
        lambda s: s.replace("ct_state=+est+trk", "ct_state=+trk"),
    )


def change_metadata(flows: Flows) -> None:
    """gweb1's port (globex) is classified into acme's web segment."""
    _edit(
        flows,
        "leaf1",
        lambda s: s.startswith("table=0,") and "in_port=11," in s,
        lambda s: s.replace("write_metadata:0x1002/", "write_metadata:0x1001/"),
    )


def foreign_output(flows: Flows) -> None:
    """A high-priority rule outputs gweb1's (globex) IPv4 straight to web1's (acme) port."""
    flows["leaf1"].insert(0, "table=0,priority=60000,in_port=11,ip,actions=output:10")


def commit_without_policy(flows: Flows) -> None:
    """leaf2 commits and passes web2 -> app1 tcp/22 in both policy stages without any policy."""
    match = f"tcp,metadata=0x1/0xfff,nw_src={WEB2_IP},nw_dst={APP1_IP},tcp_dst=22"
    flows["leaf2"].insert(0, f"table=30,priority=3600,{match},actions=ct(commit,zone=1),goto_table:40")
    flows["leaf2"].insert(0, f"table=70,priority=3600,{match},actions=ct(commit,zone=1),goto_table:80")


def snat_intra_segment(flows: Flows) -> None:
    """acme's intra-web commit on leaf1 translates the source to 10.1.1.99 (conntrack NAT)."""
    _edit(
        flows,
        "leaf1",
        lambda s: s.startswith("table=30,priority=3500,") and "metadata=0x1001/" in s,
        lambda s: s.replace(
            "actions=ct(commit,zone=1),goto_table:40", "actions=ct(commit,zone=1,table=40,nat(src=10.1.1.99))"
        ),
    )


MUTATIONS = [
    (drop_egress_guard, "isolation"),
    (drop_spoof_guard, "spoof-guard"),
    (widen_match, "conformance"),
    (change_metadata, "isolation"),
    (foreign_output, "isolation"),
    (commit_without_policy, "commit-safety"),
    (snat_intra_segment, "conformance"),
]
