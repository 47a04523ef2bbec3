"""``segctl show`` with external networks (``examples/internet.yaml``): the uplinks, snat
addresses, floating IPs and the grants to and from the outside, in text and JSON; an
intent without external networks shows none of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from segctl.cli import main

ROOT = Path(__file__).resolve().parents[2]
INTERNET = ROOT / "examples" / "internet.yaml"
LEAF_SPINE = ROOT / "examples" / "leaf-spine.yaml"

EGRESS_APP1 = (
    "  acme/app1 -> external internet 0.0.0.0/0 except 10.0.0.0/8,192.168.0.0/16: "
    "policy updates: icmp/type=8, tcp/443"
)
INGRESS_WEB1 = (
    "  external internet 0.0.0.0/0 except 10.0.0.0/8 -> acme/web1 (floating 198.51.100.20): "
    "policy public-web: tcp/80,443"
)


def _show(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["show", *args]) == 0
    return capsys.readouterr().out


def _section(out: str, title: str) -> list[str]:
    lines = out[out.index(f"\n{title}\n") + 1 :].split("\n\n", 1)[0].splitlines()
    return [" ".join(line.split()) for line in lines]  # cells joined by one space


def test_show_text_lists_externals_snat_floating_ips_and_external_grants(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _show(capsys, str(INTERNET))
    assert _section(out, "External networks") == [
        "External networks",
        "EXTERNAL UPLINK ROUTER IP ROUTER MAC CIDR FABRIC MAC",
        "internet edge2:48 (standby edge1:48) 198.51.100.1 02:00:5e:00:01:01 198.51.100.0/24 "
        "02:5e:ff:00:00:01",
    ]
    assert _section(out, "Tenants")[1:] == [
        "TENANT ID/ZONE GATEWAY MAC SNAT SEGMENTS ENDPOINTS",
        "acme 1 02:5e:00:00:00:01 198.51.100.10 on internet 2 3",
        "globex 2 02:5e:00:00:00:02 198.51.100.11 on internet 1 2",
    ]
    endpoints = _section(out, "Endpoints")
    assert endpoints[1] == "# ENDPOINT SEGMENT MAC IP FLOATING IP IPV6 ATTACH LABELS"
    assert (
        endpoints[2] == "1 acme/web1 web 02:00:00:01:01:0a 10.0.1.10 198.51.100.20 on internet - edge1:10 -"
    )
    assert endpoints[3] == "2 acme/app1 app 02:00:00:01:02:0a 10.0.2.10 - - edge1:11 -"
    allowed = out[out.index("Allowed (source -> destination: grants)") :].split("\n\n", 1)[0].splitlines()
    assert allowed[-5:] == [
        EGRESS_APP1,
        EGRESS_APP1.replace("app1", "app2"),
        "  globex/gweb1 -> external internet 203.0.113.0/24: policy out: tcp/80",
        "  globex/gweb2 -> external internet 203.0.113.0/24: policy out: tcp/80",
        INGRESS_WEB1,
    ]
    assert "  acme/web1 -> acme/app1: policy web-app: tcp/8080" in allowed


def test_show_json_lists_externals_snat_floating_ips_and_external_grants(
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = json.loads(_show(capsys, "-o", "json", str(INTERNET)))
    assert list(doc)[:3] == ["switches", "links", "externals"]
    assert doc["externals"] == [
        {
            "name": "internet",
            "index": 1,
            "switch": "edge2",
            "port": 48,
            "standby": ["edge1:48"],
            "router_ip": "198.51.100.1",
            "router_mac": "02:00:5e:00:01:01",
            "cidr": "198.51.100.0/24",
            "mac": "02:5e:ff:00:00:01",
        }
    ]
    assert {t["name"]: t["snat"] for t in doc["tenants"]} == {
        "acme": {"internet": "198.51.100.10"},
        "globex": {"internet": "198.51.100.11"},
    }
    floating = {
        f"{e['tenant']}/{e['name']}": (e["floating_ip"], e["floating_external"]) for e in doc["endpoints"]
    }
    assert floating["acme/web1"] == ("198.51.100.20", "internet")
    assert floating["acme/app1"] == (None, None)
    grants = doc["external_reachability"]
    assert [(g["direction"], g["endpoint"], g["public_address"]) for g in grants] == [
        ("egress", "acme/app1", "198.51.100.10"),
        ("egress", "acme/app2", "198.51.100.10"),
        ("egress", "globex/gweb1", "198.51.100.11"),
        ("egress", "globex/gweb2", "198.51.100.11"),
        ("ingress", "acme/web1", "198.51.100.20"),
    ]
    assert grants[0]["cidr"] == "0.0.0.0/0" and grants[0]["except"] == ["10.0.0.0/8", "192.168.0.0/16"]
    assert "11.0.0.0/8" in grants[0]["prefixes"] and "10.0.0.0/8" not in grants[0]["prefixes"]
    assert grants[2]["prefixes"] == ["203.0.113.0/24"]
    assert grants[4]["grants"] == [
        {
            "kind": "policy",
            "name": "public-web",
            "services": [{"proto": "tcp", "ports": [[80, 80], [443, 443]]}],
            "stateful": True,
        }
    ]
    assert grants[4]["narrowed_by"] == []


def test_show_one_tenant_shows_its_external_grants_only(capsys: pytest.CaptureFixture[str]) -> None:
    out = _show(capsys, "--tenant", "globex", str(INTERNET))
    assert "globex/gweb1 -> external internet 203.0.113.0/24" in out
    assert "acme/app1 -> external" not in out and "-> acme/web1 (floating" not in out
    assert "External networks" in out  # the fabric's, whatever the tenant
    doc = json.loads(_show(capsys, "-o", "json", "--tenant", "globex", str(INTERNET)))
    assert {g["endpoint"] for g in doc["external_reachability"]} == {"globex/gweb1", "globex/gweb2"}


def test_a_deny_evaluated_first_is_named_on_the_grants_it_narrows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    intent = yaml.safe_load(INTERNET.read_text())
    acme = intent["tenants"][0]
    acme["policies"] += [
        {"name": "no-dns", "action": "deny", "priority": 100, "from": {"segment": "app"},
         "to": {"external": "internet", "cidr": "8.8.8.0/24"}, "services": [{"proto": "any"}]},
        {"name": "later", "action": "deny", "priority": 900, "from": {"segment": "app"},
         "to": {"external": "internet", "cidr": "8.8.4.0/24"}, "services": [{"proto": "any"}]},
    ]  # fmt: skip
    path = tmp_path / "deny.yaml"
    path.write_text(yaml.safe_dump(intent))
    out = _show(capsys, str(path))
    assert EGRESS_APP1 + " (narrowed by deny policy no-dns)" in out.splitlines()
    assert INGRESS_WEB1 in out.splitlines()  # a deny to the outside does not narrow what comes in


def test_an_intent_without_externals_shows_none_of_it(capsys: pytest.CaptureFixture[str]) -> None:
    out = _show(capsys, str(LEAF_SPINE))
    assert "External networks" not in out and "SNAT" not in out and "FLOATING IP" not in out
    assert "external" not in out
    doc = json.loads(_show(capsys, "-o", "json", str(LEAF_SPINE)))
    assert "externals" not in doc and "external_reachability" not in doc
    assert "snat" not in doc["tenants"][0] and "floating_ip" not in doc["endpoints"][0]
