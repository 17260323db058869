"""Connections. The storage package is the only one that speaks SQL."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa

#: A psycopg connection as the storage functions take it.
Conn = psycopg.Connection[Any]


def sqlalchemy_url(database_url: str) -> str:
    """``postgresql://…`` as SQLAlchemy's psycopg 3 dialect URL."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {database_url!r}")


def libpq_url(database_url: str) -> str:
    """``postgresql+psycopg://…`` as the plain URL libpq and psycopg accept."""
    if database_url.startswith("postgresql+psycopg://"):
        return "postgresql://" + database_url[len("postgresql+psycopg://") :]
    return database_url


def make_engine(database_url: str, **kwargs: object) -> sa.Engine:
    return sa.create_engine(sqlalchemy_url(database_url), pool_pre_ping=True, **kwargs)


def connect(
    database_url: str, *, autocommit: bool = False
) -> psycopg.Connection[tuple[object, ...]]:
    """A psycopg 3 connection, for the hot paths (COPY) that bypass SQLAlchemy."""
    return psycopg.connect(libpq_url(database_url), autocommit=autocommit)


def psycopg_of(conn: sa.Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under ``conn`` (the API's engine uses the psycopg 3 dialect)."""
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError("the API's engine must use the psycopg 3 driver")
    return raw


RowT = TypeVar("RowT")


def make_row(cls: Callable[..., RowT], row: Any) -> RowT:
    """A frozen row object from a result row, column by column in declaration order."""
    return cls(*row)


def psycopg_utc(conn: sa.Connection) -> psycopg.Connection[Any]:
    """The request's connection as psycopg, in a UTC session for this transaction (the calc
    read side expects one); ``SET LOCAL`` ends with the transaction, the pool stays clean."""
    conn.execute(sa.text("SET LOCAL TIME ZONE 'UTC'"))
    return psycopg_of(conn)


#: planner join methods :func:`execute_without` may turn off
JOIN_METHODS = ("nestloop", "hashjoin", "mergejoin")


def execute_without(
    conn: Conn, methods: Sequence[str], sql: str, params: Mapping[str, Any] | Sequence[Any]
) -> None:
    """Run one statement with the planner's join ``methods`` turned off, for a statement whose
    right plan does not depend on the statistics but whose chosen one did (the callers say
    when); the settings return to their defaults after it, and end with the transaction if it
    fails."""
    unknown = set(methods) - set(JOIN_METHODS)
    if unknown:
        raise ValueError(f"not a join method: {sorted(unknown)}")
    for method in methods:
        conn.execute(f"SET LOCAL enable_{method} = off")
    conn.execute(sql, params)
    for method in methods:
        conn.execute(f"SET LOCAL enable_{method} TO DEFAULT")
