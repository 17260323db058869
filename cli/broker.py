"""``carbonflow broker acl``: Mosquitto password file, ACL and credentials from the site registry.

    carbonflow broker acl --out deploy/mosquitto/auth --sites carbonflow/sites/examples
    carbonflow broker acl --out auth --keep                # keep the passwords of the last run
    carbonflow broker acl --out auth --secrets my-secrets  # passwords chosen elsewhere
    carbonflow broker acl --out auth --gateway shanxi-jinzhong-mine/gw-shaft-1 --publisher simulator

Devices come from site files or directories of them (``--sites``), else from the registry in
``DATABASE_URL`` (active devices only: a decommissioned device gets no account). Writes into
``--out``: ``passwd`` (Mosquitto ``password_file``, PBKDF2-SHA512 hashes), ``acl``
(``acl_file``) and ``credentials`` (``user:password`` lines, mode 0600: hand each device its
line). A password comes from ``--secrets`` (the same format), else for the ingest and
publisher users from ``CARBONFLOW_BROKER_INGEST_PASSWORD`` / ``_PUBLISHER_PASSWORD``, else with
``--keep`` from the ``credentials`` already in ``--out``, else it is generated. Mosquitto
rereads ``passwd`` and ``acl`` on SIGHUP.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from carbonflow.broker_acl import (
    DEFAULT_INGEST_USER,
    SALT_BYTES,
    BrokerAclError,
    BrokerUser,
    hash_password,
    parse_secrets,
    plan_users,
    render_acl,
    render_password_file,
    render_secrets,
)
from carbonflow.settings import EnvSettings

PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
CREDENTIALS_FILE = "credentials"
# 32 random bytes, URL-safe: nothing to escape in MQTT_URL or a device's configuration.
_GENERATED_PASSWORD_BYTES = 32


class BrokerAclSettings(EnvSettings):
    """Passwords of the service users, from the environment (never from arguments)."""

    ingest_password: SecretStr | None = Field(
        default=None, validation_alias="CARBONFLOW_BROKER_INGEST_PASSWORD"
    )
    publisher_password: SecretStr | None = Field(
        default=None, validation_alias="CARBONFLOW_BROKER_PUBLISHER_PASSWORD"
    )
    shared_group: str = Field(
        default="carbonflow-ingest",
        validation_alias="CARBONFLOW_INGEST_SHARED_GROUP",
        description="the ingest workers' shared-subscription group (the same setting as ingest)",
    )

    def credentials(self) -> list[tuple[str, str | SecretStr | None]]:
        return [
            *super().credentials(),
            ("CARBONFLOW_BROKER_INGEST_PASSWORD", self.ingest_password),
            ("CARBONFLOW_BROKER_PUBLISHER_PASSWORD", self.publisher_password),
        ]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "broker", help="Mosquitto credentials and ACL from the site registry"
    )
    actions = parser.add_subparsers(dest="broker_action", required=True, metavar="ACTION")
    acl = actions.add_parser(
        "acl", help="write passwd, acl and credentials for Mosquitto 2 into --out"
    )
    acl.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="where passwd, acl, credentials go"
    )
    acl.add_argument(
        "--sites",
        nargs="+",
        type=Path,
        default=None,
        metavar="PATH",
        help="site files or directories of *.yaml (default: the registry in DATABASE_URL)",
    )
    acl.add_argument(
        "--gateway",
        action="append",
        default=[],
        metavar="SITE/GATEWAY",
        help="a gateway account (repeat); site files do not list gateways",
    )
    acl.add_argument(
        "--ingest-user",
        default=DEFAULT_INGEST_USER,
        metavar="NAME",
        help=f"the account ingest connects as (default: {DEFAULT_INGEST_USER})",
    )
    acl.add_argument(
        "--publisher",
        action="append",
        default=[],
        metavar="NAME",
        help="an account that may publish anywhere under carbonflow/v1/ (a simulator; repeat)",
    )
    acl.add_argument(
        "--secrets", type=Path, default=None, metavar="FILE", help="user:password lines to use"
    )
    acl.add_argument(
        "--keep",
        action="store_true",
        help="keep the passwords of the credentials file already in --out, if there is one",
    )
    acl.set_defaults(handler=run_acl)


def _site_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.y*ml")) if path.is_dir() else [path])
    return files


def _devices_from_files(paths: list[Path]) -> list[tuple[str, str]]:
    from carbonflow.sites.loader import load_site_file

    pairs: list[tuple[str, str]] = []
    for file in _site_files(paths):
        doc = load_site_file(file)
        pairs.extend((doc.site.id, d.id) for d in doc.devices)
    return pairs


def _devices_from_registry(url: str) -> list[tuple[str, str]]:
    import psycopg

    from carbonflow.storage.registry import load_registry

    with psycopg.connect(url) as conn:
        snapshot = load_registry(conn)
    return [key for key, info in snapshot.devices.items() if info.active]


def _gateways(values: list[str]) -> list[tuple[str, str]]:
    from carbonflow.domain.readings.contract import is_slug

    pairs = []
    for value in values:
        site_id, _, gateway = value.partition("/")
        if not (is_slug(site_id) and is_slug(gateway)):
            raise BrokerAclError(f"--gateway {value!r}: expected SITE/GATEWAY (two slugs)")
        pairs.append((site_id, gateway))
    return pairs


def _passwords(
    users: list[BrokerUser],
    given: dict[str, str],
    kept: dict[str, str],
    settings: BrokerAclSettings,
) -> dict[str, str]:
    """Each user's password: given, else from the environment, else kept, else generated."""
    from_env = {
        "ingest": settings.ingest_password,
        "publisher": settings.publisher_password,
    }
    passwords: dict[str, str] = {}
    for user in users:
        env_value = from_env.get(user.kind)
        if user.username in given:
            passwords[user.username] = given[user.username]
        elif env_value is not None and env_value.get_secret_value():
            # The environment wins over a kept password: ingest's MQTT_URL is built from it.
            passwords[user.username] = env_value.get_secret_value()
        elif user.username in kept:
            passwords[user.username] = kept[user.username]
        else:
            passwords[user.username] = secrets.token_urlsafe(_GENERATED_PASSWORD_BYTES)
    return passwords


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (created that way, never widened)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    # Atomic: Mosquitto reloading on SIGHUP never sees half a file.
    tmp.replace(path)


def run_acl(args: argparse.Namespace) -> int:
    from carbonflow.settings import DatabaseSettings
    from carbonflow.sites.loader import SiteFileError

    settings = BrokerAclSettings()
    try:
        if args.sites:
            devices = _devices_from_files(args.sites)
        else:
            url = DatabaseSettings().database_url
            if url is None:
                print("give --sites, or set DATABASE_URL to read the registry", file=sys.stderr)
                return 2
            devices = _devices_from_registry(url)
        kept: dict[str, str] = {}
        previous = args.out / CREDENTIALS_FILE
        if args.keep and previous.is_file():
            kept = parse_secrets(previous.read_text(encoding="utf-8"), str(previous))
        given: dict[str, str] = {}
        if args.secrets:
            given = parse_secrets(args.secrets.read_text(encoding="utf-8"), str(args.secrets))
        users = plan_users(
            devices,
            _gateways(args.gateway),
            ingest_user=args.ingest_user,
            shared_group=settings.shared_group,
            publishers=args.publisher,
        )
    except (BrokerAclError, SiteFileError, OSError) as exc:
        print(f"carbonflow broker acl: {exc}", file=sys.stderr)
        return 2
    passwords = _passwords(users, given, kept, settings)
    hashes = {
        u.username: hash_password(passwords[u.username], secrets.token_bytes(SALT_BYTES))
        for u in users
    }
    args.out.mkdir(parents=True, exist_ok=True)
    _write_private(args.out / PASSWORD_FILE, render_password_file(hashes))
    _write_private(args.out / ACL_FILE, render_acl(users))
    _write_private(args.out / CREDENTIALS_FILE, render_secrets(passwords))
    kinds = {k: sum(1 for u in users if u.kind == k) for k in ("device", "gateway", "publisher")}
    print(
        f"{len(users)} broker users ({kinds['device']} devices, {kinds['gateway']} gateways, "
        f"1 ingest, {kinds['publisher']} publishers) written to {args.out}",
        file=sys.stderr,
    )
    return 0
