"""The SQLite store: migrations, revisions, current pointer, reports, concurrency."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from segctl.controller.store import MIGRATIONS, Database, Store, StoreError, canonical_json, content_hash


def test_migrations_apply_once_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = Database(path)
    assert db.schema_version() == len(MIGRATIONS)
    db.close()
    db = Database(path)  # reopening must not re-run migrations (tables exist: would raise)
    assert db.schema_version() == len(MIGRATIONS)
    assert db.query("PRAGMA journal_mode")[0][0] == "wal"
    db.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Database(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations VALUES (?, 'x')", (len(MIGRATIONS) + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Database(path)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Database(path)


def test_revisions_history_and_current(tmp_path: Path) -> None:
    store = Store(Database(tmp_path / "s.db"))
    assert store.current() is None and store.current_document() is None
    doc1 = {"fabric": {"switches": [{"name": "s1", "dpid": 1}]}, "tenants": []}
    doc2 = {"tenants": [], "fabric": {"switches": [{"name": "s1", "dpid": 2}]}}
    r1 = store.add_revision(doc1, author="alice", kind="apply", verdict="pass")
    r2 = store.add_revision(doc2, author="bob", kind="apply", verdict="pass", summary="dpid")
    assert r2.id > r1.id
    assert store.current() == r2
    assert store.revision_document(r1.id) == doc1
    assert r1.sha256 == content_hash(doc1) != r2.sha256
    # the hash is of canonical JSON: key order does not matter
    assert content_hash({"b": 1, "a": 2}) == content_hash({"a": 2, "b": 1})
    assert [r.id for r in store.revisions()] == [r2.id, r1.id]
    assert [r.id for r in store.revisions(before=r2.id)] == [r1.id]
    store.set_live_verdict(r2.id, "fail")
    assert store.revision(r2.id).live_verdict == "fail"
    rb = store.add_revision(doc1, author="carol", kind="rollback", verdict="pass", parent=r1.id)
    assert store.current() == rb and rb.parent == r1.id and rb.sha256 == r1.sha256
    with pytest.raises(StoreError, match="revision 99"):
        store.revision(99)
    with pytest.raises(StoreError):
        store.revision_document(99)


def test_reports(tmp_path: Path) -> None:
    store = Store(Database(tmp_path / "s.db"))
    assert store.latest_report() is None
    store.add_report(kind="gate", verdict="pass", body={"x": 1}, revision=None)
    store.add_report(kind="live", verdict="fail", body={"y": 2}, revision=None)
    assert store.latest_report()["report"] == {"y": 2}  # type: ignore[index]
    assert store.latest_report(kind="gate")["verdict"] == "pass"  # type: ignore[index]


def test_reports_listed_newest_first_filtered_and_paged(tmp_path: Path) -> None:
    store = Store(Database(tmp_path / "s.db"))
    assert store.reports() == []
    written: list[tuple[str, str, int | None]] = [
        ("gate", "pass", 1),
        ("live", "pass", 1),
        ("gate", "fail", None),  # a rejected change: no revision
        ("gate", "pass", 2),
        ("live", "partial", 2),
        ("audit", "pass", 2),
    ]
    made = [
        store.add_report(kind=kind, verdict=verdict, body={"n": n}, revision=revision)
        for n, (kind, verdict, revision) in enumerate(written)
    ]
    listed = store.reports()
    assert [r["id"] for r in listed] == made[::-1]
    assert listed[0] == {
        "id": made[5],
        "created_at": listed[0]["created_at"],
        "revision": 2,
        "kind": "audit",
        "verdict": "pass",
    }
    assert [(r["kind"], r["verdict"], r["revision"]) for r in store.reports(kind="gate")] == [
        ("gate", "pass", 2),
        ("gate", "fail", None),
        ("gate", "pass", 1),
    ]
    assert [r["id"] for r in store.reports(revision=1)] == [made[1], made[0]]
    assert [r["id"] for r in store.reports(kind="live", revision=2)] == [made[4]]
    assert store.reports(kind="live", revision=3) == []
    assert [r["id"] for r in store.reports(limit=2)] == [made[5], made[4]]
    assert [r["id"] for r in store.reports(limit=2, before=made[4])] == [made[3], made[2]]
    assert [r["id"] for r in store.reports(kind="gate", before=made[3])] == [made[2], made[0]]
    assert store.reports(before=made[0]) == []


def test_report_by_id_and_missing(tmp_path: Path) -> None:
    store = Store(Database(tmp_path / "s.db"), keep_reports=2)
    first = store.add_report(kind="gate", verdict="pass", body={"n": 0}, revision=1)
    live = store.add_report(kind="live", verdict="fail", body={"v": [1, 2]}, revision=1)
    one = store.report(live)
    assert one == {**store.reports(kind="live")[0], "report": {"v": [1, 2]}}
    assert one == store.latest_report(kind="live")
    assert store.report(first)["report"] == {"n": 0}
    with pytest.raises(StoreError, match="report 99 does not exist"):
        store.report(99)
    store.add_report(kind="gate", verdict="pass", body={"n": 1}, revision=2)
    store.add_report(kind="gate", verdict="pass", body={"n": 2}, revision=3)
    with pytest.raises(StoreError, match=f"report {first} does not exist"):  # trimmed by keep_reports
        store.report(first)
    assert [r["revision"] for r in store.reports(kind="gate")] == [3, 2]


def test_failed_transaction_rolls_back(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO state (key, value) VALUES ('k', 'v')")
        raise RuntimeError("boom")
    assert db.query("SELECT * FROM state WHERE key = 'k'") == []


def test_concurrent_writers_keep_every_revision(tmp_path: Path) -> None:
    store = Store(Database(tmp_path / "s.db"))
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                store.add_revision({"n": n, "i": i}, author=f"t{n}", kind="apply", verdict="pass")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    revisions = store.revisions(limit=1000)
    assert len(revisions) == 120
    assert len({r.id for r in revisions}) == 120


def test_second_process_reads_while_open(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(Database(path))
    store.add_revision({"a": 1}, author="a", kind="apply", verdict="pass")
    other = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    (content,) = other.execute("SELECT content FROM revisions").fetchone()
    other.close()
    assert content == canonical_json({"a": 1})


def test_reports_are_kept_per_kind_newest_first(tmp_path: Path) -> None:
    """Every gate and live check writes a report (megabytes on a big fabric): the store keeps
    the newest ``keep_reports`` of each kind and deletes the older ones as it writes."""
    store = Store(Database(tmp_path / "s.db"), keep_reports=3)
    gate_ids = [store.add_report(kind="gate", verdict="pass", body={"n": n}, revision=n) for n in range(5)]
    live_id = store.add_report(kind="live", verdict="pass", body={"live": True}, revision=None)
    assert len(store.reports(kind="gate")) == 3 and len(store.reports(kind="live")) == 1
    assert len(store.reports()) == 4
    kept = [r["id"] for r in store.db.query("SELECT id FROM reports WHERE kind = 'gate' ORDER BY id")]
    assert kept == gate_ids[-3:]
    assert store.latest_report(kind="gate")["report"] == {"n": 4}  # type: ignore[index]
    assert store.latest_report()["id"] == live_id  # type: ignore[index]
    # A store opened later with a smaller limit trims on its next write.
    smaller = Store(Database(tmp_path / "s.db"), keep_reports=1)
    smaller.add_report(kind="gate", verdict="fail", body={"n": 5}, revision=None)
    assert len(smaller.reports(kind="gate")) == 1 and len(smaller.reports(kind="live")) == 1


def test_keep_reports_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_reports must be at least 1"):
        Store(Database(tmp_path / "s.db"), keep_reports=0)


def test_controller_keep_reports_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--keep-reports`` reaches the store the controller builds; a value below 1 is bad input."""
    from segctl.cli import main
    from segctl.cli.controller import _ServiceFactory
    from segctl.controller.memory_southbound import MemorySouthbound
    from segctl.controller.runner import Started, in_os_thread

    assert main(["controller", "run", "--store", str(tmp_path / "s.db"), "--keep-reports", "0"]) == 2
    assert "--keep-reports must be >= 1" in capsys.readouterr().err
    factory = _ServiceFactory(intent=None, store=tmp_path / "s.db", keep_reports=7)
    service, _ = factory(Started(MemorySouthbound(), in_os_thread))
    assert service.store.keep_reports == 7


def _old_store(path: Path) -> None:
    """A store as segctl wrote it before migration 3 (its first two migrations, as they are
    kept unchanged), with a token, a revision and an audit chain written the old way."""
    from segctl.controller.audit import GENESIS_HASH, entry_hash
    from segctl.controller.store import _split_sql

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
    for version, script in enumerate(MIGRATIONS[:2], start=1):
        for statement in _split_sql(script):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, '2024-01-01')", (version,))
    import hashlib

    conn.execute(
        "INSERT INTO tokens (token_id, secret_sha256, role, tenant, name, created_at)"
        " VALUES ('0badcafe', ?, 'admin', NULL, 'old', '2024-01-01T00:00:00.000000+00:00')",
        (hashlib.sha256(b"s" * 43).hexdigest(),),
    )
    prev = GENESIS_HASH
    for seq in (1, 2):
        body = {"seq": seq, "time": f"2024-01-0{seq}T00:00:00.000000+00:00", "actor": "cli",
                "action": "intent.apply", "object": "intent", "detail": {"revision": seq}}  # fmt: skip
        digest = entry_hash(prev, body)
        conn.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                body["time"],
                "cli",
                "intent.apply",
                "intent",
                canonical_json(body["detail"]),
                prev,
                digest,
            ),
        )
        prev = digest
    conn.execute("INSERT INTO state VALUES ('audit_head', ?)", (f"2:{prev}",))
    conn.commit()
    conn.close()


def test_a_store_of_the_old_schema_is_migrated(tmp_path: Path) -> None:
    from datetime import timedelta

    from segctl.controller.audit import AuditLog, verify_chain
    from segctl.controller.auth import TokenStore

    path = tmp_path / "old.db"
    _old_store(path)
    assert verify_chain(path) == []
    db = Database(path)
    assert db.schema_version() == len(MIGRATIONS) == 3
    tokens = TokenStore(db)
    principal = tokens.authenticate("Bearer sgt_0badcafe_" + "s" * 43)  # an old token never expires
    assert principal.name == "old" and tokens.list()[0]["expires_at"] is None
    assert verify_chain(db) == []
    log = AuditLog(db)
    log.append(actor="admin", action="verify.live", object="fabric", detail={"verdict": "pass"})
    assert verify_chain(db) == [] and log.head()[0] == 3
    _, text = tokens.create("auditor", ttl=timedelta(seconds=-1) + timedelta(seconds=2))
    assert tokens.authenticate(f"Bearer {text}").role == "auditor"
    with pytest.raises(sqlite3.IntegrityError, match="at most 16 KiB"), db.transaction() as conn:
        conn.execute(
            "INSERT INTO audit VALUES (9, 't', 'a', 'b', 'c', ?, 'p', 'h')", ('{"x":"' + "y" * 20000 + '"}',)
        )
    plan = db.query("EXPLAIN QUERY PLAN SELECT * FROM audit WHERE seq > 0 AND action = 'x' ORDER BY seq")
    assert any("audit_by_action" in str(tuple(row)) for row in plan)


def test_a_new_store_is_private(tmp_path: Path) -> None:
    import os
    import stat

    path = tmp_path / "new.db"
    db = Database(path)
    Store(db).add_report(kind="gate", verdict="pass", body={}, revision=None)  # the WAL exists now
    for name in ("new.db", "new.db-wal", "new.db-shm"):
        mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
        assert mode == 0o600, (name, oct(mode))
