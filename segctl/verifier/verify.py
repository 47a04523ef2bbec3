"""The verifier's entry point: a full proof of every property over flow tables.

:func:`verify` takes the resolved intent and the flow tables (parsed ``ovs-ofctl`` text,
from the compiler's files or dumped from live switches; never the compiler itself) and
returns a :class:`~segctl.verifier.report.VerificationReport`. :func:`prove` is the same
proof with a given engine: the engine pushes the packets through the tables (runs any and
new, then the replies of every granted stateful pair) and the registry of properties
(:mod:`segctl.verifier.properties`) reads its views; the report is a function of those
views, so every exact engine gives the same report.

>>> from segctl.topology.network import load_network  # doctest: +SKIP
>>> report = verify(load_network("examples/two-tenants.yaml"), tables)  # doctest: +SKIP
>>> report.ok, [p.id for p in report.properties if not p.holds]  # doctest: +SKIP
(True, [])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from segctl.openflow.ofctl import Flow
from segctl.topology.network import Network
from segctl.verifier.checks import Inputs, granted_pairs, reply_requests
from segctl.verifier.expectations import Expectations
from segctl.verifier.observe import Engine
from segctl.verifier.properties import check_all
from segctl.verifier.reference import ReferenceEngine
from segctl.verifier.report import VerificationReport, build_report
from segctl.verifier.spaces import Spaces
from segctl.verifier.wavefront import WavefrontEngine

__all__ = ["ENGINES", "make_engine", "prove", "verify"]

Progress = Callable[[str], None]
#: Engine names accepted by :func:`verify` (``segctl verify --engine``); the first is the default.
ENGINES = ("wavefront", "reference")


def make_engine(name: str, network: Network, tables: Mapping[str, Sequence[Flow]]) -> Engine:
    """A fresh engine of that name over ``tables``."""
    if name == "wavefront":
        return WavefrontEngine(network, tables)
    if name == "reference":
        return ReferenceEngine(network, tables)
    raise ValueError(f"unknown engine {name!r} (one of {', '.join(ENGINES)})")


def verify(
    network: Network,
    tables: Mapping[str, Sequence[Flow]],
    *,
    progress: Progress | None = None,
    engine: str = ENGINES[0],
) -> VerificationReport:
    """Check every property of ``network`` against ``tables``; never consults the compiler."""
    started = time.monotonic()
    return prove(network, tables, make_engine(engine, network, tables), progress=progress, started=started)


def prove(
    network: Network,
    tables: Mapping[str, Sequence[Flow]],
    engine: Engine,
    *,
    progress: Progress | None = None,
    started: float | None = None,
    expectations: Expectations | None = None,
) -> VerificationReport:
    """The full proof with ``engine`` (built over ``tables``; ``expectations``: the intent's,
    when the caller keeps them across calls)."""
    say = progress or (lambda _msg: None)
    started = time.monotonic() if started is None else started
    hs = engine.hs
    ingresses = list(engine.ingresses())
    by_port = {(ep.switch, ep.port): ep for ep in network.endpoints}
    spaces = Spaces(hs, network, {by_port[p].key: i for i, p in enumerate(ingresses)})
    exp = Expectations.of(network, expectations)
    say("symbolic reachability, every conntrack state")
    any_view = engine.run("any")
    say("symbolic reachability, new connections")
    new_view = engine.run("new")
    inp = Inputs(hs, network, spaces, exp, ingresses, any_view, new_view)
    inp.pairs = granted_pairs(network, exp)
    inp.requests, inp.request_pairs = reply_requests(inp)
    say(f"replies of {sum(map(len, inp.request_pairs)):,} stateful grants")
    inp.replies = engine.replies(inp.requests)
    say("checking properties")
    results = check_all(inp)
    say("building the report")
    observed: dict[str, set[str]] = {}
    for dst in network.endpoints:
        for src in inp.endpoints_of(inp.delivered(new_view, dst)):
            observed.setdefault(src.qualified, set()).add(dst.qualified)
    return build_report(
        network,
        tables,
        hs,
        results,
        engine.findings(),
        started,
        observed,
        reach=exp.reach,
        engine=engine.name,
        work=engine.work(),
    )
