"""``carbonflow sites``: validate site files, load them into the registry, list the sites.

    carbonflow sites validate FILE [FILE…]   no database needed
    carbonflow sites load FILE [FILE…]       all files or none (one transaction)
    carbonflow sites list

Problems go to stderr, one per line (``file:line: field: message``); the exit code is 0 when
everything succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from carbonflow.domain.site.model import SiteDocument
from carbonflow.settings import DatabaseSettings
from carbonflow.sites.loader import SiteFileError, load_site_file
from carbonflow.storage.registry_load import list_sites, load_sites


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sites", help="validate, load and list site files (the device registry)"
    )
    actions = parser.add_subparsers(dest="sites_action", required=True, metavar="ACTION")
    validate = actions.add_parser("validate", help="check site files (no database)")
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    validate.set_defaults(handler=run_validate)
    load = actions.add_parser("load", help="write site files into the registry (DATABASE_URL)")
    load.add_argument("files", nargs="+", type=Path, metavar="FILE")
    load.set_defaults(handler=run_load)
    listing = actions.add_parser("list", help="list the registered sites (DATABASE_URL)")
    listing.set_defaults(handler=run_list)


def _read_all(files: list[Path]) -> list[SiteDocument] | None:
    """Every file validated, or ``None`` after printing every problem of every file."""
    docs: list[SiteDocument] = []
    failed = False
    for path in files:
        try:
            docs.append(load_site_file(path))
        except SiteFileError as exc:
            failed = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
    return None if failed else docs


def _database_url() -> str | None:
    url = DatabaseSettings().database_url
    if url is None:
        print(
            "DATABASE_URL is not set: set DATABASE_URL=postgresql://… "
            "or use `carbonflow demo`, which starts its own database",
            file=sys.stderr,
        )
    return url


def run_validate(args: argparse.Namespace) -> int:
    docs = _read_all(args.files)
    if docs is None:
        return 1
    for path, doc in zip(args.files, docs, strict=True):
        print(
            f"{path.name}: ok: {doc.site.id} ({doc.site.kind.value}), "
            f"{len(doc.organisations)} organisations, {len(doc.nodes)} nodes, "
            f"{len(doc.edges)} edges, {len(doc.products)} products, {len(doc.devices)} devices"
        )
    return 0


def run_load(args: argparse.Namespace) -> int:
    docs = _read_all(args.files)
    url = _database_url()
    if docs is None or url is None:
        return 1
    try:
        reports = load_sites(url, docs)
    except (ValueError, sa.exc.SQLAlchemyError) as exc:
        print(f"nothing loaded: {_one_line(exc)}", file=sys.stderr)
        return 1
    for report in reports:
        print(report.summary())
    return 0


def run_list(args: argparse.Namespace) -> int:
    url = _database_url()
    if url is None:
        return 1
    try:
        sites = list_sites(url)
    except sa.exc.SQLAlchemyError as exc:
        print(f"cannot list sites: {_one_line(exc)}", file=sys.stderr)
        return 1
    for s in sites:
        print(
            f"{s.site_id}\t{s.kind}\t{s.province}\t{s.active_devices} devices"
            f"\t{s.inactive_devices} inactive\tloaded {s.loaded_at:%Y-%m-%d %H:%M:%S%z}\t{s.name}"
        )
    if not sites:
        print("no sites registered; load one with `carbonflow sites load FILE`", file=sys.stderr)
    return 0


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return " ".join(text.split())[:500]
