"""Shared fixtures (a unique lab prefix per test, the OVS availability gate) and markers.

Folders: ``unit/`` pure tests, ``property/`` hypothesis properties, ``ovs/`` tests on real
Open vSwitch bridges (root), ``scenarios/`` Mininet scenarios (root). Markers follow what a
test needs, not only where it lives: every test that asks for a lab (``lab_prefix`` or
``ovs_available``) is marked ``ovs``, and such a test under ``scenarios/`` also ``mininet``,
so ``pytest -m "not ovs and not mininet"`` runs everything that needs no root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from segctl.testbed import lab, ovs


def _ovs_problem() -> str | None:
    if os.geteuid() != 0:
        return "OVS tests need root"
    if not ovs.ovs_running():
        return "Open vSwitch is not running (run scripts/setup.sh or `make setup`)"
    return None


@pytest.fixture(scope="session")
def ovs_available() -> None:
    """Fail (never silently skip) when OVS tests cannot run, unless SEGCTL_SKIP_OVS=1."""
    problem = _ovs_problem()
    if problem is None:
        return
    if os.environ.get("SEGCTL_SKIP_OVS") == "1":
        pytest.skip(f"{problem}; skipped because SEGCTL_SKIP_OVS=1")
    pytest.fail(f"{problem}. Set SEGCTL_SKIP_OVS=1 to skip OVS tests deliberately.")


@pytest.fixture
def lab_prefix(ovs_available: None) -> Iterator[str]:
    """A fresh ``sgXXXX`` prefix; asserts nothing with it is left after the test."""
    prefix = lab.new_prefix()
    yield prefix
    left = lab.leftovers(prefix)
    if any(left.values()):
        lab.cleanup(prefix)
        pytest.fail(f"test left behind {left}")


_LAB_FIXTURES = {"lab_prefix", "ovs_available"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        needs_lab = bool(_LAB_FIXTURES & set(getattr(item, "fixturenames", ())))
        if needs_lab or "/ovs/" in str(item.path):
            item.add_marker(pytest.mark.ovs)
        if needs_lab and "/scenarios/" in str(item.path):
            item.add_marker(pytest.mark.mininet)
