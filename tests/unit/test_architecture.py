"""The architecture, enforced: imports point one way between segctl's packages, no cycles.

    topology ← openflow ← {flows, verifier} ← reports ← controller ← mininet_scenarios ← cli

A package may import only the packages to its left (and ``segctl.errors``); ``flows`` (the
compiler) and ``verifier`` never import each other, so a compiler bug cannot hide itself
from the proof; nothing imports ``cli``. ``testbed`` (lab-side I/O: bridges, namespaces,
probes) imports only ``topology``/``openflow`` and is imported only by
``mininet_scenarios`` and ``cli``. Every import counts: module level, inside functions,
``importlib.import_module("segctl....")`` with a literal name; only imports under ``if
TYPE_CHECKING:`` are left out of the cycle check (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]

#: Rank of each package: an import must point to a strictly lower rank.
LAYERS = {
    "topology": 0,
    "openflow": 1,
    "flows": 2,
    "verifier": 2,
    "reports": 3,
    "controller": 4,
    "mininet_scenarios": 5,
    "cli": 6,
}
#: Modules at the top of the package that every layer may use.
SHARED = {"errors"}
#: The lab side: what it may import, and who may import it.
TESTBED_IMPORTS = {"topology", "openflow"}
TESTBED_IMPORTERS = {"mininet_scenarios", "cli"}


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, only under TYPE_CHECKING) for every segctl import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                typing_only.update(id(n) for n in ast.walk(child))
    out: list[tuple[str, int, bool]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func).endswith("import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        out += [(n, node.lineno, id(node) in typing_only) for n in names if n.split(".")[0] == "segctl"]
    return out


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _allowed(src: str, dst: str) -> bool:
    if src == dst or dst in SHARED or dst == "":
        return True
    if dst == "testbed":
        return src in TESTBED_IMPORTERS
    if src == "testbed":
        return dst in TESTBED_IMPORTS
    if src in LAYERS and dst in LAYERS:
        return LAYERS[dst] < LAYERS[src]
    return src in SHARED and dst in SHARED


def modules(package_root: Path) -> dict[str, Path]:
    """Every module of the ``segctl`` package under ``package_root`` (a checkout), by dotted name."""
    out = {}
    for path in sorted((package_root / "segctl").rglob("*.py")):
        parts = list(path.relative_to(package_root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def layer_violations(package_root: Path) -> list[str]:
    """Every import that breaks the layering, as ``file:line: a -> b``."""
    bad = []
    for module, path in modules(package_root).items():
        src = _package(module)
        for target, line, _ in _imports(path):
            dst = _package(target)
            if not _allowed(src, dst):
                bad.append(f"{path.relative_to(package_root)}:{line}: {src or 'segctl'} -> {dst}")
    return sorted(set(bad))


def import_cycles(package_root: Path) -> list[list[str]]:
    """Cycles between modules (imports that run, inside functions too)."""
    mods = modules(package_root)
    graph = nx.DiGraph()
    for module, path in mods.items():
        graph.add_node(module)
        for target, _, typing_only in _imports(path):
            if typing_only:
                continue
            # "from a.b import c": c may be a module or a name in a.b
            hit = target if target in mods else target.rsplit(".", 1)[0]
            if hit in mods and hit != module and not module.startswith(hit + "."):
                graph.add_edge(module, hit)
    return [sorted(c) for c in nx.simple_cycles(graph)]


def test_imports_point_one_way() -> None:
    assert layer_violations(ROOT) == []


def test_no_import_cycles() -> None:
    assert import_cycles(ROOT) == []


def test_the_verifier_never_imports_the_compiler() -> None:
    for module, path in modules(ROOT).items():
        if _package(module) == "verifier":
            assert not [t for t, _, _ in _imports(path) if _package(t) == "flows"], module


def _tree(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp


def test_a_planted_backwards_import_fails(tmp_path: Path) -> None:
    """The checks can fail: plant each kind of forbidden import in a copy-sized toy tree."""
    root = _tree(
        tmp_path,
        {
            "segctl/__init__.py": "",
            "segctl/errors.py": "",
            "segctl/topology/model.py": "import segctl.errors\n",
            "segctl/verifier/engine.py": "def f():\n    from segctl.flows.compiler import compile_network\n",
            "segctl/flows/compiler.py": "from segctl.topology import model\n",
            "segctl/openflow/ofctl.py": "import importlib\nimportlib.import_module('segctl.cli.verify')\n",
            "segctl/controller/app.py": "from segctl.testbed import ovs\n",
            "segctl/cli/verify.py": "from segctl.verifier import engine\n",
            "segctl/testbed/ovs.py": "",
        },
    )
    assert layer_violations(root) == [
        "segctl/controller/app.py:1: controller -> testbed",
        "segctl/openflow/ofctl.py:2: openflow -> cli",
        "segctl/verifier/engine.py:2: verifier -> flows",
    ]
    assert import_cycles(root) == []
    (root / "segctl/topology/model.py").write_text("from segctl.topology.graph import g\n")
    (root / "segctl/topology/graph.py").write_text("def g():\n    from segctl.topology.model import x\n")
    assert import_cycles(root) == [["segctl.topology.graph", "segctl.topology.model"]]
    (root / "segctl/topology/graph.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from segctl.topology.model import x\n"
    )
    assert import_cycles(root) == []
