"""Where ``verify``, ``trace`` and ``diff --live`` get their flow tables from.

``--flows DIR`` (``DIR/<switch>.flows``), ``--live`` (the running bridges, found by
datapath id: :func:`segctl.openflow.tables.dump_live`) or, with neither, the intent
compiled in memory.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from segctl.errors import SegctlError

if TYPE_CHECKING:
    from segctl.openflow.ofctl import Flow
    from segctl.topology.network import Network

__all__ = ["add_source_options", "compiled_tables", "load_tables", "source_text"]


def add_source_options(p: argparse.ArgumentParser, *, flows: bool = True) -> None:
    """``--flows DIR`` | ``--live`` (with ``--bridge-prefix``); neither: compile in memory.

    ``flows=False``: only ``--bridge-prefix`` (the command defines ``--live`` itself).
    """
    if flows:
        src = p.add_mutually_exclusive_group()
        src.add_argument(
            "--flows",
            metavar="DIR",
            help="directory of <switch>.flows files (segctl compile --out); "
            "without --flows and --live the intent is compiled in memory",
        )
        src.add_argument("--live", action="store_true", help="dump the flows of the running OVS bridges")
    p.add_argument(
        "--bridge-prefix",
        default="",
        metavar="P",
        help="with --live: only bridges whose name starts with P (bridges are found by datapath id)",
    )


def source_text(args: argparse.Namespace) -> str:
    """Where the tables come from, in words (``compiled in memory``, ``flow files in DIR``, ...)."""
    if args.live:
        return "live bridges"
    return f"flow files in {args.flows}" if args.flows else "compiled in memory"


def compiled_tables(network: Network) -> dict[str, list[Flow]]:
    """The compiler's tables for ``network`` as parsed flow text, exactly as files would give them."""
    from segctl.flows.compiler import compile_network
    from segctl.openflow.ofctl import parse_flows

    return {
        name: parse_flows(prog.flows_text(), source=f"compiled {name}")
        for name, prog in compile_network(network).items()
    }


def load_tables(args: argparse.Namespace) -> tuple[Network, dict[str, list[Flow]]]:
    """The resolved intent ``args.file`` and the tables the options name."""
    from segctl.openflow.tables import dump_live, load_flow_dir
    from segctl.topology.network import load_network

    if args.bridge_prefix and not args.live:
        raise SegctlError("--bridge-prefix: only applies with --live")
    network = load_network(args.file)
    if args.live:
        return network, dump_live(network, prefix=args.bridge_prefix)
    if args.flows:
        return network, load_flow_dir(network, args.flows)
    return network, compiled_tables(network)
