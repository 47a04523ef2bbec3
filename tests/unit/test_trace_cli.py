"""``segctl trace``: hop-by-hop explanation in intent terms, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def test_established_state_is_passed(capsys: pytest.CaptureFixture[str], flows_dir: Path) -> None:
    # app1 -> web1 is not granted as a new connection, but a reply (est) passes
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "nobody", "--to", "acme/web1"], "endpoint nobody: no such endpoint"),
        (["--from", "acme/web1", "--to", "acme/app1", "--dport", "70000"], "70000: not a port number"),
        (["--from", "acme/web1", "--to", "acme/app1", "--proto", "sctpx"], "sctpx: not tcp, udp, icmp"),
        (["--from", "acme/web1", "--to", "fe80::1"], "only IPv4 destinations"),
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
