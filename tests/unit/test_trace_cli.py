"""``segctl trace``: hop-by-hop explanation in intent terms, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.intents import EDGE_CASES
from support.reports import write_leaf_spine

from segctl.cli import main
from segctl.flows.compiler import compile_network
from segctl.topology.network import load_network

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leaf-spine.yaml"


@pytest.fixture(scope="module")
def flows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("flows")
    for name, prog in compile_network(load_network(EXAMPLE)).items():
        (out / f"{name}.flows").write_text(prog.flows_text())
    return out


def _trace(capsys: pytest.CaptureFixture[str], flows_dir: Path, *args: str) -> tuple[int, str, str]:
    code = main(["trace", str(EXAMPLE), "--flows", str(flows_dir), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_allowed_policy_traffic_names_the_policy(capsys: pytest.CaptureFixture[str], flows_dir: Path) -> None:
    code, out, _ = _trace(capsys, flows_dir, "--from", "acme/web1", "--to", "acme/app1", "--dport", "8080")
    assert code == 0
    assert "intent: allowed by policy web-to-app" in out
    assert "policy acme/web-to-app" in out  # a hop names the policy object behind its cookie
    assert "spoof-guard acme/web1" in out
    assert "=> delivered to acme/app1 (leaf2:11)" in out


def test_denied_port_names_the_guard(capsys: pytest.CaptureFixture[str], flows_dir: Path) -> None:
    code, out, _ = _trace(capsys, flows_dir, "--from", "acme/web1", "--to", "acme/app1", "--dport", "22")
    assert code == 0
    assert "intent: denied by the intent" in out
    assert "delivered" not in out
    assert "=> dropped at leaf1 table 30 by policy_src default" in out


def test_cross_tenant_by_address_and_json(capsys: pytest.CaptureFixture[str], flows_dir: Path) -> None:
    code, out, _ = _trace(
        capsys,
        flows_dir,
        "--from",
        "globex/gweb1",
        "--to",
        "10.9.0.53",
        "--proto",
        "udp",
        "--dport",
        "53",
        "-o",
        "json",
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["to"] == "infra/dns1" and doc["intent"]["verdict"] == "allowed"
    assert doc["intent"]["grants"][0]["kind"] == "shared-service"
    assert [f["endpoint"] for f in doc["fates"] if f["kind"] == "delivered"] == ["infra/dns1"]
    assert any("shared-service dns" in h["intent"] for f in doc["fates"] for h in f["trace"])


def test_states_set_by_hand_are_passed_and_not_judged(
    capsys: pytest.CaptureFixture[str], flows_dir: Path
) -> None:
    # app1 -> web1 is not granted as a new connection, but a packet in state est passes
    code, out, _ = _trace(
        capsys,
        flows_dir,
        "--from",
        "acme/app1",
        "--to",
        "acme/web1",
        "--sport",
        "8080",
        "--dport",
        "40000",
        "--ct",
        "trk,est,rpl",
        "--ct",
        "trk,est,rpl",
    )
    assert code == 0 and "intent: denied" in out
    assert "[ct -> trk,est,rpl]" in out and "=> delivered to acme/web1" in out
    assert "not judged: --ct set conntrack states by hand" in out and "MISMATCH" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "nobody", "--to", "acme/web1"], "endpoint nobody: no such endpoint"),
        (["--from", "acme/web1", "--to", "acme/app1", "--dport", "70000"], "70000: not a port number"),
        (["--from", "acme/web1", "--to", "acme/app1", "--proto", "sctpx"], "sctpx: not tcp, udp, icmp"),
        (["--from", "acme/web1", "--to", "fe80::1"], "--from: acme/web1 has no ipv6 address"),
        (
            ["--from", "acme/web1", "--to", "acme/app1", "--proto", "icmp", "--dport", "22"],
            "--dport: icmp has no ports; use --icmp-type/--icmp-code",
        ),
        (
            ["--from", "acme/web1", "--to", "acme/app1", "--proto", "47", "--sport", "1"],
            "--sport: 47 has no ports",
        ),
        (
            ["--from", "acme/web1", "--to", "acme/app1", "--icmp-type", "0"],
            "--icmp-type: only applies to --proto icmp",
        ),
        (
            ["--from", "acme/web1", "--to", "acme/app1", "--proto", "icmp", "--icmp-code", "256"],
            "256: not an icmp code",
        ),
        (
            ["--from", "acme/web1", "--to", "acme/app1", "--reply", "--ct", "trk,est"],
            "--reply sets the conntrack",
        ),
        (
            ["--from", "acme/web1", "--to", "acme/app1", "--reply", "--proto", "icmp", "--icmp-type", "3"],
            "3: not an icmp query, so it has no reply",
        ),
        (  # address mask: OVS conntrack does not track it, nor does the verifier
            ["--from", "acme/web1", "--to", "acme/app1", "--reply", "--proto", "icmp", "--icmp-type", "17"],
            "17: not an icmp query, so it has no reply",
        ),
        (["--from", "acme/web1", "--to", "10.1.2.99", "--reply"], "--reply needs an endpoint to reply"),
    ],
)
def test_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], flows_dir: Path, args: list[str], message: str
) -> None:
    code, _, err = _trace(capsys, flows_dir, *args)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_trace_without_flows_compiles_in_memory(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trace", str(EXAMPLE), "--from", "acme/web1", "--to", "acme/app1", "--dport", "8080"])
    assert code == 0
    assert "=> delivered to acme/app1 (leaf2:11)" in capsys.readouterr().out


# ---------------------------------------------------------------------------- scripting


def test_denied_but_delivered_is_a_mismatch_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leak = write_leaf_spine(tmp_path / "leak", leak=True)  # gweb1's IPv4 straight to acme/web1's port
    args = ["--flows", str(leak), "--from", "globex/gweb1", "--to", "acme/web1", "--proto", "udp"]
    assert main(["trace", str(EXAMPLE), *args]) == 1
    out = capsys.readouterr().out
    assert "intent: denied by the intent" in out
    assert (
        out.splitlines()[-1]
        == "MISMATCH: the intent denies this packet but the tables deliver it to acme/web1"
    )
    assert main(["trace", str(EXAMPLE), *args, "-o", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["match"] is False and "deliver it to acme/web1" in doc["mismatch"]


def test_allowed_but_dropped_is_a_mismatch_exit_1(
    tmp_path: Path, flows_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "flows"
    out_dir.mkdir()
    for f in flows_dir.glob("*.flows"):
        lines = f.read_text().splitlines(keepends=True)
        keep = [line for line in lines if not (f.stem == "leaf1" and "tcp_dst=8080" in line)]
        (out_dir / f.name).write_text("".join(keep))
    code, out, _ = _trace(capsys, out_dir, "--from", "acme/web1", "--to", "acme/app1", "--dport", "8080")
    assert code == 1 and "intent: allowed by policy web-to-app" in out
    assert (
        "MISMATCH: the intent allows this packet but the tables do not deliver it (dropped at leaf1 table 30"
        in out
    )


def test_agreement_says_so_and_exits_0(capsys: pytest.CaptureFixture[str], flows_dir: Path) -> None:
    code, out, _ = _trace(capsys, flows_dir, "--from", "acme/web1", "--to", "acme/app1", "--dport", "22")
    assert code == 0 and out.splitlines()[-1] == "ok: the tables agree with the intent"
    code, out, _ = _trace(
        capsys, flows_dir, "--from", "acme/web1", "--to", "acme/app1", "--dport", "22", "-o", "json"
    )
    assert json.loads(out)["match"] is True


def test_reply_of_an_allowed_connection(capsys: pytest.CaptureFixture[str], flows_dir: Path) -> None:
    code, out, _ = _trace(
        capsys, flows_dir, "--from", "acme/web1", "--to", "acme/app1", "--dport", "8080", "--reply"
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(
        "reply acme/app1 (10.1.2.10) -> acme/web1 (10.1.1.10) tcp/40000 (reply from port 8080)"
    )
    assert "intent: allowed reply of a connection allowed by policy web-to-app (stateful)" in out
    assert "conntrack: the request was committed on leaf1 zone 1, leaf2 zone 1" in out
    assert "[ct -> trk,est,rpl]" in out and "[ct -> trk,new]" not in out
    assert "=> delivered to acme/web1 (leaf1:10)" in out


def test_reply_of_a_shared_service_across_zones(capsys: pytest.CaptureFixture[str], flows_dir: Path) -> None:
    code, out, _ = _trace(
        capsys, flows_dir, "--from", "globex/gweb1", "--to", "10.9.0.53", "--proto", "udp", "--dport", "53",
        "--reply", "-o", "json",
    )  # fmt: skip
    doc = json.loads(out)
    assert code == 0 and doc["reply"] is True and doc["match"] is True
    assert doc["packet"]["sender"] == "infra/dns1" and doc["packet"]["sport"] == 53
    assert {"switch": "leaf3", "zone": 3} in doc["committed"]  # the provider's zone
    assert [f["endpoint"] for f in doc["fates"] if f["kind"] == "delivered"] == ["globex/gweb1"]


def test_reply_of_a_denied_connection_is_dropped(capsys: pytest.CaptureFixture[str], flows_dir: Path) -> None:
    code, out, _ = _trace(
        capsys, flows_dir, "--from", "acme/app1", "--to", "acme/web1", "--dport", "8080", "--reply"
    )
    assert code == 0
    assert "so it has no reply" in out and "the request was committed nowhere" in out
    assert "delivered" not in out


def test_reply_of_a_stateless_policy_is_denied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    intent = tmp_path / "edge.yaml"
    intent.write_text(yaml.safe_dump(EDGE_CASES))
    args = ["--from", "lab/a", "--to", "lab/s", "--proto", "udp", "--dport", "5353"]
    assert main(["trace", str(intent), *args]) == 0
    assert "intent: allowed by policy a-to-s" in capsys.readouterr().out
    assert main(["trace", str(intent), *args, "--reply"]) == 0
    out = capsys.readouterr().out
    assert "denied: the connection is allowed by policy a-to-s, but stateless: no replies" in out
    assert "delivered" not in out and "ok: the tables agree" in out


def test_proto_any_traces_tcp_udp_and_icmp(capsys: pytest.CaptureFixture[str], flows_dir: Path) -> None:
    code, out, _ = _trace(capsys, flows_dir, "--from", "acme/web1", "--to", "acme/app1", "--proto", "any",
                          "--dport", "8080", "-o", "json")  # fmt: skip
    doc = json.loads(out)
    assert code == 0 and doc["match"] is True
    got = [(t["packet"]["proto"], t["intent"]["verdict"]) for t in doc["traces"]]
    assert got == [("tcp", "allowed"), ("udp", "denied"), ("icmp", "allowed")]  # web-to-app: tcp/8080, icmp
    code, out, _ = _trace(capsys, flows_dir, "--from", "acme/web1", "--to", "acme/app1", "--proto", "ANY")
    assert code == 0 and [line for line in out.splitlines() if line.startswith("==")] == [
        "== tcp ==", "== udp ==", "== icmp ==",
    ]  # fmt: skip


def test_icmp_type_and_code(capsys: pytest.CaptureFixture[str], flows_dir: Path) -> None:
    base = [
        "--from",
        "acme/web1",
        "--to",
        "acme/web2",
        "--proto",
        "icmp",
        "--icmp-type",
        "13",
        "--icmp-code",
        "0",
    ]
    code, out, _ = _trace(capsys, flows_dir, *base, "-o", "json")
    assert code == 0 and json.loads(out)["packet"]["icmp_type"] == 13
    code, out, _ = _trace(capsys, flows_dir, *base, "--reply")
    assert code == 0 and "icmp type 14 code 0" in out.splitlines()[0]  # the timestamp reply


def test_address_in_the_senders_own_tenant_gets_a_note(
    capsys: pytest.CaptureFixture[str], flows_dir: Path
) -> None:
    code, out, _ = _trace(capsys, flows_dir, "--from", "globex/gweb2", "--to", "10.1.1.10", "--proto", "icmp")
    assert code == 0
    assert (
        "note: 10.1.1.10 is also the address of acme/web1 (overlapping addresses); it resolved to "
        "globex/gweb1 inside globex, the sender's own tenant"
    ) in out
    code, out, _ = _trace(capsys, flows_dir, "--from", "acme/web1", "--to", "10.1.2.10", "--dport", "8080")
    assert code == 0 and "note:" not in out  # one owner: nothing to say


ICMP_TYPES = Path(__file__).resolve().parents[2] / "examples" / "icmp-types.yaml"


@pytest.fixture(scope="module")
def icmp_flows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("icmp-flows")
    for name, prog in compile_network(load_network(ICMP_TYPES)).items():
        (out / f"{name}.flows").write_text(prog.flows_text())
    return out


@pytest.mark.parametrize(
    ("icmp_type", "verdict", "fate"),
    [
        ("8", "intent: allowed by policy monitor-ping", "=> delivered to ops/web1 (s1:2)"),
        (
            "13",
            "intent: denied by the intent (no grant from ops/mon1 to ops/web1 allows icmp type 13 code 0)",
            "=> dropped at s1 table 30 by policy_src default",
        ),
    ],
)
def test_intent_judges_by_icmp_type(
    capsys: pytest.CaptureFixture[str], icmp_flows: Path, icmp_type: str, verdict: str, fate: str
) -> None:
    """mon1 may ping web1 (echo request, type 8) and nothing else of ICMP: the intent line and
    the tables agree on both types."""
    args = ["--from", "ops/mon1", "--to", "ops/web1", "--proto", "icmp", "--icmp-type", icmp_type]
    code = main(["trace", str(ICMP_TYPES), "--flows", str(icmp_flows), *args])
    out = capsys.readouterr().out
    assert code == 0, out
    assert verdict in out.splitlines()
    assert fate in out and "MISMATCH" not in out


def test_echo_reply_of_a_typed_grant_passes_as_reply(
    capsys: pytest.CaptureFixture[str], icmp_flows: Path
) -> None:
    args = ["--from", "ops/mon1", "--to", "ops/web1", "--proto", "icmp", "--reply"]
    code = main(["trace", str(ICMP_TYPES), "--flows", str(icmp_flows), *args])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "icmp type 0 code 0" in out.splitlines()[0]
    assert "intent: allowed reply of a connection allowed by policy monitor-ping (stateful)" in out
    assert "=> delivered to ops/mon1 (s1:1)" in out


def test_trace_reply_types_are_the_verifiers() -> None:
    from segctl.cli.trace import ICMP6_REPLY, ICMP_REPLY
    from segctl.topology.grants import ICMP_REPLY_TYPES, ICMPV6_REPLY_TYPES

    assert ICMP_REPLY == ICMP_REPLY_TYPES
    assert ICMP6_REPLY == ICMPV6_REPLY_TYPES


# ---------------------------------------------------------------------------- IPv6

STRICT = EXAMPLE.parents[1] / "segctl" / "mininet_scenarios" / "intents" / "strict-segment.yaml"


def _trace6(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["trace", str(STRICT), "--from", "lab/o1", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ipv6_echo_between_global_and_link_local_addresses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _trace6(capsys, "--to", "lab/o2", "-6", "--proto", "icmp")
    assert code == 0
    assert out.startswith("packet lab/o1 (fd00:20:1::11) -> lab/o2 (fd00:20:1::12) icmp6 type 128 code 0")
    assert "intent: allowed by intra-segment open" in out and "=> delivered to lab/o2 (s1:2)" in out
    # a link-local --to: the sender's own link-local source (EUI-64 of its MAC), no -6 needed
    code, out, _ = _trace6(capsys, "--to", "fe80::ff:fe14:102", "--proto", "icmp6", "-o", "json")
    doc = json.loads(out)
    assert code == 0 and doc["to"] == "lab/o2" and doc["packet"]["family"] == 6
    assert doc["packet"]["ip_src"] == "fe80::ff:fe14:101" and doc["match"] is True
    code, out, _ = _trace6(capsys, "--to", "lab/o2", "-6", "--proto", "icmp", "--reply")
    assert code == 0 and "icmp6 type 129" in out and "[ct -> trk,est,rpl]" in out
    assert "intent: allowed reply of a connection allowed by intra-segment open (stateful)" in out
    assert "conntrack: the request was committed on s1 zone 1" in out and "=> delivered to lab/o1" in out


def test_ipv6_router_advertisement_is_denied_and_dropped_by_the_ra_guard(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _trace6(capsys, "--to", "lab/o2", "-6", "--proto", "icmp", "--icmp-type", "134")
    assert code == 0
    assert "intent: denied: a router advertisement (ICMPv6 134) comes only from routers (RA guard)" in out
    assert "=> dropped at s1 table 0 by spoof-guard lab/o1" in out


def test_ipv6_goes_inside_one_segment_under_its_grants(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _trace6(capsys, "--to", "fd00:20:2::12", "--proto", "tcp", "--dport", "22")
    assert code == 0 and "delivered" not in out
    assert "IPv6 is routed only between segments with a gateway6; segment lab/open has none" in out
    k1 = ["trace", str(STRICT), "--from", "lab/k1", "--to", "lab/k2", "-6"]
    assert main([*k1, "--proto", "tcp", "--dport", "22"]) == 0  # strict: the policy's tcp/22, over IPv6 too
    out = capsys.readouterr().out
    assert "intent: allowed by policy k1-to-k2" in out and "=> delivered to lab/k2 (s1:4)" in out
    assert main([*k1, "--proto", "tcp", "--dport", "22", "--reply"]) == 0
    out = capsys.readouterr().out
    assert "allowed reply of a connection allowed by policy k1-to-k2 (stateful)" in out
    assert "=> delivered to lab/k1 (s1:3)" in out
    assert main([*k1, "--proto", "icmp"]) == 0  # the policy's icmp is ICMPv4: no ICMPv6 echo
    out = capsys.readouterr().out
    assert "denied by the intent (no grant from lab/k1 to lab/k2 allows icmp6 type 128 code 0)" in out
    assert "delivered" not in out
    assert main([*k1, "--proto", "icmp", "--icmp-type", "135"]) == 0  # neighbour discovery: always
    out = capsys.readouterr().out
    assert "allowed: a neighbour solicitation inside segment lab/locked (neighbour discovery)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "lab/k3", "-6"], "--to: lab/k3 has no ipv6 address"),
        (["--to", "10.20.1.12", "-6"], "--to: 10.20.1.12: an IPv4 address, and -6 traces IPv6"),
        (["--to", "lab/o2", "--proto", "icmp6"], "--proto: icmp6 is IPv6: add -6 or give an IPv6 --to"),
        (
            ["--to", "lab/o2", "-6", "--proto", "icmp", "--icmp-type", "134", "--reply"],
            "134: not an icmp query",
        ),
    ],
)
def test_ipv6_bad_input_exits_2(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = _trace6(capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err
