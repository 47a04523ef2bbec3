"""The policy log: one JSON line per logged decision a switch sent to the controller.

A policy or shared service with ``log: true`` (and the default deny with
``logging.default_deny``) sends the head of each packet it decides to the controller,
under the switch's controller meter (``logging.pps``), so a flood cannot load the
controller. The packet-in carries the cookie of the rule that decided
(:mod:`segctl.openflow.cookies`); :func:`log_record` turns it and the packet's headers
into a record (pure), :class:`PolicyLogWriter` appends records as JSON lines.

The packet bytes come from the network: :func:`packet_facts` reads at most the
Ethernet, one 802.1Q tag, IPv4 and the TCP/UDP/ICMP header, checks every length, and
answers ``None`` for anything else; it never raises on what it is given.

>>> facts = packet_facts(bytes.fromhex(
...     "02000000000202000000000108004500001c00010000400162990a030210"
...     "0a0302320800f7fd00010001"))
>>> facts["proto"], facts["src"], facts["dst"], facts["icmp_type"]
('icmp', '10.3.2.16', '10.3.2.50', 8)
"""

from __future__ import annotations

import json
import os
import threading
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from segctl.controller.policy_counters import decision_of_cookie, tier_of_cookie
from segctl.topology.network import Network

__all__ = ["MAX_LINE", "PolicyLogWriter", "log_record", "packet_facts"]

#: A record longer than this is not written (it cannot be, from the fields it has).
MAX_LINE = 2048
_PROTOS = {6: "tcp", 17: "udp", 1: "icmp"}


def packet_facts(data: bytes) -> dict[str, Any] | None:
    """The 5-tuple (and ICMP type/code) of an Ethernet frame's IPv4 packet, or None."""
    if len(data) < 14:
        return None
    ethertype, offset = int.from_bytes(data[12:14], "big"), 14
    vlan = None
    if ethertype == 0x8100 and len(data) >= 18:
        vlan = int.from_bytes(data[14:16], "big") & 0x0FFF
        ethertype, offset = int.from_bytes(data[16:18], "big"), 18
    if ethertype != 0x0800 or len(data) < offset + 20 or data[offset] >> 4 != 4:
        return None
    ihl = (data[offset] & 0x0F) * 4
    if ihl < 20 or len(data) < offset + ihl:
        return None
    number = data[offset + 9]
    facts: dict[str, Any] = {
        "proto": _PROTOS.get(number, str(number)),
        "src": str(IPv4Address(data[offset + 12 : offset + 16])),
        "dst": str(IPv4Address(data[offset + 16 : offset + 20])),
        "vlan": vlan,
    }
    l4 = data[offset + ihl :]
    if number in (6, 17) and len(l4) >= 4:
        facts["sport"] = int.from_bytes(l4[0:2], "big")
        facts["dport"] = int.from_bytes(l4[2:4], "big")
    elif number == 1 and len(l4) >= 2:
        facts["icmp_type"], facts["icmp_code"] = l4[0], l4[1]
    return facts


def log_record(
    network: Network | None, switch: str, cookie: int, in_port: int | None, data: bytes, now: float
) -> dict[str, Any]:
    """One log record: when, where, which decision (tenant, policy, verdict) and the packet."""
    decision = decision_of_cookie(network, cookie)
    tenant, policy, verdict = decision if decision is not None else ("", f"cookie {cookie:#x}", "unknown")
    record: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
        "switch": switch,
        "port": in_port,
        "tenant": tenant,
        "policy": policy,
        "tier": tier_of_cookie(cookie),
        "verdict": verdict,
    }
    facts = packet_facts(data)
    if facts is None:
        record["packet"] = "not IPv4"
    else:
        record.update(facts)
    return record


class PolicyLogWriter:
    """Appends records to a file as JSON lines (one write per line; safe across threads)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._lock = threading.Lock()
        self.written = 0

    def write(self, record: dict[str, Any]) -> bool:
        """Append ``record``; False when it is too long or the writer is closed (a packet-in
        that arrives while the controller stops)."""
        line = json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"
        if len(line) > MAX_LINE:
            return False
        with self._lock:
            if self._fd < 0:
                return False
            os.write(self._fd, line.encode())
            self.written += 1
        return True

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
