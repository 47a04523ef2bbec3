"""Packaging: ``pip install segctl`` is the controller and its tools; the lab (Mininet
scenarios, the test bed) needs ``segctl[lab]``.

The fast tests read ``pyproject.toml`` and run the CLI in a subprocess in which the lab's
modules cannot be imported; ``test_a_fresh_install_without_the_lab_extra_works`` (marked
``slow``) builds a real virtualenv, installs the package with its dependencies but without
the extra, and runs validate, compile and verify there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB = {"mininet", "pyroute2", "scapy"}
EXAMPLE = ROOT / "examples" / "leaf-spine.yaml"
HINT = "pip install 'segctl[lab]'"


def _names(requirements: list[str]) -> set[str]:
    return {r.split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower() for r in requirements}


def test_lab_modules_are_an_extra_that_dev_includes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not LAB & _names(project["dependencies"])
    assert _names(project["optional-dependencies"]["lab"]) == LAB
    assert "segctl[lab]" in project["optional-dependencies"]["dev"]
    assert "'.[dev]'" in (ROOT / "scripts" / "setup.sh").read_text()  # CI and `make` get the lab


# A subprocess where importing a lab module fails as if it were not installed.
_BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"mininet", "pyroute2", "scapy"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def _without_lab(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", _BLOCK + code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_core_imports_and_runs_without_the_lab(tmp_path: Path) -> None:
    code = f"""
import importlib, pkgutil, segctl
lab_side = ("segctl.mininet_scenarios", "segctl.testbed")
for info in pkgutil.walk_packages(segctl.__path__, "segctl."):
    if not info.name.startswith(lab_side) and not info.name.endswith(".__main__"):
        importlib.import_module(info.name)
assert not {{m for m in sys.modules if m.partition(".")[0] in {{"mininet", "pyroute2", "scapy"}}}}
from segctl.cli import main
assert main(["validate", {str(EXAMPLE)!r}]) == 0
assert main(["compile", {str(EXAMPLE)!r}, "--out", "flows"]) == 0
assert main(["verify", {str(EXAMPLE)!r}, "--flows", "flows"]) == 0
print("core ok")
"""
    done = _without_lab(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "core ok" in done.stdout and "all properties hold" in done.stdout


@pytest.mark.parametrize(("argv", "what"), [
    (["scenario", "list"], "segctl scenario list"),
    (["scenario", "run", "leaf-spine"], "segctl scenario run"),
    (["demo"], "segctl demo"),
])  # fmt: skip
def test_lab_commands_name_the_extra(tmp_path: Path, argv: list[str], what: str) -> None:
    done = _without_lab(f"from segctl.cli import main\nraise SystemExit(main({argv!r}))", tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"segctl: {what} needs the lab extra (pyroute2 is not installed): {HINT}\n"


@pytest.mark.slow
def test_a_fresh_install_without_the_lab_extra_works(tmp_path: Path) -> None:
    """``pip install`` (dependencies included, pip's cache reused) into a new virtualenv."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "segctl", source / "segctl", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    python, segctl = venv / "bin" / "python", venv / "bin" / "segctl"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], env=env,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    installed = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert "segctl" in installed and "os-ken" in installed and not LAB & installed

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(segctl), *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip

    assert run("validate", str(EXAMPLE)).returncode == 0
    assert run("compile", str(EXAMPLE), "--out", "flows").returncode == 0
    verified = run("verify", str(EXAMPLE), "--flows", "flows")
    assert verified.returncode == 0 and "all properties hold" in verified.stdout, verified.stderr
    assert run("controller", "run", "--help").returncode == 0
    lab = run("scenario", "list")
    assert lab.returncode == 2 and HINT in lab.stderr and "Traceback" not in lab.stderr


def test_mypy_is_strict_for_the_computing_packages() -> None:
    """The flags of ``mypy --strict`` (2.4), per module, for topology, openflow, flows,
    verifier and reports; ``make`` runs plain ``mypy segctl``."""
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    [strict] = [o for o in mypy["overrides"] if "segctl.verifier.*" in o["module"]]
    packages = ("topology", "openflow", "flows", "verifier", "reports")
    assert strict["module"] == [f"segctl.{p}.*" for p in packages]
    flags = {
        "disallow_any_generics", "disallow_subclassing_any", "disallow_untyped_calls",
        "disallow_untyped_defs", "disallow_incomplete_defs", "check_untyped_defs",
        "disallow_untyped_decorators", "warn_unused_ignores", "warn_return_any", "no_implicit_reexport",
        "strict_equality", "extra_checks",
    }  # fmt: skip
    assert {k for k, v in strict.items() if v is True} == flags
    assert mypy["warn_redundant_casts"] is True  # the one flag of --strict that is global only
    assert "\t$(VENV)/bin/mypy segctl\n" in (ROOT / "Makefile").read_text()
