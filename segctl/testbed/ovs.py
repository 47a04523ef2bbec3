"""Thin, typed wrappers around ``ovs-vsctl``, ``ovs-ofctl`` and ``ovs-appctl``.

Every call goes through :func:`run`, which raises :class:`OvsError` carrying the
command line and OVS's stderr, so a failing test says exactly what OVS refused.
Bridges are always created with the userspace datapath (``datapath_type=netdev``)
because the machines we run on have no openvswitch kernel module.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "OF_VERSION",
    "OvsError",
    "add_flows",
    "add_flows_bundle",
    "add_internal_port",
    "add_meter",
    "add_patch_pair",
    "add_port",
    "create_bridge",
    "del_controller",
    "del_flows",
    "delete_bridge",
    "dump_flows",
    "dump_meters",
    "get_ofport",
    "list_bridges",
    "ofproto_trace",
    "ovs_running",
    "replace_flows",
    "run",
    "set_controller",
]

#: OpenFlow version passed to ``ovs-ofctl -O`` for every flow/meter command.
OF_VERSION = "OpenFlow13"
_DEFAULT_TIMEOUT = 30.0


class OvsError(RuntimeError):
    """An OVS command failed; carries the command line, exit status and stderr."""

    def __init__(self, cmd: Sequence[str], returncode: int, stderr: str) -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"{' '.join(self.cmd)!s} failed (exit {returncode}): {self.stderr}")


def run(cmd: Sequence[str], *, stdin: str | None = None, timeout: float = _DEFAULT_TIMEOUT) -> str:
    """Run one OVS command and return its stdout; raise :class:`OvsError` on failure."""
    try:
        proc = subprocess.run(
            list(cmd), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise OvsError(cmd, 127, f"{cmd[0]} not found; run scripts/setup.sh") from exc
    except subprocess.TimeoutExpired as exc:
        raise OvsError(cmd, -1, f"timed out after {timeout} s") from exc
    if proc.returncode != 0:
        raise OvsError(cmd, proc.returncode, proc.stderr)
    return proc.stdout


def _vsctl(*args: str) -> str:
    return run(["ovs-vsctl", "--timeout=10", *args])


def _ofctl(*args: str, stdin: str | None = None) -> str:
    return run(["ovs-ofctl", "-O", OF_VERSION, *args], stdin=stdin)


def ovs_running() -> bool:
    """True when ovsdb-server and ovs-vswitchd both answer."""
    try:
        run(["ovs-vsctl", "--timeout=3", "show"], timeout=5)
        run(["ovs-appctl", "-t", "ovs-vswitchd", "version"], timeout=5)
    except OvsError:
        return False
    return True


# --------------------------------------------------------------------------- bridges


def create_bridge(
    name: str,
    *,
    dpid: int,
    protocols: Sequence[str] = ("OpenFlow13", "OpenFlow14"),
    fail_mode: str = "secure",
) -> None:
    """Create a netdev bridge with a fixed datapath id, in one OVSDB transaction.

    Protocols are set in the same transaction as the bridge is created: changing a
    bridge's ``protocols`` later can wipe its flows.
    """
    if not 0 <= dpid < 2**64:
        raise ValueError(f"dpid {dpid:#x} does not fit in 64 bits")
    _vsctl(
        "add-br", name,
        "--", "set", "bridge", name,
        "datapath_type=netdev",
        f"fail_mode={fail_mode}",
        f"protocols={','.join(protocols)}",
        f"other_config:datapath-id={dpid:016x}",
        "other_config:disable-in-band=true",
    )  # fmt: skip


def delete_bridge(name: str, *, if_exists: bool = True) -> None:
    """Delete a bridge and all its ports."""
    _vsctl(*(["--if-exists"] if if_exists else []), "del-br", name)


def list_bridges(prefix: str = "") -> list[str]:
    """Names of the bridges whose name starts with ``prefix``, sorted."""
    return sorted(b for b in _vsctl("list-br").split() if b.startswith(prefix))


# ----------------------------------------------------------------------------- ports


def add_port(
    bridge: str,
    port: str,
    *,
    ofport: int | None = None,
    type_: str | None = None,
    options: Mapping[str, str] | None = None,
) -> None:
    """Add a port (by default an existing kernel interface, e.g. a veth end)."""
    settings: list[str] = []
    if ofport is not None:
        settings.append(f"ofport_request={ofport}")
    if type_:
        settings.append(f"type={type_}")
    settings.extend(f"options:{k}={v}" for k, v in (options or {}).items())
    args = ["add-port", bridge, port]
    if settings:
        args += ["--", "set", "interface", port, *settings]
    _vsctl(*args)


def add_internal_port(bridge: str, port: str, *, ofport: int | None = None) -> None:
    """Add an internal port (a tap device with the netdev datapath)."""
    add_port(bridge, port, ofport=ofport, type_="internal")


def add_patch_pair(
    bridge_a: str, port_a: str, bridge_b: str, port_b: str, *, ofport_a: int, ofport_b: int
) -> None:
    """Join two bridges with a pair of patch ports, both ends in one transaction."""
    _vsctl(
        "add-port", bridge_a, port_a,
        "--", "set", "interface", port_a, "type=patch", f"options:peer={port_b}",
        f"ofport_request={ofport_a}",
        "--", "add-port", bridge_b, port_b,
        "--", "set", "interface", port_b, "type=patch", f"options:peer={port_a}",
        f"ofport_request={ofport_b}",
    )  # fmt: skip


def get_ofport(port: str) -> int:
    """The OpenFlow port number OVS assigned to an interface (-1 if it failed)."""
    return int(_vsctl("get", "interface", port, "ofport").strip())


# ----------------------------------------------------------------------------- flows


def add_flows_bundle(bridge: str, path: str | Path) -> None:
    """Add all flows of an ofctl flow file atomically (OpenFlow 1.4 bundle)."""
    _ofctl("--bundle", "add-flows", bridge, str(path))


def add_flows(bridge: str, flows: Iterable[str], *, bundle: bool = True) -> None:
    """Add flows given as ofctl text lines (read from stdin), atomically by default."""
    text = "".join(f"{f.strip()}\n" for f in flows if f.strip())
    _ofctl(*(["--bundle"] if bundle else []), "add-flows", bridge, "-", stdin=text)


def replace_flows(bridge: str, path: str | Path, *, bundle: bool = True) -> None:
    """Make the bridge's flow table equal to the file (``ovs-ofctl replace-flows``)."""
    _ofctl(*(["--bundle"] if bundle else []), "replace-flows", bridge, str(path))


def del_flows(bridge: str) -> None:
    """Delete every flow of the bridge."""
    _ofctl("del-flows", bridge)


def dump_flows(bridge: str, *, stats: bool = False, table: int | None = None) -> str:
    """Flows in ``ovs-ofctl dump-flows`` text; without counters unless ``stats``."""
    args = ["dump-flows", bridge]
    if not stats:
        args.insert(0, "--no-stats")
    if table is not None:
        args.append(f"table={table}")
    return _ofctl(*args)


# ---------------------------------------------------------------------------- meters


def add_meter(bridge: str, spec: str) -> None:
    """Add a meter, e.g. ``meter=1,pktps,band=type=drop,rate=100``."""
    _ofctl("add-meter", bridge, spec)


def dump_meters(bridge: str) -> str:
    """Meters of the bridge in ``ovs-ofctl dump-meters`` text."""
    return _ofctl("dump-meters", bridge)


# --------------------------------------------------------------------- trace / control


def ofproto_trace(bridge: str, flow: str, *, ct_next: Sequence[str] = ()) -> str:
    """``ovs-appctl ofproto/trace`` output for a flow, e.g. ``in_port=1,tcp,tcp_dst=80``.

    Pass one ``ct_next`` state (``"trk,new"``, ``"trk,est"``...) per ``ct()`` action
    the packet meets. An error from OVS raises; it never means "not delivered".
    """
    args = ["ovs-appctl", "ofproto/trace", bridge, flow]
    for state in ct_next:
        args += ["--ct-next", state]
    return run(args)


def set_controller(bridge: str, targets: Sequence[str]) -> None:
    """Point the bridge at controllers, e.g. ``["tcp:127.0.0.1:6653"]``."""
    _vsctl("set-controller", bridge, *targets)


def del_controller(bridge: str) -> None:
    """Remove all controllers of the bridge."""
    _vsctl("del-controller", bridge)
