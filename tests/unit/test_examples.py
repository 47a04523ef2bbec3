"""Every example validates; every file in examples/invalid/ fails with its documented message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from segctl.cli import main
from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import parse_flows
from segctl.topology.network import load_network
from segctl.verifier.verify import verify

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
VALID = sorted(EXAMPLES_DIR.glob("*.yaml"))
INVALID = sorted((EXAMPLES_DIR / "invalid").glob("*.yaml"))
SEGCTL = Path(sys.executable).parent / "segctl"


def _expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# expect: "
    if not first.startswith(prefix):
        raise ValueError(f"{path}:1: the first line must be '{prefix}<message>'")
    return first[len(prefix) :]


def test_there_are_examples() -> None:
    assert len(VALID) >= 3
    assert len(INVALID) >= 12


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_example(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_example(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = _expected(path)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    # One problem per file, printed as `<file>:<line>: <expected>`.
    assert len(lines) == 1, err
    assert lines[0].startswith(str(path)), err
    assert lines[0].endswith(f": {expected}"), err


def test_validate_all_examples_at_once_by_console_script() -> None:
    done = subprocess.run(
        [str(SEGCTL), "validate", *map(str, VALID)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_invalid_example_by_console_script() -> None:
    path = EXAMPLES_DIR / "invalid" / "yaml-syntax.yaml"
    done = subprocess.run([str(SEGCTL), "validate", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert _expected(path) in done.stderr
    assert "Traceback" not in done.stderr


def test_shared_dns_compiles_and_verifies() -> None:
    network = load_network(EXAMPLES_DIR / "shared-dns.yaml")
    tables = {n: parse_flows(p.flows_text()) for n, p in compile_network(network).items()}
    assert sorted(tables) == ["s1", "s2"]
    report = verify(network, tables)
    assert report.ok, [c.message for c in report.violations]
    names = [e.qualified for e in network.endpoints]
    by_name = dict(zip(names, report.matrix, strict=True))
    status = {(src, dst): cell.status for src in names for dst, cell in zip(names, by_name[src], strict=True)}
    # Consumers reach the resolvers; the group narrows blue to its clients; nothing else crosses.
    assert status[("red/r1", "infra/dns1")] == "shared"
    assert status[("blue/b1", "infra/dns2")] == "shared"
    assert status[("blue/bdb", "infra/dns1")] != "shared"
    assert status[("red/r1", "blue/b1")] == "denied"


def test_a_policy_without_gateways_no_longer_verifies() -> None:
    """It used to validate and verify (the tables hold nothing to route), yet no host could route."""
    path = EXAMPLES_DIR / "invalid" / "policy-without-gateway.yaml"
    done = subprocess.run([str(SEGCTL), "verify", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "segment web has no gateway, so r1 cannot reach r2" in done.stderr
