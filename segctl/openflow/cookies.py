"""Rule cookies: which pipeline stage and which intent object produced a rule.

A cookie is 64 bits::

    bits 56-63  stage   the pipeline table number that holds the rule
    bits 48-55  kind    the kind of intent object (:class:`Kind`)
    bits 32-47  tenant  tenant id (0 for fabric/pipeline objects)
    bits  0-31  index   position of the object in the intent document (see Kind)

:func:`describe_cookie` turns a cookie back into words (``policy acme/web-to-app``,
``spoof-guard acme/web1``). It is for naming only (traces, counters, reports): the
verifier never decides anything from a cookie.

>>> c = make_cookie(0, Kind.ENDPOINT, 1, 0)
>>> hex(c), decode_cookie(c)
('0x1000100000000', (0, <Kind.ENDPOINT: 1>, 1, 0))
"""

from __future__ import annotations

from enum import IntEnum

from segctl.topology.network import Network

__all__ = ["Kind", "decode_cookie", "describe_cookie", "make_cookie"]


class Kind(IntEnum):
    """Kinds of intent object; the cookie index is relative to the kind."""

    PIPELINE = 0  # table-miss and generic rules; index 0
    ENDPOINT = 1  # index: position of the endpoint in its tenant's endpoints list
    SEGMENT = 2  # index: segment index (1-based) of the tenant
    POLICY = 3  # index: position of the policy in its tenant's policies list
    SHARED = 4  # tenant: consumer tenant id; index: position in shared_services
    TENANT = 5  # tenant-wide rules (conntrack zone, gateway, TTL)
    FABRIC = 6  # index: fabric port number on the switch
    GUARDRAIL = 7  # tenant: source tenant id; index: position in guardrails
    EXTERNAL = 8  # tenant: the tenant using it (0: the network's own rules); index: external index (1-based)


_STAGES = {0: "classify", 10: "arp", 20: "ct_src", 30: "policy_src", 40: "route", 45: "shared_reply",
           46: "nat_in", 47: "uplink_in", 50: "forward", 52: "nat_out", 53: "uplink_out", 60: "ct_dst",
           70: "policy_dst", 80: "egress"}  # fmt: skip
_ENDPOINT_LABELS = {0: "spoof-guard", 10: "arp", 40: "route", 45: "shared-reply", 50: "forward",
                    80: "egress-guard"}  # fmt: skip


def make_cookie(stage: int, kind: Kind, tenant: int, index: int) -> int:
    """Pack a cookie; every part must fit its field."""
    if not (0 <= stage < 256 and 0 <= tenant < 2**16 and 0 <= index < 2**32):
        raise ValueError(f"cookie part out of range: stage={stage} tenant={tenant} index={index}")
    return (stage << 56) | (int(kind) << 48) | (tenant << 32) | index


def decode_cookie(cookie: int) -> tuple[int, Kind, int, int]:
    """Unpack ``(stage, kind, tenant, index)``; an unknown kind raises ValueError."""
    return (cookie >> 56) & 0xFF, Kind((cookie >> 48) & 0xFF), (cookie >> 32) & 0xFFFF, cookie & 0xFFFFFFFF


def describe_cookie(cookie: int, network: Network) -> str:
    """Name the intent object behind a cookie, e.g. ``policy acme/web-to-app``.

    Unknown or stale cookies give ``cookie 0x... (unknown)`` rather than an error.
    """
    try:
        stage, kind, tenant_id, index = decode_cookie(cookie)
        stage_name = _STAGES.get(stage, f"table {stage}")
        tenant = next((t.name for t in network.tenants if t.id == tenant_id), None)
        if kind is Kind.PIPELINE:
            return f"{stage_name} default"
        if kind is Kind.FABRIC:
            return f"{stage_name} fabric port {index}"
        if kind is Kind.GUARDRAIL:
            return f"guardrail {network.guardrails[index].name}"
        if kind is Kind.EXTERNAL:
            ext = network.externals[index - 1].name
            return f"{stage_name} external {ext}" + (f" (tenant {tenant})" if tenant else "")
        if kind is Kind.SHARED:
            svc = network.shared_services[index]
            return f"shared-service {svc.name}" + (f" (consumer {tenant})" if tenant else "")
        if tenant is None:
            raise LookupError(tenant_id)
        doc = network.tenant_doc(tenant)
        if kind is Kind.TENANT:
            return f"{stage_name} tenant {tenant}"
        if kind is Kind.ENDPOINT:
            label = _ENDPOINT_LABELS.get(stage, stage_name)
            return f"{label} {tenant}/{doc.endpoints[index].name}"
        if kind is Kind.SEGMENT:
            label = "intra-segment" if stage in (30, 70) else f"{stage_name} segment"
            return f"{label} {tenant}/{doc.segments[index - 1].name}"
        return f"policy {tenant}/{doc.policies[index].name}"
    except (ValueError, LookupError, IndexError, StopIteration):
        return f"cookie {cookie:#x} (unknown)"
