"""An external peer's prefixes (``cidr`` minus ``except``) are the ones the former quadratic
split gave (each cut split every part it lies in): the same disjoint prefixes, sorted."""

from __future__ import annotations

from ipaddress import IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st

from segctl.topology.schema import ANY_IPV4, MAX_EXCEPT, external_prefixes


def _split(cidr: IPv4Network | None, excluded: list[IPv4Network]) -> list[IPv4Network]:
    """The former algorithm, the reference."""
    parts = [cidr or ANY_IPV4]
    for cut in excluded:
        kept: list[IPv4Network] = []
        for part in parts:
            if part.subnet_of(cut):
                continue
            kept.extend(part.address_exclude(cut) if cut.subnet_of(part) else [part])
        parts = kept
    return sorted(parts)


@st.composite
def _prefix(draw: st.DrawFn, near: IPv4Network | None = None) -> IPv4Network:
    """A prefix up to /26, or with ``near``: mostly one inside it, sometimes one around it
    or anywhere."""
    kind = draw(st.integers(0, 7)) if near is not None else 7
    if near is not None and kind < 6:
        shortest = near.prefixlen - 1 if kind == 0 else near.prefixlen + 1
        length = draw(st.integers(min(max(0, shortest), 32), 32))
        address = int(near.network_address) + draw(st.integers(0, near.num_addresses - 1))
    else:
        length = draw(st.integers(0, 26))
        address = draw(st.integers(0, 2**32 - 1))
    return IPv4Network((address, length), strict=False)


@st.composite
def _peers(draw: st.DrawFn) -> tuple[IPv4Network | None, list[IPv4Network]]:
    cidr = draw(st.none() | _prefix())
    cuts = draw(st.lists(_prefix(cidr or ANY_IPV4), max_size=MAX_EXCEPT))
    return cidr, cuts


@settings(max_examples=400, deadline=None)
@given(_peers())
def test_prefixes_are_the_former_split(peer: tuple[IPv4Network | None, list[IPv4Network]]) -> None:
    cidr, cuts = peer
    assert external_prefixes(cidr, cuts) == _split(cidr, cuts)


def test_examples() -> None:
    net = IPv4Network
    assert external_prefixes(None, []) == [ANY_IPV4]
    assert external_prefixes(net("10.0.0.0/8"), [net("10.0.0.0/8")]) == []
    assert external_prefixes(net("10.0.0.0/8"), [net("0.0.0.0/0")]) == []
    assert external_prefixes(net("10.0.0.0/30"), [net("10.0.0.1/32"), net("10.0.0.1/32")]) == [
        net("10.0.0.0/32"),
        net("10.0.0.2/31"),
    ]
    assert external_prefixes(None, [net("10.0.0.0/8"), net("192.168.0.0/16")]) == _split(
        None, [net("10.0.0.0/8"), net("192.168.0.0/16")]
    )
