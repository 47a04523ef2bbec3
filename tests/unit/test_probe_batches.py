"""How :func:`segctl.testbed.probes.run_probes` splits a batch into rounds (no namespaces needed)."""

from __future__ import annotations

import pytest

from segctl.testbed.probes import Probe, probe_rounds, run_probes


def _tcp(src: str, dst_ip: str, listen_ns: str | None, port: int = 7001) -> Probe:
    return Probe(src, dst_ip, "tcp", port, listen_ns=listen_ns)


def test_probes_sharing_one_server_run_in_one_round() -> None:
    batch = [_tcp("a", "10.0.0.2", "b"), _tcp("c", "10.0.0.2", "b"), Probe("a", "10.0.0.9", "icmp")]
    assert probe_rounds(batch) == [[0, 1, 2]]


def test_one_address_served_by_two_namespaces_waits_for_a_later_round() -> None:
    """Tenants may share addresses: a probe must never meet another namespace's server."""
    batch = [
        _tcp("a", "10.0.0.2", "b"),
        _tcp("a", "10.0.0.2", "x"),  # same address and port, another namespace
        _tcp("a", "10.0.0.2", None),  # no server at all
        _tcp("a", "10.0.0.2", "x", port=7002),  # another port: no clash
        Probe("a", "10.0.0.2", "udp", 7001, listen_ns="x"),  # another protocol: no clash
    ]
    assert probe_rounds(batch) == [[0, 3, 4], [1], [2]]


def test_one_namespace_serves_a_port_over_one_family_per_round() -> None:
    batch = [_tcp("a", "10.0.0.2", "b"), _tcp("a", "fd00::2", "b"), _tcp("c", "fd00::2", "b")]
    assert probe_rounds(batch) == [[0], [1, 2]]


def test_pings_never_wait() -> None:
    batch = [Probe("a", "10.0.0.2", "icmp", listen_ns="b"), Probe("a", "10.0.0.2", "icmp")]
    assert [p.server for p in batch] == [None, None]
    assert probe_rounds(batch) == [[0, 1]]


def test_empty_batch_and_bad_bound() -> None:
    assert probe_rounds([]) == []
    assert run_probes([]) == []
    with pytest.raises(ValueError, match="in_flight"):
        run_probes([Probe("a", "10.0.0.2", "icmp")], in_flight=0)
