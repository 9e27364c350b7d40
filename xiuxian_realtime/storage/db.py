"""Engine, sessions and the queries the real-time layer needs.

Writes that several server processes might race on are written to be safe:

- spirit settles set absolute values computed from the in-memory state of the node that
  holds the player's session, guarded by `last_spirit_gain_time < :t`, so a late or
  out-of-order write can never move a player's settled clock backwards (no double count,
  no regression);
- inventory additions are single upserts (`ON CONFLICT ... DO UPDATE quantity + n`);
- power gains are `power = power + n`.
"""

from __future__ import annotations

import json
import time
from typing import Any, AsyncIterator, Iterable, NamedTuple, Sequence

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine

from . import migrate
from .models import DungeonRun, ExplorationResult, InventoryItem, User

USERS = User.__table__
INVENTORY = InventoryItem.__table__

# Rows per statement batch: below every backend's bind-parameter limit.
CHUNK = 500


class UsernameTaken(Exception):
    pass


class PlayerRow(NamedTuple):
    """What the game services keep in memory about a player."""

    id: int
    username: str
    level: int
    realm: str
    power: int
    spirit: float
    spirit_rate: float
    avatar_url: str
    settled_at: float = 0.0  # last_spirit_gain_time: `spirit` is settled up to this time


PLAYER_COLUMNS = (USERS.c.id, USERS.c.username, USERS.c.level, USERS.c.realm, USERS.c.power,
                  USERS.c.spirit, USERS.c.spirit_rate, USERS.c.avatar_url, USERS.c.last_spirit_gain_time)


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
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.dialect = self.engine.dialect.name

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (safe to run from several processes)."""
        await migrate.upgrade(self.engine)

    # The gateway's name for it; one code path.
    create_schema = migrate

    async def close(self) -> None:
        await self.engine.dispose()

    # -- users ------------------------------------------------------------------------

    async def create_user(self, username: str, password_hash: str) -> User:
        now = time.time()
        user = User(username=username, password_hash=password_hash, level=1, realm="练气期一层",
                    spirit=0.0, spirit_rate=1.0, power=10, last_spirit_gain_time=now, created_at=now,
                    avatar_url="")
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

    # -- players (the game services' view) ---------------------------------------------

    async def load_players(self, user_ids: Sequence[int]) -> dict[int, PlayerRow]:
        """Many players in one round trip per CHUNK ids."""
        out: dict[int, PlayerRow] = {}
        async with self.engine.connect() as conn:
            for start in range(0, len(user_ids), CHUNK):
                chunk = list(user_ids[start:start + CHUNK])
                result = await conn.execute(select(*PLAYER_COLUMNS).where(USERS.c.id.in_(chunk)))
                for row in result:
                    out[row[0]] = PlayerRow(*row)
        return out

    async def iter_players(self, batch: int = 10_000) -> AsyncIterator[list[PlayerRow]]:
        """Every player, in id order and batches (start-up load of the leaderboard)."""
        last = -1
        async with self.engine.connect() as conn:
            while True:
                result = await conn.execute(
                    select(*PLAYER_COLUMNS).where(USERS.c.id > last).order_by(USERS.c.id).limit(batch))
                rows = [PlayerRow(*row) for row in result]
                if not rows:
                    return
                yield rows
                last = rows[-1].id

    async def settle_spirit_many(self, rows: Iterable[tuple[int, float, float]]) -> int:
        """Write (user_id, spirit, settled_up_to) for many players; return rows changed.

        Absolute values from the in-memory state; the guard on the clock makes a stale
        write (an older settle arriving after a newer one) a no-op.
        """
        params = [{"b_id": uid, "b_spirit": spirit, "b_t": t} for uid, spirit, t in rows]
        if not params:
            return 0
        stmt = (update(USERS)
                .where(USERS.c.id == bindparam("b_id"), USERS.c.last_spirit_gain_time < bindparam("b_t"))
                .values(spirit=bindparam("b_spirit"), last_spirit_gain_time=bindparam("b_t")))
        changed = 0
        for start in range(0, len(params), 2000):
            async with self.engine.begin() as conn:
                result = await conn.execute(stmt, params[start:start + 2000])
                changed += max(result.rowcount, 0)
        return changed

    async def restart_spirit_clocks(self, rows: Sequence[tuple[int, float]]) -> None:
        """New sessions (user_id, now): growth counts from now; time offline never counts.

        One set-based UPDATE per CHUNK ids at the batch's latest time, not one row update
        each: a connect storm batches hundreds of logins, and per-row parameter handling
        was most of the database thread's time. The clocks move by at most the batch
        window (100 ms) more than asked, which errs on the side of never counting offline time.
        """
        if not rows:
            return
        t = max(t for _, t in rows)
        ids = sorted({uid for uid, _ in rows})
        async with self.engine.begin() as conn:
            for start in range(0, len(ids), CHUNK):
                await conn.execute(update(USERS)
                                   .where(USERS.c.id.in_(ids[start:start + CHUNK]),
                                          USERS.c.last_spirit_gain_time < t)
                                   .values(last_spirit_gain_time=t))

    async def spirit_of(self, user_id: int) -> tuple[float, float] | None:
        """(spirit, last_spirit_gain_time) as stored."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(USERS.c.spirit, USERS.c.last_spirit_gain_time)
                                      .where(USERS.c.id == user_id))).first()
        return (row[0], row[1]) if row else None

    # -- inventory and activity results ------------------------------------------------

    async def _add_items(self, conn: AsyncConnection, user_id: int, items: list[dict[str, Any]],
                         now: float) -> None:
        if not items:
            return
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        for item in items:
            stmt = insert(INVENTORY).values(user_id=user_id, item=item["name"],
                                            quantity=int(item["quantity"]), updated_at=now)
            stmt = stmt.on_conflict_do_update(
                index_elements=[INVENTORY.c.user_id, INVENTORY.c.item],
                set_={"quantity": INVENTORY.c.quantity + stmt.excluded.quantity,
                      "updated_at": stmt.excluded.updated_at})
            await conn.execute(stmt)

    async def _add_power(self, conn: AsyncConnection, user_id: int, gain: int) -> int | None:
        if gain:
            await conn.execute(update(USERS).where(USERS.c.id == user_id)
                               .values(power=USERS.c.power + gain))
        return (await conn.execute(select(USERS.c.power).where(USERS.c.id == user_id))).scalar()

    async def record_dungeon(self, user_id: int, dungeon: str, victory: bool, rounds: int,
                             loot: list[dict[str, Any]], power_gain: int, started: float,
                             finished: float) -> int | None:
        """Persist a finished run, its loot and power gain in one transaction; return power."""
        async with self.engine.begin() as conn:
            await conn.execute(DungeonRun.__table__.insert().values(
                user_id=user_id, dungeon=dungeon, victory=victory, rounds=rounds,
                loot=json.dumps(loot, ensure_ascii=False), started_at=started, finished_at=finished))
            await self._add_items(conn, user_id, loot, finished)
            return await self._add_power(conn, user_id, power_gain)

    async def record_exploration(self, user_id: int, location: str, success: bool,
                                 discoveries: list[str], reward: dict[str, Any] | None, error_msg: str,
                                 started: float, finished: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(ExplorationResult.__table__.insert().values(
                user_id=user_id, location=location, success=success,
                discoveries=json.dumps(discoveries, ensure_ascii=False),
                reward=json.dumps(reward, ensure_ascii=False), error_msg=error_msg,
                started_at=started, finished_at=finished))
            if reward:
                await self._add_items(conn, user_id, reward.get("items", []), finished)

    async def inventory(self, user_id: int) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(INVENTORY.c.item, INVENTORY.c.quantity)
                                      .where(INVENTORY.c.user_id == user_id).order_by(INVENTORY.c.item))
            return [{"name": r[0], "quantity": r[1]} for r in rows]

    async def dungeon_runs(self, user_id: int) -> list[dict[str, Any]]:
        t = DungeonRun.__table__
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t.c.dungeon, t.c.victory, t.c.rounds, t.c.loot, t.c.finished_at)
                                      .where(t.c.user_id == user_id).order_by(t.c.id))
            return [{"dungeon": r[0], "victory": bool(r[1]), "rounds": r[2], "loot": json.loads(r[3]),
                     "finishedAt": r[4]} for r in rows]

    async def exploration_results(self, user_id: int) -> list[dict[str, Any]]:
        t = ExplorationResult.__table__
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t.c.location, t.c.success, t.c.discoveries, t.c.reward,
                                             t.c.error_msg, t.c.finished_at)
                                      .where(t.c.user_id == user_id).order_by(t.c.id))
            return [{"location": r[0], "success": bool(r[1]), "discoveries": json.loads(r[2]),
                     "reward": json.loads(r[3]), "errorMsg": r[4], "finishedAt": r[5]} for r in rows]
