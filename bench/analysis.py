"""Intent analysis cost: cross-tenant paths and blast radius (``segctl.topology.exposure``).

Usage::

    .venv/bin/python bench/analysis.py [--quick] [--markdown FILE] [--json FILE]

Per case: CPU seconds of :func:`~segctl.topology.exposure.analyse` on a freshly resolved
network (median of 3 below 5,000 endpoints, else 1 run) and the peak of the memory it
allocates (``tracemalloc``, a second run on another fresh network). Baseline from the same
run: expanding the expected reachability relation (``expected_reachability``), what any
pairwise analysis has to build first, timed and traced the same way. Cases: synthetic
fat-trees (k = 4, 8, 16; 100 and 500 tenants; 2,000 to 20,000 endpoints) and, as the
adversarial case, one tenant whose endpoints each have their own policy (every endpoint a
class of its own: the searches cost the square of the endpoints). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.table import Row, publish, seconds_text  # noqa: E402
from segctl.topology.analysis import expected_reachability  # noqa: E402
from segctl.topology.exposure import analyse  # noqa: E402
from segctl.topology.network import resolve  # noqa: E402
from segctl.topology.schema import Intent  # noqa: E402
from segctl.topology.synthetic import synthetic_intent  # noqa: E402

__all__ = ["chain_intent", "main", "measure"]

#: (k, tenants, endpoints) of the synthetic cases; the quick run stops at 2,000 endpoints.
CASES = (
    (4, 10, 100),
    (8, 100, 2000),
    (16, 100, 5000),
    (16, 100, 10000),
    (16, 500, 10000),
    (16, 200, 20000),
)
#: Endpoints of the adversarial single-tenant cases.
CHAIN_CASES = (250, 500, 1000)


def chain_intent(endpoints: int) -> Intent:
    """One tenant on a k=8 fat-tree whose endpoint ``i`` has a policy to endpoint ``i + 1``:
    no two endpoints share their grants, so every endpoint is a class of its own."""
    doc = synthetic_intent(k=8, tenants=1, endpoints=endpoints, shared=False).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    tenant = doc["tenants"][0]
    names = [ep["name"] for ep in tenant["endpoints"]]
    tenant["policies"] = [
        {
            "name": f"c{i}",
            "from": {"endpoint": a},
            "to": {"endpoint": b},
            "services": [{"proto": "tcp", "port": 80}],
        }
        for i, (a, b) in enumerate(pairwise(names))
    ]
    return Intent.model_validate(doc)


def _cpu(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def _peak(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(name: str, intent: Intent) -> dict[str, Any]:
    """Analysis and relation expansion of ``intent``: CPU seconds, peak bytes, sizes."""
    first = resolve(intent)
    size = len(first.endpoints)
    repeats = 3 if size < 5000 else 1
    fresh = [resolve(intent) for _ in range(repeats)]  # analyse() remembers results per network object
    analysis_s = _cpu(lambda: analyse(fresh.pop()), repeats)
    analysis_peak = _peak(lambda: analyse(first))
    result = analyse(first)
    relation_s = _cpu(lambda: expected_reachability(first), repeats)
    relation_peak = _peak(lambda: expected_reachability(first))
    net = first
    return {
        "name": name,
        "endpoints": size,
        "edges": result.edges,
        "classes": result.classes,
        "grants": len(net.segments)
        + sum(len(net.policies(t.name)) for t in net.tenants)
        + len(net.shared_services),
        "cross_tenant_paths": len(result.cross_tenant_paths),
        "analysis_s": analysis_s,
        "analysis_peak_bytes": analysis_peak,
        "relation_s": relation_s,
        "relation_peak_bytes": relation_peak,
    }


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _row(m: dict[str, Any]) -> Row:
    ratio = m["relation_s"] / m["analysis_s"] if m["analysis_s"] else float("inf")
    return Row(
        f"intent analysis {m['name']}",
        f"{seconds_text(m['analysis_s'])}, peak {_mib(m['analysis_peak_bytes'])}",
        f"expand the relation: {seconds_text(m['relation_s'])}, peak {_mib(m['relation_peak_bytes'])}",
        f"{ratio:.1f}x faster",
        "-",
        None,
        f"{m['endpoints']:,} endpoints, {m['edges']:,} edges, {m['grants']:,} grants, "
        f"{m['classes']:,} classes, {m['cross_tenant_paths']} cross-tenant paths",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="up to 2,000 endpoints")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown")
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON")
    args = parser.parse_args(argv)
    raw = []
    for k, tenants, endpoints in CASES:
        if args.quick and endpoints > 2000:
            continue
        name = f"k={k} T={tenants} N={endpoints}"
        raw.append(measure(name, synthetic_intent(k=k, tenants=tenants, endpoints=endpoints)))
        print(f"measured {name}", file=sys.stderr)
    for endpoints in CHAIN_CASES:
        if args.quick and endpoints > 500:
            continue
        raw.append(measure(f"one tenant, a class per endpoint, N={endpoints}", chain_intent(endpoints)))
        print(f"measured chain N={endpoints}", file=sys.stderr)
    publish([_row(m) for m in raw], raw, markdown=args.markdown, json_path=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
