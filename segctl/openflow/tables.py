"""Load the flow tables the verifier checks: from a directory of files, or from live OVS.

* :func:`load_flow_dir` reads ``DIR/<switch>.flows`` (``ovs-ofctl add-flows`` or
  ``dump-flows`` text, as written by ``segctl compile --out DIR``) for every fabric switch.
  A missing file, or a ``.flows`` file for a switch the intent does not have, is an error:
  the verifier never checks a partial or foreign network silently.
* :func:`dump_live` finds the bridge of every fabric switch by its **datapath id**, as
  the controller knows a switch (the dpid it announces over OpenFlow: the bridge's
  ``datapath_id``, which ``other_config:datapath-id`` sets; the latter when the former is
  not known yet), never by name, and runs ``ovs-ofctl -O OpenFlow13 dump-flows`` on it.
  A name prefix narrows the bridges looked at (several labs on one OVS may reuse dpids).
  Both steps go through thin I/O functions (:func:`ovs_bridges`, :func:`ofctl_dump`).

Parse errors keep their place: ``FILE:LINE`` or ``bridge BR:LINE``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from segctl.errors import SegctlError, SwitchError
from segctl.openflow.ofctl import Flow, parse_flows
from segctl.topology.network import Network

__all__ = [
    "BridgeLister",
    "Dumper",
    "bridges_by_dpid",
    "dump_live",
    "load_flow_dir",
    "ofctl_dump",
    "ovs_bridges",
]

Dumper = Callable[[str], str]
#: ``[(bridge name, datapath id or None)]`` of the running OVS.
BridgeLister = Callable[[], list[tuple[str, int | None]]]


def load_flow_dir(network: Network, directory: str | Path) -> dict[str, list[Flow]]:
    """``{switch: flows}`` from ``directory/<switch>.flows`` for every switch of ``network``."""
    root = Path(directory)
    if not root.is_dir():
        raise SegctlError(f"{root}: not a directory of <switch>.flows files")
    names = [s.name for s in network.switches]
    extra = sorted(p.stem for p in root.glob("*.flows") if p.stem not in names)
    if extra:
        raise SegctlError(f"{root}: flow files for switches the intent does not have: {', '.join(extra)}")
    tables: dict[str, list[Flow]] = {}
    for name in names:
        path = root / f"{name}.flows"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SegctlError(f"{path}: missing (switch {name} of the intent has no flow file)") from None
        except OSError as exc:
            raise SegctlError(f"{path}: cannot read: {exc.strerror or exc}") from None
        tables[name] = parse_flows(text, source=str(path))
    return tables


def _run(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SwitchError(f"{' '.join(cmd)}: {exc}") from None
    if proc.returncode != 0:
        raise SwitchError(f"{' '.join(cmd)}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return proc.stdout


def ofctl_dump(bridge: str) -> str:
    """``ovs-ofctl -O OpenFlow13 dump-flows BRIDGE`` text; raises :class:`SwitchError`."""
    return _run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", bridge])


def _hex(value: object) -> int | None:
    """An OVSDB datapath id cell (16 hex digits, or an empty set) as an int."""
    try:
        return int(value, 16) if isinstance(value, str) and value else None
    except ValueError:
        return None


def ovs_bridges() -> list[tuple[str, int | None]]:
    """Every bridge of the running OVS and the datapath id it announces (``None`` if unknown)."""
    cmd = [
        "ovs-vsctl",
        "--timeout=10",
        "--format=json",
        "--columns=name,datapath_id,other_config",
        "list",
        "Bridge",
    ]
    out: list[tuple[str, int | None]] = []
    try:
        for name, datapath_id, other_config in json.loads(_run(cmd))["data"]:
            config = dict(other_config[1]) if isinstance(other_config, list) else {}
            out.append((str(name), _hex(datapath_id) or _hex(config.get("datapath-id"))))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise SwitchError(f"{' '.join(cmd)}: unreadable answer: {exc}") from None
    return out


def bridges_by_dpid(
    network: Network, bridges: list[tuple[str, int | None]], *, prefix: str = ""
) -> dict[str, str]:
    """``{switch: bridge}``: the one bridge (named ``prefix...``) announcing each switch's dpid.

    Raises :class:`SwitchError` naming every switch with no bridge or with several.
    """
    owners: dict[int, list[str]] = {}
    for name, dpid in bridges:
        if dpid is not None and name.startswith(prefix):
            owners.setdefault(dpid, []).append(name)
    where = f" named {prefix}*" if prefix else ""
    found: dict[str, str] = {}
    problems: list[str] = []
    for sw in network.switches:
        names = sorted(owners.get(sw.dpid, []))
        if len(names) == 1:
            found[sw.name] = names[0]
        elif not names:
            problems.append(f"switch {sw.name} (datapath id {sw.dpid:#018x}): no bridge{where} has it")
        else:
            problems.append(
                f"switch {sw.name} (datapath id {sw.dpid:#018x}): bridges {', '.join(names)} all have it; "
                "narrow with --bridge-prefix"
            )
    if problems:
        raise SwitchError("; ".join(problems))
    return found


def dump_live(
    network: Network, *, prefix: str = "", dump: Dumper = ofctl_dump, bridges: BridgeLister = ovs_bridges
) -> dict[str, list[Flow]]:
    """The live flows of every fabric switch, from the bridge announcing its datapath id."""
    tables: dict[str, list[Flow]] = {}
    for switch, bridge in bridges_by_dpid(network, bridges(), prefix=prefix).items():
        tables[switch] = parse_flows(dump(bridge), source=f"bridge {bridge}")
    return tables
