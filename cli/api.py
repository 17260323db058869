"""``carbonflow api``: serve the API with uvicorn until SIGTERM/SIGINT (docs/api.md).

carbonflow api [--migrate]          host and port from CARBONFLOW_API_HOST / _PORT
carbonflow api --write-openapi FILE write the OpenAPI document and exit (no database)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cli.options import add_migrate, migrate_if_asked

# Any syntactically valid URL will do to build the app for its OpenAPI document: nothing
# connects to it.
_NO_DATABASE = "postgresql://openapi@127.0.0.1:1/none"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "api", help="HTTP API: registry, live values, rejections, green register"
    )
    add_migrate(parser)
    parser.add_argument(
        "--write-openapi",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the OpenAPI document to FILE ('-' for stdout) and exit",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from services.api.settings import ApiSettings

    if args.write_openapi is not None:
        return _write_openapi(args.write_openapi)
    try:
        settings = ApiSettings()
    except ValidationError as exc:
        print(f"api: invalid settings: {exc}", file=sys.stderr)
        return 2
    if settings.database_url is None:
        print("set DATABASE_URL (or use `carbonflow demo`)", file=sys.stderr)
        return 2
    migrate_if_asked(args, settings)
    import uvicorn

    from services.api.app import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # the handlers `carbonflow` configured
        access_log=False,  # requests are counted in /metrics instead
        proxy_headers=True,
    )
    server = uvicorn.Server(config)
    server.run()  # handles SIGINT and SIGTERM: stops accepting, finishes requests, exits
    return 0


def _write_openapi(target: Path) -> int:
    from services.api.app import create_app
    from services.api.openapi import openapi_document, render
    from services.api.settings import ApiSettings

    app = create_app(ApiSettings(DATABASE_URL=_NO_DATABASE))
    text = render(openapi_document(app))
    if str(target) == "-":
        sys.stdout.write(text)
    else:
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)
    return 0
