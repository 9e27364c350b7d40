"""Alembic environment, used programmatically only (see storage/migrate.py).

The caller hands over an open synchronous connection in `config.attributes["connection"]`
(from `AsyncConnection.run_sync`), so the same code runs on SQLite and PostgreSQL with
the server's async URL.
"""

from alembic import context

from xiuxian_realtime.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline SQL generation is not supported
    raise RuntimeError("run migrations through xiuxian_realtime.storage.migrate")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
