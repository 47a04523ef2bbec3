"""The embedded store: one SQLite file for intents, revisions, reports, tokens and audit.

:class:`Database` owns the connection and the schema (a ``schema_migrations`` table and
an ordered list of migrations, each applied once in its own transaction). WAL mode lets
``segctl audit verify`` and other readers open the file while the controller writes.
Access is serialised by one lock around one connection; no statement yields to another
green thread, so the lock is never held across a switch round-trip.

:class:`Store` keeps the intent history: every applied intent is a :class:`Revision`
(author, time, sha256 of the canonical JSON, verdict, summary); the current revision is
the newest applied one unless a rollback moved it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from segctl.errors import SegctlError

__all__ = [
    "DEFAULT_KEEP_REPORTS",
    "MIGRATIONS",
    "Clock",
    "Database",
    "Revision",
    "Store",
    "StoreError",
    "canonical_json",
    "canonical_json_in_pieces",
    "content_hash",
    "utc_now",
]

Clock = Callable[[], datetime]
LOG = logging.getLogger("segctl.controller.store")


class StoreError(SegctlError):
    """The store cannot be opened, is from a newer segctl, or a record is missing."""


def utc_now() -> datetime:
    """The default clock: aware UTC now."""
    return datetime.now(UTC)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal documents give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


#: Items of a list encoded per call by :func:`canonical_json_in_pieces`.
PIECE_ITEMS = 2_000


def canonical_json_in_pieces(value: Any, *, depth: int = 4) -> str:
    """:func:`canonical_json` of ``value``, the same text, made by many short calls.

    The C encoder holds the GIL for a whole call: one call over a dense fabric's report (tens
    of MB) keeps the controller's event loop waiting for most of a second. Here objects (down
    to ``depth`` levels) are encoded key by key and long lists :data:`PIECE_ITEMS` items at a
    time, so the GIL changes hands between pieces.
    """
    return "".join(_pieces(value, depth))


def _pieces(value: Any, depth: int) -> Iterator[str]:
    if depth > 0 and isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        for i, key in enumerate(sorted(value)):
            yield ("{" if i == 0 else ",") + canonical_json(key) + ":"
            yield from _pieces(value[key], depth - 1)
        yield "}"
    elif depth > 0 and isinstance(value, list | tuple) and len(value) > PIECE_ITEMS:
        for start in range(0, len(value), PIECE_ITEMS):
            text = canonical_json(list(value[start : start + PIECE_ITEMS]))
            yield ("[" if start == 0 else ",") + text[1:-1]
        yield "]"
    else:
        yield canonical_json(value)


def content_hash(document: Any) -> str:
    """sha256 (hex) of the canonical JSON of ``document``."""
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


#: Ordered schema migrations; index + 1 is the version. Never edit an applied one: append.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE revisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        author TEXT NOT NULL,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        content TEXT NOT NULL,
        verdict TEXT NOT NULL,
        live_verdict TEXT NOT NULL DEFAULT 'unknown',
        summary TEXT NOT NULL DEFAULT '',
        parent INTEGER REFERENCES revisions(id)
    );
    CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE reports (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        revision INTEGER,
        kind TEXT NOT NULL,
        verdict TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE tokens (
        token_id TEXT PRIMARY KEY,
        secret_sha256 TEXT NOT NULL,
        role TEXT NOT NULL,
        tenant TEXT,
        name TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        object TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    """
    CREATE TABLE proofs (
        inputs TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        verdict TEXT NOT NULL,
        body TEXT NOT NULL
    );
    """,
    # 3: tokens expire; the audit log is read by action and actor without a table scan, and
    # refuses an entry over 16 KiB (the service keeps details under 8 KiB: a backstop).
    """
    ALTER TABLE tokens ADD COLUMN expires_at TEXT;
    CREATE INDEX audit_by_action ON audit (action, seq);
    CREATE INDEX audit_by_actor ON audit (actor, seq);
    CREATE TRIGGER audit_detail_bounded BEFORE INSERT ON audit
        WHEN length(CAST(NEW.detail AS BLOB)) > 16384
        BEGIN SELECT RAISE(ABORT, 'an audit detail is at most 16 KiB'); END;
    """,
)


class Database:
    """One SQLite file, its schema, and a lock around its single connection.

    A new file is created readable and writable by its owner only (0600; SQLite gives its
    ``-wal`` and ``-shm`` files the same mode): it holds the audit log, every intent and the
    token hashes. An existing file readable by others is opened with a warning.
    """

    def __init__(self, path: str | Path, *, clock: Clock = utc_now) -> None:
        self.path = str(path)
        self.clock = clock
        self._lock = threading.RLock()
        self._depth = 0  # open transactions (the outer one and its savepoints)
        _create_private(self.path)
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the segctl database: {exc}") from None

    def now(self) -> str:
        """The clock's time as ISO 8601 text (UTC, microseconds)."""
        return self.iso(self.clock())

    @staticmethod
    def iso(moment: datetime) -> str:
        """``moment`` as the store writes times: ISO 8601, UTC, microseconds (so that text order
        is time order)."""
        return moment.astimezone(UTC).isoformat(timespec="microseconds")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed on success, else rolled back.

        Transactions nest: an inner one is a savepoint of the outer, so writes of several
        objects (a revision, its report and its audit entry) commit together or not at all.
        """
        with self._lock:
            depth = self._depth
            if depth == 0:
                begin, commit, rollback = "BEGIN IMMEDIATE", ["COMMIT"], ["ROLLBACK"]
            else:
                name = f"s{depth}"
                begin, commit, rollback = (
                    f"SAVEPOINT {name}",
                    [f"RELEASE {name}"],
                    [f"ROLLBACK TO {name}", f"RELEASE {name}"],
                )
            self._conn.execute(begin)
            self._depth = depth + 1
            try:
                yield self._conn
            except BaseException:
                self._depth = depth
                for statement in rollback:
                    self._conn.execute(statement)
                raise
            self._depth = depth
            for statement in commit:
                self._conn.execute(statement)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Run a read-only statement and return every row."""
        with self._lock:
            return list(self._conn.execute(sql, params))

    def schema_version(self) -> int:
        rows = self.query("SELECT MAX(version) AS v FROM schema_migrations")
        return int(rows[0]["v"] or 0)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _migrate(self) -> None:
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"
            )
            current = self.schema_version()
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path}: schema version {current} is newer than this segctl knows "
                    f"({len(MIGRATIONS)}); upgrade segctl"
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _split_sql(MIGRATIONS[version - 1]):
                        self._conn.execute(statement)
                    self._conn.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                        (version, self.now()),
                    )
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")


def _create_private(path: str) -> None:
    """Create ``path`` with mode 0600 unless it exists (or is SQLite's in-memory database)."""
    if path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            LOG.warning("%s is readable by others (mode %o): chmod 600 it", path, stat.S_IMODE(mode))
    except OSError:
        return  # not creatable here: sqlite3 says why


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


@dataclass(frozen=True)
class Revision:
    """One applied intent."""

    id: int
    created_at: str
    author: str
    kind: str
    sha256: str
    verdict: str
    live_verdict: str
    summary: str
    parent: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "author": self.author,
            "kind": self.kind,
            "sha256": self.sha256,
            "verdict": self.verdict,
            "live_verdict": self.live_verdict,
            "summary": self.summary,
            "parent": self.parent,
        }


_REVISION_COLUMNS = "id, created_at, author, kind, sha256, verdict, live_verdict, summary, parent"


def _revision(row: sqlite3.Row) -> Revision:
    return Revision(
        id=int(row["id"]),
        created_at=str(row["created_at"]),
        author=str(row["author"]),
        kind=str(row["kind"]),
        sha256=str(row["sha256"]),
        verdict=str(row["verdict"]),
        live_verdict=str(row["live_verdict"]),
        summary=str(row["summary"]),
        parent=None if row["parent"] is None else int(row["parent"]),
    )


_REPORT_COLUMNS = "id, created_at, revision, kind, verdict"


def _report_metadata(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "created_at": str(row["created_at"]),
        "revision": row["revision"],
        "kind": str(row["kind"]),
        "verdict": str(row["verdict"]),
    }


def _report(row: sqlite3.Row) -> dict[str, Any]:
    """A ``reports`` row (every column) as metadata plus the parsed ``report`` body."""
    return {**_report_metadata(row), "report": json.loads(row["body"])}


#: Reports kept per kind (gate, live, audit) unless the store is told otherwise.
DEFAULT_KEEP_REPORTS = 100


class Store:
    """Intent revisions, the current revision pointer, and verification reports.

    Revisions and the audit log are kept for ever; verification reports are kept per kind,
    the newest ``keep_reports`` (every gate and live check writes one, and a report of a big
    fabric is megabytes).
    """

    def __init__(self, db: Database, *, keep_reports: int = DEFAULT_KEEP_REPORTS) -> None:
        if keep_reports < 1:
            raise ValueError(f"keep_reports must be at least 1, not {keep_reports}")
        self.db = db
        self.keep_reports = keep_reports

    def add_revision(
        self,
        document: dict[str, Any],
        *,
        author: str,
        kind: str,
        verdict: str,
        summary: str = "",
        parent: int | None = None,
        live_verdict: str = "unknown",
    ) -> Revision:
        """Record an applied intent and make it current (``live_verdict`` ``pending``: its push
        and live proof are still to come)."""
        content = canonical_json(document)
        digest = hashlib.sha256(content.encode()).hexdigest()
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO revisions"
                " (created_at, author, kind, sha256, content, verdict, live_verdict, summary, parent)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.db.now(), author, kind, digest, content, verdict, live_verdict, summary, parent),
            )
            rev_id = int(cursor.lastrowid or 0)
            conn.execute(
                "INSERT INTO state (key, value) VALUES ('current_revision', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(rev_id),),
            )
        return self.revision(rev_id)

    def set_live_verdict(self, revision: int, verdict: str) -> None:
        """Record the verdict of verifying the live flows after the push of ``revision``."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE revisions SET live_verdict = ? WHERE id = ?", (verdict, revision))

    def revision(self, revision: int) -> Revision:
        rows = self.db.query(f"SELECT {_REVISION_COLUMNS} FROM revisions WHERE id = ?", (revision,))
        if not rows:
            raise StoreError(f"revision {revision} does not exist")
        return _revision(rows[0])

    def revision_document(self, revision: int) -> dict[str, Any]:
        """The intent document of ``revision`` (as it was applied)."""
        rows = self.db.query("SELECT content FROM revisions WHERE id = ?", (revision,))
        if not rows:
            raise StoreError(f"revision {revision} does not exist")
        document: dict[str, Any] = json.loads(rows[0]["content"])
        return document

    def revisions(self, *, limit: int = 100, before: int | None = None) -> list[Revision]:
        """Newest first."""
        if before is None:
            rows = self.db.query(
                f"SELECT {_REVISION_COLUMNS} FROM revisions ORDER BY id DESC LIMIT ?", (limit,)
            )
        else:
            rows = self.db.query(
                f"SELECT {_REVISION_COLUMNS} FROM revisions WHERE id < ? ORDER BY id DESC LIMIT ?",
                (before, limit),
            )
        return [_revision(row) for row in rows]

    def current(self) -> Revision | None:
        rows = self.db.query("SELECT value FROM state WHERE key = 'current_revision'")
        return self.revision(int(rows[0]["value"])) if rows else None

    def current_document(self) -> dict[str, Any] | None:
        current = self.current()
        return None if current is None else self.revision_document(current.id)

    def add_report(
        self, *, kind: str, verdict: str, body: Mapping[str, Any] | str, revision: int | None
    ) -> int:
        """Keep a verification report (``kind``: gate, live, audit); the reports of that kind
        older than the newest :attr:`keep_reports` are deleted in the same transaction.
        ``body`` is the report, or its :func:`canonical_json` already encoded (a controller
        encodes a big report off its event loop)."""
        text = body if isinstance(body, str) else canonical_json(body)
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO reports (created_at, revision, kind, verdict, body) VALUES (?, ?, ?, ?, ?)",
                (self.db.now(), revision, kind, verdict, text),
            )
            conn.execute(
                "DELETE FROM reports WHERE kind = ? AND id NOT IN "
                "(SELECT id FROM reports WHERE kind = ? ORDER BY id DESC LIMIT ?)",
                (kind, kind, self.keep_reports),
            )
            return int(cursor.lastrowid or 0)

    def proof(self, inputs: str) -> dict[str, Any] | None:
        """The verification kept for these proof inputs (see :mod:`segctl.controller.proofs`), or None."""
        rows = self.db.query("SELECT body FROM proofs WHERE inputs = ?", (inputs,))
        if not rows:
            return None
        try:
            body = json.loads(rows[0]["body"])
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def add_proof(self, inputs: str, verdict: str, body: dict[str, Any], *, keep: int = 20) -> None:
        """Keep a verification under its proof inputs; only the newest ``keep`` are kept."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO proofs (inputs, created_at, verdict, body) VALUES (?, ?, ?, ?)",
                (inputs, self.db.now(), verdict, canonical_json_in_pieces(body)),
            )
            conn.execute(
                "DELETE FROM proofs WHERE inputs NOT IN "
                "(SELECT inputs FROM proofs ORDER BY created_at DESC, rowid DESC LIMIT ?)",
                (keep,),
            )

    def latest_report(self, *, kind: str | None = None) -> dict[str, Any] | None:
        """The newest report (of ``kind`` when given) with its metadata, or None."""
        if kind is None:
            rows = self.db.query("SELECT * FROM reports ORDER BY id DESC LIMIT 1")
        else:
            rows = self.db.query("SELECT * FROM reports WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,))
        return _report(rows[0]) if rows else None

    def reports(
        self,
        *,
        kind: str | None = None,
        revision: int | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        """The kept reports' metadata (no body), newest first; ``before`` is a report id to
        page from (the last id of the previous page), like :meth:`revisions`."""
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (("kind = ?", kind), ("revision = ?", revision), ("id < ?", before)):
            if value is not None:
                where.append(clause)
                params.append(value)
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.query(
            f"SELECT {_REPORT_COLUMNS} FROM reports{condition} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [_report_metadata(row) for row in rows]

    def report(self, report_id: int) -> dict[str, Any]:
        """One kept report with its metadata; :class:`StoreError` when there is none (never
        written, or trimmed by :attr:`keep_reports`)."""
        rows = self.db.query("SELECT * FROM reports WHERE id = ?", (report_id,))
        if not rows:
            raise StoreError(f"report {report_id} does not exist")
        return _report(rows[0])
