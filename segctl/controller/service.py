"""The controller service: the one place where the intent or the switches change.

Every change goes validate → compile → verify (gate) → per-switch diff → record → push to
the changed, connected switches only → dump the live flows → verify them → record the
outcome. A bad intent raises :class:`~segctl.errors.IntentError`, one over the cost limits
:class:`~segctl.controller.intake.CostLimitExceeded`, and a failing proof
:class:`~segctl.controller.gate.VerificationFailed`; none pushes anything, and each is
written to the audit log (a bounded summary, never the request).

The os-ken app calls the :class:`~segctl.controller.app.Hooks` methods
(``switch_name``, ``on_switch_connected``, ``on_switch_disconnected``,
``on_link_status``, ``audit``); the REST API calls the rest. Each takes a turn of the
:class:`~segctl.controller.queue.ChangeQueue` (the fabric's own events first, dry runs
last and preemptible, bounded waits for requests), then the lock; reads take neither.
Under eventlet pass a green lock and a queue built on the hub's events, since a blocked
OS-level lock would stall the whole hub.

The CPU-heavy pure steps (validating and resolving a document, compiling a network and
diffing/sorting its tables, every proof) go through ``offload``: called inline by default
(tests, tools), and in an OS thread under the controller's eventlet hub
(:func:`segctl.controller.runner.in_os_thread`), so a proof of several seconds does not
stop the hub (OpenFlow echo replies, port status, the REST API). The turn is held across
the offloaded call: changes stay one at a time, and the verifier, which is not
re-entrant, never runs twice at once.

The port → link state machine lives in :class:`~segctl.controller.linkstate.LinkState`.
While fabric links are down, the network is compiled without them and the gate requires
the safety properties only (``segctl.verifier.properties.SAFETY``: isolation,
conformance, spoof-guard, commit-safety): delivery may fail across a partition. It also
keeps the uplink ports that are down: an external network is compiled, proven and
compared live on its first declared uplink that is up (failover), its standby ports get
no rules. Once a move of the active uplink is pushed, a gratuitous ARP from the external
network's MAC goes out of the new active port (:meth:`ControllerService._announce`).

A change is small steps, each its own method: :meth:`ControllerService._plan` (compile
and diff), :meth:`~ControllerService._gate` (prove; :meth:`~ControllerService._refuse`
when it fails), :meth:`~ControllerService._record` (revision, gate report and audit entry
in one transaction, before anything is pushed), :meth:`~ControllerService._push` (the
diffs to the connected switches), :meth:`~ControllerService._conclude` (live proof, its
verdict and the push entries in one transaction). A controller that dies between the
record and the conclusion finishes the change when it restarts (docs/controller.md).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, TypeVar

from segctl.controller import crashpoint
from segctl.controller.audit import AuditLog, BodySummary, rejection_detail
from segctl.controller.gate import (
    ChangeResult,
    Compiler,
    DriftReport,
    NotFound,
    SwitchDiff,
    SwitchTables,
    Verification,
    VerificationFailed,
    Verifier,
    flow_sort_key,
)
from segctl.controller.intake import (
    CostLimitExceeded,
    CostLimits,
    intent_document,
    prepare_intent,
    resolve_intent,
)
from segctl.controller.linkstate import (
    LinkChange,
    LinkState,
    LinkTuple,
    UplinkChange,
    active_uplinks,
    fabric_link_of,
    fabric_ports,
    uplink_ports,
)
from segctl.controller.metrics import ControllerMetrics
from segctl.controller.plan import compile_tables, diff_summary, diff_tables, plan_change, sorted_tables
from segctl.controller.policy_counters import Counts, policy_counts, sum_counts
from segctl.controller.policy_log import PolicyLogWriter, log_record
from segctl.controller.queue import ChangeQueue, Priority, Turn
from segctl.controller.scope import APPLY, ROLLBACK, ChangeKind, ChangeScope
from segctl.controller.southbound import Southbound
from segctl.controller.store import Revision, Store, canonical_json_in_pieces
from segctl.errors import IntentError, Problem, SwitchError
from segctl.flows.announce import announce_address, gratuitous_arp
from segctl.openflow.ofctl import Flow
from segctl.topology.network import Network

__all__ = [
    "ControllerService",
    "Offload",
    "diff_tables",
    "intent_document",
    "prepare_intent",
    "resolve_intent",
    "run_inline",
]

LOG = logging.getLogger("segctl.controller.service")
SYSTEM = "system"
#: The live verdict of a revision whose push and live proof have not been recorded yet.
PENDING = "pending"

T = TypeVar("T")


class Offload(Protocol):
    """Runs ``func(*args)`` (CPU-bound, touching no shared state) and returns its result or
    raises its exception; the caller waits, but its event loop need not."""

    def __call__(self, func: Callable[..., T], /, *args: Any) -> T: ...


def _report_json(verification: Verification, extra: Mapping[str, Any]) -> str:
    return canonical_json_in_pieces({**verification.to_json(), **extra})


def run_inline(func: Callable[..., T], /, *args: Any) -> T:
    """The default :class:`Offload`: just call ``func`` (no event loop to keep running)."""
    return func(*args)


@dataclass(frozen=True)
class Origin:
    """Who asked for a change and what: the audit's actor, the change's scope, the revision a
    rollback restores, and the summary of the request body it came in (if any)."""

    actor: str
    scope: ChangeScope = APPLY
    parent: int | None = None
    body: BodySummary | None = None


@dataclass(frozen=True)
class Plan:
    """A change compiled: the declared network, the one compiled (links down left out), every
    switch's desired tables, the diffs from the current ones, and the tables the gate proves."""

    network: Network
    effective: Network
    desired: dict[str, SwitchTables]
    diffs: tuple[SwitchDiff, ...]
    tables: dict[str, list[Flow]]


@dataclass(frozen=True)
class Gate:
    """The gate's proof of a plan, and whether the change may go ahead."""

    verification: Verification
    accepted: bool


@dataclass(frozen=True)
class Pushed:
    """What a push did: switches that took their diff, those not connected, those that refused."""

    switches: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)


class ControllerService:
    """Holds the current network and desired tables; performs every change."""

    def __init__(
        self,
        store: Store,
        southbound: Southbound,
        verifier: Verifier,
        audit: AuditLog,
        *,
        compiler: Compiler,
        metrics: ControllerMetrics | None = None,
        lock: AbstractContextManager[Any] | None = None,
        offload: Offload = run_inline,
        queue: ChangeQueue | None = None,
        limits: CostLimits | None = None,
        policy_log: PolicyLogWriter | None = None,
    ) -> None:
        self.store = store
        #: Where logged decisions go (``controller run --policy-log FILE``); None: not kept.
        self.policy_log = policy_log
        self.southbound = southbound
        self.verifier = verifier
        self.audit_log = audit
        self.compiler = compiler
        self.metrics = metrics or ControllerMetrics()
        self._lock: AbstractContextManager[Any] = lock if lock is not None else threading.RLock()
        self._offload = offload
        #: Who goes next (priorities, preemptible dry runs, bounded waits).
        self.queue = queue or ChangeQueue()
        self.limits = limits or CostLimits()
        self._declared: Network | None = None  # the current intent, resolved
        self._desired: dict[str, SwitchTables] = {}
        self._policy_counts: dict[str, Counts] = {}  # per switch, from its last reconciliation
        self._links = LinkState()
        self._revision: int | None = None
        # switches that have not been given their tables since they (re)connected, or since
        # an intent was loaded or applied while they were away; no resync proves the fabric
        # while one is left (it may be connected, its own resync queued behind this one)
        self._unsynced: set[str] = set()
        # switches whose resync is waiting for its turn: the periodic audit leaves them to it
        # (it would find their tables empty and call that drift, then repair it twice over)
        self._connecting: set[str] = set()

    # -- state --------------------------------------------------------------------------

    def load_current(self) -> ChangeResult | None:
        """Load the store's current revision (no push: switches sync when they connect)."""
        with self._turn(Priority.URGENT, SYSTEM, bounded=False):
            current = self.store.current()
            if current is None:
                return None
            document = self.store.revision_document(current.id)
            network = self._offload(resolve_intent, document, f"revision {current.id}")
            self._declared = network
            self._desired = self._offload(compile_tables, self.compiler, self._effective(network))
            self._unsynced = {sw.name for sw in network.switches}
            self._revision = current.id
            self._update_rule_metrics()
            self.metrics.revision.set(current.id)
            if current.live_verdict == PENDING:
                LOG.warning(
                    "revision %d was recorded but the controller stopped before its outcome: "
                    "the switches get it when they connect, then it is proven live",
                    current.id,
                )
            return ChangeResult("unchanged", revision=current)

    @property
    def network(self) -> Network | None:
        """The declared network of the current intent (None before the first one)."""
        return self._declared

    @property
    def down_links(self) -> frozenset[LinkTuple]:
        return self._links.down

    def document(self) -> dict[str, Any]:
        """The current intent document; :class:`NotFound` when there is none yet."""
        if self._declared is None:
            raise NotFound("no intent has been applied yet")
        return intent_document(self._declared.intent)

    def tenant_document(self, name: str) -> dict[str, Any]:
        for tenant in self.document().get("tenants", []):
            if tenant.get("name") == name:
                return dict(tenant)
        raise NotFound(f"tenant {name} does not exist")

    def desired(self, switch: str) -> SwitchTables:
        return self._desired.get(switch, SwitchTables())

    def switch_name(self, dpid: int) -> str | None:
        """The fabric name of ``dpid`` in the current intent (Hooks)."""
        if self._declared is None:
            return None
        return next((s.name for s in self._declared.switches if s.dpid == dpid), None)

    def switches(self) -> list[dict[str, Any]]:
        """Every fabric switch: dpid, connected, desired rule and meter counts."""
        if self._declared is None:
            return []
        connected = self.southbound.connected_switches()
        return [
            {
                "name": s.name,
                "dpid": f"{s.dpid:#018x}",
                "connected": s.name in connected,
                "rules": len(self.desired(s.name).flows),
                "meters": len(self.desired(s.name).meters),
            }
            for s in self._declared.switches
        ]

    def switch_flows(self, name: str, *, live: bool = True) -> dict[str, Any]:
        """Desired flows of a switch, and its live flows when it is connected."""
        from segctl.openflow.ofctl import format_flow

        if self._declared is None or name not in {s.name for s in self._declared.switches}:
            raise NotFound(f"switch {name} is not in the fabric")
        desired = sorted(self.desired(name).flows, key=flow_sort_key)
        out: dict[str, Any] = {"switch": name, "desired": [format_flow(f) for f in desired]}
        if live and name in self.southbound.connected_switches():
            # No turn: a read never waits for a proof (the switch answers with what it holds,
            # before or after a bundle, never half of one).
            dumped = sorted(self.southbound.dump(name), key=flow_sort_key)
            out["live"] = [format_flow(f) for f in dumped]
            out["in_sync"] = set(dumped) == set(desired)
        return out

    # -- intent changes -------------------------------------------------------------------

    def apply(
        self,
        document: Any,
        *,
        actor: str,
        dry_run: bool = False,
        scope: ChangeScope = APPLY,
        parent: int | None = None,
        source: str = "request body",
        body: BodySummary | None = None,
    ) -> ChangeResult:
        """Validate, compile, verify and (unless ``dry_run``) push and record an intent.

        ``body`` summarizes the request the document came in, for the audit entry of a refusal.
        """
        origin = Origin(actor, scope, parent, body)
        with self._turn(Priority.TRIAL if dry_run else Priority.CHANGE, actor) as turn:
            try:
                network, digest = self._offload(prepare_intent, document, source, self.limits, scope.tenant)
            except IntentError as exc:
                self._reject_invalid(origin, exc, dry_run)
                raise
            except CostLimitExceeded as exc:
                if not dry_run:
                    self._reject(origin, "cost", [{"message": str(exc)}], what="problems")
                raise
            turn.check()
            current = None if dry_run or self._revision is None else self.store.revision(self._revision)
            if current is not None and digest == current.sha256:
                return ChangeResult("unchanged", revision=current)
            return self._change(network, origin, dry_run=dry_run, turn=turn)

    def update_tenant(
        self,
        name: str,
        tenant: Any,
        *,
        actor: str,
        dry_run: bool = False,
        allow_create: bool = False,
        body: BodySummary | None = None,
    ) -> ChangeResult:
        """Replace one tenant's document; the fabric, other tenants and shared services stay."""
        scope = ChangeScope.of_tenant(name)
        with self._turn(Priority.TRIAL if dry_run else Priority.CHANGE, actor):
            current = self.document()
            problem = None
            if not isinstance(tenant, dict):
                problem = Problem(f"tenants[{name}]", "a tenant is a JSON object")
            elif tenant.get("name", name) != name:
                problem = Problem(
                    f"tenants[{name}].name", f"the body names tenant {tenant.get('name')!r}, not {name}"
                )
            if problem is not None:
                error = IntentError([problem])
                self._reject_invalid(Origin(actor, scope, body=body), error, dry_run)
                raise error
            tenant = {**tenant, "name": name}
            tenants = list(current.get("tenants", []))
            index = next((i for i, t in enumerate(tenants) if t.get("name") == name), None)
            if index is None:
                if not allow_create:
                    raise NotFound(f"tenant {name} does not exist")
                tenants.append(tenant)
            else:
                tenants[index] = tenant
            return self.apply(
                {**current, "tenants": tenants}, actor=actor, dry_run=dry_run, scope=scope, body=body
            )

    def rollback(self, revision: int, *, actor: str, dry_run: bool = False) -> ChangeResult:
        """Apply an earlier revision's document again (a new revision with ``parent``)."""
        from segctl.controller.store import StoreError

        with self._turn(Priority.TRIAL if dry_run else Priority.CHANGE, actor):
            try:
                document = self.store.revision_document(revision)
            except StoreError as exc:
                raise NotFound(str(exc)) from None
            return self.apply(
                document,
                actor=actor,
                dry_run=dry_run,
                scope=ROLLBACK,
                parent=revision,
                source=f"revision {revision}",
            )

    def verify_live(self, *, actor: str) -> ChangeResult:
        """Dump every connected switch and verify what they hold now (records a report)."""
        with self._turn(Priority.TRIAL, actor) as turn:
            if self._declared is None:
                raise NotFound("no intent has been applied yet")
            live, verdict, report = self._verify_live(progress=turn.check)
            self.audit_log.append(
                actor=actor, action="verify.live", object="fabric", detail={"verdict": verdict}
            )
            self._settle_live(verdict)
            return ChangeResult("unchanged", live=live, live_verdict=verdict, live_report=report)

    # -- switch events (Hooks) ----------------------------------------------------------

    def on_switch_connected(self, switch: str) -> None:
        """A known switch (re)connected: replace all its rules and meters with the desired ones."""
        self._connecting.add(switch)
        try:
            self._resync(switch)
        finally:
            self._connecting.discard(switch)

    def _resync(self, switch: str) -> None:
        with self._turn(Priority.URGENT, SYSTEM, bounded=False):
            started = time.perf_counter()
            tables = self.desired(switch)
            try:
                self.southbound.resync(switch, sorted(tables.flows, key=flow_sort_key), sorted(tables.meters))
            except SwitchError as exc:
                self.metrics.pushes.inc(switch=switch, result="error")
                self.audit_log.append(
                    actor=SYSTEM,
                    action="switch.resync_failed",
                    object=f"switch/{switch}",
                    detail={"error": str(exc)},
                )
                return
            self.metrics.pushes.inc(switch=switch, result="ok")
            self._unsynced.discard(switch)
            connected = self.southbound.connected_switches()
            self.metrics.connected.set(len(connected))
            detail: dict[str, object] = {
                "flows": len(tables.flows),
                "meters": len(tables.meters),
                "revision": self._revision,
                "seconds": round(time.perf_counter() - started, 3),
            }
            # A resynced switch is proven again, but only once the whole fabric is there and
            # synced: while switches are still connecting, a live proof could only say
            # "partial", and one with empty tables waiting for its resync would fail it.
            if self._declared is not None and all(
                sw.name in connected and sw.name not in self._unsynced for sw in self._declared.switches
            ):
                started = time.perf_counter()
                _, verdict, _ = self._verify_live()
                detail["live_verdict"] = verdict
                detail["live_seconds"] = round(time.perf_counter() - started, 3)
            self.audit_log.append(
                actor=SYSTEM, action="switch.resync", object=f"switch/{switch}", detail=detail
            )
            if "live_verdict" in detail:
                self._settle_live(verdict)

    def on_switch_disconnected(self, switch: str) -> None:
        self._unsynced.add(switch)
        self.metrics.connected.set(len(self.southbound.connected_switches()))
        self.audit_log.append(actor=SYSTEM, action="switch.disconnected", object=f"switch/{switch}")

    def on_link_status(self, switch: str, port: int, up: bool) -> None:
        """A port changed state; a fabric link going down or up moves paths (Hooks)."""
        self.link_status(switch, port, up)

    def on_packet_in(self, switch: str, cookie: int, in_port: int | None, data: bytes) -> None:
        """A logged decision (Hooks): one policy log line. Takes no lock (event loop)."""
        if self.policy_log is not None:
            self.policy_log.write(log_record(self._declared, switch, cookie, in_port, data, time.time()))

    def on_port_states(self, switch: str, ports: Mapping[int, bool]) -> None:
        """Every port of ``switch``, read when it (re)connected (Hooks): see :meth:`port_states`."""
        self.port_states(switch, ports)

    def port_states(self, switch: str, ports: Mapping[int, bool]) -> list[ChangeResult]:
        """Feed the state of each declared fabric port and uplink port of ``switch`` to the
        link state.

        ``ports`` maps every port the switch has to up/down; a declared fabric or uplink port
        missing from it is down. Other edge ports are not looked at. The links and active
        uplinks that changed (several may have while the switch was away) are recompiled,
        verified and pushed together, as one change; the change made is returned (an empty
        list when nothing changed). An uplink port whose state changed without moving an
        active uplink (a standby) is logged ``port.up``/``port.down``.
        """
        with self._turn(Priority.URGENT, SYSTEM, bounded=False):
            if self._declared is None:
                return []
            fabric = fabric_ports(self._declared, switch)
            uplinks = sorted(p for s, p in uplink_ports(self._declared) if s == switch)
            events = [(port, ports.get(port, False)) for port in [*fabric, *uplinks]]
            result = self._port_events(switch, events)
            return [] if result is None else [result]

    def link_status(self, switch: str, port: int, up: bool) -> ChangeResult | None:
        """Like :meth:`on_link_status`, returning the change (None for edge ports or no-ops).

        The link is down while either end is down; "up" from one end while the other is
        still down changes nothing. A declared uplink port moves its external network's
        active uplink when it is the active one going down, or an earlier declared one (or
        any, after all were down) coming up; a standby port changes nothing but the log.
        """
        return self._port_events(switch, [(port, up)])

    def _port_events(self, switch: str, events: Sequence[tuple[int, bool]]) -> ChangeResult | None:
        """Apply port up/down events of one switch; recompile once if some fabric link or
        some external network's active uplink changed. Edge port events that move no
        uplink are logged ``port.up``/``port.down``: each one of a plain edge port, and of
        a declared uplink port only those that changed its recorded state (a standby)."""
        with self._turn(Priority.URGENT, SYSTEM, bounded=False):
            if self._declared is None:
                return None
            declared = self._declared
            changed: list[LinkChange | UplinkChange] = []
            edge: list[tuple[int, bool]] = []
            for port, up in events:
                link = fabric_link_of(declared, switch, port)
                if link is None:
                    edge.append((port, up))
                elif (link_change := self._links.port_event(link, switch, port, up)) is not None:
                    changed.append(link_change)
            moved, flipped = self._links.edge_events(declared, switch, edge)
            causes = {move.port for move in moved}
            uplinks = uplink_ports(declared)
            for port, up in edge:
                if (switch, port) not in uplinks or (port in flipped and (switch, port) not in causes):
                    self._audit_port(switch, port, up)
            changed.extend(moved)
            if not changed:
                return None
            kinds = {c.action for c in changed}
            scope = ChangeScope(ChangeKind(kinds.pop()) if len(kinds) == 1 else ChangeKind.LINK_CHANGE)
            announced: dict[str, dict[str, Any]] = {}

            def announce(plan: Plan, pushed: Pushed) -> None:
                for change in (c for c in changed if isinstance(c, UplinkChange) and not c.all_down):
                    announced[change.name] = self._announce(plan.effective, change, pushed)

            try:
                result = self._change(
                    self._declared, Origin(SYSTEM, scope), dry_run=False, record=False, after_push=announce
                )
            except VerificationFailed as exc:
                # The link state is a fact; the old rules stay until a safe set exists.
                for change in changed:
                    LOG.error(
                        "%s: %s: recomputed rules fail verification; keeping the current rules",
                        change.name,
                        change.action,
                    )
                    self.audit_log.append(
                        actor=SYSTEM,
                        action=f"{change.action}.rejected",
                        object=change.name,
                        detail={**change.detail, "error": str(exc)},
                    )
                return None
            for change in changed:
                if isinstance(change, UplinkChange):
                    LOG.warning(
                        "%s: %s, active uplink now %s", change.name, change.action, change.detail["active"]
                    )
                self.audit_log.append(
                    actor=SYSTEM,
                    action=change.action,
                    object=change.name,
                    detail={
                        **change.detail,
                        "pushed": list(result.pushed),
                        "live_verdict": result.live_verdict,
                        **({"announced": announced[change.name]} if change.name in announced else {}),
                    },
                )
            return result

    def _announce(self, network: Network, change: UplinkChange, pushed: Pushed) -> dict[str, Any]:
        """After an uplink move was pushed: a gratuitous ARP from the external network's MAC
        out of its new active port (:mod:`segctl.flows.announce`), so the upstream switch learns
        the MAC there at once. Not sent when that port's switch did not take the new rules
        (refused, or not connected) or the fabric has no public address there. Returns the
        audit detail: port, address and MAC sent, or why nothing was (``skipped``/``error``)."""
        switch, port = change.active
        out: dict[str, Any] = {"port": f"{switch}:{port}"}
        ext = network.external(change.external)
        if switch in pushed.errors or switch in pushed.pending:
            return {**out, "skipped": f"{switch} did not take the new rules"}
        address = announce_address(network, ext)
        if address is None:
            return {**out, "skipped": "no public address on the uplink"}
        out.update(ip=str(address), mac=ext.mac)
        try:
            self.southbound.packet_out(switch, port, gratuitous_arp(ext.mac, address))
        except SwitchError as exc:
            LOG.error("%s: gratuitous ARP out of %s:%d failed: %s", change.name, switch, port, exc)
            return {**out, "error": str(exc)}
        LOG.info("%s: gratuitous ARP for %s (%s) out of %s:%d", change.name, address, ext.mac, switch, port)
        return out

    def _audit_port(self, switch: str, port: int, up: bool) -> None:
        """A ``port.up``/``port.down`` entry for an edge port; a declared uplink port's names
        its external network and the active uplink (a standby, or every uplink down)."""
        assert self._declared is not None
        external = uplink_ports(self._declared).get((switch, port))
        detail: dict[str, Any] | None = None
        if external is not None:
            active = active_uplinks(self._effective(self._declared))[external]
            detail = {"uplink": external, "active": f"{active[0]}:{active[1]}"}
        self.audit_log.append(
            actor=SYSTEM,
            action="port.up" if up else "port.down",
            object=f"port/{switch}:{port}",
            detail=detail,
        )

    def audit(self) -> None:
        """Periodic reconciliation of every connected switch (Hooks)."""
        self.reconcile()

    def reconcile(self, switch: str | None = None, *, actor: str = SYSTEM) -> list[DriftReport]:
        """Compare live flows and meters with the desired ones; log and repair drift. Without
        ``switch``: every connected switch but those whose resync waits for its turn."""
        with self._turn(Priority.CHANGE, actor, bounded=actor != SYSTEM):
            connected = self.southbound.connected_switches()
            if switch is not None:
                names = [switch]
            else:  # a switch whose resync is queued gets its tables from it, not from an audit
                names = sorted(name for name in connected if name not in self._connecting)
            return [self._reconcile_one(name, actor) for name in names]

    # -- a change: plan -> gate -> push -> record ---------------------------------------

    def _effective(self, network: Network) -> Network:
        """``network`` as the fabric is now: without the links that are down, each external
        network on its first declared uplink that is up. Everything compiled, proven or
        compared with the switches (gate, live proofs, load) uses this, never the declared one."""
        return self._links.effective(network)

    @contextmanager
    def _turn(self, priority: Priority, owner: str, *, bounded: bool = True) -> Iterator[Turn]:
        """This caller's turn (:class:`~segctl.controller.queue.ChangeQueue`), then the lock."""
        with self.queue.turn(priority, owner, bounded=bounded) as turn, self._lock:
            yield turn

    def _verify(
        self,
        network: Network,
        tables: Mapping[str, Sequence[Flow]],
        stage: str,
        progress: Callable[[str], None] | None = None,
    ) -> Verification:
        """Prove ``tables`` (offloaded). ``progress`` (a preemptible turn's check) is handed to the
        verifier, which calls it every few seconds; it raises to stop the proof."""
        started = time.perf_counter()
        verifier = self.verifier if progress is None else functools.partial(self.verifier, progress=progress)
        result = self._offload(verifier, network, tables)
        seconds = time.perf_counter() - started
        self.metrics.verification_seconds.observe(seconds, stage=stage)
        self.metrics.verification_pass.set(1 if result.passed else 0, stage=stage)
        return dataclasses.replace(result, seconds=seconds)

    def _change(
        self,
        network: Network,
        origin: Origin,
        *,
        dry_run: bool,
        record: bool = True,
        turn: Turn | None = None,
        after_push: Callable[[Plan, Pushed], None] | None = None,
    ) -> ChangeResult:
        """Plan, gate, record, push, conclude (the steps in the module docstring); ``after_push``
        runs right after the push, before the live proof (an uplink move's announcement)."""
        plan = self._plan(network)
        crashpoint.reached("compiled")
        # a dry run gives way to a change or a switch event, between steps and during its proof
        progress = turn.check if turn is not None and turn.priority == Priority.TRIAL else None
        if progress is not None:
            progress("compiled")
        gate = self._gate(plan, progress)
        crashpoint.reached("gated")
        if dry_run:
            return ChangeResult("dry_run", plan.diffs, gate.verification)
        if not gate.accepted:
            self._refuse(plan, gate, origin)
        revision, gate_report = self._record(plan, gate, origin) if record else (None, None)
        crashpoint.reached("recorded")
        try:
            pushed = self._push(plan.diffs)
            crashpoint.reached("pushed")
            if after_push is not None:
                after_push(plan, pushed)
        finally:
            self._adopt(plan)  # the store says so from _record on, whatever the push did
        return self._conclude(plan, gate, pushed, origin, revision, gate_report)

    def _plan(self, network: Network) -> Plan:
        """Compile ``network`` without the links that are down; diff it from the desired tables."""
        effective = self._effective(network)
        desired, diffs, tables = self._offload(plan_change, self.compiler, effective, dict(self._desired))
        return Plan(network, effective, desired, tuple(diffs), tables)

    def _gate(self, plan: Plan, progress: Callable[[str], None] | None = None) -> Gate:
        """Prove the plan's tables. A change goes ahead when the proof passes, or when links are
        down and only delivery fails (the safety properties hold)."""
        verification = self._verify(plan.effective, plan.tables, "gate", progress)
        return Gate(verification, verification.passed or (bool(self._links.down) and verification.safe))

    def _refuse(self, plan: Plan, gate: Gate, origin: Origin) -> NoReturn:
        """Record a gate that failed and raise :class:`VerificationFailed` (nothing was pushed)."""
        verification = gate.verification
        report = self.store.add_report(
            kind="gate", verdict=verification.verdict, body=self._report_text(verification), revision=None
        )
        violations = [v.to_json() for v in verification.violations]
        self._reject(origin, "verification", violations, what="violations")
        raise VerificationFailed(verification, plan.diffs, report)

    def _push(self, diffs: Iterable[SwitchDiff]) -> Pushed:
        """Each diff to its switch when it is connected (one atomic bundle each)."""
        connected = self.southbound.connected_switches()
        pushed: list[str] = []
        pending: list[str] = []
        errors: dict[str, str] = {}
        for diff in diffs:
            if diff.switch not in connected:
                pending.append(diff.switch)
                continue
            try:
                self.southbound.push(
                    diff.switch,
                    remove=diff.remove,
                    add=diff.add,
                    meters=diff.set_meters,
                    remove_meters=diff.remove_meters,
                )
            except SwitchError as exc:
                errors[diff.switch] = str(exc)
                self.metrics.pushes.inc(switch=diff.switch, result="error")
                LOG.error("push to %s failed: %s", diff.switch, exc)
                continue
            pushed.append(diff.switch)
            self.metrics.pushes.inc(switch=diff.switch, result="ok")
        return Pushed(tuple(pushed), tuple(pending), errors)

    def _adopt(self, plan: Plan) -> None:
        """Make the plan's network and tables the current ones; switches it names that were
        connected as strangers are taken on (resynced after this change)."""
        named_before = self._switch_dpids()
        self._declared, self._desired = plan.network, plan.desired
        connected = self.southbound.connected_switches()
        self._unsynced = {sw.name for sw in plan.network.switches if sw.name not in connected}
        self._update_rule_metrics()
        if self._switch_dpids() != named_before:
            self.southbound.intent_switches_changed()

    def _switch_dpids(self) -> frozenset[tuple[str, int]]:
        return (
            frozenset()
            if self._declared is None
            else frozenset((s.name, s.dpid) for s in self._declared.switches)
        )

    def _record(self, plan: Plan, gate: Gate, origin: Origin) -> tuple[Revision, int]:
        """Before anything is pushed, in one transaction: the revision (current from now on,
        its live verdict ``pending``), its gate report and its audit entry; returns the
        revision and the report's id. A controller that dies after this finishes the change
        when it restarts (:meth:`load_current`); one that dies before it never made the change."""
        verification = gate.verification
        with self.store.db.transaction():
            if self._revision is not None and self.store.revision(self._revision).live_verdict == PENDING:
                # left unfinished by a controller that died, never proven live: replaced now
                self._record_live_verdict(self._revision, "superseded", actor=SYSTEM, recovered=True)
            revision = self.store.add_revision(
                intent_document(plan.network.intent),
                author=origin.actor,
                kind=str(origin.scope),
                verdict=verification.verdict,
                summary=diff_summary(plan.diffs),
                parent=origin.parent,
                live_verdict=PENDING,
            )
            report = self.store.add_report(
                kind="gate",
                verdict=verification.verdict,
                body=self._report_text(verification),
                revision=revision.id,
            )
            self.audit_log.append(
                actor=origin.actor,
                action=origin.scope.action,
                object=origin.scope.object,
                detail={
                    "kind": str(origin.scope),
                    "revision": revision.id,
                    "sha256": revision.sha256,
                    "parent": origin.parent,
                    "verdict": verification.verdict,
                    "switches": [d.switch for d in plan.diffs],
                },
            )
        self._revision = revision.id
        self.metrics.revision.set(revision.id)
        return revision, report

    def _conclude(
        self,
        plan: Plan,
        gate: Gate,
        pushed: Pushed,
        origin: Origin,
        revision: Revision | None,
        gate_report: int | None,
    ) -> ChangeResult:
        """After the push: prove what the switches hold now; record the outcome (the live
        verdict, an ``intent.live`` entry, one entry per switch pushed or refused) in one
        transaction. A link event (no revision) records its gate report here."""
        verification = gate.verification
        live, live_verdict, live_report = self._verify_live()
        if pushed.errors:
            live_verdict = "error"
        crashpoint.reached("verified")
        with self.store.db.transaction():
            if revision is None:
                gate_report = self.store.add_report(
                    kind="gate",
                    verdict=verification.verdict,
                    body=self._report_text(verification),
                    revision=self._revision,
                )
            else:
                revision = self._record_live_verdict(revision.id, live_verdict, actor=origin.actor)
            self._audit_push(plan.diffs, pushed, actor=origin.actor)
        return ChangeResult(
            "applied",
            plan.diffs,
            verification,
            live,
            live_verdict,
            revision,
            pushed.switches,
            pushed.pending,
            pushed.errors,
            gate_report,
            live_report,
        )

    def _settle_live(self, verdict: str) -> None:
        """After a live proof of the whole fabric (``pass`` or ``fail``): the current revision's
        live verdict when it was not known yet: ``pending`` (a controller died before
        recording it; the entry says ``recovered``), ``unknown`` or ``partial`` (applied
        while switches were away)."""
        if self._revision is None or verdict not in ("pass", "fail"):
            return
        current = self.store.revision(self._revision)
        if current.live_verdict not in (PENDING, "unknown", "partial"):
            return
        recovered = current.live_verdict == PENDING
        self._record_live_verdict(current.id, verdict, actor=SYSTEM, recovered=recovered)
        if recovered:
            LOG.warning("revision %d, left unfinished by a stopped controller: live %s", current.id, verdict)

    def _record_live_verdict(
        self, revision: int, verdict: str, *, actor: str, recovered: bool = False
    ) -> Revision:
        """A revision's live verdict and its ``intent.live`` entry (one transaction)."""
        with self.store.db.transaction():
            self.store.set_live_verdict(revision, verdict)
            detail: dict[str, Any] = {"revision": revision, "live_verdict": verdict}
            if recovered:
                detail["recovered"] = True
            self.audit_log.append(actor=actor, action="intent.live", object="intent", detail=detail)
        return self.store.revision(revision)

    def _audit_push(self, diffs: Sequence[SwitchDiff], pushed: Pushed, *, actor: str) -> None:
        for diff in diffs:
            if diff.switch in pushed.switches:
                self.audit_log.append(
                    actor=actor,
                    action="switch.push",
                    object=f"switch/{diff.switch}",
                    detail={"add": len(diff.add), "remove": len(diff.remove), "revision": self._revision},
                )
        for name, error in pushed.errors.items():
            self.audit_log.append(
                actor=actor, action="switch.push_failed", object=f"switch/{name}", detail={"error": error}
            )

    # -- live proofs and drift ----------------------------------------------------------
    def _verify_live(
        self, progress: Callable[[str], None] | None = None
    ) -> tuple[Verification | None, str, int | None]:
        """Verify what the switches hold now; ``partial`` when some are not connected. Returns
        the proof, its verdict and the id of its stored report (None when there was no proof)."""
        if self._declared is None:
            return None, "unknown", None
        connected = self.southbound.connected_switches()
        dumped: dict[str, list[Flow]] = {}
        missing: list[str] = []
        for sw in self._declared.switches:
            if sw.name not in connected:
                missing.append(sw.name)
                continue
            try:
                dumped[sw.name] = self.southbound.dump(sw.name)
            except SwitchError:
                missing.append(sw.name)
        if not dumped:
            return None, "unknown", None
        tables = self._offload(sorted_tables, dumped)  # new flow objects: their texts are formatted
        live = self._verify(self._effective(self._declared), tables, "live", progress)
        verdict = "fail" if not live.passed else ("partial" if missing else "pass")
        body = self._report_text(live, switches_missing=missing)
        report = self.store.add_report(kind="live", verdict=verdict, body=body, revision=self._revision)
        return live, verdict, report

    def _report_text(self, verification: Verification, **extra: Any) -> str:
        """The stored text of a verification report (with ``extra`` keys), encoded by the
        offload: the report of a dense fabric is tens of MB."""
        return self._offload(_report_json, verification, extra)

    def _reconcile_one(self, switch: str, actor: str) -> DriftReport:
        want = self.desired(switch)
        try:
            counted = self.southbound.dump_counted(switch)
            live_meters = set(self.southbound.dump_meters(switch))
        except SwitchError as exc:
            return DriftReport(switch, error=str(exc))
        live_flows = {c.flow for c in counted}
        self._publish_policy_counts(switch, policy_counts(self._declared, {switch: counted}))
        extra = tuple(sorted(live_flows - want.flows, key=flow_sort_key))
        missing = tuple(sorted(want.flows - live_flows, key=flow_sort_key))
        diff = diff_tables(switch, SwitchTables(frozenset(live_flows), frozenset(live_meters)), want)
        meters_wrong = tuple(sorted({m.meter_id for m in diff.set_meters} | set(diff.remove_meters)))
        report = DriftReport(switch, extra, missing, meters_wrong)
        if not report.drift:
            return report
        LOG.warning("drift on %s: %d extra, %d missing flows", switch, len(extra), len(missing))
        self.audit_log.append(
            actor=actor,
            action="drift.detected",
            object=f"switch/{switch}",
            detail={"extra": len(extra), "missing": len(missing), "meters": list(meters_wrong)},
        )
        try:
            self.southbound.push(
                switch,
                remove=diff.remove,
                add=diff.add,
                meters=diff.set_meters,
                remove_meters=diff.remove_meters,
            )
        except SwitchError as exc:
            self.metrics.pushes.inc(switch=switch, result="error")
            return DriftReport(switch, extra, missing, meters_wrong, False, str(exc))
        self.metrics.pushes.inc(switch=switch, result="ok")
        self.metrics.drift_repairs.inc(len(extra) + len(missing) + len(meters_wrong), switch=switch)
        self.audit_log.append(actor=actor, action="drift.repaired", object=f"switch/{switch}")
        return DriftReport(switch, extra, missing, meters_wrong, True)

    def _reject_invalid(self, origin: Origin, error: IntentError, dry_run: bool) -> None:
        if not dry_run:
            self._reject(origin, "invalid", [p.to_json() for p in error.problems], what="problems")

    def _reject(self, origin: Origin, reason: str, items: list[dict[str, Any]], *, what: str) -> None:
        """One ``intent.rejected`` entry: a bounded summary, never the request body."""
        self.metrics.rejected.inc(reason=reason)
        detail = rejection_detail(str(origin.scope), reason, items, what=what, body=origin.body)
        self.audit_log.append(actor=origin.actor, action="intent.rejected", object="intent", detail=detail)

    def _publish_policy_counts(self, switch: str, counts: Counts) -> None:
        """Keep ``switch``'s counts and publish the sum over the intent's switches."""
        self._policy_counts[switch] = counts
        for name in set(self._policy_counts) - set(self._desired):
            del self._policy_counts[name]
        total = sum_counts(self._policy_counts.values())
        m = self.metrics
        m.policy_packets.publish({m.policy_packets.labels_key(**k._asdict()): v[0] for k, v in total.items()})
        m.policy_bytes.publish({m.policy_bytes.labels_key(**k._asdict()): v[1] for k, v in total.items()})

    def _update_rule_metrics(self) -> None:
        for name, tables in self._desired.items():
            self.metrics.rules.set(len(tables.flows), switch=name)
