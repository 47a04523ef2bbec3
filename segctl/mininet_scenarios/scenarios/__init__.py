"""The scenario library: each scenario is an intent (package data under ``intents/``),
the expectations that follow from it, and actions (attacks, faults).

Expectations are never written by hand: the expected matrix is computed from the intent
(:mod:`segctl.topology.analysis`), so a scenario cannot disagree with its own intent, and
any scenario runs on any intent (``segctl scenario run NAME --intent FILE``) that has
what its actions need (:meth:`Scenario.unfit`: a redundant link to fail, a rate-limited
endpoint to flood from...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from segctl.errors import SegctlError
from segctl.mininet_scenarios.runner import Action
from segctl.mininet_scenarios.scenarios.actions import (
    attacker,
    attacker_needs,
    controller_crash,
    controller_crash_needs,
    flood,
    flood_needs,
    link_failure,
    link_failure_needs,
    switch_restart,
    uplink_failure,
    uplink_failure_needs,
)
from segctl.mininet_scenarios.scenarios.guardrails import guardrail_logging, guardrail_logging_needs
from segctl.mininet_scenarios.scenarios.ipv6_guard import ipv6_first_hop, ipv6_first_hop_needs
from segctl.mininet_scenarios.scenarios.outside import outside_attacks, outside_attacks_needs
from segctl.topology.network import Network

#: Why an intent cannot host an action ("" when it can).
Needs = Callable[[Network], str]

__all__ = ["DEMO", "SCENARIOS", "Scenario", "get", "intent_path"]


def intent_path(filename: str) -> Path:
    """Path of a shipped scenario intent."""
    return Path(str(resources.files("segctl.mininet_scenarios").joinpath("intents", filename)))


@dataclass(frozen=True)
class Scenario:
    """A named intent plus the actions run after the baseline matrix."""

    name: str
    title: str
    intent_file: str
    actions: tuple[Action, ...] = ()
    needs: tuple[Needs, ...] = ()

    @property
    def intent(self) -> Path:
        return intent_path(self.intent_file)

    def unfit(self, network: Network) -> str:
        """Why this scenario's actions cannot run on ``network`` ("" when they can)."""
        return next((why for need in self.needs if (why := need(network))), "")


_ALL = [
    Scenario(
        "baseline",
        "The intent's all-pairs matrix alone, no attack or fault (give your own with --intent).",
        "leaf-spine.yaml",
    ),
    Scenario(
        "two-tenants",
        "Two tenants with the same addresses on one switch.",
        "two-tenants.yaml",
        (attacker,),
        (attacker_needs,),
    ),
    Scenario(
        "leaf-spine",
        "Three tenants on a 2-spine, 3-leaf fabric with overlapping CIDRs, a microsegmented "
        "three-tier app and a shared DNS service.",
        "leaf-spine.yaml",
    ),
    Scenario(
        "three-tier", "A three-tier app (web -> app -> db) microsegmented on two switches.", "three-tier.yaml"
    ),
    Scenario("shared-dns", "A shared DNS service: the only cross-tenant traffic.", "shared-dns.yaml"),
    Scenario(
        "strict-segment",
        "A strict segment: stateful and stateless policies, IPv6 only in the open segment; "
        "rogue router advertisements, a redirect and forged IPv6 sources are all dropped.",
        "strict-segment.yaml",
        (ipv6_first_hop,),
        (ipv6_first_hop_needs,),
    ),
    Scenario(
        "guardrails",
        "Guardrails above the tenants' policies: a guardrail blocks what a tenant policy allows, "
        "a pass hands ssh to a tenant policy, a deny policy beats an allow; a logged denial "
        "writes one policy-log line per packet and its counter grows by the packets sent.",
        "guardrails.yaml",
        (guardrail_logging,),
        (guardrail_logging_needs,),
    ),
    Scenario(
        "internet",
        "An internet host behind an uplink: two tenants with the same private addresses both get "
        "out, each behind its own SNAT address (the outside sees only public sources), a floating "
        "IP opens granted ports only, and nothing else gets in: frames from the outside to a "
        "private address, from a spoofed inside source, VLAN-tagged or to an SNAT address are dropped.",
        "internet.yaml",
        (outside_attacks,),
        (outside_attacks_needs,),
    ),
    Scenario(
        "uplink-failover",
        "The internet's active uplink goes down: the controller moves it to the standby port, "
        "egress still leaves behind the SNAT addresses and the floating IP still opens its "
        "granted ports only; the link comes back and the uplink returns to the first port.",
        "internet.yaml",
        (uplink_failure,),
        (uplink_failure_needs,),
    ),
    Scenario(
        "attacker",
        "A compromised endpoint forges MAC, IP and ARP, sends VLAN-tagged and double-tagged "
        "frames, and aims at another tenant's gateway and endpoints: all dropped.",
        "leaf-spine.yaml",
        (attacker,),
        (attacker_needs,),
    ),
    Scenario(
        "flood",
        "One endpoint floods: its meter caps it and the other tenants' traffic is unaffected.",
        "leaf-spine.yaml",
        (flood,),
        (flood_needs,),
    ),
    Scenario(
        "link-failure",
        "A fabric link goes down: traffic reroutes over the other spine, isolation holds.",
        "leaf-spine.yaml",
        (link_failure,),
        (link_failure_needs,),
    ),
    Scenario(
        "controller-crash",
        "kill -9 of the controller during traffic: established flows keep going on the installed "
        "rules, nothing new leaks, the restarted controller reconciles without dropping them.",
        "leaf-spine.yaml",
        (controller_crash,),
        (controller_crash_needs,),
    ),
    Scenario(
        "switch-restart",
        "A switch loses its flows and reconnects: the controller resyncs it.",
        "leaf-spine.yaml",
        (switch_restart,),
    ),
]

SCENARIOS: dict[str, Scenario] = {s.name: s for s in _ALL}
#: The scenario ``segctl demo`` runs.
DEMO = "leaf-spine"


def get(name: str) -> Scenario:
    """The scenario called ``name``; a SegctlError lists the known ones otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise SegctlError(f"no scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
