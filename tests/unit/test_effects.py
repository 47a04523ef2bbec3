"""Effect views (segctl/verifier/effects.py): a table as a function of the packets' headers."""

from __future__ import annotations

from segctl.openflow.ofctl import IN_PORT, Output, parse_flows
from segctl.verifier.effects import SYMBOLIC_PORT, EffectView, effect_view
from segctl.verifier.headerspace import HeaderSpace
from segctl.verifier.symtables import Finding, entry_key, index_tables
from segctl.verifier.wavefront import WAVEFRONT_ORDER

MACS = [f"02:00:00:00:00:{i:02x}" for i in range(1, 11)]
# An ARP responder's shape: one rule per port, each pinning the port and the MAC, all with
# the same action list; plus a forwarding rule per MAC with its own port.
RESPONDER = "\n".join(
    [
        *(
            f"table=0,priority=200,in_port={i},dl_dst={mac},arp,arp_op=2 actions=output:in_port"
            for i, mac in enumerate(MACS, start=1)
        ),
        *(f"table=0,priority=100,dl_dst={mac} actions=output:{i}" for i, mac in enumerate(MACS, start=1)),
        "table=0,priority=0 actions=drop",
    ]
)


def _view(port: int) -> tuple[HeaderSpace, list[tuple[object, ...]], EffectView]:
    hs = HeaderSpace(WAVEFRONT_ORDER)
    found: list[Finding] = []
    table = index_tables(hs, "s1", parse_flows(RESPONDER), found)[0]
    assert found == []
    key = (SYMBOLIC_PORT, *entry_key(0)[1:]) if port == SYMBOLIC_PORT else entry_key(port)
    view = effect_view(hs, table, key)
    return hs, [e.steps for e in view.effects], view


def test_output_in_port_keeps_one_effect_per_rule_when_the_packets_carry_their_port() -> None:
    hs, steps, view = _view(SYMBOLIC_PORT)
    back = [e for e in view.effects if e.steps == (Output(IN_PORT),)]
    assert len(back) == len(MACS)
    # each region is its rule's own: one port, one MAC
    for i, effect in enumerate(back, start=1):
        assert hs.values(effect.region, "in_port", 100) == [i]
        assert len(hs.values(effect.region, "eth_dst", 100) or []) == 1
    # the other action lists are one effect each, as before
    others = [s for s in steps if s != (Output(IN_PORT),)]
    assert len(others) == len(set(others))


def test_output_in_port_is_one_effect_at_a_known_port() -> None:
    _, steps, _ = _view(3)
    assert steps.count((Output(IN_PORT),)) == 1
