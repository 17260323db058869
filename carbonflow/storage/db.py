"""Connections. The storage package is the only one that speaks SQL."""

from __future__ import annotations

import psycopg
import sqlalchemy as sa


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
