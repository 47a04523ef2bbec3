"""What a change addresses, typed: its kind, and the tenant of a tenant update.

A revision records its kind as text (``apply``, ``rollback``, ``tenant:acme``; the
``kind`` of ``GET /v1/revisions``), and the audit log names the action and the object a
change touched (``tenant.update`` on ``tenant/acme``). :class:`ChangeScope` is the one
place that turns one into the other, so no code cuts ``"tenant:"`` off a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ChangeKind", "ChangeScope"]


class ChangeKind(StrEnum):
    """What started a change."""

    APPLY = "apply"  # a whole intent (REST, the intent file, a reload)
    ROLLBACK = "rollback"  # an earlier revision applied again
    TENANT = "tenant"  # one tenant's document replaced
    LINK_DOWN = "link.down"  # fabric links went down (not a revision)
    LINK_UP = "link.up"  # fabric links came back (not a revision)
    UPLINK_FAILOVER = "uplink.failover"  # external networks' active uplinks went down (not a revision)
    UPLINK_RESTORED = "uplink.restored"  # preferred uplinks came back (not a revision)
    LINK_CHANGE = "link.change"  # several of the above in one change (links down and others up, ...)


_TENANT_PREFIX = "tenant:"


@dataclass(frozen=True)
class ChangeScope:
    """A change's kind and, for :attr:`ChangeKind.TENANT` only, the tenant it replaces."""

    kind: ChangeKind
    tenant: str | None = None

    def __post_init__(self) -> None:
        if (self.kind is ChangeKind.TENANT) != (self.tenant is not None):
            raise ValueError(f"a {self.kind} change {'needs' if self.tenant is None else 'has no'} tenant")

    @classmethod
    def of_tenant(cls, name: str) -> ChangeScope:
        return cls(ChangeKind.TENANT, name)

    @classmethod
    def parse(cls, text: str) -> ChangeScope:
        """The scope a revision's ``kind`` text names (the inverse of ``str()``)."""
        if text.startswith(_TENANT_PREFIX):
            return cls.of_tenant(text.removeprefix(_TENANT_PREFIX))
        return cls(ChangeKind(text))

    def __str__(self) -> str:
        """The revision's ``kind``: ``tenant:NAME`` for a tenant update, else the kind."""
        return f"{_TENANT_PREFIX}{self.tenant}" if self.tenant is not None else self.kind.value

    @property
    def action(self) -> str:
        """The audit action of the revision this change records."""
        if self.kind is ChangeKind.ROLLBACK:
            return "intent.rollback"
        if self.kind is ChangeKind.TENANT:
            return "tenant.update"
        return "intent.apply"

    @property
    def object(self) -> str:
        """The audit object: ``tenant/NAME`` for a tenant update, else ``intent``."""
        return f"tenant/{self.tenant}" if self.tenant is not None else "intent"


APPLY = ChangeScope(ChangeKind.APPLY)
ROLLBACK = ChangeScope(ChangeKind.ROLLBACK)
