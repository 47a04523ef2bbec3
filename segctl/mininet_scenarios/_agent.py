"""Probe agent run *inside* a host namespace by :mod:`segctl.mininet_scenarios.probes`.

``python -m segctl.mininet_scenarios._agent serve IDENTITY --tcp 80,443 --udp 53 [--v6]
[--tell-source]``: echo server on every listed port at once; each reply is the request
followed by ``|IDENTITY`` so the prober knows *which* host answered (tenants may share
addresses); with ``--tell-source``, ``|IDENTITY@ADDRESS``, the source address the server
saw (the outside tells which public address a connection came from). Prints ``ready``
once every socket is bound.

``python -m segctl.mininet_scenarios._agent probe TIMEOUT JSON`` takes a JSON list of
``{"id", "proto", "dst", "port"[, "src"]}``, runs them all concurrently and prints one
JSON object ``{id: {"ok": bool, "peer": str, "error": str}}``. ``icmp`` uses ``ping``;
``src`` binds the probe to that local address.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import selectors
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_SEP = b"|"


def _ports(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p.strip()]


def serve(identity: str, tcp: list[int], udp: list[int], v6: bool, tell_source: bool = False) -> int:
    """Echo on every port until killed."""
    sel = selectors.DefaultSelector()
    families = [socket.AF_INET, *([socket.AF_INET6] if v6 else [])]
    for family in families:
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
        for port in tcp:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
            s.listen(64)
            sel.register(s, selectors.EVENT_READ, "tcp")
        for port in udp:
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
            sel.register(s, selectors.EVENT_READ, "udp")
    suffix = _SEP + identity.encode()

    def told(peer: Any) -> bytes:
        return suffix + (b"@" + str(peer[0]).encode() if tell_source else b"")

    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            if key.data == "udp":
                with contextlib.suppress(OSError):
                    data, peer = sock.recvfrom(4096)
                    sock.sendto(data + told(peer), peer)
            else:
                conn, peer = sock.accept()
                threading.Thread(target=_echo_tcp, args=(conn, told(peer)), daemon=True).start()


def _echo_tcp(conn: socket.socket, suffix: bytes) -> None:
    """Echo every chunk until the peer closes (long-lived streams stay up)."""
    with conn:
        conn.settimeout(600)
        with contextlib.suppress(OSError):
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                conn.sendall(data + suffix)


def _one(item: dict[str, Any], timeout: float) -> dict[str, Any]:
    proto, dst, port, src = item["proto"], item["dst"], item.get("port"), item.get("src")
    token = f"segctl-{item['id']}".encode()
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    try:
        if proto in ("icmp", "icmp6"):
            argv = ["ping", "-n", "-q", "-c", "1", "-W", f"{timeout:g}", dst]
            if family == socket.AF_INET6:
                argv.insert(1, "-6")
            if src:
                argv[1:1] = ["-I", str(src)]
            done = subprocess.run(argv, capture_output=True, timeout=timeout + 5, check=False)
            return {
                "ok": done.returncode == 0,
                "peer": "",
                "error": "" if done.returncode == 0 else "no reply",
            }
        kind = socket.SOCK_STREAM if proto in ("tcp", "tcp6") else socket.SOCK_DGRAM
        with socket.socket(family, kind) as sock:
            sock.settimeout(timeout)
            if src:
                sock.bind((str(src), 0))
            sock.connect((dst, int(port or 0)))
            sock.send(token)
            reply = sock.recv(4096)
        if not reply.startswith(token + _SEP):
            return {"ok": False, "peer": "", "error": f"unexpected reply {reply[:40]!r}"}
        return {"ok": True, "peer": reply[len(token) + 1 :].decode(errors="replace"), "error": ""}
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "peer": "", "error": str(exc) or type(exc).__name__}


def probe(timeout: float, text: str) -> int:
    """Run the JSON list of probes concurrently; print the results as JSON."""
    items = json.loads(text)
    with ThreadPoolExecutor(max_workers=max(1, min(64, len(items)))) as pool:
        results = list(pool.map(lambda it: _one(it, timeout), items))
    print(json.dumps({str(it["id"]): r for it, r in zip(items, results, strict=True)}), flush=True)
    return 0


def stream(dst: str, port: int, seconds: float, interval: float) -> int:
    """One TCP connection kept busy for ``seconds``: print ``sent echoed error`` as JSON."""
    sent = echoed = 0
    error = ""
    deadline = time.monotonic() + seconds
    try:
        with socket.create_connection((dst, port), timeout=3) as sock:
            while time.monotonic() < deadline:
                token = f"seq{sent}".encode()
                sock.sendall(token)
                sent += 1
                if sock.recv(4096).startswith(token):
                    echoed += 1
                time.sleep(interval)
    except OSError as exc:
        error = str(exc) or type(exc).__name__
    print(json.dumps({"sent": sent, "echoed": echoed, "error": error}), flush=True)
    return 0


def flood(dst: str, port: int, seconds: float) -> int:
    """Send UDP datagrams as fast as possible for ``seconds``; print the count as JSON."""
    count = 0
    deadline = time.monotonic() + seconds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while time.monotonic() < deadline:
            for _ in range(100):
                with contextlib.suppress(OSError):
                    sock.sendto(b"flood", (dst, port))
                    count += 1
    print(json.dumps({"sent": count}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="segctl.mininet_scenarios._agent")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("identity")
    p.add_argument("--tcp", type=_ports, default=[])
    p.add_argument("--udp", type=_ports, default=[])
    p.add_argument("--v6", action="store_true")
    p.add_argument("--tell-source", action="store_true")
    p = sub.add_parser("probe")
    p.add_argument("timeout", type=float)
    p.add_argument("probes")
    p = sub.add_parser("stream")
    p.add_argument("dst")
    p.add_argument("port", type=int)
    p.add_argument("seconds", type=float)
    p.add_argument("interval", type=float)
    p = sub.add_parser("flood")
    p.add_argument("dst")
    p.add_argument("port", type=int)
    p.add_argument("seconds", type=float)
    a = parser.parse_args(argv)
    if a.cmd == "stream":
        return stream(a.dst, a.port, a.seconds, a.interval)
    if a.cmd == "flood":
        return flood(a.dst, a.port, a.seconds)
    if a.cmd == "serve":
        return serve(a.identity, a.tcp, a.udp, a.v6, a.tell_source)
    return probe(a.timeout, a.probes)


if __name__ == "__main__":
    sys.exit(main())
