"""The first change after a controller restart: cold verifier vs warmed up.

Usage::

    .venv/bin/python bench/restart.py [--quick] [--markdown FILE] [--json FILE]

With ``--store`` the controller reads a proof of unchanged tables back from the store after
a restart (:mod:`segctl.controller.proofs`); its incremental verifier is then empty, so the
next change would be a full proof. ``--warm-after`` proves the read-back tables once more in
the background (:meth:`~segctl.controller.proofs.RememberingVerifier.warm_up`) so that the
next change is incremental. In one process, on one store, with the controller's verifier
(:func:`~segctl.controller.gate.default_verifier` wrapped by ``remembering``) and its
compiler, tables sorted as the service sorts them:

1. a first controller proves intent A (a full proof; stored);
2. a restarted one reads A's proof back, then proves change B1 (one tenant's first TCP
   port becomes 9000): the cold case;
3. another restarted one reads A back, warms up, then proves change B2 (port 9001, so it is
   not a stored proof either): the warmed case.

Figures are process CPU seconds (one run each). Cases: k=4 T=10 N=60 and (not with
``--quick``) k=4 T=40 N=240. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.table import Row, publish, seconds_text  # noqa: E402
from bench.verify import flip_port  # noqa: E402
from segctl.controller.gate import GateVerifier, default_compiler, default_verifier  # noqa: E402
from segctl.controller.plan import gate_tables  # noqa: E402
from segctl.controller.proofs import RememberingVerifier, remembering  # noqa: E402
from segctl.controller.store import Database, Store  # noqa: E402
from segctl.openflow.ofctl import Flow  # noqa: E402
from segctl.topology.network import Network, resolve  # noqa: E402
from segctl.topology.schema import Intent  # noqa: E402
from segctl.topology.synthetic import synthetic_intent  # noqa: E402

__all__ = ["main", "measure_restart"]

T = TypeVar("T")
CASES = ((4, 10, 60), (4, 40, 240))


def _cpu(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.process_time()
    value = fn()
    return value, time.process_time() - start


def _tables(network: Network) -> dict[str, list[Flow]]:
    return gate_tables(default_compiler()(network))


def _restarted(store: Store) -> tuple[RememberingVerifier, GateVerifier]:
    inner = default_verifier()
    return remembering(inner, store), inner


def measure_restart(name: str, intent: Intent) -> dict[str, object]:
    """The three steps of the module docstring for ``intent``; CPU seconds and verifier modes."""
    a, b1, b2 = resolve(intent), resolve(flip_port(intent, port=9000)), resolve(flip_port(intent, port=9001))
    ta, tb1, tb2 = _tables(a), _tables(b1), _tables(b2)
    store = Store(Database(":memory:"))
    first, _ = _restarted(store)
    proof, full_s = _cpu(lambda: first(a, ta))
    assert proof.passed and not proof.reused

    cold, cold_inner = _restarted(store)
    read, read_s = _cpu(lambda: cold(a, ta))
    assert read.reused and cold.needs_warm_up
    _, cold_s = _cpu(lambda: cold(b1, tb1))
    cold_mode = cold_inner.incremental.stats.mode if cold_inner.incremental.stats else "?"

    warm, warm_inner = _restarted(store)
    assert warm(a, ta).reused
    warmed, warm_up_s = _cpu(warm.warm_up)
    assert warmed
    changed, warm_s = _cpu(lambda: warm(b2, tb2))
    assert changed.passed and not changed.reused
    warm_mode = warm_inner.incremental.stats.mode if warm_inner.incremental.stats else "?"
    return {
        "name": name,
        "endpoints": len(a.endpoints),
        "flows": sum(len(f) for f in ta.values()),
        "full_s": full_s,
        "read_back_s": read_s,
        "cold_change_s": cold_s,
        "cold_mode": cold_mode,
        "warm_up_s": warm_up_s,
        "warm_change_s": warm_s,
        "warm_mode": warm_mode,
    }


def _row(r: dict[str, object]) -> Row:
    cold_s, warm_s = float(r["cold_change_s"]), float(r["warm_change_s"])  # type: ignore[arg-type]
    return Row(
        f"first change after a restart {r['name']}",
        seconds_text(warm_s),
        f"cold (no warm-up) {seconds_text(cold_s)}",
        f"{cold_s / warm_s:.1f}x faster",
        "",
        None,
        f"{r['flows']:,} flows, {r['endpoints']} endpoints; full proof before the restart "
        f"{seconds_text(float(r['full_s']))}; read back {seconds_text(float(r['read_back_s']))}; "  # type: ignore[arg-type]
        f"warm-up (background) {seconds_text(float(r['warm_up_s']))}; "  # type: ignore[arg-type]
        f"verifier modes: cold {r['cold_mode']}, warmed {r['warm_mode']}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/restart.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="k=4 T=10 only")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the raw figures as JSON")
    args = parser.parse_args(argv)
    results = []
    for k, tenants, endpoints in CASES[:1] if args.quick else CASES:
        name = f"k={k} T={tenants} N={endpoints}"
        print(f"[bench] restart {name}", file=sys.stderr, flush=True)
        results.append(measure_restart(name, synthetic_intent(k=k, tenants=tenants, endpoints=endpoints)))
    rows = [_row(r) for r in results]
    publish(rows, results, markdown=args.markdown, json_path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
