"""``segctl audit`` and ``segctl token``: check the audit chain, manage API tokens.

::

    segctl audit verify DB [--expect-head SEQ:HASH]   exit 1 when the chain is broken
    segctl audit head DB                              print SEQ:HASH to anchor elsewhere
    segctl audit log DB [--after N] [--limit N]
    segctl token create --store DB --role admin|auditor|tenant-admin [--tenant T] [--name N]
                        [--ttl 90d|12h|30m|3600s|never]
    segctl token list --store DB
    segctl token revoke --store DB TOKEN_ID
"""

from __future__ import annotations

import argparse
import re
from datetime import timedelta
from pathlib import Path

from segctl.cli.common import (
    EXIT_OK,
    EXIT_VIOLATION,
    add_output_option,
    format_table,
    print_json,
)

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit`` and ``token``."""
    audit = subparsers.add_parser("audit", help="check and read the tamper-evident audit log")
    sub = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    verify = sub.add_parser("verify", help="check the hash chain of the audit log (exit 1 if broken)")
    verify.add_argument("db", type=Path, metavar="DB", help="the controller's SQLite store")
    verify.add_argument("--expect-head", metavar="SEQ:HASH", help="a head printed earlier by `audit head`")
    add_output_option(verify)
    verify.set_defaults(func=_verify)
    head = sub.add_parser("head", help="print the newest entry as SEQ:HASH (anchor it elsewhere)")
    head.add_argument("db", type=Path, metavar="DB")
    head.set_defaults(func=_head)
    log = sub.add_parser("log", help="print audit entries")
    log.add_argument("db", type=Path, metavar="DB")
    log.add_argument("--after", type=int, default=0, metavar="SEQ")
    log.add_argument("--limit", type=int, default=100)
    add_output_option(log)
    log.set_defaults(func=_log)

    token = subparsers.add_parser("token", help="create, list and revoke REST API bearer tokens")
    tsub = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    create = tsub.add_parser("create", help="create a token (printed once; only its hash is stored)")
    create.add_argument("--store", type=Path, required=True, metavar="DB")
    create.add_argument("--role", required=True, choices=["admin", "auditor", "tenant-admin"])
    create.add_argument("--tenant", help="the tenant of a tenant-admin token")
    create.add_argument("--name", default="", help="a label for the token")
    create.add_argument(
        "--ttl",
        type=_duration,
        default="90d",
        metavar="DURATION",
        help="how long the token is valid: N followed by s, m, h or d, or 'never' (default 90d)",
    )
    add_output_option(create)
    create.set_defaults(func=_token_create)
    listing = tsub.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--store", type=Path, required=True, metavar="DB")
    add_output_option(listing)
    listing.set_defaults(func=_token_list)
    revoke = tsub.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("--store", type=Path, required=True, metavar="DB")
    revoke.add_argument("token_id")
    revoke.set_defaults(func=_token_revoke)


def _duration(text: str) -> timedelta | None:
    """``90d``, ``12h``, ``30m``, ``3600s`` or ``3600`` (seconds) as a timedelta; ``never``: None."""
    if text.strip().lower() == "never":
        return None
    match = re.fullmatch(r"\s*([0-9]{1,9})\s*([smhd]?)\s*", text)
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive N[s|m|h|d] or never")
    unit = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def _existing(path: Path) -> Path:
    from segctl.controller.store import StoreError

    if not path.is_file():
        raise StoreError(f"{path}: no such database file")
    return path


def _verify(args: argparse.Namespace) -> int:
    from segctl.controller.audit import verify_chain

    problems = verify_chain(args.db, expect_head=args.expect_head)
    if args.output == "json":
        print_json({"ok": not problems, "problems": [p.to_json() for p in problems]})
    elif problems:
        for problem in problems:
            print(f"{args.db}: {problem}")
    else:
        print(f"{args.db}: audit chain intact")
    return EXIT_VIOLATION if problems else EXIT_OK


def _open(path: Path):  # type: ignore[no-untyped-def]
    from segctl.controller.store import Database

    return Database(_existing(path))


def _head(args: argparse.Namespace) -> int:
    from segctl.controller.audit import AuditLog

    seq, digest = AuditLog(_open(args.db)).head()
    print(f"{seq}:{digest}")
    return EXIT_OK


def _log(args: argparse.Namespace) -> int:
    from segctl.controller.audit import AuditLog

    entries = AuditLog(_open(args.db)).entries(after=args.after, limit=args.limit)
    if args.output == "json":
        print_json([e.to_json() for e in entries])
    else:
        rows = [(e.seq, e.time, e.actor, e.action, e.object) for e in entries]
        print(format_table(["SEQ", "TIME", "ACTOR", "ACTION", "OBJECT"], rows))
    return EXIT_OK


def _token_create(args: argparse.Namespace) -> int:
    from segctl.controller.auth import TokenStore
    from segctl.controller.store import Database

    tokens = TokenStore(Database(args.store))
    principal, text = tokens.create(args.role, tenant=args.tenant, name=args.name, ttl=args.ttl)
    expires = next(t["expires_at"] for t in tokens.list() if t["token_id"] == principal.token_id)
    if args.output == "json":
        print_json({**principal.to_json(), "token": text, "expires_at": expires})
    else:
        print(text)
        until = f"expires {expires}" if expires else "never expires"
        print(f"# token id {principal.token_id}, role {principal.role}, {until};", end=" ")
        print("shown once, only its hash is kept")
    return EXIT_OK


def _token_list(args: argparse.Namespace) -> int:
    from segctl.controller.auth import TokenStore

    tokens = TokenStore(_open(args.store)).list()
    if args.output == "json":
        print_json(tokens)
    else:
        keys = ["token_id", "role", "tenant", "name", "created_at", "expires_at", "revoked_at"]
        print(format_table([k.upper() for k in keys], [[t[k] for k in keys] for t in tokens]))
    return EXIT_OK


def _token_revoke(args: argparse.Namespace) -> int:
    from segctl.controller.auth import TokenStore
    from segctl.errors import SegctlError

    if not TokenStore(_open(args.store)).revoke(args.token_id):
        raise SegctlError(f"no active token with id {args.token_id}")
    print(f"revoked {args.token_id}")
    return EXIT_OK
