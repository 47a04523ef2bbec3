"""The audit hash chain: appends verify; edits, deletions and reorderings are caught."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from segctl.controller.audit import GENESIS_HASH, AuditLog, entry_hash, verify_chain
from segctl.controller.store import Database, StoreError


def _log(path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(Database(path))
    for i in range(n):
        log.append(
            actor=f"user{i % 2}", action="intent.apply", object="intent", detail={"rev": i, "ok": True}
        )
    return log


def _tamper(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()


def test_chain_links_and_verifies(tmp_path: Path) -> None:
    log = _log(tmp_path / "a.db")
    entries = log.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    for prev, cur in itertools.pairwise(entries):
        assert cur.prev_hash == prev.hash
        assert cur.hash == entry_hash(prev.hash, cur.body())
    assert verify_chain(log.db) == []
    assert verify_chain(tmp_path / "a.db") == []
    assert log.head() == (5, entries[-1].hash)
    assert [e.seq for e in log.entries(actor="user1")] == [2, 4]
    assert [e.seq for e in log.entries(after=3)] == [4, 5]


def test_empty_log_verifies(tmp_path: Path) -> None:
    db = Database(tmp_path / "a.db")
    assert verify_chain(db) == []
    assert AuditLog(db).head() == (0, GENESIS_HASH)


def test_triggers_refuse_update_and_delete(tmp_path: Path) -> None:
    log = _log(tmp_path / "a.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), log.db.transaction() as conn:
        conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), log.db.transaction() as conn:
        conn.execute("DELETE FROM audit WHERE seq = 1")
    assert verify_chain(log.db) == []


@pytest.mark.parametrize(
    ("statements", "bad_seq"),
    [
        (["UPDATE audit SET actor = 'mallory' WHERE seq = 3"], 3),
        (['UPDATE audit SET detail = \'{"ok":false,"rev":2}\' WHERE seq = 3'], 3),
        (["UPDATE audit SET time = '2000-01-01T00:00:00+00:00' WHERE seq = 2"], 2),
        (["DELETE FROM audit WHERE seq = 3"], 4),
        # swap the content of two entries (reorder), keeping seq numbers
        (
            [
                "UPDATE audit SET seq = -2 WHERE seq = 2",
                "UPDATE audit SET seq = 2 WHERE seq = 3",
                "UPDATE audit SET seq = 3 WHERE seq = -2",
            ],
            2,
        ),
        # delete the newest entry: the recorded head catches it
        (["DELETE FROM audit WHERE seq = 5"], 4),
    ],
    ids=["edit-actor", "edit-detail", "edit-time", "delete-middle", "reorder", "delete-last"],
)
def test_tampering_is_detected(tmp_path: Path, statements: list[str], bad_seq: int) -> None:
    path = tmp_path / "a.db"
    _log(path).db.close()
    assert verify_chain(path) == []
    _tamper(path, *statements)
    problems = verify_chain(path)
    assert problems, "tampering went unnoticed"
    assert bad_seq in {p.seq for p in problems}


def test_rehashed_edit_is_caught_by_next_link(tmp_path: Path) -> None:
    """An attacker who edits an entry and recomputes its hash breaks the next prev_hash."""
    path = tmp_path / "a.db"
    log = _log(path)
    e2 = log.entries()[1]
    log.db.close()
    body = {**e2.body(), "actor": "mallory"}
    new_hash = entry_hash(e2.prev_hash, body)
    _tamper(path, f"UPDATE audit SET actor = 'mallory', hash = '{new_hash}' WHERE seq = 2")
    problems = verify_chain(path)
    assert {p.seq for p in problems} == {3}


def test_truncation_with_forged_head_needs_the_anchor(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    log = _log(path)
    anchor = "{}:{}".format(*log.head())
    e4 = log.entries()[3]
    log.db.close()
    _tamper(
        path,
        "DELETE FROM audit WHERE seq = 5",
        f"UPDATE state SET value = '4:{e4.hash}' WHERE key = 'audit_head'",
    )
    assert verify_chain(path) == []  # indistinguishable without an outside anchor...
    assert verify_chain(path, expect_head=anchor)  # ...which catches it
    assert verify_chain(path, expect_head=f"4:{e4.hash}") == []


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such database"):
        verify_chain(tmp_path / "nope.db")


def test_cli_audit_verify_and_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from segctl.cli import main
    from segctl.controller.auth import TokenStore

    path = tmp_path / "a.db"
    _log(path).db.close()
    assert main(["audit", "verify", str(path)]) == 0
    assert "intact" in capsys.readouterr().out
    assert main(["audit", "head", str(path)]) == 0
    anchor = capsys.readouterr().out.strip()
    assert anchor.startswith("5:")
    _tamper(path, "UPDATE audit SET action = 'nothing' WHERE seq = 2")
    assert main(["audit", "verify", str(path), "-o", "json"]) == 1
    assert '"seq": 2' in capsys.readouterr().out
    assert main(["audit", "verify", str(tmp_path / "missing.db")]) == 2
    assert "no such database" in capsys.readouterr().err

    assert main(["token", "create", "--store", str(path), "--role", "tenant-admin", "--tenant", "acme"]) == 0
    text = capsys.readouterr().out.splitlines()[0]
    principal = TokenStore(Database(path)).authenticate(f"Bearer {text}")
    assert principal.role == "tenant-admin" and principal.tenant == "acme"
    assert main(["token", "create", "--store", str(path), "--role", "tenant-admin"]) == 2
    assert main(["token", "revoke", "--store", str(path), principal.token_id]) == 0
    assert main(["token", "revoke", "--store", str(path), principal.token_id]) == 2


def test_the_hash_covers_the_stored_bytes(tmp_path: Path) -> None:
    """A detail with a key twice reads differently to different parsers (Python: the last,
    SQLite's json_extract: the first). Re-encoding what Python read made such a forgery hash
    like the original; the chain hashes the stored text itself."""
    path = tmp_path / "a.db"
    log = AuditLog(Database(path))
    log.append(
        actor="admin", action="intent.apply", object="intent", detail={"revision": 1, "verdict": "pass"}
    )
    log.append(actor="admin", action="verify.live", object="fabric", detail={"verdict": "pass"})
    log.db.close()
    forged = '{"revision":1,"verdict":"FORGED","verdict":"pass"}'
    _tamper(path, f"UPDATE audit SET detail = '{forged}' WHERE seq = 1")
    conn = sqlite3.connect(path)
    (read,) = conn.execute("SELECT json_extract(detail, '$.verdict') FROM audit WHERE seq = 1").fetchone()
    conn.close()
    assert read == "FORGED"
    problems = verify_chain(path)
    assert [p.seq for p in problems] == [1] and "edited" in problems[0].message


def test_whitespace_or_key_order_in_a_stored_detail_is_an_edit(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _log(path).db.close()
    _tamper(path, """UPDATE audit SET detail = '{"rev": 2, "ok": true}' WHERE seq = 3""")
    assert {p.seq for p in verify_chain(path)} == {3}
