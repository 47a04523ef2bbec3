"""Live measurements with the whole controller: update latency, convergence, hitless updates.

Every case runs the real thing: ``segctl controller run --store DB --api ...`` as a
subprocess on free ports, an admin token made with ``segctl token create``, the
leaf–spine example built as a :class:`segctl.testbed.Lab` (one OVS userspace bridge per
switch, patch-port links with the fabric's port numbers, one namespace per endpoint),
the intent applied with ``PUT /v1/intent`` and the bridges pointed at the controller.

* :func:`update`: 20 one-policy changes (``web-to-app``'s TCP port 8081, 8082, …) through
  ``PUT /v1/intent``. The service validates, compiles, verifies (gate), pushes the
  per-switch diff, dumps the live flows and verifies them *before* it answers, so the
  round trip is the whole update; every answer must say ``applied``, name the switches
  pushed and carry live verdict ``pass``. Baseline: a no-op ``PUT`` of the unchanged
  document (validate + compare) in the same run.
* :func:`convergence`: on :func:`convergence_network` (a leaf holding 10,000+ rules;
  bridges and fabric links only, no endpoint namespaces), that leaf is "restarted" (its
  controller connection dropped, its tables wiped, then reconnected). Timed from the
  reconnect until the ``switch.resync`` audit entry (polled) appears: the controller
  records it after the resync and the live proof of the whole fabric, whose verdict
  must be ``pass``. Baseline: ``ovs-ofctl --bundle add-flows`` of the same rules.
* :func:`hitless`: ``ping -i 0.01`` between two endpoints the change does not touch
  (globex ``gweb1`` → ``gweb2``, across the fabric) and, for information, inside the
  changed policy (acme ``web1`` → ``app1``, ICMP is allowed before and after) during the
  20 updates; lost packets counted. Baseline: the same pings for the same time without updates.

Every bridge, namespace and process made here is removed in a ``finally``.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.table import seconds_text
from segctl.testbed.intent_lab import free_port, lab_spec

__all__ = ["convergence", "convergence_network", "hitless", "start_controller", "update"]

REPO = Path(__file__).resolve().parents[1]
LEAF_SPINE = REPO / "examples" / "leaf-spine.yaml"
POLICY = ("acme", "web-to-app")  # the policy whose first service port changes
#: The session's update i sets that port to FIRST_PORT + i: every update is an intent (and tables) never
#: seen before, so no proof can be read back from the store (segctl/controller/proofs.py).
FIRST_PORT = 8081


def _env() -> dict[str, str]:
    return dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )


def start_controller(
    store: Path, log: Path, *, timeout: float = 60.0
) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start ``segctl controller run --store`` on free ports and wait for its API.

    Raises RuntimeError (with the log's last line) if it exits first.
    """
    of_port, api_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "segctl.cli", "controller", "run", "--store", str(store),
           "--listen", f"127.0.0.1:{of_port}", "--api", f"127.0.0.1:{api_port}",
           "--audit-interval", "0"]  # fmt: skip
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"exit {proc.returncode}"
            raise RuntimeError(f"segctl controller run exited {proc.returncode}: {reason}")
        if "REST API on" in log.read_text(errors="replace"):
            return proc, of_port, api_port
        time.sleep(0.1)
    stop_controller(proc)
    raise RuntimeError(f"segctl controller run did not serve its API within {timeout:g} s")


def stop_controller(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the controller we started (by its pid), then SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait(predicate: Callable[[], bool], *, timeout: float, what: str, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


@dataclass
class _Api:
    base: str
    token: str

    def call(self, method: str, path: str, body: Any = None, *, timeout: float = 120.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:2000]!r}") from None


@dataclass
class _Session:
    api: _Api
    lab: Any
    network: Any
    document: dict[str, Any]
    log: Path
    pid: int = 0  # the controller's (for a profiler: py-spy record --pid)
    updates: int = 0  # updates made so far: the next one sets FIRST_PORT + updates

    def audit(self, action: str, after: int = 0) -> list[dict[str, Any]]:
        body = self.api.call("GET", f"/v1/audit?action={action}&after={after}&limit=1000")
        return list(body["entries"])

    def last_seq(self) -> int:
        return int(self.api.call("GET", "/v1/audit?limit=1")["head"].split(":")[0])


@contextmanager
def _session(network: Any = None, *, hosts: bool = True) -> Iterator[_Session]:
    """A lab driven by a real controller subprocess, synced and verified live.

    ``network`` defaults to the leaf–spine example; ``hosts=False`` builds the bridges
    and fabric links only (no endpoint namespaces, see :func:`lab_spec`).
    """
    from segctl.controller.service import intent_document
    from segctl.testbed import Lab, ovs
    from segctl.testbed.lab import new_prefix
    from segctl.topology.network import load_network

    if network is None:
        network = load_network(LEAF_SPINE)
    document = intent_document(network.intent)
    with tempfile.TemporaryDirectory(prefix="segctl-bench-") as tmp:
        store, log = Path(tmp) / "segctl.db", Path(tmp) / "controller.log"
        token = subprocess.run(
            [sys.executable, "-m", "segctl.cli", "token", "create", "--store", str(store),
             "--role", "admin", "--name", "bench"],
            capture_output=True, text=True, check=True, env=_env(),
        ).stdout.splitlines()[0].strip()  # fmt: skip
        proc, of_port, api_port = start_controller(store, log)
        try:
            api = _Api(f"http://127.0.0.1:{api_port}", token)
            result = api.call("PUT", "/v1/intent", document)
            if result["status"] != "applied":
                raise RuntimeError(f"initial PUT /v1/intent: {result['status']}")
            with Lab(lab_spec(network, new_prefix(), hosts=hosts)) as lab:
                session = _Session(api, lab, network, document, log, proc.pid)
                names = [s.name for s in network.switches]
                for name in names:
                    ovs.set_controller(lab.bridge(name), [f"tcp:127.0.0.1:{of_port}"])
                wanted = {f"switch/{n}" for n in names}
                _wait(
                    lambda: {e["object"] for e in session.audit("switch.resync")} >= wanted,
                    timeout=120, what="every switch to be resynced", step=0.2,
                )  # fmt: skip
                verdict = api.call("POST", "/v1/verify")["live_verdict"]
                if verdict != "pass":
                    raise RuntimeError(f"live verification after the initial sync: {verdict}")
                yield session
        except BaseException:
            tail = log.read_text(errors="replace")[-3000:]
            print(f"controller log (tail):\n{tail}", file=sys.stderr)
            raise
        finally:
            stop_controller(proc)


def _changed(document: dict[str, Any], port: int) -> dict[str, Any]:
    """``document`` with the first service port of :data:`POLICY` set to ``port``."""
    doc = copy.deepcopy(document)
    tenant = next(t for t in doc["tenants"] if t["name"] == POLICY[0])
    policy = next(p for p in tenant["policies"] if p["name"] == POLICY[1])
    service = next(s for s in policy["services"] if s.get("ports"))
    service["ports"] = [{"lo": port, "hi": port}]
    return doc


def _pctl(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _updates(session: _Session, count: int) -> dict[str, Any]:
    """``count`` one-policy PUTs (a new port each time), each checked; times and verifier seconds.

    Every gate proof must be computed: an answer whose gate proof was read back from the
    store (the same inputs seen before) is an error here, not a fast update. The live check
    proves what the switches hold, which after a push is the gated tables: read back."""
    times: list[float] = []
    gate: list[float] = []
    live: list[float] = []
    for i in range(count):
        doc = _changed(session.document, FIRST_PORT + session.updates)
        session.updates += 1
        t0 = time.perf_counter()
        result = session.api.call("PUT", "/v1/intent", doc)
        times.append(time.perf_counter() - t0)
        if result["status"] != "applied" or result["live_verdict"] != "pass" or not result["pushed"]:
            raise RuntimeError(
                f"update {i + 1}: status {result['status']}, live verdict {result['live_verdict']}, "
                f"pushed {result['pushed']}, errors {result['errors']}"
            )
        if result["verification"]["reused"]:  # (the live check of just-gated tables may be)
            raise RuntimeError(f"update {i + 1}: the gate's proof was read back from the store")
        gate.append(result["verification"]["seconds"])
        live.append(result["live_verification"]["seconds"])
    return {"times": times, "gate": gate, "live": live, "last": doc}


def update(updates: int = 20) -> dict[str, Any]:
    """p50/p95 of one-policy REST updates until pushed and live re-verified (leaf-spine)."""
    with _session() as session:
        noop: list[float] = []
        for _ in range(5):
            t0 = time.perf_counter()
            result = session.api.call("PUT", "/v1/intent", session.document)
            noop.append(time.perf_counter() - t0)
            if result["status"] != "unchanged":
                raise RuntimeError(f"no-op PUT: status {result['status']}")
        r = _updates(session, updates)
    times = r["times"]
    p50, p95 = _pctl(times, 50), _pctl(times, 95)
    base = statistics.median(noop)
    gate, live = statistics.median(r["gate"]), statistics.median(r["live"])
    rest = statistics.median(t - g - v for t, g, v in zip(times, r["gate"], r["live"], strict=True))
    row = {
        "measurement": f"update latency (leaf-spine, REST, {updates} updates)",
        "figure": f"p50 {seconds_text(p50)}, p95 {seconds_text(p95)}",
        "baseline": f"no-op PUT {seconds_text(base)} (median of {len(noop)})",
        "ratio": f"p95 {p95 / base:.0f}x",
        "target": "p95 < 1 s",
        "met": p95 < 1.0,
        "detail": f"each PUT answered applied + live pass; medians: gate verify {seconds_text(gate)}, "
        f"live verify {seconds_text(live)}, rest (validate, compile, diff, push, dump) {seconds_text(rest)}",
    }
    return {"row": row, "times": times, "gate": r["gate"], "live": r["live"], "noop": noop}


def convergence_network(rules: int = 10_000) -> Any:
    """The convergence case's fabric: ``leafA`` holds at least ``rules`` compiled rules.

    :func:`segctl.topology.synthetic.policy_pair` with 8 + 4 endpoints and as many
    1000-port A → B policies as ``rules`` needs (10,000 → 10 policies, 10,243 rules on
    ``leafA``): few endpoints keep the one-time full proof of the fabric short.
    """
    from segctl.topology.network import resolve
    from segctl.topology.synthetic import policy_pair

    policies = max(1, -(-rules // 1000))
    return resolve(policy_pair(8, 4, -(-rules // policies), policies=policies))


def convergence(rules: int = 10_000, restarts: int = 3, switch: str = "leafA") -> dict[str, Any]:
    """Seconds from a restarted switch (empty tables, reconnecting) to resynced and re-verified live.

    The fabric is :func:`convergence_network` (``switch`` holds >= ``rules`` rules), built
    without endpoint namespaces. Per restart: the controller connection is dropped and
    the tables wiped, then the switch reconnects; timed until the ``switch.resync`` audit
    entry appears, which the controller records only after the resync *and* the live
    proof of the whole fabric (its ``live_verdict`` must be ``pass``; its ``seconds`` and
    ``live_seconds`` split the time). A ``POST /v1/verify`` after it is reported for
    information. Baseline: ``ovs-ofctl --bundle add-flows`` of the same rules into the
    wiped bridge, in the same run.
    """
    from segctl.testbed import ovs

    t0 = time.perf_counter()
    network = convergence_network(rules)
    totals: list[float] = []
    resyncs: list[float] = []
    lives: list[float] = []
    verifies: list[float] = []
    ofctl: list[float] = []
    with _session(network, hosts=False) as session:
        setup = time.perf_counter() - t0
        bridge = session.lab.bridge(switch)
        want = session.api.call("GET", f"/v1/switches/{switch}/flows")
        n = len(want["desired"])
        with tempfile.TemporaryDirectory(prefix="segctl-bench-") as tmp:
            path = Path(tmp) / "flows.txt"
            path.write_text("".join(line + "\n" for line in want["desired"]))
            target = ovs.run(["ovs-vsctl", "get-controller", bridge]).strip()
            for _ in range(restarts):
                ovs.del_flows(bridge)
                t0 = time.perf_counter()
                ovs.run(
                    ["ovs-ofctl", "-O", "OpenFlow13,OpenFlow14", "--bundle", "add-flows", bridge, str(path)]
                )
                ofctl.append(time.perf_counter() - t0)
                # the restart: connection gone, tables empty; then the switch comes back
                after = session.last_seq()
                ovs.del_controller(bridge)
                ovs.del_flows(bridge)
                t0 = time.perf_counter()
                ovs.set_controller(bridge, [target])
                found: list[dict[str, Any]] = []

                def resynced(after: int = after, found: list[dict[str, Any]] = found) -> bool:
                    found[:] = [
                        e for e in session.audit("switch.resync", after) if e["object"] == f"switch/{switch}"
                    ]
                    return bool(found)

                _wait(resynced, timeout=300, what=f"the resync of {switch}", step=0.05)
                t1 = time.perf_counter()
                detail = found[0]["detail"]
                if detail.get("live_verdict") != "pass":
                    raise RuntimeError(
                        f"live verdict after the resync of {switch}: {detail.get('live_verdict')}"
                    )
                verdict = session.api.call("POST", "/v1/verify")["live_verdict"]
                verifies.append(time.perf_counter() - t1)
                if verdict != "pass":
                    raise RuntimeError(f"live verification after the restart of {switch}: {verdict}")
                totals.append(t1 - t0)
                resyncs.append(float(detail["seconds"]))
                lives.append(float(detail["live_seconds"]))
    total, base = statistics.median(totals), statistics.median(ofctl)
    rest = statistics.median(t - r - v for t, r, v in zip(totals, resyncs, lives, strict=True))
    row = {
        "measurement": f"convergence after switch restart ({switch}, {n:,} rules)",
        "figure": seconds_text(total),
        "baseline": f"ovs-ofctl --bundle add-flows {seconds_text(base)}",
        "ratio": f"{total / base:.1f}x",
        "target": "< 3 s",
        "met": total < 3.0,
        "detail": f"median of {restarts}, reconnect -> switch.resync recorded (after resync + live proof "
        f"of the {len(network.switches)}-switch fabric, verdict pass): "
        f"resync {seconds_text(statistics.median(resyncs))}, "
        f"live dump+verify {seconds_text(statistics.median(lives))}, "
        f"reconnect/handshake/polling {seconds_text(rest)}; "
        f"POST /v1/verify after it {seconds_text(statistics.median(verifies))}; "
        f"one-time set-up (lab, initial full proof) {seconds_text(setup)}",
    }
    return {
        "row": row,
        "totals": totals,
        "resyncs": resyncs,
        "lives": lives,
        "verifies": verifies,
        "ofctl": ofctl,
        "rules": n,
        "setup": setup,
    }


def _ping(session: _Session, src: str, dst: str, seconds: float) -> subprocess.Popen[str]:
    ip = next(str(e.ip) for e in session.network.endpoints if e.name == dst)
    count = int(seconds / 0.01)
    cmd = ["ip", "netns", "exec", session.lab.namespace(src), "ping", "-n", "-q", "-i", "0.01", "-W", "1",
           "-c", str(count), ip]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _lost(proc: subprocess.Popen[str]) -> tuple[int, int]:
    """(transmitted, lost) from ping's summary line."""
    out, _ = proc.communicate(timeout=600)
    for line in out.splitlines():
        if "packets transmitted" in line:
            sent = int(line.split()[0])
            received = int(line.split(",")[1].split()[0])
            return sent, sent - received
    raise RuntimeError(f"ping printed no summary: {out[-500:]}")


PAIRS = (("gweb1", "gweb2"), ("web1", "app1"))


def hitless(updates: int = 20) -> dict[str, Any]:
    """Pings lost between unaffected endpoints during policy updates (vs a run without)."""
    with _session() as session:
        # estimate the duration of the updates from two of them, then ping a bit longer
        t0 = time.perf_counter()
        r = _updates(session, 2)
        seconds = (time.perf_counter() - t0) / 2 * updates + 2.0
        session.document = r["last"]
        results: dict[str, dict[str, tuple[int, int]]] = {}
        for phase in ("baseline", "updates"):
            pings = {f"{a}->{b}": _ping(session, a, b, seconds) for a, b in PAIRS}
            try:
                time.sleep(0.5)
                if phase == "updates":
                    _updates(session, updates)
                else:
                    time.sleep(seconds - 1.0)
                results[phase] = {name: _lost(p) for name, p in pings.items()}
            finally:
                for p in pings.values():
                    if p.poll() is None:
                        p.kill()
                        p.wait()
    main = f"{PAIRS[0][0]}->{PAIRS[0][1]}"
    side = f"{PAIRS[1][0]}->{PAIRS[1][1]}"
    sent, lost = results["updates"][main]
    bsent, blost = results["baseline"][main]
    row = {
        "measurement": f"hitless updates (ping loss, {updates} updates)",
        "figure": f"{lost} of {sent} lost ({main})",
        "baseline": f"no updates: {blost} of {bsent} lost",
        "ratio": "-",
        "target": "0 lost",
        "met": lost == 0,
        "detail": f"ping -i 0.01 across the fabric, unaffected tenant; inside the changed policy ({side}, "
        f"ICMP allowed throughout): {results['updates'][side][1]} of {results['updates'][side][0]} lost "
        f"(no updates: {results['baseline'][side][1]} of {results['baseline'][side][0]})",
    }
    return {"row": row, "results": results, "seconds": seconds}
