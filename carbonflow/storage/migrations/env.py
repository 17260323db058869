"""Alembic environment: migrate on the connection handed in by ``carbonflow.storage.migrate``."""

from __future__ import annotations

from alembic import context

from carbonflow.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
