"""Bearer tokens, roles, and the permission check every API route declares.

A token reads ``sgt_<id>_<secret>``: ``id`` (8 hex digits) finds the row, and only the
sha256 of ``secret`` is stored, so the database never holds a usable token. The token
text is returned once, when it is created. A token expires ``ttl`` after its creation
(``segctl token create --ttl``, 90 days unless told otherwise; ``never`` for none) and is
refused from then on, like a revoked one.

Roles:

=============  =====================================================================
admin          everything
auditor        every read (intent, tenants, report, switches, flows, revisions,
               audit, metrics) and live verification runs (POST /v1/verify); no change
tenant-admin   read and write its own tenant (``/v1/tenants/<its tenant>``), nothing
               else: not the whole intent, not shared services, not other tenants
=============  =====================================================================

A route declares a :class:`Permission` (``access`` read/write, ``scope`` global/tenant);
:func:`authorize` is the one place that decides.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from segctl.controller.store import Database
from segctl.errors import SegctlError

__all__ = [
    "DEFAULT_TTL",
    "ROLES",
    "AuthenticationError",
    "Permission",
    "PermissionDenied",
    "Principal",
    "TokenStore",
    "authorize",
]

Role = Literal["admin", "auditor", "tenant-admin"]
#: How long a token is valid unless told otherwise.
DEFAULT_TTL = timedelta(days=90)
ROLES: tuple[Role, ...] = ("admin", "auditor", "tenant-admin")
_TOKEN_RE = re.compile(r"^sgt_([0-9a-f]{8})_([A-Za-z0-9_-]{20,128})$")


class AuthenticationError(SegctlError):
    """No token, a malformed token, or a token that is unknown or revoked (HTTP 401)."""


class PermissionDenied(SegctlError):
    """The token is valid but its role does not allow this (HTTP 403)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's id, role and (for tenant-admin) tenant."""

    token_id: str
    role: Role
    tenant: str | None = None
    name: str = ""

    @property
    def actor(self) -> str:
        """How the audit log names this caller: ``token:1a2b3c4d(tenant-admin:acme)``."""
        scope = f"{self.role}:{self.tenant}" if self.tenant else self.role
        return f"token:{self.token_id}({scope})"

    def to_json(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "role": self.role, "tenant": self.tenant, "name": self.name}


@dataclass(frozen=True)
class Permission:
    """What a route needs: read or write, on everything or on one tenant."""

    access: Literal["read", "write"]
    scope: Literal["global", "tenant"] = "global"


def authorize(principal: Principal, permission: Permission, *, tenant: str | None = None) -> None:
    """Raise :class:`PermissionDenied` unless ``principal`` may do ``permission``.

    ``tenant`` is the tenant the request addresses (for ``scope="tenant"`` routes).
    """
    if principal.role == "admin":
        return
    if principal.role == "auditor":
        if permission.access == "read":
            return
        raise PermissionDenied("the auditor role is read-only")
    if principal.role == "tenant-admin":
        if permission.scope == "tenant" and tenant is not None and tenant == principal.tenant:
            return
        raise PermissionDenied(f"a tenant-admin token may only use /v1/tenants/{principal.tenant}")
    raise PermissionDenied(f"unknown role {principal.role}")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Create, check, list and revoke bearer tokens kept (hashed) in the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self, role: str, *, tenant: str | None = None, name: str = "", ttl: timedelta | None = DEFAULT_TTL
    ) -> tuple[Principal, str]:
        """Create a token valid for ``ttl`` (None: until revoked); return its principal and the
        token text (shown only now)."""
        if ttl is not None and ttl <= timedelta(0):
            raise SegctlError(f"a token's lifetime must be positive, not {ttl}")
        if role not in ROLES:
            raise SegctlError(f"role {role!r} is not one of {', '.join(ROLES)}")
        if role == "tenant-admin" and not tenant:
            raise SegctlError("a tenant-admin token needs --tenant")
        if role != "tenant-admin" and tenant:
            raise SegctlError(f"only tenant-admin tokens are scoped to a tenant, not {role}")
        secret = secrets.token_urlsafe(32)
        with self.db.transaction() as conn:
            while True:
                token_id = secrets.token_hex(4)
                if conn.execute("SELECT 1 FROM tokens WHERE token_id = ?", (token_id,)).fetchone() is None:
                    break
            created = self.db.clock()
            expires = None if ttl is None else self.db.iso(created + ttl)
            conn.execute(
                "INSERT INTO tokens (token_id, secret_sha256, role, tenant, name, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_id, _digest(secret), role, tenant, name, self.db.iso(created), expires),
            )
        principal = Principal(token_id, role, tenant, name)
        return principal, f"sgt_{token_id}_{secret}"

    def authenticate(self, authorization: str | None) -> Principal:
        """Check an ``Authorization`` header value; raise :class:`AuthenticationError`."""
        if not authorization:
            raise AuthenticationError("missing bearer token (Authorization: Bearer sgt_...)")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
        match = _TOKEN_RE.match(token.strip())
        if match is None:
            raise AuthenticationError("malformed bearer token")
        token_id, secret = match.groups()
        rows = self.db.query(
            "SELECT token_id, secret_sha256, role, tenant, name, revoked_at, expires_at"
            " FROM tokens WHERE token_id = ?",
            (token_id,),
        )
        # Compare against a dummy digest when the id is unknown, so timing does not tell.
        stored = str(rows[0]["secret_sha256"]) if rows else _digest("")
        if not hmac.compare_digest(stored, _digest(secret)) or not rows:
            raise AuthenticationError("invalid bearer token")
        row = rows[0]
        if row["revoked_at"] is not None:
            raise AuthenticationError("this token was revoked")
        if row["expires_at"] is not None and row["expires_at"] <= self.db.now():
            raise AuthenticationError(f"this token expired at {row['expires_at']}")
        return Principal(str(row["token_id"]), row["role"], row["tenant"], str(row["name"]))

    def revoke(self, token_id: str) -> bool:
        """Revoke a token; False when no active token has that id."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                (self.db.now(), token_id),
            )
            return cursor.rowcount > 0

    def list(self) -> list[dict[str, Any]]:
        """Every token's metadata (never a secret or its hash)."""
        rows = self.db.query(
            "SELECT token_id, role, tenant, name, created_at, expires_at, revoked_at FROM tokens"
            " ORDER BY created_at"
        )
        return [dict(row) for row in rows]
