"""What must hold of a controller's store whatever happened to the controller (crashes included)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from segctl.controller.audit import AuditLog, verify_chain
from segctl.controller.store import Database, Store

REVISION_ACTIONS = {"intent.apply", "intent.rollback", "tenant.update"}


def check_store(db: Database, *, settled: bool = True) -> list[Any]:
    """Assert the store's invariants; return its revisions (oldest first).

    The audit chain is intact; revisions are numbered 1, 2, ... and the newest is current;
    each has exactly one audit entry of its own (its id and sha256) written with it; its
    ``intent.live`` entries (one when it was pushed, one more when a later proof of the
    whole fabric settled a verdict that was not known) end with its live verdict; once
    ``settled`` (no change running, any unfinished one recovered) none is ``pending`` and
    each has its ``intent.live`` entry.
    """
    assert verify_chain(db) == [], verify_chain(db)
    store = Store(db)
    revisions = list(reversed(store.revisions(limit=100_000)))
    assert [r.id for r in revisions] == list(range(1, len(revisions) + 1))
    current = store.current()
    assert (current is None) == (not revisions)
    if current is not None:
        assert current.id == revisions[-1].id or current.kind == "rollback"
    entries = AuditLog(db).entries(limit=1_000_000)
    recorded = Counter(
        (e.detail.get("revision"), e.detail.get("sha256")) for e in entries if e.action in REVISION_ACTIONS
    )
    live: dict[int, list[str]] = {}
    for e in entries:
        if e.action == "intent.live":
            live.setdefault(e.detail["revision"], []).append(e.detail["live_verdict"])
    for revision in revisions:
        mine = recorded[(revision.id, revision.sha256)]
        assert mine == 1, ("not exactly one audit entry of its own", revision, recorded)
    for revision in revisions:
        verdicts = live.get(revision.id, [])
        if verdicts:
            assert verdicts[-1] == revision.live_verdict, (revision, verdicts)
        if settled:
            assert revision.live_verdict != "pending", revision
            assert verdicts, (revision, "no intent.live entry")
    assert sum(recorded.values()) == len(revisions)
    return revisions
