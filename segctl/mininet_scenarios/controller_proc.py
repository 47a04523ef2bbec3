"""Where a scenario's rules come from: ``segctl controller run`` as a subprocess, or a
static push of the compiled rules, and the wait until the switches hold them.

:class:`ControllerProcess` starts the controller on free local ports (OpenFlow and
REST API), waits until it listens, and can be killed with SIGKILL and restarted on the
same ports (the controller-crash scenario). Its log goes to a file in the run
directory. :func:`push_static` loads the compiler's meters and flows with
``ovs-ofctl --bundle`` (the mode used when no controller process is wanted or
available). :func:`wait_for_rules` polls ``dump-flows`` until every switch holds the
desired table (compared as parsed flows, cookies included). :func:`snapshot` and
:func:`changed_since` tell whether the tables changed between two moments, including a
change that was undone before the second look (a flow re-added is younger than the gap);
:func:`wait_reinstalled` waits until a (re)connected controller has replaced every flow.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from segctl.errors import SegctlError
from segctl.openflow.ofctl import Flow, parse_flows
from segctl.testbed import ovs
from segctl.testbed.intent_lab import free_port
from segctl.topology.network import Network

__all__ = [
    "ControllerError",
    "ControllerProcess",
    "Snapshot",
    "changed_since",
    "desired_flows",
    "live_flows",
    "push_static",
    "rules_match",
    "snapshot",
    "wait_for_rules",
    "wait_reinstalled",
]


class ControllerError(SegctlError):
    """The controller process could not start, or the switches never got their rules."""


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class ControllerProcess:
    """``segctl controller run --intent FILE`` in a subprocess on free ports.

    Use as a context manager; the process (only ours, by pid) is stopped on exit.
    """

    intent: Path
    log_path: Path
    audit_interval: float = 2.0
    start_timeout: float = 60.0
    of_port: int = 0
    api_port: int = 0
    #: ``--policy-log`` file: one JSON line per logged decision (scenarios read it back)
    policy_log: Path | None = None
    _proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.of_port = self.of_port or free_port()
        self.api_port = self.api_port or free_port()

    @property
    def address(self) -> tuple[str, int]:
        """The OpenFlow address switches connect to."""
        return ("127.0.0.1", self.of_port)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "segctl.cli",
            "controller",
            "run",
            "--intent",
            str(self.intent),
            "--listen",
            f"127.0.0.1:{self.of_port}",
            "--api",
            f"127.0.0.1:{self.api_port}",
            "--audit-interval",
            f"{self.audit_interval:g}",
            *(["--policy-log", str(self.policy_log)] if self.policy_log is not None else []),
        ]

    def start(self) -> None:
        """Start the controller and wait until its OpenFlow port listens."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {' '.join(self.argv())}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # Ctrl-C reaches us; we stop it ourselves
            )
        deadline = time.monotonic() + self.start_timeout
        while not _listening(self.of_port):
            if self._proc.poll() is not None:
                raise ControllerError(
                    f"segctl controller run exited with {self._proc.returncode}: {self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ControllerError(
                    f"controller did not listen on 127.0.0.1:{self.of_port} "
                    f"within {self.start_timeout:g} s: {self.log_tail()}"
                )
            time.sleep(0.1)

    def crash(self) -> None:
        """SIGKILL the controller (no clean shutdown) and reap it."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; idempotent."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the controller log (for error messages)."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def __enter__(self) -> ControllerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ------------------------------------------------------------------------------ rules


def desired_flows(network: Network) -> dict[str, frozenset[Flow]]:
    """The compiled flows of every switch, as parsed flows (what dump-flows must show)."""
    from segctl.controller.gate import default_compiler

    return {name: tables.flows for name, tables in default_compiler()(network).items()}


def push_static(network: Network, bridges: Mapping[str, str]) -> None:
    """Load the compiler's meters and flows into each bridge (one bundle per switch)."""
    from segctl.flows.compiler import compile_network

    for name, program in compile_network(network).items():
        bridge = bridges[name]
        for meter in program.meters:
            ovs.add_meter(bridge, meter.to_ofctl())
        ovs.add_flows(bridge, program.flows_text().splitlines())


def live_flows(bridges: Mapping[str, str]) -> dict[str, list[Flow]]:
    """Every bridge's flows, dumped from OVS and parsed (switch name -> flows)."""
    return {
        name: parse_flows(ovs.dump_flows(bridge), source=f"{name} dump-flows")
        for name, bridge in bridges.items()
    }


_DURATION = re.compile(r"\bduration=([0-9.]+)s")


@dataclass(frozen=True)
class Snapshot:
    """Every bridge's parsed flows and the monotonic time its dump finished."""

    flows: dict[str, list[Flow]]
    taken: dict[str, float]


def snapshot(bridges: Mapping[str, str]) -> Snapshot:
    """Dump every bridge now (see :func:`changed_since`)."""
    flows: dict[str, list[Flow]] = {}
    taken: dict[str, float] = {}
    for name, bridge in bridges.items():
        flows[name] = parse_flows(ovs.dump_flows(bridge), source=f"{name} dump-flows")
        taken[name] = time.monotonic()
    return Snapshot(flows, taken)


def changed_since(before: Snapshot, bridges: Mapping[str, str]) -> list[str]:
    """Switches whose flows differ from ``before`` now, or that hold a flow added after
    ``before`` was taken (younger than the gap: a change undone in between, A -> B -> A)."""
    changed = []
    for name, bridge in bridges.items():
        gap = time.monotonic() - before.taken[name]
        text = ovs.dump_flows(bridge, stats=True)
        ages = [float(m) for m in _DURATION.findall(text)]
        now = parse_flows(text, source=f"{name} dump-flows")
        same = {_key(f) for f in now} == {_key(f) for f in before.flows.get(name, [])}
        if not same or (ages and min(ages) < gap):
            changed.append(name)
    return sorted(changed)


def _key(flow: Flow) -> tuple[int, int, object, object, int]:
    return (flow.table, flow.priority, flow.match, flow.actions, flow.cookie)


def rules_match(desired: Mapping[str, frozenset[Flow]], live: Mapping[str, list[Flow]]) -> list[str]:
    """Switches whose live table differs from the desired one (missing or extra flows)."""
    return sorted(
        name
        for name, flows in desired.items()
        if {_key(f) for f in flows} != {_key(f) for f in live.get(name, [])}
    )


def wait_for_rules(
    desired: Mapping[str, frozenset[Flow]],
    bridges: Mapping[str, str],
    *,
    timeout: float = 60.0,
    max_delay: float = 1.0,
) -> float:
    """Poll until every switch holds exactly its desired flows; return the seconds waited
    (polls back off from 0.1 s to ``max_delay``: the precision of the returned time)."""
    start = time.monotonic()
    delay = 0.1
    while True:
        differing = rules_match(desired, live_flows(bridges))
        if not differing:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise ControllerError(
                f"switches {', '.join(differing)} did not get their rules within {timeout:g} s"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, max_delay)


def wait_reinstalled(bridges: Mapping[str, str], *, since: float, timeout: float = 30.0) -> float:
    """Poll until every flow of every bridge was installed after ``since`` (monotonic time):
    what a (re)connecting controller's resync does (one bundle replacing every flow), even
    when the flows are the ones the switch already held. Return the seconds waited."""
    start = time.monotonic()
    delay = 0.1
    while True:
        stale = []
        for name, bridge in bridges.items():
            bound = time.monotonic() - since
            ages = [float(m) for m in _DURATION.findall(ovs.dump_flows(bridge, stats=True))]
            if not ages or max(ages) >= bound:
                stale.append(name)
        if not stale:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise ControllerError(
                f"switches {', '.join(sorted(stale))} still hold flows from before the controller "
                f"restart after {timeout:g} s"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
