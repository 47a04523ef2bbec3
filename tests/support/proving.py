"""Compile an intent to flow texts, prove texts on an engine, read what failed: the helpers of
tests that mutate compiled flows and expect the verifier to name the property."""

from __future__ import annotations

from typing import Any

from segctl.errors import IntentError
from segctl.flows.compiler import compile_network
from segctl.openflow.ofctl import parse_flows
from segctl.topology.load import intent_from_document
from segctl.topology.network import Network, resolve
from segctl.verifier.report import VerificationReport
from segctl.verifier.verify import verify

#: The verifier's engines, for tests that run on both.
ENGINES = ["wavefront", "reference"]


def compiled_texts(network: Network) -> dict[str, list[str]]:
    """Each switch's compiled flows, one text line per flow (for editing)."""
    return {n: p.flows_text().splitlines() for n, p in compile_network(network).items()}


def prove_texts(
    network: Network, texts: dict[str, list[str]], engine: str = "wavefront"
) -> VerificationReport:
    """The proof of ``texts`` (per switch flow lines) against ``network``."""
    return verify(network, {n: parse_flows("\n".join(lines)) for n, lines in texts.items()}, engine=engine)


def failing(report: VerificationReport) -> set[str]:
    """The ids of the properties that do not hold."""
    return {p.id for p in report.properties if not p.holds}


def intent_problems(doc: dict[str, Any]) -> list[str]:
    """``place: message`` of every problem of an intent document (none: valid)."""
    try:
        resolve(intent_from_document(doc))
    except IntentError as exc:
        return [f"{p.location}: {p.message}" for p in exc.problems]
    return []
