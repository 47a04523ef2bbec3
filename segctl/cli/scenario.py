"""``segctl scenario list|run`` and ``segctl demo``: Mininet scenarios end to end.

``segctl scenario run NAME [--intent FILE] [--report DIR]`` starts OVS if needed, the
controller and Mininet, probes every pair, runs the scenario's attacks/faults, and
compares the observed, predicted (verifier on live flows) and expected (intent) matrices
into ``DIR/report.{json,md,html}``. ``--intent FILE`` runs the scenario on the user's own
intent instead of its built-in one (checked first: exit 2 when it is invalid or lacks what
the scenario's actions need). Exit 0 only when all three agree and every check passed,
1 otherwise, 2 for bad input. Everything it created is removed, also on Ctrl-C.
``segctl demo`` runs the leaf–spine multi-tenant scenario and prints the HTML report path.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path

from segctl.cli.common import EXIT_OK, EXIT_VIOLATION, Handler, add_output_option, format_table, print_json
from segctl.errors import LabDependencyError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``scenario list``, ``scenario run`` and ``demo``."""
    p = subparsers.add_parser(
        "scenario",
        help="run reproducible Mininet scenarios (attacks, faults) against live traffic",
        description="Mininet scenarios built from an intent: live probes vs the verifier's "
        "prediction vs the intent.",
    )
    sub = p.add_subparsers(dest="scenario_command", metavar="COMMAND", required=True)
    ls = sub.add_parser("list", help="list the scenarios")
    add_output_option(ls)
    ls.set_defaults(func=_list)
    run = sub.add_parser("run", help="run one scenario (needs root and Open vSwitch)")
    run.add_argument("name", metavar="NAME", help="scenario name (see `segctl scenario list`)")
    run.add_argument(
        "--intent",
        metavar="FILE",
        type=Path,
        help="run the scenario on this intent instead of its built-in one (any scenario: "
        "baseline, attacks, faults)",
    )
    _run_options(run)
    run.set_defaults(func=_run)

    demo = subparsers.add_parser(
        "demo",
        help="run the leaf-spine multi-tenant scenario end to end and print its HTML report",
        description="Run the leaf-spine scenario (three tenants, overlapping CIDRs, three-tier app, "
        "shared DNS) in Mininet and print where its HTML report is.",
    )
    _run_options(demo)
    demo.set_defaults(func=_demo)


def _needs_lab(what: str) -> Callable[[Handler], Handler]:
    """Run a command whose code imports Mininet, pyroute2 or scapy (now or while it runs); when
    one is missing, fail with :class:`LabDependencyError` naming ``pip install 'segctl[lab]'``."""

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        def run(args: argparse.Namespace) -> int:
            try:
                return handler(args)
            except ModuleNotFoundError as exc:
                error = LabDependencyError.missing(exc, what)
                if error is None:
                    raise
                raise error from exc

        return run

    return wrap


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--report", metavar="DIR", type=Path, help="report directory (default: a new temp dir)")
    p.add_argument(
        "--rules",
        choices=["auto", "controller", "static"],
        default="auto",
        help="where rules come from: the controller process, a static ovs-ofctl push of the "
        "compiled rules, or auto (controller, static if it cannot start; the report says which)",
    )
    add_output_option(p)


@_needs_lab("segctl scenario list")
def _list(args: argparse.Namespace) -> int:
    from segctl.mininet_scenarios.scenarios import SCENARIOS

    if args.output == "json":
        print_json([{"name": s.name, "title": s.title, "intent": str(s.intent)} for s in SCENARIOS.values()])
    else:
        print(
            format_table(
                ["NAME", "INTENT", "DESCRIPTION"],
                [(s.name, s.intent_file, s.title) for s in SCENARIOS.values()],
            )
        )
    return EXIT_OK


def _execute(name: str, args: argparse.Namespace) -> tuple[int, Path]:
    from segctl.errors import SegctlError
    from segctl.mininet_scenarios.report import write_reports
    from segctl.mininet_scenarios.runner import run_scenario
    from segctl.mininet_scenarios.scenarios import get
    from segctl.topology.network import load_network

    scenario = get(name)
    intent: Path = getattr(args, "intent", None) or scenario.intent
    why = scenario.unfit(load_network(intent))  # an invalid intent stops here, exit 2
    if why:
        raise SegctlError(f"scenario {name} cannot run on {intent}: {why}")
    report_dir: Path = args.report or Path(tempfile.mkdtemp(prefix=f"segctl-{name}-"))
    quiet = args.output == "json"

    def log(message: str) -> None:
        if not quiet:
            print(f"[{name}] {message}", file=sys.stderr, flush=True)

    result = run_scenario(
        scenario.name, scenario.title, intent, scenario.actions, work_dir=report_dir,
        rules=args.rules, log=log,
    )  # fmt: skip
    paths = write_reports(result, report_dir)
    if quiet:
        print_json({**result.to_json(), "reports": {k: str(v) for k, v in paths.items()}})
    else:
        for phase in result.phases:
            state = "agree" if phase.agree else "DISAGREE"
            print(f"{name}: {phase.name}: {len(phase.rows)} probes, observed/expected/predicted {state}")
        for check in result.checks:
            print(f"{name}: check {'pass' if check.passed else 'FAIL'}: {check.name} ({check.detail})")
        if result.error:
            print(f"{name}: error: {result.error}")
        print(
            f"{name}: {'PASS' if result.passed else 'FAIL'} in {result.seconds:.1f} s; report {paths['md']}"
        )
    return (EXIT_OK if result.passed else EXIT_VIOLATION), paths["html"]


@_needs_lab("segctl scenario run")
def _run(args: argparse.Namespace) -> int:
    return _execute(args.name, args)[0]


@_needs_lab("segctl demo")
def _demo(args: argparse.Namespace) -> int:
    from segctl.mininet_scenarios.scenarios import DEMO

    code, html = _execute(DEMO, args)
    if args.output != "json":
        print(f"HTML report: {html}")
    return code
