"""The unmutated leaf-spine flows verify clean from the CLI (the mutations' baseline)."""

from __future__ import annotations

from pathlib import Path

from support.reports import LEAF_SPINE, write_leaf_spine

from segctl.cli import main


def test_unmutated_leaf_spine_verifies_clean(tmp_path: Path) -> None:
    flows_dir = write_leaf_spine(tmp_path / "flows")
    assert main(["verify", str(LEAF_SPINE), "--flows", str(flows_dir)]) == 0
