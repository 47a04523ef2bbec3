"""The verifier's entry point: a full proof of every property over flow tables.

:func:`verify` takes the resolved intent and the flow tables (parsed ``ovs-ofctl`` text,
from the compiler's files or dumped from live switches; never the compiler itself) and
returns a :class:`~segctl.verifier.report.VerificationReport`.

A proof is made of *parts*, each for a set of source endpoints (:func:`prove_part`): an
engine pushes those sources' packets through the tables (runs any and new, then the replies
of their granted stateful pairs) and the registry of properties (:mod:`segctl.verifier.properties`)
reads its views, so a part depends on the tables and the intent, not on the other parts.
:func:`merge_parts` puts parts together into the report, which is the same for any split
of the sources (every violation carries its place in the whole order) and for any exact
engine (the views are Boolean functions, not engine paths).

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
from segctl.verifier.checks import Inputs, granted_pairs
from segctl.verifier.delivery import reply_requests
from segctl.verifier.expectations import Expectations
from segctl.verifier.observe import Engine, RunView
from segctl.verifier.outside import outside_reply_requests
from segctl.verifier.properties import check_all, registry_for
from segctl.verifier.reference import ReferenceEngine
from segctl.verifier.report import Part, VerificationReport, merge_parts, part_of
from segctl.verifier.spaces import Spaces
from segctl.verifier.wavefront import WavefrontEngine

__all__ = ["ENGINES", "make_engine", "partitions", "prove", "prove_part", "verify"]

Progress = Callable[[str], None]
EndpointKey = tuple[str, str]
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
    """The full proof with ``engine`` (built over ``tables``), as one part."""
    started = time.monotonic() if started is None else started
    exp = Expectations.of(network, expectations)
    part = prove_part(network, tables, engine, None, progress=progress, expectations=exp)
    return merge_parts(network, tables, [part], started, reach=exp.reach)


def partitions(network: Network, count: int) -> list[frozenset[EndpointKey]]:
    """The sources split into at most ``count`` parts of whole tenants (a tenant's sources
    share the most work), balanced by endpoints, largest tenants first; never empty."""
    tenants = sorted(network.tenants, key=lambda t: (-len(network.tenant_endpoints(t.name)), t.name))
    # more parts than tenants would stay empty: never build them (count comes from --jobs)
    loads: list[tuple[int, list[EndpointKey]]] = [(0, []) for _ in range(max(1, min(count, len(tenants))))]
    for tenant in tenants:
        eps = [ep.key for ep in network.tenant_endpoints(tenant.name)]
        if not eps:
            continue
        i = min(range(len(loads)), key=lambda j: loads[j][0])
        loads[i] = (loads[i][0] + len(eps), loads[i][1] + eps)
    # With no sources at all, one empty part still carries the findings and every count.
    return [frozenset(keys) for _, keys in loads if keys] or [frozenset()]


def prove_part(
    network: Network,
    tables: Mapping[str, Sequence[Flow]],
    engine: Engine,
    sources: frozenset[EndpointKey] | None,
    *,
    progress: Progress | None = None,
    expectations: Expectations | None = None,
) -> Part:
    """The proof for the packets of ``sources`` (None: every endpoint)."""
    say = progress or (lambda _msg: None)
    hs = engine.hs
    ingresses = list(engine.ingresses())
    by_port = {(ep.switch, ep.port): ep for ep in network.endpoints}
    # the outside comes in at the uplinks with the whole proof or its first part
    outside = sources is None or (bool(network.endpoints) and network.endpoints[0].key in sources)
    injected = [
        p for p in ingresses if (p in by_port and (sources is None or by_port[p].key in sources)) or
        (p not in by_port and outside)
    ]  # fmt: skip
    spaces = Spaces(hs, network, {by_port[p].key: i for i, p in enumerate(ingresses) if p in by_port})
    exp = expectations if expectations is not None else Expectations.of(network)
    say("symbolic reachability, every conntrack state and new connections")
    any_view, new_view = engine.runs(injected)
    inp = Inputs(hs, network, spaces, exp, ingresses, any_view, new_view, injected=injected)
    inp.pairs = granted_pairs(network, exp, sources)
    inp.requests, inp.request_pairs = reply_requests(inp)
    say(f"replies of {sum(map(len, inp.request_pairs)):,} stateful grants")
    inp.outside_requests = outside_reply_requests(inp) if network.externals else []
    inp.outside_offset = len(inp.requests)
    inp.replies = engine.replies([*inp.requests, *(o.request for o in inp.outside_requests)])
    say("checking properties")
    results = check_all(inp, registry_for(network))
    say("building counterexamples")
    observed: dict[str, set[str]] = {}
    for dst in network.endpoints:
        for src in inp.endpoints_of(inp.delivered(new_view, dst)):
            observed.setdefault(src.qualified, set()).add(dst.qualified)
    _observe_outside(inp, new_view, observed)
    part = part_of(
        network, tables, hs, results, engine.findings(), observed, engine=engine.name, work=engine.work()
    )
    part.results = results
    return part


def _observe_outside(inp: Inputs, view: RunView, observed: dict[str, set[str]]) -> None:
    """Add the outside to ``observed``: endpoints whose new packets leave an uplink, and
    endpoints the outside's new packets reach (``external:NAME`` as sender). Active uplinks
    only: what a standby port sends or gets is a ``standby-uplink`` violation, not a cell."""
    hs = inp.hs
    for ext in inp.network.externals:
        for src in inp.endpoints_of(view.delivered.get(ext.qualified, hs.false)):
            observed.setdefault(src.qualified, set()).add(ext.qualified)
        port = (ext.switch, ext.port)
        if port not in inp.injected:
            continue
        tag = hs.tag(inp.ingresses.index(port))
        for dst in inp.network.endpoints:
            if view.delivered.get(dst.qualified, hs.false) & tag != hs.false:
                observed.setdefault(ext.qualified, set()).add(dst.qualified)
