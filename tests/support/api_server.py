"""``segctl controller run --store DB --api ...`` as a subprocess, and raw HTTP to it.

For tests of what only the real process shows: the event loop (a poll answered while a
hostile request is handled), the HTTP server (timeouts, connection cap, chunked bodies,
TLS), crashes and restarts. No switches: the controller listens for OpenFlow on a free
port nobody connects to. Tokens are created in the store before the controller starts.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LEAF_SPINE = REPO / "examples" / "leaf-spine.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def make_tokens(store: Path) -> dict[str, str]:
    """admin, auditor and acme-admin (tenant-admin of acme) tokens in ``store``."""
    from segctl.controller.auth import TokenStore
    from segctl.controller.store import Database

    db = Database(store)
    tokens = TokenStore(db)
    out = {
        "admin": tokens.create("admin", name="test")[1],
        "auditor": tokens.create("auditor")[1],
        "acme-admin": tokens.create("tenant-admin", tenant="acme")[1],
    }
    db.close()
    return out


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ApiServer:
    """A running controller with the REST API; :meth:`call` sends one request on a new connection."""

    proc: subprocess.Popen[bytes]
    api_port: int
    of_port: int
    store: Path
    log_path: Path
    tokens: dict[str, str]
    tls: ssl.SSLContext | None = None
    exit_codes: list[int] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connection(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        if self.tls is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.api_port, timeout=timeout, context=self.tls)
        return http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=timeout)

    def call(
        self,
        method: str,
        path: str,
        body: bytes | str | Any = None,
        *,
        role: str | None = "admin",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Reply:
        if body is not None and not isinstance(body, bytes | str):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        sent = dict(headers or {})
        if role is not None:
            sent["Authorization"] = f"Bearer {self.tokens[role]}"
        if data is not None:
            sent.setdefault("Content-Type", content_type)
        started = time.monotonic()
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            raw = response.read()
            return Reply(response.status, dict(response.getheaders()), raw, time.monotonic() - started)
        finally:
            conn.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"controller ignored signal {sig}:\n{self.log()[-3000:]}") from None
        return int(self.proc.returncode)


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def start_server(
    directory: Path,
    *,
    store: Path | None = None,
    tokens: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
    ready: str = "REST API on",
    name: str = "controller",
    of_port: int | None = None,
) -> ApiServer:
    """Start the controller (a new store in ``directory`` unless ``store`` is given; the
    OpenFlow listener on ``of_port``, a free port by default)."""
    store = store or directory / "segctl.db"
    if tokens is None:
        tokens = make_tokens(store)
    log_path = directory / f"{name}.log"
    of_port, api_port = of_port or free_port(), free_port()
    cmd = [
        sys.executable, "-m", "segctl.cli", "controller", "run", "--store", str(store),
        "--listen", f"127.0.0.1:{of_port}", "--api", f"127.0.0.1:{api_port}", "--audit-interval", "0",
        *args,
    ]  # fmt: skip
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(env))
    server = ApiServer(proc, api_port, of_port, store, log_path, tokens, tls)
    wait_for(lambda: ready in server.log() or proc.poll() is not None, timeout=60, what="the REST API")
    assert proc.poll() is None, f"controller exited early:\n{server.log()[-4000:]}"
    return server


@contextmanager
def running(directory: Path, **kwargs: Any) -> Iterator[ApiServer]:
    """:func:`start_server`, stopped with SIGTERM at the end (it must exit 0)."""
    server = start_server(directory, **kwargs)
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, f"controller exit {code}:\n{server.log()[-4000:]}"


class Poller:
    """Polls ``GET /metrics`` every ``interval`` seconds in a thread; keeps each latency."""

    def __init__(self, server: ApiServer, interval: float = 0.02) -> None:
        self.server = server
        self.interval = interval
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                reply = self.server.call("GET", "/metrics", role="auditor", timeout=60)
                self.latencies.append(reply.seconds)
                if reply.status != 200:
                    self.failures.append(f"status {reply.status}")
            except OSError as exc:
                self.failures.append(repr(exc))
            self._stop.wait(self.interval)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    @property
    def worst(self) -> float:
        return max(self.latencies, default=0.0)
