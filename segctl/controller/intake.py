"""An intent document to a resolved network: bounded work for a hostile document, and
bounded cost (:class:`CostLimits`) for what a change may ask of the compiler and the proof.

:func:`resolve_intent` is what :func:`segctl.topology.load.intent_from_document` and
:func:`~segctl.topology.network.resolve` do, run by the service in its offload thread, with
one difference: a document with more than :data:`MAX_SHAPE_PROBLEMS` shape problems is
reported from a preview (every list cut to its first :data:`PREVIEW_ITEMS` items, every
mapping to its first :data:`PREVIEW_KEYS` keys) plus the total. Listing every problem of
``tenants: [1, 1, ...]`` (240,000 items within the body limits) took pydantic 0.6 s with
the interpreter lock held: the event loop, the switches' echo replies and every other
request waited. A document of more than :data:`PRECOUNT_VALUES` values has its problems
counted first in small pieces (:func:`~segctl.controller.shape.count_shape_problems`): only
one with at most :data:`MAX_SHAPE_PROBLEMS` goes to pydantic whole (``segments: [{}, ...]``,
100,000 items, held the lock 0.27 s even with the listing bounded).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from segctl.controller.shape import count_shape_problems, count_values
from segctl.controller.store import content_hash
from segctl.errors import IntentError, Problem, SegctlError
from segctl.topology.load import intent_from_document
from segctl.topology.network import Network, resolve
from segctl.topology.schema import Intent, Service
from segctl.topology.sets import services_with_sets

__all__ = [
    "MAX_SHAPE_PROBLEMS",
    "PRECOUNT_VALUES",
    "PREVIEW_ITEMS",
    "Cost",
    "CostLimitExceeded",
    "CostLimits",
    "check_cost",
    "intent_cost",
    "intent_document",
    "prepare_intent",
    "resolve_intent",
]

#: Shape problems listed one by one; more are reported from a preview of the document.
MAX_SHAPE_PROBLEMS = 1000
#: Values of a document above which its shape problems are counted piece by piece first.
PRECOUNT_VALUES = 20_000
#: Items of each list the preview of a document with too many problems keeps.
PREVIEW_ITEMS = 20
#: Keys of each mapping the preview keeps (an intent's objects have a dozen; labels more).
PREVIEW_KEYS = 100


class CostLimitExceeded(SegctlError):
    """The intent a request would make costs more than this controller takes (HTTP 413)."""


@dataclass(frozen=True)
class CostLimits:
    """The most a change may ask of the controller, for the whole intent and, in a tenant's
    update, for that tenant (``segctl controller run --max-...``).

    *Ports* count what the compiler expands a policy's or shared service's ports into: one
    per port, and per range the aligned blocks it splits into (``1-65535`` is 16, ``80`` is
    1); a service without ports counts 1. What a proof costs grows with them (a tenant's
    1,500 ports took 67 s to prove)."""

    endpoints: int = 20_000
    policies: int = 10_000
    ports: int = 20_000
    tenant_endpoints: int = 5_000
    tenant_policies: int = 1_000
    tenant_ports: int = 2_000


@dataclass(frozen=True)
class Cost:
    endpoints: int
    policies: int
    ports: int


def _blocks(lo: int, hi: int) -> int:
    """How many aligned power-of-two blocks ``lo..hi`` splits into (a port match each)."""
    count = 0
    while lo <= hi:
        size = lo & -lo or 1 << 16
        while size > hi - lo + 1:
            size >>= 1
        lo += size
        count += 1
    return count


def _ports(services: Iterable[Service]) -> int:
    return sum(sum(_blocks(r.lo, r.hi) for r in s.ports) if s.ports else 1 for s in services)


def intent_cost(intent: Intent, tenant: str | None = None) -> Cost:
    """What ``intent`` (or one of its tenants) asks of the compiler and the proof; guardrails
    count as policies (and their ports as ports) of the whole intent."""
    tenants = [t for t in intent.tenants if tenant is None or t.name == tenant]
    sets = intent.service_sets
    ports = sum(
        _ports(services_with_sets(p.services, p.service_sets, sets)) for t in tenants for p in t.policies
    )
    rails = intent.guardrails if tenant is None else []  # the admin's tier: whole-intent cost only
    if tenant is None:
        ports += sum(
            _ports(services_with_sets(s.services, s.service_sets, sets)) for s in intent.shared_services
        )
        ports += sum(_ports(services_with_sets(g.services, g.service_sets, sets)) for g in rails)
    return Cost(
        endpoints=sum(len(t.endpoints) for t in tenants),
        policies=sum(len(t.policies) for t in tenants) + len(rails),
        ports=ports,
    )


def check_cost(intent: Intent, limits: CostLimits, tenant: str | None = None) -> None:
    """Raise :class:`CostLimitExceeded` naming the first limit ``intent`` goes over."""
    checks = [(intent_cost(intent), "the intent", "", (limits.endpoints, limits.policies, limits.ports))]
    if tenant is not None:
        shares = (limits.tenant_endpoints, limits.tenant_policies, limits.tenant_ports)
        checks.append((intent_cost(intent, tenant), f"tenant {tenant}", "tenant-", shares))
    for cost, what, flag, (endpoints, policies, ports) in checks:
        for have, most, name, unit in (
            (cost.endpoints, endpoints, "endpoints", "endpoints"),
            (cost.policies, policies, "policies", "policies"),
            (cost.ports, ports, "ports", "ports in its policies (a range counts its aligned blocks)"),
        ):
            if have > most:
                raise CostLimitExceeded(
                    f"{what} would have {have:,} {unit}; this controller takes at most {most:,} "
                    f"(segctl controller run --max-{flag}{name})"
                )


def intent_document(intent: Intent) -> dict[str, Any]:
    """The normalized JSON document of an intent (what is stored, hashed and returned)."""
    return intent.model_dump(mode="json", by_alias=True, exclude_none=True)


def resolve_intent(
    document: Any, source: str, limits: CostLimits | None = None, tenant: str | None = None
) -> Network:
    """Validate an intent document, check its cost (when given ``limits``; ``tenant``: the
    tenant a tenant update replaces) and resolve it. :class:`IntentError` naming each
    problem, :class:`CostLimitExceeded`."""
    if count_values(document) > PRECOUNT_VALUES:
        counted = count_shape_problems(Intent, document, MAX_SHAPE_PROBLEMS)
        if counted > MAX_SHAPE_PROBLEMS:
            _raise_shape_problems(document, source, counted, all_counted=False)
    try:
        intent = Intent.model_validate(document)
    except ValidationError as exc:
        _raise_shape_problems(document, source, exc.error_count())
    if limits is not None:
        check_cost(intent, limits, tenant)
    return resolve(intent)


def prepare_intent(
    document: Any, source: str, limits: CostLimits | None = None, tenant: str | None = None
) -> tuple[Network, str]:
    """:func:`resolve_intent`, and the content hash of its normalized document."""
    network = resolve_intent(document, source, limits, tenant)
    return network, content_hash(intent_document(network.intent))


def _raise_shape_problems(document: Any, source: str, count: int, *, all_counted: bool = True) -> None:
    if count <= MAX_SHAPE_PROBLEMS:
        intent_from_document(document, source=source)  # raises IntentError with every problem
    try:
        intent_from_document(_preview(document), source=source)
    except IntentError as preview:
        listed = list(preview.problems[:MAX_SHAPE_PROBLEMS])
    else:  # pragma: no cover - a preview of an invalid document has problems of its own
        listed = []
    if all_counted:
        summary = f"{count:,} shape problems in all; listed: those of a preview"
    else:
        summary = f"more than {MAX_SHAPE_PROBLEMS:,} shape problems; listed: those of a preview"
    raise IntentError([*listed, Problem("", summary, source)])


def _preview(value: Any) -> Any:
    """``value`` with every list cut to its first :data:`PREVIEW_ITEMS` items and every mapping
    to its first :data:`PREVIEW_KEYS` keys (depth is bounded by the body limits)."""
    if isinstance(value, dict):
        return {k: _preview(v) for k, v in itertools.islice(value.items(), PREVIEW_KEYS)}
    if isinstance(value, list):
        return [_preview(v) for v in value[:PREVIEW_ITEMS]]
    return value
