"""Schema migrations (Alembic), run programmatically at start-up.

One code path for every backend: the async engine lends a synchronous connection
(`run_sync`) and Alembic upgrades to the newest revision on it.

Several server processes may start at once against one database, so the upgrade is
serialised: on PostgreSQL by a transaction-scoped advisory lock taken before Alembic reads
its version table (the DDL is transactional, so the second process sees the finished
schema); on SQLite by an exclusive lock on a file next to the database (processes that
share a SQLite file share a machine).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Arbitrary constant: the advisory lock key all xiuxian-realtime nodes agree on.
PG_LOCK_KEY = 0x78697578  # "xiux"


def alembic_config(connection: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Any) -> None:
    command.upgrade(alembic_config(connection), "head")


def _current(connection: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine) -> None:
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
            await conn.run_sync(_upgrade)
        return
    lock_path = _sqlite_lock_path(str(engine.url))
    fd = None
    if lock_path is not None:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
    finally:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def _sqlite_lock_path(url: str) -> str | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database + ".migrate.lock"
