"""The os-ken app's flow-mods through a real OVS bridge and back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from support.vocabulary import VOCABULARY

from segctl.openflow.ofctl import parse_flow, parse_flows
from segctl.testbed import Lab, LabSpec, SwitchSpec, ovs
from segctl.testbed.intent_lab import free_port

REPO = Path(__file__).resolve().parents[2]

_HARNESS = r"""
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from segctl.controller.runner import Endpoint, RunOptions, run
from segctl.controller.southbound import SwitchMeter
from segctl.openflow.ofctl import format_flow, parse_flows

port, flows_path, out_path, dpid = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
FLOWS = parse_flows(open(flows_path).read())

class Hooks:
    def __init__(self, started):
        self.app = started.app
    def switch_name(self, d):
        return "s1" if d == dpid else None
    def on_switch_connected(self, name):
        self.app.resync(name, FLOWS, [SwitchMeter(1, "pktps", 100, 10)])
        dumped = self.app.dump(name)
        with open(out_path, "w") as fh:
            json.dump({"flows": [format_flow(f) for f in dumped],
                       "meters": [m.__dict__ for m in self.app.dump_meters(name)]}, fh)
    def on_switch_disconnected(self, name):
        pass
    def on_link_status(self, switch, port, up):
        pass
    def on_port_states(self, switch, ports):
        pass
    def audit(self):
        pass

sys.exit(run(RunOptions(listen=Endpoint("127.0.0.1", port)), lambda st: (Hooks(st), None)))
"""


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_real_ovs_round_trip_through_the_app(lab_prefix: str, tmp_path: Path) -> None:
    """Flows pushed by the app in one bundle come back equal, via OpenFlow and via ovs-ofctl."""
    flows_file = tmp_path / "flows.txt"
    flows_file.write_text(VOCABULARY)
    out = tmp_path / "dump.json"
    port = free_port()
    dpid = 0x5E6C7001
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HARNESS, str(port), str(flows_file), str(out), str(dpid)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    failure: AssertionError | None = None
    try:
        with Lab(LabSpec(lab_prefix, [SwitchSpec("s1", dpid)])) as lab:
            ovs.set_controller(lab.bridge("s1"), [f"tcp:127.0.0.1:{port}"])
            try:
                _wait_for(out.exists, 20, "the app to push and dump")
            except AssertionError as exc:
                failure = exc
                raise
            _wait_for(lambda: out.stat().st_size > 0, 5, "the dump file")
            dumped = json.loads(out.read_text())
            want = set(parse_flows(VOCABULARY))
            assert {parse_flow(t) for t in dumped["flows"]} == want
            assert set(parse_flows(ovs.dump_flows(lab.bridge("s1")))) == want
            assert dumped["meters"] == [{"meter_id": 1, "unit": "pktps", "rate": 100, "burst": 10}]
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if failure is not None:
            failure.args = (f"{failure}\napp log:\n{err[-3000:]}",)
    assert proc.returncode == 0, err[-3000:]
