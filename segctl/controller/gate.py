"""What the controller service plugs in and hands back: compiler, verifier, results.

The service never imports the compiler or the verifier directly: it takes a
:class:`Compiler` and a :class:`Verifier` (plain callables), so it can be tested with
small ones and the real ones are wired in one place (:func:`default_compiler`,
:func:`default_verifier`). A missing verifier is an error, never a passing verdict.

Results (:class:`SwitchDiff`, :class:`ChangeResult`, :class:`DriftReport`) are frozen
and have ``to_json``; the API and CLI only format them. A change's answer is a summary
whose size does not grow with the fabric (:meth:`Verification.summary_json`,
:func:`diffs_json`): the reports it summarizes are stored and fetched by id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from segctl.controller.southbound import SwitchMeter
from segctl.errors import SegctlError
from segctl.verifier.properties import SAFETY

if TYPE_CHECKING:
    from segctl.controller.store import Revision
    from segctl.openflow.ofctl import Flow
    from segctl.topology.network import Network

__all__ = [
    "MAX_LISTED_DIFF",
    "MAX_LISTED_VIOLATIONS",
    "SAFETY_PROPERTIES",
    "ChangeResult",
    "Compiler",
    "DriftReport",
    "GateVerifier",
    "NotFound",
    "Progress",
    "SwitchDiff",
    "SwitchTables",
    "Verification",
    "VerificationFailed",
    "Verifier",
    "Violation",
    "default_compiler",
    "default_verifier",
    "diffs_json",
    "flow_sort_key",
]

#: Properties whose violation lets a packet through that must not pass (the verifier's
#: registry says which). These must hold at every step, also while links are down; the
#: others (delivery, loops) may fail while the fabric is partitioned.
SAFETY_PROPERTIES: frozenset[str] = SAFETY
#: Violations a change's answer lists per verification (``violation_count`` has them all, the
#: stored report every counterexample the verifier kept).
MAX_LISTED_VIOLATIONS = 10
#: Flows and meters a change's answer lists, over all its switches; a bigger change is
#: answered with each switch's counts only (its tables: ``GET /v1/switches/{name}/flows``).
MAX_LISTED_DIFF = 1000


class NotFound(SegctlError):
    """The addressed object (revision, tenant, switch, intent) does not exist (HTTP 404)."""


def flow_sort_key(flow: Flow) -> tuple[int, int, str, str]:
    """A deterministic order for flows: table, priority high first, then text.

    The texts are formatted once per flow object (kept by identity, the object held so
    its id is not reused; cleared past :data:`_SORT_KEYS_MAX`): the desired tables and
    the flows of a dump (:func:`segctl.controller.wire.flows_from_dump`) are long-lived
    objects sorted again on every resync and live check.
    """
    known = _sort_keys.get(id(flow))
    if known is not None and known[0] is flow:
        return known[1]
    key = (flow.table, -flow.priority, flow.match_text, flow.actions_text)
    if len(_sort_keys) >= _SORT_KEYS_MAX:
        _sort_keys.clear()
    _sort_keys[id(flow)] = (flow, key)
    return key


_SORT_KEYS_MAX = 1 << 18
_sort_keys: dict[int, tuple[Flow, tuple[int, int, str, str]]] = {}


@dataclass(frozen=True)
class SwitchTables:
    """What one switch must hold: its flows and its meters."""

    flows: frozenset[Flow] = frozenset()
    meters: frozenset[SwitchMeter] = frozenset()


class Compiler(Protocol):
    """Turns a resolved network into the tables of every switch (pure)."""

    def __call__(self, network: Network) -> Mapping[str, SwitchTables]: ...


@dataclass(frozen=True)
class Violation:
    """One failed property: its name, a sentence, and the verifier's evidence (JSON)."""

    property: str
    message: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"property": self.property, "message": self.message, "detail": dict(self.detail)}


@dataclass(frozen=True)
class Verification:
    """A verifier's verdict on a set of flow tables, with its JSON report."""

    passed: bool
    violations: tuple[Violation, ...] = ()
    report: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: Read back from an earlier proof of the same inputs (:mod:`segctl.controller.proofs`);
    #: ``seconds`` is then that proof's, until the service sets it to the time of its call.
    reused: bool = False

    @property
    def verdict(self) -> Literal["pass", "fail"]:
        return "pass" if self.passed else "fail"

    @property
    def safe(self) -> bool:
        """No safety property is violated (delivery may still fail)."""
        return self.passed or not any(v.property in SAFETY_PROPERTIES for v in self.violations)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "safe": self.safe,
            "seconds": round(self.seconds, 6),
            "reused": self.reused,
            "violations": [v.to_json() for v in self.violations],
            "report": dict(self.report),
        }

    def summary_json(self, report_id: int | None) -> dict[str, Any]:
        """The verdict without the report: the first :data:`MAX_LISTED_VIOLATIONS` violations,
        each property's verdict and count, and ``report_id``, the stored report (None when
        none was kept). Its size does not grow with the fabric, unlike the report's matrix."""
        properties = self.report.get("properties")
        return {
            "verdict": self.verdict,
            "safe": self.safe,
            "seconds": round(self.seconds, 6),
            "reused": self.reused,
            "violation_count": len(self.violations),
            "violations": [v.to_json() for v in self.violations[:MAX_LISTED_VIOLATIONS]],
            "properties": [
                {key: p.get(key) for key in ("id", "holds", "violation_count")}
                for p in (properties if isinstance(properties, list) else [])
                if isinstance(p, Mapping)
            ],
            "report_id": report_id,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], *, reused: bool = True) -> Verification:
        """The verification :meth:`to_json` wrote (raises KeyError/TypeError/ValueError when it
        is not one)."""
        verdict = doc["verdict"]
        if verdict not in ("pass", "fail"):
            raise ValueError(f"unknown verdict {verdict!r}")
        violations = tuple(
            Violation(str(v["property"]), str(v["message"]), dict(v["detail"])) for v in doc["violations"]
        )
        return cls(verdict == "pass", violations, dict(doc["report"]), float(doc["seconds"]), reused)


#: Told what a long proof is doing (a message every few seconds); it may raise to stop it.
Progress = Callable[[str], None]


class Verifier(Protocol):
    """Proves properties of flow tables (per switch name) against the network.

    ``progress``, when given, is called every few seconds of a long proof; an exception it
    raises ends the proof (and leaves the verifier usable).
    """

    def __call__(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], *, progress: Progress | None = None
    ) -> Verification: ...


class VerificationFailed(SegctlError):
    """The verifier rejected the compiled rules; nothing was pushed (HTTP 422). ``report_id``
    is the stored gate report of the failed proof."""

    def __init__(
        self, verification: Verification, diffs: Sequence[SwitchDiff] = (), report_id: int | None = None
    ) -> None:
        self.verification = verification
        self.diffs = tuple(diffs)
        self.report_id = report_id
        names = sorted({v.property for v in verification.violations})
        super().__init__(f"verification failed ({', '.join(names) or 'no detail'}); nothing was pushed")


@dataclass(frozen=True)
class SwitchDiff:
    """The change one switch needs: flows to add and remove, meters to set and delete.

    ``remove`` leaves out flows whose (table, priority, match) is re-added: an OpenFlow
    add replaces them in place, so no packet ever sees the key missing.
    """

    switch: str
    add: tuple[Flow, ...] = ()
    remove: tuple[Flow, ...] = ()
    set_meters: tuple[SwitchMeter, ...] = ()
    remove_meters: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add or self.remove or self.set_meters or self.remove_meters)

    def to_json(self) -> dict[str, Any]:
        from segctl.openflow.ofctl import format_flow

        return {
            "switch": self.switch,
            "add": [format_flow(f) for f in self.add],
            "remove": [format_flow(f) for f in self.remove],
            "set_meters": [vars(m) for m in self.set_meters],
            "remove_meters": list(self.remove_meters),
        }


def diffs_json(diffs: Sequence[SwitchDiff]) -> list[dict[str, Any]]:
    """Each switch's diff as counts (``add_count``...), with the lists (``add``, ``remove`` in
    ovs-ofctl form, ``set_meters``, ``remove_meters``) when all of them hold at most
    :data:`MAX_LISTED_DIFF` items together; otherwise the lists are None."""
    listed = sum(len(d.add) + len(d.remove) + len(d.set_meters) + len(d.remove_meters) for d in diffs)
    out = []
    for d in diffs:
        counts = {
            "switch": d.switch,
            "add_count": len(d.add),
            "remove_count": len(d.remove),
            "set_meters_count": len(d.set_meters),
            "remove_meters_count": len(d.remove_meters),
        }
        lists: dict[str, Any] = (
            {k: v for k, v in d.to_json().items() if k != "switch"}
            if listed <= MAX_LISTED_DIFF
            else dict.fromkeys(("add", "remove", "set_meters", "remove_meters"))
        )
        out.append({**counts, **lists})
    return out


@dataclass(frozen=True)
class ChangeResult:
    """The outcome of an intent change, rollback or link event.

    ``status``: ``applied`` (pushed), ``dry_run`` (nothing pushed), ``unchanged`` (same
    content as the current revision). ``pushed`` lists switches that took the change,
    ``pending`` those not connected (they get everything when they connect), ``errors``
    those that refused it (reconciliation retries them). ``gate_report`` and ``live_report``
    are the ids of the stored reports of ``verification`` and ``live`` (None when not kept:
    a dry run's).
    """

    status: Literal["applied", "dry_run", "unchanged"]
    diffs: tuple[SwitchDiff, ...] = ()
    verification: Verification | None = None
    live: Verification | None = None
    live_verdict: str = "unknown"
    revision: Revision | None = None
    pushed: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)
    gate_report: int | None = None
    live_report: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The answer to the change: bounded whatever the fabric's size (the reports are
        summarized, the diff listed only when small; see :func:`diffs_json`)."""
        return {
            "status": self.status,
            "revision": None if self.revision is None else self.revision.to_json(),
            "diff": diffs_json(self.diffs),
            "verification": (
                None if self.verification is None else self.verification.summary_json(self.gate_report)
            ),
            "live_verification": None if self.live is None else self.live.summary_json(self.live_report),
            "live_verdict": self.live_verdict,
            "pushed": list(self.pushed),
            "pending": list(self.pending),
            "errors": dict(self.errors),
        }


@dataclass(frozen=True)
class DriftReport:
    """What reconciliation found on one switch and whether it was repaired."""

    switch: str
    extra: tuple[Flow, ...] = ()
    missing: tuple[Flow, ...] = ()
    meters_wrong: tuple[int, ...] = ()
    repaired: bool = False
    error: str = ""

    @property
    def drift(self) -> bool:
        return bool(self.extra or self.missing or self.meters_wrong)

    def to_json(self) -> dict[str, Any]:
        from segctl.openflow.ofctl import format_flow

        return {
            "switch": self.switch,
            "drift": self.drift,
            "extra": [format_flow(f) for f in self.extra],
            "missing": [format_flow(f) for f in self.missing],
            "meters_wrong": list(self.meters_wrong),
            "repaired": self.repaired,
            "error": self.error,
        }


def default_compiler() -> Compiler:
    """The segctl compiler (:func:`segctl.flows.compiler.compile_network`) as a :class:`Compiler`.

    Each rule becomes ``parse_flow(rule.to_ofctl())``: the controller pushes, diffs and
    verifies exactly the parsed form.
    """
    from segctl.flows.compiler import compile_network
    from segctl.openflow.ofctl import parse_flow

    def compile_tables(network: Network) -> dict[str, SwitchTables]:
        programs = compile_network(network)
        return {
            name: SwitchTables(
                frozenset(parse_flow(rule.to_ofctl()) for rule in program.rules),
                frozenset(SwitchMeter(m.id, m.unit, m.rate, m.burst) for m in program.meters),
            )
            for name, program in programs.items()
        }

    return compile_tables


class GateVerifier:
    """The segctl symbolic verifier as a :class:`Verifier`: one
    :class:`~segctl.verifier.incremental.IncrementalVerifier` (:attr:`incremental`) for every
    call (the gate and the live checks), so each proof re-does only what changed since the
    previous one; its report is the one :func:`segctl.verifier.verify.verify` gives. Not
    re-entrant: the service calls it under its lock (a thread lock here could block the
    controller's green threads).

    Each kept counterexample becomes a :class:`Violation` (property id, message, the
    counterexample JSON); ``report`` is the versioned report document (docs/report.md).
    """

    def __init__(self) -> None:
        from segctl.verifier.incremental import IncrementalVerifier

        self.incremental = IncrementalVerifier()

    def __call__(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], *, progress: Progress | None = None
    ) -> Verification:
        report = self.incremental.verify(network, tables, progress=progress)
        violations = tuple(Violation(c.property, c.message, c.to_json()) for c in report.violations)
        return Verification(report.ok, violations, report.to_json(), report.seconds)


def default_verifier() -> GateVerifier:
    """The verifier the controller runs: a :class:`GateVerifier`."""
    return GateVerifier()
