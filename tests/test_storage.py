"""Storage: migrations and race-free writes, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from pathlib import Path

import sqlalchemy as sa

from conftest import GAME_ENV, ServerProcess, bearer, read_db


async def test_concurrent_migrations_reach_head(database_url: str) -> None:
    from xiuxian_realtime.storage import migrate
    from xiuxian_realtime.storage.db import Database

    dbs = [Database(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(db.migrate() for db in dbs))
        await dbs[0].migrate()  # again: a no-op
        assert await migrate.current_revision(dbs[0].engine) == "0002"
        async with dbs[0].engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert {"users", "inventory_items", "dungeon_runs", "exploration_results", "alembic_version"} <= tables
    finally:
        for db in dbs:
            await db.close()


async def test_settles_never_go_back_in_time(database_url: str) -> None:
    from xiuxian_realtime.storage.db import Database

    db = Database(database_url)
    try:
        await db.migrate()
        user = await db.create_user(f"settle-{time.monotonic_ns()}", "x")
        t = user.last_spirit_gain_time
        assert await db.settle_spirit_many([(user.id, 5.0, t + 2)]) == 1
        # An older settle arriving late (reordered batches) changes nothing.
        assert await db.settle_spirit_many([(user.id, 3.0, t + 1)]) == 0
        assert await db.spirit_of(user.id) == (5.0, t + 2)
        # Concurrent inventory upserts add up.
        await asyncio.gather(*(db.record_dungeon(user.id, "d", True, 1, [{"name": "灵草", "quantity": 2}],
                                                 1, t, t) for _ in range(5)))
        assert await db.inventory(user.id) == [{"name": "灵草", "quantity": 10}]
        assert (await db.load_players([user.id]))[user.id].power == 15
    finally:
        await db.close()


async def test_database_from_before_migrations_is_upgraded(tmp_path: Path) -> None:
    """A database the gateway created with create_all (no alembic_version) keeps its users."""
    from xiuxian_realtime.storage.db import Database

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(sa.text(
                "CREATE TABLE users (id INTEGER PRIMARY KEY, username VARCHAR(64) UNIQUE NOT NULL, "
                "password_hash VARCHAR(128) NOT NULL, level INTEGER NOT NULL, realm VARCHAR(32) NOT NULL, "
                "spirit FLOAT NOT NULL, spirit_rate FLOAT NOT NULL, power INTEGER NOT NULL, "
                "last_spirit_gain_time FLOAT NOT NULL, created_at FLOAT NOT NULL)"))
            await conn.execute(sa.text("INSERT INTO users VALUES (7, 'old', 'h', 3, 'r', 12.5, 1.0, 20, 0, 0)"))
        await db.migrate()
        row = (await db.load_players([7]))[7]
        assert row.username == "old" and row.spirit == 12.5 and row.avatar_url == ""
    finally:
        await db.close()


def test_two_servers_share_one_database(database_url: str, tmp_path: Path) -> None:
    """Started at the same moment: both migrate safely, and see each other's players."""
    env = {**GAME_ENV, "DATABASE_URL": database_url}
    servers = [ServerProcess(tmp_path / f"n{i}", env) for i in range(2)]
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda s: s.start(), servers))
        a, b = servers
        uid, token = a.register()
        assert b.post("/api/online/login", {"playerId": str(uid)}).status_code == 200
        snap = b.get("/api/player/snapshot", headers=bearer(token)).json()
        assert snap["id"] == uid and snap["online"] is True
        time.sleep(0.6)
        assert b.post("/api/online/logout", {"playerId": str(uid)}).status_code == 200
        stored = asyncio.run(read_db(database_url, lambda db: db.spirit_of(uid)))[0]
        assert stored >= 0.5
    finally:
        for s in servers:
            s.stop()
