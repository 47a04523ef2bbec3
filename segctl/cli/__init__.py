"""The ``segctl`` command line: ``segctl VERB ARGS`` (kubectl / ovs-ofctl habits).

Every module of this package that defines ``register(subparsers) -> None`` adds its
commands; :func:`main` discovers them, so each command family lives in its own module.
A command sets ``func`` (``Namespace -> int``) with ``parser.set_defaults``; it should
import heavy dependencies inside ``func`` so ``segctl --help`` stays fast.

Exit codes: 0 ok, 1 a violation was found, 2 bad input (see :mod:`.common`).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from segctl.cli.common import EXIT_BAD_INPUT, Handler, run_handler

__all__ = ["build_parser", "main"]


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("segctl")
    except PackageNotFoundError:
        return "unknown"


# Help lists command families in the order an engineer uses them; others follow by name.
_WORKFLOW = ("intent", "compile", "diff", "verify", "trace", "controller", "audit", "scenario")


def _workflow_position(info: pkgutil.ModuleInfo) -> tuple[int, str]:
    rank = _WORKFLOW.index(info.name) if info.name in _WORKFLOW else len(_WORKFLOW)
    return (rank, info.name)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every discovered command registered."""
    parser = argparse.ArgumentParser(
        prog="segctl",
        description="Tenant isolation and microsegmentation controller for Open vSwitch.",
    )
    parser.add_argument("--version", action="version", version=f"segctl {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=_workflow_position):
        if info.name in ("common", "__main__", "ryu_manager") or info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
        except ImportError as exc:
            # A command family with a missing optional dependency must not take the rest down.
            print(f"segctl: commands in {info.name} are unavailable: {exc}", file=sys.stderr)
            continue
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``segctl`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
        code = exc.code
        return code if isinstance(code, int) else EXIT_BAD_INPUT
    handler: Handler = args.func
    return run_handler(handler, args)
