"""Proofs remembered across controller restarts: the same inputs are never proven twice.

A verdict of the verifier is a function of its inputs alone: the resolved intent (its
normalized document, in which the links that are down are already left out, see
:func:`~segctl.controller.linkstate.without_links`), the flow tables of every switch in the
order given (the report names flows by their line), and the verifier's own code.
:func:`proof_inputs` hashes all three; :func:`remembering` wraps a
:class:`~segctl.controller.gate.Verifier` so that a proof whose inputs are in the store is
read back instead of computed again, marked ``reused``.

This is what makes a restart cheap on a big fabric: the controller proves the compiled
tables before it pushes them and the live tables after, and with an unchanged intent both
are the tables it proved before it stopped (the full proof of fat-tree k=8 with 2,000
endpoints takes over half an hour; reading it back takes milliseconds). Any change to the
intent, to one flow, to the order of a dump, or to segctl's verifier or model code (the
source files of ``segctl.flows`` and ``segctl.topology`` are in the hash) misses, and the
verifier runs as before.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from segctl.controller.gate import Verification, Verifier
from segctl.controller.service import intent_document
from segctl.controller.store import Store, content_hash

if TYPE_CHECKING:
    from segctl.flows.ofctl import Flow
    from segctl.topology.network import Network

__all__ = ["proof_inputs", "remembering", "verifier_fingerprint"]

LOG = logging.getLogger(__name__)
#: Packages whose code decides a verdict (the verifier, and the model it reads the intent with).
_VERDICT_PACKAGES = ("flows", "topology")


@cache
def verifier_fingerprint() -> str:
    """A hash of the code that decides a verdict: every source file of ``segctl.flows`` and
    ``segctl.topology``, and the versions of the BDD package and its backend."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in _VERDICT_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    from segctl.flows.headerspace import BACKEND

    digest.update(f"dd {metadata.version('dd')} {BACKEND}".encode())
    return digest.hexdigest()


def proof_inputs(
    network: Network, tables: Mapping[str, Sequence[Flow]], *, fingerprint: str | None = None
) -> str:
    """The hash of everything a proof of ``tables`` against ``network`` depends on."""
    digest = hashlib.sha256()
    digest.update((fingerprint if fingerprint is not None else verifier_fingerprint()).encode())
    digest.update(content_hash(intent_document(network.intent)).encode())  # what the store hashes
    for switch in sorted(tables):
        digest.update(f"\0switch {switch}\n".encode())
        for f in tables[switch]:
            digest.update(
                f"{f.line} {f.table} {f.priority} {f.cookie:#x} {f.match_text} {f.actions_text}\n".encode()
            )
    return digest.hexdigest()


def remembering(verifier: Verifier, store: Store, *, keep: int = 20) -> Verifier:
    """``verifier``, reading a proof of the same inputs back from ``store`` when it has one,
    and keeping each new proof there (the newest ``keep``). A stored proof that does not read
    back is proven again, never trusted."""

    def run(network: Network, tables: Mapping[str, Sequence[Flow]]) -> Verification:
        inputs = proof_inputs(network, tables)
        body = store.proof(inputs)
        if body is not None:
            try:
                return Verification.from_json(body, reused=True)
            except (KeyError, TypeError, ValueError) as exc:
                LOG.warning("stored proof %s does not read back (%s): proving again", inputs[:12], exc)
        result = verifier(network, tables)
        store.add_proof(inputs, result.verdict, result.to_json(), keep=keep)
        return result

    return run
