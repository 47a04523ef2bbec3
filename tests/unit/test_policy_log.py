"""Policy logging: what the compiler adds, what the verifier makes of it, and the log itself.

The real packets are in ``tests/ovs/test_controller_ovs.py`` (one line per logged packet
under the controller meter's rate).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from segctl.cli import main
from segctl.controller.policy_log import MAX_LINE, PolicyLogWriter, log_record, packet_facts
from segctl.flows.compiler import compile_network
from segctl.flows.pipeline import CONTROLLER_METER, LOG_MAX_LEN, POLICY_DST, POLICY_SRC
from segctl.openflow.cookies import Kind, decode_cookie, make_cookie
from segctl.openflow.ofctl import Conjunction, Controller, parse_flows, punts_to_controller
from segctl.topology.load import intent_from_document
from segctl.topology.network import resolve
from segctl.verifier.verify import verify

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reusable-sets.yaml"


def _doc() -> dict[str, Any]:
    return dict(yaml.safe_load(EXAMPLE.read_text()))


def _programs(d: dict[str, Any]) -> Any:
    return compile_network(resolve(intent_from_document(d)))


def _logged(programs: Any) -> list[tuple[str, int, int, Kind]]:
    """(switch, table, priority, kind) of every rule that copies to the controller."""
    out = []
    for name, prog in programs.items():
        for r in prog.rules:
            if any(isinstance(a, Controller) for a in r.actions):
                out.append((name, r.table, r.priority, decode_cookie(r.cookie)[1]))
    return out


def test_a_logged_policy_copies_its_decision_and_nothing_else() -> None:
    programs = _programs(_doc())
    logged = _logged(programs)
    # api-to-db decides once, on s2 (api1's switch); the default deny on both switches.
    # api-to-db meets no other grant's packets, so its packed rank is the top (3000)
    src = POLICY_SRC.id
    assert sorted(logged) == [("s1", src, 0, Kind.PIPELINE), ("s2", src, 0, Kind.PIPELINE),
                              ("s2", src, 3000, Kind.POLICY)]  # fmt: skip
    for prog in programs.values():
        for r in prog.rules:
            if any(isinstance(a, Controller) for a in r.actions):
                assert r.table == POLICY_SRC.id and not any(isinstance(a, Conjunction) for a in r.actions)
                assert r.actions[0] == Controller(max_len=LOG_MAX_LEN)
        meters = {m.id: m for m in prog.meters}
        assert meters[CONTROLLER_METER].rate == 50 and meters[CONTROLLER_METER].unit == "pktps"
        assert "meter=controller,pktps,stats,bands=type=drop,rate=50" in prog.meters_text()


def test_no_logging_no_controller_rules_and_no_meter() -> None:
    d = _doc()
    del d["logging"]
    for t in d["tenants"]:
        for p in t.get("policies", []):
            p.pop("log", None)
    programs = _programs(d)
    assert _logged(programs) == []
    assert all(m.id != CONTROLLER_METER for p in programs.values() for m in p.meters)


def test_a_logged_conjunction_logs_on_its_conj_id_rule() -> None:
    from segctl.controller.intake import intent_document
    from segctl.topology.synthetic import policy_pair

    d = intent_document(policy_pair(4, 4, 5))
    d["tenants"][0]["policies"][0]["log"] = True
    logged = [(t, k) for _, t, _, k in _logged(_programs(d))]
    assert logged == [(POLICY_SRC.id, Kind.POLICY)]  # one conj_id rule, on leafA; not policy_dst


def test_logging_changes_no_verdict_on_either_engine() -> None:
    def report(d: dict[str, Any], engine: str) -> Any:
        network = resolve(intent_from_document(d))
        tables = {n: parse_flows(p.flows_text(), source=n) for n, p in compile_network(network).items()}
        r = verify(network, tables, engine=engine)
        return [(p.id, dict(p.counts), p.violation_count) for p in r.properties]

    quiet = _doc()
    del quiet["logging"]
    for t in quiet["tenants"]:
        for p in t.get("policies", []):
            p.pop("log", None)
    logged = report(_doc(), "wavefront")
    assert logged == report(_doc(), "reference") == report(quiet, "wavefront")
    assert all(v == 0 for *_, v in logged)


def test_a_controller_copy_is_not_a_punt() -> None:
    copy_rule, punt = parse_flows(
        "table=30,priority=5,ip,actions=CONTROLLER:128,goto_table:40\ntable=30,priority=4,ip,actions=CONTROLLER:128\n"
    )
    assert not punts_to_controller(copy_rule.actions) and punts_to_controller(punt.actions)


def _frame(hexstr: str) -> bytes:
    return bytes.fromhex(hexstr)


def test_packet_facts_read_tcp_udp_icmp_and_a_vlan_tag() -> None:
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Dot1Q, Ether

    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    tcp = packet_facts(bytes(eth / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=4000, dport=5432)))
    assert tcp == {
        "proto": "tcp",
        "src": "10.0.0.1",
        "dst": "10.0.0.2",
        "vlan": None,
        "sport": 4000,
        "dport": 5432,
    }
    udp = packet_facts(
        bytes(eth / Dot1Q(vlan=101) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=53))
    )
    assert udp is not None and udp["vlan"] == 101 and udp["dport"] == 53
    icmp = packet_facts(bytes(eth / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=13, code=0)))
    assert icmp is not None and (icmp["icmp_type"], icmp["icmp_code"]) == (13, 0)
    assert packet_facts(b"") is None and packet_facts(bytes(eth)[:13]) is None
    assert packet_facts(bytes(eth / IP(src="10.0.0.1", dst="10.0.0.2") / TCP())[:30]) is None  # cut IP header


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_packet_facts_never_raise_on_any_bytes(data: bytes) -> None:
    facts = packet_facts(data)
    assert facts is None or facts["src"].count(".") == 3


def test_a_record_names_the_decision_by_its_cookie() -> None:
    network = resolve(intent_from_document(_doc()))
    shop = network.tenant("shop").id
    policy = make_cookie(POLICY_SRC.id, Kind.POLICY, shop, 1)
    rec = log_record(network, "s2", policy, 12, b"", 0.0)
    assert (rec["tenant"], rec["policy"], rec["verdict"], rec["tier"]) == (
        "shop",
        "api-to-db",
        "allow",
        "tenant",
    )
    assert rec["time"] == "1970-01-01T00:00:00.000Z" and rec["packet"] == "not IPv4"
    deny = log_record(network, "s1", make_cookie(POLICY_SRC.id, Kind.PIPELINE, 0, 0), 11, b"", 0.0)
    assert (deny["tenant"], deny["policy"], deny["verdict"]) == ("", "default-deny", "deny")
    stale = log_record(network, "s1", make_cookie(POLICY_DST.id, Kind.POLICY, shop, 9), 11, b"", 0.0)
    assert stale["verdict"] == "unknown" and stale["policy"].startswith("cookie 0x")


def test_writer_appends_json_lines(tmp_path: Path) -> None:
    writer = PolicyLogWriter(tmp_path / "sub" / "policy.log")
    assert writer.write({"a": 1}) and writer.write({"b": "x"})
    assert not writer.write({"huge": "x" * MAX_LINE})
    writer.close()
    assert not writer.write({"late": 1})  # a packet-in while the controller stops: not written
    writer.close()  # closing twice is harmless (the controller's stop hook may run after a test's)
    lines = (tmp_path / "sub" / "policy.log").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"a": 1}, {"b": "x"}]


def _log_file(tmp_path: Path) -> Path:
    network = resolve(intent_from_document(_doc()))
    shop = network.tenant("shop").id
    path = tmp_path / "policy.log"
    writer = PolicyLogWriter(path)
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    pkt = bytes(Ether() / IP(src="10.3.2.10", dst="10.3.2.50") / TCP(sport=40000, dport=5432))
    writer.write(log_record(network, "s2", make_cookie(POLICY_SRC.id, Kind.POLICY, shop, 1), 12, pkt, 0.0))
    writer.write(log_record(network, "s1", make_cookie(POLICY_SRC.id, Kind.PIPELINE, 0, 0), 11, pkt, 1.0))
    writer.close()
    with path.open("a") as f:
        f.write("not json\n[1, 2]\n")
    return path


def test_logs_prints_filters_and_skips_garbage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _log_file(tmp_path)
    assert main(["logs", str(path)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2
    assert "s2:12  shop/api-to-db  ALLOW  tcp 10.3.2.10:40000 -> 10.3.2.50:5432" in lines[0]
    assert "default-deny  DENY" in lines[1]
    assert "2 line(s)" in err and "Traceback" not in err
    assert main(["logs", str(path), "--verdict", "deny", "-o", "json"]) == 0
    out, _ = capsys.readouterr()
    assert [json.loads(line)["policy"] for line in out.splitlines()] == ["default-deny"]
    assert main(["logs", str(tmp_path / "missing.log")]) == 2


def test_logs_follow_prints_lines_appended_later(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.log"
    path.write_text("")
    records = [{"time": "t", "switch": "s1", "port": 1, "tenant": "a", "policy": "p", "verdict": "allow"}] * 3

    def append() -> None:
        for rec in records:
            time.sleep(0.1)
            with path.open("a") as f:
                f.write(json.dumps(rec))
                f.flush()
                time.sleep(0.05)  # a line written in two parts
                f.write("\n")

    writer = threading.Thread(target=append)
    writer.start()
    try:
        assert main(["logs", str(path), "--follow", "--limit", "3", "-o", "json"]) == 0
    finally:
        writer.join()
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == records


def test_the_intent_refuses_bad_logging_settings() -> None:
    d = copy.deepcopy(_doc())
    d["logging"] = {"pps": 0, "colour": "red"}
    with pytest.raises(Exception) as err:
        intent_from_document(d)
    text = str(err.value)
    assert "logging.pps" in text and "logging.colour" in text


def test_show_says_what_is_logged(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(EXAMPLE)]) == 0
    text = capsys.readouterr().out
    assert (
        "Logging: shop/api-to-db, the default deny; at most 50 packets/s per switch to the controller" in text
    )
    assert main(["show", str(EXAMPLE), "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    shop = next(t for t in doc["tenants"] if t["name"] == "shop")
    assert {p["name"]: p["log"] for p in shop["policies"]} == {"fe-to-api": False, "api-to-db": True}
    assert [s["log"] for s in doc["shared_services"]] == [False]
    assert main(["show", str(EXAMPLE.parent / "leaf-spine.yaml")]) == 0
    assert "Logging:" not in capsys.readouterr().out


def test_trace_says_where_a_decision_is_logged(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["trace", str(EXAMPLE), "--proto", "tcp", "--dport", "5432"]
    assert main([*args, "--from", "shop/api1", "--to", "shop/pg1"]) == 0
    out = capsys.readouterr().out
    assert "logged: sent to the controller at s2 table 30 (policy shop/api-to-db)" in out
    assert main([*args, "--from", "shop/fe1", "--to", "shop/pg1", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    traces = doc if isinstance(doc, list) else doc.get("traces", [doc])
    assert traces[0]["logged"] == [{"switch": "s1", "table": 30, "by": "policy_src default"}]
    assert (
        main(
            [
                "trace",
                str(EXAMPLE),
                "--proto",
                "tcp",
                "--dport",
                "80",
                "--from",
                "shop/fe1",
                "--to",
                "shop/api1",
            ]
        )
        == 0
    )
    assert "logged:" not in capsys.readouterr().out  # fe-to-api is not logged
