"""The verifier's entry point: a full proof of every property over flow tables.

:func:`verify` takes the resolved intent and the flow tables (parsed ``ovs-ofctl`` text,
from the compiler's files or dumped from live switches; never the compiler itself) and
returns a :class:`~segctl.verifier.report.VerificationReport`.

>>> from segctl.topology.network import load_network  # doctest: +SKIP
>>> report = verify(load_network("examples/two-tenants.yaml"), tables)  # doctest: +SKIP
>>> report.ok, [p.id for p in report.properties if not p.holds]  # doctest: +SKIP
(True, [])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from segctl.openflow.ofctl import Flow
from segctl.topology.network import Network
from segctl.verifier.incremental import IncrementalVerifier
from segctl.verifier.report import VerificationReport

__all__ = ["verify"]

Progress = Callable[[str], None]

def verify(
    network: Network,
    tables: Mapping[str, Sequence[Flow]],
    *,
    progress: Progress | None = None,
) -> VerificationReport:
    """Check every property of ``network`` against ``tables``; never consults the compiler.

    A full proof: one call of a fresh :class:`~segctl.verifier.incremental.IncrementalVerifier`
    (the same code re-verifies incrementally when the verifier is kept across calls).
    """
    return IncrementalVerifier(precise=False).verify(network, tables, progress=progress)
