"""Engine, sessions and the queries the real-time layer needs."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from .models import Base, User


class UsernameTaken(Exception):
    pass


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets readers proceed during the batched writes; NORMAL sync is safe
            # with WAL and keeps each commit cheap.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def create_schema(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- users ------------------------------------------------------------------------

    async def create_user(self, username: str, password_hash: str) -> User:
        now = time.time()
        user = User(username=username, password_hash=password_hash, level=1, realm="练气期一层",
                    spirit=0.0, spirit_rate=1.0, power=10, last_spirit_gain_time=now, created_at=now)
        async with self.sessions() as s:
            s.add(user)
            try:
                await s.commit()
            except IntegrityError:
                raise UsernameTaken(username) from None
        return user

    async def user_by_name(self, username: str) -> User | None:
        async with self.sessions() as s:
            return (await s.execute(select(User).where(User.username == username))).scalar_one_or_none()

    async def user_by_id(self, user_id: int) -> User | None:
        async with self.sessions() as s:
            return await s.get(User, user_id)

    async def reset_spirit_clock(self, user_id: int, now: float) -> bool:
        """Start counting growth from now: offline time never counts."""
        async with self.sessions() as s:
            result = await s.execute(
                update(User).where(User.id == user_id).values(last_spirit_gain_time=now))
            await s.commit()
            return result.rowcount > 0

    async def settle_spirit(self, user_id: int, now: float) -> None:
        """Credit growth since the last settle and move the clock to now, in one statement.

        Doing the arithmetic in SQL makes the settle atomic against a concurrent one.
        """
        async with self.sessions() as s:
            await s.execute(
                update(User).where(User.id == user_id, User.last_spirit_gain_time < now).values(
                    spirit=User.spirit + User.spirit_rate * (now - User.last_spirit_gain_time),
                    last_spirit_gain_time=now))
            await s.commit()
