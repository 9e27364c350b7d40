"""Leaderboards in Redis sorted sets, shared by every node.

`lb:spirit`, `lb:power` and `lb:level` hold every player's score. The leaderboard service
asks for ranks synchronously on its hot path (thousands of times a second), so each node
keeps a local replica — the in-memory index — and:

- writes behind: a changed score goes into the next batch, one pipelined `ZADD ... GT`
  per category every half second (scores only grow in this game, so `GT` makes writes
  from several nodes commute);
- reads back: every `sync_interval_s` the whole set is read and the replica rebuilt,
  so players who are served by other nodes rank correctly here too.

When Redis is unreachable the replica keeps serving and the batch waits for the next try.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..tasks import cancel_and_wait
from .leaderboard import MemoryRankIndex
from .players import Players

log = logging.getLogger("xiuxian.ranks")

WRITE_INTERVAL_S = 0.5
PAGE = 10_000


def board_key(category: str) -> str:
    return f"lb:{category}"


class RedisRankIndex(MemoryRankIndex):
    def __init__(self, client: aioredis.Redis, category: str, players: Players,
                 sync_interval_s: float = 10.0) -> None:
        super().__init__()
        self.redis = client
        self.board = board_key(category)
        self.players = players
        self.sync_interval_s = sync_interval_s
        self._dirty: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    # The RankIndex methods: local replica first, Redis behind.

    def load(self, scores: dict[int, float]) -> None:
        super().load(scores)
        self._dirty.update(scores)

    def set(self, user_id: int, score: float) -> bool:
        changed = super().set(user_id, score)
        if changed:
            self._dirty[user_id] = score
        return changed

    # -- background ------------------------------------------------------------------------

    async def start(self) -> None:
        """Push what this node knows, then adopt the shared board."""
        try:
            await self.flush()
            await self.pull()
        except (RedisError, OSError) as exc:
            log.warning("leaderboard sync failed", extra={"board": self.board, "error": type(exc).__name__})
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        try:
            await self.flush()
        except (RedisError, OSError):
            pass

    async def _run(self) -> None:
        elapsed = 0.0
        while True:
            await asyncio.sleep(WRITE_INTERVAL_S)
            elapsed += WRITE_INTERVAL_S
            try:
                await self.flush()
                if elapsed >= self.sync_interval_s:
                    elapsed = 0.0
                    await self.pull()
            except (RedisError, OSError) as exc:
                log.warning("leaderboard sync failed", extra={"board": self.board, "error": type(exc).__name__})

    async def flush(self) -> None:
        if not self._dirty:
            return
        batch, self._dirty = self._dirty, {}
        try:
            items = list(batch.items())
            async with self.redis.pipeline(transaction=False) as pipe:
                for start in range(0, len(items), PAGE):
                    mapping: dict[Any, float] = {uid: score for uid, score in items[start:start + PAGE]}
                    pipe.zadd(self.board, mapping, gt=True)
                await pipe.execute()
        except BaseException:
            for uid, score in batch.items():  # keep them for the next try (newer values win)
                self._dirty.setdefault(uid, score)
            raise

    async def pull(self) -> None:
        """Rebuild the replica from the shared board (local unsent changes stay on top)."""
        shared: dict[int, float] = {}
        start = 0
        while True:
            page = await self.redis.zrange(self.board, start, start + PAGE - 1, withscores=True)
            for member, score in page:
                shared[int(member)] = float(score)
            if len(page) < PAGE:
                break
            start += PAGE
        for uid, score in self._dirty.items():
            shared[uid] = max(score, shared.get(uid, score))
        keys, key = self._keys, self.key
        if len(shared) != len(keys) or any(keys.get(uid) != key(uid, score) for uid, score in shared.items()):
            MemoryRankIndex.load(self, shared)
        # Players served by other nodes: fetch their cards (names for the top 10).
        unknown = [uid for uid in shared if self.players.get(uid) is None]
        if unknown:
            await asyncio.gather(*(self.players.load(uid) for uid in unknown[:PAGE]))
