"""Load the flow tables the verifier checks: from a directory of files, or from live OVS.

* :func:`load_flow_dir` reads ``DIR/<switch>.flows`` (``ovs-ofctl add-flows`` or
  ``dump-flows`` text, as written by ``segctl compile --out DIR``) for every fabric switch.
  A missing file, or a ``.flows`` file for a switch the intent does not have, is an error:
  the verifier never checks a partial or foreign network silently.
* :func:`dump_live` runs ``ovs-ofctl -O OpenFlow13 dump-flows <prefix><switch>`` for every
  fabric switch, through one thin I/O function (:func:`ofctl_dump`), and parses the text.

Parse errors keep their place: ``FILE:LINE`` or ``bridge BR:LINE``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from segctl.errors import SegctlError, SwitchError
from segctl.openflow.ofctl import Flow, parse_flows
from segctl.topology.network import Network

__all__ = ["Dumper", "dump_live", "load_flow_dir", "ofctl_dump"]

Dumper = Callable[[str], str]


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


def ofctl_dump(bridge: str) -> str:
    """``ovs-ofctl -O OpenFlow13 dump-flows BRIDGE`` text; raises :class:`SwitchError`."""
    cmd = ["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", bridge]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SwitchError(f"{' '.join(cmd)}: {exc}") from None
    if proc.returncode != 0:
        raise SwitchError(f"{' '.join(cmd)}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return proc.stdout


def dump_live(network: Network, *, prefix: str = "", dump: Dumper = ofctl_dump) -> dict[str, list[Flow]]:
    """The live flows of the bridge ``prefix + switch`` of every fabric switch."""
    tables: dict[str, list[Flow]] = {}
    for sw in network.switches:
        bridge = f"{prefix}{sw.name}"
        tables[sw.name] = parse_flows(dump(bridge), source=f"bridge {bridge}")
    return tables
