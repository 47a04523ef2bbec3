"""Bearer tokens are stored only as hashes; roles decide in one place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from segctl.controller.auth import (
    AuthenticationError,
    Permission,
    PermissionDenied,
    Principal,
    TokenStore,
    authorize,
)
from segctl.controller.store import Database
from segctl.errors import SegctlError


@pytest.fixture
def tokens(tmp_path: Path) -> TokenStore:
    return TokenStore(Database(tmp_path / "t.db"))


def test_token_round_trip_and_only_hash_stored(tokens: TokenStore, tmp_path: Path) -> None:
    principal, text = tokens.create("tenant-admin", tenant="acme", name="ci")
    assert tokens.authenticate(f"Bearer {text}") == principal
    assert principal.actor == f"token:{principal.token_id}(tenant-admin:acme)"
    secret = text.split("_", 2)[2]
    raw = (tmp_path / "t.db").read_bytes()
    for suffix in ("-wal", "-shm"):
        extra = tmp_path / f"t.db{suffix}"
        if extra.exists():
            raw += extra.read_bytes()
    assert secret.encode() not in raw and text.encode() not in raw
    listed = tokens.list()
    assert listed[0]["token_id"] == principal.token_id and "secret_sha256" not in listed[0]


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Basic abc", "Bearer sgt_zz_short", "Bearer sgt_00000000_" + "a" * 43, "sgt_x"],
)
def test_bad_headers_are_rejected(tokens: TokenStore, header: str | None) -> None:
    with pytest.raises(AuthenticationError):
        tokens.authenticate(header)


def test_wrong_secret_and_revoked(tokens: TokenStore) -> None:
    principal, text = tokens.create("admin")
    forged = text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationError, match="invalid"):
        tokens.authenticate(f"Bearer {forged}")
    assert tokens.revoke(principal.token_id)
    assert not tokens.revoke(principal.token_id)
    with pytest.raises(AuthenticationError, match="revoked"):
        tokens.authenticate(f"Bearer {text}")


def test_create_checks_role_and_tenant(tokens: TokenStore) -> None:
    with pytest.raises(SegctlError, match="role"):
        tokens.create("root")
    with pytest.raises(SegctlError, match="--tenant"):
        tokens.create("tenant-admin")
    with pytest.raises(SegctlError, match="only tenant-admin"):
        tokens.create("auditor", tenant="acme")


def test_tokens_are_unique(tokens: TokenStore) -> None:
    texts = {tokens.create("auditor")[1] for _ in range(50)}
    assert len(texts) == 50
    ids = {t["token_id"] for t in tokens.list()}
    assert len(ids) == 50


def test_stored_digest_is_sha256(tokens: TokenStore, tmp_path: Path) -> None:
    import hashlib

    principal, text = tokens.create("admin")
    conn = sqlite3.connect(tmp_path / "t.db")
    (digest,) = conn.execute(
        "SELECT secret_sha256 FROM tokens WHERE token_id = ?", (principal.token_id,)
    ).fetchone()
    conn.close()
    assert digest == hashlib.sha256(text.split("_", 2)[2].encode()).hexdigest()


READ, WRITE = Permission("read"), Permission("write")
TREAD, TWRITE = Permission("read", "tenant"), Permission("write", "tenant")
ADMIN = Principal("a", "admin")
AUDITOR = Principal("b", "auditor")
ACME = Principal("c", "tenant-admin", "acme")


@pytest.mark.parametrize(
    ("principal", "permission", "tenant", "allowed"),
    [
        (ADMIN, WRITE, None, True),
        (ADMIN, TWRITE, "globex", True),
        (AUDITOR, READ, None, True),
        (AUDITOR, TREAD, "acme", True),
        (AUDITOR, WRITE, None, False),
        (AUDITOR, TWRITE, "acme", False),
        (ACME, TREAD, "acme", True),
        (ACME, TWRITE, "acme", True),
        (ACME, TREAD, "globex", False),
        (ACME, TWRITE, "globex", False),
        (ACME, READ, None, False),
        (ACME, WRITE, None, False),
        (ACME, TREAD, None, False),
    ],
)
def test_authorize_matrix(
    principal: Principal, permission: Permission, tenant: str | None, allowed: bool
) -> None:
    if allowed:
        authorize(principal, permission, tenant=tenant)
    else:
        with pytest.raises(PermissionDenied):
            authorize(principal, permission, tenant=tenant)


def test_tokens_expire(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    tokens = TokenStore(Database(tmp_path / "t.db", clock=lambda: now[0]))
    _, short = tokens.create("admin", ttl=timedelta(hours=1))
    _, default = tokens.create("auditor")
    _, forever = tokens.create("auditor", ttl=None)
    listed = {t["role"] + str(t["expires_at"]) for t in tokens.list()}
    assert "admin2030-01-01T01:00:00.000000+00:00" in listed and "auditorNone" in listed
    now[0] += timedelta(minutes=59)
    assert tokens.authenticate(f"Bearer {short}").role == "admin"
    now[0] += timedelta(minutes=1)
    with pytest.raises(AuthenticationError, match="expired at 2030-01-01T01:00:00"):
        tokens.authenticate(f"Bearer {short}")
    now[0] += timedelta(days=89)
    assert tokens.authenticate(f"Bearer {default}").role == "auditor"
    now[0] += timedelta(days=1)
    with pytest.raises(AuthenticationError, match="expired"):
        tokens.authenticate(f"Bearer {default}")
    assert tokens.authenticate(f"Bearer {forever}").role == "auditor"
    with pytest.raises(SegctlError, match="positive"):
        tokens.create("admin", ttl=timedelta(0))


def test_cli_token_ttl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from segctl.cli import main

    store = str(tmp_path / "t.db")
    assert main(["token", "create", "--store", store, "--role", "admin", "--ttl", "12h"]) == 0
    assert "expires 20" in capsys.readouterr().out
    assert main(["token", "create", "--store", store, "--role", "admin", "--ttl", "never"]) == 0
    assert "never expires" in capsys.readouterr().out
    assert main(["token", "create", "--store", store, "--role", "admin", "--ttl", "0d"]) == 2
    assert "expected a positive" in capsys.readouterr().err
