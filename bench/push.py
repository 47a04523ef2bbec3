"""Push rate: N compiled rules into one OVS userspace bridge, controller vs ovs-ofctl.

The controller side is the real thing: ``segctl.controller.runner.run`` starts os-ken
with :class:`~segctl.controller.app.SegctlApp`, the bridge connects to it, and the
app's ``resync`` (one OpenFlow 1.4 bundle: delete-all + adds, commit, barrier) is
timed. The baseline is ``ovs-ofctl --bundle add-flows`` of the same rules (same text,
same bridge, emptied before each run), alternating with the controller runs. Each
repeat times the controller twice: *cold* (the flow-mod encoding cache of
:mod:`segctl.controller.wire` cleared: a first push) and *warm* (the same flows again,
as in a resync after a switch restart).
After every run the bridge must hold exactly the N rules (checked with dump-flows).
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import Flow, parse_flow
from segctl.testbed import ovs
from segctl.testbed.intent_lab import free_port
from segctl.testbed.lab import new_prefix
from segctl.topology.network import resolve
from segctl.topology.synthetic import synthetic_intent

__all__ = ["bench_rules", "push_rate"]

#: ovs-ofctl arguments of the baseline (bundles are OpenFlow 1.4; 1.3 is offered too).
OFCTL_PROTOCOLS = "OpenFlow13,OpenFlow14"


def bench_rules(n: int) -> tuple[list[str], str]:
    """The first ``n`` rules (table order) of the busiest switch of a synthetic fat-tree."""
    endpoints = 500
    while True:
        programs = compile_network(resolve(synthetic_intent(k=4, tenants=50, endpoints=endpoints)))
        busiest = max(programs.values(), key=lambda p: len(p.rules))
        if len(busiest.rules) >= n:
            lines = [r.to_ofctl() for r in busiest.rules[:n]]
            return (
                lines,
                f"first {n} of {len(busiest.rules)} rules of {busiest.switch} (k=4, {endpoints} eps)",
            )
        endpoints *= 2


def _count(bridge: str) -> int:
    return sum(1 for line in ovs.dump_flows(bridge).splitlines() if "actions=" in line)


def _ofctl_add(bridge: str, path: Path) -> None:
    ovs.run(["ovs-ofctl", "-O", OFCTL_PROTOCOLS, "--bundle", "add-flows", bridge, str(path)], timeout=120)


class _PushHooks:
    """Controller hooks that run the measurement when the bench switch connects."""

    def __init__(self, dpid: int, bridge: str, flows: list[Flow], path: Path, repeats: int) -> None:
        self.dpid, self.bridge, self.flows, self.path, self.repeats = dpid, bridge, flows, path, repeats
        self.app: Any = None
        self.result: dict[str, Any] = {}

    def switch_name(self, dpid: int) -> str | None:
        return "bench" if dpid == self.dpid else None

    def on_switch_connected(self, switch: str) -> None:
        try:
            self._measure()
        except Exception as exc:  # report any failure as the result; the parent prints it
            self.result = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    def _measure(self) -> None:
        from segctl.controller import wire

        n = len(self.flows)
        controller: list[float] = []  # cold: no flow encoded before (a first push)
        warm: list[float] = []  # the same flows again (a resync: encodings cached)
        ofctl: list[float] = []
        for i in range(self.repeats):
            print(f"  push run {i + 1}/{self.repeats}", file=sys.stderr, flush=True)
            ovs.del_flows(self.bridge)
            t0 = time.perf_counter()
            _ofctl_add(self.bridge, self.path)
            ofctl.append(time.perf_counter() - t0)
            if _count(self.bridge) != n:
                raise RuntimeError(f"ovs-ofctl left {_count(self.bridge)} flows, not {n}")
            for times, cold in ((controller, True), (warm, False)):
                ovs.del_flows(self.bridge)
                if cold:
                    wire.clear_cache()
                t0 = time.perf_counter()
                self.app.resync("bench", self.flows)
                times.append(time.perf_counter() - t0)
                if _count(self.bridge) != n:
                    raise RuntimeError(f"the controller left {_count(self.bridge)} flows, not {n}")
        self.result = {"rules": n, "controller_s": controller, "warm_s": warm, "ofctl_s": ofctl}

    def on_switch_disconnected(self, switch: str) -> None:
        pass

    def on_link_status(self, switch: str, port: int, up: bool) -> None:
        pass

    def on_port_states(self, switch: str, ports: Mapping[int, bool]) -> None:
        pass

    def audit(self) -> None:
        pass


def push_rate(n: int, repeats: int = 3, timeout: float = 120.0) -> dict[str, Any]:
    """Median seconds to load ``n`` rules by the controller and by ovs-ofctl (alternating)."""
    from segctl.controller.framework import hub
    from segctl.controller.runner import Endpoint, RunOptions, Started, run

    lines, source = bench_rules(n)
    flows = [parse_flow(line) for line in lines]
    bridge = f"{new_prefix()}push"
    dpid = 0x5EC0_0000_0000 | secrets.randbits(32)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="segctl-bench-") as tmp:
        path = Path(tmp) / "flows.txt"
        path.write_text("".join(line + "\n" for line in lines))
        hooks = _PushHooks(dpid, bridge, flows, path, repeats)

        def factory(started: Started) -> tuple[Any, Any]:
            hooks.app = started.app

            def watchdog() -> None:
                # connect only once run() has attached the hooks (unknown dpids get drop-all)
                hub.sleep(0.1)
                ovs.set_controller(bridge, [f"tcp:127.0.0.1:{port}"])
                hub.sleep(timeout)
                hooks.result = hooks.result or {"error": f"switch did not connect within {timeout:g} s"}
                os.kill(os.getpid(), signal.SIGTERM)

            hub.spawn(watchdog)
            return hooks, None

        ovs.create_bridge(bridge, dpid=dpid)
        try:
            run(RunOptions(listen=Endpoint("127.0.0.1", port)), factory)
        finally:
            ovs.delete_bridge(bridge)
    result = dict(hooks.result)
    if "error" not in result:
        result["controller_median_s"] = statistics.median(result["controller_s"])
        result["warm_median_s"] = statistics.median(result["warm_s"])
        result["ofctl_median_s"] = statistics.median(result["ofctl_s"])
    result["source"] = source
    return result
