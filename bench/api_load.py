"""A bounded load on the REST API of a real controller process: latency, errors, consistency.

Usage::

    .venv/bin/python bench/api_load.py [--requests 2000] [--concurrency 50] [--writers 5]
                                       [--markdown FILE] [--json FILE]

Starts ``segctl controller run --store DB --api ...`` (no switches connected: the push of a
change is ``pending``; what is measured is the API, the change queue, the gate proof with
the controller's own verifier, and the store), applies ``examples/leaf-spine.yaml``, then
sends ``--requests`` requests from ``--concurrency`` client threads: ``--writers`` of them
write (each with its own admin token, in turn a whole intent and a tenant, every one a new
revision: a policy port changes), the others read (intent, tenants, revisions, audit, reports,
switches, metrics, HEAD). Each request is a new connection. Then it checks what must hold:
no error (every answer 2xx), the revisions numbered 1, 2, ... with one per write answered
``applied``, each with its own audit entry, and the audit chain intact. Figures: wall-clock
latency per request as the client saw it (p50, p95, max), reads and writes apart, and the
run's throughput. The client runs in this process, on the same CPUs. See
docs/performance.md.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from bench.table import Row, publish, seconds_text  # noqa: E402
from segctl.controller.audit import AuditLog, verify_chain  # noqa: E402
from segctl.controller.auth import TokenStore  # noqa: E402
from segctl.controller.store import Database, Store  # noqa: E402
from segctl.testbed.intent_lab import free_port  # noqa: E402

__all__ = ["main", "run_load"]

INTENT = yaml.safe_load((REPO / "examples" / "leaf-spine.yaml").read_text())
READS = [
    ("GET", "/v1/intent"),
    ("GET", "/v1/tenants/acme"),
    ("GET", "/v1/revisions?limit=20"),
    ("GET", "/v1/audit?limit=50"),
    ("GET", "/v1/reports?limit=20"),
    ("GET", "/v1/switches"),
    ("GET", "/metrics"),
    ("HEAD", "/v1/intent"),
]


@dataclass
class Results:
    reads: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    applied: list[int] = field(default_factory=list)  # revision ids of the writes answered "applied"
    lock: threading.Lock = field(default_factory=threading.Lock)


def _request(port: int, token: str, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _write_request(writer: int, n: int) -> tuple[str, str, Any]:
    """A change that is a new revision: acme's web-to-app port becomes another one (unique per
    writer and request), in turn in a whole intent and in acme's tenant document. A port
    change is what the incremental verifier re-proves in part (a change of endpoints,
    labels included, is a full proof)."""
    doc = copy.deepcopy(INTENT)
    acme = next(t for t in doc["tenants"] if t["name"] == "acme")
    acme["policies"][0]["services"][0]["port"] = 10_000 + writer * 1_000 + n
    if n % 2 == 0:
        return "PUT", "/v1/intent", doc
    return "PUT", "/v1/tenants/acme", acme


def _client(port: int, token: str, results: Results, budget: Callable[[], bool], writer: int | None) -> None:
    n = 0
    while budget():
        if writer is None:
            method, path = READS[n % len(READS)]
            body = None
        else:
            method, path, body = _write_request(writer, n)
        started = time.perf_counter()
        try:
            status, raw = _request(port, token, method, path, body)
        except OSError as exc:
            status, raw = 0, repr(exc).encode()
        seconds = time.perf_counter() - started
        with results.lock:
            (results.reads if writer is None else results.writes).append(seconds)
            if not 200 <= status < 300:
                results.errors.append(f"{method} {path}: {status} {raw[:200]!r}")
            elif writer is not None:
                answer = json.loads(raw)
                if answer["status"] == "applied":
                    results.applied.append(int(answer["revision"]["id"]))
        n += 1


def _start(store: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "segctl.cli", "controller", "run", "--store", str(store),
             "--listen", f"127.0.0.1:{free_port()}", "--api", f"127.0.0.1:{port}", "--audit-interval", "0"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while "REST API on" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the controller did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return proc, port


def _consistency(store: Path, results: Results) -> list[str]:
    """What must hold after the run; the problems found (empty: all good)."""
    db = Database(store)
    problems = [str(p) for p in verify_chain(db)]
    revisions = list(reversed(Store(db).revisions(limit=1_000_000)))
    ids = [r.id for r in revisions]
    if ids != list(range(1, len(ids) + 1)):
        problems.append(f"revisions are not numbered 1..{len(ids)}")
    if sorted(results.applied) != ids[1:]:
        problems.append(f"{len(results.applied)} writes applied, revisions {ids[1:][:5]}...")
    recorded = {
        (e.detail.get("revision"), e.detail.get("sha256"))
        for e in AuditLog(db).entries(limit=1_000_000)
        if e.action in ("intent.apply", "tenant.update", "intent.rollback")
    }
    missing = [r.id for r in revisions if (r.id, r.sha256) not in recorded]
    if missing:
        problems.append(f"revisions without their audit entry: {missing[:5]}")
    db.close()
    return problems


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run_load(requests: int, concurrency: int, writers: int, directory: Path) -> dict[str, Any]:
    """Run the load; return the figures and the consistency problems (see the module doc)."""
    store = directory / "segctl.db"
    db = Database(store)
    tokens = TokenStore(db)
    writer_tokens = [tokens.create("admin", name=f"writer{i}")[1] for i in range(writers)]
    reader_token = tokens.create("auditor", name="reader")[1]
    db.close()
    proc, port = _start(store, directory / "controller.log")
    try:
        status, raw = _request(port, writer_tokens[0], "PUT", "/v1/intent", INTENT)
        if status != 200:
            raise RuntimeError(f"the first intent was refused: {status} {raw[:300]!r}")
        results = Results()
        sent = [0]

        def budget() -> bool:
            with results.lock:
                sent[0] += 1
                return sent[0] <= requests

        threads = [
            threading.Thread(
                target=_client,
                args=(port, writer_tokens[i] if i < writers else reader_token, results, budget),
                kwargs={"writer": i if i < writers else None},
            )
            for i in range(concurrency)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    problems = _consistency(store, results)
    every = results.reads + results.writes
    return {
        "requests": len(every),
        "concurrency": concurrency,
        "writers": writers,
        "seconds": wall,
        "per_second": len(every) / wall,
        "errors": results.errors,
        "applied": len(results.applied),
        "problems": problems,
        **{
            f"{name}_{q}": _quantile(values, fraction)
            for name, values in (("all", every), ("read", results.reads), ("write", results.writes))
            for q, fraction in (("p50", 0.50), ("p95", 0.95), ("max", 1.0))
        },
        "reads": len(results.reads),
        "writes": len(results.writes),
    }


def _rows(figures: dict[str, Any]) -> list[Row]:
    ok = not figures["errors"] and not figures["problems"]
    detail = (
        f"{figures['requests']:,} requests, {figures['concurrency']} clients ({figures['writers']} writers), "
        f"{figures['seconds']:.1f} s, {figures['per_second']:.0f}/s; {figures['applied']} revisions; "
        f"errors {len(figures['errors'])}, consistency problems {len(figures['problems'])}"
    )
    rows = []
    for name, label in (("all", "every request"), ("read", "reads"), ("write", "writes (gate proof)")):
        rows.append(
            Row(
                f"REST API latency, {label}: p50 / p95",
                f"{seconds_text(figures[f'{name}_p50'])} / {seconds_text(figures[f'{name}_p95'])}",
                "-",
                "-",
                "0 errors, consecutive revisions, intact chain",
                ok,
                f"max {seconds_text(figures[f'{name}_max'])}; " + detail
                if name == "all"
                else f"{figures[name + 's']:,} requests, max {seconds_text(figures[f'{name}_max'])}",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--writers", type=int, default=5)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="segctl-load-") as directory:
        figures = run_load(args.requests, args.concurrency, args.writers, Path(directory))
    publish(_rows(figures), figures, markdown=args.markdown, json_path=args.json)
    for line in figures["errors"][:10] + figures["problems"]:
        print(line)
    return 0 if not figures["errors"] and not figures["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
