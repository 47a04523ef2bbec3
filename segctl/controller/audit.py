"""The append-only audit log: every change and push, chained by sha256.

Each entry has ``seq`` (1, 2, 3, ...), ``time``, ``actor``, ``action``, ``object``,
``detail`` (a JSON object), ``prev_hash`` (the previous entry's hash; 64 zeros for the
first) and ``hash``::

    hash = sha256(prev_hash + canonical_json({"seq", "time", "actor", "action",
                                              "object", "detail"}))

where canonical JSON has sorted keys and no whitespace. The hash covers the bytes stored:
:func:`verify_chain` splices the stored ``detail`` text into that JSON as it is, never
re-encoding what a parser read from it (two copies of one key, ``{"verdict":"FORGED",
"verdict":"pass"}``, read as ``pass`` by Python and as ``FORGED`` by SQLite's
``json_extract``, used to verify as intact). Editing any field breaks that
entry's hash; deleting or reordering entries breaks the sequence or the ``prev_hash``
link. Deleting the newest entries leaves a valid shorter chain: the head (seq and hash)
is also kept in the ``state`` table, and ``segctl audit head`` prints it so that it can
be anchored outside the machine and checked with ``verify_chain(..., expect_head=...)``.
SQLite triggers reject UPDATE and DELETE on the table; the chain is what catches someone
who edits the file directly.

Entries are bounded: a ``detail`` over :data:`MAX_DETAIL_BYTES` is kept as its size, its
sha256 and its small fields (:func:`cap_detail`); a refused change records a summary of its
request (:func:`rejection_detail`: the body's size and sha256, the first problems, clipped),
never the body, so no request can make an entry (or a read of the log) large.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segctl.controller.store import Database, StoreError, canonical_json

__all__ = [
    "GENESIS_HASH",
    "MAX_DETAIL_BYTES",
    "AuditEntry",
    "AuditLog",
    "AuditProblem",
    "BodySummary",
    "cap_detail",
    "clip",
    "entry_hash",
    "rejection_detail",
    "verify_chain",
]

GENESIS_HASH = "0" * 64
#: The largest ``detail`` (canonical JSON, UTF-8 bytes) an entry keeps as it is.
MAX_DETAIL_BYTES = 8 * 1024
#: Fields of an oversized detail kept when their own JSON is at most this long.
_SMALL_FIELD_BYTES = 200
#: Problems or violations a rejection entry lists (their count is recorded as well).
MAX_LISTED = 5
#: Characters of one location or message in a rejection entry.
MAX_TEXT = 300


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def cap_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """``detail`` itself when its canonical JSON is at most :data:`MAX_DETAIL_BYTES`; else its
    size and sha256 under ``truncated`` with the fields that are small on their own (as many
    as fit in half of it)."""
    text = canonical_json(detail).encode()
    if len(text) <= MAX_DETAIL_BYTES:
        return detail
    small: dict[str, Any] = {}
    room = MAX_DETAIL_BYTES // 2
    for key, value in detail.items():
        size = len(canonical_json({key: value}).encode())
        if size <= _SMALL_FIELD_BYTES and size <= room:
            small[key] = value
            room -= size
    return {**small, "truncated": {"bytes": len(text), "sha256": hashlib.sha256(text).hexdigest()}}


@dataclass(frozen=True)
class BodySummary:
    """What the audit log keeps of a request body: its size and its sha256, never its content."""

    size: int
    sha256: str

    @classmethod
    def of(cls, raw: bytes) -> BodySummary:
        return cls(len(raw), hashlib.sha256(raw).hexdigest())

    def to_json(self) -> dict[str, Any]:
        return {"bytes": self.size, "sha256": self.sha256}


def rejection_detail(
    kind: str, reason: str, items: list[dict[str, Any]], *, what: str, body: BodySummary | None
) -> dict[str, Any]:
    """The detail of an ``intent.rejected`` entry: the change's kind, why, the first
    :data:`MAX_LISTED` problems or violations (``what``) with their texts clipped, how many
    there were, and the request body's summary when there was one."""
    listed = [{k: clip(str(v)) for k, v in item.items() if k != "detail"} for item in items[:MAX_LISTED]]
    detail: dict[str, Any] = {"kind": clip(kind), "reason": reason, what: listed, f"{what}_count": len(items)}
    if body is not None:
        detail["body"] = body.to_json()
    return detail


@dataclass(frozen=True)
class AuditEntry:
    """One audit log entry."""

    seq: int
    time: str
    actor: str
    action: str
    object: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "object": self.object,
            "detail": self.detail,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True)
class AuditProblem:
    """One broken link of the chain: the entry (seq) and what is wrong with it."""

    seq: int
    message: str

    def __str__(self) -> str:
        return f"audit entry {self.seq}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "message": self.message}


def entry_hash(prev_hash: str, body: dict[str, Any]) -> str:
    """The hash of an entry whose predecessor has ``prev_hash``."""
    return _hash(prev_hash, _entry_text(body, canonical_json(body["detail"])))


def _entry_text(fields: Any, detail_text: str) -> str:
    """``canonical_json`` of an entry with ``detail_text`` spliced in as it is (keys sorted:
    action, actor, detail, object, seq, time)."""

    def text(name: str) -> str:
        return json.dumps(fields[name], ensure_ascii=False)

    return (
        f'{{"action":{text("action")},"actor":{text("actor")},"detail":{detail_text},'
        f'"object":{text("object")},"seq":{text("seq")},"time":{text("time")}}}'
    )


def _hash(prev_hash: str, text: str) -> str:
    return hashlib.sha256((prev_hash + text).encode("utf-8", "surrogateescape")).hexdigest()


class AuditLog:
    """Append and read the audit log of one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def append(
        self, *, actor: str, action: str, object: str, detail: dict[str, Any] | None = None
    ) -> AuditEntry:
        """Append one entry (in its own transaction) and return it; ``detail`` is capped
        (:func:`cap_detail`)."""
        detail = cap_detail(json.loads(canonical_json(detail or {})))
        with self.db.transaction() as conn:
            row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq = 1 if row is None else int(row["seq"]) + 1
            prev = GENESIS_HASH if row is None else str(row["hash"])
            body = {
                "seq": seq,
                "time": self.db.now(),
                "actor": actor,
                "action": action,
                "object": object,
                "detail": detail,
            }
            digest = entry_hash(prev, body)
            conn.execute(
                "INSERT INTO audit (seq, time, actor, action, object, detail, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, body["time"], actor, action, object, canonical_json(detail), prev, digest),
            )
            conn.execute(
                "INSERT INTO state (key, value) VALUES ('audit_head', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (f"{seq}:{digest}",),
            )
        return AuditEntry(seq, str(body["time"]), actor, action, object, detail, prev, digest)

    def entries(
        self, *, after: int = 0, limit: int = 100, actor: str | None = None, action: str | None = None
    ) -> list[AuditEntry]:
        """Entries with ``seq > after``, oldest first, optionally filtered."""
        sql = "SELECT * FROM audit WHERE seq > ?"
        params: list[Any] = [after]
        if actor is not None:
            sql += " AND actor = ?"
            params.append(actor)
        if action is not None:
            sql += " AND action = ?"
            params.append(action)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        return [_entry(row) for row in self.db.query(sql, tuple(params))]

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest entry; (0, GENESIS_HASH) when empty."""
        rows = self.db.query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return (0, GENESIS_HASH) if not rows else (int(rows[0]["seq"]), str(rows[0]["hash"]))


def _entry(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        seq=int(row["seq"]),
        time=str(row["time"]),
        actor=str(row["actor"]),
        action=str(row["action"]),
        object=str(row["object"]),
        detail=json.loads(row["detail"]),
        prev_hash=str(row["prev_hash"]),
        hash=str(row["hash"]),
    )


def verify_chain(source: Database | str | Path, *, expect_head: str | None = None) -> list[AuditProblem]:
    """Check the whole chain; return every problem found (empty when intact).

    ``source`` is an open :class:`Database` or the path of a database file, opened
    read-only. ``expect_head`` is ``"seq:hash"`` from an earlier ``segctl audit head``;
    it catches deletion of the newest entries.
    """
    if isinstance(source, Database):
        rows = source.query("SELECT * FROM audit ORDER BY seq")
        state = source.query("SELECT value FROM state WHERE key = 'audit_head'")
    else:
        path = Path(source)
        if not path.is_file():
            raise StoreError(f"{path}: no such database file")
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            conn.row_factory = sqlite3.Row
            try:
                rows = list(conn.execute("SELECT * FROM audit ORDER BY seq"))
                state = list(conn.execute("SELECT value FROM state WHERE key = 'audit_head'"))
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: cannot read the audit log: {exc}") from None
    return _check_rows(rows, None if not state else str(state[0]["value"]), expect_head)


def _check_rows(
    rows: list[sqlite3.Row], stored_head: str | None, expect_head: str | None
) -> list[AuditProblem]:
    problems: list[AuditProblem] = []
    prev = GENESIS_HASH
    expected_seq = 1
    for row in rows:
        seq = int(row["seq"])
        if seq != expected_seq:
            problems.append(AuditProblem(seq, f"expected entry {expected_seq} here: entries are missing"))
        if row["prev_hash"] != prev:
            problems.append(AuditProblem(seq, "prev_hash does not match the previous entry's hash"))
        stored = row["detail"]
        try:
            if not isinstance(json.loads(stored), dict):
                raise ValueError
        except (TypeError, ValueError):
            problems.append(AuditProblem(seq, "detail is not a JSON object"))
        detail_text = stored if isinstance(stored, str) else json.dumps(str(stored))
        if _hash(str(row["prev_hash"]), _entry_text(row, detail_text)) != row["hash"]:
            problems.append(AuditProblem(seq, "content does not match its hash (entry edited)"))
        prev = str(row["hash"])
        expected_seq = seq + 1
    head = f"{expected_seq - 1}:{prev}" if rows else f"0:{GENESIS_HASH}"
    if stored_head is not None and stored_head != head:
        problems.append(
            AuditProblem(expected_seq - 1, f"the recorded head is {stored_head} but the log ends at {head}")
        )
    if stored_head is None and rows:
        problems.append(AuditProblem(expected_seq - 1, "the recorded head is missing"))
    if expect_head is not None and expect_head != head:
        seq_text, _, _ = expect_head.partition(":")
        if seq_text.isdigit() and int(seq_text) <= expected_seq - 1:
            known = next((r for r in rows if int(r["seq"]) == int(seq_text)), None)
            if known is None or f"{int(known['seq'])}:{known['hash']}" != expect_head:
                problems.append(AuditProblem(int(seq_text), f"anchored head {expect_head} is not in the log"))
        else:
            problems.append(
                AuditProblem(
                    expected_seq - 1, f"the log ends at {head}, before the anchored head {expect_head}"
                )
            )
    return problems
