"""Proofs remembered across controller restarts: the same inputs are never proven twice.

A verdict of the verifier is a function of its inputs alone: the resolved intent (its
normalized document, in which the links that are down are already left out, see
:func:`~segctl.controller.linkstate.without_links`, and the active uplink of each external
network that failed over to a standby, which the document does not show), the flow tables
of every switch in the order given (the report names flows by their line), and the
verifier's own code.
:func:`proof_inputs` hashes all three; :func:`remembering` wraps a
:class:`~segctl.controller.gate.Verifier` so that a proof whose inputs are in the store is
read back instead of computed again, marked ``reused``.

This is what makes a restart cheap on a big fabric: the controller proves the compiled
tables before it pushes them and the live tables after, and with an unchanged intent both
are the tables it proved before it stopped (the full proof of fat-tree k=8 with 2,000
endpoints takes over half an hour; reading it back takes milliseconds). Any change to the
intent, to one flow, to the order of a dump, to the code a verdict is computed with (the
source files of ``segctl.verifier`` and of what it imports, ``segctl.openflow`` and
``segctl.topology``) or to the report schema version misses, and the verifier runs as
before. The compiler, the report renderers and the controller are not in the hash: editing
them keeps every remembered proof. A read-back leaves an incremental verifier cold;
:meth:`RememberingVerifier.warm_up` (run in the background by ``segctl controller run
--warm-after``) proves those tables once more so that the next change is incremental.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from segctl.controller.gate import Progress, Verification, Verifier
from segctl.controller.metrics import ControllerMetrics
from segctl.controller.service import intent_document
from segctl.controller.store import Store, content_hash

if TYPE_CHECKING:
    from segctl.openflow.ofctl import Flow
    from segctl.topology.network import Network

__all__ = [
    "VERDICT_PACKAGES",
    "RememberingVerifier",
    "WarmUpCancelled",
    "code_fingerprint",
    "proof_inputs",
    "remembering",
    "verifier_fingerprint",
]

LOG = logging.getLogger(__name__)
#: Packages whose code decides a verdict: the verifier and the packages it imports (the flow
#: text it reads, the intent model and the expected relation it checks against).
VERDICT_PACKAGES = ("verifier", "openflow", "topology")


@cache
def verifier_fingerprint() -> str:
    """A hash of what decides a verdict: :func:`code_fingerprint` of segctl's own sources,
    and the versions of the BDD package and its backend."""
    from segctl.verifier.headerspace import BACKEND

    digest = hashlib.sha256(code_fingerprint(Path(__file__).resolve().parents[1]).encode())
    digest.update(f"dd {metadata.version('dd')} {BACKEND}".encode())
    return digest.hexdigest()


def code_fingerprint(package_root: Path) -> str:
    """A hash of every source file of :data:`VERDICT_PACKAGES` under ``package_root`` (the
    ``segctl`` directory) and of the report schema version."""
    from segctl.verifier.report import SCHEMA_VERSION

    digest = hashlib.sha256(f"report schema {SCHEMA_VERSION}\n".encode())
    for package in VERDICT_PACKAGES:
        for path in sorted((package_root / package).rglob("*.py")):
            digest.update(str(path.relative_to(package_root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def proof_inputs(
    network: Network, tables: Mapping[str, Sequence[Flow]], *, fingerprint: str | None = None
) -> str:
    """The hash of everything a proof of ``tables`` against ``network`` depends on."""
    digest = hashlib.sha256()
    digest.update((fingerprint if fingerprint is not None else verifier_fingerprint()).encode())
    digest.update(content_hash(intent_document(network.intent)).encode())  # what the store hashes
    for ext in network.externals:  # an uplink failover moves the active port, not the document
        if ext.attach and (ext.switch, ext.port) != ext.attach[0]:
            digest.update(f"\0uplink {ext.name} {ext.switch}:{ext.port}\n".encode())
    for switch in sorted(tables):
        digest.update(f"\0switch {switch}\n".encode())
        for f in tables[switch]:
            digest.update(
                f"{f.line} {f.table} {f.priority} {f.cookie:#x} {f.match_text} {f.actions_text}\n".encode()
            )
    return digest.hexdigest()


#: A proof's inputs: their hash (:func:`proof_inputs`), the network and the tables.
_Inputs = tuple[str, "Network", Mapping[str, Sequence["Flow"]]]


class WarmUpCancelled(Exception):
    """Raised inside a warm-up proof to end it (the controller is stopping)."""


class RememberingVerifier:
    """A :class:`~segctl.controller.gate.Verifier` that reads a proof of the same inputs back
    from the store when it has one and keeps each new proof there (the newest ``keep``). A
    stored proof that does not read back is proven again, never trusted.

    A read-back proof leaves the wrapped verifier cold: an incremental verifier then proves the
    next change from scratch (the full proof of fat-tree k=8 with 2,000 endpoints takes over
    half an hour). :meth:`warm_up` proves the inputs last read back with the wrapped verifier,
    off the request path, so that the next change is incremental again. Thread-safe: the
    wrapped verifier is only ever called under one lock.
    """

    def __init__(
        self, verifier: Verifier, store: Store, *, keep: int = 20, metrics: ControllerMetrics | None = None
    ) -> None:
        self._verifier = verifier
        self._store = store
        self._keep = keep
        self._metrics = metrics or ControllerMetrics()
        self._lock = threading.Lock()  # the wrapped verifier is not re-entrant
        self._cold: _Inputs | None = None  # read back, not proven by the wrapped verifier
        self._proven = ""  # the inputs the wrapped verifier last proved
        #: The newest proof, kept in memory too: reading a dense fabric's report back from the
        #: store (tens of MB of JSON) costs a second of CPU in one call holding the GIL.
        self._last: tuple[str, Verification] | None = None
        self._cancel = threading.Event()
        self._idle = threading.Event()  # no warm-up is running
        self._idle.set()

    def __call__(
        self, network: Network, tables: Mapping[str, Sequence[Flow]], *, progress: Progress | None = None
    ) -> Verification:
        inputs = proof_inputs(network, tables)
        result = self._remembered(inputs)
        if result is not None:
            self._metrics.proofs_read_back.inc()
            if inputs != self._proven:
                self._set_cold((inputs, network, tables))
            return result
        with self._lock:
            self._set_cold(None)
            self._proven = ""
            if progress is None:  # a verifier that takes no progress still serves calls
                result = self._verifier(network, tables)
            else:
                result = self._verifier(network, tables, progress=progress)
            self._proven = inputs
        self._store.add_proof(inputs, result.verdict, result.to_json(), keep=self._keep)
        self._last = (inputs, result)
        return result

    def _remembered(self, inputs: str) -> Verification | None:
        """The proof of ``inputs`` from memory (the newest one: the live proof right after a
        push asks for its gate's) or from the store; None when there is none or it does not
        read back."""
        last = self._last
        if last is not None and last[0] == inputs:
            return replace(last[1], reused=True)
        body = self._store.proof(inputs)
        if body is None:
            return None
        try:
            return Verification.from_json(body, reused=True)
        except (KeyError, TypeError, ValueError) as exc:
            LOG.warning("stored proof %s does not read back (%s): proving again", inputs[:12], exc)
            return None

    @property
    def needs_warm_up(self) -> bool:
        """A proof was read back since the wrapped verifier last ran."""
        return self._cold is not None

    def warm_up(self) -> bool:
        """Prove the inputs last read back with the wrapped verifier (its report is the stored
        one; nothing is written). True when it ran to the end; False when there was nothing to
        do, a proof was running, or :meth:`cancel` stopped it."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            cold = self._cold
            if cold is None or self._cancel.is_set():
                return False
            self._set_cold(None)
            started = time.monotonic()
            self._proven = ""
            self._idle.clear()
            inputs, network, tables = cold
            try:
                self._verifier(network, tables, progress=self._check_cancel)
            except WarmUpCancelled:
                self._set_cold(cold)
                self._metrics.warm_ups.inc(result="cancelled")
                LOG.info("verifier warm-up stopped after %.1f s", time.monotonic() - started)
                return False
            except Exception:  # not a verdict: the next change proves from scratch, as without
                self._metrics.warm_ups.inc(result="failed")
                LOG.exception("verifier warm-up failed")
                return False
            finally:
                self._idle.set()
            self._proven = inputs
            seconds = time.monotonic() - started
            self._metrics.warm_ups.inc(result="done")
            self._metrics.verification_seconds.observe(seconds, stage="warm-up")
            LOG.info("verifier warmed up in %.1f s: the next change is proven incrementally", seconds)
            return True
        finally:
            self._lock.release()

    def _set_cold(self, cold: _Inputs | None) -> None:
        self._cold = cold
        self._metrics.verifier_cold.set(0 if cold is None else 1)

    def cancel(self, *, wait: float = 0.0) -> bool:
        """Stop a warm-up that is running (within a few seconds) and any later one; wait up
        to ``wait`` seconds for a running one to end. True when none is running any more."""
        self._cancel.set()
        return self._idle.wait(wait)

    def _check_cancel(self, _message: str) -> None:
        if self._cancel.is_set():
            raise WarmUpCancelled


def remembering(
    verifier: Verifier, store: Store, *, keep: int = 20, metrics: ControllerMetrics | None = None
) -> RememberingVerifier:
    """``verifier``, reading a proof of the same inputs back from ``store`` when it has one,
    and keeping each new proof there (the newest ``keep``); see :class:`RememberingVerifier`."""
    return RememberingVerifier(verifier, store, keep=keep, metrics=metrics)
