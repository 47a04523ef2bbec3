"""``segctl diff OLD NEW --reachability``: differential reachability at the intent level."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from segctl.cli import main
from segctl.cli._reachdiff import Allowed
from segctl.topology.analysis import Grant, ServiceMatch
from segctl.topology.grants import minus_ranges as _minus

ROOT = Path(__file__).resolve().parents[2]
LEAF_SPINE = ROOT / "examples" / "leaf-spine.yaml"


def _variant(tmp_path: Path, name: str, change: Any) -> str:
    doc = yaml.safe_load(LEAF_SPINE.read_text())
    change(doc)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _acme(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["tenants"][0]


def _widen_and_stateless(doc: dict[str, Any]) -> None:
    _acme(doc)["policies"][0]["services"] = [{"proto": "tcp", "ports": ["8080-8090"]}, {"proto": "icmp"}]
    _acme(doc)["policies"][1]["stateful"] = False


def test_opened_and_closed_grants_inside_a_tenant_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = _variant(tmp_path, "new", _widen_and_stateless)
    assert main(["diff", str(LEAF_SPINE), new, "--reachability"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"reachability {LEAF_SPINE} -> {new}: 4 opened, 2 closed"
    assert "+ acme/web1 -> acme/app1: tcp/8081-8090 with replies  (policy web-to-app)" in lines
    assert "- acme/app1 -> acme/db1: replies of tcp/5432  (policy app-to-db)" in lines
    assert not any("CROSS-TENANT" in line for line in lines)


def test_a_cross_tenant_pair_opening_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def consumer_and_icmp(doc: dict[str, Any]) -> None:
        doc["shared_services"][0]["consumers"] = [{"tenant": "globex"}]  # acme no longer consumes
        doc["shared_services"][0]["services"].append({"proto": "icmp"})

    new = _variant(tmp_path, "new", consumer_and_icmp)
    assert main(["diff", str(LEAF_SPINE), new, "--reachability", "-o", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["cross_tenant_opened"] == [
        {"src": "globex/gweb1", "dst": "infra/dns1"},
        {"src": "globex/gweb2", "dst": "infra/dns1"},
    ]
    gweb1 = [c for c in doc["changes"] if c["src"] == "globex/gweb1"]
    assert gweb1 == [
        {"src": "globex/gweb1", "dst": "infra/dns1", "change": "opened", "services": ["icmp"],
         "connections": True, "replies": True, "grants": ["shared-service dns"], "cross_tenant": True},
    ]  # fmt: skip
    closed = {c["src"] for c in doc["changes"] if c["change"] == "closed"}
    assert closed == {"acme/web1", "acme/web2", "acme/app1", "acme/app2", "acme/db1"}
    assert main(["diff", new, str(LEAF_SPINE), "--reachability"]) == 1  # back: acme's pairs open again
    capsys.readouterr()
    # Closing cross-tenant pairs alone is no alarm.
    only_close = _variant(tmp_path, "close", lambda d: d.pop("shared_services"))
    assert main(["diff", str(LEAF_SPINE), only_close, "--reachability"]) == 0
    assert "CROSS-TENANT" not in capsys.readouterr().out


def test_endpoints_added_or_removed_open_or_close_all_they_are_granted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = _variant(tmp_path, "new", lambda d: _acme(d)["endpoints"].pop(1))  # acme/web2
    assert main(["diff", str(LEAF_SPINE), new, "--reachability", "-o", "json"]) == 0
    changes = json.loads(capsys.readouterr().out)["changes"]
    assert changes and all(c["change"] == "closed" for c in changes)
    assert {"src": "acme/web2", "dst": "acme/web1", "change": "closed", "services": ["any IPv4"],
            "connections": True, "replies": True, "grants": ["intra-segment web"],
            "cross_tenant": False} in changes  # fmt: skip


def test_the_exit_code_through_the_real_entry_point(tmp_path: Path) -> None:
    new = _variant(tmp_path, "new", lambda d: d["shared_services"][0]["services"].append({"proto": "icmp"}))
    done = subprocess.run(
        [sys.executable, "-m", "segctl.cli", "diff", str(LEAF_SPINE), new, "--reachability"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "CROSS-TENANT: 7 pair(s) open across tenants" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([str(LEAF_SPINE)], "diff: give OLD and NEW"),
        ([str(LEAF_SPINE), str(LEAF_SPINE), "--live"], "--live compares one intent with the switches"),
        (
            [str(LEAF_SPINE), str(LEAF_SPINE), "--bridge-prefix", "sg"],
            "--bridge-prefix: only applies with --live",
        ),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", *args]) == 2
    assert message in capsys.readouterr().err
    assert main(["diff", str(LEAF_SPINE), str(LEAF_SPINE), "--live", "--reachability"]) == 2


def test_port_range_arithmetic() -> None:
    assert _minus(((0, 65535),), ((80, 80), (443, 443))) == ((0, 79), (81, 442), (444, 65535))
    assert _minus(((8080, 8090),), ((8080, 8080),)) == ((8081, 8090),)
    assert _minus(((1, 5),), ((0, 10),)) == ()
    tcp80 = Grant("policy", "p", (ServiceMatch("tcp", ((80, 80),)),), False)
    everything = Grant("policy", "q", (ServiceMatch("any", None),), True)
    assert Allowed.of([everything]).describe() == ["any IPv4"]
    assert Allowed.of([everything]).minus(Allowed.of([tcp80])).describe() == [
        "tcp/0-79,81-65535", "udp", "icmp", "other IPv4 protocols",
    ]  # fmt: skip
    assert not Allowed.of([tcp80], replies=True)  # stateless: no replies


def test_icmp_narrowed_to_echo_request_is_a_closing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """web-to-app's ``icmp`` becomes ``icmp/type=8``: every other ICMP type closes, nothing opens."""

    def echo_only(doc: dict[str, Any]) -> None:
        _acme(doc)["policies"][0]["services"] = [{"proto": "tcp", "port": 8080}, {"proto": "icmp", "type": 8}]

    new = _variant(tmp_path, "new", echo_only)
    assert main(["diff", str(LEAF_SPINE), new, "--reachability"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"reachability {LEAF_SPINE} -> {new}: 0 opened, 4 closed"
    assert "- acme/web1 -> acme/app1: icmp except type=8 with replies  (policy web-to-app)" in lines
    assert main(["diff", new, str(LEAF_SPINE), "--reachability"]) == 0  # widening back opens them
    assert "+ acme/web1 -> acme/app1: icmp except type=8 with replies" in capsys.readouterr().out


def test_icmp_type_and_code_arithmetic() -> None:
    def icmp(*services: ServiceMatch) -> Allowed:
        return Allowed.of([Grant("policy", "p", services, True)])

    every, echo = icmp(ServiceMatch("icmp")), icmp(ServiceMatch("icmp", None, 8))
    frag = icmp(ServiceMatch("icmp", None, 3, 4))
    assert echo.describe() == ["icmp/type=8"] and frag.describe() == ["icmp/type=3,code=4"]
    assert every.minus(echo).describe() == ["icmp except type=8"]
    assert not echo.minus(every)
    unreachable = icmp(ServiceMatch("icmp", None, 3))
    assert unreachable.minus(frag).describe() == ["icmp/type=3,code=0-3", "icmp/type=3,code=5-255"]
    assert icmp(ServiceMatch("icmp", None, 0), ServiceMatch("icmp", None, 8)).minus(echo).describe() == [
        "icmp/type=0"
    ]
    assert Allowed.of([Grant("policy", "q", (ServiceMatch("any", None),), True)]).minus(echo).describe() == [
        "tcp", "udp", "icmp except type=8", "other IPv4 protocols",
    ]  # fmt: skip
