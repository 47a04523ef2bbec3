"""The guardrail scenario's action: a logged guardrail denial, seen three ways.

On the live network, with the controller running with ``--policy-log``: the first pair
whose ping a *logged* guardrail ``deny`` decides although the tenant tier alone would let
it through (a guardrail blocking what a tenant policy allows) sends a few echo requests.
Judged: none is answered; the policy log gains exactly one line per request, naming the
guardrail, its tier and the verdict (the per-switch controller meter's rate is well above
the probe rate, so none is dropped by it); and the per-policy counters the controller
exports (:func:`~segctl.controller.policy_counters.policy_counts`, here read from the same
flow counters with one dump before and after) grow by exactly the packets sent.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from segctl.controller.policy_counters import Counts, PolicyKey, policy_counts
from segctl.mininet_scenarios.probes import addressable
from segctl.mininet_scenarios.runner import Run
from segctl.openflow.ofctl import parse_flow
from segctl.testbed import ovs
from segctl.testbed.netns import exec_argv
from segctl.topology.network import EndpointInfo, Network
from segctl.topology.ordered import Decider, decide, deciding_rule, packet_space
from segctl.topology.schema import Guardrail

__all__ = ["ECHOES", "guardrail_logging", "guardrail_logging_needs", "logged_denial"]

#: Echo requests sent at the denied pair (5 per second: far below any controller meter rate).
ECHOES = 5
_COUNTERS = re.compile(r"\bn_packets=(\d+), n_bytes=(\d+)")


def logged_denial(network: Network) -> tuple[EndpointInfo, EndpointInfo, Guardrail] | None:
    """The first pair (document order) whose ping a logged guardrail deny decides while the
    tenant tier alone would allow it, with that guardrail."""
    decider = Decider.of(network)
    echo = packet_space("icmp", icmp_type=8, icmp_code=0)
    rails = {g.name: g for g in network.guardrails}
    for src in network.endpoints:
        for dst in network.endpoints:
            if src.key == dst.key or not addressable(network, src, dst):
                continue
            rules = decider.rules(src, dst)
            rule = deciding_rule(rules, echo)
            if rule is None or rule.tier != "guardrail" or rule.action != "deny" or not rails[rule.name].log:
                continue
            tenant_tier = decide([r for r in rules if r.tier == "tenant"])
            if any(g.allows("icmp", None, icmp_type=8, icmp_code=0) for g in tenant_tier):
                return src, dst, rails[rule.name]
    return None


def guardrail_logging_needs(network: Network) -> str:
    """Why the guardrail scenario cannot run on ``network`` ("" when it can)."""
    if logged_denial(network) is None:
        return (
            "it needs a guardrail with action: deny and log: true that denies a ping some tenant "
            "policy allows between two endpoints"
        )
    return ""


def _counts(run: Run) -> Counts:
    """Per-policy counts from every bridge's policy_src counters (one dump each)."""
    dumps = {}
    for switch, bridge in run.bridges().items():
        counted = []
        for line in ovs.dump_flows(bridge, stats=True, table=30).splitlines():
            found = _COUNTERS.search(line)
            if found and "actions=" in line:
                counted.append((parse_flow(line.strip()), int(found[1]), int(found[2])))
        dumps[switch] = counted
    return policy_counts(run.network, dumps)


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def guardrail_logging(run: Run) -> None:
    """Ping the logged denial; judge the replies, the policy log and the counters."""
    found = logged_denial(run.network)
    if found is None:
        run.check("guardrail: a logged deny of an allowed ping exists", False, "none in this intent")
        return
    if run.controller is None or run.controller.policy_log is None:
        run.check("guardrail: a controller with a policy log is running", False, run.result.rules_source)
        return
    src, dst, rail = found
    key = PolicyKey(src.tenant, f"guardrail:{rail.name}", "deny")
    log_path = run.controller.policy_log
    seen = len(_records(log_path))
    before = _counts(run).get(key, (0, 0))[0]
    ping = ["ping", "-n", "-q", "-c", str(ECHOES), "-i", "0.2", "-W", "1", str(dst.ip)]
    done = subprocess.run(exec_argv(run.fabric.netns(src), ping), capture_output=True, text=True, timeout=30)
    answered = re.search(r"(\d+) received", done.stdout)
    run.check(
        f"guardrail {rail.name}: {src.qualified} -> {dst.qualified} ping blocked (a tenant policy allows it)",
        answered is not None and answered[1] == "0",
        next((line for line in done.stdout.splitlines() if "received" in line), done.stderr.strip()[-200:]),
    )

    def mine() -> list[dict[str, Any]]:
        return [
            r
            for r in _records(log_path)[seen:]
            if r.get("src") == str(src.ip) and r.get("dst") == str(dst.ip) and r.get("proto") == "icmp"
        ]

    deadline = time.monotonic() + 5.0
    while len(mine()) < ECHOES and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # anything beyond one line per packet would show up by now
    lines = mine()
    named = all(
        (r.get("policy"), r.get("tier"), r.get("verdict"), r.get("tenant"))
        == (f"guardrail:{rail.name}", "guardrail", "deny", src.tenant)
        for r in lines
    )
    run.check(
        f"guardrail {rail.name}: one policy-log line per denied packet",
        len(lines) == ECHOES and named,
        f"{len(lines)} lines for {ECHOES} echo requests in {log_path.name}"
        + ("" if named else f"; a line names something else: {lines[:1]}"),
    )
    grown = _counts(run).get(key, (0, 0))[0] - before
    run.check(
        f"guardrail {rail.name}: policy counter ({key.tenant}, {key.policy}, deny) grows by the packets",
        grown == ECHOES,
        f"grew by {grown} for {ECHOES} echo requests",
    )
