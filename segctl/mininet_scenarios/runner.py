"""Run one scenario end to end and judge it.

OVS up → controller (``segctl controller run`` subprocess) → Mininet from the intent →
wait until every switch holds exactly the compiled tables → echo servers on every host →
baseline probe matrix → the scenario's actions (attacks, faults; each adds checks and
usually another matrix) → live verification → :class:`RunResult`.

A matrix phase compares, per probe, three outcomes: *observed* (live traffic),
*expected* (the intent, :func:`~segctl.mininet_scenarios.probes.expected_outcome`) and
*predicted* (the verifier's simulator on the flows dumped from the switches right before
the probes, :mod:`segctl.mininet_scenarios.predict`). The tables are dumped again after
the probes (a flow younger than the gap counts as a change, so a change undone during the
probes is caught too); a phase whose tables changed meanwhile fails its check (the prediction would
not describe what the probes met). A run passes only when all three agree everywhere and
every check passed. Everything created (Mininet nodes, bridges, links,
namespaces, the controller process) is removed on success, failure and Ctrl-C.

``rules="auto"`` uses the controller and, when it cannot start, pushes the compiled
rules with ``ovs-ofctl --bundle`` instead; the report says which (``rules_source``) and
why. Scenarios that need a controller fail their checks in that mode.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from segctl.controller.linkstate import without_links
from segctl.errors import SegctlError
from segctl.mininet_scenarios import controller_proc as ctl
from segctl.mininet_scenarios.network import MininetFabric, is_outside, new_prefix, plan
from segctl.mininet_scenarios.predict import load_predictor
from segctl.mininet_scenarios.probes import (
    Probe,
    ProbePlan,
    Servers,
    expected_outcome,
    plan_probes,
    run_probes,
)
from segctl.testbed import ovs
from segctl.testbed.probes import ProbeError
from segctl.topology.network import Network, load_network, with_uplinks_down
from segctl.topology.outside import public_source, public_source6

if TYPE_CHECKING:
    from segctl.verifier.report import VerificationReport

__all__ = ["Check", "MatrixPhase", "Run", "RunResult", "ensure_ovs", "run_scenario"]

RulesMode = Literal["auto", "controller", "static"]


@dataclass(frozen=True)
class Check:
    """One judged claim of a scenario (an attack dropped, a stream survived...)."""

    name: str
    passed: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class ProbeRow:
    probe: Probe
    observed: bool
    expected: bool
    predicted: bool | None
    error: str = ""
    #: the source address the outside saw (probes to the outside only)
    seen: str = ""

    @property
    def agree(self) -> bool:
        return self.observed == self.expected and self.predicted in (None, self.expected)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.probe.to_json(),
            "observed": self.observed,
            "expected": self.expected,
            "predicted": self.predicted,
            "agree": self.agree,
            "error": self.error,
            **({"seen_as": self.seen} if self.seen else {}),
        }


@dataclass(frozen=True)
class MatrixPhase:
    """The three matrices at one moment of the scenario."""

    name: str
    rows: tuple[ProbeRow, ...]
    predictor: str  # "" when available, else why not
    seconds: float

    @property
    def unpredicted(self) -> int:
        return sum(1 for r in self.rows if r.predicted is None)

    @property
    def agree(self) -> bool:
        return not self.predictor and all(r.agree for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "agree": self.agree,
            "probes": len(self.rows),
            "observed_ok": sum(r.observed for r in self.rows),
            "expected_ok": sum(r.expected for r in self.rows),
            "predicted_ok": sum(1 for r in self.rows if r.predicted),
            "unpredicted": self.unpredicted,
            "predictor_unavailable": self.predictor,
            "disagreements": [r.to_json() for r in self.rows if not r.agree],
            "seconds": round(self.seconds, 3),
            "rows": [r.to_json() for r in self.rows],
        }


@dataclass
class RunResult:
    """Everything a scenario run found; :attr:`passed` decides the exit code."""

    scenario: str
    title: str
    intent: str
    prefix: str
    rules_source: str = ""
    phases: list[MatrixPhase] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    unaddressable: list[str] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    network: Network | None = None
    #: the verifier's report object behind ``verification["report"]`` (for ``verification.html``)
    verification_report: VerificationReport | None = None

    @property
    def live_verified(self) -> bool:
        """The verifier ran on the flows dumped at the end and every property held."""
        report = self.verification.get("report")
        return (
            bool(self.verification.get("available")) and isinstance(report, dict) and report.get("ok") is True
        )

    @property
    def passed(self) -> bool:
        return (
            not self.error
            and bool(self.phases)
            and all(p.agree for p in self.phases)
            and all(c.passed for c in self.checks)
            and self.live_verified
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "title": self.title,
            "intent": self.intent,
            "verdict": "pass" if self.passed else "fail",
            "rules_source": self.rules_source,
            "prefix": self.prefix,
            "seconds": round(self.seconds, 2),
            "error": self.error,
            "phases": [p.to_json() for p in self.phases],
            "checks": [c.to_json() for c in self.checks],
            "unaddressable_pairs": self.unaddressable,
            "live_verified": self.live_verified,
            "live_verification": self.verification,
        }


@dataclass
class Run:
    """What a scenario action works with while the network is up."""

    network: Network
    fabric: MininetFabric
    probes: ProbePlan
    controller: ctl.ControllerProcess | None
    run_dir: Path
    result: RunResult
    probe_timeout: float = 1.5
    down_links: set[tuple[str, int, str, int]] = field(default_factory=set)
    #: uplink ports ``(switch, port)`` of external networks the scenario took down
    down_uplinks: set[tuple[str, int]] = field(default_factory=set)

    def bridges(self) -> dict[str, str]:
        return self.fabric.plan.bridges()

    def effective(self) -> Network:
        """The network the switches should implement now: the intent without
        :attr:`down_links`, each external network on its first uplink not in :attr:`down_uplinks`."""
        return with_uplinks_down(without_links(self.network, self.down_links), self.down_uplinks)

    def check(self, name: str, passed: bool, detail: str = "") -> Check:
        """Record a judged claim."""
        c = Check(name, passed, detail)
        self.result.checks.append(c)
        return c

    def wait_rules(self, *, timeout: float = 60.0, max_delay: float = 1.0) -> float:
        """Wait until every switch holds exactly the tables compiled for the current link
        state (:meth:`effective`); return the seconds waited (polled at most ``max_delay`` apart).

        This is the convergence a fault waits for: every affected switch has its new
        rules, not just the first one the controller pushed to.
        """
        desired = ctl.desired_flows(self.effective())
        return ctl.wait_for_rules(desired, self.bridges(), timeout=timeout, max_delay=max_delay)

    def matrix(self, name: str, probes: tuple[Probe, ...] | None = None) -> MatrixPhase:
        """Dump the tables, probe, dump again; predict from the first dump, compare with
        the intent; record the phase and a check that the tables held during the probes."""
        start = time.monotonic()
        chosen = self.probes.probes if probes is None else probes
        before = ctl.snapshot(self.bridges())
        live = before.flows
        observed = run_probes(self.fabric, self.network, chosen, timeout=self.probe_timeout)
        changed = ctl.changed_since(before, self.bridges())
        self.check(
            f"{name}: flow tables unchanged during the probes",
            not changed,
            f"changed on {', '.join(changed)}: the prediction does not describe what the probes met"
            if changed
            else "predicted from the tables dumped before the probes, equal to the ones dumped after",
        )
        # the simulator walks the live topology: the active uplink is where traffic leaves
        predictor, why = load_predictor(self.effective(), live, down=self.down_links)
        rows = tuple(
            ProbeRow(
                p,
                observed[p].ok,
                expected_outcome(self.network, p),
                None if predictor is None else predictor(p),
                observed[p].error,
                observed[p].seen,
            )
            for p in chosen
        )
        phase = MatrixPhase(name, rows, why, time.monotonic() - start)
        self.result.phases.append(phase)
        self._check_public_sources(name, rows)
        return phase

    def _check_public_sources(self, name: str, rows: tuple[ProbeRow, ...]) -> None:
        """Every connection that reached the outside came from the sender's public source
        (its floating IP there, else its tenant's SNAT address): never a private address."""
        out = [r for r in rows if is_outside(r.probe.dst) and r.observed and r.probe.proto in _TOLD]
        if not out:
            return
        wrong = []
        for r in out:
            ep, external = self.network.endpoint(*r.probe.src), r.probe.dst[0].partition(":")[2]
            v6 = r.probe.proto.endswith("6")
            source = public_source6 if v6 else public_source
            want = source(self.network, ep, external)
            if r.seen != str(want):
                wrong.append(f"{r.probe.describe()} seen from {r.seen or '?'}, not {want}")
        self.check(
            f"{name}: the outside saw each connection from its public source",
            not wrong,
            "; ".join(wrong[:5])
            if wrong
            else f"{len(out)} connections, each from its floating IP, SNAT or own IPv6 address",
        )


Action = Callable[[Run], None]
#: The probes whose server tells the source it saw.
_TOLD = ("tcp", "udp", "tcp6", "udp6")


def ensure_ovs() -> None:
    """Start ovsdb-server and ovs-vswitchd (userspace datapath) if they are not running."""
    if ovs.ovs_running():
        return
    try:
        if subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True, check=False).returncode:
            subprocess.run(
                [
                    "/usr/share/openvswitch/scripts/ovs-ctl",
                    "--no-ovs-vswitchd",
                    "--system-id=random",
                    "start",
                ],
                capture_output=True,
                check=True,
            )
        if subprocess.run(["ovs-appctl", "-t", "ovs-vswitchd", "version"], capture_output=True).returncode:
            Path("/var/log/openvswitch").mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["ovs-vswitchd", "unix:/var/run/openvswitch/db.sock", "-vconsole:emer", "-vsyslog:err",
                 "-vfile:info", "--no-chdir", "--log-file", "--pidfile", "--detach"],
                capture_output=True,
                check=True,
            )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SegctlError(f"cannot start Open vSwitch ({exc}); run scripts/setup.sh") from None
    if not ovs.ovs_running():
        raise SegctlError("Open vSwitch does not answer; run scripts/setup.sh")


def _live_verification(network: Network, bridges: dict[str, str]) -> tuple[dict[str, Any], Any]:
    """The JSON summary for the report and the verifier's report object (``None`` if unavailable)."""
    try:
        from segctl.verifier.verify import verify  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        return {"available": False, "reason": f"segctl.verifier.verify is not available: {exc}"}, None
    report = verify(network, ctl.live_flows(bridges))
    data: Any = report.to_json() if hasattr(report, "to_json") else report
    return {"available": True, "report": data}, report


def run_scenario(
    name: str,
    title: str,
    intent: Path,
    actions: tuple[Action, ...],
    *,
    work_dir: Path | None = None,
    rules: RulesMode = "auto",
    log: Callable[[str], None] = lambda _msg: None,
) -> RunResult:
    """Run a scenario; never leaves anything behind. Raises only for bad input."""
    started = time.monotonic()
    network = load_network(intent)
    prefix = new_prefix()
    run_dir = work_dir or Path(tempfile.mkdtemp(prefix=f"segctl-{name}-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(name, title, str(intent), prefix, network=network)
    ensure_ovs()
    controller: ctl.ControllerProcess | None = None
    try:
        if rules in ("auto", "controller"):
            controller = ctl.ControllerProcess(
                intent, run_dir / "controller.log", policy_log=run_dir / "policy.log"
            )
            try:
                controller.start()
                result.rules_source = f"controller (pid {controller.pid}, 127.0.0.1:{controller.of_port})"
            except ctl.ControllerError as exc:
                if rules == "controller":
                    raise
                controller = None
                last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "?"
                result.rules_source = f"static ovs-ofctl bundle (controller unavailable: {last})"
        else:
            result.rules_source = "static ovs-ofctl bundle (requested)"
        log(f"rules: {result.rules_source}")
        fabric_plan = plan(network, prefix)
        address = controller.address if controller is not None else None
        with MininetFabric(fabric_plan, controller=address) as fabric:
            sizes = f"{len(fabric_plan.switches)} switches, {len(fabric_plan.hosts)} hosts"
            if fabric_plan.outsides:
                sizes += f", {len(fabric_plan.outsides)} outside"
            log(f"mininet up: {sizes} (prefix {prefix})")
            if controller is None:
                ctl.push_static(network, fabric_plan.bridges())
            probe_plan = plan_probes(network)
            result.unaddressable = [f"{'/'.join(a)} -> {'/'.join(b)}" for a, b in probe_plan.unaddressable]
            run = Run(network, fabric, probe_plan, controller, run_dir, result)
            waited = run.wait_rules()
            log(f"rules in after {waited:.1f} s")
            with Servers(fabric, probe_plan.tcp_ports, probe_plan.udp_ports):
                phase = run.matrix("baseline")
                log(f"baseline: {len(phase.rows)} probes, agree={phase.agree}")
                for action in actions:
                    log(f"action: {action.__name__}")
                    action(run)
            result.verification, result.verification_report = _live_verification(
                network, fabric_plan.bridges()
            )
    except (SegctlError, ovs.OvsError, ProbeError, TimeoutError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if controller is not None:
            controller.stop()
        result.seconds = time.monotonic() - started
    return result
