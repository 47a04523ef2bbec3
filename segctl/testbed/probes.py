"""Traffic probes run from the host side into namespaces.

Every process started here is ended by pid in a ``finally`` block; waits poll
with a timeout (the server prints ``ready`` once bound) instead of sleeping.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from segctl.testbed.netns import exec_argv

__all__ = [
    "ProbeError",
    "Sniffer",
    "listener",
    "ping",
    "send_raw_frame",
    "sniff",
    "spawn_in",
    "stop_process",
    "tcp_connect",
    "udp_exchange",
    "wait_ready",
]

_PROBE = [sys.executable, "-m", "segctl.testbed._probe"]


class ProbeError(RuntimeError):
    """A probe program could not be started or did not become ready."""


def stop_process(proc: subprocess.Popen[str]) -> None:
    """Terminate one process we started (by pid) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


def wait_ready(proc: subprocess.Popen[str], timeout: float, what: str) -> None:
    """Wait until a probe program prints ``ready``; :class:`ProbeError` naming ``what`` if not."""
    if proc.stdout is None:
        raise ProbeError(f"{what}: no stdout pipe")
    # Read the raw fd byte by byte: a buffered readline could swallow later output
    # that communicate() (which reads the fd directly) would then never see.
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        buf += chunk
    line = buf.decode(errors="replace")
    if line.strip() != "ready":
        err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
        raise ProbeError(f"{what} did not become ready within {timeout} s: {line!r} {err}")


def spawn_in(ns: str, argv: list[str]) -> subprocess.Popen[str]:
    """Start ``argv`` inside network namespace ``ns`` with piped, unbuffered text output."""
    return subprocess.Popen(
        exec_argv(ns, argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def ping(src_ns: str, dst_ip: str, *, count: int = 1, timeout: float = 1.0) -> bool:
    """True if at least one of ``count`` echo requests from ``src_ns`` is answered."""
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", f"{timeout:g}", dst_ip]
    if ":" in dst_ip:
        argv.insert(1, "-6")
    result = subprocess.run(
        exec_argv(src_ns, argv), capture_output=True, text=True, timeout=count + timeout + 10
    )
    return result.returncode == 0


@contextlib.contextmanager
def listener(ns: str, proto: str, port: int, *, ipv6: bool = False) -> Iterator[int]:
    """Run a TCP/UDP echo server in ``ns`` for the block; yields its pid."""
    argv = [*_PROBE, "serve", proto, str(port), *(["--v6"] if ipv6 else [])]
    proc = spawn_in(ns, argv)
    try:
        wait_ready(proc, 10.0, f"{proto} listener in {ns}:{port}")
        yield proc.pid
    finally:
        stop_process(proc)


def _exchange(proto: str, src_ns: str, dst_ip: str, port: int, timeout: float) -> bool:
    argv = [*_PROBE, "connect", proto, dst_ip, str(port), f"{timeout:g}"]
    result = subprocess.run(exec_argv(src_ns, argv), capture_output=True, text=True, timeout=timeout + 15)
    return result.returncode == 0


def _probe(proto: str, src_ns: str, dst_ip: str, port: int, listen_ns: str | None, timeout: float) -> bool:
    if listen_ns is None:
        return _exchange(proto, src_ns, dst_ip, port, timeout)
    with listener(listen_ns, proto, port, ipv6=":" in dst_ip):
        return _exchange(proto, src_ns, dst_ip, port, timeout)


def tcp_connect(
    src_ns: str, dst_ip: str, port: int, *, listen_ns: str | None = None, timeout: float = 2.0
) -> bool:
    """True if a TCP connection from ``src_ns`` to ``dst_ip:port`` echoes data back.

    With ``listen_ns`` an echo server runs there for the duration of the probe.
    """
    return _probe("tcp", src_ns, dst_ip, port, listen_ns, timeout)


def udp_exchange(
    src_ns: str, dst_ip: str, port: int, *, listen_ns: str | None = None, timeout: float = 2.0
) -> bool:
    """True if a UDP datagram from ``src_ns`` to ``dst_ip:port`` gets its echo back."""
    return _probe("udp", src_ns, dst_ip, port, listen_ns, timeout)


def send_raw_frame(ns: str, iface: str, frame: bytes) -> None:
    """Write one raw Ethernet frame (e.g. ``bytes(scapy_packet)``) on ``iface`` in ``ns``."""
    result = subprocess.run(
        exec_argv(ns, [*_PROBE, "send", iface, frame.hex()]),
        capture_output=True,
        text=True,
        timeout=15,
    )
    if result.returncode != 0:
        raise ProbeError(f"send on {ns}/{iface} failed: {result.stderr.strip()}")


@dataclass
class Sniffer:
    """Capture in a namespace while the block runs; frames are in ``.frames``.

    >>> with Sniffer("sgab12h2", "eth0", "icmp") as s:  # doctest: +SKIP
    ...     send_raw_frame("sgab12h1", "eth0", frame)
    >>> s.frames  # doctest: +SKIP
    """

    ns: str
    iface: str
    bpf: str = ""
    timeout: float = 3.0
    count: int = 0
    frames: list[bytes] = field(default_factory=list)
    _proc: subprocess.Popen[str] | None = field(default=None, repr=False)

    def __enter__(self) -> Sniffer:
        argv = [*_PROBE, "sniff", self.iface, self.bpf, f"{self.timeout:g}", str(self.count)]
        self._proc = spawn_in(self.ns, argv)
        try:
            wait_ready(self._proc, 15.0, f"sniffer on {self.ns}/{self.iface}")
        except BaseException:
            stop_process(self._proc)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            deadline = time.monotonic() + self.timeout + 5
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            _stop_and_collect(proc, self.frames)


def _stop_and_collect(proc: subprocess.Popen[str], frames: list[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    out = ""
    try:
        out, _ = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
    frames.extend(bytes.fromhex(line) for line in out.split() if line and line != "ready")


def sniff(ns: str, iface: str, bpf: str = "", *, timeout: float = 3.0, count: int = 0) -> list[bytes]:
    """Capture frames matching ``bpf`` on ``iface`` in ``ns`` for up to ``timeout`` s."""
    with Sniffer(ns, iface, bpf, timeout=timeout, count=count) as s:
        pass
    return s.frames
