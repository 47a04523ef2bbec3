"""The HTML report in a real browser: headless Chromium (Debian's ``chromium``, installed by
``scripts/setup.sh``) lays out the report of every example, and of a violating one with
hop traces, at 1400 px; a small script reads the laid-out page back through ``--dump-dom``.

Checked: no horizontal overflow of the page, every matrix cell present, the granted
services written in the cells (not only in a tooltip), every endpoint labelled
``tenant/name`` in the topology with no two labels overlapping, and no trace table wider
than its box. No network, no download: a fresh profile per run, and the background
services that would phone home are off.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.reports import LEAF_SPINE, write_leaf_spine

from segctl.cli._tables import compiled_tables
from segctl.openflow.tables import load_flow_dir
from segctl.reports.html import render_html
from segctl.topology.analysis import expected_reachability
from segctl.topology.network import load_network
from segctl.verifier.verify import verify

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WIDTH = 1400

#: Runs at the end of <body>, once the page is laid out; leaves its findings on <body>.
CHECK = """
(() => {
  const cells = [...document.querySelectorAll('table.matrix td')];
  const labels = [...document.querySelectorAll('svg text.ep')];
  const boxes = labels.map(t => t.getBoundingClientRect());
  let overlaps = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i], b = boxes[j];
    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)
      overlaps.push([labels[i].textContent, labels[j].textContent]);
  }
  const wide = [...document.querySelectorAll('table.trace, table.pkt')].filter(
    t => t.getBoundingClientRect().right > t.parentElement.getBoundingClientRect().right + 1).length;
  document.body.setAttribute('data-check', JSON.stringify({
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
    cells: cells.length, withServices: cells.filter(td => td.querySelector('.svc')).length,
    labels: labels.map(t => t.textContent), overlaps: overlaps, wideTraces: wide,
    traces: document.querySelectorAll('table.trace').length,
    outside: document.querySelectorAll('table.outside td').length}));
})();
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser, or a failure saying how to get it (a skip only when asked for)."""
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    if os.environ.get("SEGCTL_SKIP_BROWSER") == "1":
        pytest.skip("no chromium; skipped because SEGCTL_SKIP_BROWSER=1")
    pytest.fail("chromium is not installed: run scripts/setup.sh (or set SEGCTL_SKIP_BROWSER=1)")


def laid_out(browser: str, page: str, tmp_path: Path) -> dict[str, Any]:
    """What :data:`CHECK` finds in ``page`` rendered at :data:`WIDTH` px."""
    path = tmp_path / "page.html"
    path.write_text(page.replace("</body>", f"<script>{CHECK}</script></body>"), encoding="utf-8")
    done = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},900",
         "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    found = re.search(r'data-check="([^"]*)"', done.stdout)
    assert found, f"chromium exit {done.returncode}: {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result


def _judge(page: dict[str, Any], network: Any) -> None:
    n = len(network.endpoints)
    assert page["innerWidth"] == WIDTH
    assert page["scrollWidth"] <= page["innerWidth"], "the page scrolls sideways at 1400 px"
    assert page["cells"] == n * n, "a matrix cell is missing"
    assert page["withServices"] == len(expected_reachability(network)), "a granted pair hides its services"
    assert sorted(page["labels"]) == sorted(ep.qualified for ep in network.endpoints)
    assert page["overlaps"] == [], "endpoint labels overlap in the topology"
    assert page["wideTraces"] == 0, "a trace table is wider than its box"
    if network.externals:  # the outside's table: a public address and both ways per network
        assert page["outside"] > 0 and page["outside"] % (1 + 2 * len(network.externals)) == 0
    else:
        assert page["outside"] == 0


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_each_examples_report_lays_out_in_chromium(chromium: str, example: Path, tmp_path: Path) -> None:
    network = load_network(example)
    report = verify(network, compiled_tables(network))
    _judge(laid_out(chromium, render_html(report), tmp_path), network)


def test_a_violating_report_wraps_its_traces_at_1400_px(chromium: str, tmp_path: Path) -> None:
    network = load_network(LEAF_SPINE)
    report = verify(network, load_flow_dir(network, write_leaf_spine(tmp_path / "leak", leak=True)))
    assert not report.ok
    page = laid_out(chromium, render_html(report), tmp_path)
    assert page["traces"] >= 2, "the report shows the counterexamples' traces"
    _judge(page, network)
