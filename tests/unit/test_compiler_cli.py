"""``segctl compile`` and ``segctl diff`` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from segctl.cli import main
from segctl.flows.compiler import compile_network
from segctl.topology.network import load_network

ROOT = Path(__file__).resolve().parents[2]
LEAF_SPINE = str(ROOT / "examples" / "leaf-spine.yaml")
TWO = str(ROOT / "examples" / "two-tenants.yaml")


def test_compile_writes_flows_and_meters_per_switch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compile", LEAF_SPINE, "--out", str(tmp_path / "out")]) == 0
    assert "wrote 12 files for 6 switches" in capsys.readouterr().out
    for name, prog in compile_network(load_network(LEAF_SPINE)).items():
        assert (tmp_path / "out" / f"{name}.flows").read_text() == prog.flows_text()
        assert (tmp_path / "out" / f"{name}.meters").read_text() == prog.meters_text()
    assert "pktps" in (tmp_path / "out" / "leaf3.meters").read_text()


def test_compile_stats_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", LEAF_SPINE, "--stats"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["switch", "0:classify", "10:arp"]
    assert any(line.startswith("leaf3 ") for line in out.splitlines())
    assert main(["compile", TWO, "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    s1 = doc["switches"]["s1"]
    assert s1["flow_count"] == len(s1["flows"]) == sum(s1["table_counts"].values())


def test_compile_bad_input_is_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("fabric: {switches: []}\n")
    assert main(["compile", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segctl: ") and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_diff_shows_added_and_removed_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load(Path(TWO).read_text())
    doc["tenants"][0]["endpoints"].append(
        {"name": "r3", "segment": "lan", "mac": "02:00:00:00:01:03", "ip": "10.0.0.13", "attach": "s1:5"}
    )
    doc["tenants"][0]["segments"][0]["strict"] = True
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(doc))
    assert main(["diff", TWO, str(new)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("switch s1: +")
    assert any(line.startswith("+ ") and "in_port=5" in line for line in out)
    assert any(
        line.startswith("- ") and "nw_dst=10.0.0.0/24" in line for line in out
    )  # intra-segment allow gone
    assert main(["diff", TWO, TWO, "--output", "json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["switches"]["s1"] == {"added": [], "removed": [], "meters_added": [], "meters_removed": []}


def test_compile_out_leaves_exactly_the_intents_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["compile", LEAF_SPINE, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["compile", TWO, "--out", str(out)]) == 0  # one switch now: s1
    text = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["s1.flows", "s1.meters"]
    assert "removed 12 stale files of switches not in the intent: leaf1.flows" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no staging directory left behind"
    assert main(["verify", TWO, "--flows", str(out)]) == 0  # was: "flow files for switches ..."


def test_compile_out_swaps_the_directory_in_one_step(tmp_path: Path) -> None:
    """The new set is a new directory renamed into place, not files rewritten one by one."""
    out = tmp_path / "out"
    assert main(["compile", TWO, "--out", str(out)]) == 0
    before = out.stat().st_ino
    assert main(["compile", TWO, "--out", str(out)]) == 0
    assert out.stat().st_ino != before
    assert (out / "s1.flows").read_text() == compile_network(load_network(TWO))["s1"].flows_text()


def test_compile_out_refuses_a_directory_with_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "old.flows").write_text("")
    assert main(["compile", TWO, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds notes.txt, not only .flows/.meters files" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "old.flows"]
    (tmp_path / "file").write_text("")
    assert main(["compile", TWO, "--out", str(tmp_path / "file")]) == 2
    assert "not a directory" in capsys.readouterr().err
