"""Conntrack NAT in the verifier: hand-written SNAT tables (an inside host behind a router
that translates its source to a public address, and un-translates the replies) run by the
reference engine, the scalable engine and the simulator; what each run says about the
translated packets; what the model refuses."""

from __future__ import annotations

from functools import cache
from ipaddress import IPv4Address

import pytest
from support.agreement import reference_and_wavefront
from support.nat_tables import INSIDE, INSIDE_MAC, INTENT, OUTSIDE, PUBLIC, ROUTER_MAC, SNAT

from segctl.errors import UnsupportedFlowError
from segctl.openflow.ofctl import Flow, mac_int, parse_flows
from segctl.topology.load import load_intent_text
from segctl.topology.network import Network, resolve
from segctl.verifier.fields import rewritable_for
from segctl.verifier.headerspace import CT_EST, CT_NEW, CT_RPL, CT_TRK, HeaderSpace
from segctl.verifier.nat import Binding, NatModel
from segctl.verifier.simulate import Packet, simulate
from segctl.verifier.symbolic import DELIVERED, Engine, Topology


@cache
def _case() -> tuple[Network, dict[str, list[Flow]]]:
    return resolve(load_intent_text(INTENT)), {"s1": parse_flows(SNAT, source="s1")}


def _engine(state: int) -> Engine:
    network, tables = _case()
    hs = HeaderSpace.for_tables(tables)
    return Engine(tables, Topology.from_network(network), hs=hs, ct_states=hs.eq("ct_state", state))


def _ip(text: str) -> int:
    return int(IPv4Address(text))


def test_nat_fields_are_tracked() -> None:
    """Translated addresses and ports get origin tracking (a proof can say what was sent)."""
    _, tables = _case()
    assert {"ip_src", "ip_dst", "tp_src", "tp_dst"} <= set(rewritable_for(tables))
    assert "tp_src" not in rewritable_for({"s1": parse_flows("ip,actions=ct(commit,zone=1,table=1)")})


def test_new_connection_leaves_with_the_public_source() -> None:
    engine = _engine(CT_TRK | CT_NEW)
    hs = engine.hs
    out = [o for o in engine.run([("s1", 1)]).delivered() if o.disposition.endpoint == "t/out1"]
    assert out, "the inside host's new connections reach the outside"
    relation = hs.union(o.relation for o in out)
    final = hs.final(relation)
    assert hs.implies(final, hs.eq("ip_src", _ip(PUBLIC)))  # every packet leaves translated
    assert hs.implies(hs.sent(relation), hs.oeq("ip_src", _ip(INSIDE)))  # as sent: the private one
    tcp = relation & hs.oeq("ip_proto", 6) & hs.oeq("tp_src", 40000)
    assert not hs.is_empty(tcp & hs.eq("tp_src", 1234))  # conntrack may pick another source port


def test_outside_cannot_open_a_connection_to_the_public_address() -> None:
    engine = _engine(CT_TRK | CT_NEW)
    assert not engine.run([("s1", 2)]).delivered()


def test_replies_are_translated_back_to_the_committed_source() -> None:
    """A reply to the public address gets back the source the committing rule matched."""
    engine = _engine(CT_TRK | CT_EST | CT_RPL)
    hs = engine.hs
    back = engine.run([("s1", 2)]).delivered()
    assert [o.disposition.endpoint for o in back] == ["t/in1"]
    relation = back[0].relation
    assert hs.implies(hs.sent(relation), hs.oeq("ip_dst", _ip(PUBLIC)))
    assert hs.implies(hs.final(relation), hs.eq("ip_dst", _ip(INSIDE)))


def test_an_open_committing_rule_restores_any_address() -> None:
    """Where the committing rule does not pin the source, a reply may go anywhere: the model
    over-approximates rather than guess."""
    loose = SNAT.replace(f",nw_src={INSIDE}", "")
    network = _case()[0]
    tables = {"s1": parse_flows(loose, source="s1")}
    hs = HeaderSpace.for_tables(tables)
    states = hs.eq("ct_state", CT_TRK | CT_EST | CT_RPL)
    back = (
        Engine(tables, Topology.from_network(network), hs=hs, ct_states=states).run([("s1", 2)]).delivered()
    )
    final = hs.final(hs.union(o.relation for o in back))
    assert not hs.is_empty(final & hs.eq("ip_dst", _ip("10.9.0.77")))


def test_simulator_translates_the_first_packet() -> None:
    network, tables = _case()
    topo = Topology.from_network(network)
    packet = Packet(
        in_port=1, eth_src=mac_int(INSIDE_MAC), eth_dst=mac_int(ROUTER_MAC), eth_type=0x0800, ip_proto=6,
        ip_src=_ip(INSIDE), ip_dst=_ip(OUTSIDE), nw_ttl=64, tp_src=40000, tp_dst=443,
    )  # fmt: skip
    [fate] = simulate(tables, topo.links, topo.edges, "s1", packet)
    assert (fate.kind, fate.endpoint) == (DELIVERED, "t/out1")
    assert (fate.packet.ip_src, fate.packet.tp_src, fate.packet.ip_dst) == (_ip(PUBLIC), 40000, _ip(OUTSIDE))
    assert fate.commits == (("s1", 0, 9),)


def test_both_engines_agree_on_nat_tables() -> None:
    reference, wavefront = reference_and_wavefront(*_case())
    assert reference == wavefront


def test_the_proof_flags_the_translation() -> None:
    """segctl's intents translate nothing: NAT found in switch tables breaks conformance."""
    from segctl.verifier.verify import verify

    report = verify(*_case())
    conformance = next(p for p in report.properties if p.id == "conformance")
    messages = [c.message for c in conformance.counterexamples]
    assert any("t/in1 -> t/out1: IPv4 addresses are rewritten" in m for m in messages), messages


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ip,actions=ct(commit,zone=1,nat(src=10.0.0.1)),output:2", "without table="),
        ("ip,ct_state=+snat+trk,actions=drop\nip,actions=ct(zone=1,nat,table=1)", "snat/dnat"),
    ],
)
def test_what_the_model_refuses(text: str, words: str) -> None:
    with pytest.raises(UnsupportedFlowError, match=words):
        NatModel.for_tables({"s1": parse_flows(text, source="s1")})


def test_bindings_per_zone() -> None:
    model = NatModel.for_tables(_case()[1])
    [binding] = model.bindings[9]
    assert binding.nat is not None and (binding.nat.kind, binding.nat.low) == ("src", _ip(PUBLIC))
    assert binding.original == (_ip(INSIDE), 0xFFFFFFFF)  # the committing rule's nw_src
    plain = NatModel.for_tables(
        {"s1": parse_flows("ip,actions=ct(commit,zone=3,table=1)\nip,actions=ct(zone=3,nat,table=1)")}
    )
    assert plain.bindings == {3: frozenset({Binding(None)})}  # a commit without translation
