"""Partitioned proofs (``segctl.verifier.parallel``, ``segctl verify --jobs/--cluster``):
the same report as one process, on a local pool and on a real two-worker Dask cluster on
127.0.0.1, and clean errors for bad options and unreachable clusters."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from support.mutations import MUTATIONS
from support.reports import norm

from segctl.cli import main
from segctl.cli import verify as verify_cli
from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import Flow, parse_flows
from segctl.openflow.tables import load_flow_dir
from segctl.topology.network import Network, load_network, resolve
from segctl.topology.synthetic import synthetic_intent
from segctl.verifier import parallel
from segctl.verifier.parallel import ClusterError, loopback_cluster, prove_one, verify_cluster, verify_local
from segctl.verifier.verify import ENGINES, partitions, verify

ROOT = Path(__file__).resolve().parents[2]
LEAF_SPINE = ROOT / "examples" / "leaf-spine.yaml"
Tables = dict[str, list[Flow]]


@cache
def mutated_leaf_spine() -> tuple[Network, dict[str, str]]:
    """leaf-spine with every mutation of ``support.mutations`` applied: violations of
    several properties, in several tenants' parts."""
    network = load_network(LEAF_SPINE)
    lines = {sw: prog.flows_text().splitlines() for sw, prog in compile_network(network).items()}
    for mutate, _ in MUTATIONS:
        mutate(lines)
    return network, {sw: "\n".join(ls) + "\n" for sw, ls in lines.items()}


def tables_of(texts: dict[str, str]) -> Tables:
    return {sw: parse_flows(text, source=sw) for sw, text in texts.items()}


@cache
def synthetic_with_leak() -> tuple[Network, Tables]:
    """A k=4 fat-tree with 5 tenants and a rule on one edge switch that outputs one tenant's
    IPv4 to another tenant's port (isolation, spoof-guard and delivery fail, in one part)."""
    network = resolve(synthetic_intent(k=4, tenants=4, endpoints=24))
    tables = {sw: parse_flows(prog.flows_text()) for sw, prog in compile_network(network).items()}
    a, b = next(
        (a, b)
        for a in network.endpoints
        for b in network.endpoints
        if a.switch == b.switch and a.tenant != b.tenant
    )
    leak = parse_flows(f"table=0,priority=60000,in_port={a.port},ip,actions=output:{b.port}")
    tables[a.switch] = leak + tables[a.switch]
    return network, tables


@cache
def single(kind: str) -> dict[str, Any]:
    network, tables = (
        (mutated_leaf_spine()[0], tables_of(mutated_leaf_spine()[1]))
        if kind == "leaf-spine"
        else synthetic_with_leak()
    )
    return norm(verify(network, tables))


def failing(doc: dict[str, Any]) -> list[str]:
    return [p["id"] for p in doc["properties"] if not p["holds"]]


# ---------------------------------------------------------------------------- local pool


def test_two_jobs_give_the_single_process_report_with_violations() -> None:
    network, texts = mutated_leaf_spine()
    said: list[str] = []
    report = verify_local(network, tables_of(texts), jobs=2, progress=said.append)
    assert norm(report) == single("leaf-spine")
    assert len(failing(single("leaf-spine"))) >= 3, failing(single("leaf-spine"))
    # the pool really ran: one progress line per finished part
    assert said[0] == "proving 2 parts on 2 processes"
    assert sorted(s.split(" (")[0] for s in said[1:]) == ["part 1/2 proven", "part 2/2 proven"]


def test_a_synthetic_fabric_of_several_tenants_splits_the_same() -> None:
    network, tables = synthetic_with_leak()
    said: list[str] = []
    report = verify_local(network, tables, jobs=2, progress=said.append)
    assert "isolation" in failing(single("synthetic"))
    assert norm(report) == single("synthetic")
    assert "part 2/2 proven" in " ".join(said)


def test_the_reference_engine_runs_partitioned_too() -> None:
    network, texts = mutated_leaf_spine()
    report = verify_local(network, tables_of(texts), jobs=2, engine="reference")
    assert report.engine == "reference"
    assert norm(report) == single("leaf-spine")


def test_one_job_is_verify_in_this_process() -> None:
    network, texts = mutated_leaf_spine()
    said: list[str] = []
    report = verify_local(network, tables_of(texts), jobs=1, progress=said.append)
    assert norm(report) == single("leaf-spine")
    assert not any("part" in s for s in said)  # no pool, no parts


def test_a_part_crosses_processes_without_bdds() -> None:
    """A Part as proven holds BDDs in ``results`` (they do not pickle); ``prove_one`` drops them.
    Both parts of the mutated leaf-spine carry violations: the merge above is not trivial."""
    network, texts = mutated_leaf_spine()
    tables = tables_of(texts)
    for sources in partitions(network, 2):
        part = prove_one(network, tables, ENGINES[0], sources)
        assert part.results == ()
        back = pickle.loads(pickle.dumps(part))
        assert back.properties == part.properties and back.observed == part.observed
        assert any(found for _, found in part.properties.values()), sorted(sources)


def test_bad_arguments_fail_before_any_process_starts() -> None:
    network, texts = mutated_leaf_spine()
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        verify_local(network, tables_of(texts), jobs=0)
    with pytest.raises(ValueError, match="unknown engine 'fast'"):
        verify_local(network, tables_of(texts), jobs=2, engine="fast")


# ---------------------------------------------------------------------------- Dask cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A two-worker Dask cluster (processes) on 127.0.0.1, closed whatever happens."""
    local = loopback_cluster(2)
    try:
        yield local.scheduler_address
    finally:
        local.close()


def test_a_two_worker_cluster_gives_the_single_process_report(cluster: str) -> None:
    network, texts = mutated_leaf_spine()
    said: list[str] = []
    report = verify_cluster(network, tables_of(texts), cluster, progress=said.append)
    assert norm(report) == single("leaf-spine")
    # two workers x PARTS_PER_WORKER parts, but leaf-spine has only three tenants
    assert said[1] == "proving 3 parts on 2 cluster workers"
    assert len([s for s in said if " proven " in s]) == 3


def test_cluster_on_a_synthetic_fabric(cluster: str) -> None:
    network, tables = synthetic_with_leak()
    said: list[str] = []
    report = verify_cluster(network, tables, cluster, progress=said.append)
    assert norm(report) == single("synthetic")
    assert said[1] == "proving 4 parts on 2 cluster workers"


def _without_run_details(doc: dict[str, Any]) -> dict[str, Any]:
    """The report without timings, engine, and what the CLI adds (``files``; ``tables``, which
    it replaces by where the tables came from)."""
    return {k: v for k, v in doc.items() if k not in ("generated", "engine", "files", "tables")}


@pytest.mark.parametrize("where", [["--jobs", "2"], ["--cluster", "CLUSTER"]])
def test_cli_partitioned_report_equals_one_process(
    where: list[str], cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    network, texts = mutated_leaf_spine()
    for sw, text in texts.items():
        (tmp_path / f"{sw}.flows").write_text(text)
    argv = ["verify", str(LEAF_SPINE), "--flows", str(tmp_path), "-o", "json"]
    assert main([*argv, *(cluster if w == "CLUSTER" else w for w in where)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["tables"] == f"flow files in {tmp_path}"
    assert _without_run_details(doc) == _without_run_details(
        norm(verify(network, load_flow_dir(network, tmp_path)))
    )


def test_cli_text_says_where_it_ran(cluster: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(LEAF_SPINE), "--jobs", "2"]) == 0
    assert "with up to 2 processes" in capsys.readouterr().out.splitlines()[0]
    assert main(["verify", str(LEAF_SPINE), "--cluster", cluster]) == 0
    assert f"on the cluster at {cluster}" in capsys.readouterr().out.splitlines()[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_an_unreachable_cluster_is_a_clean_error_after_the_timeout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    assert main(["verify", str(LEAF_SPINE), "--cluster", address, "--cluster-timeout", "1"]) == 2
    assert time.monotonic() - start < 8
    err = capsys.readouterr().err
    assert f"--cluster {address}: cannot reach the scheduler within 1 s" in err
    assert "Traceback" not in err


def test_a_cluster_without_workers_is_a_clean_error() -> None:
    network, texts = mutated_leaf_spine()
    empty = loopback_cluster(0)
    try:
        with pytest.raises(ClusterError, match="no worker joined the scheduler within 1 s"):
            verify_cluster(network, tables_of(texts), empty.scheduler_address, timeout=1)
    finally:
        empty.close()


#: A lone worker process with every socket on 127.0.0.1 (with --no-dashboard alone its
#: HTTP endpoint would listen on every interface).
WORKER_OPTIONS = (
    *("--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0"),
    *("--no-nanny", "--nthreads", "1"),
)


def test_a_worker_with_other_verifier_code_is_refused(tmp_path: Path) -> None:
    """A worker whose segctl differs from this one's would prove its parts differently."""
    shutil.copytree(ROOT / "segctl", tmp_path / "segctl", ignore=shutil.ignore_patterns("__pycache__"))
    with (tmp_path / "segctl" / "verifier" / "checks.py").open("a") as f:
        f.write("\n# another version\n")
    network, texts = mutated_leaf_spine()
    scheduler = loopback_cluster(0)
    worker: subprocess.Popen[bytes] | None = None
    try:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                scheduler.scheduler_address,
                *WORKER_OPTIONS,
            ],
            env={**os.environ, "PYTHONPATH": str(tmp_path)},
            cwd=tmp_path,  # `python -m` puts the working directory first on sys.path
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with pytest.raises(ClusterError, match="runs other segctl verifier code than this one"):
            verify_cluster(network, tables_of(texts), scheduler.scheduler_address, timeout=30)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        scheduler.close()


# ---------------------------------------------------------------------------- CLI options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--jobs", "-1"], "argument --jobs: '-1': expected 0 (one per CPU) or more"),
        (["--jobs", "two"], "argument --jobs: 'two': expected a number of processes"),
        (["--engine", "fast"], "argument --engine: invalid choice: 'fast'"),
        (["--cluster", "http://127.0.0.1:8786"], "argument --cluster: 'http://127.0.0.1:8786': only tcp://"),
        (
            ["--cluster", "tcp://127.0.0.1"],
            "argument --cluster: 'tcp://127.0.0.1': expected a scheduler address",
        ),
        (
            ["--cluster", "127.0.0.1:99999"],
            "argument --cluster: '127.0.0.1:99999': expected a scheduler address",
        ),
        (
            ["--jobs", "2", "--cluster", "127.0.0.1:8786"],
            "argument --cluster: not allowed with argument --jobs",
        ),
        (["--cluster", "127.0.0.1:8786", "--cluster-timeout", "0"], "argument --cluster-timeout: '0'"),
        (["--cluster-timeout", "5"], "--cluster-timeout: only applies with --cluster"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(LEAF_SPINE), *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_jobs_0_means_one_process_per_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert verify_cli._jobs("0") == (os.cpu_count() or 1)
    assert main(["verify", str(LEAF_SPINE), "--jobs", "0", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_engine_option_reaches_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(LEAF_SPINE), "--engine", "reference", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["engine"]["name"] == "reference"


def test_the_cli_spells_the_verifier_constants() -> None:
    """The parser does not import the verifier (it loads BDDs): its copies must agree."""
    assert verify_cli.ENGINES == ENGINES
    assert verify_cli.CLUSTER_TIMEOUT_S == parallel.CLUSTER_TIMEOUT_S


def test_a_huge_part_count_is_one_part_per_tenant_at_most() -> None:
    """``--jobs 99999999999999999999`` made ``partitions`` build that many empty parts (the
    CLI hung); more parts than tenants are never built."""
    network = load_network(LEAF_SPINE)
    tenants = sum(1 for t in network.tenants if network.tenant_endpoints(t.name))
    assert partitions(network, 10**20) == partitions(network, tenants)
    assert len(partitions(network, 10**20)) == tenants
