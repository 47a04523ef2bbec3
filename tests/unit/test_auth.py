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
