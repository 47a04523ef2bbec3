"""Traffic probes run from the host side into namespaces.

Every process started here is ended by pid in a ``finally`` block; waits poll
with a timeout (the server prints ``ready`` once bound) instead of sleeping.

Batches: :func:`run_probes` runs many probes at once (a bounded number in flight, one
echo server per destination and port), :func:`sniffing` captures on many interfaces at
once and :func:`send_raw_frames` writes many frames from one process, so a test whose
probes must fail waits for about one timeout per batch instead of one per probe.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from segctl.testbed.netns import exec_argv

__all__ = [
    "MAX_IN_FLIGHT",
    "Probe",
    "ProbeError",
    "Sniffer",
    "listener",
    "ping",
    "probe_rounds",
    "run_probes",
    "send_raw_frame",
    "send_raw_frames",
    "sniff",
    "sniffing",
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
    send_raw_frames(ns, iface, [frame])


def send_raw_frames(ns: str, iface: str, frames: Sequence[bytes]) -> None:
    """Write raw Ethernet frames on ``iface`` in ``ns``, in order, from one process."""
    if not frames:
        return
    result = subprocess.run(
        exec_argv(ns, [*_PROBE, "send", iface, *(frame.hex() for frame in frames)]),
        capture_output=True,
        text=True,
        timeout=15,
    )
    if result.returncode != 0:
        raise ProbeError(f"send on {ns}/{iface} failed: {result.stderr.strip()}")


# ------------------------------------------------------------------------ batches

#: Probes in flight at once in :func:`run_probes`: enough to overlap the timeouts of
#: probes that must fail, few enough that on a busy 2-core machine a probe that must
#: succeed still gets its answer well within its timeout.
MAX_IN_FLIGHT = 8


@dataclass(frozen=True)
class Probe:
    """One probe as :func:`ping`, :func:`tcp_connect` or :func:`udp_exchange` runs it:
    ``count`` pings (``icmp``), or a TCP/UDP echo exchange with ``port`` (an echo server
    runs in ``listen_ns`` meanwhile, if given; ``icmp`` ignores it)."""

    src_ns: str
    dst_ip: str
    proto: Literal["icmp", "tcp", "udp"]
    port: int = 0
    listen_ns: str | None = None
    timeout: float = 2.0
    count: int = 1

    @property
    def server(self) -> tuple[str, str, int] | None:
        """``(listen_ns, proto, port)`` of the echo server the probe needs, if any."""
        if self.proto == "icmp" or self.listen_ns is None:
            return None
        return (self.listen_ns, self.proto, self.port)


def probe_rounds(batch: Sequence[Probe]) -> list[list[int]]:
    """Indices of ``batch`` split into rounds whose echo servers can all run at once.

    In one round, every TCP/UDP probe of an address and port meets the same server, the
    one a probe run alone would meet (tenants may share addresses, so two namespaces must
    not serve one address and port at once; a probe without ``listen_ns`` meets none), and
    a namespace serves a port over one IP family. Each round keeps the order of ``batch``.
    """
    rounds: list[list[int]] = []
    owners: list[dict[tuple[str, str, int], str]] = []  # per round: (dst_ip, proto, port) -> ns
    families: list[dict[tuple[str, str, int], bool]] = []  # per round: server -> IPv6?
    for i, probe in enumerate(batch):
        address = (probe.dst_ip, probe.proto, probe.port)
        owner, server, v6 = probe.listen_ns or "", probe.server, ":" in probe.dst_ip
        r = 0
        while probe.proto != "icmp" and r < len(rounds):
            if owners[r].get(address, owner) == owner and (
                server is None or families[r].get(server, v6) == v6
            ):
                break
            r += 1
        if r == len(rounds):
            rounds.append([])
            owners.append({})
            families.append({})
        if probe.proto != "icmp":
            owners[r][address] = owner
            if server is not None:
                families[r][server] = v6
        rounds[r].append(i)
    return rounds


def _run_one(probe: Probe) -> bool:
    if probe.proto == "icmp":
        return ping(probe.src_ns, probe.dst_ip, count=probe.count, timeout=probe.timeout)
    return _exchange(probe.proto, probe.src_ns, probe.dst_ip, probe.port, probe.timeout)


@contextlib.contextmanager
def _servers(batch: Sequence[Probe]) -> Iterator[None]:
    """One echo server per distinct :attr:`Probe.server` of ``batch``, for the block."""
    wanted = {p.server: ":" in p.dst_ip for p in batch if p.server is not None}
    procs: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        for (ns, proto, port), v6 in wanted.items():
            argv = [*_PROBE, "serve", proto, str(port), *(["--v6"] if v6 else [])]
            procs.append((f"{proto} listener in {ns}:{port}", spawn_in(ns, argv)))
        for what, proc in procs:  # all start at once; wait for each
            wait_ready(proc, 15.0, what)
        yield
    finally:
        for _, proc in procs:
            stop_process(proc)


def run_probes(batch: Sequence[Probe], *, in_flight: int = MAX_IN_FLIGHT) -> list[bool]:
    """Outcome of each probe of ``batch``, in order, as if each had run alone.

    Per round of :func:`probe_rounds`, the echo servers start together and serve the whole
    round; at most ``in_flight`` probes run at once, each with its own full timeout.
    """
    if in_flight < 1:
        raise ValueError("in_flight must be at least 1")
    results: list[bool] = [False] * len(batch)
    for indices in probe_rounds(batch):
        mine = [batch[i] for i in indices]
        with _servers(mine), ThreadPoolExecutor(max_workers=min(in_flight, len(mine))) as pool:
            for i, ok in zip(indices, pool.map(_run_one, mine), strict=True):
                results[i] = ok
    return results


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


@contextlib.contextmanager
def sniffing(
    captures: Sequence[tuple[str, str, str]], *, settle: float = 2.0, limit: float = 120.0
) -> Iterator[list[list[bytes]]]:
    """Capture on every ``(namespace, iface, bpf)`` of ``captures`` at once.

    The captures start together; the block runs once every one is ready, and ``settle``
    seconds after it ends (so that what it sent has arrived) they stop. Yields one frame
    list per capture, filled on exit. ``limit`` bounds each capture's life. Callers bound
    how many captures run at once (each is a scapy process).
    """
    procs: list[subprocess.Popen[str]] = []
    frames: list[list[bytes]] = [[] for _ in captures]
    try:
        for ns, iface, bpf in captures:
            procs.append(spawn_in(ns, [*_PROBE, "sniff", iface, bpf, f"{limit:g}", "0"]))
        for proc, (ns, iface, _) in zip(procs, captures, strict=False):
            wait_ready(proc, 30.0, f"sniffer on {ns}/{iface}")
        yield frames
        time.sleep(settle)
    finally:
        for proc, got in zip(procs, frames, strict=False):
            _stop_and_collect(proc, got)


def sniff(ns: str, iface: str, bpf: str = "", *, timeout: float = 3.0, count: int = 0) -> list[bytes]:
    """Capture frames matching ``bpf`` on ``iface`` in ``ns`` for up to ``timeout`` s."""
    with Sniffer(ns, iface, bpf, timeout=timeout, count=count) as s:
        pass
    return s.frames
