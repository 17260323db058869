"""``carbonflow sites``: validate site files, load them into the registry, list the sites.

    carbonflow sites validate FILE [FILE…]   no database needed
    carbonflow sites load FILE [FILE…] [--reason WHY] [--force]   all files or none
    carbonflow sites list
    carbonflow sites export SITE [-o FILE]   the current document, as a site file
    carbonflow sites revisions SITE          who changed the document, when, why

Every load that changes a site stores a new revision of its document (``docs/sites.md``). A
file written by ``export`` names the revision it was exported from; loading it after the site
changed again (through the API, say) is refused, as a stale ``If-Match`` is, unless ``--force``.
Problems go to stderr, one per line (``file:line: field: message``); the exit code is 0 when
everything succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import yaml

from carbonflow.domain.site.model import SiteDocument
from carbonflow.settings import DatabaseSettings
from carbonflow.sites.loader import SiteFileError, load_site_file
from carbonflow.storage.db import make_engine
from carbonflow.storage.registry_load import list_sites, load_sites
from carbonflow.storage.site_revisions import Authorship, latest_revision, list_revisions

T = TypeVar("T")
# The first line of an exported file: which revision of which site it is.
_EXPORT_HEADER = re.compile(r"^# carbonflow site (\S+) revision (\d+)\b")


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
    load.add_argument("--reason", default="loaded from a site file", help="kept in the revision")
    load.add_argument(
        "--force", action="store_true", help="load an exported file even if the site changed since"
    )
    load.set_defaults(handler=run_load)
    listing = actions.add_parser("list", help="list the registered sites (DATABASE_URL)")
    listing.set_defaults(handler=run_list)
    export = actions.add_parser("export", help="write a site's current document as a site file")
    export.add_argument("site_id", metavar="SITE")
    export.add_argument("-o", "--output", type=Path, default=None, help="default: stdout")
    export.set_defaults(handler=run_export)
    history = actions.add_parser("revisions", help="list a site document's revisions")
    history.add_argument("site_id", metavar="SITE")
    history.set_defaults(handler=run_revisions)


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


def _stale_exports(url: str, files: list[Path], docs: list[SiteDocument]) -> list[str]:
    """Exported files whose site has a newer revision than the one they were exported from."""
    problems = []
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            for path, doc in zip(files, docs, strict=True):
                first = path.read_text(encoding="utf-8").split("\n", 1)[0]
                match = _EXPORT_HEADER.match(first)
                current = latest_revision(conn, doc.site.id) if match else None
                if match and current is not None and current.revision > int(match.group(2)):
                    problems.append(
                        f"{path.name}: exported from revision {match.group(2)} of "
                        f"{doc.site.id}, which is at revision {current.revision} now "
                        f"({current.author}: {current.reason}); export it again, or --force"
                    )
    finally:
        engine.dispose()
    return problems


def run_load(args: argparse.Namespace) -> int:
    docs = _read_all(args.files)
    url = _database_url()
    if docs is None or url is None:
        return 1
    stale = [] if args.force else _stale_exports(url, args.files, docs)
    for problem in stale:
        print(f"nothing loaded: {problem}", file=sys.stderr)
    if stale:
        return 1
    by = Authorship(f"{getpass.getuser()} (carbonflow sites load)", args.reason.strip(), "file")
    try:
        reports = load_sites(url, docs, by)
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


def _read(url: str, query: Callable[[sa.Connection], T]) -> T:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return query(conn)
    finally:
        engine.dispose()


def run_export(args: argparse.Namespace) -> int:
    url = _database_url()
    if url is None:
        return 1
    current = _read(url, lambda conn: latest_revision(conn, args.site_id))
    if current is None:
        print(f"no site {args.site_id!r} registered", file=sys.stderr)
        return 1
    header = (
        f"# carbonflow site {current.site_id} revision {current.revision}, exported "
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} (normalised: defaults written out)\n"
    )
    text = header + yaml.safe_dump(current.document, allow_unicode=True, sort_keys=False)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output} (revision {current.revision})", file=sys.stderr)
    return 0


def run_revisions(args: argparse.Namespace) -> int:
    url = _database_url()
    if url is None:
        return 1
    rows = _read(url, lambda conn: list_revisions(conn, args.site_id))
    for r in rows:
        print(
            f"{r.revision}\t{r.created_at:%Y-%m-%d %H:%M:%S%z}\t{r.source}\t{r.author}"
            f"\t{len(r.diff)} changes\t{r.reason}"
        )
    if not rows:
        print(f"no site {args.site_id!r} registered", file=sys.stderr)
        return 1
    return 0


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return " ".join(text.split())[:500]
