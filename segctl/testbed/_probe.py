"""Probe programs run *inside* a namespace by :mod:`segctl.testbed.probes`.

``python -m segctl.testbed._probe serve tcp|udp PORT [--v6]``: echo server, prints
``ready`` once bound. ``connect tcp|udp HOST PORT TIMEOUT``: send a token, exit 0
only if the same token comes back. ``send IFACE HEX [HEX ...]``: write raw frames, in order.
``sniff IFACE BPF TIMEOUT COUNT``: print ``ready`` then one hex line per frame.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys

_TOKEN = b"segctl-probe"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def serve(proto: str, port: int, v6: bool) -> int:
    """Echo server on the wildcard address until killed."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::" if v6 else "0.0.0.0", port))
        if proto == "tcp":
            sock.listen(16)
        print("ready", flush=True)
        while True:
            if proto == "tcp":
                conn, _ = sock.accept()
                with conn:
                    conn.settimeout(5)
                    with contextlib.suppress(OSError):
                        conn.sendall(conn.recv(4096))
            else:
                data, peer = sock.recvfrom(4096)
                sock.sendto(data, peer)


def connect(proto: str, host: str, port: int, timeout: float) -> int:
    """0 if the echo came back, 1 otherwise."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    try:
        with socket.socket(_family(host), kind) as sock:
            sock.settimeout(timeout)
            sock.connect((host, port))
            sock.send(_TOKEN)
            return 0 if sock.recv(4096) == _TOKEN else 1
    except OSError as exc:
        print(f"{proto} {host}:{port}: {exc}", file=sys.stderr)
        return 1


def send(iface: str, frames_hex: list[str]) -> int:
    """Write raw Ethernet frames on ``iface``, in order."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((iface, 0))
        for frame_hex in frames_hex:
            sock.send(bytes.fromhex(frame_hex))
    return 0


def sniff(iface: str, bpf: str, timeout: float, count: int) -> int:
    """Print each captured frame as a hex line (scapy, BPF filter)."""
    from scapy.all import sniff as scapy_sniff  # slow import: only when sniffing

    def _ready() -> None:
        print("ready", flush=True)

    def _emit(pkt: object) -> None:
        print(bytes(pkt).hex(), flush=True)  # type: ignore[call-overload]

    scapy_sniff(
        iface=iface,
        filter=bpf or None,
        timeout=timeout,
        count=count,
        store=False,
        prn=_emit,
        started_callback=_ready,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="segctl.testbed._probe")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("proto", choices=["tcp", "udp"])
    p.add_argument("port", type=int)
    p.add_argument("--v6", action="store_true")
    p = sub.add_parser("connect")
    p.add_argument("proto", choices=["tcp", "udp"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("timeout", type=float)
    p = sub.add_parser("send")
    p.add_argument("iface")
    p.add_argument("frames_hex", nargs="+")
    p = sub.add_parser("sniff")
    p.add_argument("iface")
    p.add_argument("bpf")
    p.add_argument("timeout", type=float)
    p.add_argument("count", type=int)
    a = parser.parse_args(argv)
    if a.cmd == "serve":
        return serve(a.proto, a.port, a.v6)
    if a.cmd == "connect":
        return connect(a.proto, a.host, a.port, a.timeout)
    if a.cmd == "send":
        return send(a.iface, a.frames_hex)
    return sniff(a.iface, a.bpf, a.timeout, a.count)


if __name__ == "__main__":
    sys.exit(main())
