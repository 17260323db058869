"""``carbonflow keys``: API keys — create (the token is shown once), revoke, list; the audit log.

    carbonflow keys create --role operator --site shanxi-jinzhong-mine --label "control room"
    carbonflow keys create --role enterprise --site inner-mongolia-ordos-park \\
        --org cathode-plant --label "cathode plant energy manager"
    carbonflow keys create --role regulator --site A --site B --label "Shanxi DRC" \\
        --expires-days 365
    carbonflow keys rotate 3f9c0a1b2c4d [--expires-days 365]   a new token, same key id and scope
    carbonflow keys revoke 3f9c0a1b2c4d
    carbonflow keys list
    carbonflow keys audit [--key KEY_ID] [--limit 50]
    carbonflow keys secret          a random value for CARBONFLOW_API_ADMIN_KEY

The same operations are in the API (``/api/v1/keys``, admin keys only; docs/api.md).
``create`` and ``rotate`` print the token alone on stdout (so ``TOKEN=$(carbonflow keys create
…)`` works) and what they did on stderr. Only the token's SHA-256 is stored: a lost token cannot
be recovered, only revoked and replaced (or rotated).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from carbonflow.settings import DatabaseSettings
from carbonflow.storage.access import (
    KeyGrantError,
    audit_entries,
    create_key,
    list_keys,
    revoke_key,
    rotate_key,
)
from carbonflow.storage.db import make_engine

ROLES = ("admin", "operator", "enterprise", "regulator")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keys", help="create, revoke and list API keys; read the audit log (DATABASE_URL)"
    )
    actions = parser.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print its token once")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument(
        "--site", action="append", default=[], metavar="SITE", help="a site it may see (repeat)"
    )
    create.add_argument("--org", default=None, metavar="ORG", help="an enterprise key's org")
    create.add_argument("--label", required=True, help="who or what holds the key")
    create.add_argument("--rate-per-minute", type=int, default=None, help="own rate limit [1/min]")
    create.add_argument("--expires-days", type=float, default=None, help="valid for [d]")
    create.set_defaults(handler=run_create)
    rotate = actions.add_parser("rotate", help="a new token for a key; the old one stops working")
    rotate.add_argument("key_id", metavar="KEY_ID")
    rotate.add_argument("--expires-days", type=float, default=None, help="new validity [d]")
    rotate.set_defaults(handler=run_rotate)
    revoke = actions.add_parser("revoke", help="revoke a key (takes effect within seconds)")
    revoke.add_argument("key_id", metavar="KEY_ID")
    revoke.set_defaults(handler=run_revoke)
    listing = actions.add_parser("list", help="list keys (never their tokens)")
    listing.set_defaults(handler=run_list)
    audit = actions.add_parser("audit", help="newest audit-log rows (regulator reads, writes)")
    audit.add_argument("--key", default=None, metavar="KEY_ID")
    audit.add_argument("--limit", type=int, default=50)
    audit.set_defaults(handler=run_audit)
    secret = actions.add_parser("secret", help="print a random secret for CARBONFLOW_API_ADMIN_KEY")
    secret.set_defaults(handler=run_secret)


def _engine() -> sa.Engine | None:
    url = DatabaseSettings().database_url
    if url is None:
        print("DATABASE_URL is not set", file=sys.stderr)
        return None
    return make_engine(url)


def run_create(args: argparse.Namespace) -> int:
    from services.api.access import Role, grant_problems
    from services.api.tokens import new_key

    role = Role(args.role)
    problems = grant_problems(role, args.site, args.org)
    if args.rate_per_minute is not None and args.rate_per_minute < 1:
        problems.append("--rate-per-minute must be at least 1")
    if args.expires_days is not None and args.expires_days <= 0:
        problems.append("--expires-days must be positive")
    if not args.label.strip():
        problems.append("--label must not be empty")
    if problems:
        for problem in problems:
            print(f"keys create: {problem}", file=sys.stderr)
        return 2
    engine = _engine()
    if engine is None:
        return 2
    key = new_key()
    expires = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
    try:
        with engine.begin() as conn:
            create_key(
                conn,
                key_id=key.key_id,
                secret_sha256=key.secret_sha256,
                role=role.value,
                label=args.label.strip(),
                site_ids=args.site,
                org_id=args.org,
                requests_per_minute=args.rate_per_minute,
                expires_at=expires,
            )
    except (KeyGrantError, sa.exc.SQLAlchemyError) as exc:
        print(f"keys create: {_one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    sites = ", ".join(args.site) or "every site"
    org = f", organisation {args.org}" if args.org else ""
    until = f", expires {expires:%Y-%m-%d %H:%M %Z}" if expires else ""
    print(
        f"created {role.value} key {key.key_id} ({args.label.strip()}): {sites}{org}{until}\n"
        "the token below is shown once; store it now",
        file=sys.stderr,
    )
    print(key.token)
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    from services.api.tokens import new_key

    if args.expires_days is not None and args.expires_days <= 0:
        print("keys rotate: --expires-days must be positive", file=sys.stderr)
        return 2
    engine = _engine()
    if engine is None:
        return 2
    key = new_key(args.key_id)
    expires = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
    try:
        with engine.begin() as conn:
            rotated = rotate_key(
                conn, args.key_id, secret_sha256=key.secret_sha256, expires_at=expires
            )
    finally:
        engine.dispose()
    if not rotated:
        print(f"no active key {args.key_id!r}", file=sys.stderr)
        return 1
    print(
        f"rotated {args.key_id}: the old token stops working (other API processes within "
        "CARBONFLOW_API_KEY_CACHE_S); the token below is shown once, store it now",
        file=sys.stderr,
    )
    print(key.token)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    engine = _engine()
    if engine is None:
        return 2
    try:
        with engine.begin() as conn:
            revoked = revoke_key(conn, args.key_id)
    finally:
        engine.dispose()
    if not revoked:
        print(f"no active key {args.key_id!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.key_id} (API processes drop it within CARBONFLOW_API_KEY_CACHE_S)")
    return 0


def run_list(args: argparse.Namespace) -> int:
    engine = _engine()
    if engine is None:
        return 2
    try:
        with engine.connect() as conn:
            keys = list_keys(conn)
    finally:
        engine.dispose()
    for k in keys:
        state = "revoked" if k.revoked_at else "active"
        if state == "active" and k.expires_at is not None and k.expires_at <= datetime.now(UTC):
            state = "expired"
        used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never used"
        until = f"until {k.expires_at:%Y-%m-%d}" if k.expires_at else "no expiry"
        print(
            f"{k.key_id}\t{k.role}\t{state}\t{','.join(k.site_ids) or '*'}\t{k.org_id or '-'}"
            f"\t{used}\t{until}\t{k.label}"
        )
    if not keys:
        print("no API keys; create one with `carbonflow keys create`", file=sys.stderr)
    return 0


def run_audit(args: argparse.Namespace) -> int:
    engine = _engine()
    if engine is None:
        return 2
    try:
        with engine.connect() as conn:
            entries = audit_entries(conn, key_id=args.key, limit=max(1, args.limit))
    finally:
        engine.dispose()
    for e in entries:
        params = json.dumps({**e.path_params, **e.query}, ensure_ascii=False, sort_keys=True)
        print(
            f"{e.at:%Y-%m-%dT%H:%M:%S%z}\t{e.key_id}\t{e.role}\t{e.method}\t{e.path}\t{e.status}"
            f"\t{params}"
        )
    return 0


def run_secret(args: argparse.Namespace) -> int:
    from services.api.tokens import random_secret

    print(random_secret())
    return 0


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return " ".join(text.split())[:500]
