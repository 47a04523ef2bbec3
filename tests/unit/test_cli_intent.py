"""``segctl validate``, ``schema`` and ``show``: exit codes, output shapes, clean errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segctl.cli import main
from segctl.topology.analysis import expected_reachability
from segctl.topology.network import load_network

ROOT = Path(__file__).resolve().parents[2]
LEAF_SPINE = ROOT / "examples" / "leaf-spine.yaml"
TWO_TENANTS = ROOT / "examples" / "two-tenants.yaml"

BAD = """\
version: 1
fabric:
  switches:
    - {name: s1, dpid: 1}
tenants:
  - name: acme
    segments:
      - {name: web, cidr: 10.1.1.0/24}
    endpoints:
      - {name: web1, segment: web, mac: "02:00:00:00:00:01", ip: 10.1.9.4, attach: "s1:1"}
      - {name: web2, segment: nope, mac: "02:00:00:00:00:02", ip: 10.1.1.5, attach: "s1:1"}
"""


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return path


def test_validate_valid_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(LEAF_SPINE), str(TWO_TENANTS)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{LEAF_SPINE}: valid", f"{TWO_TENANTS}: valid"]
    assert err == ""


def test_validate_reports_every_problem_with_file_line(
    bad_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(LEAF_SPINE), str(bad_file)]) == 2
    out, err = capsys.readouterr()
    assert out == f"{LEAF_SPINE}: valid\n"
    assert err.splitlines() == [
        f"{bad_file}:10: tenants[acme].endpoints[web1].ip: 10.1.9.4 is outside segment web (10.1.1.0/24)",
        f"{bad_file}:11: tenants[acme].endpoints[web2].attach: port s1:1 is already bound to acme/web1",
        f"{bad_file}:11: tenants[acme].endpoints[web2].segment: unknown segment nope",
    ]


def test_validate_json(bad_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.yaml"
    assert main(["validate", "-o", "json", str(TWO_TENANTS), str(bad_file), str(missing)]) == 2
    out, err = capsys.readouterr()
    assert err == ""
    report = json.loads(out)
    assert [(f["file"], f["valid"], len(f["problems"])) for f in report["files"]] == [
        (str(TWO_TENANTS), True, 0),
        (str(bad_file), False, 3),
        (str(missing), False, 1),
    ]
    assert report["files"][1]["problems"][0] == {
        "location": "tenants[acme].endpoints[web1].ip",
        "message": "10.1.9.4 is outside segment web (10.1.1.0/24)",
        "source": f"{bad_file}:10",
    }


def test_validate_yaml_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("fabric:\n  switches: [\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:3: YAML syntax error")
    assert "Traceback" not in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["validate"]) == 2
    assert main(["no-such-verb"]) == 2
    assert "usage: segctl" in capsys.readouterr().err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("segctl ")
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("validate", "schema", "show"):
        assert verb in out


def test_schema_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].endswith("2020-12/schema")
    assert "Tenant" in schema["$defs"]


def test_show_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(LEAF_SPINE)]) == 0
    out = capsys.readouterr().out
    for heading in ("Tenants", "Segments", "Endpoints", "Groups", "Policies", "Shared services"):
        assert f"\n{heading}\n" in out
    assert "acme    1        02:5e:00:00:00:01" in out
    assert "legend: · denied   S same segment   P policy   X shared service" in out
    matrix = out[out.index("Expected reachability") :].splitlines()
    rows = {line.split()[1]: line.split()[2:] for line in matrix[2:10]}
    assert rows["acme/web1"] == ["·", "S", "P", "P", "·", "·", "·", "X"]
    assert rows["infra/dns1"] == ["·"] * 8
    assert "acme/app1 -> acme/db1: policy app-to-db: tcp/5432" in out
    analysis = out[out.index("Cross-tenant paths") :].splitlines()
    assert analysis[1] == "  none: every tenant reaches other tenants only over its declared shared services"
    assert analysis[3].startswith("Blast radius") and "17 allowed connections" in analysis[3]
    assert analysis[4].split() == ["ENDPOINT", "PER", "HOP", "TOTAL"]
    assert analysis[5].split() == ["acme/web1", "4,", "1", "5"]
    assert analysis[-1].split() == ["infra/dns1", "-", "0"]


def test_show_says_where_ipv6_goes_in_both_forms(capsys: pytest.CaptureFixture[str]) -> None:
    """Show lists the segments whose ipv6 endpoints exchange IPv6 (all of it, or in a strict
    segment what policies allow), and the link-local address bound to each endpoint (EUI-64
    of the MAC unless declared)."""
    intent = ROOT / "segctl" / "mininet_scenarios" / "intents" / "strict-segment.yaml"
    assert main(["show", str(intent)]) == 0
    out = capsys.readouterr().out
    section = out[out.index("\nIPv6 (") + 1 :].splitlines()
    assert section[0].startswith("IPv6 (inside a segment, and routed between segments with a gateway6")
    assert "router adv" in section[0]
    assert section[1:4] == [
        "  lab/open: o1, o2: every packet",
        "  lab/locked: k1, k2: neighbour discovery and what policies allow (strict)",
        "",
    ]  # k3 has no ipv6
    assert main(["show", str(intent), "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ipv6"] == [
        {"tenant": "lab", "segment": "open", "strict": False, "gateway6": None, "endpoints": ["o1", "o2"]},
        {"tenant": "lab", "segment": "locked", "strict": True, "gateway6": None, "endpoints": ["k1", "k2"]},
    ]
    local = {ep["name"]: ep["ipv6_link_local"] for ep in doc["endpoints"]}
    assert local == {"o1": "fe80::ff:fe14:101", "o2": "fe80::ff:fe14:102", "k1": "fe80::ff:fe14:201",
                     "k2": "fe80::ff:fe14:202", "k3": None}  # fmt: skip
    assert main(["show", str(LEAF_SPINE)]) == 0
    assert "\nIPv6 (" not in capsys.readouterr().out  # no endpoint declares ipv6: no section


def test_show_lists_cross_tenant_paths(capsys: pytest.CaptureFixture[str]) -> None:
    """The shared-dns scenario intent: dns1 shares a segment with ntp1, a pivot for consumers."""
    intent = ROOT / "segctl" / "mininet_scenarios" / "intents" / "shared-dns.yaml"
    assert main(["show", str(intent)]) == 0
    out = capsys.readouterr().out
    assert (
        "  red -> infra/ntp1 (2 endpoints): red/r1 -[shared-service dns]-> infra/dns1 "
        "-[intra-segment svc]-> infra/ntp1\n"
        "  blue -> infra/ntp1 (1 endpoint): blue/b1 -[shared-service dns]-> infra/dns1 "
        "-[intra-segment svc]-> infra/ntp1\n"
    ) in out
    assert main(["show", "-o", "json", str(intent)]) == 0
    paths = json.loads(capsys.readouterr().out)["analysis"]["cross_tenant_paths"]
    assert [(p["tenant"], p["target"], p["sources"]) for p in paths] == [
        ("red", "infra/ntp1", 2),
        ("blue", "infra/ntp1", 1),
    ]


def test_show_json_has_every_endpoint_and_the_grants(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--output", "json", str(LEAF_SPINE)]) == 0
    shown = json.loads(capsys.readouterr().out)
    net = load_network(LEAF_SPINE)
    assert len(shown["endpoints"]) == len(net.endpoints)
    web1 = shown["endpoints"][0]
    assert web1 == {
        "tenant": "acme",
        "name": "web1",
        "segment": "web",
        "mac": "02:00:00:01:01:0a",
        "ip": "10.1.1.10",
        "ipv6": None,
        "ipv6_link_local": None,
        "switch": "leaf1",
        "port": 10,
        "labels": {"role": "web"},
    }
    assert [t["name"] for t in shown["tenants"]] == ["acme", "globex", "infra"]
    assert shown["tenants"][0]["segments"][1] == {
        "name": "app",
        "index": 2,
        "cidr": "10.1.2.0/24",
        "cidr6": None,
        "gateway": "10.1.2.1",
        "vlan": 101,
        "strict": True,
    }
    reach = expected_reachability(net)
    assert len(shown["reachability"]) == len(reach)
    assert shown["analysis"]["graph"] == {"endpoints": 8, "edges": 17, "classes": 5}
    assert shown["analysis"]["cross_tenant_paths"] == []
    assert shown["analysis"]["blast_radius"][0] == {"endpoint": "acme/web1", "per_hop": [4, 1], "total": 5}
    assert len(shown["analysis"]["blast_radius"]) == len(net.endpoints)
    first = shown["reachability"][0]
    assert first["src"] == "acme/web1" and first["dst"] == "acme/web2"
    assert first["grants"] == [
        {
            "kind": "intra-segment",
            "name": "web",
            "services": [{"proto": "any", "ports": None}],
            "stateful": True,
        }
    ]


def test_show_invalid_file_is_a_clean_error(bad_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(bad_file)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == (
        f"segctl: {bad_file}:10: tenants[acme].endpoints[web1].ip: "
        "10.1.9.4 is outside segment web (10.1.1.0/24)"
    )
    assert main(["show", "-o", "json", str(bad_file)]) == 2
    out, err = capsys.readouterr()
    error = json.loads(out)["error"]
    assert error["type"] == "IntentError" and len(error["problems"]) == 3
    assert "Traceback" not in err


def test_module_entry_point_runs_as_a_subprocess(bad_file: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run(
        [sys.executable, "-m", "segctl.cli", "validate", str(LEAF_SPINE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, f"{LEAF_SPINE}: valid\n", "")
    bad = subprocess.run(
        [sys.executable, "-m", "segctl.cli", "show", str(bad_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert "Traceback" not in bad.stderr and "outside segment web" in bad.stderr


# ---------------------------------------------------------------- show --tenant, folding


def test_show_one_tenant_and_what_it_shares(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(LEAF_SPINE), "--tenant", "globex"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Tenant globex (and what it shares with other tenants)")
    assert "acme/web1" not in out and "web-to-app" not in out  # acme's objects and policies
    assert "dns" in out and "globex/gweb1 -> infra/dns1: shared-service dns" in out
    matrix = out[out.index("Expected reachability") : out.index("legend")]
    assert [line.split()[1] for line in matrix.splitlines()[2:] if line.strip()] == [
        "globex/gweb1",
        "globex/gweb2",
        "infra/dns1",
    ]
    assert "  globex/gweb1  2        2" in out and "acme/app1  " not in out  # blast radius: globex only


def test_show_one_tenant_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(LEAF_SPINE), "--tenant", "infra", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tenant"] == "infra" and [t["name"] for t in doc["tenants"]] == ["infra"]
    assert [e["name"] for e in doc["endpoints"]] == ["dns1"]
    assert [s["name"] for s in doc["shared_services"]] == ["dns"]
    assert doc["reachability"] and all("infra/" in p["src"] + p["dst"] for p in doc["reachability"])
    assert all(b["endpoint"].startswith("infra/") for b in doc["analysis"]["blast_radius"])


def test_show_unknown_tenant_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(LEAF_SPINE), "--tenant", "nope"]) == 2
    assert "--tenant: nope: no such tenant (tenants: acme, globex, infra)" in capsys.readouterr().err


def test_big_intents_fold_the_matrix_per_segment(tmp_path: Path) -> None:
    """Past 60 endpoints the CLI matrix has one cell per pair of segments, like the HTML one."""
    import yaml

    from segctl.topology.synthetic import synthetic_intent

    big = tmp_path / "big.yaml"
    big.write_text(
        yaml.safe_dump(synthetic_intent(k=4, tenants=3, endpoints=70).model_dump(mode="json", by_alias=True))
    )
    done = subprocess.run(
        [sys.executable, "-m", "segctl.cli", "show", str(big)], capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    matrix = done.stdout[done.stdout.index("Expected reachability") :].split("\n\n")[0].splitlines()
    assert matrix[0].startswith("Expected reachability per segment (")
    segments = {(ep.tenant, ep.segment) for ep in load_network(big).endpoints}
    assert len(matrix) == 1 + 1 + len(segments) + 1  # title, column numbers, one row per segment, legend
    assert any("/" in cell for row in matrix[2:-1] for cell in row.split()[2:])  # some n/m partial cells
    assert main(["show", str(big), "--matrix", "endpoints"]) == 0  # forced back: one row per endpoint


def test_the_segment_fold_counts_partial_cells(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(LEAF_SPINE), "--matrix", "segments"]) == 0
    out = capsys.readouterr().out
    assert "Expected reachability per segment (8 endpoints in 5 segments;" in out
    rows = {
        line.split()[1]: line.split()[2:]
        for line in out.splitlines()
        if line.startswith("  ") and " acme/" in line[:12]
    }
    assert rows["acme/web"] == ["S", "P", "·", "·", "X"]
